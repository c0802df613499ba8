// run <task>: one attempt of one task. It asks the user's actor for an access token, sends
// the action under the provider's API base URL with that token and the task's stable
// Idempotency-Key, and reports how it went. A 401 from the API earns exactly one forced
// refresh and one more try (the token may have been revoked early). The run never retries on
// its own: the scheduler decides, so every retry is durable.

#include <spdlog/spdlog.h>

#include "actors/context.hpp"
#include "actors/messages.hpp"
#include "net/api_url.hpp"
#include "net/oauth/token_response.hpp"

namespace latchkey {

namespace {

struct run_state {
  task_record task;
  context_ptr ctx;
  caf::actor user_actor;
  caf::typed_response_promise<run_outcome> promise;
  bool forced_refresh = false;
};

using state_ptr = std::shared_ptr<run_state>;

void finish(caf::event_based_actor* self, const state_ptr& st, run_outcome outcome) {
  st->promise.deliver(std::move(outcome));
  self->quit();
}

run_outcome outcome_of(run_outcome::kind_t kind, std::string code,
                       std::optional<int> response_status = std::nullopt) {
  run_outcome out;
  out.kind = kind;
  out.code = std::move(code);
  out.response_status = response_status;
  return out;
}

// An actor this run depends on did not answer (the node is stopping, or it failed): the
// attempt is retried later like any other transient failure.
auto on_peer_lost(caf::event_based_actor* self, const std::shared_ptr<run_state>& st) {
  return [self, st](caf::error&) {
    finish(self, st, outcome_of(run_outcome::transient, "internal_unavailable"));
  };
}

void audit_attempt(const run_state& st, const std::string& outcome, const std::string& detail) {
  auto written =
      st.ctx->audit->append(audit_event{st.task.user, "agent:" + st.task.agent, "token.used",
                                        outcome, st.task.provider, st.task.id, detail});
  if (!written)
    spdlog::error("audit write failed user={} task={} code={}", st.task.user, st.task.id,
                  written.error().code);
}

// Classifies the API's answer (RFC 9110 status classes; 408, 425, 429 and 5xx are worth
// another attempt, other 4xx are the request's own fault).
run_outcome classify(const http_response& reply) {
  if (reply.transport_failed())
    return outcome_of(run_outcome::transient, "transport_error");
  if (reply.status >= 200 && reply.status < 300)
    return outcome_of(run_outcome::succeeded, "", reply.status);

  auto code = "http_" + std::to_string(reply.status);
  if (reply.status == 408 || reply.status == 425 || reply.status == 429 || reply.status >= 500) {
    auto out = outcome_of(run_outcome::transient, code, reply.status);
    if (auto header = find_header(reply.headers, "Retry-After"))
      if (auto after = oauth::parse_retry_after(*header, oauth::clock::now()))
        out.retry_after_ms = after->count() * 1000;
    return out;
  }
  return outcome_of(run_outcome::failed, code, reply.status);
}

void request_token(caf::event_based_actor* self, const state_ptr& st,
                   std::optional<secret_string> refused);

void send_action(caf::event_based_actor* self, const state_ptr& st, secret_string token) {
  auto provider = st->ctx->db->get_provider(st->task.provider);
  if (!provider || !provider.value()) {
    finish(self, st, outcome_of(run_outcome::failed, "unknown_provider"));
    return;
  }
  auto url = join_api_url(provider.value()->api_base_url, st->task.action.path);
  if (!url) {
    finish(self, st, outcome_of(run_outcome::failed, url.error().code));
    return;
  }

  http_request request;
  request.method = st->task.action.method;
  request.url = std::move(url).value();
  request.headers = st->task.action.headers;
  request.headers.emplace_back("Authorization", "Bearer " + token.reveal());
  request.headers.emplace_back("Idempotency-Key", st->task.idempotency_key);
  if (st->task.action.body)
    request.body = *st->task.action.body;
  request.timeout = st->ctx->opts.outbound_timeout;
  request.share_key = st->task.provider;
  // Sent only while this attempt is still the task's live one: a cancel, or an attempt the
  // scheduler already gave up on, stops an action that is still waiting for a worker.
  request.still_wanted = [db = st->ctx->db, user = st->task.user, id = st->task.id,
                          attempt = st->task.attempts] {
    auto task = db->get_task(user, id);
    return task && task.value() && task.value()->status == task_status::running &&
           task.value()->attempts == attempt;
  };

  self->request(st->ctx->outbound, caf::infinite, perform_atom::value, std::move(request))
      .then(
          [self, st, token](http_response& reply) {
            if (reply.withheld) {
              finish(self, st, outcome_of(run_outcome::failed, "cancelled"));
              return;
            }
            auto detail = describe_action(st->task.action) + " -> " +
                          (reply.transport_failed() ? std::string("no response")
                                                    : std::to_string(reply.status));
            if (reply.status == 401 && !st->forced_refresh) {
              audit_attempt(*st, "unauthorized", detail + ", forcing one refresh");
              st->forced_refresh = true;
              request_token(self, st, token);
              return;
            }
            auto outcome = classify(reply);
            audit_attempt(*st, outcome.kind == run_outcome::succeeded ? "ok" : outcome.code,
                          detail);
            finish(self, st, std::move(outcome));
          },
          on_peer_lost(self, st));
}

void request_token(caf::event_based_actor* self, const state_ptr& st,
                   std::optional<secret_string> refused) {
  token_request request;
  request.provider = st->task.provider;
  request.scopes = st->task.scopes;
  request.task = st->task.id;
  request.refused_token = std::move(refused);

  self->request(st->user_actor, caf::infinite, get_token_atom::value, std::move(request))
      .then(
          [self, st](token_reply& reply) {
            if (reply.ok) {
              send_action(self, st, std::move(reply.access_token));
              return;
            }
            // The action is never sent without a fresh, valid token (tests/cases/case-06.json).
            run_outcome out;
            out.code = reply.code;
            out.retry_after_ms = reply.retry_after_ms;
            switch (reply.kind) {
              case failure_class::transient:
                out.kind = run_outcome::transient;
                break;
              case failure_class::permanent:
                out.kind = run_outcome::failed;
                break;
              case failure_class::blocked:
                out.kind = run_outcome::blocked;
                break;
            }
            finish(self, st, std::move(out));
          },
          on_peer_lost(self, st));
}

}  // namespace

caf::behavior run_actor(caf::event_based_actor* self, task_record task, context_ptr ctx) {
  auto st = std::make_shared<run_state>();
  st->task = std::move(task);
  st->ctx = std::move(ctx);

  return {
      [self, st](run_atom) -> caf::result<run_outcome> {
        st->promise = self->make_response_promise<run_outcome>();
        self->request(st->ctx->users, caf::infinite, lookup_atom::value, st->task.user)
            .then(
                [self, st](caf::actor& user_actor) {
                  st->user_actor = std::move(user_actor);
                  request_token(self, st, std::nullopt);
                },
                on_peer_lost(self, st));
        return st->promise;
      },
  };
}

}  // namespace latchkey
