// Record encodings: every field survives a round trip, and damaged or foreign bytes are
// reported as corrupt rather than half-read.

#include <gtest/gtest.h>

#include "persistence/records.hpp"

namespace latchkey {
namespace {

task_record sample_task() {
  task_record t;
  t.id = "t_0001";
  t.user = "alice";
  t.provider = "crm";
  t.agent = "bot";
  t.scopes = {"leads.write", "leads.read"};
  t.action.method = "POST";
  t.action.path = "/leads/1?x=y";
  t.action.headers = {{"Content-Type", "application/json"}, {"X-Trace", "a\"b"}};
  t.action.body = std::string("{\"note\":\"\\u00e9\\n\"}\0x", 22);
  t.run_at_ms = 1'790'000'000'123;
  t.due_at_ms = 1'790'000'005'000;
  t.status = task_status::retrying;
  t.attempts = 2;
  t.last_error = "http_503";
  t.response_status = 503;
  t.idempotency_key = "lk-t_0001-1";
  t.created_at_ms = 1;
  t.updated_at_ms = 2;
  return t;
}

// A task keeps every field, including a body with NUL and non-ASCII bytes.
TEST(records, task_round_trip_keeps_every_field) {
  auto t = sample_task();
  auto back = decode_task(encode(t));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->id, t.id);
  EXPECT_EQ(back->user, t.user);
  EXPECT_EQ(back->scopes, t.scopes);
  EXPECT_EQ(back->action.method, t.action.method);
  EXPECT_EQ(back->action.path, t.action.path);
  EXPECT_EQ(back->action.headers, t.action.headers);
  EXPECT_EQ(back->action.body, t.action.body);
  EXPECT_EQ(back->run_at_ms, t.run_at_ms);
  EXPECT_EQ(back->due_at_ms, t.due_at_ms);
  EXPECT_EQ(back->status, t.status);
  EXPECT_EQ(back->attempts, 2);
  EXPECT_EQ(back->last_error, "http_503");
  EXPECT_EQ(back->response_status, 503);
  EXPECT_EQ(back->idempotency_key, t.idempotency_key);
}

// Absent optional values stay absent.
TEST(records, task_round_trip_keeps_absent_optionals) {
  auto t = sample_task();
  t.action.body.reset();
  t.response_status.reset();
  auto back = decode_task(encode(t));
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back->action.body.has_value());
  EXPECT_FALSE(back->response_status.has_value());
}

// A connection keeps its sealed bytes exactly (binary), and its counters.
TEST(records, connection_round_trip_keeps_sealed_bytes) {
  connection_record c;
  c.user = "alice";
  c.provider = "crm";
  c.sealed_refresh_token = std::string("\x01\x00\xff\x10 sealed", 11);
  c.scopes = {"a", "b"};
  c.status = connection_status::needs_reconnect;
  c.status_reason = "invalid_grant";
  c.refresh_expires_at_ms = 5;
  c.last_refresh_at_ms = 6;
  c.generation = 7;
  c.rotations = 3;
  auto back = decode_connection(encode(c));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->sealed_refresh_token, c.sealed_refresh_token);
  EXPECT_EQ(back->status, c.status);
  EXPECT_EQ(back->status_reason, c.status_reason);
  EXPECT_EQ(back->refresh_expires_at_ms, 5);
  EXPECT_EQ(back->last_refresh_at_ms, 6);
  EXPECT_EQ(back->generation, 7u);
  EXPECT_EQ(back->rotations, 3u);
}

// Providers, agents and audit records round-trip too.
TEST(records, provider_agent_audit_round_trip) {
  provider_record p{"crm",        "https://t",          "https://a/api", "cid",
                    "sealed\x02", "client_secret_post", {"x"},           9};
  auto pb = decode_provider(encode(p));
  ASSERT_TRUE(pb.ok());
  EXPECT_EQ(pb->sealed_client_secret, p.sealed_client_secret);
  EXPECT_EQ(pb->auth_method, p.auth_method);

  agent_record a{"bot", "abc123", false, {"alice", "bob"}, 4};
  auto ab = decode_agent(encode(a));
  ASSERT_TRUE(ab.ok());
  EXPECT_EQ(ab->users, a.users);
  EXPECT_TRUE(ab->may_access("bob"));
  EXPECT_FALSE(ab->may_access("carol"));

  audit_record r;
  r.seq = 3;
  r.user = "alice";
  r.event = "token.refresh";
  r.hash = "h";
  auto rb = decode_audit(encode(r));
  ASSERT_TRUE(rb.ok());
  EXPECT_EQ(rb->seq, 3u);
  EXPECT_EQ(rb->event, r.event);
}

// Garbage, another kind's record, a wrong version and a missing field are all corrupt.
TEST(records, decode_fails_on_damaged_input) {
  EXPECT_EQ(decode_task("not json").error().code, "corrupt_record");
  EXPECT_EQ(decode_task("[]").error().code, "corrupt_record");
  auto text = encode(sample_task());
  EXPECT_FALSE(decode_task(text.substr(0, text.size() / 2)).ok());
  auto v2 = text;
  v2.replace(v2.find("\"v\":1"), 5, "\"v\":2");
  EXPECT_FALSE(decode_task(v2).ok());
  EXPECT_FALSE(decode_connection(text).ok());  // a task is not a connection
  auto missing = text;
  missing.replace(missing.find("\"status\""), 8, "\"statux\"");
  EXPECT_FALSE(decode_task(missing).ok());
}

// Audit and log descriptions of an action leave its query out.
TEST(records, action_description_drops_the_query) {
  task_action action{"POST", "/leads/1?api_key=agent-secret", {}, std::nullopt};
  EXPECT_EQ(describe_action(action), "POST /leads/1");
  action.path = "/plain";
  EXPECT_EQ(describe_action(action), "POST /plain");
}

// Only scheduled, running and retrying tasks will run again.
TEST(records, pending_statuses_are_the_ones_that_run_again) {
  EXPECT_TRUE(task_status_is_pending(task_status::scheduled));
  EXPECT_TRUE(task_status_is_pending(task_status::running));
  EXPECT_TRUE(task_status_is_pending(task_status::retrying));
  for (auto s :
       {task_status::succeeded, task_status::failed, task_status::blocked, task_status::cancelled})
    EXPECT_FALSE(task_status_is_pending(s));
}

}  // namespace
}  // namespace latchkey
