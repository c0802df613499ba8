// user <id>: owns one user's connections. It is the only writer of their records, keeps
// their access tokens in memory only, and refreshes each connection single-flight: however
// many runs ask at once, one token-endpoint call is made and every waiter gets its result.
// A rotated refresh token is sealed and durably stored before any waiter sees the new access
// token, so a crash can never leave us holding only a rotated-out token.

#include <spdlog/spdlog.h>

#include <map>

#include "actors/context.hpp"
#include "actors/messages.hpp"
#include "actors/scopes.hpp"
#include "net/oauth/token_request.hpp"
#include "net/oauth/token_response.hpp"

namespace latchkey {

namespace {

// A token whose lifetime the provider did not state is used for at most this long.
constexpr std::int64_t unknown_lifetime_ms = 60'000;

struct cached_token {
  secret_string access_token;
  std::int64_t expires_at_ms = 0;
};

struct connection_slot {
  std::optional<connection_record> record;  // loaded on first use; this actor keeps it current
  std::optional<cached_token> token;
  bool refreshing = false;
  std::vector<caf::typed_response_promise<token_reply>> waiters;
};

struct user_state {
  std::string user;
  context_ptr ctx;
  std::map<std::string, connection_slot> slots;
};

using state_ptr = std::shared_ptr<user_state>;

seal_context refresh_token_place(const std::string& user, const std::string& provider) {
  return seal_context{user_key_owner(user), provider, "refresh_token"};
}

token_reply failed_reply(failure_class kind, std::string code, std::string message,
                         std::optional<std::int64_t> retry_after_ms = std::nullopt) {
  token_reply reply;
  reply.kind = kind;
  reply.code = std::move(code);
  reply.message = std::move(message);
  reply.retry_after_ms = retry_after_ms;
  return reply;
}

// Loads the connection into its slot if needed; nullopt-record means "no such connection".
result<connection_slot*> load_slot(user_state& st, const std::string& provider) {
  auto& slot = st.slots[provider];
  if (!slot.record) {
    auto stored = st.ctx->db->get_connection(st.user, provider);
    if (!stored)
      return stored.error();
    slot.record = std::move(stored.value());
  }
  return &slot;
}

void answer_waiters(connection_slot& slot, const token_reply& reply) {
  auto waiters = std::move(slot.waiters);
  slot.waiters.clear();
  for (auto& waiter : waiters)
    waiter.deliver(reply);
}

void audit(user_state& st, const std::string& provider, std::string event, std::string outcome,
           std::string detail = {}, std::string task = {}) {
  auto written =
      st.ctx->audit->append(audit_event{st.user, "user-actor", std::move(event), std::move(outcome),
                                        provider, std::move(task), std::move(detail)});
  if (!written)
    spdlog::error("audit write failed user={} provider={} code={}: {}", st.user, provider,
                  written.error().code, written.error().message);
}

// Marks the connection as needing the user to reconnect, and parks its tasks. Called for
// invalid_grant and for a refresh token past its stated expiry; afterwards no token-endpoint
// call is made for this connection until the agent stores a new grant.
void mark_needs_reconnect(caf::event_based_actor* self, const state_ptr& st, connection_slot& slot,
                          const std::string& provider, const std::string& reason) {
  auto& record = *slot.record;
  record.status = connection_status::needs_reconnect;
  record.status_reason = reason;
  st->ctx->counters.connections_needing_reconnect++;
  record.updated_at_ms = now_ms();
  slot.token.reset();

  auto batch = st->ctx->db->batch();
  batch.put_connection(record);
  auto audited = st->ctx->audit->append_to(
      batch, audit_event{st->user, "user-actor", "connection.needs_reconnect", reason, provider, "",
                         "the provider no longer accepts this grant; the user must reconnect"});
  auto committed = audited ? st->ctx->db->commit(batch) : audited;
  if (!committed)
    spdlog::error("could not persist needs_reconnect user={} provider={} code={}", st->user,
                  provider, committed.error().code);

  spdlog::warn(
      "connection needs reconnect user={} provider={} reason={}: tasks are blocked until "
      "the agent stores a new grant",
      st->user, provider, reason);
  self->send(st->ctx->scheduler, block_atom::value, st->user, provider, reason);
}

void start_refresh(caf::event_based_actor* self, const state_ptr& st, const std::string& provider);

// Applies a token endpoint reply: persist first, then answer every waiter.
void finish_refresh(caf::event_based_actor* self, const state_ptr& st, const std::string& provider,
                    std::uint64_t sent_generation, const http_response& reply) {
  auto& slot = st->slots[provider];
  slot.refreshing = false;
  auto received_at = oauth::clock::now();
  auto outcome = oauth::interpret_token_response(reply, received_at);

  // The agent stored a new grant while the call was in flight: whatever this reply says is
  // about a token we no longer hold (tests/cases/case-11.json). Refresh again with the stored
  // one if anyone still waits.
  if (!slot.record || slot.record->generation != sent_generation) {
    if (!slot.waiters.empty())
      start_refresh(self, st, provider);
    return;
  }

  if (auto* failed = std::get_if<oauth::refresh_failure>(&outcome)) {
    std::optional<std::int64_t> retry_after_ms;
    if (failed->retry_after)
      retry_after_ms = failed->retry_after->count() * 1000;

    switch (failed->kind) {
      case oauth::refresh_failure_kind::invalid_grant:
        st->ctx->counters.refresh_invalid_grant++;
        audit(*st, provider, "token.refresh", "invalid_grant", failed->code);
        mark_needs_reconnect(self, st, slot, provider, failed->code);
        answer_waiters(
            slot, failed_reply(failure_class::blocked, "reconnect_required",
                               "the provider revoked or expired the grant (" + failed->code + ")"));
        return;
      case oauth::refresh_failure_kind::transient:
        st->ctx->counters.refresh_transient++;
        spdlog::warn("token refresh failed, will retry user={} provider={} code={}: {}", st->user,
                     provider, failed->code, failed->message);
        audit(*st, provider, "token.refresh", "transient_failure", failed->code);
        answer_waiters(slot, failed_reply(failure_class::transient, failed->code, failed->message,
                                          retry_after_ms));
        return;
      case oauth::refresh_failure_kind::permanent:
      case oauth::refresh_failure_kind::unsupported_token_type:
        st->ctx->counters.refresh_permanent++;
        spdlog::error(
            "token refresh rejected user={} provider={} code={}: {} (check the "
            "provider's client credentials and configuration)",
            st->user, provider, failed->code, failed->message);
        audit(*st, provider, "token.refresh", "failed", failed->code);
        answer_waiters(slot, failed_reply(failure_class::permanent, failed->code, failed->message));
        return;
    }
  }

  // Success. Seal and durably store a rotated refresh token before the access token is used.
  auto& tokens = std::get<oauth::token_set>(outcome);
  auto record = *slot.record;
  bool rotated = tokens.refresh_token.has_value() &&
                 !tokens.refresh_token->equals("");  // an empty value is no rotation
  if (rotated) {
    auto sealed = st->ctx->keys->seal(refresh_token_place(st->user, provider),
                                      tokens.refresh_token->reveal());
    if (!sealed) {
      answer_waiters(slot, failed_reply(failure_class::transient, sealed.error().code,
                                        "could not seal the rotated refresh token"));
      return;
    }
    record.sealed_refresh_token = std::move(sealed).value();
    record.generation += 1;
    record.rotations += 1;
  }
  if (tokens.scope)
    record.scopes = split_scopes(*tokens.scope);
  if (tokens.refresh_expires_at)
    record.refresh_expires_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                       tokens.refresh_expires_at->time_since_epoch())
                                       .count();
  auto now = now_ms();
  record.last_refresh_at_ms = now;
  record.updated_at_ms = now;

  auto batch = st->ctx->db->batch();
  batch.put_connection(record);
  auto audited = st->ctx->audit->append_to(
      batch, audit_event{st->user, "user-actor", "token.refresh", "ok", provider, "",
                         rotated ? "refresh token rotated and stored" : "refresh token kept"});
  auto committed = audited ? st->ctx->db->commit(batch) : audited;
  if (!committed) {
    // The provider may have rotated the token already; we cannot keep the new one. Say so
    // loudly: the next refresh will tell whether the grant survived.
    spdlog::error(
        "could not store the refreshed connection user={} provider={} code={}: the "
        "rotated refresh token is lost; check the data directory's disk",
        st->user, provider, committed.error().code);
    answer_waiters(slot, failed_reply(failure_class::transient, committed.error().code,
                                      "could not store the refreshed connection"));
    return;
  }
  slot.record = record;
  st->ctx->counters.refresh_ok++;
  if (rotated)
    st->ctx->counters.refresh_rotated++;

  auto expires_at = tokens.access_expires_at
                        ? std::chrono::duration_cast<std::chrono::milliseconds>(
                              tokens.access_expires_at->time_since_epoch())
                              .count()
                        : now + unknown_lifetime_ms;
  slot.token = cached_token{tokens.access_token, expires_at};
  spdlog::info("token refreshed user={} provider={} rotated={} expires_in_s={}", st->user, provider,
               rotated, (expires_at - now) / 1000);

  token_reply ok;
  ok.ok = true;
  ok.access_token = tokens.access_token;
  answer_waiters(slot, ok);
}

void start_refresh(caf::event_based_actor* self, const state_ptr& st, const std::string& provider) {
  auto& slot = st->slots[provider];
  auto& record = *slot.record;
  auto fail_all = [&](failure_class kind, const failure& f) {
    answer_waiters(slot, failed_reply(kind, f.code, f.message));
  };

  // A refresh token past its stated expiry is dead: do not call the provider
  // (tests/cases/case-09.json).
  if (record.refresh_expires_at_ms && *record.refresh_expires_at_ms <= now_ms()) {
    mark_needs_reconnect(self, st, slot, provider, "refresh_token_expired");
    fail_all(failure_class::blocked,
             make_failure("reconnect_required", "the refresh token has expired"));
    return;
  }

  auto provider_record = st->ctx->db->get_provider(provider);
  if (!provider_record || !provider_record.value()) {
    fail_all(failure_class::permanent,
             provider_record ? make_failure("unknown_provider", "provider is not registered")
                             : provider_record.error());
    return;
  }
  auto& prov = *provider_record.value();
  auto method = oauth::parse_client_auth_method(prov.auth_method);
  auto client_secret = st->ctx->keys->open(
      seal_context{provider_key_owner(), provider, "client_secret"}, prov.sealed_client_secret);
  auto refresh_token =
      st->ctx->keys->open(refresh_token_place(st->user, provider), record.sealed_refresh_token);
  if (!method || !client_secret || !refresh_token) {
    const failure& why = !client_secret ? client_secret.error()
                         : !refresh_token
                             ? refresh_token.error()
                             : make_failure("invalid_provider", "unknown client auth method");
    spdlog::error("cannot build a refresh request user={} provider={} code={}: {}", st->user,
                  provider, why.code, why.message);
    fail_all(failure_class::permanent, why);
    return;
  }

  oauth::refresh_request_params params;
  params.token_url = prov.token_url;
  params.auth_method = *method;
  params.client_id = prov.client_id;
  params.client_secret = std::move(client_secret).value();
  params.refresh_token = std::move(refresh_token).value();
  auto request = oauth::build_refresh_request(params);
  request.timeout = st->ctx->opts.outbound_timeout;
  request.share_key = provider;

  slot.refreshing = true;
  auto generation = record.generation;
  spdlog::debug("refreshing token user={} provider={} waiters={}", st->user, provider,
                slot.waiters.size());
  self->request(st->ctx->outbound, caf::infinite, perform_atom::value, std::move(request))
      .then([self, st, provider, generation](
                http_response& reply) { finish_refresh(self, st, provider, generation, reply); },
            [self, st, provider, generation](caf::error&) {
              // The outbound pool is gone (shutdown): treat it as a call that got no response.
              http_response none;
              none.transport_error = "outbound pool unavailable";
              finish_refresh(self, st, provider, generation, none);
            });
}

caf::result<token_reply> get_token(caf::event_based_actor* self, const state_ptr& st,
                                   token_request& request) {
  auto slot_or = load_slot(*st, request.provider);
  if (!slot_or)
    return failed_reply(failure_class::transient, slot_or.error().code, slot_or.error().message);
  auto& slot = *slot_or.value();

  if (!slot.record)
    return failed_reply(failure_class::permanent, "unknown_connection",
                        "the user has no connection to this provider");
  if (slot.record->status != connection_status::active)
    return failed_reply(
        failure_class::blocked, "reconnect_required",
        "the connection needs the user to reconnect (" + slot.record->status_reason + ")");
  if (!scopes_granted(request.scopes, slot.record->scopes))
    return failed_reply(failure_class::permanent, "scope_not_granted",
                        "the task needs scopes the connection was not granted");

  // Serve from memory when the cached token has enough life left, unless the resource server
  // just refused exactly that token.
  if (slot.token) {
    bool refused = request.refused_token && slot.token->access_token == *request.refused_token;
    auto min_life =
        std::chrono::duration_cast<std::chrono::milliseconds>(st->ctx->opts.token_min_lifetime)
            .count();
    if (!refused && slot.token->expires_at_ms - now_ms() > min_life) {
      st->ctx->counters.token_cache_hits++;
      token_reply reply;
      reply.ok = true;
      reply.access_token = slot.token->access_token;
      return reply;
    }
    slot.token.reset();
  }

  // Join the refresh in flight, or start one.
  auto promise = self->make_response_promise<token_reply>();
  slot.waiters.push_back(promise);
  if (!slot.refreshing)
    start_refresh(self, st, request.provider);
  return promise;
}

connection_result put_connection(caf::event_based_actor* self, const state_ptr& st,
                                 connection_input& input) {
  auto slot_or = load_slot(*st, input.provider);
  if (!slot_or)
    return slot_or.error();
  auto& slot = *slot_or.value();

  auto sealed = st->ctx->keys->seal(refresh_token_place(st->user, input.provider),
                                    input.refresh_token.reveal());
  if (!sealed)
    return sealed.error();

  auto now = now_ms();
  bool was_blocked = slot.record && slot.record->status != connection_status::active;
  connection_record record;
  if (slot.record) {
    record.created_at_ms = slot.record->created_at_ms;
    record.generation = slot.record->generation + 1;
    record.rotations = slot.record->rotations;
  } else {
    record.created_at_ms = now;
    record.generation = 1;
  }
  record.user = st->user;
  record.provider = input.provider;
  record.sealed_refresh_token = std::move(sealed).value();
  if (input.scope) {
    record.scopes = split_scopes(*input.scope);
  } else if (auto prov = st->ctx->db->get_provider(input.provider); prov && prov.value()) {
    // RFC 6749 §5.1: an omitted scope means the requested one; the provider's configured
    // scopes are what the agent's login asked for.
    record.scopes = prov.value()->scopes;
  }
  if (input.refresh_token_expires_in)
    record.refresh_expires_at_ms = now + *input.refresh_token_expires_in * 1000;
  record.updated_at_ms = now;

  auto batch = st->ctx->db->batch();
  batch.put_connection(record);
  auto audited = st->ctx->audit->append_to(
      batch, audit_event{st->user, input.actor, "connection.stored", "ok", input.provider, "",
                         was_blocked ? "new grant replaces one that needed reconnecting" : ""});
  if (!audited)
    return audited.error();
  if (auto committed = st->ctx->db->commit(batch); !committed)
    return committed.error();

  slot.record = record;
  slot.token.reset();
  if (input.access_token && input.expires_in && *input.expires_in > 0)
    slot.token = cached_token{*input.access_token, now + *input.expires_in * 1000};
  spdlog::info("connection stored user={} provider={} by={} scopes=\"{}\"", st->user,
               input.provider, input.actor, join_scopes(record.scopes));

  if (was_blocked)
    self->send(st->ctx->scheduler, unblock_atom::value, st->user, input.provider);
  return record;
}

task_result create_task(caf::event_based_actor* self, const state_ptr& st, task_record& task) {
  auto slot_or = load_slot(*st, task.provider);
  if (!slot_or)
    return slot_or.error();
  auto& slot = *slot_or.value();

  if (!slot.record)
    return make_failure("unknown_connection",
                        "the user has no connection to provider '" + task.provider + "'");
  if (slot.record->status != connection_status::active)
    return make_failure("connection_needs_reconnect",
                        "the connection needs the user to reconnect before tasks can be added");
  if (!scopes_granted(task.scopes, slot.record->scopes))
    return make_failure("scope_not_granted",
                        "the task asks for scopes outside the connection's grant");

  // The per-user task limit counts tasks that will still run. Serialized by this actor, so
  // two concurrent requests cannot both take the last place.
  auto pending = st->ctx->db->count_active_tasks(st->user);
  if (!pending)
    return pending.error();
  if (pending.value() >= static_cast<std::size_t>(st->ctx->opts.max_tasks_per_user))
    return make_failure("task_limit_reached", "the user has " + std::to_string(pending.value()) +
                                                  " pending tasks, the configured maximum");

  auto batch = st->ctx->db->batch();
  batch.put_task(task, std::nullopt);
  auto audited = st->ctx->audit->append_to(
      batch, audit_event{st->user, "agent:" + task.agent, "task.scheduled", "ok", task.provider,
                         task.id, describe_action(task.action)});
  if (!audited)
    return audited.error();
  if (auto committed = st->ctx->db->commit(batch); !committed)
    return committed.error();

  st->ctx->counters.task_created++;
  self->send(st->ctx->scheduler, schedule_atom::value, task);
  return task;
}

}  // namespace

caf::behavior user_actor(caf::event_based_actor* self, std::string user, context_ptr ctx) {
  auto st = std::make_shared<user_state>();
  st->user = std::move(user);
  st->ctx = std::move(ctx);

  return {
      [self, st](get_token_atom, token_request& request) { return get_token(self, st, request); },
      [self, st](put_connection_atom, connection_input& input) {
        return put_connection(self, st, input);
      },
      [st](get_connection_atom, const std::string& provider) -> connection_result {
        auto slot = load_slot(*st, provider);
        if (!slot)
          return slot.error();
        if (!slot.value()->record)
          return make_failure("not_found", "no connection to provider '" + provider + "'");
        return *slot.value()->record;
      },
      [self, st](create_task_atom, task_record& task) { return create_task(self, st, task); },
      [st](provider_changed_atom, const std::string& provider) {
        if (auto it = st->slots.find(provider); it != st->slots.end())
          it->second.token.reset();
      },
  };
}

}  // namespace latchkey
