// outbound: runs blocking HTTP calls on detached worker actors (each has its own thread), so
// no token endpoint or API call ever blocks CAF's scheduler threads. The dispatcher hands a
// call to an idle worker and queues it otherwise; the worker count caps outbound concurrency.
//
// One provider (its token endpoint and its API together; for calls without a provider, one
// host) may hold at most half of the workers, rounded up: a provider that hangs ties up its
// share until the outbound timeout, and every other provider keeps the rest.
//
// A worker that does not answer within its guard is stuck in a call; it is replaced by a fresh
// one and never handed another call.

#include <deque>
#include <memory>
#include <unordered_map>

#include "actors/context.hpp"
#include "actors/messages.hpp"
#include "net/api_url.hpp"
#include "net/http_client.hpp"

namespace latchkey {

namespace {

caf::behavior outbound_worker(caf::event_based_actor*) {
  return {
      [](perform_atom, const http_request& request) {
        if (request.still_wanted && !request.still_wanted()) {
          http_response withheld;
          withheld.withheld = true;
          withheld.transport_error = "not sent: no longer wanted";
          return withheld;
        }
        return perform(request);
      },
  };
}

struct pending_call {
  http_request request;
  std::string host;  // the unit of the share: the provider id, or scheme://host:port
  caf::typed_response_promise<http_response> promise;
};

struct outbound_state {
  std::vector<caf::actor> idle;
  std::deque<pending_call> queue;
  std::unordered_map<std::string, int> busy_by_host;
  int host_share = 1;
};

std::string host_of(const std::string& url) {
  auto parsed = parse_url(url);
  if (!parsed)
    return {};
  return parsed->scheme + "://" + parsed->host + ":" + std::to_string(parsed->port);
}

void dispatch(caf::event_based_actor* self, const std::shared_ptr<outbound_state>& state) {
  auto next = state->queue.begin();
  while (!state->idle.empty() && next != state->queue.end()) {
    // The oldest call whose host still has room in its share.
    if (state->busy_by_host[next->host] >= state->host_share) {
      ++next;
      continue;
    }
    auto worker = state->idle.back();
    state->idle.pop_back();
    auto call = std::move(*next);
    next = state->queue.erase(next);
    state->busy_by_host[call.host] += 1;

    // The worker enforces the request's own timeout; this one only guards against a worker
    // that died without answering.
    auto guard = call.request.timeout * 3 + std::chrono::seconds(5);
    auto done = [self, state, host = call.host](caf::actor next_worker) {
      state->busy_by_host[host] -= 1;
      state->idle.push_back(std::move(next_worker));
      dispatch(self, state);
    };
    auto promise = call.promise;
    self->request(worker, guard, perform_atom::value, std::move(call.request))
        .then(
            [promise, done, worker](http_response& response) mutable {
              promise.deliver(std::move(response));
              done(worker);
            },
            [self, promise, done, worker](caf::error&) mutable {
              http_response failed;
              failed.transport_error = "outbound worker did not answer";
              promise.deliver(std::move(failed));
              // Retire the stuck worker (it exits once its call returns) without taking the
              // dispatcher down with it, and put a fresh one in its place.
              self->unlink_from(worker);
              self->send_exit(worker, caf::exit_reason::user_shutdown);
              done(self->spawn<caf::detached + caf::linked>(outbound_worker));
            });
  }
}

}  // namespace

caf::behavior outbound_actor(caf::event_based_actor* self, int workers) {
  auto state = std::make_shared<outbound_state>();
  state->host_share = std::max(1, (workers + 1) / 2);
  for (int i = 0; i < workers; ++i)
    state->idle.push_back(self->spawn<caf::detached + caf::linked>(outbound_worker));

  return {
      [self, state](perform_atom, http_request& request) -> caf::result<http_response> {
        auto promise = self->make_response_promise<http_response>();
        auto host = request.share_key.empty() ? host_of(request.url) : request.share_key;
        state->queue.push_back(pending_call{std::move(request), std::move(host), promise});
        dispatch(self, state);
        return promise;
      },
  };
}

}  // namespace latchkey
