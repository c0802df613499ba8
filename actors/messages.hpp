// Atoms and message types exchanged between Latchkey's actors inside one node.
//
// Message types that carry secrets (tokens, outbound requests) are marked
// CAF_ALLOW_UNSAFE_MESSAGE_TYPE: they never leave the process, and CAF can neither serialize
// nor print their contents (its tracing shows a placeholder). Failures travel as values
// (latchkey::failure inside the reply), never as exceptions.
#pragma once

#include <caf/all.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "net/http_types.hpp"
#include "persistence/records.hpp"
#include "persistence/result.hpp"
#include "persistence/secret.hpp"

namespace latchkey {

// users registry
using lookup_atom = caf::atom_constant<caf::atom("lookup")>;
// users registry and user actors: a provider's settings were replaced
using provider_changed_atom = caf::atom_constant<caf::atom("provchg")>;
// user actor
using put_connection_atom = caf::atom_constant<caf::atom("putconn")>;
using get_connection_atom = caf::atom_constant<caf::atom("getconn")>;
using get_token_atom = caf::atom_constant<caf::atom("gettoken")>;
using create_task_atom = caf::atom_constant<caf::atom("mktask")>;
// scheduler
using schedule_atom = caf::atom_constant<caf::atom("schedule")>;
using cancel_task_atom = caf::atom_constant<caf::atom("cancel")>;
using block_atom = caf::atom_constant<caf::atom("block")>;
using unblock_atom = caf::atom_constant<caf::atom("unblock")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
// run actor
using run_atom = caf::atom_constant<caf::atom("run")>;
// outbound pool
using perform_atom = caf::atom_constant<caf::atom("perform")>;

/// How a failure should be handled by whoever waits on it.
enum class failure_class {
  transient,  // retry later with backoff
  permanent,  // this run fails; retrying will not help
  blocked,    // the connection needs the user to reconnect
};

/// A connection as an agent hands it over (PUT .../connections/{provider}).
struct connection_input {
  std::string provider;
  secret_string refresh_token;
  std::optional<secret_string> access_token;
  std::optional<std::int64_t> expires_in;
  std::optional<std::int64_t> refresh_token_expires_in;
  std::optional<std::string> scope;
  std::string actor;  // who asked, for the audit record
};

/// A run's request for an access token.
struct token_request {
  std::string provider;
  std::vector<std::string> scopes;
  std::string task;  // for audit records
  /// The token the resource server just refused (HTTP 401): refresh unless the cached token
  /// already differs from it.
  std::optional<secret_string> refused_token;
};

struct token_reply {
  bool ok = false;
  secret_string access_token;  // when ok
  failure_class kind = failure_class::transient;
  std::string code;
  std::string message;
  std::optional<std::int64_t> retry_after_ms;
};

/// What one attempt of a task came to.
struct run_outcome {
  enum kind_t { succeeded, failed, transient, blocked } kind = transient;
  std::optional<int> response_status;
  std::string code;  // empty on success
  std::optional<std::int64_t> retry_after_ms;
};

using connection_result = result<connection_record>;
using task_result = result<task_record>;

}  // namespace latchkey

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(latchkey::connection_input)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(latchkey::token_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(latchkey::token_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(latchkey::run_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(latchkey::http_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(latchkey::http_response)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(latchkey::task_record)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(latchkey::connection_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(latchkey::task_result)
