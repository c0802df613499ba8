#include "net/gateway/views.hpp"

#include <boost/json.hpp>

#include "net/gateway/requests.hpp"

namespace latchkey::api {

namespace json = boost::json;

namespace {

json::value time_or_null(const std::optional<std::int64_t>& ms) {
  return ms ? json::value(format_rfc3339_ms(*ms)) : json::value(nullptr);
}

json::value string_or_null(const std::string& s) {
  return s.empty() ? json::value(nullptr) : json::value(s);
}

json::array strings(const std::vector<std::string>& items) {
  json::array out;
  for (const auto& item : items)
    out.emplace_back(item);
  return out;
}

}  // namespace

json::value connection_view(const connection_record& r) {
  return json::object{{"user", r.user},
                      {"provider", r.provider},
                      {"status", r.status},
                      {"status_reason", string_or_null(r.status_reason)},
                      {"scopes", strings(r.scopes)},
                      {"created_at", format_rfc3339_ms(r.created_at_ms)},
                      {"updated_at", format_rfc3339_ms(r.updated_at_ms)},
                      {"last_refresh_at", time_or_null(r.last_refresh_at_ms)},
                      {"refresh_token_expires_at", time_or_null(r.refresh_expires_at_ms)},
                      {"rotations", r.rotations}};
}

json::value task_view(const task_record& r) {
  json::object view{{"id", r.id},
                    {"user", r.user},
                    {"provider", r.provider},
                    {"agent", r.agent},
                    {"status", r.status},
                    {"run_at", format_rfc3339_ms(r.run_at_ms)},
                    {"attempts", r.attempts},
                    {"last_error", string_or_null(r.last_error)},
                    {"response_status",
                     r.response_status ? json::value(*r.response_status) : json::value(nullptr)},
                    {"scopes", strings(r.scopes)},
                    {"action", json::object{{"method", r.action.method}, {"path", r.action.path}}},
                    {"idempotency_key", r.idempotency_key},
                    {"created_at", format_rfc3339_ms(r.created_at_ms)},
                    {"updated_at", format_rfc3339_ms(r.updated_at_ms)}};
  if (task_status_is_pending(r.status))
    view["next_attempt_at"] = format_rfc3339_ms(r.due_at_ms);
  return view;
}

json::value audit_view(const audit_record& r) {
  return json::object{{"seq", r.seq},
                      {"at", format_rfc3339_ms(r.at_ms)},
                      {"actor", r.actor},
                      {"event", r.event},
                      {"outcome", r.outcome},
                      {"provider", string_or_null(r.provider)},
                      {"task", string_or_null(r.task)},
                      {"detail", string_or_null(r.detail)},
                      {"hash", r.hash}};
}

json::value provider_view(const provider_record& r) {
  return json::object{{"id", r.id},
                      {"token_url", r.token_url},
                      {"api_base_url", r.api_base_url},
                      {"client_id", r.client_id},
                      {"auth_method", r.auth_method},
                      {"scopes", strings(r.scopes)},
                      {"created_at", format_rfc3339_ms(r.created_at_ms)}};
}

}  // namespace latchkey::api
