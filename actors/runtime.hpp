// runtime: one node's actor tree and the storage under it. Owns the actor system, the store,
// the keyring and the audit log, and stops them in the right order: actors first (so nothing
// touches the store while it closes), then the store.
#pragma once

#include <memory>

#include "actors/context.hpp"

namespace caf {
class actor_system;
class actor_system_config;
}  // namespace caf

namespace latchkey {

class runtime {
 public:
  /// Opens the store in opts.data_dir, checks the master key against it, and starts the
  /// actors. Failure codes: "data_dir_unusable", "store_unavailable", "master_key_mismatch".
  static result<std::unique_ptr<runtime>> start(const options& opts, master_key kek);
  ~runtime();

  caf::actor_system& system() { return *system_; }
  const context_ptr& context() const { return ctx_; }
  store& db() { return *db_; }

  /// Stops the actors (pending tasks stay on disk for the next start).
  void stop();

 private:
  runtime() = default;

  std::unique_ptr<store> db_;
  std::unique_ptr<keyring> keys_;
  std::unique_ptr<audit_log> audit_;
  context_ptr ctx_;
  std::unique_ptr<caf::actor_system_config> config_;
  std::unique_ptr<caf::actor_system> system_;
  bool stopped_ = false;
};

}  // namespace latchkey
