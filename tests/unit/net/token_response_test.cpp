#include "net/oauth/token_response.hpp"

#include <gtest/gtest.h>

#include "tests/unit/net/outcome_helpers.hpp"

#include <string>

namespace latchkey::oauth {
namespace {

using namespace std::chrono_literals;
using std::chrono::seconds;

const clock::time_point t0 =
    clock::time_point(std::chrono::sys_days(std::chrono::year(2026) / 12 / 4)) + 10h;

http_response reply(int status, std::string body, std::string content_type = "application/json") {
  http_response out;
  out.status = status;
  if (!content_type.empty())
    out.headers.emplace_back("Content-Type", std::move(content_type));
  out.body = std::move(body);
  return out;
}

using oauth::testing::as_failure;
using oauth::testing::as_tokens;

// ---- successes ----------------------------------------------------------------------------

// A complete RFC 6749 §5.1 reply maps field by field.
TEST(interpret_token_response, succeeds_when_reply_is_complete) {
  const auto outcome = interpret_token_response(
      reply(200, R"({"access_token":"at","token_type":"Bearer","expires_in":3600,)"
                 R"("refresh_token":"rt","scope":"a b","refresh_token_expires_in":7200})"),
      t0);
  const auto& tokens = as_tokens(outcome);
  EXPECT_TRUE(tokens.access_token.equals("at"));
  ASSERT_TRUE(tokens.refresh_token.has_value());
  EXPECT_TRUE(tokens.refresh_token->equals("rt"));
  EXPECT_EQ(tokens.token_type, "Bearer");
  EXPECT_EQ(tokens.access_expires_at, t0 + 3600s);
  EXPECT_EQ(tokens.refresh_expires_at, t0 + 7200s);
  EXPECT_EQ(tokens.scope, "a b");
}

// Only access_token is required; everything else stays absent.
TEST(interpret_token_response, leaves_optionals_absent_when_reply_is_minimal) {
  const auto& tokens =
      as_tokens(interpret_token_response(reply(200, R"({"access_token":"at"})"), t0));
  EXPECT_EQ(tokens.token_type, "Bearer");
  EXPECT_FALSE(tokens.refresh_token.has_value());
  EXPECT_FALSE(tokens.access_expires_at.has_value());
  EXPECT_FALSE(tokens.refresh_expires_at.has_value());
  EXPECT_FALSE(tokens.scope.has_value());
}

// Other 2xx statuses are successes too; null members count as absent.
TEST(interpret_token_response, succeeds_when_status_is_201_and_members_null) {
  const auto& tokens = as_tokens(interpret_token_response(
      reply(201, R"({"access_token":"at","refresh_token":null,"scope":null,"token_type":null,)"
                 R"("error":null})"),
      t0));
  EXPECT_FALSE(tokens.refresh_token.has_value());
  EXPECT_FALSE(tokens.scope.has_value());
}

// An empty refresh_token does not replace the stored one.
TEST(interpret_token_response, omits_refresh_token_when_empty_string) {
  const auto& tokens = as_tokens(
      interpret_token_response(reply(200, R"({"access_token":"at","refresh_token":""})"), t0));
  EXPECT_FALSE(tokens.refresh_token.has_value());
}

// expires_in as number, digit string, integral double, zero; all others absent.
TEST(interpret_token_response, reads_expires_in_when_integer_like) {
  const std::pair<const char*, std::optional<seconds>> vectors[] = {
      {"3600", 3600s},
      {"\"3600\"", 3600s},
      {"\"0003600\"", 3600s},
      {"3600.0", 3600s},
      {"0", 0s},
      {"\"315360000\"", 315360000s},
      {"-1", std::nullopt},
      {"\"-1\"", std::nullopt},
      {"3600.5", std::nullopt},
      {"\"3600.0\"", std::nullopt},
      {"\" 3600\"", std::nullopt},
      {"\"\"", std::nullopt},
      {"\"1e3\"", std::nullopt},
      {"\"soon\"", std::nullopt},
      {"true", std::nullopt},
      {"[3600]", std::nullopt},
      {"{}", std::nullopt},
      {"1e300", std::nullopt},
      {"99999999999999999999", std::nullopt},
      {"18446744073709551615", std::nullopt},
      {"\"99999999999\"", std::nullopt},
      {"400000000", std::nullopt},
  };
  for (const auto& [json, expected] : vectors) {
    const auto body = std::string(R"({"access_token":"at","expires_in":)") + json +
                      R"(,"refresh_token_expires_in":)" + json + "}";
    const auto& tokens = as_tokens(interpret_token_response(reply(200, body), t0));
    if (expected) {
      EXPECT_EQ(tokens.access_expires_at, t0 + *expected) << json;
      EXPECT_EQ(tokens.refresh_expires_at, t0 + *expected) << json;
    } else {
      EXPECT_FALSE(tokens.access_expires_at.has_value()) << json;
      EXPECT_FALSE(tokens.refresh_expires_at.has_value()) << json;
    }
  }
}

// token_type is normalised to "Bearer" in any case, or when absent.
TEST(interpret_token_response, normalises_token_type_when_bearer_in_any_case) {
  for (const char* type : {"\"bearer\"", "\"BEARER\"", "\"Bearer\"", "\"bEaReR\""}) {
    const auto body = std::string(R"({"access_token":"at","token_type":)") + type + "}";
    EXPECT_EQ(as_tokens(interpret_token_response(reply(200, body), t0)).token_type, "Bearer")
        << type;
  }
}

// Other token types are never sent as Bearer.
TEST(interpret_token_response, fails_unsupported_when_token_type_is_not_bearer) {
  for (const char* type :
       {"\"mac\"", "\"DPoP\"", "\"\"", "\"bearer \"", "\"bearerx\"", "1", "[]"}) {
    const auto body = std::string(R"({"access_token":"at","token_type":)") + type + "}";
    const auto& failed = as_failure(interpret_token_response(reply(200, body), t0));
    EXPECT_EQ(failed.kind, refresh_failure_kind::unsupported_token_type) << type;
    EXPECT_EQ(failed.code, "unsupported_token_type") << type;
  }
}

// A scope array (some providers) becomes the usual space-delimited string.
TEST(interpret_token_response, joins_scope_when_scope_is_array) {
  const auto& tokens = as_tokens(
      interpret_token_response(reply(200, R"({"access_token":"at","scope":["a","b c","d"]})"), t0));
  EXPECT_EQ(tokens.scope, "a b c d");
}

// An empty scope string is kept as "", not dropped.
TEST(interpret_token_response, keeps_scope_when_empty_string) {
  const auto& tokens =
      as_tokens(interpret_token_response(reply(200, R"({"access_token":"at","scope":""})"), t0));
  EXPECT_EQ(tokens.scope, "");
}

// A scope of an unusable type is treated as absent.
TEST(interpret_token_response, drops_scope_when_type_is_unusable) {
  for (const char* scope : {"1", "{}", "[\"a\",1]"}) {
    const auto body = std::string(R"({"access_token":"at","scope":)") + scope + "}";
    EXPECT_FALSE(as_tokens(interpret_token_response(reply(200, body), t0)).scope.has_value())
        << scope;
  }
}

// Unknown members and nested junk are ignored.
TEST(interpret_token_response, ignores_members_when_unknown) {
  const auto& tokens = as_tokens(interpret_token_response(
      reply(200, R"({"access_token":"at","x":{"y":[1,2,{"z":null}]},"id_token":"e.y.j"})"), t0));
  EXPECT_TRUE(tokens.access_token.equals("at"));
}

// A form body is parsed when declared, with escapes decoded.
TEST(interpret_token_response, parses_form_when_content_type_is_form) {
  const auto& tokens = as_tokens(interpret_token_response(
      reply(200, "access_token=a%2Bb&token_type=bearer&scope=x+y&expires_in=60&refresh_token=r",
            "application/x-www-form-urlencoded; charset=utf-8"),
      t0));
  EXPECT_TRUE(tokens.access_token.equals("a+b"));
  EXPECT_EQ(tokens.scope, "x y");
  EXPECT_EQ(tokens.access_expires_at, t0 + 60s);
  EXPECT_TRUE(tokens.refresh_token->equals("r"));
}

// Without a Content-Type (or with text/plain) JSON is tried, then form.
TEST(interpret_token_response, guesses_format_when_content_type_missing_or_unknown) {
  for (const char* type : {"", "text/plain", "application/octet-stream"}) {
    EXPECT_TRUE(std::holds_alternative<token_set>(
        interpret_token_response(reply(200, R"({"access_token":"at"})", type), t0)))
        << type;
    EXPECT_TRUE(std::holds_alternative<token_set>(
        interpret_token_response(reply(200, "access_token=at&token_type=bearer", type), t0)))
        << type;
  }
}

// +json media types and odd spellings of the JSON type are JSON.
TEST(interpret_token_response, parses_json_when_content_type_is_json_variant) {
  for (const char* type :
       {"APPLICATION/JSON", " application/json ; charset=utf-8", "application/vnd.provider+json"})
    EXPECT_TRUE(std::holds_alternative<token_set>(
        interpret_token_response(reply(200, R"({"access_token":"at"})", type), t0)))
        << type;
}

// ---- 2xx failures -------------------------------------------------------------------------

// Truncated, empty, non-object and declared-JSON-but-form bodies are malformed, retried later.
TEST(interpret_token_response, fails_transient_when_2xx_body_is_unparseable) {
  for (const char* body : {"{\"access_token\":\"at\"", "", "[]", "\"at\"", "null",
                           "access_token=at", "{\"access_token\":\"at\"} trailing"}) {
    const auto& failed = as_failure(interpret_token_response(reply(200, body), t0));
    EXPECT_EQ(failed.kind, refresh_failure_kind::transient) << body;
    EXPECT_EQ(failed.code, "malformed_response") << body;
  }
}

// An HTML page with no Content-Type is neither JSON nor form.
TEST(interpret_token_response, fails_transient_when_2xx_body_is_html) {
  const auto& failed =
      as_failure(interpret_token_response(reply(200, "<html><body>hi</body></html>", ""), t0));
  EXPECT_EQ(failed.code, "malformed_response");
}

// Truncated JSON with no Content-Type is not mistaken for a form body either.
TEST(interpret_token_response, fails_transient_when_untyped_body_is_truncated_json) {
  const auto& failed =
      as_failure(interpret_token_response(reply(200, R"({"access_token":"at",)", ""), t0));
  EXPECT_EQ(failed.kind, refresh_failure_kind::transient);
  EXPECT_EQ(failed.code, "malformed_response");
}

// No access token: transient, never a reconnect.
TEST(interpret_token_response, fails_transient_when_access_token_missing) {
  for (const char* body : {"{}", R"({"access_token":""})", R"({"access_token":null})",
                           R"({"token_type":"Bearer","refresh_token":"rt"})"}) {
    const auto& failed = as_failure(interpret_token_response(reply(200, body), t0));
    EXPECT_EQ(failed.kind, refresh_failure_kind::transient) << body;
    EXPECT_EQ(failed.code, "missing_access_token") << body;
  }
}

// Tokens of the wrong type or with bytes that could break a header are refused.
TEST(interpret_token_response, fails_transient_when_token_is_malformed) {
  for (const char* body :
       {R"({"access_token":123})", R"({"access_token":["a"]})",
        R"({"access_token":"a\r\nX-Injected: 1"})",
        R"({"access_token":"at","refresh_token":"r\u0000t"})", R"({"access_token":"caf\u00e9"})"}) {
    const auto& failed = as_failure(interpret_token_response(reply(200, body), t0));
    EXPECT_EQ(failed.kind, refresh_failure_kind::transient) << body;
    EXPECT_EQ(failed.code, "malformed_response") << body;
  }
}

// An `error` member inside a 2xx is classified by its code.
TEST(interpret_token_response, classifies_error_when_2xx_carries_error) {
  const std::tuple<const char*, refresh_failure_kind, const char*> vectors[] = {
      {R"({"error":"invalid_grant"})", refresh_failure_kind::invalid_grant, "invalid_grant"},
      {R"({"error":"bad_refresh_token"})", refresh_failure_kind::invalid_grant,
       "bad_refresh_token"},
      {R"({"error":"incorrect_client_credentials"})", refresh_failure_kind::permanent,
       "incorrect_client_credentials"},
      {R"({"error":"something_new"})", refresh_failure_kind::permanent, "something_new"},
      {R"({"error":"temporarily_unavailable"})", refresh_failure_kind::transient,
       "temporarily_unavailable"},
      {R"({"error":"invalid_grant","access_token":"at"})", refresh_failure_kind::invalid_grant,
       "invalid_grant"},
      {R"({"error":{"code":1}})", refresh_failure_kind::permanent, "invalid_error_code"},
      {R"({"error":""})", refresh_failure_kind::permanent, "invalid_error_code"},
  };
  for (const auto& [body, kind, code] : vectors) {
    const auto& failed = as_failure(interpret_token_response(reply(200, body), t0));
    EXPECT_EQ(failed.kind, kind) << body;
    EXPECT_EQ(failed.code, code) << body;
  }
}

// ---- non-2xx ------------------------------------------------------------------------------

// 400/401 map the OAuth error code (RFC 6749 §5.2).
TEST(interpret_token_response, classifies_error_when_status_is_400_or_401) {
  const std::tuple<int, const char*, refresh_failure_kind, const char*> vectors[] = {
      {400, "invalid_grant", refresh_failure_kind::invalid_grant, "invalid_grant"},
      {401, "invalid_grant", refresh_failure_kind::invalid_grant, "invalid_grant"},
      {400, "invalid_client", refresh_failure_kind::permanent, "invalid_client"},
      {401, "invalid_client", refresh_failure_kind::permanent, "invalid_client"},
      {400, "unauthorized_client", refresh_failure_kind::permanent, "unauthorized_client"},
      {400, "invalid_scope", refresh_failure_kind::permanent, "invalid_scope"},
      {400, "invalid_request", refresh_failure_kind::permanent, "invalid_request"},
      {400, "unsupported_grant_type", refresh_failure_kind::permanent, "unsupported_grant_type"},
      {400, "bad.code-1", refresh_failure_kind::permanent, "bad.code-1"},
  };
  for (const auto& [status, error, kind, code] : vectors) {
    const auto body = std::string(R"({"error":")") + error + R"(","error_description":"x"})";
    const auto& failed = as_failure(interpret_token_response(reply(status, body), t0));
    EXPECT_EQ(failed.kind, kind) << status << " " << error;
    EXPECT_EQ(failed.code, code) << status << " " << error;
  }
}

// Codes outside [A-Za-z0-9_.-]{1,64} are replaced, not copied.
TEST(interpret_token_response, replaces_code_when_error_code_is_ill_formed) {
  const std::string long_code(65, 'a');
  for (const std::string& error : {std::string("invalid grant"), std::string("a\\u000d\\u000ab"),
                                   std::string("<script>"), long_code, std::string("caf\\u00e9")}) {
    const auto body = R"({"error":")" + error + R"("})";
    const auto& failed = as_failure(interpret_token_response(reply(400, body), t0));
    EXPECT_EQ(failed.kind, refresh_failure_kind::permanent) << error;
    EXPECT_EQ(failed.code, "invalid_error_code") << error;
  }
  const auto& ok_length = as_failure(
      interpret_token_response(reply(400, R"({"error":")" + std::string(64, 'a') + R"("})"), t0));
  EXPECT_EQ(ok_length.code, std::string(64, 'a'));
}

// 400/401 without a readable error are permanent with an http_ code.
TEST(interpret_token_response, fails_permanent_when_400_has_no_error) {
  for (int status : {400, 401}) {
    const auto& failed =
        as_failure(interpret_token_response(reply(status, "nope", "text/html"), t0));
    EXPECT_EQ(failed.kind, refresh_failure_kind::permanent);
    EXPECT_EQ(failed.code, "http_" + std::to_string(status));
  }
}

// 408, 425, 429 and 5xx are transient whatever the body says.
TEST(interpret_token_response, fails_transient_when_status_is_retryable) {
  for (int status : {408, 425, 429, 500, 502, 503, 504, 599}) {
    const auto& failed =
        as_failure(interpret_token_response(reply(status, R"({"error":"invalid_grant"})"), t0));
    EXPECT_EQ(failed.kind, refresh_failure_kind::transient) << status;
    EXPECT_EQ(failed.code, "http_" + std::to_string(status));
  }
}

// Other 4xx and 3xx are permanent, even when the body says invalid_grant.
TEST(interpret_token_response, fails_permanent_when_status_is_other_4xx_or_3xx) {
  for (int status : {301, 302, 307, 402, 403, 404, 405, 409, 410, 415, 422, 451}) {
    const auto& failed =
        as_failure(interpret_token_response(reply(status, R"({"error":"invalid_grant"})"), t0));
    EXPECT_EQ(failed.kind, refresh_failure_kind::permanent) << status;
    EXPECT_EQ(failed.code, "http_" + std::to_string(status));
  }
}

// A 1xx final status or one outside 100-599 is a broken server: retry later.
TEST(interpret_token_response, fails_transient_when_status_is_invalid) {
  for (int status : {100, 101, 600, 999, -1}) {
    const auto& failed = as_failure(interpret_token_response(reply(status, "{}"), t0));
    EXPECT_EQ(failed.kind, refresh_failure_kind::transient) << status;
    EXPECT_EQ(failed.code, "malformed_response") << status;
  }
}

// No response at all is a transport error, with the client's short reason.
TEST(interpret_token_response, fails_transient_when_transport_failed) {
  http_response none;
  none.transport_error = "timeout";
  const auto& failed = as_failure(interpret_token_response(none, t0));
  EXPECT_EQ(failed.kind, refresh_failure_kind::transient);
  EXPECT_EQ(failed.code, "transport_error");
  EXPECT_NE(failed.message.find("timeout"), std::string::npos);
}

// A transport reason that is not a short plain phrase is not copied into the message.
TEST(interpret_token_response, drops_reason_when_transport_reason_is_unexpected) {
  http_response none;
  none.transport_error = "Secret-Token-123";
  const auto& failed = as_failure(interpret_token_response(none, t0));
  EXPECT_EQ(failed.message.find("Secret"), std::string::npos);
}

// Retry-After is carried on transient failures.
TEST(interpret_token_response, sets_retry_after_when_header_present) {
  auto r = reply(503, "", "text/html");
  r.headers.emplace_back("retry-after", "30");
  EXPECT_EQ(as_failure(interpret_token_response(r, t0)).retry_after, 30s);

  auto no_header = reply(503, "", "text/html");
  EXPECT_EQ(as_failure(interpret_token_response(no_header, t0)).retry_after, std::nullopt);
}

// Messages never contain the description, a token, or any other body byte.
TEST(interpret_token_response, omits_body_when_building_messages) {
  const std::string sentinel = "SENTINEL";
  const std::pair<int, std::string> vectors[] = {
      {400, R"({"error":"invalid_grant","error_description":"SENTINEL"})"},
      {400, R"({"error":"SENTINEL bad"})"},
      {401, R"({"error":"invalid_client","error_description":"SENTINEL"})"},
      {200, R"({"error":"bad_refresh_token","error_description":"SENTINEL"})"},
      {200, R"({"access_token":"SENTINEL","token_type":"SENTINEL"})"},
      {200, R"({"access_token":"SENTINEL)"},
      {200, R"({"refresh_token":"SENTINEL"})"},
      {503, "SENTINEL"},
      {404, "SENTINEL"},
  };
  for (const auto& [status, body] : vectors) {
    const auto& failed = as_failure(interpret_token_response(reply(status, body), t0));
    EXPECT_EQ(failed.message.find(sentinel), std::string::npos) << failed.message;
    EXPECT_EQ(failed.code.find(sentinel), std::string::npos) << failed.code;
  }
}

// Deeply nested or huge input fails cleanly, without throwing.
TEST(interpret_token_response, fails_cleanly_when_body_is_hostile) {
  const std::string deep = std::string(10000, '[') + std::string(10000, ']');
  EXPECT_EQ(as_failure(interpret_token_response(reply(200, deep), t0)).code, "malformed_response");
  const std::string big = R"({"access_token":")" + std::string(1 << 20, 'a') + R"("})";
  EXPECT_TRUE(std::holds_alternative<token_set>(interpret_token_response(reply(200, big), t0)));
}

// ---- parse_retry_after --------------------------------------------------------------------

// delta-seconds, with optional whitespace.
TEST(parse_retry_after, returns_seconds_when_value_is_delta) {
  EXPECT_EQ(parse_retry_after("120", t0), 120s);
  EXPECT_EQ(parse_retry_after(" 0 ", t0), 0s);
  EXPECT_EQ(parse_retry_after("\t7", t0), 7s);
  EXPECT_EQ(parse_retry_after("9999999999", t0), 9999999999s);
}

// IMF-fixdate relative to now; a past date is 0; sub-second remainders round up.
TEST(parse_retry_after, returns_difference_when_value_is_imf_fixdate) {
  EXPECT_EQ(parse_retry_after("Fri, 04 Dec 2026 10:03:00 GMT", t0), 180s);
  EXPECT_EQ(parse_retry_after("Fri, 04 Dec 2026 09:00:00 GMT", t0), 0s);
  EXPECT_EQ(parse_retry_after("Fri, 04 Dec 2026 10:00:01 GMT", t0 + 500ms), 1s);
  EXPECT_EQ(parse_retry_after("Sat, 05 Dec 2026 10:00:00 GMT", t0), 86400s);
}

// The two obsolete HTTP-date forms are accepted too (RFC 9110 §5.6.7 MUST).
TEST(parse_retry_after, returns_difference_when_value_is_obsolete_date) {
  EXPECT_EQ(parse_retry_after("Friday, 04-Dec-26 10:01:00 GMT", t0), 60s);
  EXPECT_EQ(parse_retry_after("Fri Dec  4 10:02:00 2026", t0), 120s);
  EXPECT_EQ(parse_retry_after("Fri Dec 14 10:00:00 2026", t0), 10 * 86400s);
  // A two-digit year far ahead means last century: in the past, so 0.
  EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", t0), 0s);
}

// Garbage, negative numbers, impossible dates and overlong numbers give nullopt.
TEST(parse_retry_after, returns_nullopt_when_value_is_garbage) {
  for (const char* value :
       {"", " ", "soon", "-5", "1.5", "12s", "99999999999", "Fri, 04 Dec 2026 10:03:00 UTC",
        "Fri, 31 Feb 2026 10:03:00 GMT", "Fri, 04 Dec 2026 25:03:00 GMT",
        "Fri, 4 Dec 2026 10:03:00 GMT", "fri, 04 dec 2026 10:03:00 GMT",
        "Fri, 04 Dec 2026 10:03:00 GMT extra", "2026-12-04T10:03:00Z"})
    EXPECT_EQ(parse_retry_after(value, t0), std::nullopt) << value;
}

}  // namespace
}  // namespace latchkey::oauth
