// Validation of the HTTP API's request bodies: plain functions from JSON text to records, so
// the rules can be tested without HTTP or actors. Every failure has a stable code (the `error`
// field of the reply) and a message that names the offending field and never echoes a value
// (a field may hold a token).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "persistence/records.hpp"
#include "persistence/result.hpp"
#include "persistence/secret.hpp"

namespace latchkey::api {

/// Ids of users, providers and agents: 1-128 bytes of [A-Za-z0-9._@+-] (they appear in keys,
/// URLs and logs, so nothing that needs escaping).
bool valid_id(std::string_view id);

struct provider_input {
  provider_record record;  // without sealed_client_secret
  secret_string client_secret;
};

/// POST /v1/providers. Codes: "invalid_json", "invalid_request", "invalid_url".
result<provider_input> parse_provider(std::string_view body);

struct agent_input {
  std::string id;
  bool all_users = false;
  std::vector<std::string> users;
};

/// POST /v1/agents.
result<agent_input> parse_agent(std::string_view body);

struct connection_fields {
  secret_string refresh_token;
  std::optional<secret_string> access_token;
  std::optional<std::int64_t> expires_in;
  /// Lifetime of the refresh token itself, when the provider states one (GitHub Apps).
  std::optional<std::int64_t> refresh_token_expires_in;
  std::optional<std::string> scope;
};

/// PUT /v1/users/{user}/connections/{provider}.
result<connection_fields> parse_connection(std::string_view body);

/// POST /v1/users/{user}/tasks: fills provider, scopes, action (body rendered to bytes with a
/// Content-Type header when the agent gave none), run_at and due_at. `now_ms` resolves
/// delay_seconds. Codes: "invalid_json", "invalid_request", "path_outside_base" (checked
/// later against the provider's base URL by the caller).
result<task_record> parse_task(std::string_view body, std::int64_t now_ms);

/// Parses an RFC 3339 date-time ("2026-12-04T10:00:00Z", "...T10:00:00.250+01:00") to ms.
std::optional<std::int64_t> parse_rfc3339_ms(std::string_view text);

/// Formats ms since the epoch as RFC 3339 UTC with milliseconds ("2026-12-04T10:00:00.250Z").
std::string format_rfc3339_ms(std::int64_t ms);

}  // namespace latchkey::api
