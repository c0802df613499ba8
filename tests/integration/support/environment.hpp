// Integration-test parts: the bundled OAuth server (oidc-provider on loopback, with its test
// control endpoints) and a latchkeyd daemon on a data directory of the test's own. Every
// process is started on 127.0.0.1 with a port the system picks, and stopped by the test.
#pragma once

#include <httplib.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tests/integration/support/process.hpp"

namespace latchkey::testing {

namespace json = boost::json;

/// A fresh directory under the system temp dir, removed by the destructor unless
/// LATCHKEY_KEEP_TEST_DIRS is set.
class temp_dir {
 public:
  explicit temp_dir(const std::string& tag);
  ~temp_dir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// An HTTP reply with its JSON body parsed (null when the body is not JSON).
struct reply {
  int status = 0;
  json::value body;
  std::string raw;
};

reply http_call(const std::string& base, const std::string& method, const std::string& path,
                const std::string& bearer = {}, const std::string& body = {});

class oauth_server {
 public:
  explicit oauth_server(const std::filesystem::path& workdir, int access_ttl_s = 5);

  std::string issuer() const { return issuer_; }
  std::string token_url() const { return token_url_; }
  std::string resource_base() const { return resource_base_; }
  std::string client_secret(const std::string& client) const;

  /// Logs `user` in through the authorization-code flow; returns the token response.
  json::object login(const std::string& user, const std::string& client = "latchkey-basic",
                     const std::string& scope = "openid offline_access leads.read leads.write");

  json::object stats();
  json::array resource_log();
  void reset_stats();
  void fail_token(int count, int status, const std::string& body_json = {},
                  const std::string& headers_json = "{}");
  void fail_resource(int count, int status, const std::string& headers_json = "{}");
  void revoke(const std::string& account);
  bool grant_valid(const std::string& account);
  /// Every access and refresh token the server issued (test fixture only): the secrets the
  /// secret scans look for.
  std::vector<std::string> issued_tokens();

 private:
  json::value control(const std::string& method, const std::string& path,
                      const std::string& body = {});

  std::filesystem::path workdir_;
  std::unique_ptr<child_process> process_;
  std::string issuer_, token_url_, resource_base_;
  json::object clients_;
};

class daemon {
 public:
  daemon(const std::filesystem::path& workdir, std::vector<std::string> extra_args = {});
  ~daemon();

  void start();
  /// SIGKILL: no shutdown code runs.
  void kill9();
  /// SIGTERM and wait; returns the exit status.
  int terminate();

  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& admin_key() const { return admin_key_; }
  std::filesystem::path data_dir() const { return workdir_ / "data"; }
  std::filesystem::path log_file() const { return workdir_ / "latchkeyd.log"; }
  std::filesystem::path stderr_file() const { return workdir_ / "latchkeyd.stderr"; }

  reply admin(const std::string& method, const std::string& path, const std::string& body = {});
  reply call(const std::string& key, const std::string& method, const std::string& path,
             const std::string& body = {});

  /// Registers provider `id` at `server` with the given client.
  void register_provider(const oauth_server& server, const std::string& id = "demo",
                         const std::string& client = "latchkey-basic");
  /// Creates an agent for `users` and returns its key.
  std::string create_agent(const std::string& id, const std::string& users_json = "[\"*\"]");

  /// Polls the task until its status is one of `statuses` or `timeout` passes.
  json::object wait_task(const std::string& key, const std::string& user, const std::string& id,
                         const std::set<std::string>& statuses,
                         std::chrono::milliseconds timeout = std::chrono::seconds(40));

 private:
  std::filesystem::path workdir_;
  std::vector<std::string> extra_args_;
  std::unique_ptr<child_process> process_;
  std::string admin_key_;
  int port_ = 0;
};

/// Files under `root` (recursively) and the `extra` files that contain `needle` byte for byte.
std::vector<std::string> files_containing(const std::filesystem::path& root,
                                          const std::vector<std::filesystem::path>& extra,
                                          const std::string& needle);

std::string source_dir();

}  // namespace latchkey::testing
