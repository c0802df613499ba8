#include "tests/integration/support/environment.hpp"

#include <signal.h>

#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace latchkey::testing {

namespace fs = std::filesystem;

std::string source_dir() {
  return LATCHKEY_SOURCE_DIR;
}

temp_dir::temp_dir(const std::string& tag) {
  std::random_device rd;
  path_ = fs::temp_directory_path() /
          ("latchkey-" + tag + "-" + std::to_string(getpid()) + "-" + std::to_string(rd()));
  fs::create_directories(path_);
}

temp_dir::~temp_dir() {
  if (std::getenv("LATCHKEY_KEEP_TEST_DIRS") == nullptr) {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
}

reply http_call(const std::string& base, const std::string& method, const std::string& path,
                const std::string& bearer, const std::string& body) {
  httplib::Client client(base);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(30, 0);
  httplib::Headers headers;
  if (!bearer.empty())
    headers.emplace("Authorization", "Bearer " + bearer);

  httplib::Result res{nullptr, httplib::Error::Unknown};
  if (method == "GET")
    res = client.Get(path, headers);
  else if (method == "POST")
    res = client.Post(path, headers, body, "application/json");
  else if (method == "PUT")
    res = client.Put(path, headers, body, "application/json");
  else if (method == "DELETE")
    res = client.Delete(path, headers);
  else
    throw std::invalid_argument("method");

  reply out;
  if (!res)
    return out;
  out.status = res->status;
  out.raw = res->body;
  boost::system::error_code ec;
  auto parsed = json::parse(res->body, ec);
  if (!ec)
    out.body = std::move(parsed);
  return out;
}

// --- oauth_server -------------------------------------------------------------------------

oauth_server::oauth_server(const fs::path& workdir, int access_ttl_s) : workdir_(workdir) {
  auto dir = source_dir() + "/tests/oauth-server";
  auto log = workdir / "oauth-server.log";
  // Node occasionally starts very slowly on a loaded two-core machine; one more try keeps such
  // a stall from failing an unrelated test, and the log says what happened if both fail.
  std::optional<std::string> ready;
  for (int attempt = 0; attempt < 2 && !ready; ++attempt) {
    process_ = std::make_unique<child_process>(
        std::vector<std::string>{"node", dir + "/server.mjs", "--port=0", "--resource-port=0",
                                 "--access-ttl=" + std::to_string(access_ttl_s)},
        log.string(), dir);
    ready = process_->wait_for_line("READY ", std::chrono::seconds(20));
    if (!ready)
      process_->stop(SIGKILL);
  }
  if (!ready) {
    std::ifstream in(log);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    throw std::runtime_error("the OAuth server did not start; its log ends with: " +
                             text.substr(text.size() > 800 ? text.size() - 800 : 0));
  }
  auto info = json::parse(ready->substr(6)).as_object();
  issuer_ = std::string(info["issuer"].as_string());
  token_url_ = std::string(info["token_url"].as_string());
  resource_base_ = std::string(info["resource_base"].as_string());
  clients_ = info["clients"].as_object();
}

std::string oauth_server::client_secret(const std::string& client) const {
  return std::string(clients_.at(client).as_string());
}

json::object oauth_server::login(const std::string& user, const std::string& client,
                                 const std::string& scope) {
  auto dir = source_dir() + "/tests/oauth-server";
  auto [status, out] =
      run_command({"node", dir + "/login.mjs", "--issuer=" + issuer_, "--client=" + client,
                   "--secret=" + client_secret(client), "--user=" + user, "--scope=" + scope},
                  std::chrono::seconds(30));
  if (status != 0)
    throw std::runtime_error("login.mjs failed for " + user);
  return json::parse(out).as_object();
}

json::value oauth_server::control(const std::string& method, const std::string& path,
                                  const std::string& body) {
  auto r = http_call(issuer_, method, path, {}, body);
  if (r.status != 200)
    throw std::runtime_error("OAuth server control call failed: " + path + " -> " +
                             std::to_string(r.status));
  return r.body;
}

json::object oauth_server::stats() {
  return control("GET", "/__test/stats").as_object();
}

json::array oauth_server::resource_log() {
  return control("GET", "/__test/resource-log").as_array();
}

void oauth_server::reset_stats() {
  control("POST", "/__test/reset-stats");
}

void oauth_server::fail_token(int count, int status, const std::string& body_json,
                              const std::string& headers_json) {
  std::string body = "{\"count\":" + std::to_string(count) +
                     ",\"status\":" + std::to_string(status) + ",\"headers\":" + headers_json;
  if (!body_json.empty())
    body += ",\"body\":" + body_json;
  control("POST", "/__test/fail-token", body + "}");
}

void oauth_server::fail_resource(int count, int status, const std::string& headers_json) {
  control("POST", "/__test/fail-resource",
          "{\"count\":" + std::to_string(count) + ",\"status\":" + std::to_string(status) +
              ",\"headers\":" + headers_json + "}");
}

void oauth_server::revoke(const std::string& account) {
  control("POST", "/__test/revoke", "{\"account\":\"" + account + "\"}");
}

bool oauth_server::grant_valid(const std::string& account) {
  return control("GET", "/__test/grant-valid?account=" + account).as_object()["valid"].as_bool();
}

std::vector<std::string> oauth_server::issued_tokens() {
  std::vector<std::string> out;
  auto issued = control("GET", "/__test/issued-tokens");  // keep it alive while iterating
  for (const auto& token : issued.as_array())
    out.emplace_back(token.as_string());
  return out;
}

// --- daemon -------------------------------------------------------------------------------

daemon::daemon(const fs::path& workdir, std::vector<std::string> extra_args)
    : workdir_(workdir), extra_args_(std::move(extra_args)) {
  // A dev master key and admin key, as an operator would make them.
  auto [rc, key] = run_command({"openssl", "rand", "-base64", "32"}, std::chrono::seconds(10));
  if (rc != 0)
    throw std::runtime_error("openssl rand failed");
  std::ofstream(workdir_ / "master.key") << key;
  std::random_device rd;
  std::ostringstream admin;
  for (int i = 0; i < 4; ++i)
    admin << std::hex << rd() << rd();
  admin_key_ = "admin-" + admin.str();
  std::ofstream(workdir_ / "admin.key") << admin_key_ << "\n";
}

daemon::~daemon() {
  if (process_)
    process_->stop(SIGKILL);
}

void daemon::start() {
  std::vector<std::string> argv{
      LATCHKEYD_PATH, "--data-dir=" + data_dir().string(), "--http-address=127.0.0.1",
      // Reuse the port across restarts so the base URL stays valid.
      "--http-port=" + std::to_string(port_),
      "--master-key-file=" + (workdir_ / "master.key").string(),
      "--admin-key-file=" + (workdir_ / "admin.key").string(), "--log-file=" + log_file().string(),
      "--log-level=debug", "--retry-base-delay-ms=300", "--retry-max-delay-ms=3000",
      "--token-min-lifetime-s=1"};
  argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
  process_ = std::make_unique<child_process>(argv, stderr_file().string());
  auto ready = process_->wait_for_line("latchkeyd ready port=", std::chrono::seconds(30));
  if (!ready)
    throw std::runtime_error("latchkeyd did not start; see " + stderr_file().string());
  port_ = std::stoi(ready->substr(ready->find('=') + 1));
}

void daemon::kill9() {
  process_->stop(SIGKILL);
}

int daemon::terminate() {
  return process_->stop(SIGTERM);
}

reply daemon::admin(const std::string& method, const std::string& path, const std::string& body) {
  return http_call(base(), method, path, admin_key_, body);
}

reply daemon::call(const std::string& key, const std::string& method, const std::string& path,
                   const std::string& body) {
  return http_call(base(), method, path, key, body);
}

void daemon::register_provider(const oauth_server& server, const std::string& id,
                               const std::string& client) {
  json::object body{
      {"id", id},
      {"token_url", server.token_url()},
      {"api_base_url", server.resource_base()},
      {"client_id", client},
      {"client_secret", server.client_secret(client)},
      {"auth_method", client == "latchkey-post" ? "client_secret_post" : "client_secret_basic"},
      {"scopes", json::array{"openid", "offline_access", "leads.read", "leads.write"}}};
  auto r = admin("POST", "/v1/providers", json::serialize(body));
  if (r.status != 201)
    throw std::runtime_error("provider registration failed: " + r.raw);
}

std::string daemon::create_agent(const std::string& id, const std::string& users_json) {
  auto r = admin("POST", "/v1/agents", "{\"id\":\"" + id + "\",\"users\":" + users_json + "}");
  if (r.status != 201)
    throw std::runtime_error("agent creation failed: " + r.raw);
  return std::string(r.body.as_object()["key"].as_string());
}

json::object daemon::wait_task(const std::string& key, const std::string& user,
                               const std::string& id, const std::set<std::string>& statuses,
                               std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  json::object last;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = call(key, "GET", "/v1/users/" + user + "/tasks/" + id);
    if (r.status == 200) {
      last = r.body.as_object();
      if (statuses.count(std::string(last["status"].as_string())) != 0)
        return last;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return last;
}

std::vector<std::string> files_containing(const fs::path& root, const std::vector<fs::path>& extra,
                                          const std::string& needle) {
  std::vector<fs::path> files = extra;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::end(it);
       it.increment(ec))
    if (it->is_regular_file())
      files.push_back(it->path());

  std::vector<std::string> hits;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (content.find(needle) != std::string::npos)
      hits.push_back(file.string());
  }
  return hits;
}

}  // namespace latchkey::testing
