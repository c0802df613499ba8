// Envelope encryption for secrets at rest.
//
// Key hierarchy: a master key (KEK, 32 bytes, from outside the database) wraps one data key
// (DEK, 32 random bytes) per owner ("user:<id>", or "providers" for client secrets). Each
// secret is sealed with AES-256-GCM under its owner's DEK.
//
// Sealed value, byte by byte (format version 1):
//   [0]      format version, 0x01
//   [1..12]  96-bit random nonce (fresh for every seal)
//   [13..n)  ciphertext (same length as the plaintext)
//   [n..+16) GCM tag
// Associated data binds the value to its place so that a sealed value copied into another
// record fails to open: "latchkey/seal/v1" then, each as a 4-byte big-endian length followed
// by the bytes: owner, provider, field.
//
// Wrapped data key (format version 1):
//   [0]      format version, 0x01
//   [1..4]   master key version, big-endian
//   [5..16]  nonce
//   [17..49) wrapped key (32 bytes)
//   [49..65) GCM tag
// Associated data: "latchkey/dek/v1" then the length-prefixed owner.
//
// All functions are thread-safe and never throw; failures carry no key or plaintext bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "persistence/result.hpp"
#include "persistence/secret.hpp"

namespace latchkey {

/// Where a sealed value lives; part of its associated data.
struct seal_context {
  std::string owner;     // "user:alice" or "providers"
  std::string provider;  // provider id
  std::string field;     // "refresh_token", "client_secret"
};

class master_key {
 public:
  /// Parses 32 bytes in standard base64 (as `openssl rand -base64 32` writes them, surrounding
  /// whitespace allowed). Failure codes: "master_key_invalid".
  static result<master_key> from_base64(std::string_view text, std::uint32_t version = 1);

  /// Reads the key file. Failure codes: "master_key_unreadable" (missing, unreadable),
  /// "master_key_invalid" (not base64 of exactly 32 bytes). Messages name the path only.
  static result<master_key> load_file(const std::string& path, std::uint32_t version = 1);

  std::uint32_t version() const { return version_; }
  const secret_string& bytes() const { return key_; }

 private:
  master_key(secret_string key, std::uint32_t version) : key_(std::move(key)), version_(version) {}

  secret_string key_;
  std::uint32_t version_;
};

/// 32 fresh random bytes from the OpenSSL CSPRNG.
secret_string generate_data_key();

/// Random bytes, e.g. for identifiers and API keys.
std::string random_bytes(std::size_t n);

/// Wraps a DEK for `owner` under the master key (format above).
result<std::string> wrap_data_key(const master_key& kek, const secret_string& dek,
                                  std::string_view owner);

/// Unwraps; "key_unwrap_failed" if the key, owner or bytes do not match,
/// "master_key_version_mismatch" if the value names another master key version.
result<secret_string> unwrap_data_key(const master_key& kek, std::string_view wrapped,
                                      std::string_view owner);

/// Seals `plaintext` under `dek` (format above). "seal_failed" only if OpenSSL fails.
result<std::string> seal(const secret_string& dek, std::string_view plaintext,
                         const seal_context& where);

/// Opens a sealed value; "open_failed" for any mismatch (wrong key, wrong place, flipped bit,
/// truncated), "unsupported_format" for an unknown format version.
result<secret_string> open(const secret_string& dek, std::string_view sealed,
                           const seal_context& where);

/// Standard base64 (with padding) and its inverse; decode rejects anything malformed.
std::string base64_encode(std::string_view bytes);
result<std::string> base64_decode(std::string_view text);

/// Lower-case hex SHA-256 of `data` (used to store API keys as hashes).
std::string sha256_hex(std::string_view data);

}  // namespace latchkey
