// secret_string: holds plaintext secret bytes (refresh and access tokens, client secrets, data
// keys) only as long as a call needs them.
//
// - The bytes are wiped with OPENSSL_cleanse when the value is destroyed or reassigned.
// - It cannot be streamed or formatted: there is no operator<<, and `redacted()` is the only
//   printable form ("[redacted]").
// - Raw bytes come out only through `reveal()`, so every use is one grep away.
// - Comparison is constant-time.
// Not thread-safe; copy it to hand it to another thread.
#pragma once

#include <string>
#include <string_view>

namespace latchkey {

class secret_string {
 public:
  secret_string() = default;
  explicit secret_string(std::string value) : value_(std::move(value)) {}
  secret_string(const secret_string& other) : value_(other.value_) {}
  secret_string(secret_string&& other) noexcept;
  secret_string& operator=(const secret_string& other);
  secret_string& operator=(secret_string&& other) noexcept;
  ~secret_string();

  /// The plaintext. Never pass the result to a logger, an error message or a URL.
  const std::string& reveal() const { return value_; }

  bool empty() const { return value_.empty(); }
  std::size_t size() const { return value_.size(); }

  /// Constant-time equality (the length is not hidden).
  bool equals(std::string_view other) const;
  bool operator==(const secret_string& other) const { return equals(other.value_); }

  static constexpr std::string_view redacted() { return "[redacted]"; }

 private:
  void wipe();

  std::string value_;
};

/// Wipes a plain string in place (for buffers that briefly held a secret) and clears it.
void wipe_string(std::string& s);

}  // namespace latchkey
