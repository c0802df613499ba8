// The reference cases in tests/cases/*.json, replayed against the token response interpreter and
// the refresh request builder. Inputs and expected values are read from the case files; only
// the interpretation of each case's prose ("absent", "empty string") lives here.
#include <gtest/gtest.h>

#include <openssl/evp.h>
#include "tests/unit/net/outcome_helpers.hpp"

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "net/oauth/token_request.hpp"
#include "net/oauth/token_response.hpp"

namespace latchkey::oauth {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

// ---- helpers ------------------------------------------------------------------------------

json::object load_case(const std::string& id) {
  const auto path = std::filesystem::path(LATCHKEY_CASES_DIR) / (id + ".json");
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  boost::system::error_code ec;
  auto value = json::parse(text.str(), ec);
  if (ec || !value.is_object()) {
    ADD_FAILURE() << "cannot load " << path;
    return {};
  }
  return value.as_object();
}

std::string str(const json::value& value) {
  if (const auto* text = value.if_string())
    return std::string(*text);
  ADD_FAILURE() << "expected a string, got " << json::serialize(value);
  return {};
}

// "2026-12-04T10:00:30Z" -> time point.
clock::time_point parse_iso(const std::string& text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  if (std::sscanf(text.c_str(), "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &s) != 6) {
    ADD_FAILURE() << "not an ISO timestamp: " << text;
    return {};
  }
  const std::chrono::year_month_day date{std::chrono::year(y),
                                         std::chrono::month(static_cast<unsigned>(mo)),
                                         std::chrono::day(static_cast<unsigned>(d))};
  return clock::time_point(std::chrono::sys_days(date)) + std::chrono::hours(h) +
         std::chrono::minutes(mi) + std::chrono::seconds(s);
}

// The first ISO timestamp inside a prose expectation, if any.
std::optional<clock::time_point> timestamp_in(const std::string& text) {
  static const std::regex iso(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)");
  std::smatch match;
  if (!std::regex_search(text, match, iso))
    return std::nullopt;
  return parse_iso(match.str());
}

// Text before a parenthesised note: "x (note)" -> "x".
std::string before_note(const std::string& text) {
  const auto note = text.find("  (");
  const auto at = note != std::string::npos ? note : text.find(" (");
  return at == std::string::npos ? text : text.substr(0, at);
}

std::string after_prefix(const std::string& text, const std::string& prefix) {
  EXPECT_EQ(text.rfind(prefix, 0), 0u) << text;
  return text.substr(std::min(prefix.size(), text.size()));
}

// A case's reply object (status, headers, body as JSON or text, or body_raw) as a response.
http_response make_reply(const json::object& vector) {
  http_response out;
  out.status = static_cast<int>(vector.at("status").to_number<std::int64_t>());
  if (const auto* headers = vector.if_contains("headers"))
    for (const auto& [name, value] : headers->as_object())
      out.headers.emplace_back(std::string(name), str(value));
  if (const auto* raw = vector.if_contains("body_raw"))
    out.body = str(*raw);
  else if (const auto* body = vector.if_contains("body"))
    out.body = body->is_string() ? str(*body) : json::serialize(*body);
  return out;
}

using oauth::testing::as_failure;
using oauth::testing::as_tokens;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string decode_base64(const std::string& text) {
  std::string out(text.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0)
    return "<invalid>";
  auto size = static_cast<std::size_t>(n);
  size -= std::count(text.end() - std::min<std::size_t>(2, text.size()), text.end(), '=');
  out.resize(size);
  return out;
}

// The acceptance rule of case-10: base64-decode, split at the first ':', form-decode each half.
std::pair<std::string, std::string> decode_basic(const std::string& header) {
  const auto pair = decode_base64(after_prefix(header, "Basic "));
  const auto colon = pair.find(':');
  if (colon == std::string::npos)
    return {};
  return {form_urldecode(pair.substr(0, colon)), form_urldecode(pair.substr(colon + 1))};
}

// ---- case-01: token-response/missing-refresh-token ----------------------------------------

// An omitted refresh_token and scope keep the stored values; expiry counts from receipt.
TEST(case_01, interpret_keeps_stored_refresh_token_when_omitted) {
  const auto c = load_case("case-01");
  const auto& input = c.at("input").as_object();
  const auto& stored = input.at("stored_before").as_object();
  const auto& expected = c.at("expected").at("stored_after_first_refresh").as_object();
  const auto received_at = parse_iso(str(input.at("clock_at_refresh")));

  const auto outcome =
      interpret_token_response(make_reply(input.at("provider_response").as_object()), received_at);
  const auto& tokens = as_tokens(outcome);

  // Merge the way the store must: absent fields keep the stored values.
  const auto refresh =
      tokens.refresh_token ? tokens.refresh_token->reveal() : str(stored.at("refresh_token"));
  const auto scope = tokens.scope ? *tokens.scope : str(stored.at("scope"));
  EXPECT_TRUE(tokens.access_token.equals(str(expected.at("access_token"))));
  EXPECT_FALSE(tokens.refresh_token.has_value());
  EXPECT_EQ(refresh, str(expected.at("refresh_token")));
  EXPECT_FALSE(tokens.scope.has_value());
  EXPECT_EQ(scope, before_note(str(expected.at("scope"))));
  EXPECT_EQ(tokens.access_expires_at, timestamp_in(str(expected.at("expires_at"))));
}

// The second refresh sends the kept refresh token.
TEST(case_01, build_sends_kept_refresh_token_when_refreshing_again) {
  const auto c = load_case("case-01");
  refresh_request_params params;
  params.token_url = "https://accounts.example/oauth/v2/token";
  params.client_id = "client";
  params.client_secret = secret_string("secret");
  params.refresh_token =
      secret_string(str(c.at("expected").at("stored_after_first_refresh").at("refresh_token")));
  const auto request = build_refresh_request(params);
  EXPECT_TRUE(
      contains(request.body, str(c.at("expected").at("second_refresh_request_body_contains"))));
}

// The negative check: a refresh_token in the reply replaces the stored one.
TEST(case_01, interpret_returns_new_refresh_token_when_present) {
  const auto c = load_case("case-01");
  auto response = c.at("input").at("provider_response").as_object();
  response["body"].as_object()["refresh_token"] = "rt-new-0002";
  const auto& tokens = as_tokens(interpret_token_response(make_reply(response), clock::now()));
  ASSERT_TRUE(tokens.refresh_token.has_value());
  EXPECT_TRUE(tokens.refresh_token->equals("rt-new-0002"));
}

// ---- case-02: token-response/expires_in-string --------------------------------------------

// Numeric strings give the expiry; garbage gives none; no vector is a failure.
TEST(case_02, interpret_reads_expires_in_when_numeric_string) {
  const auto c = load_case("case-02");
  const auto received_at = parse_iso(str(c.at("input").at("clock_at_receipt")));
  const auto& expected = c.at("expected").as_object();
  for (const auto& item : c.at("input").at("vectors").as_array()) {
    const auto& vector = item.as_object();
    const auto name = str(vector.at("name"));
    const auto text = str(expected.at(name));
    SCOPED_TRACE(name);

    const auto& tokens = as_tokens(interpret_token_response(make_reply(vector), received_at));
    EXPECT_TRUE(tokens.access_token.equals(str(vector.at("body").at("access_token"))));
    if (const auto at = timestamp_in(text)) {
      EXPECT_EQ(tokens.access_expires_at, at);
    } else {
      ASSERT_TRUE(contains(text, "absent")) << text;
      EXPECT_FALSE(tokens.access_expires_at.has_value());
    }
  }
}

// ---- case-04: token-response/token_type-lowercase -----------------------------------------

// Every bearer spelling, and an absent type, yields exactly "Authorization: Bearer <token>".
TEST(case_04, interpret_normalises_bearer_when_type_is_any_case_or_absent) {
  const auto c = load_case("case-04");
  const auto& input = c.at("input").as_object();
  const auto expected_header =
      after_prefix(before_note(str(c.at("expected").at("outgoing_header"))), "Authorization: ");

  std::vector<json::object> vectors{input.at("refresh_response").as_object()};
  static const std::regex quoted_type(R"(token_type \"([^\"]+)\")");
  for (const auto& other : input.at("other_vectors").as_array()) {
    const auto text = str(other);
    auto vector = input.at("refresh_response").as_object();
    std::smatch match;
    if (std::regex_search(text, match, quoted_type)) {
      vector["body"].as_object()["token_type"] = match[1].str();
    } else {
      ASSERT_TRUE(contains(text, "absent")) << text;
      vector["body"].as_object().erase("token_type");
    }
    vectors.push_back(vector);
  }

  for (const auto& vector : vectors) {
    SCOPED_TRACE(json::serialize(vector));
    const auto& tokens = as_tokens(interpret_token_response(make_reply(vector), clock::now()));
    EXPECT_EQ(tokens.token_type + " " + tokens.access_token.reveal(), expected_header);
  }
}

// 'mac', 'DPoP' and the like fail as unsupported, never sent as Bearer.
TEST(case_04, interpret_fails_unsupported_when_type_is_not_bearer) {
  const auto c = load_case("case-04");
  const auto text = str(c.at("expected").at("unknown_token_type"));
  static const std::regex quoted(R"('([^']+)')");
  int checked = 0;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), quoted);
       it != std::sregex_iterator(); ++it, ++checked) {
    auto vector = c.at("input").at("refresh_response").as_object();
    vector["body"].as_object()["token_type"] = (*it)[1].str();
    const auto& failed = as_failure(interpret_token_response(make_reply(vector), clock::now()));
    EXPECT_EQ(failed.kind, refresh_failure_kind::unsupported_token_type) << (*it)[1];
    EXPECT_EQ(failed.code, "unsupported_token_type");
  }
  EXPECT_GE(checked, 2);
}

// ---- case-05: token-response/form-urlencoded-body -----------------------------------------

// GitHub's form body is parsed by Content-Type, numbers converted, empty scope kept.
TEST(case_05, interpret_parses_form_when_content_type_is_form) {
  const auto c = load_case("case-05");
  const auto received_at = parse_iso(str(c.at("input").at("clock_at_receipt")));
  const auto& parsed = c.at("expected").at("parsed").as_object();
  auto vector = c.at("input").at("provider_response_without_accept_json").as_object();

  // As declared, and again with no Content-Type at all.
  for (bool drop_content_type : {false, true}) {
    SCOPED_TRACE(drop_content_type ? "no content type" : "declared form");
    if (drop_content_type)
      vector.erase("headers");
    const auto& tokens = as_tokens(interpret_token_response(make_reply(vector), received_at));
    EXPECT_TRUE(tokens.access_token.equals(str(parsed.at("access_token"))));
    ASSERT_TRUE(tokens.refresh_token.has_value());
    EXPECT_TRUE(tokens.refresh_token->equals(str(parsed.at("refresh_token"))));
    EXPECT_EQ(tokens.access_expires_at, timestamp_in(str(parsed.at("access_expires_at"))));
    EXPECT_EQ(tokens.refresh_expires_at, timestamp_in(str(parsed.at("refresh_token_expires_at"))));
    ASSERT_EQ(str(parsed.at("scope")).rfind("empty string", 0), 0u);
    EXPECT_EQ(tokens.scope, "");
    EXPECT_EQ(tokens.token_type, str(parsed.at("authorization_header_scheme")));
  }
}

// The refresh request asks for JSON so that GitHub answers JSON.
TEST(case_05, build_requests_json_when_refreshing) {
  const auto c = load_case("case-05");
  const auto text = str(c.at("expected").at("request"));
  static const std::regex quoted_header(R"('([A-Za-z-]+): ([^']+)')");
  std::smatch match;
  ASSERT_TRUE(std::regex_search(text, match, quoted_header)) << text;

  refresh_request_params params;
  params.token_url = "https://github.com/login/oauth/access_token";
  params.client_id = "Iv1.demo";
  params.client_secret = secret_string("demo-secret");
  params.refresh_token = secret_string("ghr_demo");
  const auto request = build_refresh_request(params);
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(find_header(request.headers, match[1].str()), match[2].str());
}

// ---- case-06: token-response/http-200-error-body ------------------------------------------

// GitHub's 200 bad_refresh_token is a dead grant, and nothing from the body leaks.
TEST(case_06, interpret_fails_invalid_grant_when_200_has_bad_refresh_token) {
  const auto c = load_case("case-06");
  const auto& response = c.at("input").at("provider_response").as_object();
  ASSERT_TRUE(contains(str(c.at("expected").at("bad_refresh_token")), "invalid_grant"));

  const auto& failed = as_failure(interpret_token_response(make_reply(response), clock::now()));
  EXPECT_EQ(failed.kind, refresh_failure_kind::invalid_grant);
  EXPECT_EQ(failed.code, str(response.at("body").at("error")));
  EXPECT_FALSE(contains(failed.message, str(response.at("body").at("error_description"))));
  EXPECT_FALSE(contains(failed.message, str(response.at("body").at("error_uri"))));
  EXPECT_FALSE(failed.retry_after.has_value());
}

// A 200 without access_token is a transient malformed reply, not a reconnect.
TEST(case_06, interpret_fails_transient_when_200_lacks_access_token) {
  const auto c = load_case("case-06");
  ASSERT_TRUE(contains(str(c.at("expected").at("second_vector")), "transient"));
  const auto& failed = as_failure(interpret_token_response(
      make_reply(c.at("input").at("second_vector").as_object()), clock::now()));
  EXPECT_EQ(failed.kind, refresh_failure_kind::transient);
  EXPECT_EQ(failed.code, "missing_access_token");
}

// ---- case-09: rotation/refresh-token-chain-and-expiry (parsing part) ----------------------

// Three rotations in a row: each request sends the latest token; lifetimes count from receipt.
TEST(case_09, interpret_tracks_rotation_when_chain_of_refreshes) {
  const auto c = load_case("case-09");
  const auto& input = c.at("input").as_object();
  const auto& expected = c.at("expected").as_object();
  const auto initial = input.at("initial_body").as_object();

  // The initial grant's refresh token expiry.
  json::object reply{
      {"status", 200}, {"headers", {{"Content-Type", "application/json"}}}, {"body", initial}};
  const auto granted_at = parse_iso(str(input.at("initial_grant_at")));
  const auto& first = as_tokens(interpret_token_response(make_reply(reply), granted_at));
  EXPECT_EQ(first.refresh_expires_at,
            timestamp_in(str(expected.at("initial_refresh_token_expires_at"))));
  EXPECT_EQ(first.scope, "");

  // Replay the mock provider's rule at each run time.
  std::string refresh_token = str(initial.at("refresh_token"));
  token_set latest;
  const auto& runs = input.at("task_runs_at").as_array();
  const auto& requests = expected.at("refresh_requests").as_array();
  for (std::size_t n = 0; n < runs.size(); ++n) {
    refresh_request_params params;
    params.token_url = "https://github.com/login/oauth/access_token";
    params.client_id = "Iv1.demo";
    params.client_secret = secret_string("demo");
    params.refresh_token = secret_string(refresh_token);
    const auto request = build_refresh_request(params);
    const auto sent = str(requests[n]).substr(0, str(requests[n]).find(' '));
    EXPECT_TRUE(contains(request.body + "&", sent + "&")) << sent;

    auto body = initial;
    body["access_token"] = "ghu_DEMO_A" + std::to_string(n + 1);
    body["refresh_token"] = "ghr_DEMO_R" + std::to_string(n + 1);
    reply["body"] = body;
    latest = as_tokens(interpret_token_response(make_reply(reply), parse_iso(str(runs[n]))));
    ASSERT_TRUE(latest.refresh_token.has_value());
    refresh_token = latest.refresh_token->reveal();
  }

  const auto& after = expected.at("after_third_refresh").as_object();
  EXPECT_TRUE(latest.access_token.equals(str(after.at("access_token"))));
  EXPECT_EQ(refresh_token, str(after.at("refresh_token")));
  EXPECT_EQ(latest.access_expires_at, timestamp_in(str(after.at("access_expires_at"))));
  EXPECT_EQ(latest.refresh_expires_at, timestamp_in(str(after.at("refresh_token_expires_at"))));
}

// A rotated-out token answered with 200 {"error":"bad_refresh_token"} is a dead grant.
TEST(case_09, interpret_fails_invalid_grant_when_token_rotated_out) {
  const auto c = load_case("case-09");
  const auto rule = str(c.at("input").at("mock_provider_rule"));
  const auto brace = rule.rfind("{\"");
  ASSERT_NE(brace, std::string::npos);
  http_response reply;
  reply.status = 200;
  reply.headers.emplace_back("Content-Type", "application/json");
  reply.body = rule.substr(brace);
  const auto& failed = as_failure(interpret_token_response(reply, clock::now()));
  EXPECT_EQ(failed.kind, refresh_failure_kind::invalid_grant);
  EXPECT_EQ(failed.code, "bad_refresh_token");
}

// ---- case-10: client-auth/client_secret_basic-encoding ------------------------------------

// The Basic header form-encodes id and secret before base64, byte for byte.
TEST(case_10, basic_authorization_matches_when_id_and_secret_have_reserved_bytes) {
  const auto c = load_case("case-10");
  const auto& input = c.at("input").as_object();
  const auto& expected = c.at("expected").as_object();
  const auto id = str(input.at("client_id"));
  const auto secret = str(input.at("client_secret"));

  const auto header = basic_authorization(id, secret);
  EXPECT_EQ("Authorization: " + header.reveal(), str(expected.at("client_secret_basic_header")));
  EXPECT_EQ(decode_base64(after_prefix(header.reveal(), "Basic ")),
            str(expected.at("decoded_header")));
  EXPECT_NE("Authorization: " + header.reveal(), before_note(str(expected.at("must_not_send"))));

  // The acceptance rule gives back exactly the original id and secret.
  EXPECT_EQ(decode_basic(header.reveal()), std::make_pair(id, secret));
}

// Plain credentials keep '-' and '_' unescaped (the preferred form).
TEST(case_10, basic_authorization_keeps_unreserved_when_credentials_are_plain) {
  const auto c = load_case("case-10");
  const auto& plain = c.at("input").at("vector_plain").as_object();
  const auto& expected = c.at("expected").as_object();
  const auto header =
      basic_authorization(str(plain.at("client_id")), str(plain.at("client_secret")));
  EXPECT_EQ("Authorization: " + header.reveal(), str(expected.at("vector_plain_header_preferred")));

  // The escaped variant decodes to the same credentials under the acceptance rule.
  const auto also = after_prefix(
      before_note(str(expected.at("vector_plain_header_also_decodable"))), "Authorization: ");
  EXPECT_NE(header.reveal(), also);
  EXPECT_EQ(decode_basic(also), decode_basic(header.reveal()));
}

// client_secret_post: the exact body, encoded once, and no Authorization header.
TEST(case_10, build_matches_body_when_auth_is_post) {
  const auto c = load_case("case-10");
  const auto& input = c.at("input").as_object();
  refresh_request_params params;
  params.token_url = "https://oauth.example.test/token";
  params.auth_method = client_auth_method::client_secret_post;
  params.client_id = str(input.at("client_id"));
  params.client_secret = secret_string(str(input.at("client_secret")));
  params.refresh_token = secret_string(str(input.at("refresh_token")));

  const auto request = build_refresh_request(params);
  EXPECT_EQ(request.body, before_note(str(c.at("expected").at("client_secret_post_body"))));
  EXPECT_EQ(find_header(request.headers, "Authorization"), std::nullopt);
  EXPECT_EQ(find_header(request.headers, "Content-Type"), "application/x-www-form-urlencoded");
  EXPECT_EQ(find_header(request.headers, "Accept"), "application/json");
}

// client_secret_basic: the exact header, and the secret nowhere in the body or URL.
TEST(case_10, build_matches_header_when_auth_is_basic) {
  const auto c = load_case("case-10");
  const auto& input = c.at("input").as_object();
  refresh_request_params params;
  params.token_url = "https://oauth.example.test/token";
  params.auth_method = client_auth_method::client_secret_basic;
  params.client_id = str(input.at("client_id"));
  params.client_secret = secret_string(str(input.at("client_secret")));
  params.refresh_token = secret_string(str(input.at("refresh_token")));

  const auto request = build_refresh_request(params);
  const auto authorization = find_header(request.headers, "Authorization");
  ASSERT_TRUE(authorization.has_value());
  EXPECT_EQ("Authorization: " + *authorization,
            str(c.at("expected").at("client_secret_basic_header")));
  EXPECT_EQ(request.body, "grant_type=refresh_token&refresh_token=" +
                              form_urlencode(str(input.at("refresh_token"))));
  EXPECT_FALSE(contains(request.body, "client_secret"));
  EXPECT_FALSE(contains(request.url, form_urlencode(str(input.at("client_secret")))));
}

// ---- case-11: rotation/concurrent-refresh (classification part) ---------------------------

// The winner's reply is a token set; the loser's 400 invalid_grant is a dead-grant verdict
// (re-reading the store before acting on it is the caller's job).
TEST(case_11, interpret_classifies_when_reply_is_first_or_later_use) {
  const auto c = load_case("case-11");
  const auto& provider = c.at("input").at("mock_provider").as_object();

  const auto& tokens = as_tokens(interpret_token_response(
      make_reply(provider.at("first_use_of_rt-A").as_object()), clock::now()));
  EXPECT_TRUE(tokens.access_token.equals("at-B"));
  EXPECT_TRUE(tokens.refresh_token->equals(str(c.at("expected").at("stored_refresh_token"))));

  const auto& failed = as_failure(interpret_token_response(
      make_reply(provider.at("any_later_use_of_rt-A").as_object()), clock::now()));
  EXPECT_EQ(failed.kind, refresh_failure_kind::invalid_grant);
  EXPECT_FALSE(contains(failed.message, "reuse"));
}

// ---- case-12: errors/invalid_grant-terminal -----------------------------------------------

// 400 invalid_grant is terminal: classified invalid_grant, description not quoted.
TEST(case_12, interpret_fails_invalid_grant_when_400_invalid_grant) {
  const auto c = load_case("case-12");
  const auto& response = c.at("input").at("provider_response").as_object();
  const auto& failed = as_failure(interpret_token_response(make_reply(response), clock::now()));
  EXPECT_EQ(failed.kind, refresh_failure_kind::invalid_grant);
  EXPECT_EQ(failed.code, "invalid_grant");
  EXPECT_FALSE(failed.retry_after.has_value());
  EXPECT_FALSE(contains(failed.message, str(response.at("body").at("error_description"))));
  EXPECT_FALSE(contains(failed.message, str(c.at("input").at("connection").at("refresh_token"))));
}

// ---- case-13: errors/transient-5xx-429-retry-after ----------------------------------------

// 503 and 429 are transient, and Retry-After in both forms sets the next attempt's time.
TEST(case_13, interpret_honours_retry_after_when_503_then_429) {
  const auto c = load_case("case-13");
  const auto& input = c.at("input").as_object();
  const auto& expected = c.at("expected").as_object();
  const auto& responses = input.at("responses_in_order").as_array();

  // Each reply arrives at its attempt's time; the next attempt is due after Retry-After.
  const std::vector<clock::time_point> attempts = {
      parse_iso(str(input.at("attempt_1_at"))),
      *timestamp_in(str(expected.at("attempt_2"))),
      *timestamp_in(str(expected.at("attempt_3"))),
  };
  for (std::size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    const auto& failed =
        as_failure(interpret_token_response(make_reply(responses[i].as_object()), attempts[i]));
    EXPECT_EQ(failed.kind, refresh_failure_kind::transient);
    EXPECT_EQ(failed.code, "http_" + std::to_string(responses[i].at("status").as_int64()));
    ASSERT_TRUE(failed.retry_after.has_value());
    EXPECT_EQ(attempts[i] + *failed.retry_after, attempts[i + 1]);
  }

  // The third reply succeeds with the rotated refresh token named in `final`.
  const auto final_text = str(expected.at("final"));
  const auto& tokens =
      as_tokens(interpret_token_response(make_reply(responses[2].as_object()), attempts[2]));
  EXPECT_TRUE(contains(final_text, tokens.access_token.reveal()));
  ASSERT_TRUE(tokens.refresh_token.has_value());
  EXPECT_TRUE(contains(final_text, tokens.refresh_token->reveal() + " replaces"));
}

// A transport failure and a 502 with an empty body are transient too.
TEST(case_13, interpret_fails_transient_when_no_reply_or_empty_502) {
  const auto c = load_case("case-13");
  static const std::regex status_code(R"(\b([1-5]\d\d)\b)");
  for (const auto& item : c.at("input").at("extra_vectors").as_array()) {
    const auto text = str(item);
    SCOPED_TRACE(text);
    http_response reply;
    std::smatch match;
    if (std::regex_search(text, match, status_code)) {
      reply.status = std::stoi(match[1].str());
      ASSERT_TRUE(contains(text, "empty body"));
    } else {
      reply.transport_error = contains(text, "timeout") ? "timeout" : "connection failed";
    }

    const auto& failed = as_failure(interpret_token_response(reply, clock::now()));
    EXPECT_EQ(failed.kind, refresh_failure_kind::transient);
    EXPECT_EQ(failed.code,
              reply.status == 0 ? "transport_error" : "http_" + std::to_string(reply.status));
  }
}

// ---- case-23: security/secrets-in-logs ----------------------------------------------------

std::vector<std::string> sentinels_of(const json::object& c) {
  const auto text = str(c.at("expected").at("grep"));
  static const std::regex sentinel(R"([A-Z]{2}-SENTINEL-[A-Za-z0-9-]*[A-Za-z0-9])");
  std::vector<std::string> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), sentinel);
       it != std::sregex_iterator(); ++it)
    out.push_back(it->str());
  EXPECT_EQ(out.size(), 4u);
  return out;
}

void expect_no_sentinel(const refresh_failure& failed, const std::vector<std::string>& sentinels) {
  for (const auto& sentinel : sentinels) {
    EXPECT_FALSE(contains(failed.message, sentinel)) << sentinel;
    EXPECT_FALSE(contains(failed.code, sentinel)) << sentinel;
  }
}

// A truncated 2xx is a transient parse failure whose message quotes nothing.
TEST(case_23, interpret_fails_transient_without_secrets_when_2xx_truncated) {
  const auto c = load_case("case-23");
  const auto sentinels = sentinels_of(c);
  const auto& failed = as_failure(interpret_token_response(
      make_reply(c.at("input").at("vector_truncated_2xx").as_object()), clock::now()));
  EXPECT_EQ(failed.kind, refresh_failure_kind::transient);
  EXPECT_EQ(failed.code, "malformed_response");
  EXPECT_TRUE(contains(failed.message, "unparseable"));
  expect_no_sentinel(failed, sentinels);
}

// A 400 that echoes the refresh token and client secret is invalid_grant, message clean.
TEST(case_23, interpret_fails_invalid_grant_without_secrets_when_400_echoes) {
  const auto c = load_case("case-23");
  const auto sentinels = sentinels_of(c);
  const auto& failed = as_failure(interpret_token_response(
      make_reply(c.at("input").at("vector_echoing_400").as_object()), clock::now()));
  EXPECT_EQ(failed.kind, refresh_failure_kind::invalid_grant);
  expect_no_sentinel(failed, sentinels);
}

// The same echo in every other failure shape stays out of the message as well.
TEST(case_23, interpret_omits_secrets_when_echo_comes_with_any_status) {
  const auto c = load_case("case-23");
  const auto sentinels = sentinels_of(c);
  auto vector = c.at("input").at("vector_echoing_400").as_object();
  for (int status : {200, 401, 403, 429, 500, 503}) {
    vector["status"] = status;
    const auto& failed = as_failure(interpret_token_response(make_reply(vector), clock::now()));
    expect_no_sentinel(failed, sentinels);
  }
}

// Refresh requests are form POSTs; no token or secret ever goes in the URL.
TEST(case_23, build_keeps_secrets_out_of_url_when_refreshing) {
  const auto c = load_case("case-23");
  const auto& input = c.at("input").as_object();
  for (auto method :
       {client_auth_method::client_secret_basic, client_auth_method::client_secret_post}) {
    refresh_request_params params;
    params.token_url = "https://oauth.example.test/token";
    params.auth_method = method;
    params.client_id = "client-23";
    params.client_secret = secret_string(str(input.at("client_secret")));
    params.refresh_token = secret_string(str(input.at("stored_refresh_token")));

    const auto request = build_refresh_request(params);
    EXPECT_EQ(request.method, "POST");
    EXPECT_EQ(find_header(request.headers, "Content-Type"), "application/x-www-form-urlencoded");
    EXPECT_TRUE(contains(request.body, "refresh_token=" + str(input.at("stored_refresh_token"))));
    for (const auto& sentinel : sentinels_of(c))
      EXPECT_FALSE(contains(request.url, sentinel)) << sentinel;
  }
}

// ---- coverage -----------------------------------------------------------------------------

// Every case of a kind this module owns is replayed above: a new case file fails this test
// until it is.
TEST(token_cases, covers_every_case_when_kind_belongs_to_net) {
  const std::set<std::string> covered = {"case-01", "case-02", "case-04", "case-05",
                                         "case-06", "case-09", "case-10", "case-11",
                                         "case-12", "case-13", "case-23"};
  const std::vector<std::string> owned_kinds = {"token-response/", "client-auth/", "errors/",
                                                "security/"};
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(LATCHKEY_CASES_DIR)) {
    if (entry.path().extension() != ".json")
      continue;
    const auto c = load_case(entry.path().stem().string());
    const auto kind = str(c.at("kind"));
    for (const auto& prefix : owned_kinds)
      if (kind.rfind(prefix, 0) == 0) {
        ++seen;
        EXPECT_TRUE(covered.count(str(c.at("id"))))
            << "not replayed: " << c.at("id") << " " << kind;
      }
  }
  EXPECT_GE(seen, 9);
}

}  // namespace
}  // namespace latchkey::oauth
