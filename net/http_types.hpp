// Plain HTTP request and response values exchanged with the outbound pool. Outbound requests
// often carry secrets (an Authorization header, a refresh token in a form body), so both types
// wipe their header values and bodies on destruction and are never logged whole: log
// `method`, `url` and `status` only. URLs never carry secrets (RFC 6749 §3.2, RFC 6750 §2.3).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace latchkey {

using header_list = std::vector<std::pair<std::string, std::string>>;

/// Case-insensitive header lookup; the first match wins.
std::optional<std::string> find_header(const header_list& headers, std::string_view name);

struct http_request {
  std::string method;  // "GET", "POST", ...
  std::string url;     // absolute: scheme://host[:port]/path[?query]
  header_list headers;
  std::string body;
  std::chrono::milliseconds timeout{10000};
  /// At most this much of the response body is kept; the rest is read and dropped, so a
  /// provider answering with megabytes cannot grow the node's memory.
  std::size_t max_response_bytes = 1 << 20;
  /// Asked by the outbound worker right before sending (a queued call may wait a while); when
  /// it returns false the request is not sent and the response says so (`withheld`). Lets a
  /// cancel that arrives while a task waits for a worker stop its action.
  std::function<bool()> still_wanted;
  /// Calls with the same share key (a provider id) together hold at most a share of the
  /// outbound workers; empty: the URL's host is used.
  std::string share_key;

  http_request() = default;
  http_request(const http_request&) = default;
  http_request(http_request&&) = default;
  http_request& operator=(const http_request&) = default;
  http_request& operator=(http_request&&) = default;
  ~http_request();
};

struct http_response {
  /// 0 when no response arrived; `transport_error` then says why (never a secret).
  int status = 0;
  std::string transport_error;
  /// True when the request was never sent because `still_wanted` said no.
  bool withheld = false;
  header_list headers;
  std::string body;

  http_response() = default;
  http_response(const http_response&) = default;
  http_response(http_response&&) = default;
  http_response& operator=(const http_response&) = default;
  http_response& operator=(http_response&&) = default;
  ~http_response();

  bool transport_failed() const { return status == 0; }
};

}  // namespace latchkey
