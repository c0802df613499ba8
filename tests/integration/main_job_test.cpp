// The main job end to end: a real oidc-provider on loopback with a resource API that checks
// tokens, latchkeyd as a separate process on a RocksDB directory of the test's own. Each test
// ends by scanning the data directory (SST and WAL files included) and the daemon's logs for
// every token and client secret the test used.

#include <gtest/gtest.h>

#include <thread>

#include "tests/integration/support/environment.hpp"

namespace latchkey::testing {
namespace {

using namespace std::chrono_literals;

std::string str(const json::value& v) {
  return std::string(v.as_string());
}

std::int64_t num(const json::value& v) {
  return v.as_int64();
}

class main_job : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<temp_dir>("main-job");
    server_ = std::make_unique<oauth_server>(dir_->path(), /*access_ttl_s=*/4);
    node_ = std::make_unique<daemon>(dir_->path());
    node_->start();
    node_->register_provider(*server_);
    key_ = node_->create_agent("scheduler-bot", "[\"alice\", \"bob\"]");
  }

  // Stops the daemon cleanly (so memtables reach SST files), then searches every file for
  // every secret this test handled.
  void TearDown() override {
    if (!node_)
      return;
    node_->terminate();
    std::vector<std::string> secrets = server_->issued_tokens();
    secrets.push_back(server_->client_secret("latchkey-basic"));
    secrets.push_back(server_->client_secret("latchkey-post"));
    ASSERT_GT(secrets.size(), 2u) << "the server reported no issued tokens to look for";

    // Positive control: the scan does see record contents (the SST files are not compressed
    // and the memtables were flushed), so a miss below means the secret is really absent.
    EXPECT_FALSE(files_containing(node_->data_dir(), {}, "scheduler-bot").empty());
    for (const auto& secret : secrets) {
      auto hits =
          files_containing(node_->data_dir(), {node_->log_file(), node_->stderr_file()}, secret);
      EXPECT_TRUE(hits.empty()) << "a secret of " << secret.size() << " bytes was found in "
                                << hits.front();
    }
  }

  // Logs `user` in at the OAuth server and hands the tokens to latchkeyd.
  json::object connect(const std::string& user, bool with_access_token = true) {
    auto tokens = server_->login(user);
    json::object body{{"refresh_token", tokens["refresh_token"]}, {"scope", tokens["scope"]}};
    if (with_access_token) {
      body["access_token"] = tokens["access_token"];
      body["expires_in"] = tokens["expires_in"];
    }
    auto r =
        node_->call(key_, "PUT", "/v1/users/" + user + "/connections/demo", json::serialize(body));
    EXPECT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.raw.find(str(tokens["refresh_token"])), std::string::npos);
    return tokens;
  }

  std::string schedule(const std::string& user, double delay_seconds,
                       const std::string& path = "/leads") {
    json::object body{{"provider", "demo"},
                      {"scopes", json::array{"leads.write"}},
                      {"delay_seconds", delay_seconds},
                      {"action", json::object{{"method", "POST"},
                                              {"path", path},
                                              {"body", json::object{{"note", "follow up"}}}}}};
    auto r = node_->call(key_, "POST", "/v1/users/" + user + "/tasks", json::serialize(body));
    EXPECT_EQ(r.status, 201) << r.raw;
    return str(r.body.as_object()["id"]);
  }

  json::object connection(const std::string& user) {
    return node_->call(key_, "GET", "/v1/users/" + user + "/connections/demo").body.as_object();
  }

  std::unique_ptr<temp_dir> dir_;
  std::unique_ptr<oauth_server> server_;
  std::unique_ptr<daemon> node_;
  std::string key_;
};

// A task due after the access token expired runs with a freshly minted token, and the
// provider saw the refresh token rotate.
TEST_F(main_job, task_succeeds_with_fresh_token_when_access_token_expired) {
  auto tokens = connect("alice");
  auto id = schedule("alice", 6.0);

  auto task = node_->wait_task(key_, "alice", id, {"succeeded", "failed", "blocked"});
  ASSERT_EQ(str(task["status"]), "succeeded") << json::serialize(task);
  EXPECT_EQ(num(task["response_status"]), 200);
  EXPECT_EQ(num(task["attempts"]), 1);

  auto stats = server_->stats();
  EXPECT_EQ(num(stats["token_requests"].as_object()["refresh_token"]), 1);
  EXPECT_EQ(num(stats["rotations"]), 1);

  // The API saw a token other than the expired original, with the task's Idempotency-Key.
  auto log = server_->resource_log();
  ASSERT_EQ(log.size(), 1u);
  auto entry = log[0].as_object();
  EXPECT_EQ(num(entry["status"]), 200);
  EXPECT_EQ(str(entry["idempotency_key"]), str(task["idempotency_key"]));

  auto conn = connection("alice");
  EXPECT_EQ(str(conn["status"]), "active");
  EXPECT_EQ(num(conn["rotations"]), 1);
  EXPECT_FALSE(conn["last_refresh_at"].is_null());
  EXPECT_TRUE(server_->grant_valid("alice"));

  // The outcome counters saw it too; they are for the admin only.
  auto metrics = node_->admin("GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.raw.find("latchkey_refresh_rotated_total 1\n"), std::string::npos);
  EXPECT_NE(metrics.raw.find("latchkey_tasks_succeeded_total 1\n"), std::string::npos);
  EXPECT_EQ(node_->call(key_, "GET", "/metrics").status, 403);
}

// Twenty tasks of one user due at the same instant share one refresh.
TEST_F(main_job, twenty_simultaneous_tasks_cause_one_refresh) {
  connect("alice", /*with_access_token=*/false);
  auto run_at = std::chrono::system_clock::now() + 3s;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(run_at.time_since_epoch());
  char when[64];
  auto secs = static_cast<time_t>(ms.count() / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string run_at_text =
      std::string(when) + "." + std::to_string(ms.count() % 1000 + 1000).substr(1) + "Z";

  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    json::object body{
        {"provider", "demo"},
        {"run_at", run_at_text},
        {"action", json::object{{"method", "GET"}, {"path", "/leads/" + std::to_string(i)}}}};
    auto r = node_->call(key_, "POST", "/v1/users/alice/tasks", json::serialize(body));
    ASSERT_EQ(r.status, 201) << r.raw;
    ids.push_back(str(r.body.as_object()["id"]));
  }

  for (const auto& id : ids) {
    auto task = node_->wait_task(key_, "alice", id, {"succeeded", "failed", "blocked"});
    EXPECT_EQ(str(task["status"]), "succeeded") << json::serialize(task);
  }
  auto stats = server_->stats();
  EXPECT_EQ(num(stats["token_requests"].as_object()["refresh_token"]), 1);
  EXPECT_EQ(num(stats["refresh_results"].as_object()["error"]), 0);
  auto log = server_->resource_log();
  EXPECT_EQ(log.size(), 20u);
  for (const auto& entry : log)
    EXPECT_EQ(num(entry.as_object().at("status")), 200);
  EXPECT_TRUE(server_->grant_valid("alice"));
}

// A task acknowledged with 201 survives kill -9 and runs after the restart.
TEST_F(main_job, pending_task_runs_after_kill9_and_restart) {
  connect("alice");
  auto id = schedule("alice", 3.0);
  node_->kill9();

  std::this_thread::sleep_for(4s);  // past its due time while the node is down
  node_->start();
  auto task = node_->wait_task(key_, "alice", id, {"succeeded", "failed", "blocked"});
  EXPECT_EQ(str(task["status"]), "succeeded") << json::serialize(task);

  auto log = server_->resource_log();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(str(log[0].as_object().at("idempotency_key")), str(task["idempotency_key"]));
}

// A grant revoked at the provider: the connection needs reconnecting, the tasks are blocked,
// and the provider is not called again; a new grant resumes the blocked tasks.
TEST_F(main_job, revoked_grant_blocks_tasks_and_stops_token_calls) {
  connect("alice", /*with_access_token=*/false);
  server_->revoke("alice");
  auto first = schedule("alice", 0.5);
  auto second = schedule("alice", 60.0);

  auto task = node_->wait_task(key_, "alice", first, {"succeeded", "failed", "blocked"});
  EXPECT_EQ(str(task["status"]), "blocked") << json::serialize(task);
  EXPECT_EQ(str(task["last_error"]), "reconnect_required");
  auto parked = node_->wait_task(key_, "alice", second, {"blocked"}, 5s);
  EXPECT_EQ(str(parked["status"]), "blocked");
  EXPECT_EQ(str(parked["last_error"]), "invalid_grant");

  auto conn = connection("alice");
  EXPECT_EQ(str(conn["status"]), "needs_reconnect");
  EXPECT_EQ(str(conn["status_reason"]), "invalid_grant");

  // No new task is accepted, and no further token call is made.
  json::object body{{"provider", "demo"},
                    {"delay_seconds", 0},
                    {"action", json::object{{"method", "GET"}, {"path", "/x"}}}};
  auto refused = node_->call(key_, "POST", "/v1/users/alice/tasks", json::serialize(body));
  EXPECT_EQ(refused.status, 409);
  EXPECT_EQ(str(refused.body.as_object()["error"]), "connection_needs_reconnect");
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(num(server_->stats()["token_requests"].as_object()["refresh_token"]), 1);
  EXPECT_EQ(server_->resource_log().size(), 0u);

  // The user reconnects: the overdue blocked task runs with the new grant, the other one
  // waits for its own time again.
  connect("alice");
  EXPECT_EQ(str(connection("alice")["status"]), "active");
  auto resumed = node_->wait_task(key_, "alice", first, {"succeeded", "failed"});
  EXPECT_EQ(str(resumed["status"]), "succeeded") << json::serialize(resumed);
  EXPECT_EQ(str(node_->wait_task(key_, "alice", second, {"scheduled"}, 5s)["status"]), "scheduled");
}

// The token endpoint fails twice with 500, then recovers: the task succeeds on attempt 3.
TEST_F(main_job, token_endpoint_errors_are_retried_until_it_recovers) {
  connect("alice", /*with_access_token=*/false);
  server_->fail_token(2, 500);
  auto id = schedule("alice", 0.2);

  auto task = node_->wait_task(key_, "alice", id, {"succeeded", "failed", "blocked"});
  EXPECT_EQ(str(task["status"]), "succeeded") << json::serialize(task);
  EXPECT_EQ(num(task["attempts"]), 3);
  auto stats = server_->stats();
  EXPECT_EQ(num(stats["token_requests"].as_object()["refresh_token"]), 3);
  EXPECT_EQ(str(connection("alice")["status"]), "active");
}

// A 401 from the API forces one refresh and one more try with the new token.
TEST_F(main_job, api_401_forces_one_refresh_and_one_retry) {
  connect("alice");
  server_->fail_resource(1, 401);
  auto id = schedule("alice", 0.2);

  auto task = node_->wait_task(key_, "alice", id, {"succeeded", "failed", "blocked"});
  EXPECT_EQ(str(task["status"]), "succeeded") << json::serialize(task);
  EXPECT_EQ(num(task["attempts"]), 1);
  EXPECT_EQ(num(server_->stats()["token_requests"].as_object()["refresh_token"]), 1);
  auto log = server_->resource_log();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(str(log[0].as_object().at("idempotency_key")),
            str(log[1].as_object().at("idempotency_key")));
  EXPECT_NE(str(log[0].as_object().at("token_sha256")), str(log[1].as_object().at("token_sha256")));
}

// 429 with Retry-After from the API: the retry waits at least that long and then succeeds.
TEST_F(main_job, api_429_retry_after_is_honoured) {
  connect("alice");
  server_->fail_resource(1, 429, "{\"Retry-After\":\"2\"}");
  auto id = schedule("alice", 0.2);

  auto task = node_->wait_task(key_, "alice", id, {"succeeded", "failed", "blocked"});
  EXPECT_EQ(str(task["status"]), "succeeded") << json::serialize(task);
  EXPECT_EQ(num(task["attempts"]), 2);
  auto log = server_->resource_log();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_GE(num(log[1].as_object().at("at")) - num(log[0].as_object().at("at")), 2000);
}

// An agent's audit trail names what happened and holds a valid hash chain; no token inside.
TEST_F(main_job, audit_records_every_token_use) {
  connect("alice");
  auto id = schedule("alice", 0.2);
  node_->wait_task(key_, "alice", id, {"succeeded", "failed", "blocked"});

  auto r = node_->call(key_, "GET", "/v1/users/alice/audit");
  ASSERT_EQ(r.status, 200);
  std::set<std::string> events;
  std::string prev;
  for (const auto& record : r.body.as_object()["records"].as_array())
    events.insert(str(record.as_object().at("event")));
  EXPECT_TRUE(events.count("connection.stored"));
  EXPECT_TRUE(events.count("task.scheduled"));
  EXPECT_TRUE(events.count("token.used"));
  EXPECT_TRUE(events.count("task.finished"));
}

}  // namespace
}  // namespace latchkey::testing
