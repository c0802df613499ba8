#include "net/http_client.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace latchkey {
namespace {

using namespace std::chrono_literals;

// A loopback httplib server on a free port, run on its own thread for one test.
class local_server {
 public:
  local_server() {
    server_.set_keep_alive_max_count(1);
    server_.set_keep_alive_timeout(1);
  }

  ~local_server() {
    release_slow_handlers();
    server_.stop();
    if (thread_.joinable())
      thread_.join();
  }

  httplib::Server& server() { return server_; }

  void start() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 200 && !server_.is_running(); ++i)
      std::this_thread::sleep_for(5ms);
    ASSERT_TRUE(server_.is_running());
  }

  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  // Blocks a handler for up to `limit`, or until the test ends.
  void wait_in_handler(std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex_);
    released_cv_.wait_for(lock, limit, [this] { return released_; });
  }

 private:
  void release_slow_handlers() {
    {
      std::lock_guard lock(mutex_);
      released_ = true;
    }
    released_cv_.notify_all();
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mutex_;
  std::condition_variable released_cv_;
  bool released_ = false;
};

http_request make_request(std::string method, std::string url) {
  http_request request;
  request.method = std::move(method);
  request.url = std::move(url);
  request.timeout = 2000ms;
  return request;
}

// A port nothing listens on: bound once, then closed.
int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// A GET returns status, headers and body; the query reaches the server unchanged.
TEST(perform, returns_response_when_get_succeeds) {
  local_server srv;
  srv.server().Get("/v1/me", [](const httplib::Request& req, httplib::Response& res) {
    res.set_header("X-Seen-Query", req.get_param_value("q"));
    res.set_header("X-Seen-Auth", req.get_header_value("Authorization"));
    res.set_content(R"({"ok":true})", "application/json");
  });
  srv.start();

  auto request = make_request("GET", srv.url("/v1/me?q=a+b%2Bc"));
  request.headers.emplace_back("Authorization", "Bearer at-1");
  const auto response = perform(request);
  EXPECT_EQ(response.status, 200);
  EXPECT_TRUE(response.transport_error.empty());
  EXPECT_EQ(response.body, R"({"ok":true})");
  EXPECT_EQ(find_header(response.headers, "content-type"), "application/json");
  EXPECT_EQ(find_header(response.headers, "X-Seen-Query"), "a b+c");
  EXPECT_EQ(find_header(response.headers, "X-Seen-Auth"), "Bearer at-1");
}

// A POST sends its body with the caller's Content-Type, exactly once.
TEST(perform, sends_single_content_type_when_post_has_one) {
  local_server srv;
  srv.server().Post("/token", [](const httplib::Request& req, httplib::Response& res) {
    res.set_header("X-Content-Type-Count",
                   std::to_string(req.get_header_value_count("Content-Type")));
    res.set_header("X-Content-Type", req.get_header_value("Content-Type"));
    res.set_header("X-Accept", req.get_header_value("Accept"));
    res.set_content(req.body, "text/plain");
  });
  srv.start();

  auto request = make_request("POST", srv.url("/token"));
  request.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
  request.headers.emplace_back("Accept", "application/json");
  request.body = "grant_type=refresh_token&refresh_token=rt";
  const auto response = perform(request);
  ASSERT_EQ(response.status, 200) << response.transport_error;
  EXPECT_EQ(response.body, request.body);
  EXPECT_EQ(find_header(response.headers, "X-Content-Type-Count"), "1");
  EXPECT_EQ(find_header(response.headers, "X-Content-Type"), "application/x-www-form-urlencoded");
  EXPECT_EQ(find_header(response.headers, "X-Accept"), "application/json");
}

// The caller's lower-case content-type header also counts as the only one.
TEST(perform, sends_single_content_type_when_header_name_is_lower_case) {
  local_server srv;
  srv.server().Put("/x", [](const httplib::Request& req, httplib::Response& res) {
    res.set_content(std::to_string(req.get_header_value_count("Content-Type")) + " " +
                        req.get_header_value("Content-Type"),
                    "text/plain");
  });
  srv.start();

  auto request = make_request("PUT", srv.url("/x"));
  request.headers.emplace_back("content-type", "application/json");
  request.body = "{}";
  EXPECT_EQ(perform(request).body, "1 application/json");
}

// Every supported method reaches the server as that method.
TEST(perform, uses_method_when_method_is_supported) {
  local_server srv;
  const auto echo = [](const httplib::Request& req, httplib::Response& res) {
    res.set_header("X-Method", req.method);
    res.set_content(req.method + ":" + req.body, "text/plain");
  };
  srv.server().Get("/m", echo);
  srv.server().Post("/m", echo);
  srv.server().Put("/m", echo);
  srv.server().Patch("/m", echo);
  srv.server().Delete("/m", echo);
  srv.start();

  for (const char* method : {"GET", "POST", "PUT", "PATCH", "DELETE"}) {
    auto request = make_request(method, srv.url("/m"));
    if (std::string(method) != "GET") {
      request.body = "b";
      request.headers.emplace_back("Content-Type", "text/plain");
    }
    const auto response = perform(request);
    EXPECT_EQ(response.status, 200) << method << " " << response.transport_error;
    EXPECT_EQ(find_header(response.headers, "X-Method"), method);
  }

  // HEAD: headers only (httplib serves HEAD from the GET handler).
  const auto head = perform(make_request("HEAD", srv.url("/m")));
  EXPECT_EQ(head.status, 200) << head.transport_error;
  EXPECT_EQ(find_header(head.headers, "X-Method"), "HEAD");
  EXPECT_TRUE(head.body.empty());
}

// Error statuses are responses, not transport failures.
TEST(perform, returns_status_when_server_answers_error) {
  local_server srv;
  srv.server().Post("/token", [](const httplib::Request&, httplib::Response& res) {
    res.status = 400;
    res.set_content(R"({"error":"invalid_grant"})", "application/json");
  });
  srv.start();

  const auto response = perform(make_request("POST", srv.url("/token")));
  EXPECT_EQ(response.status, 400);
  EXPECT_FALSE(response.transport_failed());
  EXPECT_EQ(response.body, R"({"error":"invalid_grant"})");
}

// A redirect is returned as is, never followed.
TEST(perform, returns_redirect_when_server_redirects) {
  local_server srv;
  std::atomic<int> target_hits = 0;
  srv.server().Post("/token", [](const httplib::Request&, httplib::Response& res) {
    res.set_redirect("/elsewhere", 307);
  });
  srv.server().Post("/elsewhere", [&](const httplib::Request&, httplib::Response& res) {
    ++target_hits;
    res.set_content("moved", "text/plain");
  });
  srv.start();

  const auto response = perform(make_request("POST", srv.url("/token")));
  EXPECT_EQ(response.status, 307);
  EXPECT_EQ(find_header(response.headers, "Location"), "/elsewhere");
  EXPECT_EQ(target_hits.load(), 0);
}

// A server slower than the timeout gives status 0 "timeout", promptly.
TEST(perform, fails_with_timeout_when_server_is_slow) {
  local_server srv;
  srv.server().Get("/slow", [&](const httplib::Request&, httplib::Response& res) {
    srv.wait_in_handler(2000ms);
    res.set_content("late", "text/plain");
  });
  srv.start();

  auto request = make_request("GET", srv.url("/slow"));
  request.timeout = 300ms;
  const auto started = std::chrono::steady_clock::now();
  const auto response = perform(request);
  const auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(response.status, 0);
  EXPECT_EQ(response.transport_error, "timeout");
  EXPECT_TRUE(response.body.empty());
  EXPECT_GE(elapsed, 290ms);
  EXPECT_LT(elapsed, 1500ms);
}

// Nobody listening: status 0 with a connection reason.
TEST(perform, fails_with_connection_error_when_port_is_closed) {
  const auto response =
      perform(make_request("GET", "http://127.0.0.1:" + std::to_string(closed_port()) + "/"));
  EXPECT_EQ(response.status, 0);
  EXPECT_EQ(response.transport_error, "connection failed");
}

// Invalid URLs never reach the network.
TEST(perform, fails_with_invalid_url_when_url_is_bad) {
  for (const char* url : {"", "not a url", "ftp://127.0.0.1/", "http://u:p@127.0.0.1/",
                          "http://127.0.0.1/#frag", "http://127.0.0.1/a\r\nX: y"}) {
    const auto response = perform(make_request("GET", url));
    EXPECT_EQ(response.status, 0) << url;
    EXPECT_EQ(response.transport_error, "invalid url") << url;
  }
}

// Unknown methods and header injection attempts are refused before sending.
TEST(perform, fails_before_sending_when_method_or_header_is_invalid) {
  EXPECT_EQ(perform(make_request("TRACE", "http://127.0.0.1:1/")).transport_error,
            "unsupported method");
  EXPECT_EQ(perform(make_request("get", "http://127.0.0.1:1/")).transport_error,
            "unsupported method");

  auto injected = make_request("GET", "http://127.0.0.1:1/");
  injected.headers.emplace_back("X-A", "v\r\nX-B: injected");
  EXPECT_EQ(perform(injected).transport_error, "invalid header");

  auto bad_name = make_request("GET", "http://127.0.0.1:1/");
  bad_name.headers.emplace_back("X A", "v");
  EXPECT_EQ(perform(bad_name).transport_error, "invalid header");
}

// Framing headers from the caller are ignored: the body decides Content-Length.
TEST(perform, ignores_content_length_when_caller_sets_it) {
  local_server srv;
  srv.server().Post("/x", [](const httplib::Request& req, httplib::Response& res) {
    res.set_content(req.get_header_value("Content-Length") + ":" + req.body, "text/plain");
  });
  srv.start();

  auto request = make_request("POST", srv.url("/x"));
  request.headers.emplace_back("Content-Length", "1");
  request.headers.emplace_back("Content-Type", "text/plain");
  request.body = "hello";
  EXPECT_EQ(perform(request).body, "5:hello");
}

// An https URL to a plain-http server fails as a transport error, without throwing.
TEST(perform, fails_with_tls_error_when_server_is_not_tls) {
  local_server srv;
  srv.server().Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("plain", "text/plain");
  });
  srv.start();

  auto request = make_request("GET", "https" + srv.url("/").substr(4));
  request.timeout = 1000ms;
  const auto response = perform(request);
  EXPECT_EQ(response.status, 0);
  EXPECT_FALSE(response.transport_error.empty());
}

// A huge response body is read but only max_response_bytes of it is kept.
TEST(perform, keeps_at_most_max_response_bytes) {
  local_server srv;
  const std::string big(3 << 20, 'x');
  srv.server().Get("/big", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(big, "text/plain");
  });
  srv.start();

  http_request request;
  request.method = "GET";
  request.url = srv.url("/big");
  request.timeout = 5000ms;
  request.max_response_bytes = 1000;
  auto reply = perform(request);
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body.size(), 1000u);

  request.max_response_bytes = 8 << 20;
  EXPECT_EQ(perform(request).body.size(), big.size());
}

}  // namespace
}  // namespace latchkey
