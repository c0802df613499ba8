// outbound: runs blocking HTTP calls on detached worker actors (each has its own thread), so
// no token endpoint or API call ever blocks CAF's scheduler threads. The dispatcher hands a
// call to an idle worker and queues it otherwise; the worker count caps outbound concurrency.
//
// One host may hold at most half of the workers (rounded up): a provider that hangs ties up
// its share until the outbound timeout, and every other provider keeps the rest.

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
  std::string host;  // scheme://host:port, the unit of the per-host share
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
    auto done = [self, state, worker, host = call.host] {
      state->busy_by_host[host] -= 1;
      state->idle.push_back(worker);
      dispatch(self, state);
    };
    auto promise = call.promise;
    self->request(worker, guard, perform_atom::value, std::move(call.request))
        .then(
            [promise, done](http_response& response) mutable {
              promise.deliver(std::move(response));
              done();
            },
            [promise, done](caf::error&) mutable {
              http_response failed;
              failed.transport_error = "outbound worker did not answer";
              promise.deliver(std::move(failed));
              done();
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
        auto host = host_of(request.url);
        state->queue.push_back(pending_call{std::move(request), std::move(host), promise});
        dispatch(self, state);
        return promise;
      },
  };
}

}  // namespace latchkey
