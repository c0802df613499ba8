#include "tests/integration/support/mock_provider.hpp"

#include "net/ascii.hpp"

#include <pthread.h>
#include <signal.h>
#include <strings.h>

#include <stdexcept>

namespace latchkey::testing {

// Deliberately not net/oauth's form_urldecode: the mock checks what the product's encoder
// sent, so it must not share the product's decoding (a shared bug would cancel out).
std::string form_decode(std::string_view text) {
  using ascii::hex_value;  // a digit table, not decoding logic
  auto hex_digit = [](char c) { return hex_value(c); };
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] == '%' && i + 2 < text.size() && hex_digit(text[i + 1]) >= 0 &&
               hex_digit(text[i + 2]) >= 0) {
      out += static_cast<char>(hex_digit(text[i + 1]) * 16 + hex_digit(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::string recorded_request::header(const std::string& name) const {
  for (const auto& [key, value] : headers)
    if (key.size() == name.size() && strncasecmp(key.data(), name.data(), key.size()) == 0)
      return value;
  return {};
}

std::optional<std::string> recorded_request::form(const std::string& name) const {
  std::string_view rest = body;
  while (!rest.empty()) {
    auto amp = rest.find('&');
    auto pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    auto eq = pair.find('=');
    if (form_decode(pair.substr(0, eq)) == name)
      return eq == std::string_view::npos ? std::string{} : form_decode(pair.substr(eq + 1));
  }
  return std::nullopt;
}

std::string recorded_request::bearer() const {
  auto value = header("Authorization");
  if (value.size() < 7 || strncasecmp(value.data(), "Bearer ", 7) != 0)
    return {};
  return value.substr(7);
}

mock_provider::mock_provider() {
  token_rule_ = [](const recorded_request&, std::size_t) {
    return scripted_reply{500, "application/json", R"({"error":"server_error"})", {}, {}};
  };
  api_rule_ = [](const recorded_request&, std::size_t) {
    return scripted_reply{200, "application/json", R"({"ok":true})", {}, {}};
  };

  server_.Post("/token", [this](const httplib::Request& req, httplib::Response& res) {
    handle(kind::token, req, res);
  });
  auto api = [this](const httplib::Request& req, httplib::Response& res) {
    handle(kind::api, req, res);
  };
  const std::string api_pattern = R"(/api(/.*)?)";
  server_.Get(api_pattern, api);
  server_.Post(api_pattern, api);
  server_.Put(api_pattern, api);
  server_.Patch(api_pattern, api);
  server_.Delete(api_pattern, api);
  auto other = [this](const httplib::Request& req, httplib::Response& res) {
    handle(kind::other, req, res);
  };
  server_.Get(".*", other);
  server_.Post(".*", other);

  port_ = server_.bind_to_any_port("127.0.0.1");
  if (port_ <= 0)
    throw std::runtime_error("the mock provider cannot bind to 127.0.0.1");
  thread_ = std::thread([this] {
    // A reply written after latchkeyd gave up on it (a timeout test) must not kill the test
    // binary with SIGPIPE: httplib sends without MSG_NOSIGNAL. Blocked here, the signal is
    // blocked in every worker thread the server creates, and in no other thread or child.
    sigset_t pipe_signal;
    sigemptyset(&pipe_signal);
    sigaddset(&pipe_signal, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
    server_.listen_after_bind();
  });
  // stop() is a no-op until the accept loop runs, so do not return before it does.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!server_.is_running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

mock_provider::~mock_provider() {
  server_.stop();
  if (thread_.joinable())
    thread_.join();
}

void mock_provider::on_token(rule r) {
  std::lock_guard lock(mutex_);
  token_rule_ = std::move(r);
}

void mock_provider::on_api(rule r) {
  std::lock_guard lock(mutex_);
  api_rule_ = std::move(r);
}

void mock_provider::handle(kind which, const httplib::Request& req, httplib::Response& res) {
  recorded_request record;
  record.at = std::chrono::system_clock::now();
  record.method = req.method;
  record.path = req.path;
  if (auto q = req.target.find('?'); q != std::string::npos)
    record.query = req.target.substr(q + 1);
  record.headers = req.headers;
  record.body = req.body;

  scripted_reply reply;
  {
    std::lock_guard lock(mutex_);
    switch (which) {
      case kind::token:
        reply = token_rule_(record, token_log_.size());
        token_log_.push_back(record);
        break;
      case kind::api:
        reply = api_rule_(record, api_log_.size());
        api_log_.push_back(record);
        break;
      case kind::other:
        reply = scripted_reply{404, "application/json", R"({"error":"not_found"})", {}, {}};
        other_log_.push_back(record);
        break;
    }
  }
  if (reply.delay.count() > 0)
    std::this_thread::sleep_for(reply.delay);

  res.status = reply.status;
  for (const auto& [name, value] : reply.headers)
    res.set_header(name, value);
  if (reply.content_type.empty())
    res.body = reply.body;
  else
    res.set_content(reply.body, reply.content_type.c_str());
}

std::vector<recorded_request> mock_provider::token_requests() const {
  std::lock_guard lock(mutex_);
  return token_log_;
}

std::vector<recorded_request> mock_provider::api_requests() const {
  std::lock_guard lock(mutex_);
  return api_log_;
}

std::vector<recorded_request> mock_provider::other_requests() const {
  std::lock_guard lock(mutex_);
  return other_log_;
}

std::size_t mock_provider::token_count() const {
  std::lock_guard lock(mutex_);
  return token_log_.size();
}

std::size_t mock_provider::api_count() const {
  std::lock_guard lock(mutex_);
  return api_log_.size();
}

bool mock_provider::wait_token_count(std::size_t n, std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (token_count() >= n)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return token_count() >= n;
}

}  // namespace latchkey::testing
