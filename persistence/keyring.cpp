#include "persistence/keyring.hpp"

namespace latchkey {

namespace {

// The meta entry naming a key that proves the master key at start-up.
constexpr const char* canary_owner = "canary";

failure version_mismatch() {
  return make_failure("master_key_version_mismatch",
                      "the data directory's keys are wrapped by another master key version than "
                      "--master-key-version says; rotating the master key is not supported yet");
}

}  // namespace

keyring::keyring(store& db, master_key kek, std::size_t cache_capacity)
    : db_(db), kek_(std::move(kek)), capacity_(cache_capacity) {}

result<secret_string> keyring::data_key(const std::string& owner, bool create) {
  std::lock_guard<std::mutex> guard(mutex_);

  // Cached: move to the front.
  if (auto it = index_.find(owner); it != index_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
  }

  // Stored: unwrap.
  auto wrapped = db_.get_wrapped_key(owner);
  if (!wrapped)
    return wrapped.error();
  if (wrapped.value()) {
    auto dek = unwrap_data_key(kek_, *wrapped.value(), owner);
    if (!dek)
      return dek.error();
    remember(owner, dek.value());
    return dek;
  }
  if (!create)
    return make_failure("key_missing", "no data key for " + owner);

  // New: generate, wrap and store durably before anything is sealed under it.
  auto dek = generate_data_key();
  auto new_wrapped = wrap_data_key(kek_, dek, owner);
  if (!new_wrapped)
    return new_wrapped.error();
  auto batch = db_.batch();
  batch.put_wrapped_key(owner, new_wrapped.value());
  if (auto committed = db_.commit(batch); !committed)
    return committed.error();
  remember(owner, dek);
  return dek;
}

void keyring::remember(const std::string& owner, const secret_string& dek) {
  lru_.emplace_front(owner, dek);
  index_[owner] = lru_.begin();
  if (lru_.size() > capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

status keyring::verify_master_key() {
  // The canary key is created by the first start; later starts must be able to unwrap it.
  auto dek = data_key(canary_owner, /*create=*/true);
  if (!dek && dek.error().code == "master_key_version_mismatch")
    return version_mismatch();
  if (!dek)
    return make_failure("master_key_mismatch",
                        "the master key does not open this data directory's keys (wrong key "
                        "file, or a key of another deployment)");
  return ok_status();
}

status keyring::check_master_key() {
  auto dek = data_key(canary_owner, /*create=*/false);
  if (!dek && dek.error().code == "master_key_version_mismatch")
    return version_mismatch();
  if (!dek && dek.error().code != "key_missing")
    return make_failure("master_key_mismatch",
                        "the master key does not open this data directory's keys (wrong key "
                        "file, or a key of another deployment)");
  return ok_status();
}

result<std::string> keyring::seal(const seal_context& where, std::string_view plaintext) {
  auto dek = data_key(where.owner);
  if (!dek)
    return dek.error();
  return latchkey::seal(dek.value(), plaintext, where);
}

result<secret_string> keyring::open(const seal_context& where, std::string_view sealed) {
  auto dek = data_key(where.owner, /*create=*/false);
  if (!dek)
    return dek.error();
  return latchkey::open(dek.value(), sealed, where);
}

}  // namespace latchkey
