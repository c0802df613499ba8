// A scripted OAuth provider for integration tests: one httplib::Server on 127.0.0.1 (port
// picked by the system) serving a token endpoint (POST /token) and a resource API (/api/...).
// It records every request it receives (method, path, headers, body, time of receipt) and
// answers each one by a rule the test sets, so a test can replay a provider's exact replies
// from a bug report and then check what latchkeyd sent.
#pragma once

#include <httplib.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace latchkey::testing {

/// One request as the mock received it.
struct recorded_request {
  std::string method;
  std::string path;   // without the query
  std::string query;  // raw, without '?'; empty when none
  httplib::Headers headers;
  std::string body;
  std::chrono::system_clock::time_point at;  // when the handler was entered

  /// The first value of header `name` (case-insensitive), or "" when absent.
  std::string header(const std::string& name) const;
  /// The decoded value of `name` in an application/x-www-form-urlencoded body.
  std::optional<std::string> form(const std::string& name) const;
  /// The token of "Authorization: Bearer <token>", or "" when the header is not Bearer.
  std::string bearer() const;
};

/// What the mock answers.
struct scripted_reply {
  int status = 200;
  /// Sent as Content-Type unless empty (then no Content-Type header is sent).
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  /// Slept after the rule ran and before the reply is sent.
  std::chrono::milliseconds delay{0};
};

/// application/x-www-form-urlencoded decoding of one name or value ('+' is a space).
std::string form_decode(std::string_view text);

class mock_provider {
 public:
  /// `index` counts the requests of that kind so far (0 for the first).
  using rule = std::function<scripted_reply(const recorded_request& request, std::size_t index)>;

  /// Starts serving; API requests get 200 {"ok":true} and token requests 500 until a rule is
  /// set.
  mock_provider();
  ~mock_provider();
  mock_provider(const mock_provider&) = delete;
  mock_provider& operator=(const mock_provider&) = delete;

  /// Rules run one at a time (under the mock's lock), so they may keep plain state.
  void on_token(rule r);
  void on_api(rule r);

  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string token_url() const { return base() + "/token"; }
  std::string api_base_url() const { return base() + "/api"; }

  std::vector<recorded_request> token_requests() const;
  std::vector<recorded_request> api_requests() const;
  /// Requests to any other path (answered 404).
  std::vector<recorded_request> other_requests() const;
  std::size_t token_count() const;
  std::size_t api_count() const;

  /// Waits until at least `n` token requests were received; false on timeout.
  bool wait_token_count(std::size_t n, std::chrono::milliseconds timeout) const;

 private:
  enum class kind { token, api, other };
  void handle(kind which, const httplib::Request& req, httplib::Response& res);

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;

  mutable std::mutex mutex_;
  rule token_rule_;
  rule api_rule_;
  std::vector<recorded_request> token_log_, api_log_, other_log_;
};

}  // namespace latchkey::testing
