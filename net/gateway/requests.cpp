#include "net/gateway/requests.hpp"

#include <boost/json.hpp>
#include <cctype>
#include <cstdio>

#include "net/api_url.hpp"
#include "net/ascii.hpp"
#include "net/oauth/token_request.hpp"

namespace latchkey::api {

namespace json = boost::json;

namespace {

failure invalid(std::string message) {
  return make_failure("invalid_request", std::move(message));
}

result<json::object> parse_object(std::string_view body) {
  boost::system::error_code ec;
  json::parse_options options;
  options.max_depth = 32;
  auto value = json::parse(body, ec, {}, options);
  if (ec)
    return make_failure("invalid_json", "the request body is not valid JSON");
  if (!value.is_object())
    return make_failure("invalid_json", "the request body must be a JSON object");
  return std::move(value.as_object());
}

// Rejects members the schema does not know, so a typo is an error rather than ignored.
status only_known(const json::object& obj, std::initializer_list<std::string_view> known) {
  for (const auto& member : obj) {
    bool found = false;
    for (auto name : known)
      found = found || member.key() == name;
    if (!found)
      return invalid("unknown field '" + std::string(member.key().substr(0, 64)) + "'");
  }
  return ok_status();
}

result<std::string> required_string(const json::object& obj, std::string_view key,
                                    std::size_t max_len = 4096) {
  auto* v = obj.if_contains(key);
  if (v == nullptr)
    return invalid("missing field '" + std::string(key) + "'");
  if (!v->is_string())
    return invalid("field '" + std::string(key) + "' must be a string");
  if (v->as_string().empty() || v->as_string().size() > max_len)
    return invalid("field '" + std::string(key) + "' must be 1 to " + std::to_string(max_len) +
                   " bytes");
  return std::string(v->as_string());
}

result<std::vector<std::string>> string_list(const json::value& v, std::string_view key) {
  if (!v.is_array())
    return invalid("field '" + std::string(key) + "' must be an array of strings");
  std::vector<std::string> out;
  for (const auto& item : v.as_array()) {
    if (!item.is_string() || item.as_string().empty() || item.as_string().size() > 256)
      return invalid("field '" + std::string(key) + "' must hold non-empty strings");
    out.emplace_back(item.as_string());
  }
  return out;
}

bool valid_scope_token(std::string_view scope) {
  // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
  if (scope.empty())
    return false;
  for (unsigned char c : scope)
    if (c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e)
      return false;
  return true;
}

bool valid_header_name(std::string_view name) {
  if (name.empty() || name.size() > 128)
    return false;
  for (unsigned char c : name)
    if (!(std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos))
      return false;
  return true;
}

bool valid_header_value(std::string_view value) {
  for (unsigned char c : value)
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return false;
  return value.size() <= 8192;
}

using ascii::iequals;

// Headers Latchkey sets itself or that would let a task smuggle a second request.
bool reserved_header(std::string_view name) {
  for (auto reserved :
       {"authorization", "idempotency-key", "host", "content-length", "transfer-encoding",
        "connection", "upgrade", "te", "trailer", "proxy-authorization", "cookie"})
    if (iequals(name, reserved))
      return true;
  return false;
}

std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

}  // namespace

bool valid_id(std::string_view id) {
  // "." and ".." would change meaning under any proxy that normalizes paths.
  if (id.empty() || id.size() > 128 || id == "." || id == "..")
    return false;
  for (unsigned char c : id)
    if (!(std::isalnum(c) || c == '.' || c == '_' || c == '@' || c == '+' || c == '-'))
      return false;
  return true;
}

std::optional<std::int64_t> parse_rfc3339_ms(std::string_view t) {
  auto digits = [&](std::size_t pos, std::size_t n) -> std::optional<int> {
    if (pos + n > t.size())
      return std::nullopt;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(t[i])))
        return std::nullopt;
      v = v * 10 + (t[i] - '0');
    }
    return v;
  };
  auto year = digits(0, 4), month = digits(5, 2), day = digits(8, 2), hour = digits(11, 2),
       minute = digits(14, 2), second = digits(17, 2);
  if (!year || !month || !day || !hour || !minute || !second || t[4] != '-' || t[7] != '-' ||
      (t[10] != 'T' && t[10] != 't') || t[13] != ':' || t[16] != ':')
    return std::nullopt;
  static constexpr int month_days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (*year % 4 == 0 && *year % 100 != 0) || *year % 400 == 0;
  if (*month < 1 || *month > 12 || *day < 1 || *day > month_days[*month - 1] ||
      (*month == 2 && *day == 29 && !leap) || *hour > 23 || *minute > 59 || *second > 60)
    return std::nullopt;

  // Fractions: any number of digits, kept to milliseconds.
  std::size_t pos = 19;
  std::int64_t millis = 0;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    std::size_t start = pos;
    int scale = 100;
    while (pos < t.size() && std::isdigit(static_cast<unsigned char>(t[pos]))) {
      millis += (t[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start)
      return std::nullopt;
  }

  // Offset: Z or ±HH:MM.
  std::int64_t offset_minutes = 0;
  if (pos < t.size() && (t[pos] == 'Z' || t[pos] == 'z')) {
    ++pos;
  } else if (pos < t.size() && (t[pos] == '+' || t[pos] == '-')) {
    auto oh = digits(pos + 1, 2), om = digits(pos + 4, 2);
    if (!oh || !om || pos + 3 >= t.size() || t[pos + 3] != ':' || *oh > 23 || *om > 59)
      return std::nullopt;
    offset_minutes = (*oh * 60 + *om) * (t[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != t.size())
    return std::nullopt;

  auto secs = days_from_civil(*year, *month, *day) * 86400 + *hour * 3600 + *minute * 60 +
              std::min(*second, 59) - offset_minutes * 60;
  return secs * 1000 + millis;
}

std::string format_rfc3339_ms(std::int64_t ms) {
  auto secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  auto millis = ms - secs * 1000;
  auto days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
  auto rem = secs - days * 86400;
  // civil_from_days
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
  char buf[96];  // ample for any 64-bit year; keeps -Wformat-truncation quiet
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ",
                static_cast<long long>(y), m, d, static_cast<long long>(rem / 3600),
                static_cast<long long>(rem / 60 % 60), static_cast<long long>(rem % 60),
                static_cast<long long>(millis));
  return buf;
}

result<provider_input> parse_provider(std::string_view body) {
  auto obj = parse_object(body);
  if (!obj)
    return obj.error();
  if (auto known = only_known(*obj, {"id", "token_url", "api_base_url", "client_id",
                                     "client_secret", "auth_method", "scopes"});
      !known)
    return known.error();

  provider_input in;
  auto id = required_string(*obj, "id", 128);
  auto token_url = required_string(*obj, "token_url");
  auto api_base_url = required_string(*obj, "api_base_url");
  auto client_id = required_string(*obj, "client_id");
  auto client_secret = required_string(*obj, "client_secret");
  for (auto* field : {&id, &token_url, &api_base_url, &client_id, &client_secret})
    if (!*field)
      return field->error();
  if (!valid_id(*id))
    return invalid("field 'id' must be 1-128 characters of A-Z a-z 0-9 . _ @ + -");
  for (auto* url : {&token_url, &api_base_url})
    if (auto checked = check_provider_url(url->value()); !checked)
      return checked.error();

  in.record.id = std::move(id).value();
  in.record.token_url = std::move(token_url).value();
  in.record.api_base_url = std::move(api_base_url).value();
  in.record.client_id = std::move(client_id).value();
  in.client_secret = secret_string(std::move(client_secret).value());

  in.record.auth_method = "client_secret_basic";
  if (auto* method = obj->if_contains("auth_method")) {
    if (!method->is_string() || !oauth::parse_client_auth_method(method->as_string()))
      return invalid(
          "field 'auth_method' must be \"client_secret_basic\" or "
          "\"client_secret_post\"");
    in.record.auth_method = std::string(method->as_string());
  }
  if (auto* scopes = obj->if_contains("scopes")) {
    auto list = string_list(*scopes, "scopes");
    if (!list)
      return list.error();
    for (const auto& scope : list.value())
      if (!valid_scope_token(scope))
        return invalid("field 'scopes' holds a value that is not an RFC 6749 scope token");
    in.record.scopes = std::move(list).value();
  }
  return in;
}

result<agent_input> parse_agent(std::string_view body) {
  auto obj = parse_object(body);
  if (!obj)
    return obj.error();
  if (auto known = only_known(*obj, {"id", "users"}); !known)
    return known.error();

  agent_input in;
  auto id = required_string(*obj, "id", 128);
  if (!id)
    return id.error();
  if (!valid_id(*id))
    return invalid("field 'id' must be 1-128 characters of A-Z a-z 0-9 . _ @ + -");
  in.id = std::move(id).value();

  auto* users = obj->if_contains("users");
  if (users == nullptr)
    return invalid("missing field 'users'");
  auto list = string_list(*users, "users");
  if (!list)
    return list.error();
  if (list->empty())
    return invalid("field 'users' must name at least one user, or be [\"*\"]");
  for (const auto& user : list.value()) {
    if (user == "*")
      in.all_users = true;
    else if (!valid_id(user))
      return invalid("field 'users' holds an invalid user id");
    else
      in.users.push_back(user);
  }
  if (in.all_users && !in.users.empty())
    return invalid("field 'users' is either [\"*\"] or a list of users, not both");
  return in;
}

result<connection_fields> parse_connection(std::string_view body) {
  auto obj = parse_object(body);
  if (!obj)
    return obj.error();
  if (auto known = only_known(*obj, {"refresh_token", "access_token", "expires_in",
                                     "refresh_token_expires_in", "scope"});
      !known)
    return known.error();

  connection_fields in;
  auto refresh = required_string(*obj, "refresh_token", 16384);
  if (!refresh)
    return refresh.error();
  in.refresh_token = secret_string(std::move(refresh).value());

  if (auto* access = obj->if_contains("access_token"); access != nullptr && !access->is_null()) {
    if (!access->is_string() || access->as_string().empty() || access->as_string().size() > 16384)
      return invalid("field 'access_token' must be a non-empty string");
    in.access_token = secret_string(std::string(access->as_string()));
  }
  if (auto* expires = obj->if_contains("expires_in"); expires != nullptr && !expires->is_null()) {
    if (!expires->is_int64() || expires->as_int64() < 0 || expires->as_int64() > 315360000)
      return invalid("field 'expires_in' must be a whole number of seconds");
    in.expires_in = expires->as_int64();
  }
  if (auto* expires = obj->if_contains("refresh_token_expires_in");
      expires != nullptr && !expires->is_null()) {
    if (!expires->is_int64() || expires->as_int64() < 0 || expires->as_int64() > 315360000)
      return invalid("field 'refresh_token_expires_in' must be a whole number of seconds");
    in.refresh_token_expires_in = expires->as_int64();
  }
  if (auto* scope = obj->if_contains("scope"); scope != nullptr && !scope->is_null()) {
    if (!scope->is_string() || scope->as_string().size() > 4096)
      return invalid("field 'scope' must be a space-separated string (RFC 6749 §3.3)");
    std::string text(scope->as_string());
    std::size_t start = 0;
    while (start <= text.size()) {
      auto end = text.find(' ', start);
      auto piece = std::string_view(text).substr(
          start, end == std::string::npos ? std::string::npos : end - start);
      if (!piece.empty() && !valid_scope_token(piece))
        return invalid("field 'scope' holds a value that is not an RFC 6749 scope token");
      if (end == std::string::npos)
        break;
      start = end + 1;
    }
    in.scope = std::move(text);
  }
  return in;
}

result<task_record> parse_task(std::string_view body, std::int64_t now_ms) {
  auto obj = parse_object(body);
  if (!obj)
    return obj.error();
  if (auto known = only_known(*obj, {"provider", "scopes", "run_at", "delay_seconds", "action"});
      !known)
    return known.error();

  task_record task;
  auto provider = required_string(*obj, "provider", 128);
  if (!provider)
    return provider.error();
  if (!valid_id(*provider))
    return invalid("field 'provider' is not a valid provider id");
  task.provider = std::move(provider).value();

  if (auto* scopes = obj->if_contains("scopes")) {
    auto list = string_list(*scopes, "scopes");
    if (!list)
      return list.error();
    task.scopes = std::move(list).value();
  }

  // When: exactly one of run_at and delay_seconds.
  auto* run_at = obj->if_contains("run_at");
  auto* delay = obj->if_contains("delay_seconds");
  if ((run_at == nullptr) == (delay == nullptr))
    return invalid("give exactly one of 'run_at' and 'delay_seconds'");
  if (run_at != nullptr) {
    if (!run_at->is_string())
      return invalid("field 'run_at' must be an RFC 3339 date-time string");
    auto when = parse_rfc3339_ms(run_at->as_string());
    if (!when)
      return invalid("field 'run_at' is not an RFC 3339 date-time (e.g. 2026-12-04T10:00:00Z)");
    // The same horizon as delay_seconds; a time in the past means "as soon as possible".
    constexpr std::int64_t ten_years_ms = 10LL * 366 * 86400 * 1000;
    if (*when > now_ms + ten_years_ms)
      return invalid("field 'run_at' is more than ten years ahead");
    task.run_at_ms = *when;
  } else {
    if (!delay->is_number())
      return invalid("field 'delay_seconds' must be a number");
    auto seconds = delay->to_number<double>();
    if (!(seconds >= 0) || seconds > 10.0 * 366 * 86400)
      return invalid("field 'delay_seconds' must be between 0 and ten years");
    task.run_at_ms = now_ms + static_cast<std::int64_t>(seconds * 1000);
  }
  task.due_at_ms = task.run_at_ms;

  // What: the action.
  auto* action_value = obj->if_contains("action");
  if (action_value == nullptr || !action_value->is_object())
    return invalid("field 'action' must be an object with 'method' and 'path'");
  const auto& action = action_value->as_object();
  if (auto known = only_known(action, {"method", "path", "headers", "body"}); !known)
    return known.error();
  auto method = required_string(action, "method", 16);
  auto path = required_string(action, "path", 4096);
  if (!method)
    return method.error();
  if (!path)
    return path.error();
  for (auto& c : method.value())
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  static const std::vector<std::string> methods{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"};
  if (std::find(methods.begin(), methods.end(), method.value()) == methods.end())
    return invalid("field 'action.method' must be one of GET POST PUT PATCH DELETE HEAD");
  task.action.method = std::move(method).value();
  task.action.path = std::move(path).value();

  bool has_content_type = false;
  if (auto* headers = action.if_contains("headers")) {
    if (!headers->is_object())
      return invalid("field 'action.headers' must be an object of strings");
    if (headers->as_object().size() > 64)
      return invalid("field 'action.headers' has more than 64 headers");
    for (const auto& h : headers->as_object()) {
      if (!valid_header_name(h.key()) || !h.value().is_string() ||
          !valid_header_value(h.value().as_string()))
        return invalid("field 'action.headers' holds an invalid header name or value");
      if (reserved_header(h.key()))
        return invalid("header '" + std::string(h.key()) +
                       "' is set by Latchkey and cannot be "
                       "given in a task");
      has_content_type = has_content_type || iequals(h.key(), "content-type");
      task.action.headers.emplace_back(std::string(h.key()), std::string(h.value().as_string()));
    }
  }
  if (auto* payload = action.if_contains("body"); payload != nullptr) {
    // A string is sent as is; any other JSON value is sent as JSON.
    if (payload->is_string()) {
      task.action.body = std::string(payload->as_string());
      if (!has_content_type)
        task.action.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    } else {
      task.action.body = json::serialize(*payload);
      if (!has_content_type)
        task.action.headers.emplace_back("Content-Type", "application/json");
    }
  }
  return task;
}

}  // namespace latchkey::api
