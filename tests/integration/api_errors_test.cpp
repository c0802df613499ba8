// Bad input over real HTTP: each mistake gets its status and stable error code, and nothing
// is stored (checked by reading back or by repeating the request correctly).

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/integration/support/environment.hpp"

namespace latchkey::testing {
namespace {

std::string str(const json::value& v) {
  return std::string(v.as_string());
}

class api_errors : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new temp_dir("api-errors");
    server_ = new oauth_server(dir_->path());
    node_ = new daemon(dir_->path());
    node_->start();
    node_->register_provider(*server_);
    key_ = node_->create_agent("bot", "[\"alice\"]");
    auto tokens = server_->login("alice");
    auto r = node_->call(key_, "PUT", "/v1/users/alice/connections/demo",
                         "{\"refresh_token\":\"" + str(tokens["refresh_token"]) +
                             "\",\"scope\":\"openid offline_access leads.read\"}");
    ASSERT_EQ(r.status, 200) << r.raw;
  }

  static void TearDownTestSuite() {
    delete node_;
    delete server_;
    delete dir_;
  }

  // Asserts status and error code, and that the body has a message.
  static void expect_error(const reply& r, int status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r.raw;
    ASSERT_TRUE(r.body.is_object()) << r.raw;
    EXPECT_EQ(str(r.body.as_object().at("error")), code) << r.raw;
    EXPECT_TRUE(r.body.as_object().at("message").is_string());
  }

  static std::size_t task_count() {
    auto r = node_->call(key_, "GET", "/v1/users/alice/tasks");
    return r.body.as_object().at("tasks").as_array().size();
  }

  static inline temp_dir* dir_ = nullptr;
  static inline oauth_server* server_ = nullptr;
  static inline daemon* node_ = nullptr;
  static inline std::string key_;
};

const std::string good_action = R"("action":{"method":"GET","path":"/leads"})";

// Malformed JSON is 400 invalid_json and creates no task.
TEST_F(api_errors, malformed_json_is_rejected) {
  expect_error(node_->call(key_, "POST", "/v1/users/alice/tasks", "{\"provider\":"), 400,
               "invalid_json");
  expect_error(node_->call(key_, "POST", "/v1/users/alice/tasks", "[1,2]"), 400, "invalid_json");
  EXPECT_EQ(task_count(), 0u);
}

// Wrong types and missing fields are 400 invalid_request.
TEST_F(api_errors, wrong_types_are_rejected) {
  expect_error(node_->call(key_, "POST", "/v1/users/alice/tasks",
                           R"({"provider":7,"delay_seconds":1,)" + good_action + "}"),
               400, "invalid_request");
  expect_error(node_->call(key_, "POST", "/v1/users/alice/tasks",
                           R"({"provider":"demo","delay_seconds":"soon",)" + good_action + "}"),
               400, "invalid_request");
  expect_error(node_->call(key_, "POST", "/v1/users/alice/tasks",
                           R"({"provider":"demo","run_at":"tomorrow",)" + good_action + "}"),
               400, "invalid_request");
  expect_error(node_->call(key_, "POST", "/v1/users/alice/tasks", R"({"provider":"demo"})"), 400,
               "invalid_request");
  expect_error(
      node_->call(key_, "PUT", "/v1/users/alice/connections/demo", R"({"refresh_token":42})"), 400,
      "invalid_request");
  EXPECT_EQ(task_count(), 0u);
}

// A task for an unknown provider is 404 unknown_provider.
TEST_F(api_errors, unknown_provider_is_rejected) {
  expect_error(node_->call(key_, "POST", "/v1/users/alice/tasks",
                           R"({"provider":"nope","delay_seconds":1,)" + good_action + "}"),
               404, "unknown_provider");
  expect_error(
      node_->call(key_, "PUT", "/v1/users/alice/connections/nope", R"({"refresh_token":"x"})"), 404,
      "unknown_provider");
  EXPECT_EQ(task_count(), 0u);
}

// Paths that would leave the provider's API base URL are refused.
TEST_F(api_errors, path_escaping_base_url_is_rejected) {
  for (const char* path : {"http://evil.example/x", "//evil.example/x", "/../admin", "/a/%2e%2e/b",
                           "/a/../../b", "leads"}) {
    std::string body = R"({"provider":"demo","delay_seconds":1,"action":{"method":"GET","path":")" +
                       std::string(path) + "\"}}";
    auto r = node_->call(key_, "POST", "/v1/users/alice/tasks", body);
    EXPECT_EQ(r.status, 400) << path << " " << r.raw;
    EXPECT_EQ(str(r.body.as_object().at("error")), "path_outside_base") << path;
  }
  EXPECT_EQ(task_count(), 0u);
}

// Scopes beyond the connection's grant are refused.
TEST_F(api_errors, scopes_outside_grant_are_rejected) {
  expect_error(node_->call(key_, "POST", "/v1/users/alice/tasks",
                           R"({"provider":"demo","scopes":["leads.write"],"delay_seconds":1,)" +
                               good_action + "}"),
               403, "scope_not_granted");
  EXPECT_EQ(task_count(), 0u);
}

// No key, a wrong key, and an agent key on an admin route.
TEST_F(api_errors, missing_or_wrong_keys_are_rejected) {
  expect_error(node_->call("", "GET", "/v1/users/alice/tasks"), 401, "unauthorized");
  expect_error(node_->call("lk_not-a-key", "GET", "/v1/users/alice/tasks"), 401, "unauthorized");
  expect_error(node_->call(key_, "POST", "/v1/agents", R"({"id":"rogue","users":["*"]})"), 403,
               "forbidden");
  expect_error(node_->call("wrong-admin-key-000", "POST", "/v1/providers", "{}"), 401,
               "unauthorized");
  // Nothing was created: the same agent id is still free.
  EXPECT_EQ(node_->admin("POST", "/v1/agents", R"({"id":"rogue","users":["bob"]})").status, 201);
}

// An agent reaching for another user's data is 403, on every user route.
TEST_F(api_errors, other_users_data_is_forbidden) {
  expect_error(node_->call(key_, "GET", "/v1/users/bob/tasks"), 403, "forbidden");
  expect_error(node_->call(key_, "GET", "/v1/users/bob/connections/demo"), 403, "forbidden");
  expect_error(
      node_->call(key_, "PUT", "/v1/users/bob/connections/demo", R"({"refresh_token":"x"})"), 403,
      "forbidden");
  expect_error(node_->call(key_, "POST", "/v1/users/bob/tasks",
                           R"({"provider":"demo","delay_seconds":1,)" + good_action + "}"),
               403, "forbidden");
  expect_error(node_->call(key_, "GET", "/v1/users/bob/audit"), 403, "forbidden");
}

// A 2 MiB body is 413 payload_too_large and stores nothing.
TEST_F(api_errors, oversized_body_is_rejected) {
  std::string body = R"({"id":"big","users":["*"],"pad":")" + std::string(2 << 20, 'a') + "\"}";
  expect_error(node_->admin("POST", "/v1/agents", body), 413, "payload_too_large");
  EXPECT_EQ(node_->admin("POST", "/v1/agents", R"({"id":"big","users":["*"]})").status, 201);
}

// Duplicates conflict; unknown tasks are 404; a finished task cannot be cancelled twice.
TEST_F(api_errors, conflicts_and_unknown_ids) {
  auto provider = node_->admin("POST", "/v1/providers",
                               R"({"id":"demo","token_url":"http://127.0.0.1:1/t",)"
                               R"("api_base_url":"http://127.0.0.1:1/a","client_id":"c",)"
                               R"("client_secret":"s"})");
  expect_error(provider, 409, "already_exists");
  expect_error(node_->call(key_, "GET", "/v1/users/alice/tasks/t_missing"), 404, "not_found");

  auto created = node_->call(key_, "POST", "/v1/users/alice/tasks",
                             R"({"provider":"demo","delay_seconds":3600,)" + good_action + "}");
  ASSERT_EQ(created.status, 201);
  auto id = str(created.body.as_object().at("id"));
  EXPECT_EQ(node_->call(key_, "DELETE", "/v1/users/alice/tasks/" + id).status, 200);
  expect_error(node_->call(key_, "DELETE", "/v1/users/alice/tasks/" + id), 409, "task_finished");
  EXPECT_EQ(
      str(node_->call(key_, "GET", "/v1/users/alice/tasks/" + id).body.as_object().at("status")),
      "cancelled");
}

// The per-user task limit refuses the next task, and frees a place when one is cancelled.
TEST_F(api_errors, task_limit_refuses_then_frees_a_place) {
  temp_dir dir("task-limit");
  daemon node(dir.path(), {"--max-tasks-per-user=2"});
  node.start();
  node.register_provider(*server_);
  auto key = node.create_agent("bot");
  auto tokens = server_->login("carol");
  ASSERT_EQ(node.call(key, "PUT", "/v1/users/carol/connections/demo",
                      "{\"refresh_token\":\"" + str(tokens["refresh_token"]) + "\"}")
                .status,
            200);
  auto task = R"({"provider":"demo","delay_seconds":3600,)" + good_action + "}";
  std::string first;
  for (int i = 0; i < 2; ++i) {
    auto r = node.call(key, "POST", "/v1/users/carol/tasks", task);
    ASSERT_EQ(r.status, 201) << r.raw;
    first = str(r.body.as_object().at("id"));
  }
  expect_error(node.call(key, "POST", "/v1/users/carol/tasks", task), 409, "task_limit_reached");
  EXPECT_EQ(node.call(key, "DELETE", "/v1/users/carol/tasks/" + first).status, 200);
  EXPECT_EQ(node.call(key, "POST", "/v1/users/carol/tasks", task).status, 201);
}

// PUT replaces a provider (secret rotation) but only an existing one, under its own id.
TEST_F(api_errors, provider_replace_rules) {
  std::string body = R"({"id":"demo","token_url":")" + server_->token_url() +
                     R"(","api_base_url":")" + server_->resource_base() +
                     R"(","client_id":"latchkey-basic","client_secret":")" +
                     server_->client_secret("latchkey-basic") + R"("})";
  EXPECT_EQ(node_->admin("PUT", "/v1/providers/demo", body).status, 200);
  expect_error(node_->admin("PUT", "/v1/providers/other", body), 400, "invalid_request");
  std::string other = body;
  other.replace(other.find("\"demo\""), 6, "\"ghost\"");
  expect_error(node_->admin("PUT", "/v1/providers/ghost", other), 404, "unknown_provider");
  expect_error(node_->call(key_, "PUT", "/v1/providers/demo", body), 403, "forbidden");
}

// Bodies that are not declared as JSON are refused with 415, whatever their size.
TEST_F(api_errors, non_json_content_type_is_415) {
  httplib::Client client(node_->base());
  httplib::Headers headers{{"Authorization", "Bearer " + node_->admin_key()}};
  auto r = client.Post("/v1/agents", headers, R"({"id":"form","users":["*"]})",
                       "application/x-www-form-urlencoded");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 415);
  EXPECT_NE(r->body.find("unsupported_media_type"), std::string::npos);
  // Not stored: the id is still free.
  EXPECT_EQ(node_->admin("POST", "/v1/agents", R"({"id":"form","users":["*"]})").status, 201);
}

// Sends `request` in one write on a fresh loopback connection and returns all it reads back.
// Used where httplib's client would race a server that answers before the body is sent.
std::string raw_exchange(const std::string& base, const std::string& request) {
  auto port = std::stoi(base.substr(base.rfind(':') + 1));
  int sock = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  if (connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      send(sock, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    timeval timeout{5, 0};
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    char chunk[4096];
    for (ssize_t n; (n = recv(sock, chunk, sizeof chunk, 0)) > 0;)
      reply.append(chunk, static_cast<std::size_t>(n));
  }
  close(sock);
  return reply;
}

// A chunked body (no Content-Length to check) is refused before it is read.
TEST_F(api_errors, chunked_body_is_411) {
  std::string body = R"({"id":"chunky","users":["*"]})";
  char size[16];
  std::snprintf(size, sizeof size, "%zx", body.size());
  auto reply = raw_exchange(node_->base(),
                            "POST /v1/agents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Authorization: Bearer " +
                                node_->admin_key() +
                                "\r\nContent-Type: application/json\r\n"
                                "Transfer-Encoding: chunked\r\nConnection: close"
                                "\r\n\r\n" +
                                size + "\r\n" + body + "\r\n0\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.1 411", 0), 0u) << reply;
  EXPECT_NE(reply.find("length_required"), std::string::npos);
  EXPECT_EQ(node_->admin("POST", "/v1/agents", R"({"id":"chunky","users":["*"]})").status, 201);
}

// Media types are matched case-insensitively with parameters; bodiless requests need none.
TEST_F(api_errors, json_media_type_rules) {
  httplib::Client client(node_->base());
  httplib::Headers headers{{"Authorization", "Bearer " + node_->admin_key()}};
  auto upper = client.Post("/v1/agents", headers, R"({"id":"mt1","users":["*"]})",
                           "Application/JSON; charset=utf-8");
  ASSERT_TRUE(upper);
  EXPECT_EQ(upper->status, 201);
  auto suffixed =
      client.Post("/v1/agents", headers, R"({"id":"mt2","users":["*"]})", "application/jsonx");
  ASSERT_TRUE(suffixed);
  EXPECT_EQ(suffixed->status, 415);
  auto health = client.Get("/healthz", {{"Content-Type", "text/plain"}});
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

// "." and ".." are not user ids, also percent-encoded.
TEST_F(api_errors, dot_segments_are_not_user_ids) {
  expect_error(node_->call(key_, "GET", "/v1/users/../tasks"), 400, "invalid_request");
  expect_error(node_->call(key_, "GET", "/v1/users/%2e%2e/tasks"), 400, "invalid_request");
}

// A revoked agent key stops working at once; revoking twice is 404.
TEST_F(api_errors, revoked_agent_key_is_refused) {
  auto key = node_->create_agent("short-lived", "[\"alice\"]");
  EXPECT_EQ(node_->call(key, "GET", "/v1/users/alice/tasks").status, 200);
  EXPECT_EQ(node_->admin("DELETE", "/v1/agents/short-lived").status, 200);
  expect_error(node_->call(key, "GET", "/v1/users/alice/tasks"), 401, "unauthorized");
  expect_error(node_->admin("DELETE", "/v1/agents/short-lived"), 404, "not_found");
  expect_error(node_->call(key_, "DELETE", "/v1/agents/bot"), 403, "forbidden");
}

// Unknown routes answer with the same JSON error shape.
TEST_F(api_errors, unknown_route_is_json_404) {
  expect_error(node_->call(key_, "GET", "/v2/anything"), 404, "not_found");
}

}  // namespace
}  // namespace latchkey::testing
