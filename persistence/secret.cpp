#include "persistence/secret.hpp"

#include <openssl/crypto.h>

namespace latchkey {

void wipe_string(std::string& s) {
  // The whole buffer, not just size(): a moved-from short string keeps its old bytes in the
  // small-string buffer with size() already 0.
  if (s.capacity() > 0)
    OPENSSL_cleanse(s.data(), s.capacity());
  s.clear();
}

secret_string::secret_string(secret_string&& other) noexcept : value_(std::move(other.value_)) {
  other.wipe();
}

secret_string& secret_string::operator=(const secret_string& other) {
  if (this != &other) {
    wipe();
    value_ = other.value_;
  }
  return *this;
}

secret_string& secret_string::operator=(secret_string&& other) noexcept {
  if (this != &other) {
    wipe();
    value_ = std::move(other.value_);
    other.wipe();
  }
  return *this;
}

secret_string::~secret_string() {
  wipe();
}

bool secret_string::equals(std::string_view other) const {
  if (other.size() != value_.size())
    return false;
  return CRYPTO_memcmp(value_.data(), other.data(), value_.size()) == 0;
}

void secret_string::wipe() {
  wipe_string(value_);
}

}  // namespace latchkey
