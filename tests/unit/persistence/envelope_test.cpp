#include "persistence/envelope.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace latchkey {
namespace {

const seal_context alice_google{"user:alice", "google", "refresh_token"};

// Every byte value once, NUL included.
std::string all_byte_values() {
  std::string bytes;
  for (int b = 0; b < 256; ++b)
    bytes.push_back(static_cast<char>(b));
  return bytes;
}

std::string token_200_bytes() {
  std::string token;
  for (int i = 0; i < 200; ++i)
    token.push_back(static_cast<char>('a' + i % 26));
  return token;
}

master_key make_master_key(char fill, std::uint32_t version = 1) {
  auto key = master_key::from_base64(base64_encode(std::string(32, fill)), version);
  EXPECT_TRUE(key.ok());
  return std::move(key).value();
}

void append_length_prefixed(std::string& out, std::string_view part) {
  const auto n = static_cast<std::uint32_t>(part.size());
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out.append(part);
}

// The associated data exactly as envelope.hpp documents it, built independently of the code.
std::string documented_seal_aad(const seal_context& where) {
  std::string aad = "latchkey/seal/v1";
  append_length_prefixed(aad, where.owner);
  append_length_prefixed(aad, where.provider);
  append_length_prefixed(aad, where.field);
  return aad;
}

std::string documented_dek_aad(std::string_view owner) {
  std::string aad = "latchkey/dek/v1";
  append_length_prefixed(aad, owner);
  return aad;
}

struct ctx_deleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};

const unsigned char* u8(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// Plain OpenSSL AES-256-GCM, to check the byte formats against another implementation's view.
std::optional<std::string> raw_gcm(bool encrypt, std::string_view key, std::string_view nonce,
                                   std::string_view aad, std::string_view input, std::string& tag) {
  std::unique_ptr<EVP_CIPHER_CTX, ctx_deleter> ctx{EVP_CIPHER_CTX_new()};
  std::string out(input.size(), '\0');
  auto* out_bytes = reinterpret_cast<unsigned char*>(out.data());
  int len = 0;
  if (EVP_CipherInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, u8(key), u8(nonce),
                        encrypt ? 1 : 0) != 1 ||
      EVP_CipherUpdate(ctx.get(), nullptr, &len, u8(aad), static_cast<int>(aad.size())) != 1 ||
      EVP_CipherUpdate(ctx.get(), out_bytes, &len, u8(input), static_cast<int>(input.size())) != 1)
    return std::nullopt;

  if (!encrypt && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_TAG, 16, tag.data()) != 1)
    return std::nullopt;
  if (EVP_CipherFinal_ex(ctx.get(), out_bytes + len, &len) != 1)
    return std::nullopt;
  if (encrypt) {
    tag.assign(16, '\0');
    if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_GET_TAG, 16, tag.data()) != 1)
      return std::nullopt;
  }
  return out;
}

// A directory under /tmp of the test's own, removed with everything in it.
class key_file_test : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/latchkey-envelope-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }

  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::string write_file(const std::string& name, const std::string& content) {
    const std::string path = (dir_ / name).string();
    std::ofstream{path, std::ios::binary} << content;
    return path;
  }

  std::filesystem::path dir_;
};

// Sealing then opening in the same place gives back the plaintext, whatever its bytes.
TEST(envelope, open_returns_plaintext_when_sealed_in_same_place) {
  const secret_string dek = generate_data_key();
  for (const std::string& plaintext :
       {std::string{}, token_200_bytes(), all_byte_values(), std::string("\0\0\xff", 3)}) {
    SCOPED_TRACE(plaintext.size());
    auto sealed = seal(dek, plaintext, alice_google);
    ASSERT_TRUE(sealed.ok()) << sealed.error().code;

    auto opened = open(dek, *sealed, alice_google);
    ASSERT_TRUE(opened.ok()) << opened.error().code;
    EXPECT_TRUE(opened->equals(plaintext));
  }
}

// The sealed value is version, nonce, ciphertext of the plaintext's length, and tag.
TEST(envelope, seal_produces_documented_layout) {
  const secret_string dek = generate_data_key();
  const std::string plaintext = token_200_bytes();

  auto sealed = seal(dek, plaintext, alice_google);

  ASSERT_TRUE(sealed.ok());
  ASSERT_EQ(sealed->size(), 1 + 12 + plaintext.size() + 16);
  EXPECT_EQ(static_cast<unsigned char>((*sealed)[0]), 0x01);
  EXPECT_EQ(sealed->find(plaintext), std::string::npos);
}

// Another implementation following the header alone can open what seal writes.
TEST(envelope, seal_output_opens_with_plain_openssl_and_documented_aad) {
  const secret_string dek = generate_data_key();
  const std::string plaintext = token_200_bytes();
  auto sealed = seal(dek, plaintext, alice_google);
  ASSERT_TRUE(sealed.ok());

  const std::string_view bytes = *sealed;
  std::string tag{bytes.substr(bytes.size() - 16)};
  auto opened =
      raw_gcm(/*encrypt=*/false, dek.reveal(), bytes.substr(1, 12),
              documented_seal_aad(alice_google), bytes.substr(13, bytes.size() - 13 - 16), tag);

  ASSERT_TRUE(opened.has_value());
  EXPECT_EQ(*opened, plaintext);
}

// open accepts a value that another implementation sealed by the header alone.
TEST(envelope, open_accepts_value_sealed_with_plain_openssl_and_documented_aad) {
  const secret_string dek = generate_data_key();
  const std::string nonce(12, '\x07');
  std::string tag;
  auto ciphertext = raw_gcm(/*encrypt=*/true, dek.reveal(), nonce,
                            documented_seal_aad(alice_google), "refresh-me", tag);
  ASSERT_TRUE(ciphertext.has_value());

  auto opened = open(dek, "\x01" + nonce + *ciphertext + tag, alice_google);

  ASSERT_TRUE(opened.ok()) << opened.error().code;
  EXPECT_EQ(opened->reveal(), "refresh-me");
}

// A sealed value copied into another user's record does not open there.
TEST(envelope, open_fails_when_moved_to_another_owner) {
  const secret_string dek = generate_data_key();
  auto sealed = seal(dek, "token", alice_google);
  ASSERT_TRUE(sealed.ok());

  auto opened = open(dek, *sealed, {"user:bob", "google", "refresh_token"});

  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().code, "open_failed");
}

// A sealed value copied under another provider does not open there.
TEST(envelope, open_fails_when_moved_to_another_provider) {
  const secret_string dek = generate_data_key();
  auto sealed = seal(dek, "token", alice_google);
  ASSERT_TRUE(sealed.ok());

  auto opened = open(dek, *sealed, {"user:alice", "github", "refresh_token"});

  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().code, "open_failed");
}

// A sealed value copied into another field does not open there.
TEST(envelope, open_fails_when_moved_to_another_field) {
  const secret_string dek = generate_data_key();
  auto sealed = seal(dek, "token", alice_google);
  ASSERT_TRUE(sealed.ok());

  auto opened = open(dek, *sealed, {"user:alice", "google", "client_secret"});

  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().code, "open_failed");
}

// Moving characters across the owner/provider/field boundaries changes the associated data.
TEST(envelope, open_fails_when_context_boundaries_shift) {
  const secret_string dek = generate_data_key();
  auto sealed = seal(dek, "token", {"user:ab", "c", "refresh_token"});
  ASSERT_TRUE(sealed.ok());

  auto opened = open(dek, *sealed, {"user:a", "bc", "refresh_token"});

  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().code, "open_failed");
}

// Any single flipped bit is detected; in the version byte it reads as an unknown format.
TEST(envelope, open_fails_when_any_bit_is_flipped) {
  const secret_string dek = generate_data_key();
  auto sealed = seal(dek, token_200_bytes(), alice_google);
  ASSERT_TRUE(sealed.ok());

  for (std::size_t pos = 0; pos < sealed->size(); ++pos) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string tampered = *sealed;
      tampered[pos] = static_cast<char>(tampered[pos] ^ (1 << bit));

      auto opened = open(dek, tampered, alice_google);

      ASSERT_FALSE(opened.ok()) << "byte " << pos << " bit " << bit;
      EXPECT_EQ(opened.error().code, pos == 0 ? "unsupported_format" : "open_failed")
          << "byte " << pos << " bit " << bit;
    }
  }
}

// Every proper prefix of a sealed value, down to empty, fails to open.
TEST(envelope, open_fails_when_truncated) {
  const secret_string dek = generate_data_key();
  auto sealed = seal(dek, "token", alice_google);
  ASSERT_TRUE(sealed.ok());

  for (std::size_t len = 0; len < sealed->size(); ++len) {
    auto opened = open(dek, std::string_view{*sealed}.substr(0, len), alice_google);

    ASSERT_FALSE(opened.ok()) << "length " << len;
    EXPECT_EQ(opened.error().code, "open_failed") << "length " << len;
  }
}

// A value sealed under one user's data key does not open under another's.
TEST(envelope, open_fails_with_wrong_data_key) {
  auto sealed = seal(generate_data_key(), "token", alice_google);
  ASSERT_TRUE(sealed.ok());

  auto opened = open(generate_data_key(), *sealed, alice_google);

  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().code, "open_failed");
}

// A data key of the wrong length is refused rather than used.
TEST(envelope, seal_and_open_fail_with_short_data_key) {
  const secret_string short_dek{std::string(16, 'k')};

  auto sealed = seal(short_dek, "token", alice_google);
  auto opened = open(short_dek, std::string(40, '\x01'), alice_google);

  ASSERT_FALSE(sealed.ok());
  EXPECT_EQ(sealed.error().code, "seal_failed");
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().code, "open_failed");
}

// A format version this code does not know is reported as such, not as tampering.
TEST(envelope, open_reports_unsupported_format_for_unknown_version) {
  const secret_string dek = generate_data_key();
  auto sealed = seal(dek, "token", alice_google);
  ASSERT_TRUE(sealed.ok());

  for (char version : {'\x00', '\x02', '\xff'}) {
    std::string other = *sealed;
    other[0] = version;

    auto opened = open(dek, other, alice_google);

    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.error().code, "unsupported_format");
  }
}

// Each seal draws a fresh nonce, so equal plaintexts give unrelated sealed values.
TEST(envelope, seal_differs_when_same_plaintext_sealed_twice) {
  const secret_string dek = generate_data_key();

  auto first = seal(dek, "token", alice_google);
  auto second = seal(dek, "token", alice_google);

  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(second.ok());
  EXPECT_NE(*first, *second);
  EXPECT_NE(first->substr(1, 12), second->substr(1, 12));
}

// The nonce of a sealed value (bytes 1..12, see envelope.hpp).
std::string nonce_of(const std::string& sealed) {
  return sealed.substr(1, 12);
}

// Seals `count` values and returns their nonces; empty if any seal fails.
std::vector<std::string> seal_nonces(const secret_string& dek, int count) {
  std::vector<std::string> nonces;
  for (int i = 0; i < count; ++i) {
    auto sealed = seal(dek, "token", alice_google);
    if (!sealed.ok())
      return {};
    nonces.push_back(nonce_of(*sealed));
  }
  return nonces;
}

bool write_all(int fd, const std::string& bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

std::string read_all(int fd) {
  std::string bytes;
  char buf[256];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return bytes;
    bytes.append(buf, static_cast<std::size_t>(n));
  }
}

// Seals once (so this thread holds buffered nonces), copies the process with `copy_process`,
// and has parent and child each seal `count` values under the same key. Without a fork guard
// the child would hand out exactly the nonces the parent hands out next. Returns the child's
// nonces and the parent's, in that order.
std::pair<std::vector<std::string>, std::vector<std::string>> nonces_after_copy(
    pid_t (*copy_process)(), int count) {
  const secret_string dek = generate_data_key();
  EXPECT_EQ(seal_nonces(dek, 1).size(), 1u);

  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  const pid_t child = copy_process();
  if (child == 0) {
    // The child only seals and reports: no gtest machinery, and _exit skips the parent's
    // atexit handlers and buffered output.
    ::close(fds[0]);
    std::string report;
    for (const auto& nonce : seal_nonces(dek, count))
      report += nonce;
    ::_exit(write_all(fds[1], report) ? 0 : 1);
  }
  EXPECT_GT(child, 0);
  ::close(fds[1]);

  const auto parent_nonces = seal_nonces(dek, count);
  const std::string report = read_all(fds[0]);
  ::close(fds[0]);
  int wait_status = 0;
  EXPECT_EQ(::waitpid(child, &wait_status, 0), child);
  EXPECT_TRUE(WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0);

  std::vector<std::string> child_nonces;
  for (std::size_t pos = 0; pos + 12 <= report.size(); pos += 12)
    child_nonces.push_back(report.substr(pos, 12));
  return {child_nonces, parent_nonces};
}

bool shares_any(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  return std::any_of(a.begin(), a.end(), [&](const std::string& x) {
    return std::find(b.begin(), b.end(), x) != b.end();
  });
}

// A forked child must never reuse the nonces buffered in its parent: under the same data key
// that would expose the XOR of two plaintexts and GCM's authentication key.
TEST(envelope, forked_child_draws_nonces_unlike_parents_next) {
  const auto [child, parent] = nonces_after_copy(::fork, 8);

  ASSERT_EQ(child.size(), 8u);
  ASSERT_EQ(parent.size(), 8u);
  EXPECT_FALSE(shares_any(child, parent));
}

// _Fork() runs no atfork handlers, so here the pid check alone must catch the copy.
TEST(envelope, child_of_fork_without_atfork_handlers_draws_nonces_unlike_parents_next) {
  const auto [child, parent] = nonces_after_copy(::_Fork, 8);

  ASSERT_EQ(child.size(), 8u);
  ASSERT_EQ(parent.size(), 8u);
  EXPECT_FALSE(shares_any(child, parent));
}

// Nonces come from a refilled buffer; across many refills none repeats.
TEST(envelope, seal_draws_distinct_nonces_over_10000_seals) {
  const secret_string dek = generate_data_key();

  const auto nonces = seal_nonces(dek, 10000);

  ASSERT_EQ(nonces.size(), 10000u);
  EXPECT_EQ(std::set<std::string>(nonces.begin(), nonces.end()).size(), 10000u);
}

// Each thread has a buffer of its own; threads sealing at once never share a nonce.
TEST(envelope, seal_draws_distinct_nonces_across_threads) {
  const secret_string dek = generate_data_key();
  std::vector<std::string> first, second;

  std::thread a([&] { first = seal_nonces(dek, 1000); });
  std::thread b([&] { second = seal_nonces(dek, 1000); });
  a.join();
  b.join();

  ASSERT_EQ(first.size(), 1000u);
  ASSERT_EQ(second.size(), 1000u);
  std::set<std::string> all(first.begin(), first.end());
  all.insert(second.begin(), second.end());
  EXPECT_EQ(all.size(), 2000u);
}

// Failure messages carry neither the plaintext nor the key.
TEST(envelope, open_failure_message_carries_no_secret) {
  const secret_string dek = generate_data_key();
  auto sealed = seal(dek, "super-secret-token", alice_google);
  ASSERT_TRUE(sealed.ok());

  auto opened = open(dek, *sealed, {"user:bob", "google", "refresh_token"});

  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().message.find("super-secret-token"), std::string::npos);
  EXPECT_EQ(opened.error().message.find(dek.reveal()), std::string::npos);
}

// A data key holds 32 bytes and each call draws new ones.
TEST(envelope, generate_data_key_returns_32_fresh_bytes) {
  const secret_string first = generate_data_key();
  const secret_string second = generate_data_key();

  EXPECT_EQ(first.size(), 32u);
  EXPECT_EQ(second.size(), 32u);
  EXPECT_FALSE(first == second);
}

// random_bytes returns exactly the length asked for, different each time.
TEST(envelope, random_bytes_returns_requested_length) {
  EXPECT_TRUE(random_bytes(0).empty());
  EXPECT_EQ(random_bytes(1).size(), 1u);
  EXPECT_EQ(random_bytes(1000).size(), 1000u);
  EXPECT_NE(random_bytes(32), random_bytes(32));
}

// A wrapped data key unwraps to the same key for the same owner and master key.
TEST(envelope, unwrap_returns_data_key_when_wrapped_for_same_owner) {
  const master_key kek = make_master_key('m');
  const secret_string dek = generate_data_key();

  auto wrapped = wrap_data_key(kek, dek, "user:alice");
  ASSERT_TRUE(wrapped.ok()) << wrapped.error().code;
  auto unwrapped = unwrap_data_key(kek, *wrapped, "user:alice");

  ASSERT_TRUE(unwrapped.ok()) << unwrapped.error().code;
  EXPECT_TRUE(*unwrapped == dek);
}

// The wrapped key is version, big-endian master key version, nonce, key and tag: 65 bytes.
TEST(envelope, wrap_produces_documented_layout) {
  const master_key kek = make_master_key('m', /*version=*/0x01020304);
  const secret_string dek = generate_data_key();

  auto wrapped = wrap_data_key(kek, dek, "user:alice");

  ASSERT_TRUE(wrapped.ok());
  ASSERT_EQ(wrapped->size(), 65u);
  EXPECT_EQ(wrapped->substr(0, 5), std::string("\x01\x01\x02\x03\x04", 5));
  EXPECT_EQ(wrapped->find(dek.reveal()), std::string::npos);
}

// Another implementation following the header alone can unwrap what wrap writes.
TEST(envelope, wrap_output_unwraps_with_plain_openssl_and_documented_aad) {
  const master_key kek = make_master_key('m');
  const secret_string dek = generate_data_key();
  auto wrapped = wrap_data_key(kek, dek, "user:alice");
  ASSERT_TRUE(wrapped.ok());

  const std::string_view bytes = *wrapped;
  std::string tag{bytes.substr(49, 16)};
  auto unwrapped = raw_gcm(/*encrypt=*/false, kek.bytes().reveal(), bytes.substr(5, 12),
                           documented_dek_aad("user:alice"), bytes.substr(17, 32), tag);

  ASSERT_TRUE(unwrapped.has_value());
  EXPECT_TRUE(dek.equals(*unwrapped));
}

// A data key wrapped under one master key does not unwrap under another of the same version.
TEST(envelope, unwrap_fails_with_wrong_master_key) {
  auto wrapped = wrap_data_key(make_master_key('m'), generate_data_key(), "user:alice");
  ASSERT_TRUE(wrapped.ok());

  auto unwrapped = unwrap_data_key(make_master_key('n'), *wrapped, "user:alice");

  ASSERT_FALSE(unwrapped.ok());
  EXPECT_EQ(unwrapped.error().code, "key_unwrap_failed");
}

// A data key wrapped for one owner does not unwrap as another owner's.
TEST(envelope, unwrap_fails_for_different_owner) {
  const master_key kek = make_master_key('m');
  auto wrapped = wrap_data_key(kek, generate_data_key(), "user:alice");
  ASSERT_TRUE(wrapped.ok());

  auto unwrapped = unwrap_data_key(kek, *wrapped, "user:bob");

  ASSERT_FALSE(unwrapped.ok());
  EXPECT_EQ(unwrapped.error().code, "key_unwrap_failed");
}

// A value naming another master key version is reported as a version mismatch.
TEST(envelope, unwrap_reports_version_mismatch_when_master_key_version_differs) {
  auto wrapped = wrap_data_key(make_master_key('m', 1), generate_data_key(), "user:alice");
  ASSERT_TRUE(wrapped.ok());

  auto unwrapped = unwrap_data_key(make_master_key('m', 2), *wrapped, "user:alice");

  ASSERT_FALSE(unwrapped.ok());
  EXPECT_EQ(unwrapped.error().code, "master_key_version_mismatch");
}

// Any flipped bit or missing byte in a wrapped key is detected.
TEST(envelope, unwrap_fails_when_tampered_or_truncated) {
  const master_key kek = make_master_key('m');
  auto wrapped = wrap_data_key(kek, generate_data_key(), "user:alice");
  ASSERT_TRUE(wrapped.ok());

  for (std::size_t pos = 0; pos < wrapped->size(); ++pos) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string tampered = *wrapped;
      tampered[pos] = static_cast<char>(tampered[pos] ^ (1 << bit));
      EXPECT_FALSE(unwrap_data_key(kek, tampered, "user:alice").ok())
          << "byte " << pos << " bit " << bit;
    }
  }
  for (std::size_t len = 0; len < wrapped->size(); ++len) {
    auto unwrapped = unwrap_data_key(kek, std::string_view{*wrapped}.substr(0, len), "user:alice");
    ASSERT_FALSE(unwrapped.ok()) << "length " << len;
    EXPECT_EQ(unwrapped.error().code, "key_unwrap_failed");
  }
}

// Only a 32-byte data key is wrapped: the format has room for nothing else.
TEST(envelope, wrap_fails_when_data_key_is_not_32_bytes) {
  const master_key kek = make_master_key('m');

  for (std::size_t size : {0, 16, 31, 33}) {
    auto wrapped = wrap_data_key(kek, secret_string{std::string(size, 'k')}, "user:alice");
    ASSERT_FALSE(wrapped.ok()) << size;
    EXPECT_EQ(wrapped.error().code, "key_wrap_failed");
  }
}

// Output of `openssl rand -base64 32`, trailing newline included, is a valid master key.
TEST(envelope, master_key_from_base64_accepts_openssl_rand_output) {
  const std::string text = "mV5eEpDp7LqataGMQJI8gjsb/bDbEyu3+apyqk6p8Fo=\n";

  auto key = master_key::from_base64(text, /*version=*/3);

  ASSERT_TRUE(key.ok()) << key.error().code;
  EXPECT_EQ(key->version(), 3u);
  auto expected = base64_decode("mV5eEpDp7LqataGMQJI8gjsb/bDbEyu3+apyqk6p8Fo=");
  ASSERT_TRUE(expected.ok());
  EXPECT_TRUE(key->bytes().equals(*expected));
  EXPECT_TRUE(master_key::from_base64("  \t" + text + "\r\n").ok());
}

// Base64 of anything but exactly 32 bytes is not a master key.
TEST(envelope, master_key_from_base64_rejects_31_and_33_bytes) {
  for (std::size_t size : {31, 33}) {
    auto key = master_key::from_base64(base64_encode(std::string(size, 'k')) + "\n");
    ASSERT_FALSE(key.ok()) << size;
    EXPECT_EQ(key.error().code, "master_key_invalid");
  }
}

// Text that is not base64 at all, or nothing at all, is not a master key.
TEST(envelope, master_key_from_base64_rejects_non_base64_and_empty) {
  const std::string valid = "mV5eEpDp7LqataGMQJI8gjsb/bDbEyu3+apyqk6p8Fo=";
  for (const std::string& text :
       {std::string{}, std::string(" \n"), std::string("not a key at all"),
        std::string("mV5eEpDp7LqataGMQJI8gjsb/bDbEyu3+apyqk6p8Fo"),
        std::string("mV5eEpDp7LqataGMQJI8gjsb_bDbEyu3-apyqk6p8Fo="),
        std::string("mV5eEpDp7LqataGMQJI8gjsb/bDb\nEyu3+apyqk6p8Fo="), valid + valid}) {
    auto key = master_key::from_base64(text);
    ASSERT_FALSE(key.ok()) << text;
    EXPECT_EQ(key.error().code, "master_key_invalid");
  }
}

// A key file as openssl writes it loads with the given version.
TEST_F(key_file_test, load_file_reads_key_when_file_holds_base64_key) {
  const std::string path = write_file("kek", "mV5eEpDp7LqataGMQJI8gjsb/bDbEyu3+apyqk6p8Fo=\n");

  auto key = master_key::load_file(path, /*version=*/2);

  ASSERT_TRUE(key.ok()) << key.error().code;
  EXPECT_EQ(key->version(), 2u);
  EXPECT_EQ(key->bytes().size(), 32u);
}

// A missing key file is unreadable, and the message names the path.
TEST_F(key_file_test, load_file_reports_unreadable_when_path_is_missing) {
  const std::string path = (dir_ / "missing").string();

  auto key = master_key::load_file(path);

  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.error().code, "master_key_unreadable");
  EXPECT_NE(key.error().message.find(path), std::string::npos);
}

// A directory in place of the key file is unreadable.
TEST_F(key_file_test, load_file_reports_unreadable_when_path_is_directory) {
  auto key = master_key::load_file(dir_.string());

  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.error().code, "master_key_unreadable");
  EXPECT_NE(key.error().message.find(dir_.string()), std::string::npos);
}

// A file of garbage is invalid, and the message names the path but not the content.
TEST_F(key_file_test, load_file_reports_invalid_when_file_holds_garbage) {
  const std::string path = write_file("garbage", "GARBAGE-CONTENT\x01\x02 not base64\n");

  auto key = master_key::load_file(path);

  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.error().code, "master_key_invalid");
  EXPECT_NE(key.error().message.find(path), std::string::npos);
  EXPECT_EQ(key.error().message.find("GARBAGE"), std::string::npos);
}

// An empty file and a file far larger than a key are both invalid.
TEST_F(key_file_test, load_file_reports_invalid_when_file_is_empty_or_huge) {
  const std::string key_line = "mV5eEpDp7LqataGMQJI8gjsb/bDbEyu3+apyqk6p8Fo=\n";
  std::string huge;
  for (int i = 0; i < 200; ++i)
    huge += key_line;

  for (const std::string& path : {write_file("empty", ""), write_file("huge", huge)}) {
    auto key = master_key::load_file(path);
    ASSERT_FALSE(key.ok()) << path;
    EXPECT_EQ(key.error().code, "master_key_invalid");
  }
}

// Every byte value survives encoding and decoding, at every padding length.
TEST(envelope, base64_round_trips_all_byte_values) {
  const std::string bytes = all_byte_values();

  for (std::size_t len = 0; len <= bytes.size(); ++len) {
    const std::string input = bytes.substr(bytes.size() - len);
    auto decoded = base64_decode(base64_encode(input));
    ASSERT_TRUE(decoded.ok()) << len;
    EXPECT_EQ(*decoded, input) << len;
  }
}

// Encoding and decoding match the RFC 4648 section 10 test vectors.
TEST(envelope, base64_matches_rfc4648_vectors) {
  const std::pair<std::string, std::string> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};

  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(plain), encoded);
    auto decoded = base64_decode(encoded);
    ASSERT_TRUE(decoded.ok()) << encoded;
    EXPECT_EQ(*decoded, plain);
  }
}

// Decoding rejects bad lengths, foreign characters, misplaced padding and non-canonical bits.
TEST(envelope, base64_decode_rejects_malformed_text) {
  for (const std::string& text :
       {std::string("Zg="), std::string("Zg"), std::string("Z"), std::string("Z==="),
        std::string("===="), std::string("=Zg="), std::string("Z=g="), std::string("Zg==Zg=="),
        std::string("Zm9v\n"), std::string(" Zm9v"), std::string("Zm9v YmFy"), std::string("Zm-v"),
        std::string("Zm_v"), std::string("Zm9*"), std::string("Zh=="), std::string("Zm9="),
        std::string("Zm\0v", 4), std::string("\xff\xfe\xfd\xfc")}) {
    auto decoded = base64_decode(text);
    ASSERT_FALSE(decoded.ok()) << text;
    EXPECT_EQ(decoded.error().code, "invalid_base64");
  }
}

// SHA-256 matches the FIPS 180-2 "abc" vector and the empty-input digest.
TEST(envelope, sha256_hex_matches_known_vectors) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

}  // namespace
}  // namespace latchkey
