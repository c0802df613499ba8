// Reference cases from real-world bug reports (tests/cases/*.json), replayed against the real
// latchkeyd process and a scripted provider (support/mock_provider) on 127.0.0.1. The mock
// answers with the replies recorded in each case, records what latchkeyd sent, and the tests
// check each case's `expected` behaviour where it is observable from outside: the provider's
// request log, the task, connection and audit views, and the daemon's files.
//
// Lifetimes are scaled down (access tokens live 2 s, Retry-After values are seconds) and the
// daemon runs with --token-min-lifetime-s=1 and a 300 ms retry base, so every test takes
// seconds.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <ctime>
#include <fstream>
#include <map>
#include <regex>
#include <thread>

#include "tests/integration/support/environment.hpp"
#include "tests/integration/support/mock_provider.hpp"

namespace latchkey::testing {
namespace {

using namespace std::chrono_literals;
using sys_clock = std::chrono::system_clock;
using std::chrono::milliseconds;

const std::set<std::string> finished{"succeeded", "failed", "blocked", "cancelled"};

std::string str(const json::value& v) {
  return std::string(v.as_string());
}

std::int64_t num(const json::value& v) {
  return v.as_int64();
}

// ---- reading the cases ---------------------------------------------------------------------

json::value load_case(const std::string& id) {
  const std::string path = std::string(LATCHKEY_CASES_DIR) + "/" + id + ".json";
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw std::runtime_error("cannot read " + path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto parsed = json::parse(text);
  if (!parsed.is_object())
    throw std::runtime_error(path + " is not a JSON object");
  return parsed;
}

// The value at a path of member names, e.g. at(c, {"input", "stored_before", "refresh_token"}).
// Takes a json::value only: an object argument would bind to a temporary and dangle.
const json::value& at(const json::value& root, std::initializer_list<std::string_view> path) {
  const json::value* v = &root;
  for (auto name : path)
    v = &v->as_object().at(name);
  return *v;
}

std::string text_at(const json::value& root, std::initializer_list<std::string_view> path) {
  return str(at(root, path));
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

// A provider reply as a case records it ({status, headers, body | body_raw}), optionally with
// its JSON body edited first (shorter lifetimes, numbered tokens).
scripted_reply reply_from_case(const json::value& recorded,
                               const std::function<void(json::object&)>& edit = {}) {
  const auto& obj = recorded.as_object();
  scripted_reply out;
  out.status = static_cast<int>(num(obj.at("status")));
  out.content_type.clear();
  if (const auto* headers = obj.if_contains("headers"))
    for (const auto& h : headers->as_object()) {
      if (iequals(h.key(), "Content-Type"))
        out.content_type = str(h.value());
      else
        out.headers.emplace_back(std::string(h.key()), str(h.value()));
    }
  if (const auto* raw = obj.if_contains("body_raw")) {
    out.body = str(*raw);
  } else if (const auto* body = obj.if_contains("body")) {
    if (body->is_string()) {
      out.body = str(*body);
    } else {
      json::value copy = *body;
      if (edit)
        edit(copy.as_object());
      out.body = json::serialize(copy);
    }
  }
  return out;
}

scripted_reply json_reply(int status, const json::object& body,
                          std::chrono::milliseconds delay = 0ms) {
  scripted_reply out;
  out.status = status;
  out.body = json::serialize(body);
  out.delay = delay;
  return out;
}

scripted_reply invalid_grant_reply() {
  return json_reply(400, json::object{{"error", "invalid_grant"}});
}

// ---- time ------------------------------------------------------------------------------------

std::string rfc3339(sys_clock::time_point t) {
  auto ms = std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
  auto secs = static_cast<time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char text[40];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  char millis[8];
  std::snprintf(millis, sizeof millis, ".%03lldZ", static_cast<long long>(ms % 1000));
  return std::string(text) + millis;
}

// "2026-12-04T10:00:00.123Z" (the form latchkeyd's views use) in milliseconds since the epoch.
std::int64_t parse_view_time(const std::string& text) {
  std::tm tm{};
  int millis = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
                  &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &millis) != 7)
    throw std::runtime_error("not a view time: " + text);
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<std::int64_t>(timegm(&tm)) * 1000 + millis;
}

// IMF-fixdate (RFC 9110 §5.6.7), the HTTP-date form of Retry-After.
std::string http_date(sys_clock::time_point t) {
  auto secs = sys_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char text[64];
  std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return text;
}

std::int64_t ms_between(sys_clock::time_point from, sys_clock::time_point to) {
  return std::chrono::duration_cast<milliseconds>(to - from).count();
}

std::vector<std::string> refresh_tokens_sent(const std::vector<recorded_request>& requests) {
  std::vector<std::string> out;
  for (const auto& r : requests)
    out.push_back(r.form("refresh_token").value_or("<none>"));
  return out;
}

std::vector<std::string> bearers_sent(const std::vector<recorded_request>& requests) {
  std::vector<std::string> out;
  for (const auto& r : requests)
    out.push_back(r.bearer());
  return out;
}

// ---- the fixture ------------------------------------------------------------------------------

class provider_cases : public ::testing::Test {
 protected:
  static constexpr const char* provider_id = "mock";

  void SetUp() override {
    dir_ = std::make_unique<temp_dir>("provider-cases");
    mock_ = std::make_unique<mock_provider>();
  }

  // The daemon goes first, so it makes no call to a mock that is gone.
  void TearDown() override {
    node_.reset();
    mock_.reset();
    dir_.reset();
  }

  // Starts latchkeyd, registers the mock as provider_id and creates an agent for all users.
  void start_daemon(std::vector<std::string> extra_args = {},
                    const std::string& client_secret = "mock-client-secret",
                    const std::string& auth_method = "client_secret_basic") {
    node_ = std::make_unique<daemon>(dir_->path(), std::move(extra_args));
    node_->start();
    register_provider(provider_id, client_secret, auth_method);
    key_ = node_->create_agent("case-bot");
  }

  void register_provider(const std::string& id, const std::string& client_secret,
                         const std::string& auth_method) {
    json::object body{{"id", id},
                      {"token_url", mock_->token_url()},
                      {"api_base_url", mock_->api_base_url()},
                      {"client_id", "latchkey-test-client"},
                      {"client_secret", client_secret},
                      {"auth_method", auth_method}};
    auto r = node_->admin("POST", "/v1/providers", json::serialize(body));
    ASSERT_EQ(r.status, 201) << r.raw;
  }

  reply put_connection(const std::string& user, const json::object& body,
                       const std::string& provider = provider_id) {
    auto r = node_->call(key_, "PUT", "/v1/users/" + user + "/connections/" + provider,
                         json::serialize(body));
    EXPECT_EQ(r.status, 200) << r.raw;
    return r;
  }

  std::string create_task(const std::string& user, json::object body, const std::string& path,
                          const std::string& provider) {
    body["provider"] = provider;
    body["action"] = json::object{
        {"method", "POST"}, {"path", path}, {"body", json::object{{"note", "follow up"}}}};
    auto r = node_->call(key_, "POST", "/v1/users/" + user + "/tasks", json::serialize(body));
    EXPECT_EQ(r.status, 201) << r.raw;
    if (r.status != 201)
      return "<not created>";
    return str(r.body.as_object()["id"]);
  }

  std::string schedule(const std::string& user, double delay_seconds,
                       const std::string& path = "/leads",
                       const std::string& provider = provider_id) {
    return create_task(user, json::object{{"delay_seconds", delay_seconds}}, path, provider);
  }

  std::string schedule_at(const std::string& user, sys_clock::time_point when,
                          const std::string& path = "/leads") {
    return create_task(user, json::object{{"run_at", rfc3339(when)}}, path, provider_id);
  }

  json::object wait(const std::string& user, const std::string& id,
                    const std::set<std::string>& statuses = finished, milliseconds timeout = 15s) {
    return node_->wait_task(key_, user, id, statuses, timeout);
  }

  json::object task(const std::string& user, const std::string& id) {
    auto r = node_->call(key_, "GET", "/v1/users/" + user + "/tasks/" + id);
    EXPECT_EQ(r.status, 200) << r.raw;
    return r.body.is_object() ? r.body.as_object() : json::object{};
  }

  json::object connection(const std::string& user, const std::string& provider = provider_id) {
    auto r = node_->call(key_, "GET", "/v1/users/" + user + "/connections/" + provider);
    EXPECT_EQ(r.status, 200) << r.raw;
    return r.body.is_object() ? r.body.as_object() : json::object{};
  }

  std::vector<json::object> audit(const std::string& user) {
    auto r = node_->call(key_, "GET", "/v1/users/" + user + "/audit");
    EXPECT_EQ(r.status, 200) << r.raw;
    std::vector<json::object> out;
    if (r.body.is_object())
      for (const auto& record : r.body.as_object()["records"].as_array())
        out.push_back(record.as_object());
    return out;
  }

  // Audit records of `user` with this event (and outcome, when given).
  std::size_t audit_count(const std::string& user, const std::string& event,
                          const std::string& outcome = {}) {
    std::size_t n = 0;
    for (auto& record : audit(user))
      if (str(record["event"]) == event && (outcome.empty() || str(record["outcome"]) == outcome))
        ++n;
    return n;
  }

  std::unique_ptr<temp_dir> dir_;
  std::unique_ptr<mock_provider> mock_;
  std::unique_ptr<daemon> node_;
  std::string key_;
};

// ---- case-01 ----------------------------------------------------------------------------------

// case-01: a refresh reply without refresh_token keeps the stored one for the next refresh.
TEST_F(provider_cases, second_refresh_sends_original_refresh_token_when_reply_omits_it) {
  const auto c = load_case("case-01");
  const auto original = text_at(c, {"input", "stored_before", "refresh_token"});
  const auto scope = text_at(c, {"input", "stored_before", "scope"});
  const auto response = at(c, {"input", "provider_response"});
  const auto first_access = text_at(response, {"body", "access_token"});
  const auto second_access = first_access + "-r2";
  const auto expected_body = text_at(c, {"expected", "second_refresh_request_body_contains"});
  ASSERT_EQ(at(response, {"body"}).as_object().count("refresh_token"), 0u);

  // The case's reply (no refresh_token, no scope, an extra api_domain), living 2 s.
  mock_->on_token([=](const recorded_request&, std::size_t i) {
    return reply_from_case(response, [&](json::object& body) {
      body["expires_in"] = 2;
      if (i > 0)
        body["access_token"] = second_access;
    });
  });
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  // The agent's access token is at the end of its life, as in the case.
  put_connection(
      "zoe", json::object{{"refresh_token", original},
                          {"access_token", text_at(c, {"input", "stored_before", "access_token"})},
                          {"expires_in", 1},
                          {"scope", scope}});

  auto first = schedule("zoe", 0.2);
  auto t1 = wait("zoe", first);
  ASSERT_EQ(str(t1["status"]), "succeeded") << json::serialize(t1);
  // Run again after the 2 s access token expired: a second refresh is needed.
  auto second = schedule("zoe", 2.5);
  auto t2 = wait("zoe", second);
  ASSERT_EQ(str(t2["status"]), "succeeded") << json::serialize(t2);

  auto refreshes = mock_->token_requests();
  ASSERT_EQ(refreshes.size(), 2u);
  EXPECT_EQ(refresh_tokens_sent(refreshes), (std::vector<std::string>{original, original}));
  EXPECT_NE(refreshes[1].body.find(expected_body), std::string::npos);
  EXPECT_EQ(refreshes[1].form("grant_type"), "refresh_token");
  EXPECT_EQ(bearers_sent(mock_->api_requests()),
            (std::vector<std::string>{first_access, second_access}));

  auto conn = connection("zoe");
  EXPECT_EQ(str(conn["status"]), "active");
  EXPECT_EQ(num(conn["rotations"]), 0);
  json::array scopes;
  for (std::size_t start = 0; start < scope.size();) {
    auto end = std::min(scope.find(' ', start), scope.size());
    scopes.emplace_back(scope.substr(start, end - start));
    start = end + 1;
  }
  ASSERT_EQ(scopes.size(), 2u);
  EXPECT_EQ(json::serialize(conn["scopes"]), json::serialize(scopes))
      << "an omitted scope means the grant is unchanged";
  EXPECT_EQ(audit_count("zoe", "connection.needs_reconnect"), 0u);
}

// ---- case-06 ----------------------------------------------------------------------------------

// case-06: HTTP 200 with bad_refresh_token blocks the connection; no API call, no retry loop.
TEST_F(provider_cases, refresh_error_inside_http_200_blocks_tasks_without_calling_api) {
  const auto c = load_case("case-06");
  const auto stored = at(c, {"input", "stored_before"});
  const auto response = at(c, {"input", "provider_response"});
  const auto error_code = text_at(response, {"body", "error"});

  mock_->on_token([=](const recorded_request&, std::size_t) { return reply_from_case(response); });
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  put_connection("gus", json::object{{"refresh_token", text_at(stored, {"refresh_token"})},
                                     {"access_token", text_at(stored, {"access_token"})},
                                     {"expires_in", 1}});
  auto first = schedule("gus", 0.2);
  auto later = schedule("gus", 30);

  auto t1 = wait("gus", first);
  EXPECT_EQ(str(t1["status"]), "blocked") << json::serialize(t1);
  EXPECT_EQ(str(t1["last_error"]), "reconnect_required");
  auto t2 = wait("gus", later, {"blocked"}, 5s);
  EXPECT_EQ(str(t2["status"]), "blocked") << json::serialize(t2);
  EXPECT_EQ(str(t2["last_error"]), error_code);

  auto conn = connection("gus");
  EXPECT_EQ(str(conn["status"]), "needs_reconnect");
  EXPECT_EQ(str(conn["status_reason"]), error_code);
  EXPECT_EQ(num(conn["rotations"]), 0);

  // No retry loop and no action sent with any token.
  std::this_thread::sleep_for(1500ms);
  auto refreshes = mock_->token_requests();
  ASSERT_EQ(refreshes.size(), 1u);
  EXPECT_EQ(refreshes[0].form("refresh_token"), text_at(stored, {"refresh_token"}));
  EXPECT_EQ(mock_->api_count(), 0u);
  EXPECT_EQ(audit_count("gus", "connection.needs_reconnect"), 1u);
}

// case-06, second vector: HTTP 200 without access_token is retried; the grant stays active.
TEST_F(provider_cases, reply_without_access_token_is_retried_and_keeps_connection_active) {
  const auto c = load_case("case-06");
  const auto refresh = text_at(c, {"input", "stored_before", "refresh_token"});
  const auto vector = at(c, {"input", "second_vector"});
  ASSERT_EQ(at(vector, {"body"}).as_object().count("access_token"), 0u);
  const std::string fresh = "ghu_FAKENEW0602";

  // Twice the broken reply, then the provider recovers.
  mock_->on_token([=](const recorded_request&, std::size_t i) {
    if (i < 2)
      return reply_from_case(vector);
    return json_reply(
        200, json::object{{"access_token", fresh}, {"expires_in", 3600}, {"token_type", "bearer"}});
  });
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  put_connection("gus", json::object{{"refresh_token", refresh}});
  auto id = schedule("gus", 0.2);

  // While the provider misbehaves the connection is never taken out of service.
  ASSERT_TRUE(mock_->wait_token_count(2, 10s));
  EXPECT_EQ(str(connection("gus")["status"]), "active");

  auto t = wait("gus", id);
  ASSERT_EQ(str(t["status"]), "succeeded") << json::serialize(t);
  EXPECT_EQ(num(t["attempts"]), 3);

  EXPECT_EQ(refresh_tokens_sent(mock_->token_requests()),
            (std::vector<std::string>{refresh, refresh, refresh}));
  EXPECT_EQ(bearers_sent(mock_->api_requests()), (std::vector<std::string>{fresh}));
  auto conn = connection("gus");
  EXPECT_EQ(str(conn["status"]), "active");
  EXPECT_TRUE(conn["status_reason"].is_null());
  EXPECT_EQ(num(conn["rotations"]), 0);

  std::size_t transient = 0;
  for (auto& record : audit("gus"))
    if (str(record["event"]) == "token.refresh" && str(record["outcome"]) == "transient_failure") {
      EXPECT_EQ(str(record["detail"]), "missing_access_token");
      ++transient;
    }
  EXPECT_EQ(transient, 2u);
  EXPECT_EQ(audit_count("gus", "connection.needs_reconnect"), 0u);
}

// ---- case-09 ----------------------------------------------------------------------------------

// A provider that rotates the refresh token on every use, as in case-09: a refresh with
// R{n} (the current one) returns A{n+1}/R{n+1}; any rotated-out token gets HTTP 200
// {"error":"bad_refresh_token"}.
struct rotating_chain {
  std::string access_prefix, refresh_prefix;
  json::object template_body;  // the case's initial_body, lifetimes as the test wants
  int current = 0;
  int reuse_errors = 0;

  scripted_reply answer(const recorded_request& request) {
    if (request.form("refresh_token") != refresh_prefix + std::to_string(current)) {
      ++reuse_errors;
      return json_reply(200, json::object{{"error", "bad_refresh_token"}});
    }
    ++current;
    json::object body = template_body;
    body["access_token"] = access_prefix + std::to_string(current);
    body["refresh_token"] = refresh_prefix + std::to_string(current);
    return json_reply(200, body);
  }
};

std::string without_trailing_digits(std::string text) {
  while (!text.empty() && std::isdigit(static_cast<unsigned char>(text.back())))
    text.pop_back();
  return text;
}

std::shared_ptr<rotating_chain> chain_from_case(const json::value& c) {
  auto chain = std::make_shared<rotating_chain>();
  const auto& initial = at(c, {"input", "initial_body"});
  chain->access_prefix = without_trailing_digits(text_at(initial, {"access_token"}));
  chain->refresh_prefix = without_trailing_digits(text_at(initial, {"refresh_token"}));
  chain->template_body = initial.as_object();
  chain->template_body["expires_in"] = 2;
  return chain;
}

// case-09: three refreshes (a restart before the third) send R0, R1, R2 in rotation order.
TEST_F(provider_cases, rotated_refresh_tokens_are_sent_in_order_across_restart) {
  const auto c = load_case("case-09");
  const auto initial = at(c, {"input", "initial_body"});
  const auto refresh_lifetime_s = num(at(initial, {"refresh_token_expires_in"}));
  std::vector<std::string> expected_sent;
  for (const auto& line : at(c, {"expected", "refresh_requests"}).as_array()) {
    std::string text = str(line);
    auto start = text.find("refresh_token=") + std::string("refresh_token=").size();
    expected_sent.push_back(text.substr(start, text.find(' ', start) - start));
  }
  ASSERT_EQ(expected_sent.size(), 3u);

  auto chain = chain_from_case(c);
  mock_->on_token([chain](const recorded_request& r, std::size_t) { return chain->answer(r); });
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  put_connection("gia", json::object{{"refresh_token", text_at(initial, {"refresh_token"})},
                                     {"access_token", text_at(initial, {"access_token"})},
                                     {"expires_in", 1},
                                     {"scope", text_at(initial, {"scope"})}});

  auto run1 = schedule("gia", 0.2);
  ASSERT_EQ(str(wait("gia", run1)["status"]), "succeeded");
  auto run2 = schedule("gia", 2.5);
  ASSERT_EQ(str(wait("gia", run2)["status"]), "succeeded");
  // The third run is due while the node is down and runs after the restart.
  auto run3 = schedule("gia", 2.5);
  EXPECT_EQ(node_->terminate(), 0);
  const auto stopped_at = sys_clock::now();
  node_->start();
  auto t3 = wait("gia", run3);
  ASSERT_EQ(str(t3["status"]), "succeeded") << json::serialize(t3);

  auto refreshes = mock_->token_requests();
  EXPECT_EQ(refresh_tokens_sent(refreshes), expected_sent);
  ASSERT_EQ(refreshes.size(), 3u);
  EXPECT_GT(refreshes[2].at, stopped_at) << "the third refresh was not made after the restart";
  auto bearers = bearers_sent(mock_->api_requests());
  ASSERT_EQ(bearers.size(), 3u);
  EXPECT_EQ(bearers[0], chain->access_prefix + "1");
  EXPECT_EQ(bearers[1], chain->access_prefix + "2");
  EXPECT_EQ(bearers[2], text_at(c, {"expected", "after_third_refresh", "access_token"}));
  EXPECT_EQ(chain->current, 3);
  EXPECT_EQ(chain->reuse_errors, 0);

  auto conn = connection("gia");
  EXPECT_EQ(str(conn["status"]), "active");
  EXPECT_EQ(num(conn["rotations"]), 3);
  ASSERT_TRUE(conn["refresh_token_expires_at"].is_string()) << json::serialize(conn);
  ASSERT_TRUE(conn["last_refresh_at"].is_string());
  auto lifetime_ms = parse_view_time(str(conn["refresh_token_expires_at"])) -
                     parse_view_time(str(conn["last_refresh_at"]));
  EXPECT_NEAR(static_cast<double>(lifetime_ms), refresh_lifetime_s * 1000.0, 5000.0);
}

// case-09: a passed refresh_token_expires_in means needs_reconnect with no token call.
TEST_F(provider_cases, expired_refresh_token_needs_reconnect_without_token_call) {
  const auto c = load_case("case-09");
  const auto initial = at(c, {"input", "initial_body"});
  auto chain = chain_from_case(c);
  chain->template_body["refresh_token_expires_in"] = 1;
  mock_->on_token([chain](const recorded_request& r, std::size_t) { return chain->answer(r); });
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  put_connection("gia", json::object{{"refresh_token", text_at(initial, {"refresh_token"})}});

  auto run1 = schedule("gia", 0.2);
  ASSERT_EQ(str(wait("gia", run1)["status"]), "succeeded");
  auto conn = connection("gia");
  ASSERT_TRUE(conn["refresh_token_expires_at"].is_string()) << json::serialize(conn);
  EXPECT_NEAR(static_cast<double>(parse_view_time(str(conn["refresh_token_expires_at"])) -
                                  parse_view_time(str(conn["last_refresh_at"]))),
              1000.0, 1000.0);

  // After both the access token (2 s) and the refresh token (1 s) expired.
  auto run2 = schedule("gia", 2.5);
  auto t2 = wait("gia", run2);
  EXPECT_EQ(str(t2["status"]), "blocked") << json::serialize(t2);
  EXPECT_EQ(str(t2["last_error"]), "reconnect_required");
  conn = connection("gia");
  EXPECT_EQ(str(conn["status"]), "needs_reconnect");
  EXPECT_EQ(str(conn["status_reason"]), "refresh_token_expired");
  EXPECT_EQ(mock_->token_count(), 1u);
  EXPECT_EQ(mock_->api_count(), 1u);
}

// ---- case-11 ----------------------------------------------------------------------------------

// case-11: tasks due at one instant share one (slow) refresh and never reuse rt-A.
TEST_F(provider_cases, simultaneous_tasks_share_one_refresh_when_token_endpoint_is_slow) {
  const auto c = load_case("case-11");
  const auto refresh_a = text_at(c, {"input", "connection", "refresh_token"});
  const auto& mock_rules = at(c, {"input", "mock_provider"});
  const auto first_use = at(mock_rules, {"first_use_of_rt-A"});
  const auto later_use = at(mock_rules, {"any_later_use_of_rt-A"});
  const auto delay = milliseconds(num(at(mock_rules, {"response_delay_ms"})));
  const auto access_b = text_at(first_use, {"body", "access_token"});
  const auto refresh_b = text_at(first_use, {"body", "refresh_token"});
  auto expected_auth = text_at(c, {"expected", "both_tasks_send"});
  ASSERT_EQ(expected_auth, "Authorization: Bearer " + access_b);

  struct provider_state {
    int uses_of_a = 0;
    bool family_revoked = false;
    std::vector<std::string> forced_refresh_tokens;
  };
  auto state = std::make_shared<provider_state>();
  mock_->on_token([=](const recorded_request& r, std::size_t) {
    auto sent = r.form("refresh_token").value_or("");
    if (sent == refresh_a && state->uses_of_a++ == 0) {
      auto reply = reply_from_case(first_use);
      reply.content_type = "application/json";
      reply.delay = delay;
      return reply;
    }
    if (sent == refresh_a) {
      state->family_revoked = true;  // reuse detected: rt-B and at-B die too
      auto reply = reply_from_case(later_use);
      reply.content_type = "application/json";
      reply.delay = delay;
      return reply;
    }
    if (sent == refresh_b && !state->family_revoked)
      return json_reply(200, json::object{{"access_token", "at-C"},
                                          {"refresh_token", "rt-C"},
                                          {"expires_in", 3600},
                                          {"token_type", "Bearer"}});
    return invalid_grant_reply();
  });
  mock_->on_api([=](const recorded_request& r, std::size_t) {
    if (r.bearer() == access_b && !state->family_revoked)
      return json_reply(200, json::object{{"ok", true}});
    return json_reply(401, json::object{{"error", "invalid_token"}});
  });
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  put_connection("ivy", json::object{{"refresh_token", refresh_a}});

  // More tasks than the case's two make a lost race likelier to show.
  const auto due = sys_clock::now() + 1500ms;
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i)
    ids.push_back(schedule_at("ivy", due, "/leads/" + std::to_string(i)));
  for (const auto& id : ids) {
    auto t = wait("ivy", id);
    EXPECT_EQ(str(t["status"]), "succeeded") << json::serialize(t);
    EXPECT_EQ(num(t["attempts"]), 1);
  }

  EXPECT_EQ(mock_->token_count(), 1u);
  auto api = mock_->api_requests();
  ASSERT_EQ(api.size(), ids.size());
  for (const auto& r : api)
    EXPECT_EQ("Authorization: " + r.header("Authorization"), expected_auth);
  EXPECT_FALSE(state->family_revoked);
  EXPECT_EQ(state->uses_of_a, 1);
  auto conn = connection("ivy");
  EXPECT_EQ(str(conn["status"]), "active");
  EXPECT_EQ(num(conn["rotations"]), 1);

  // The stored refresh token is now rt-B: a refresh forced by a 401 from the API sends it.
  mock_->on_api([=](const recorded_request& r, std::size_t i) {
    if (i == ids.size())  // the first call of the next task
      return json_reply(401, json::object{{"error", "invalid_token"}});
    return json_reply(r.bearer().empty() ? 401 : 200, json::object{{"ok", true}});
  });
  auto forced = schedule("ivy", 0);
  EXPECT_EQ(str(wait("ivy", forced)["status"]), "succeeded");
  auto refreshes = mock_->token_requests();
  ASSERT_EQ(refreshes.size(), 2u);
  EXPECT_EQ(refreshes[1].form("refresh_token"), refresh_b);
  EXPECT_EQ(mock_->api_requests().back().bearer(), "at-C");
}

// case-11 loser / case-12 exception: a grant stored mid-refresh is refreshed, not marked dead.
TEST_F(provider_cases, refresh_in_flight_is_redone_with_grant_stored_meanwhile) {
  mock_->on_token([](const recorded_request& r, std::size_t) {
    if (r.form("refresh_token") == "rt-old")
      return json_reply(400, json::object{{"error", "invalid_grant"}}, 1000ms);
    if (r.form("refresh_token") == "rt-new")
      return json_reply(200, json::object{{"access_token", "at-new"},
                                          {"refresh_token", "rt-newer"},
                                          {"expires_in", 3600},
                                          {"token_type", "Bearer"}});
    return invalid_grant_reply();
  });
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  put_connection("ida", json::object{{"refresh_token", "rt-old"}});
  auto id = schedule("ida", 0.1);
  ASSERT_TRUE(mock_->wait_token_count(1, 5s));
  put_connection("ida", json::object{{"refresh_token", "rt-new"}});

  auto t = wait("ida", id);
  EXPECT_EQ(str(t["status"]), "succeeded") << json::serialize(t);
  EXPECT_EQ(refresh_tokens_sent(mock_->token_requests()),
            (std::vector<std::string>{"rt-old", "rt-new"}));
  EXPECT_EQ(bearers_sent(mock_->api_requests()), (std::vector<std::string>{"at-new"}));
  auto conn = connection("ida");
  EXPECT_EQ(str(conn["status"]), "active");
  EXPECT_EQ(num(conn["rotations"]), 1);
  EXPECT_EQ(audit_count("ida", "connection.needs_reconnect"), 0u);
}

// ---- case-12 ----------------------------------------------------------------------------------

// case-12: one invalid_grant call blocks all tasks until re-consent, which resumes them.
TEST_F(provider_cases, invalid_grant_blocks_tasks_after_one_token_call_until_reconsent) {
  const auto c = load_case("case-12");
  const auto dead = text_at(c, {"input", "connection", "refresh_token"});
  const auto response = at(c, {"input", "provider_response"});
  const auto error_code = text_at(response, {"body", "error"});
  const std::string fresh_refresh = "rt-reconsent-12", fresh_access = "at-reconsent-12";

  mock_->on_token([=](const recorded_request& r, std::size_t) {
    if (r.form("refresh_token") == dead)
      return reply_from_case(response);
    if (r.form("refresh_token") == fresh_refresh)
      return json_reply(
          200, json::object{
                   {"access_token", fresh_access}, {"expires_in", 3600}, {"token_type", "Bearer"}});
    return invalid_grant_reply();
  });
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  put_connection("kai", json::object{{"refresh_token", dead}});

  // Three runs about a second apart (the case's 10:00, 11:00 and 12:00).
  auto started = std::chrono::steady_clock::now();
  std::vector<std::string> ids{schedule("kai", 0.3), schedule("kai", 1.3), schedule("kai", 2.3)};
  auto t1 = wait("kai", ids[0]);
  EXPECT_EQ(str(t1["status"]), "blocked") << json::serialize(t1);
  EXPECT_EQ(str(t1["last_error"]), "reconnect_required");
  // Past the due time of the last one.
  std::this_thread::sleep_until(started + 3300ms);
  for (std::size_t i = 1; i < ids.size(); ++i) {
    auto t = task("kai", ids[i]);
    EXPECT_EQ(str(t["status"]), "blocked") << json::serialize(t);
    EXPECT_EQ(str(t["last_error"]), error_code);
    EXPECT_EQ(num(t["attempts"]), 0);
  }
  EXPECT_EQ(mock_->token_count(), 1u);
  EXPECT_EQ(mock_->api_count(), 0u);
  auto conn = connection("kai");
  EXPECT_EQ(str(conn["status"]), "needs_reconnect");
  EXPECT_EQ(str(conn["status_reason"]), error_code);
  EXPECT_EQ(audit_count("kai", "connection.needs_reconnect"), 1u) << "one notice, not one per run";

  // The user re-consents: the blocked tasks run with the new grant.
  auto stored = put_connection("kai", json::object{{"refresh_token", fresh_refresh}});
  EXPECT_EQ(str(stored.body.as_object()["status"]), "active");
  for (const auto& id : ids) {
    auto t = wait("kai", id, {"succeeded", "failed"});
    EXPECT_EQ(str(t["status"]), "succeeded") << json::serialize(t);
  }
  auto later = schedule("kai", 0.1);
  EXPECT_EQ(str(wait("kai", later)["status"]), "succeeded");

  EXPECT_EQ(refresh_tokens_sent(mock_->token_requests()),
            (std::vector<std::string>{dead, fresh_refresh}));
  auto bearers = bearers_sent(mock_->api_requests());
  EXPECT_EQ(bearers, std::vector<std::string>(4, fresh_access));
  conn = connection("kai");
  EXPECT_EQ(str(conn["status"]), "active");
  EXPECT_TRUE(conn["status_reason"].is_null());
}

// ---- case-13 ----------------------------------------------------------------------------------

// case-13: 503/429 Retry-After (seconds, HTTP-date) is honoured; the grant changes only at success.
TEST_F(provider_cases, token_endpoint_503_and_429_retry_after_is_honoured_and_grant_kept) {
  const auto c = load_case("case-13");
  const auto live = text_at(c, {"input", "connection", "refresh_token"});
  const auto& responses = at(c, {"input", "responses_in_order"}).as_array();
  ASSERT_EQ(responses.size(), 3u);
  const auto success = responses[2];
  const auto access = text_at(success, {"body", "access_token"});
  const auto rotated = text_at(success, {"body", "refresh_token"});
  // The case's 120 s and "three minutes after the first attempt", scaled to seconds.
  const int retry_after_503_s = 2;
  ASSERT_EQ(text_at(responses[0], {"headers", "Retry-After"}), "120");

  struct provider_state {
    sys_clock::time_point not_before_third{};
  };
  auto state = std::make_shared<provider_state>();
  mock_->on_token([=](const recorded_request& r, std::size_t i) {
    if (i == 0) {
      auto reply = reply_from_case(responses[0]);
      for (auto& [name, value] : reply.headers)
        if (name == "Retry-After")
          value = std::to_string(retry_after_503_s);
      return reply;
    }
    if (i == 1) {
      // An HTTP-date about 2 s ahead, on a whole second.
      auto when = std::chrono::ceil<std::chrono::seconds>(r.at + 2s);
      state->not_before_third = when;
      auto reply = reply_from_case(responses[1]);
      for (auto& [name, value] : reply.headers)
        if (name == "Retry-After")
          value = http_date(when);
      return reply;
    }
    if (i == 2)
      return reply_from_case(success, [](json::object& body) { body["expires_in"] = 2; });
    if (r.form("refresh_token") == rotated)
      return json_reply(200, json::object{{"access_token", access + "-2"},
                                          {"expires_in", 3600},
                                          {"token_type", "Bearer"}});
    return invalid_grant_reply();
  });
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  put_connection("lea", json::object{{"refresh_token", live}});
  auto id = schedule("lea", 0.2);

  // Watch the connection during the retries: active throughout, not rotated before success.
  int observed_before_success = 0;
  json::object t;
  auto deadline = std::chrono::steady_clock::now() + 15s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto conn = connection("lea");
    auto calls = mock_->token_count();  // read after the connection: see the ordering note
    EXPECT_EQ(str(conn["status"]), "active") << json::serialize(conn);
    // The third (successful) call had not been received when the connection was read.
    if (calls < 3) {
      EXPECT_EQ(num(conn["rotations"]), 0) << "refresh token replaced before success";
      ++observed_before_success;
    }
    t = task("lea", id);
    if (finished.count(str(t["status"])) != 0)
      break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(str(t["status"]), "succeeded") << json::serialize(t);
  EXPECT_EQ(num(t["attempts"]), 3);
  EXPECT_GT(observed_before_success, 10);

  auto refreshes = mock_->token_requests();
  ASSERT_EQ(refreshes.size(), 3u);
  EXPECT_EQ(refresh_tokens_sent(refreshes), (std::vector<std::string>{live, live, live}));
  EXPECT_GE(ms_between(refreshes[0].at, refreshes[1].at), retry_after_503_s * 1000);
  EXPECT_GE(ms_between(state->not_before_third, refreshes[2].at), 0)
      << "third attempt before the Retry-After date";
  // Not far beyond either (the backoff alone would be well under a second).
  EXPECT_LT(ms_between(refreshes[0].at, refreshes[1].at), retry_after_503_s * 1000 + 2500);
  EXPECT_LT(ms_between(state->not_before_third, refreshes[2].at), 2500);

  EXPECT_EQ(bearers_sent(mock_->api_requests()), (std::vector<std::string>{access}));
  auto conn = connection("lea");
  EXPECT_EQ(str(conn["status"]), "active");
  EXPECT_EQ(num(conn["rotations"]), 1);
  EXPECT_EQ(audit_count("lea", "connection.needs_reconnect"), 0u);

  // The rotated token replaced the original: the next refresh (after expiry) sends it.
  auto next = schedule("lea", 2.5);
  EXPECT_EQ(str(wait("lea", next)["status"]), "succeeded");
  refreshes = mock_->token_requests();
  ASSERT_EQ(refreshes.size(), 4u);
  EXPECT_EQ(refreshes[3].form("refresh_token"), rotated);
}

// case-13, extra vectors: an empty 502 and a timeout are retried with the same refresh token.
TEST_F(provider_cases, token_endpoint_502_and_timeout_are_retried_with_same_refresh_token) {
  const auto c = load_case("case-13");
  const auto live = text_at(c, {"input", "connection", "refresh_token"});
  const auto success = at(c, {"input", "responses_in_order"}).as_array().back();
  mock_->on_token([=](const recorded_request&, std::size_t i) {
    if (i == 0)
      return scripted_reply{502, "", "", {}, 0ms};
    if (i == 1)  // answered long after latchkeyd's 500 ms outbound timeout
      return json_reply(503, json::object{{"error", "temporarily_unavailable"}}, 1500ms);
    return reply_from_case(success);
  });
  ASSERT_NO_FATAL_FAILURE(start_daemon({"--outbound-timeout-ms=500"}));
  put_connection("lea", json::object{{"refresh_token", live}});
  auto id = schedule("lea", 0.2);

  auto t = wait("lea", id);
  ASSERT_EQ(str(t["status"]), "succeeded") << json::serialize(t);
  EXPECT_EQ(num(t["attempts"]), 3);
  EXPECT_EQ(refresh_tokens_sent(mock_->token_requests()),
            (std::vector<std::string>{live, live, live}));
  EXPECT_EQ(bearers_sent(mock_->api_requests()),
            (std::vector<std::string>{text_at(success, {"body", "access_token"})}));
  std::vector<std::string> codes;
  for (auto& record : audit("lea"))
    if (str(record["event"]) == "token.refresh" && str(record["outcome"]) == "transient_failure")
      codes.push_back(str(record["detail"]));
  EXPECT_EQ(codes, (std::vector<std::string>{"http_502", "transport_error"}));
  auto conn = connection("lea");
  EXPECT_EQ(str(conn["status"]), "active");
  EXPECT_EQ(num(conn["rotations"]), 1);
}

// case-13, bounds: a lasting outage fails the task after --max-attempts but keeps the grant.
TEST_F(provider_cases, token_endpoint_outage_fails_task_after_max_attempts_and_keeps_grant) {
  const auto c = load_case("case-13");
  const auto live = text_at(c, {"input", "connection", "refresh_token"});
  const auto outage = at(c, {"input", "responses_in_order"}).as_array().front();
  const auto success = at(c, {"input", "responses_in_order"}).as_array().back();
  mock_->on_token([=](const recorded_request&, std::size_t) {
    auto reply = reply_from_case(outage);
    reply.headers.clear();  // no Retry-After: the backoff alone decides
    return reply;
  });
  ASSERT_NO_FATAL_FAILURE(start_daemon({"--max-attempts=2"}));
  put_connection("lea", json::object{{"refresh_token", live}});
  auto failed_id = schedule("lea", 0.2);

  auto t = wait("lea", failed_id);
  EXPECT_EQ(str(t["status"]), "failed") << json::serialize(t);
  EXPECT_EQ(num(t["attempts"]), 2);
  EXPECT_EQ(str(t["last_error"]), "http_" + std::to_string(num(at(outage, {"status"}))));
  EXPECT_EQ(mock_->token_count(), 2u);
  EXPECT_EQ(mock_->api_count(), 0u);
  auto conn = connection("lea");
  EXPECT_EQ(str(conn["status"]), "active");
  EXPECT_EQ(num(conn["rotations"]), 0);

  mock_->on_token([=](const recorded_request&, std::size_t) { return reply_from_case(success); });
  auto next = schedule("lea", 0.1);
  EXPECT_EQ(str(wait("lea", next)["status"]), "succeeded");
  EXPECT_EQ(refresh_tokens_sent(mock_->token_requests()),
            (std::vector<std::string>{live, live, live}));
  EXPECT_EQ(audit_count("lea", "connection.needs_reconnect"), 0u);
}

// ---- case-23 ----------------------------------------------------------------------------------

// case-23: secrets in token replies reach no log, data file, task, connection or audit view.
TEST_F(provider_cases, secrets_in_token_replies_reach_no_log_file_record_or_audit) {
  const auto c = load_case("case-23");
  const auto client_secret = text_at(c, {"input", "client_secret"});
  const auto stored_refresh = text_at(c, {"input", "stored_refresh_token"});
  const auto truncated = at(c, {"input", "vector_truncated_2xx"});
  const auto echoing = at(c, {"input", "vector_echoing_400"});

  // The sentinels the case greps for, read from its `expected.grep` sentence.
  std::vector<std::string> sentinels;
  const auto grep = text_at(c, {"expected", "grep"});
  const std::regex sentinel(R"([A-Z]+-SENTINEL(-[A-Za-z0-9]+)+)");
  for (auto it = std::sregex_iterator(grep.begin(), grep.end(), sentinel);
       it != std::sregex_iterator(); ++it)
    sentinels.push_back(it->str());
  ASSERT_EQ(sentinels.size(), 4u) << grep;
  ASSERT_NE(std::find(sentinels.begin(), sentinels.end(), client_secret), sentinels.end());
  ASSERT_NE(std::find(sentinels.begin(), sentinels.end(), stored_refresh), sentinels.end());
  // Each one is in what the mock serves or what the daemon is given.
  const auto inputs = json::serialize(at(c, {"input"}));
  for (const auto& s : sentinels)
    ASSERT_NE(inputs.find(s), std::string::npos) << s;

  // Per client: first the truncated 2xx, then the echoing 400.
  auto counts = std::make_shared<std::map<std::string, int>>();
  mock_->on_token([=](const recorded_request& r, std::size_t) {
    auto client = r.form("client_secret") ? "post" : "basic";
    return (*counts)[client]++ == 0 ? reply_from_case(truncated) : reply_from_case(echoing);
  });
  // Both client authentications: the secret in the Authorization header and in the body.
  ASSERT_NO_FATAL_FAILURE(start_daemon({}, client_secret, "client_secret_basic"));
  ASSERT_NO_FATAL_FAILURE(register_provider("mock-post", client_secret, "client_secret_post"));
  put_connection("max", json::object{{"refresh_token", stored_refresh}});
  put_connection("mia", json::object{{"refresh_token", stored_refresh}}, "mock-post");
  auto basic_task = schedule("max", 0.2);
  auto post_task = schedule("mia", 0.2, "/leads", "mock-post");

  std::vector<std::string> views;  // every reply body the agent could see
  for (const auto& [user, id, provider] :
       {std::tuple{"max", basic_task, "mock"}, std::tuple{"mia", post_task, "mock-post"}}) {
    auto t = wait(user, id);
    EXPECT_EQ(str(t["status"]), "blocked") << json::serialize(t);
    EXPECT_EQ(str(t["last_error"]), "reconnect_required");
    EXPECT_EQ(num(t["attempts"]), 2) << "the truncated 2xx is retried, the 400 is final";
    auto conn = connection(user, provider);
    EXPECT_EQ(str(conn["status"]), "needs_reconnect");
    EXPECT_EQ(str(conn["status_reason"]), "invalid_grant");
    EXPECT_EQ(audit_count(user, "token.refresh", "transient_failure"), 1u);
    const auto prefix = std::string("/v1/users/") + user;
    for (const auto& path : {prefix + "/tasks/" + id, prefix + "/tasks", prefix + "/audit",
                             prefix + "/connections/" + provider})
      views.push_back(node_->call(key_, "GET", path).raw);
  }
  EXPECT_EQ(mock_->api_count(), 0u);

  // Transport: POST with a form body to the token URL, nothing secret in the URL.
  auto refreshes = mock_->token_requests();
  ASSERT_EQ(refreshes.size(), 4u);
  std::vector<std::string> needles = sentinels;
  for (const auto& r : refreshes) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.path, "/token");
    EXPECT_EQ(r.query, "");
    EXPECT_EQ(r.header("Content-Type"), "application/x-www-form-urlencoded");
    EXPECT_EQ(r.form("refresh_token"), stored_refresh);
    if (auto auth = r.header("Authorization"); !auth.empty()) {
      needles.push_back(auth);            // "Basic <base64>"
      needles.push_back(auth.substr(6));  // the base64 credentials alone
    } else {
      EXPECT_EQ(r.form("client_secret"), client_secret);
    }
  }

  for (const auto& view : views)
    for (const auto& s : needles)
      EXPECT_EQ(view.find(s), std::string::npos) << "a secret appears in an API reply";

  // Stopped cleanly, so the memtables are in SST files too.
  EXPECT_EQ(node_->terminate(), 0);
  bool has_sst = false;
  for (const auto& entry : std::filesystem::directory_iterator(node_->data_dir()))
    has_sst = has_sst || entry.path().extension() == ".sst";
  EXPECT_TRUE(has_sst) << "the scan should cover the flushed SST files";
  for (const auto& s : needles) {
    auto hits = files_containing(node_->data_dir(), {node_->log_file(), node_->stderr_file()}, s);
    EXPECT_TRUE(hits.empty()) << "secret #" << (&s - needles.data()) << " (" << s.size()
                              << " bytes) found in " << hits.front();
  }

  // The log did record what happened, at debug level: the scan looked at a real log.
  std::ifstream in(node_->log_file(), std::ios::binary);
  std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(log.find("malformed_response"), std::string::npos);
  EXPECT_NE(log.find("invalid_grant"), std::string::npos);
  EXPECT_NE(log.find(" debug "), std::string::npos);
}

// ---- robustness ------------------------------------------------------------------------------

// A cancel acknowledged while the run waits for its token stops the action from being sent.
TEST_F(provider_cases, cancel_before_the_action_is_sent_prevents_it) {
  mock_->on_token([](const recorded_request&, std::size_t) {
    auto reply = json_reply(
        200,
        json::object{{"access_token", "at-slow"}, {"expires_in", 3600}, {"token_type", "Bearer"}});
    reply.delay = 1500ms;
    return reply;
  });
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  put_connection("oli", json::object{{"refresh_token", "rt-oli"}});
  auto id = schedule("oli", 0.1, "/transfer");
  ASSERT_TRUE(mock_->wait_token_count(1, 10s));

  auto cancel = node_->call(key_, "DELETE", "/v1/users/oli/tasks/" + id);
  ASSERT_EQ(cancel.status, 200) << cancel.raw;
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(mock_->api_count(), 0u);
  auto t = task("oli", id);
  EXPECT_EQ(str(t["status"]), "cancelled");
  EXPECT_TRUE(t["response_status"].is_null());
}

// SIGTERM while an action is in flight ends the process within the outbound timeout; the task
// runs again after the restart with the same Idempotency-Key.
TEST_F(provider_cases, sigterm_with_action_in_flight_exits_and_task_reruns) {
  mock_->on_token([](const recorded_request&, std::size_t) {
    return json_reply(
        200,
        json::object{{"access_token", "at-1"}, {"expires_in", 3600}, {"token_type", "Bearer"}});
  });
  mock_->on_api([](const recorded_request&, std::size_t i) {
    scripted_reply reply;
    reply.body = R"({"ok":true})";
    if (i == 0)
      reply.delay = 3000ms;  // the first call hangs past the shutdown
    return reply;
  });
  ASSERT_NO_FATAL_FAILURE(start_daemon({"--outbound-timeout-ms=2000"}));
  put_connection("pia", json::object{{"refresh_token", "rt-pia"}});
  auto id = schedule("pia", 0.1);
  for (int i = 0; i < 100 && mock_->api_count() == 0; ++i)
    std::this_thread::sleep_for(50ms);
  ASSERT_EQ(mock_->api_count(), 1u);

  auto began = sys_clock::now();
  int status = node_->terminate();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_LT(ms_between(began, sys_clock::now()), 8000);

  node_->start();
  auto t = wait("pia", id);
  EXPECT_EQ(str(t["status"]), "succeeded") << json::serialize(t);
  auto calls = mock_->api_requests();
  ASSERT_GE(calls.size(), 2u);
  EXPECT_EQ(calls.front().header("Idempotency-Key"), calls.back().header("Idempotency-Key"));
}

// A provider that hangs holds at most half of the outbound workers: another provider's task
// still runs at once.
TEST_F(provider_cases, hanging_provider_does_not_starve_others) {
  auto token_ok = [](const recorded_request&, std::size_t) {
    return json_reply(
        200,
        json::object{{"access_token", "at-x"}, {"expires_in", 3600}, {"token_type", "Bearer"}});
  };
  mock_->on_token(token_ok);
  mock_->on_api([](const recorded_request&, std::size_t) {
    scripted_reply reply;
    reply.body = R"({"ok":true})";
    reply.delay = 4000ms;
    return reply;
  });
  mock_provider fast;
  fast.on_token(token_ok);
  ASSERT_NO_FATAL_FAILURE(start_daemon({"--outbound-threads=2", "--outbound-timeout-ms=6000"}));
  json::object body{{"id", "fast"},
                    {"token_url", fast.token_url()},
                    {"api_base_url", fast.api_base_url()},
                    {"client_id", "c"},
                    {"client_secret", "s"}};
  ASSERT_EQ(node_->admin("POST", "/v1/providers", json::serialize(body)).status, 201);
  put_connection("ray", json::object{{"refresh_token", "rt-ray"}});
  put_connection("ray", json::object{{"refresh_token", "rt-ray-fast"}}, "fast");

  for (int i = 0; i < 3; ++i)
    schedule("ray", 0.1, "/slow/" + std::to_string(i));
  for (int i = 0; i < 100 && mock_->api_count() == 0; ++i)
    std::this_thread::sleep_for(20ms);
  auto began = sys_clock::now();
  auto quick = schedule("ray", 0, "/quick", "fast");
  auto t = wait("ray", quick, finished, 10s);
  EXPECT_EQ(str(t["status"]), "succeeded") << json::serialize(t);
  EXPECT_LT(ms_between(began, sys_clock::now()), 2500);
  EXPECT_EQ(mock_->api_count(), 1u);  // the hanging host had one worker, not both
  node_.reset();                      // stop the node before `fast` goes away
}

// Replacing a provider drops the access tokens minted under its old settings: the new API
// host never sees them.
TEST_F(provider_cases, replaced_provider_gets_freshly_minted_tokens) {
  mock_->on_token([](const recorded_request&, std::size_t i) {
    return json_reply(200, json::object{{"access_token", "at-gen-" + std::to_string(i)},
                                        {"expires_in", 3600},
                                        {"token_type", "Bearer"}});
  });
  mock_provider moved;
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  put_connection("sam", json::object{{"refresh_token", "rt-sam"}});
  ASSERT_EQ(str(wait("sam", schedule("sam", 0))["status"]), "succeeded");

  json::object body{{"id", provider_id},
                    {"token_url", mock_->token_url()},
                    {"api_base_url", moved.api_base_url()},
                    {"client_id", "latchkey-test-client"},
                    {"client_secret", "mock-client-secret-2"}};
  ASSERT_EQ(node_->admin("PUT", std::string("/v1/providers/") + provider_id, json::serialize(body))
                .status,
            200);
  ASSERT_EQ(str(wait("sam", schedule("sam", 0))["status"]), "succeeded");
  EXPECT_EQ(bearers_sent(moved.api_requests()), (std::vector<std::string>{"at-gen-1"}));
  EXPECT_EQ(mock_->token_count(), 2u);
  node_.reset();  // stop the node before `moved` goes away
}

}  // namespace
}  // namespace latchkey::testing
