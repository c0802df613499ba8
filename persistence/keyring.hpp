// keyring: hands out data keys (DEKs) by owner, unwrapping them with the master key and keeping
// a bounded cache of unwrapped keys so that a refresh does not pay for an unwrap.
//
// A missing DEK is created, wrapped and durably stored on first use. Creation is serialized
// by a mutex: two racing creators would otherwise each seal under a key of their own, and the
// loser's sealed values would never open again.
//
// Thread-safe. The design sketches the keyring as an actor; a mutex-guarded cache serves the
// same single-owner purpose without a message hop on every seal and open.
#pragma once

#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

#include "persistence/envelope.hpp"
#include "persistence/store.hpp"

namespace latchkey {

class keyring {
 public:
  keyring(store& db, master_key kek, std::size_t cache_capacity = 4096);

  /// The owner's data key, created if `create` and missing. Failure codes:
  /// "key_missing" (absent and !create), "key_unwrap_failed", store failures.
  result<secret_string> data_key(const std::string& owner, bool create = true);

  /// Checks that the master key opens an existing data key, if any exists. Used at start-up so
  /// a wrong master key fails fast instead of at the first refresh. Failure code
  /// "master_key_mismatch".
  status verify_master_key();

  /// Like verify_master_key, but creates nothing: a store without keys passes. For the
  /// read-only check before the database is opened for writing.
  status check_master_key();

  result<std::string> seal(const seal_context& where, std::string_view plaintext);
  result<secret_string> open(const seal_context& where, std::string_view sealed);

 private:
  void remember(const std::string& owner, const secret_string& dek);

  store& db_;
  master_key kek_;
  std::size_t capacity_;
  std::mutex mutex_;
  std::list<std::pair<std::string, secret_string>> lru_;
  std::unordered_map<std::string, decltype(lru_)::iterator> index_;
};

/// The owner name of a user's data key.
inline std::string user_key_owner(const std::string& user) {
  return "user:" + user;
}
/// The owner name of the data key that seals provider client secrets.
inline std::string provider_key_owner() {
  return "providers";
}

}  // namespace latchkey
