// The HTTP gateway (API v1). Its threads parse and authenticate requests, then hand them to
// the actors as messages and wait for the answer with a timeout. Route handlers are thin: the
// rules live in requests.hpp (validation), views.hpp (rendering) and the actors.
//
// Errors are JSON {"error": CODE, "message": TEXT}; CODE is stable. Request logs carry method,
// path, status and the caller's identity, never a header value or a body.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "actors/runtime.hpp"

namespace httplib {
class Server;
}

namespace latchkey {

class gateway {
 public:
  gateway(runtime& rt, secret_string admin_key);
  ~gateway();

  /// Binds opts.http_address:opts.http_port (port 0 picks one) and serves on a thread of its
  /// own. Failure code "bind_failed".
  result<int> start();

  /// From now on every request but /healthz gets 503 shutting_down.
  void begin_shutdown() { shutting_down_ = true; }
  /// Stops accepting and waits for in-flight requests.
  void stop();

 private:
  void install_routes();

  runtime& rt_;
  secret_string admin_key_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::atomic<bool> shutting_down_{false};
};

}  // namespace latchkey
