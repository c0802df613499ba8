// Validation of API request bodies, without HTTP: what is accepted, what is refused and with
// which code, and how task bodies are rendered.

#include <gtest/gtest.h>

#include "net/gateway/requests.hpp"

namespace latchkey::api {
namespace {

// RFC 3339 with fractions and offsets; invalid dates are refused.
TEST(rfc3339, parses_fractions_and_offsets) {
  EXPECT_EQ(parse_rfc3339_ms("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parse_rfc3339_ms("2026-12-04T10:00:00.25Z"), 1796378400250);
  EXPECT_EQ(parse_rfc3339_ms("2026-12-04T11:00:00.250+01:00"), 1796378400250);
  EXPECT_EQ(parse_rfc3339_ms("2026-12-04T09:30:00-00:30"), 1796378400000);
  EXPECT_EQ(parse_rfc3339_ms("2024-02-29T00:00:00Z").has_value(), true);
  for (auto bad : {"2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-12-04 10:00:00Z",
                   "2026-12-04T10:00:00", "2026-12-04T10:00:00.Z", "2026-12-04T25:00:00Z",
                   "tomorrow", "", "2026-12-04T10:00:00Zjunk"})
    EXPECT_FALSE(parse_rfc3339_ms(bad).has_value()) << bad;
  EXPECT_EQ(format_rfc3339_ms(1796378400250), "2026-12-04T10:00:00.250Z");
  EXPECT_EQ(parse_rfc3339_ms(format_rfc3339_ms(123456789)), 123456789);
}

// A full task body is accepted; JSON bodies are rendered as JSON with a content type.
TEST(parse_task, accepts_a_full_task) {
  auto t = parse_task(R"({"provider":"crm","scopes":["a"],"run_at":"2026-12-04T10:00:00Z",
      "action":{"method":"post","path":"/leads","headers":{"X-A":"1"},"body":{"n":1}}})",
                      1796000000000);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->provider, "crm");
  EXPECT_EQ(t->action.method, "POST");
  EXPECT_EQ(t->action.body, R"({"n":1})");
  EXPECT_EQ(t->run_at_ms, 1796378400000);
  EXPECT_EQ(t->action.headers.back().first, "Content-Type");
  EXPECT_EQ(t->action.headers.back().second, "application/json");
}

// A string body is sent as is; delay_seconds is relative to now.
TEST(parse_task, string_body_is_sent_raw_and_delay_is_relative) {
  auto t = parse_task(R"({"provider":"crm","delay_seconds":1.5,
      "action":{"method":"PUT","path":"/x","body":"a=b&c"}})",
                      1000);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->action.body, "a=b&c");
  EXPECT_EQ(t->run_at_ms, 2500);
}

// Each malformed task is refused with a stable code.
TEST(parse_task, refuses_bad_tasks) {
  struct bad_case {
    const char* body;
    const char* code;
  } cases[] = {
      {"{", "invalid_json"},
      {"[]", "invalid_json"},
      {R"({"delay_seconds":1,"action":{"method":"GET","path":"/x"}})", "invalid_request"},
      {R"({"provider":"c","action":{"method":"GET","path":"/x"}})", "invalid_request"},
      {R"({"provider":"c","delay_seconds":1,"run_at":"2026-12-04T10:00:00Z",
           "action":{"method":"GET","path":"/x"}})",
       "invalid_request"},
      {R"({"provider":"c","delay_seconds":-1,"action":{"method":"GET","path":"/x"}})",
       "invalid_request"},
      {R"({"provider":"c","delay_seconds":1,"action":{"method":"TRACE","path":"/x"}})",
       "invalid_request"},
      {R"({"provider":"c","delay_seconds":1,"action":{"method":"GET","path":"/x",
           "headers":{"Authorization":"Bearer x"}}})",
       "invalid_request"},
      {R"({"provider":"c","delay_seconds":1,"action":{"method":"GET","path":"/x",
           "headers":{"X-A":"a\r\nb"}}})",
       "invalid_request"},
      {R"({"provider":"c","delay_seconds":1,"surprise":1,"action":{"method":"GET","path":"/x"}})",
       "invalid_request"},
      {R"({"provider":"../c","delay_seconds":1,"action":{"method":"GET","path":"/x"}})",
       "invalid_request"},
      {R"({"provider":"c","run_at":"9999-12-31T00:00:00Z","action":{"method":"GET","path":"/x"}})",
       "invalid_request"},
  };
  for (const auto& c : cases) {
    auto t = parse_task(c.body, 0);
    ASSERT_FALSE(t.ok()) << c.body;
    EXPECT_EQ(t.error().code, c.code) << c.body;
  }
}

// Connection bodies: refresh_token required, types checked, the token never in a message.
TEST(parse_connection, validates_and_never_echoes_tokens) {
  auto ok = parse_connection(R"({"refresh_token":"rt-1","access_token":"at-1","expires_in":60,
                                 "scope":"a b"})");
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok->refresh_token.equals("rt-1"));
  EXPECT_EQ(ok->expires_in, 60);
  auto bad = parse_connection(R"({"refresh_token":"rt-SECRET","expires_in":"soon"})");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message.find("rt-SECRET"), std::string::npos);
  EXPECT_FALSE(parse_connection(R"({"access_token":"x"})").ok());
  EXPECT_FALSE(parse_connection(R"({"refresh_token":"x","scope":"a \"b"})").ok());
}

// Provider bodies: URLs must be https or loopback http; auth method is one of two.
TEST(parse_provider, checks_urls_and_auth_method) {
  auto ok = parse_provider(R"({"id":"crm","token_url":"https://id.example/token",
      "api_base_url":"http://127.0.0.1:8080/api","client_id":"c","client_secret":"s",
      "auth_method":"client_secret_post","scopes":["a"]})");
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->record.auth_method, "client_secret_post");
  EXPECT_FALSE(parse_provider(R"({"id":"crm","token_url":"http://id.example/token",
      "api_base_url":"https://a/api","client_id":"c","client_secret":"s"})")
                   .ok());
  EXPECT_FALSE(parse_provider(R"({"id":"crm","token_url":"https://t","api_base_url":"https://a",
      "client_id":"c","client_secret":"s","auth_method":"private_key_jwt"})")
                   .ok());
}

// Agents: "*" alone or a list of valid user ids.
TEST(parse_agent, accepts_star_or_list) {
  EXPECT_TRUE(parse_agent(R"({"id":"a","users":["*"]})")->all_users);
  EXPECT_EQ(parse_agent(R"({"id":"a","users":["u1","u2"]})")->users.size(), 2u);
  EXPECT_FALSE(parse_agent(R"({"id":"a","users":[]})").ok());
  EXPECT_FALSE(parse_agent(R"({"id":"a","users":["*","u1"]})").ok());
  EXPECT_FALSE(parse_agent(R"({"id":"a","users":["no/slash"]})").ok());
}

}  // namespace
}  // namespace latchkey::api
