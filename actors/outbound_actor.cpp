// outbound: runs blocking HTTP calls on detached worker actors (each has its own thread), so
// no token endpoint or API call ever blocks CAF's scheduler threads. The dispatcher hands a
// call to an idle worker and queues it otherwise; the worker count caps outbound concurrency.

#include <deque>
#include <memory>

#include "actors/context.hpp"
#include "actors/messages.hpp"
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
  caf::typed_response_promise<http_response> promise;
};

struct outbound_state {
  std::vector<caf::actor> idle;
  std::deque<pending_call> queue;
};

void dispatch(caf::event_based_actor* self, const std::shared_ptr<outbound_state>& state) {
  while (!state->idle.empty() && !state->queue.empty()) {
    auto worker = state->idle.back();
    state->idle.pop_back();
    auto call = std::move(state->queue.front());
    state->queue.pop_front();

    // The worker enforces the request's own timeout; this one only guards against a worker
    // that died without answering.
    auto guard = call.request.timeout * 3 + std::chrono::seconds(5);
    auto promise = call.promise;
    self->request(worker, guard, perform_atom::value, std::move(call.request))
        .then(
            [self, state, worker, promise](http_response& response) mutable {
              promise.deliver(std::move(response));
              state->idle.push_back(worker);
              dispatch(self, state);
            },
            [self, state, worker, promise](caf::error&) mutable {
              http_response failed;
              failed.transport_error = "outbound worker did not answer";
              promise.deliver(std::move(failed));
              state->idle.push_back(worker);
              dispatch(self, state);
            });
  }
}

}  // namespace

caf::behavior outbound_actor(caf::event_based_actor* self, int workers) {
  auto state = std::make_shared<outbound_state>();
  for (int i = 0; i < workers; ++i)
    state->idle.push_back(self->spawn<caf::detached + caf::linked>(outbound_worker));

  return {
      [self, state](perform_atom, http_request& request) -> caf::result<http_response> {
        auto promise = self->make_response_promise<http_response>();
        state->queue.push_back(pending_call{std::move(request), promise});
        dispatch(self, state);
        return promise;
      },
  };
}

}  // namespace latchkey
