#include "persistence/records.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>

#include "persistence/envelope.hpp"

namespace latchkey {

namespace json = boost::json;

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

bool agent_record::may_access(const std::string& user) const {
  return all_users || std::find(users.begin(), users.end(), user) != users.end();
}

std::string describe_action(const task_action& action) {
  return action.method + " " + action.path.substr(0, action.path.find('?'));
}

bool task_status_is_pending(const std::string& status) {
  return status == task_status::scheduled || status == task_status::running ||
         status == task_status::retrying;
}

namespace {

constexpr std::int64_t format_version = 1;

json::array to_array(const std::vector<std::string>& items) {
  json::array out;
  for (const auto& item : items)
    out.emplace_back(item);
  return out;
}

// Reads fields out of a decoded object; the first problem makes the whole record corrupt.
class field_reader {
 public:
  explicit field_reader(const json::object& obj) : obj_(obj) {}

  std::string str(std::string_view key) {
    auto* v = obj_.if_contains(key);
    if (v == nullptr || !v->is_string()) {
      ok_ = false;
      return {};
    }
    return std::string(v->as_string());
  }

  std::string opt_str(std::string_view key) {
    auto* v = obj_.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string{};
  }

  std::int64_t i64(std::string_view key) {
    auto* v = obj_.if_contains(key);
    if (v == nullptr || !v->is_int64()) {
      ok_ = false;
      return 0;
    }
    return v->as_int64();
  }

  std::optional<std::int64_t> opt_i64(std::string_view key) {
    auto* v = obj_.if_contains(key);
    if (v == nullptr || v->is_null())
      return std::nullopt;
    if (!v->is_int64()) {
      ok_ = false;
      return std::nullopt;
    }
    return v->as_int64();
  }

  bool boolean(std::string_view key) {
    auto* v = obj_.if_contains(key);
    if (v == nullptr || !v->is_bool()) {
      ok_ = false;
      return false;
    }
    return v->as_bool();
  }

  std::vector<std::string> strings(std::string_view key) {
    std::vector<std::string> out;
    auto* v = obj_.if_contains(key);
    if (v == nullptr || !v->is_array()) {
      ok_ = false;
      return out;
    }
    for (const auto& item : v->as_array()) {
      if (!item.is_string()) {
        ok_ = false;
        return {};
      }
      out.emplace_back(item.as_string());
    }
    return out;
  }

  std::string bytes(std::string_view key) {
    auto decoded = base64_decode(str(key));
    if (!decoded) {
      ok_ = false;
      return {};
    }
    return std::move(decoded).value();
  }

  const json::object& object() const { return obj_; }
  bool ok() const { return ok_; }
  void fail() { ok_ = false; }

 private:
  const json::object& obj_;
  bool ok_ = true;
};

// Parses `bytes` as a versioned record object and hands it to `read`.
template <class Record, class Read>
result<Record> decode_with(std::string_view bytes, const char* kind, Read read) {
  auto corrupt = [&] {
    return make_failure("corrupt_record", std::string("stored ") + kind + " record is corrupt");
  };

  boost::system::error_code ec;
  auto value = json::parse(bytes, ec);
  if (ec || !value.is_object())
    return corrupt();

  const auto& obj = value.as_object();
  auto* version = obj.if_contains("v");
  if (version == nullptr || !version->is_int64() || version->as_int64() != format_version)
    return corrupt();

  field_reader fields(obj);
  Record record = read(fields);
  if (!fields.ok())
    return corrupt();
  return record;
}

json::value optional_i64(const std::optional<std::int64_t>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}

}  // namespace

std::string encode(const provider_record& r) {
  json::object o{
      {"v", format_version},          {"id", r.id},
      {"token_url", r.token_url},     {"api_base_url", r.api_base_url},
      {"client_id", r.client_id},     {"client_secret", base64_encode(r.sealed_client_secret)},
      {"auth_method", r.auth_method}, {"scopes", to_array(r.scopes)},
      {"created_at", r.created_at_ms}};
  return json::serialize(o);
}

result<provider_record> decode_provider(std::string_view bytes) {
  return decode_with<provider_record>(bytes, "provider", [](field_reader& f) {
    provider_record r;
    r.id = f.str("id");
    r.token_url = f.str("token_url");
    r.api_base_url = f.str("api_base_url");
    r.client_id = f.str("client_id");
    r.sealed_client_secret = f.bytes("client_secret");
    r.auth_method = f.str("auth_method");
    r.scopes = f.strings("scopes");
    r.created_at_ms = f.i64("created_at");
    return r;
  });
}

std::string encode(const agent_record& r) {
  json::object o{{"v", format_version},        {"id", r.id},
                 {"key_hash", r.key_hash},     {"all_users", r.all_users},
                 {"users", to_array(r.users)}, {"created_at", r.created_at_ms}};
  return json::serialize(o);
}

result<agent_record> decode_agent(std::string_view bytes) {
  return decode_with<agent_record>(bytes, "agent", [](field_reader& f) {
    agent_record r;
    r.id = f.str("id");
    r.key_hash = f.str("key_hash");
    r.all_users = f.boolean("all_users");
    r.users = f.strings("users");
    r.created_at_ms = f.i64("created_at");
    return r;
  });
}

std::string encode(const connection_record& r) {
  json::object o{{"v", format_version},
                 {"user", r.user},
                 {"provider", r.provider},
                 {"refresh_token", base64_encode(r.sealed_refresh_token)},
                 {"scopes", to_array(r.scopes)},
                 {"status", r.status},
                 {"status_reason", r.status_reason},
                 {"refresh_expires_at", optional_i64(r.refresh_expires_at_ms)},
                 {"created_at", r.created_at_ms},
                 {"updated_at", r.updated_at_ms},
                 {"last_refresh_at", optional_i64(r.last_refresh_at_ms)},
                 {"generation", static_cast<std::int64_t>(r.generation)},
                 {"rotations", static_cast<std::int64_t>(r.rotations)}};
  return json::serialize(o);
}

result<connection_record> decode_connection(std::string_view bytes) {
  return decode_with<connection_record>(bytes, "connection", [](field_reader& f) {
    connection_record r;
    r.user = f.str("user");
    r.provider = f.str("provider");
    r.sealed_refresh_token = f.bytes("refresh_token");
    r.scopes = f.strings("scopes");
    r.status = f.str("status");
    r.status_reason = f.str("status_reason");
    r.refresh_expires_at_ms = f.opt_i64("refresh_expires_at");
    r.created_at_ms = f.i64("created_at");
    r.updated_at_ms = f.i64("updated_at");
    r.last_refresh_at_ms = f.opt_i64("last_refresh_at");
    r.generation = static_cast<std::uint64_t>(f.i64("generation"));
    r.rotations = static_cast<std::uint64_t>(f.i64("rotations"));
    return r;
  });
}

std::string encode(const task_record& r) {
  json::array headers;
  for (const auto& [name, value] : r.action.headers)
    headers.emplace_back(json::array{json::value(name), json::value(value)});
  json::object action{{"method", r.action.method}, {"path", r.action.path}, {"headers", headers}};
  if (r.action.body)
    action["body"] = *r.action.body;

  json::object o{{"v", format_version},
                 {"id", r.id},
                 {"user", r.user},
                 {"provider", r.provider},
                 {"agent", r.agent},
                 {"scopes", to_array(r.scopes)},
                 {"action", action},
                 {"run_at", r.run_at_ms},
                 {"due_at", r.due_at_ms},
                 {"status", r.status},
                 {"attempts", r.attempts},
                 {"last_error", r.last_error},
                 {"response_status",
                  r.response_status ? json::value(*r.response_status) : json::value(nullptr)},
                 {"idempotency_key", r.idempotency_key},
                 {"created_at", r.created_at_ms},
                 {"updated_at", r.updated_at_ms}};
  return json::serialize(o);
}

result<task_record> decode_task(std::string_view bytes) {
  return decode_with<task_record>(bytes, "task", [](field_reader& f) {
    task_record r;
    r.id = f.str("id");
    r.user = f.str("user");
    r.provider = f.str("provider");
    r.agent = f.str("agent");
    r.scopes = f.strings("scopes");
    r.run_at_ms = f.i64("run_at");
    r.due_at_ms = f.i64("due_at");
    r.status = f.str("status");
    r.attempts = static_cast<int>(f.i64("attempts"));
    r.last_error = f.str("last_error");
    if (auto status = f.opt_i64("response_status"))
      r.response_status = static_cast<int>(*status);
    r.idempotency_key = f.str("idempotency_key");
    r.created_at_ms = f.i64("created_at");
    r.updated_at_ms = f.i64("updated_at");

    auto* action = f.object().if_contains("action");
    if (action == nullptr || !action->is_object()) {
      f.fail();
      return r;
    }
    field_reader a(action->as_object());
    r.action.method = a.str("method");
    r.action.path = a.str("path");
    if (auto* body = action->as_object().if_contains("body"); body != nullptr && body->is_string())
      r.action.body = std::string(body->as_string());
    if (auto* headers = action->as_object().if_contains("headers");
        headers != nullptr && headers->is_array()) {
      for (const auto& pair : headers->as_array()) {
        if (!pair.is_array() || pair.as_array().size() != 2 || !pair.as_array()[0].is_string() ||
            !pair.as_array()[1].is_string()) {
          f.fail();
          return r;
        }
        r.action.headers.emplace_back(std::string(pair.as_array()[0].as_string()),
                                      std::string(pair.as_array()[1].as_string()));
      }
    }
    if (!a.ok())
      f.fail();
    return r;
  });
}

namespace {

json::object audit_object(const audit_record& r) {
  return json::object{{"v", format_version},
                      {"seq", static_cast<std::int64_t>(r.seq)},
                      {"at", r.at_ms},
                      {"user", r.user},
                      {"actor", r.actor},
                      {"event", r.event},
                      {"outcome", r.outcome},
                      {"provider", r.provider},
                      {"task", r.task},
                      {"detail", r.detail},
                      {"prev_hash", r.prev_hash},
                      {"hash", r.hash}};
}

}  // namespace

std::string encode(const audit_record& r) {
  return json::serialize(audit_object(r));
}

std::string audit_hash_input(const audit_record& r) {
  auto o = audit_object(r);
  o["hash"] = "";
  return json::serialize(o);
}

result<audit_record> decode_audit(std::string_view bytes) {
  return decode_with<audit_record>(bytes, "audit", [](field_reader& f) {
    audit_record r;
    r.seq = static_cast<std::uint64_t>(f.i64("seq"));
    r.at_ms = f.i64("at");
    r.user = f.str("user");
    r.actor = f.str("actor");
    r.event = f.str("event");
    r.outcome = f.str("outcome");
    r.provider = f.str("provider");
    r.task = f.str("task");
    r.detail = f.str("detail");
    r.prev_hash = f.str("prev_hash");
    r.hash = f.str("hash");
    return r;
  });
}

}  // namespace latchkey
