// The records Latchkey keeps in RocksDB and their encodings.
//
// Every value is a JSON object with a format version field "v" (currently 1). Sealed secrets
// appear only as base64 of the sealed bytes (see envelope.hpp); plaintext secrets and access
// tokens never appear in any record. Decoding rejects unknown versions and missing or
// mistyped fields with failure code "corrupt_record", naming the record kind only.
//
// Times are milliseconds since the Unix epoch (UTC).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "persistence/result.hpp"

namespace latchkey {

std::int64_t now_ms();

struct provider_record {
  std::string id;
  std::string token_url;
  std::string api_base_url;
  std::string client_id;
  std::string sealed_client_secret;  // sealed bytes, owner "providers"
  std::string auth_method;           // "client_secret_basic" | "client_secret_post"
  std::vector<std::string> scopes;
  std::int64_t created_at_ms = 0;
};

struct agent_record {
  std::string id;
  std::string key_hash;  // sha256 hex of the API key; the key itself is never stored
  bool all_users = false;
  std::vector<std::string> users;
  std::int64_t created_at_ms = 0;

  bool may_access(const std::string& user) const;
};

namespace connection_status {
inline constexpr const char* active = "active";
inline constexpr const char* needs_reconnect = "needs_reconnect";
}  // namespace connection_status

struct connection_record {
  std::string user;
  std::string provider;
  std::string sealed_refresh_token;  // sealed bytes, owner "user:<user>"
  std::vector<std::string> scopes;   // granted
  std::string status = connection_status::active;
  std::string status_reason;  // an error code such as "invalid_grant"; empty when active
  std::optional<std::int64_t> refresh_expires_at_ms;
  std::int64_t created_at_ms = 0;
  std::int64_t updated_at_ms = 0;
  std::optional<std::int64_t> last_refresh_at_ms;
  /// Bumped whenever a new refresh token is stored (import or rotation); lets an in-flight
  /// refresh notice that the token it sent is no longer the stored one.
  std::uint64_t generation = 0;
  std::uint64_t rotations = 0;
};

namespace task_status {
inline constexpr const char* scheduled = "scheduled";
inline constexpr const char* running = "running";
inline constexpr const char* retrying = "retrying";
inline constexpr const char* succeeded = "succeeded";
inline constexpr const char* failed = "failed";
inline constexpr const char* blocked = "blocked";
inline constexpr const char* cancelled = "cancelled";
}  // namespace task_status

/// True for statuses whose task still has a due-index entry (it will run again).
bool task_status_is_pending(const std::string& status);

struct task_action {
  std::string method;
  std::string path;
  std::vector<std::pair<std::string, std::string>> headers;
  /// The exact bytes to send (rendered from the agent's JSON when the task was accepted; the
  /// matching Content-Type is among `headers`). Absent: no body.
  std::optional<std::string> body;
};

/// "METHOD /path" of an action for audit records and logs: the query is left out, since an
/// agent may have put its own credentials there.
std::string describe_action(const task_action& action);

struct task_record {
  std::string id;
  std::string user;
  std::string provider;
  std::string agent;
  std::vector<std::string> scopes;
  task_action action;
  std::int64_t run_at_ms = 0;  // when the agent asked for it
  std::int64_t due_at_ms = 0;  // when it runs next (run_at, or a retry's time)
  std::string status = task_status::scheduled;
  int attempts = 0;
  std::string last_error;
  std::optional<int> response_status;
  std::string idempotency_key;
  std::int64_t created_at_ms = 0;
  std::int64_t updated_at_ms = 0;
};

struct audit_record {
  std::uint64_t seq = 0;  // per user, from 1
  std::int64_t at_ms = 0;
  std::string user;
  std::string actor;  // "admin", "agent:<id>", "scheduler", "user-actor"
  std::string event;  // e.g. "connection.stored", "token.refreshed", "task.attempt"
  std::string outcome;
  std::string provider;
  std::string task;
  std::string detail;     // free text from identifiers and codes only, never a secret
  std::string prev_hash;  // hex SHA-256 of the previous record of this user ("" for the first)
  std::string hash;       // hex SHA-256 over prev_hash and this record's canonical encoding
};

std::string encode(const provider_record& r);
std::string encode(const agent_record& r);
std::string encode(const connection_record& r);
std::string encode(const task_record& r);
std::string encode(const audit_record& r);

result<provider_record> decode_provider(std::string_view bytes);
result<agent_record> decode_agent(std::string_view bytes);
result<connection_record> decode_connection(std::string_view bytes);
result<task_record> decode_task(std::string_view bytes);
result<audit_record> decode_audit(std::string_view bytes);

/// The bytes an audit record's hash covers: its encoding with `hash` left empty.
std::string audit_hash_input(const audit_record& r);

}  // namespace latchkey
