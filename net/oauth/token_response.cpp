#include "net/oauth/token_response.hpp"

#include <openssl/crypto.h>

#include <array>
#include <boost/json.hpp>
#include <cmath>
#include <cstdint>
#include <new>

#include "net/oauth/token_request.hpp"

namespace latchkey::oauth {

namespace {

namespace json = boost::json;

using std::chrono::seconds;

// Lifetimes beyond this are not believed: a bogus expires_in must not become an expiry in the
// far future (tests/cases/case-02.json).
constexpr std::int64_t max_lifetime_seconds = 10LL * 366 * 24 * 3600;

// The parsed body holds tokens; every block it used is wiped when released, like the
// http_response it came from. Blocks come from plain operator new: Boost.JSON may pass
// different alignments to allocate and deallocate for one block (ASan caught it), and never
// needs more than the default.
class wiping_resource final : public json::memory_resource {
  void* do_allocate(std::size_t n, std::size_t align) override {
    if (align > __STDCPP_DEFAULT_NEW_ALIGNMENT__)
      throw std::bad_alloc();
    return ::operator new(n);
  }

  void do_deallocate(void* p, std::size_t n, std::size_t) override {
    OPENSSL_cleanse(p, n);
    ::operator delete(p);
  }

  bool do_is_equal(const json::memory_resource& other) const noexcept override {
    return this == &other;
  }
};

// ---- Body parsing -------------------------------------------------------------------------

enum class body_format { json, form, unknown };

body_format format_of(const header_list& headers) {
  const auto content_type = find_header(headers, "Content-Type");
  if (!content_type)
    return body_format::unknown;

  // The media type without parameters, case-insensitive (RFC 9110 §8.3.1).
  std::string media = content_type->substr(0, content_type->find(';'));
  while (!media.empty() && (media.back() == ' ' || media.back() == '\t'))
    media.pop_back();
  std::size_t start = 0;
  while (start < media.size() && (media[start] == ' ' || media[start] == '\t'))
    ++start;
  media.erase(0, start);
  for (auto& c : media)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');

  if (media == "application/json" || (media.size() > 5 && media.ends_with("+json")))
    return body_format::json;
  if (media == "application/x-www-form-urlencoded")
    return body_format::form;
  return body_format::unknown;
}

std::optional<json::object> parse_json_object(std::string_view body, const json::storage_ptr& sp) {
  boost::system::error_code ec;
  json::parser parser(sp);
  parser.reset(sp);
  parser.write(body.data(), body.size(), ec);
  if (ec)
    return std::nullopt;
  json::value value = parser.release();
  if (!value.is_object())
    return std::nullopt;
  return std::move(value.as_object());
}

// Bytes a form serializer never emits and RFC 3986 §2 allows nowhere in a URI: their presence
// means the body is something else (an HTML error page, truncated JSON).
bool is_foreign_to_forms(char c) {
  const auto byte = static_cast<unsigned char>(c);
  if (byte <= 0x20 || byte >= 0x7f)
    return true;
  for (char bad : std::string_view("<>\"{}|\\^`"))
    if (c == bad)
      return true;
  return false;
}

// application/x-www-form-urlencoded (GitHub without Accept: application/json, case-05).
std::optional<json::object> parse_form_object(std::string_view body, const json::storage_ptr& sp) {
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r'))
    body.remove_suffix(1);
  if (body.empty())
    return std::nullopt;
  for (char c : body)
    if (is_foreign_to_forms(c))
      return std::nullopt;

  json::object out(sp);
  while (!body.empty()) {
    const auto amp = body.find('&');
    const auto pair = body.substr(0, amp);
    body = amp == std::string_view::npos ? std::string_view{} : body.substr(amp + 1);
    if (pair.empty())
      continue;

    const auto eq = pair.find('=');
    std::string name = form_urldecode(pair.substr(0, eq));
    std::string value =
        eq == std::string_view::npos ? std::string{} : form_urldecode(pair.substr(eq + 1));
    if (!out.contains(name))
      out.emplace(name, json::string(value, sp));
    wipe_string(name);
    wipe_string(value);
  }
  return out;
}

std::optional<json::object> parse_body(const http_response& reply, const json::storage_ptr& sp) {
  switch (format_of(reply.headers)) {
    case body_format::json:
      return parse_json_object(reply.body, sp);
    case body_format::form:
      return parse_form_object(reply.body, sp);
    case body_format::unknown:
      break;
  }
  if (auto object = parse_json_object(reply.body, sp))
    return object;
  return parse_form_object(reply.body, sp);
}

// ---- Field extraction ---------------------------------------------------------------------

// A member that is JSON null counts as absent.
const json::value* member(const json::object& body, std::string_view name) {
  const auto* value = body.if_contains(name);
  return (value == nullptr || value->is_null()) ? nullptr : value;
}

// expires_in and refresh_token_expires_in: a non-negative integer as a number or a string of
// digits (Google and Azure send "3600", case-02; form bodies only have strings, case-05).
std::optional<seconds> parse_lifetime(const json::value* value) {
  if (value == nullptr)
    return std::nullopt;

  std::int64_t n = -1;
  if (const auto* i = value->if_int64()) {
    n = *i;
  } else if (const auto* u = value->if_uint64()) {
    n = *u > static_cast<std::uint64_t>(max_lifetime_seconds) ? -1 : static_cast<std::int64_t>(*u);
  } else if (const auto* d = value->if_double()) {
    // 3600.0 is an integer spelled oddly; 3600.5 and NaN are not.
    if (std::isfinite(*d) && *d >= 0 && *d <= max_lifetime_seconds && std::floor(*d) == *d)
      n = static_cast<std::int64_t>(*d);
  } else if (const auto* s = value->if_string()) {
    if (s->empty() || s->size() > 12)
      return std::nullopt;
    n = 0;
    for (char c : *s) {
      if (c < '0' || c > '9')
        return std::nullopt;
      n = n * 10 + (c - '0');
    }
  }

  if (n < 0 || n > max_lifetime_seconds)
    return std::nullopt;
  return seconds(n);
}

// RFC 6749 §A.12: access-token = 1*VSCHAR. Anything else could break the Authorization header
// (a CR/LF would inject a header), so such a token is not accepted.
bool is_valid_token(std::string_view token) {
  if (token.empty())
    return false;
  for (char c : token)
    if (c < 0x20 || c > 0x7e)
      return false;
  return true;
}

bool is_valid_error_code(std::string_view code) {
  if (code.empty() || code.size() > 64)
    return false;
  for (char c : code) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok)
      return false;
  }
  return true;
}

// The body's `error` member (RFC 6749 §5.2) as a code safe to log; nullopt when there is none.
std::optional<std::string> error_code_of(const json::object& body) {
  const auto* value = member(body, "error");
  if (value == nullptr)
    return std::nullopt;
  const auto* text = value->if_string();
  if (text == nullptr || !is_valid_error_code(*text))
    return std::string("invalid_error_code");
  return std::string(text->data(), text->size());
}

refresh_failure_kind kind_of_error_code(std::string_view code) {
  // The grant itself is dead (RFC 6749 §5.2); GitHub says bad_refresh_token (case-06).
  if (code == "invalid_grant" || code == "bad_refresh_token")
    return refresh_failure_kind::invalid_grant;

  // Codes that say "later" (RFC 6749 §4.1.2.1, RFC 8628 §3.5), seen from token endpoints too.
  if (code == "temporarily_unavailable" || code == "server_error" || code == "slow_down")
    return refresh_failure_kind::transient;

  // invalid_client, unauthorized_client, invalid_scope, GitHub's incorrect_client_credentials,
  // and any code we do not know: retrying the same request will not help, but the grant may
  // be fine, so it is not thrown away.
  return refresh_failure_kind::permanent;
}

// ---- Failures -----------------------------------------------------------------------------

// Messages are fixed text plus the status and a validated code: never a body byte, since the
// body may echo a token or a client secret (case-23).
refresh_failure make_refresh_failure(refresh_failure_kind kind, std::string code,
                                     std::string_view what, int http_status) {
  refresh_failure out{kind, std::move(code), {}, std::nullopt};
  out.message = std::string(what) + " (HTTP " + std::to_string(http_status) + ", " + out.code + ")";
  return out;
}

std::string http_code(int http_status) {
  return "http_" + std::to_string(http_status);
}

// The client's transport reasons are short fixed phrases; anything else is left out rather
// than trusted.
std::string safe_transport_reason(std::string_view reason) {
  if (reason.empty() || reason.size() > 48)
    return "unknown";
  for (char c : reason)
    if (!((c >= 'a' && c <= 'z') || c == ' '))
      return "unknown";
  return std::string(reason);
}

bool is_transient_status(int http_status) {
  return http_status == 408 || http_status == 425 || http_status == 429 ||
         (http_status >= 500 && http_status <= 599);
}

// ---- A 2xx reply --------------------------------------------------------------------------

refresh_outcome interpret_success_status(const http_response& reply, const json::object* body,
                                         clock::time_point received_at) {
  const int http_status = reply.status;

  // Unparseable (case-23's truncated JSON) or empty: the provider's fault, try again later.
  if (body == nullptr)
    return make_refresh_failure(refresh_failure_kind::transient, "malformed_response",
                                "token endpoint sent an unparseable body", http_status);

  // An error inside a 2xx is still an error (GitHub, case-06).
  if (auto code = error_code_of(*body)) {
    const auto kind = kind_of_error_code(*code);
    return make_refresh_failure(kind, std::move(*code), "token endpoint refused the refresh",
                                http_status);
  }

  // No access token: not a success (case-06, second vector), but nothing says the grant died.
  const auto* access = member(*body, "access_token");
  if (access == nullptr || (access->is_string() && access->get_string().empty()))
    return make_refresh_failure(refresh_failure_kind::transient, "missing_access_token",
                                "token endpoint sent no access token", http_status);
  if (!access->is_string() || !is_valid_token(access->get_string()))
    return make_refresh_failure(refresh_failure_kind::transient, "malformed_response",
                                "token endpoint sent a malformed access token", http_status);

  // token_type is case-insensitive (RFC 6749 §5.1) and must be Bearer to be sent as one
  // (RFC 6750 §4, case-04); an absent type is tolerated as Bearer.
  if (const auto* type = member(*body, "token_type")) {
    const auto* text = type->if_string();
    bool bearer = text != nullptr && text->size() == 6;
    for (std::size_t i = 0; bearer && i < 6; ++i) {
      char c = (*text)[i];
      if (c >= 'A' && c <= 'Z')
        c = static_cast<char>(c - 'A' + 'a');
      bearer = c == "bearer"[i];
    }
    if (!bearer)
      return make_refresh_failure(
          refresh_failure_kind::unsupported_token_type, "unsupported_token_type",
          "token endpoint issued a token that is not a Bearer token", http_status);
  }

  // A rotated refresh token replaces the stored one; none (or "") means keep it (RFC 6749 §6,
  // case-01). A malformed one is refused whole rather than stored.
  std::optional<secret_string> refresh;
  if (const auto* value = member(*body, "refresh_token")) {
    const auto* text = value->if_string();
    if (text != nullptr && !text->empty()) {
      if (!is_valid_token(*text))
        return make_refresh_failure(refresh_failure_kind::transient, "malformed_response",
                                    "token endpoint sent a malformed refresh token", http_status);
      refresh = secret_string(std::string(text->data(), text->size()));
    }
  }

  token_set tokens;
  tokens.access_token = secret_string(std::string(access->get_string()));
  tokens.refresh_token = std::move(refresh);

  // Lifetimes count from receipt (RFC 6749 §5.1: "from the time the response was generated").
  if (const auto lifetime = parse_lifetime(member(*body, "expires_in")))
    tokens.access_expires_at = received_at + *lifetime;
  if (const auto lifetime = parse_lifetime(member(*body, "refresh_token_expires_in")))
    tokens.refresh_expires_at = received_at + *lifetime;

  // scope: a space-delimited string (RFC 6749 §3.3), "" included (case-05); some providers send
  // an array of strings. Absent or unusable means "as granted".
  if (const auto* value = member(*body, "scope")) {
    if (const auto* text = value->if_string()) {
      tokens.scope = std::string(text->data(), text->size());
    } else if (const auto* items = value->if_array()) {
      std::string joined;
      bool all_strings = true;
      for (const auto& item : *items) {
        const auto* text = item.if_string();
        if (text == nullptr) {
          all_strings = false;
          break;
        }
        if (!joined.empty())
          joined += ' ';
        joined.append(text->data(), text->size());
      }
      if (all_strings)
        tokens.scope = std::move(joined);
    }
  }

  return tokens;
}

refresh_outcome interpret(const http_response& reply, clock::time_point received_at) {
  const int http_status = reply.status;

  // No response at all: a network problem, never a verdict on the grant (case-13).
  if (reply.transport_failed())
    return make_refresh_failure(
        refresh_failure_kind::transient, "transport_error",
        "token endpoint not reached: " + safe_transport_reason(reply.transport_error), 0);

  // Parse whatever came back, into storage that is wiped afterwards.
  const auto storage = json::make_shared_resource<wiping_resource>();
  const auto body = parse_body(reply, storage);
  const json::object* fields = body ? &*body : nullptr;

  // 2xx: a token set, or an error disguised as success.
  if (http_status >= 200 && http_status <= 299)
    return interpret_success_status(reply, fields, received_at);

  // Overload, outage, timeouts (RFC 9110 §15.5.9, §15.6, RFC 6585 §4): retry, honouring
  // Retry-After. The body does not decide: a 503 page saying invalid_grant kills no grant.
  if (is_transient_status(http_status)) {
    auto out = make_refresh_failure(refresh_failure_kind::transient, http_code(http_status),
                                    "token endpoint temporarily unavailable", http_status);
    if (const auto value = find_header(reply.headers, "Retry-After"))
      out.retry_after = parse_retry_after(*value, received_at);
    return out;
  }

  // 400 and 401 carry the OAuth error (RFC 6749 §5.2).
  if (http_status == 400 || http_status == 401) {
    if (auto code = fields != nullptr ? error_code_of(*fields) : std::nullopt) {
      const auto kind = kind_of_error_code(*code);
      return make_refresh_failure(kind, std::move(*code), "token endpoint refused the refresh",
                                  http_status);
    }
    return make_refresh_failure(refresh_failure_kind::permanent, http_code(http_status),
                                "token endpoint refused the refresh", http_status);
  }

  // Redirects (not followed: a token must not follow one) and other 4xx are configuration
  // problems that retrying will not fix.
  if (http_status >= 300 && http_status <= 499)
    return make_refresh_failure(refresh_failure_kind::permanent, http_code(http_status),
                                "token endpoint refused the request", http_status);

  // 1xx as a final reply or a status outside 100-599: a broken server or proxy.
  return make_refresh_failure(refresh_failure_kind::transient, "malformed_response",
                              "token endpoint sent an invalid status", http_status);
}

// ---- HTTP-date (RFC 9110 §5.6.7) ----------------------------------------------------------

class date_cursor {
 public:
  explicit date_cursor(std::string_view text) : text_(text) {}

  bool literal(std::string_view expected) {
    if (!text_.starts_with(expected))
      return false;
    text_.remove_prefix(expected.size());
    return true;
  }

  std::optional<int> digits(std::size_t count) {
    if (text_.size() < count)
      return std::nullopt;
    int n = 0;
    for (std::size_t i = 0; i < count; ++i) {
      if (text_[i] < '0' || text_[i] > '9')
        return std::nullopt;
      n = n * 10 + (text_[i] - '0');
    }
    text_.remove_prefix(count);
    return n;
  }

  // Index of the first of `names` that the text starts with.
  template <std::size_t N>
  std::optional<int> one_of(const std::array<std::string_view, N>& names) {
    for (std::size_t i = 0; i < N; ++i)
      if (literal(names[i]))
        return static_cast<int>(i);
    return std::nullopt;
  }

  bool at_end() const { return text_.empty(); }

 private:
  std::string_view text_;
};

constexpr std::array<std::string_view, 7> short_days = {"Mon", "Tue", "Wed", "Thu",
                                                        "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> long_days = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};
constexpr std::array<std::string_view, 12> months = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

struct date_parts {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
};

// time-of-day = hour ":" minute ":" second
bool read_time(date_cursor& in, date_parts& parts) {
  const auto h = in.digits(2);
  if (!h || !in.literal(":"))
    return false;
  const auto m = in.digits(2);
  if (!m || !in.literal(":"))
    return false;
  const auto s = in.digits(2);
  if (!s)
    return false;
  parts.hour = *h;
  parts.minute = *m;
  parts.second = *s;
  return true;
}

// IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
std::optional<date_parts> parse_imf_fixdate(std::string_view text) {
  date_cursor in(text);
  date_parts parts;
  if (!in.one_of(short_days) || !in.literal(", "))
    return std::nullopt;
  const auto day = in.digits(2);
  if (!day || !in.literal(" "))
    return std::nullopt;
  const auto month = in.one_of(months);
  if (!month || !in.literal(" "))
    return std::nullopt;
  const auto year = in.digits(4);
  if (!year || !in.literal(" ") || !read_time(in, parts) || !in.literal(" GMT") || !in.at_end())
    return std::nullopt;
  parts.year = *year;
  parts.month = *month + 1;
  parts.day = *day;
  return parts;
}

// Obsolete RFC 850 form: "Sunday, 06-Nov-94 08:49:37 GMT"
std::optional<date_parts> parse_rfc850_date(std::string_view text, int current_year) {
  date_cursor in(text);
  date_parts parts;
  if (!in.one_of(long_days) || !in.literal(", "))
    return std::nullopt;
  const auto day = in.digits(2);
  if (!day || !in.literal("-"))
    return std::nullopt;
  const auto month = in.one_of(months);
  if (!month || !in.literal("-"))
    return std::nullopt;
  const auto year = in.digits(2);
  if (!year || !in.literal(" ") || !read_time(in, parts) || !in.literal(" GMT") || !in.at_end())
    return std::nullopt;

  // A two-digit year more than 50 years ahead is in the past century (RFC 9110 §5.6.7).
  int full_year = current_year / 100 * 100 + *year;
  if (full_year > current_year + 50)
    full_year -= 100;
  else if (full_year + 100 <= current_year + 50)
    full_year += 100;
  parts.year = full_year;
  parts.month = *month + 1;
  parts.day = *day;
  return parts;
}

// Obsolete asctime form: "Sun Nov  6 08:49:37 1994"
std::optional<date_parts> parse_asctime_date(std::string_view text) {
  date_cursor in(text);
  date_parts parts;
  if (!in.one_of(short_days) || !in.literal(" "))
    return std::nullopt;
  const auto month = in.one_of(months);
  if (!month || !in.literal(" "))
    return std::nullopt;
  std::optional<int> day = in.literal(" ") ? in.digits(1) : in.digits(2);
  if (!day || !in.literal(" ") || !read_time(in, parts) || !in.literal(" "))
    return std::nullopt;
  const auto year = in.digits(4);
  if (!year || !in.at_end())
    return std::nullopt;
  parts.year = *year;
  parts.month = *month + 1;
  parts.day = *day;
  return parts;
}

std::optional<clock::time_point> parse_http_date(std::string_view text, clock::time_point now) {
  using namespace std::chrono;
  const int current_year = static_cast<int>(year_month_day(floor<days>(now)).year());

  auto parts = parse_imf_fixdate(text);
  if (!parts)
    parts = parse_rfc850_date(text, current_year);
  if (!parts)
    parts = parse_asctime_date(text);
  if (!parts)
    return std::nullopt;

  // A leap second (60) is read as the second before it.
  const year_month_day date{year(parts->year), month(static_cast<unsigned>(parts->month)),
                            day(static_cast<unsigned>(parts->day))};
  if (!date.ok() || parts->hour > 23 || parts->minute > 59 || parts->second > 60)
    return std::nullopt;
  const auto second_of_minute = parts->second == 60 ? 59 : parts->second;
  return time_point_cast<clock::duration>(sys_days(date) + hours(parts->hour) +
                                          minutes(parts->minute) + seconds(second_of_minute));
}

}  // namespace

refresh_outcome interpret_token_response(const http_response& reply,
                                         clock::time_point received_at) {
  // Nothing a provider sends may escape as an exception (Boost.JSON allocation failures, say).
  try {
    return interpret(reply, received_at);
  } catch (...) {
    return make_refresh_failure(refresh_failure_kind::transient, "malformed_response",
                                "token endpoint reply could not be processed", reply.status);
  }
}

std::optional<seconds> parse_retry_after(std::string_view value, clock::time_point now) {
  // Optional whitespace around a field value (RFC 9110 §5.5).
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
    value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
    value.remove_suffix(1);
  if (value.empty())
    return std::nullopt;

  // delta-seconds = 1*DIGIT; more than 10 digits is no useful delay and would overflow.
  if (value.find_first_not_of("0123456789") == std::string_view::npos) {
    if (value.size() > 10)
      return std::nullopt;
    std::int64_t n = 0;
    for (char c : value)
      n = n * 10 + (c - '0');
    return seconds(n);
  }

  // HTTP-date: the wait until then, rounded up so that a retry is never early; a date in the
  // past means "now".
  const auto when = parse_http_date(value, now);
  if (!when)
    return std::nullopt;
  if (*when <= now)
    return seconds(0);
  return std::chrono::ceil<seconds>(*when - now);
}

}  // namespace latchkey::oauth
