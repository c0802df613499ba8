#include "net/gateway/gateway.hpp"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <boost/json.hpp>
#include <caf/all.hpp>
#include <charconv>

#include "actors/messages.hpp"
#include "net/api_url.hpp"
#include "net/ascii.hpp"
#include "net/gateway/requests.hpp"
#include "net/gateway/views.hpp"

namespace latchkey {

namespace json = boost::json;

// httplib 0.11 listens with a fixed backlog of 5, so a burst of agents connecting at once
// would see refused connections. Linux lets a listening socket's backlog be raised by calling
// listen() again, which needs the protected socket handle.
class gateway_server : public httplib::Server {
 public:
  bool widen_backlog(int backlog) { return ::listen(svr_sock_, backlog) == 0; }
};

namespace {

// Stable error codes and their HTTP statuses.
int status_for(const std::string& code) {
  static const std::vector<std::pair<std::string, int>> table{{"invalid_json", 400},
                                                              {"invalid_request", 400},
                                                              {"invalid_url", 400},
                                                              {"path_outside_base", 400},
                                                              {"unauthorized", 401},
                                                              {"forbidden", 403},
                                                              {"scope_not_granted", 403},
                                                              {"not_found", 404},
                                                              {"unknown_provider", 404},
                                                              {"unknown_connection", 404},
                                                              {"already_exists", 409},
                                                              {"task_finished", 409},
                                                              {"connection_needs_reconnect", 409},
                                                              {"task_limit_reached", 409},
                                                              {"payload_too_large", 413},
                                                              {"shutting_down", 503},
                                                              {"unavailable", 503}};
  for (const auto& [name, status] : table)
    if (name == code)
      return status;
  return 500;
}

void reply_json(httplib::Response& res, int status, const json::value& body) {
  res.status = status;
  res.set_content(json::serialize(body), "application/json");
}

void reply_error(httplib::Response& res, const failure& f) {
  auto status = status_for(f.code);
  // Internal failures keep their detail in the log, not in the reply.
  json::object body{{"error", status == 500 ? "internal_error" : f.code},
                    {"message", status == 500 ? "internal error; see the server log" : f.message}};
  if (status == 500)
    spdlog::error("request failed code={}: {}", f.code, f.message);
  reply_json(res, status, body);
}

// Who is calling: the admin, or an agent (with its record).
struct principal {
  bool admin = false;
  agent_record agent;
  std::string name() const { return admin ? "admin" : "agent:" + agent.id; }
};

// Media types are case-insensitive and may carry parameters (RFC 9110 §8.3.1).
bool is_json_media_type(const httplib::Request& req) {
  auto type = req.get_header_value("Content-Type");
  auto end = type.find(';');
  std::string_view essence(type.data(), end == std::string::npos ? type.size() : end);
  while (!essence.empty() && (essence.back() == ' ' || essence.back() == '\t'))
    essence.remove_suffix(1);
  return essence.empty() || ascii::iequals(essence, "application/json");
}

std::optional<std::string_view> bearer_token(const httplib::Request& req) {
  auto it = req.headers.find("Authorization");
  if (it == req.headers.end())
    return std::nullopt;
  std::string_view value = it->second;
  if (value.size() < 8 || strncasecmp(value.data(), "Bearer ", 7) != 0)
    return std::nullopt;
  value.remove_prefix(7);
  while (!value.empty() && value.front() == ' ')
    value.remove_prefix(1);
  if (value.empty())
    return std::nullopt;
  return value;
}

std::string new_task_id() {
  // Creation time first (hex ms), then randomness: ids sort by creation time in the store.
  char prefix[16];
  std::snprintf(prefix, sizeof prefix, "%012llx", static_cast<unsigned long long>(now_ms()));
  auto random = random_bytes(8);
  static constexpr char hex[] = "0123456789abcdef";
  std::string id = "t_" + std::string(prefix);
  for (unsigned char c : random) {
    id += hex[c >> 4];
    id += hex[c & 15];
  }
  return id;
}

std::string new_agent_key() {
  auto raw = random_bytes(32);
  auto text = base64_encode(raw);
  wipe_string(raw);
  // URL-safe alphabet without padding, so the key can sit in any header or config file.
  for (auto& c : text)
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  while (!text.empty() && text.back() == '=')
    text.pop_back();
  return "lk_" + text;
}

}  // namespace

gateway::gateway(runtime& rt, secret_string admin_key)
    : rt_(rt), admin_key_(std::move(admin_key)), server_(std::make_unique<gateway_server>()) {}

gateway::~gateway() {
  stop();
}

result<int> gateway::start() {
  const auto& opts = rt_.context()->opts;
  auto threads = static_cast<std::size_t>(opts.http_threads);
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_->set_payload_max_length(opts.max_body_bytes);
  // httplib's default also sets SO_REUSEPORT, which would let a second node bind a port that is
  // already taken and share its traffic. Plain SO_REUSEADDR only (fast restarts).
  server_->set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  server_->set_keep_alive_timeout(2);
  server_->set_read_timeout(10, 0);
  server_->set_write_timeout(10, 0);
  install_routes();

  int port = opts.http_port;
  bool bound = port == 0 ? (port = server_->bind_to_any_port(opts.http_address)) > 0
                         : server_->bind_to_port(opts.http_address, port);
  if (!bound)
    return make_failure("bind_failed", "cannot listen on " + opts.http_address + ":" +
                                           std::to_string(opts.http_port) +
                                           " (address in use or not local?)");
  if (!static_cast<gateway_server&>(*server_).widen_backlog(1024))
    spdlog::warn("could not raise the listen backlog; bursts of connections may be refused");
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  spdlog::info("http gateway listening address={} port={}", opts.http_address, port);
  return port;
}

void gateway::stop() {
  if (thread_.joinable()) {
    server_->stop();
    thread_.join();
  }
}

void gateway::install_routes() {
  auto& srv = *server_;
  auto ctx = rt_.context();
  auto& sys = rt_.system();
  auto timeout = ctx->opts.request_timeout;

  srv.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    if (res.status >= 500)
      spdlog::error("http {} {} -> {}", req.method, req.path, res.status);
    else if (res.status >= 400)
      spdlog::warn("http {} {} -> {}", req.method, req.path, res.status);
    else
      spdlog::debug("http {} {} -> {}", req.method, req.path, res.status);
  });

  // Statuses that httplib produces itself (unknown route, 413, bad request line) get the same
  // JSON error shape as ours.
  srv.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request&, httplib::Response& res) -> httplib::Server::HandlerResponse {
        if (!res.body.empty())
          return httplib::Server::HandlerResponse::Unhandled;
        switch (res.status) {
          case 404:
            reply_json(res, 404,
                       json::object{{"error", "not_found"}, {"message", "no such route"}});
            break;
          case 413:
            reply_json(res, 413,
                       json::object{{"error", "payload_too_large"},
                                    {"message", "the request body is too large"}});
            break;
          case 405:
            reply_json(res, 405,
                       json::object{{"error", "method_not_allowed"},
                                    {"message", "method not allowed on this route"}});
            break;
          default:
            reply_json(
                res, res.status,
                json::object{{"error", "bad_request"}, {"message", "the request is malformed"}});
        }
        return httplib::Server::HandlerResponse::Handled;
      }));

  srv.set_pre_routing_handler([this](const httplib::Request& req,
                                     httplib::Response& res) -> httplib::Server::HandlerResponse {
    if (shutting_down_ && req.path != "/healthz") {
      reply_error(res, make_failure("shutting_down",
                                    "the node is shutting down; retry on "
                                    "another node or after the restart"));
      return httplib::Server::HandlerResponse::Handled;
    }
    // A chunked body has no length to check against max_body_bytes before it is read, and
    // httplib does not limit it: require Content-Length.
    if (req.has_header("Transfer-Encoding")) {
      reply_json(res, 411,
                 json::object{{"error", "length_required"},
                              {"message", "send the body with Content-Length, not chunked"}});
      return httplib::Server::HandlerResponse::Handled;
    }
    // The API speaks JSON only. Refusing other declared types here, before the body is read,
    // also keeps httplib from applying its 8 KiB form-body limit (curl -d sends form type).
    if (req.get_header_value<std::uint64_t>("Content-Length") > 0 && !is_json_media_type(req)) {
      reply_json(
          res, 415,
          json::object{{"error", "unsupported_media_type"},
                       {"message", "send request bodies as Content-Type: application/json"}});
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  // Authenticates the caller; replies 401 itself and returns nullopt when that fails.
  auto authenticate = [this, ctx](const httplib::Request& req,
                                  httplib::Response& res) -> std::optional<principal> {
    auto token = bearer_token(req);
    if (!token) {
      reply_error(res, make_failure("unauthorized", "send Authorization: Bearer <key>"));
      return std::nullopt;
    }
    if (admin_key_.equals(*token))
      return principal{true, {}};
    auto agent = ctx->db->find_agent_by_key_hash(sha256_hex(*token));
    if (!agent) {
      reply_error(res, agent.error());
      return std::nullopt;
    }
    if (!agent.value()) {
      reply_error(res, make_failure("unauthorized", "unknown or revoked key"));
      return std::nullopt;
    }
    return principal{false, std::move(*agent.value())};
  };

  auto require_admin = [authenticate](const httplib::Request& req, httplib::Response& res) {
    auto who = authenticate(req, res);
    if (who && !who->admin) {
      reply_error(res, make_failure("forbidden", "this route needs the admin key"));
      return false;
    }
    return who.has_value();
  };

  // For /v1/users/{user}/...: an agent may touch only the users it was given. The admin key
  // is for configuration, not for acting on users' behalf.
  auto require_agent_for = [authenticate](const httplib::Request& req, httplib::Response& res,
                                          const std::string& user) -> std::optional<principal> {
    auto who = authenticate(req, res);
    if (!who)
      return std::nullopt;
    if (who->admin) {
      reply_error(res, make_failure("forbidden", "user routes need an agent key"));
      return std::nullopt;
    }
    if (!api::valid_id(user)) {
      reply_error(res, make_failure("invalid_request", "invalid user id in the path"));
      return std::nullopt;
    }
    if (!who->agent.may_access(user)) {
      reply_error(res, make_failure("forbidden", "this agent may not act for this user"));
      return std::nullopt;
    }
    return who;
  };

  // Asks `dest` and waits; a silent actor becomes 503 unavailable.
  auto ask_user = [&sys, ctx, timeout](const std::string& user) -> result<caf::actor> {
    caf::scoped_actor self{sys};
    std::optional<caf::actor> found;
    self->request(ctx->users, timeout, lookup_atom::value, user)
        .receive([&](caf::actor& a) { found = std::move(a); }, [&](caf::error&) {});
    if (!found)
      return make_failure("unavailable", "the node did not answer in time");
    return *found;
  };

  srv.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    reply_json(res, shutting_down_ ? 503 : 200,
               json::object{{"status", shutting_down_ ? "shutting_down" : "ok"}});
  });

  // --- admin routes ---------------------------------------------------------------------

  srv.Get("/metrics", [ctx, require_admin](const httplib::Request& req, httplib::Response& res) {
    if (!require_admin(req, res))
      return;
    res.status = 200;
    res.set_content(ctx->counters.render(), "text/plain; version=0.0.4");
  });

  // POST creates a provider; PUT /v1/providers/{id} replaces one (e.g. to rotate its client
  // secret). Connections and their tokens are untouched either way.
  auto store_provider = [ctx, require_admin](const httplib::Request& req, httplib::Response& res,
                                             const std::optional<std::string>& replace_id) {
    if (!require_admin(req, res))
      return;
    auto input = api::parse_provider(req.body);
    if (!input)
      return reply_error(res, input.error());
    if (replace_id && *replace_id != input->record.id)
      return reply_error(res, make_failure("invalid_request",
                                           "the body's 'id' must match the provider in the path"));
    auto existing = ctx->db->get_provider(input->record.id);
    if (!existing)
      return reply_error(res, existing.error());
    if (!replace_id && existing.value())
      return reply_error(res, make_failure("already_exists", "provider '" + input->record.id +
                                                                 "' is already registered"));
    if (replace_id && !existing.value())
      return reply_error(
          res, make_failure("unknown_provider", "no provider '" + *replace_id + "' to replace"));

    auto sealed =
        ctx->keys->seal(seal_context{provider_key_owner(), input->record.id, "client_secret"},
                        input->client_secret.reveal());
    if (!sealed)
      return reply_error(res, sealed.error());
    input->record.sealed_client_secret = std::move(sealed).value();
    input->record.created_at_ms = existing.value() ? existing.value()->created_at_ms : now_ms();

    auto batch = ctx->db->batch();
    batch.put_provider(input->record);
    if (auto committed = ctx->db->commit(batch); !committed)
      return reply_error(res, committed.error());
    spdlog::info("provider {} id={} auth_method={}", replace_id ? "replaced" : "registered",
                 input->record.id, input->record.auth_method);
    if (replace_id)
      caf::anon_send(ctx->users, provider_changed_atom::value, input->record.id);
    reply_json(res, replace_id ? 200 : 201, api::provider_view(input->record));
  };
  srv.Post("/v1/providers", [store_provider](const httplib::Request& req, httplib::Response& res) {
    store_provider(req, res, std::nullopt);
  });
  srv.Put(R"(/v1/providers/([^/]+))",
          [store_provider](const httplib::Request& req, httplib::Response& res) {
            store_provider(req, res, std::string(req.matches[1]));
          });

  srv.Post("/v1/agents", [ctx, require_admin](const httplib::Request& req, httplib::Response& res) {
    if (!require_admin(req, res))
      return;
    auto input = api::parse_agent(req.body);
    if (!input)
      return reply_error(res, input.error());
    auto existing = ctx->db->get_agent(input->id);
    if (!existing)
      return reply_error(res, existing.error());
    if (existing.value())
      return reply_error(res, make_failure("already_exists", "agent '" + input->id + "' exists"));

    secret_string key(new_agent_key());
    agent_record agent{input->id, sha256_hex(key.reveal()), input->all_users, input->users,
                       now_ms()};
    auto batch = ctx->db->batch();
    batch.put_agent(agent);
    if (auto committed = ctx->db->commit(batch); !committed)
      return reply_error(res, committed.error());
    spdlog::info("agent created id={} users={}", agent.id,
                 agent.all_users ? std::string("*") : std::to_string(agent.users.size()));
    // The key is shown this once; only its hash is stored.
    reply_json(res, 201, json::object{{"id", agent.id}, {"key", key.reveal()}});
  });

  srv.Delete(R"(/v1/agents/([^/]+))",
             [ctx, require_admin](const httplib::Request& req, httplib::Response& res) {
               if (!require_admin(req, res))
                 return;
               std::string id = req.matches[1];
               auto agent = ctx->db->get_agent(id);
               if (!agent)
                 return reply_error(res, agent.error());
               if (!agent.value())
                 return reply_error(res, make_failure("not_found", "no agent '" + id + "'"));
               auto batch = ctx->db->batch();
               batch.delete_agent(*agent.value());
               if (auto committed = ctx->db->commit(batch); !committed)
                 return reply_error(res, committed.error());
               spdlog::info("agent revoked id={}", id);
               reply_json(res, 200, json::object{{"id", id}, {"revoked", true}});
             });

  // --- agent routes ----------------------------------------------------------------------

  srv.Put(R"(/v1/users/([^/]+)/connections/([^/]+))", [ctx, &sys, timeout, require_agent_for,
                                                       ask_user](const httplib::Request& req,
                                                                 httplib::Response& res) {
    std::string user = req.matches[1], provider = req.matches[2];
    auto who = require_agent_for(req, res, user);
    if (!who)
      return;
    auto fields = api::parse_connection(req.body);
    if (!fields)
      return reply_error(res, fields.error());
    auto prov = ctx->db->get_provider(provider);
    if (!prov)
      return reply_error(res, prov.error());
    if (!prov.value())
      return reply_error(res, make_failure("unknown_provider", "no provider '" + provider + "'"));
    auto user_actor = ask_user(user);
    if (!user_actor)
      return reply_error(res, user_actor.error());

    connection_input input;
    input.provider = provider;
    input.refresh_token = std::move(fields->refresh_token);
    input.access_token = std::move(fields->access_token);
    input.expires_in = fields->expires_in;
    input.refresh_token_expires_in = fields->refresh_token_expires_in;
    input.scope = std::move(fields->scope);
    input.actor = who->name();
    caf::scoped_actor self{sys};
    std::optional<connection_result> answer;
    self->request(*user_actor, timeout, put_connection_atom::value, std::move(input))
        .receive([&](connection_result& r) { answer = std::move(r); }, [&](caf::error&) {});
    if (!answer)
      return reply_error(res, make_failure("unavailable",
                                           "the user actor did not "
                                           "answer in time"));
    if (!*answer)
      return reply_error(res, answer->error());
    reply_json(res, 200, api::connection_view(answer->value()));
  });

  srv.Get(R"(/v1/users/([^/]+)/connections/([^/]+))",
          [&sys, timeout, require_agent_for, ask_user](const httplib::Request& req,
                                                       httplib::Response& res) {
            std::string user = req.matches[1], provider = req.matches[2];
            if (!require_agent_for(req, res, user))
              return;
            auto user_actor = ask_user(user);
            if (!user_actor)
              return reply_error(res, user_actor.error());
            caf::scoped_actor self{sys};
            std::optional<connection_result> answer;
            self->request(*user_actor, timeout, get_connection_atom::value, provider)
                .receive([&](connection_result& r) { answer = std::move(r); }, [&](caf::error&) {});
            if (!answer)
              return reply_error(res, make_failure("unavailable", "no answer in time"));
            if (!*answer)
              return reply_error(res, answer->error());
            reply_json(res, 200, api::connection_view(answer->value()));
          });

  srv.Post(R"(/v1/users/([^/]+)/tasks)", [ctx, &sys, timeout, require_agent_for, ask_user](
                                             const httplib::Request& req, httplib::Response& res) {
    std::string user = req.matches[1];
    auto who = require_agent_for(req, res, user);
    if (!who)
      return;
    auto task = api::parse_task(req.body, now_ms());
    if (!task)
      return reply_error(res, task.error());

    // The action must stay under the provider's API base URL.
    auto prov = ctx->db->get_provider(task->provider);
    if (!prov)
      return reply_error(res, prov.error());
    if (!prov.value())
      return reply_error(res,
                         make_failure("unknown_provider", "no provider '" + task->provider + "'"));
    if (auto url = join_api_url(prov.value()->api_base_url, task->action.path); !url)
      return reply_error(res, url.error());

    auto now = now_ms();
    task->id = new_task_id();
    task->user = user;
    task->agent = who->agent.id;
    task->idempotency_key = "lk-" + task->id + "-1";
    task->created_at_ms = now;
    task->updated_at_ms = now;

    auto user_actor = ask_user(user);
    if (!user_actor)
      return reply_error(res, user_actor.error());
    caf::scoped_actor self{sys};
    std::optional<task_result> answer;
    self->request(*user_actor, timeout, create_task_atom::value, std::move(task).value())
        .receive([&](task_result& r) { answer = std::move(r); }, [&](caf::error&) {});
    if (!answer)
      return reply_error(res, make_failure("unavailable", "the user actor did not answer"));
    if (!*answer)
      return reply_error(res, answer->error());
    reply_json(res, 201, api::task_view(answer->value()));
  });

  srv.Get(R"(/v1/users/([^/]+)/tasks)",
          [ctx, require_agent_for](const httplib::Request& req, httplib::Response& res) {
            std::string user = req.matches[1];
            if (!require_agent_for(req, res, user))
              return;
            auto tasks = ctx->db->list_tasks(user);
            if (!tasks)
              return reply_error(res, tasks.error());
            json::array items;
            for (const auto& task : tasks.value())
              items.push_back(api::task_view(task));
            reply_json(res, 200, json::object{{"tasks", items}});
          });

  srv.Get(R"(/v1/users/([^/]+)/tasks/([^/]+))",
          [ctx, require_agent_for](const httplib::Request& req, httplib::Response& res) {
            std::string user = req.matches[1], id = req.matches[2];
            if (!require_agent_for(req, res, user))
              return;
            auto task = ctx->db->get_task(user, id);
            if (!task)
              return reply_error(res, task.error());
            if (!task.value())
              return reply_error(res, make_failure("not_found", "no such task for this user"));
            reply_json(res, 200, api::task_view(*task.value()));
          });

  srv.Delete(
      R"(/v1/users/([^/]+)/tasks/([^/]+))",
      [ctx, &sys, timeout, require_agent_for](const httplib::Request& req, httplib::Response& res) {
        std::string user = req.matches[1], id = req.matches[2];
        auto who = require_agent_for(req, res, user);
        if (!who)
          return;
        caf::scoped_actor self{sys};
        std::optional<task_result> answer;
        self->request(ctx->scheduler, timeout, cancel_task_atom::value, user, id, who->name())
            .receive([&](task_result& r) { answer = std::move(r); }, [&](caf::error&) {});
        if (!answer)
          return reply_error(res, make_failure("unavailable", "the scheduler did not answer"));
        if (!*answer)
          return reply_error(res, answer->error());
        reply_json(res, 200, api::task_view(answer->value()));
      });

  srv.Get(R"(/v1/users/([^/]+)/audit)", [ctx, require_agent_for](const httplib::Request& req,
                                                                 httplib::Response& res) {
    std::string user = req.matches[1];
    if (!require_agent_for(req, res, user))
      return;
    std::uint64_t after = 0;
    if (req.has_param("after")) {
      auto text = req.get_param_value("after");
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), after);
      if (text.empty() || ec != std::errc{} || end != text.data() + text.size())
        return reply_error(
            res, make_failure("invalid_request", "'after' must be a non-negative whole number"));
    }
    auto records = ctx->db->list_audit(user, after, 1000);
    if (!records)
      return reply_error(res, records.error());
    json::array items;
    for (const auto& record : records.value())
      items.push_back(api::audit_view(record));
    reply_json(res, 200, json::object{{"records", items}});
  });
}

}  // namespace latchkey
