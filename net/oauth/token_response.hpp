// Interpreting a token endpoint's reply to a refresh request (RFC 6749 §5.1, §5.2), with the
// quirks real providers show: numbers as strings, lower-case token types, form-encoded bodies,
// errors inside HTTP 200, omitted refresh tokens and scopes.
//
// Pure functions: no I/O, no logging. Failure messages never quote the body (it may hold
// tokens or an echoed secret, see tests/cases/case-23.json).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <variant>

#include "net/http_types.hpp"
#include "persistence/secret.hpp"

namespace latchkey::oauth {

using clock = std::chrono::system_clock;

/// A successful refresh.
struct token_set {
  secret_string access_token;
  /// Absent when the provider did not rotate: keep the stored refresh token (RFC 6749 §6).
  std::optional<secret_string> refresh_token;
  /// Always "Bearer": the case-insensitive type normalised (RFC 6749 §5.1, RFC 6750).
  std::string token_type = "Bearer";
  /// Absent when expires_in is missing or not a non-negative integer (number or numeric string).
  std::optional<clock::time_point> access_expires_at;
  /// From refresh_token_expires_in (GitHub Apps), when present and valid.
  std::optional<clock::time_point> refresh_expires_at;
  /// Absent when the reply has no scope: the grant is unchanged (RFC 6749 §5.1). May be "".
  std::optional<std::string> scope;
};

enum class refresh_failure_kind {
  /// The grant is dead (invalid_grant, GitHub's bad_refresh_token, ...): reconnect needed.
  invalid_grant,
  /// Worth retrying later: transport errors, 5xx, 429, 408, unparseable or incomplete 2xx.
  transient,
  /// Will not succeed by retrying but the grant may be fine (invalid_client, bad config, 4xx).
  permanent,
  /// A token of a type other than Bearer: must never be sent as Bearer.
  unsupported_token_type,
};

struct refresh_failure {
  refresh_failure_kind kind;
  /// Stable code: the OAuth error code when it is a well-formed RFC 6749 code
  /// ([A-Za-z0-9_.-]{1,64}), else e.g. "http_503", "transport_error", "malformed_response",
  /// "missing_access_token", "unsupported_token_type".
  std::string code;
  /// For people; never contains any byte of the body or of a token.
  std::string message;
  /// From a Retry-After header (delta-seconds or HTTP-date), relative to `received_at`.
  std::optional<std::chrono::seconds> retry_after;
};

using refresh_outcome = std::variant<token_set, refresh_failure>;

/// Classifies `reply` received at `received_at`. The body is parsed by Content-Type: JSON, or
/// application/x-www-form-urlencoded (GitHub without Accept: application/json); a missing or
/// unknown Content-Type tries JSON then form. A 2xx with an `error` member, or without
/// access_token, is never a success.
refresh_outcome interpret_token_response(const http_response& reply, clock::time_point received_at);

/// Parses a Retry-After value (RFC 9110 §10.2.3): delta-seconds or an IMF-fixdate HTTP-date.
/// Dates in the past give 0 s; garbage gives nullopt.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      clock::time_point now);

}  // namespace latchkey::oauth
