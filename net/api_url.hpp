// Where a task's action may go. The action URL is the provider's api_base_url with the task's
// path appended to the base's path; anything that could leave that base is refused, so an
// access token is only ever sent to the provider's API.
#pragma once

#include <string>
#include <string_view>

#include "persistence/result.hpp"

namespace latchkey {

struct parsed_url {
  std::string scheme;  // "http" or "https", lower-case
  std::string host;    // lower-case; IPv6 without brackets
  int port = 0;        // explicit or the scheme's default
  std::string path;    // begins with '/', may be "/"
  std::string query;   // without '?', may be empty
};

/// Parses an absolute http(s) URL without userinfo or fragment. Failure code "invalid_url".
result<parsed_url> parse_url(std::string_view url);

/// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback_host(std::string_view host);

/// Validates a provider URL (token_url, api_base_url): https, or http on a loopback host.
/// Failure code "invalid_url" with a message that says which rule failed.
status check_provider_url(std::string_view url);

/// Joins base + path: "http://h/api" + "/leads?x=1" -> "http://h/api/leads?x=1". `path` must
/// start with '/', must not start with "//", must hold no scheme, backslash, control byte,
/// fragment, or "." / ".." segment (also percent-encoded: %2e, %2f, %5c), so the result always
/// stays under the base's path. Failure code "path_outside_base".
result<std::string> join_api_url(std::string_view base_url, std::string_view path);

}  // namespace latchkey
