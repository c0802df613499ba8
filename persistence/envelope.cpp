#include "persistence/envelope.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>

namespace latchkey {

namespace {

constexpr std::size_t key_size = 32;
constexpr std::size_t nonce_size = 12;
constexpr std::size_t tag_size = 16;
constexpr unsigned char format_v1 = 0x01;

// Sealed value: version, nonce, ciphertext, tag.
constexpr std::size_t seal_header_size = 1 + nonce_size;
constexpr std::size_t seal_min_size = seal_header_size + tag_size;

// Wrapped data key: version, master key version, nonce, wrapped key, tag.
constexpr std::size_t wrap_kek_version_offset = 1;
constexpr std::size_t wrap_nonce_offset = wrap_kek_version_offset + 4;
constexpr std::size_t wrap_key_offset = wrap_nonce_offset + nonce_size;
constexpr std::size_t wrap_tag_offset = wrap_key_offset + key_size;
constexpr std::size_t wrap_size = wrap_tag_offset + tag_size;

constexpr std::string_view seal_label = "latchkey/seal/v1";
constexpr std::string_view wrap_label = "latchkey/dek/v1";

// A key file holds 45 bytes; anything this large is not a key and is not worth reading further.
constexpr std::size_t key_file_limit = 4096;

struct cipher_deleter {
  void operator()(EVP_CIPHER* cipher) const { EVP_CIPHER_free(cipher); }
};
struct cipher_ctx_deleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using cipher_ptr = std::unique_ptr<EVP_CIPHER, cipher_deleter>;
using cipher_ctx_ptr = std::unique_ptr<EVP_CIPHER_CTX, cipher_ctx_deleter>;

// Wipes a fixed region when the scope ends, whichever way it ends.
class scoped_cleanse {
 public:
  scoped_cleanse(void* data, std::size_t size) : data_(data), size_(size) {}
  scoped_cleanse(const scoped_cleanse&) = delete;
  scoped_cleanse& operator=(const scoped_cleanse&) = delete;
  ~scoped_cleanse() { OPENSSL_cleanse(data_, size_); }

 private:
  void* data_;
  std::size_t size_;
};

class file_closer {
 public:
  explicit file_closer(int fd) : fd_(fd) {}
  file_closer(const file_closer&) = delete;
  file_closer& operator=(const file_closer&) = delete;
  ~file_closer() { ::close(fd_); }

 private:
  int fd_;
};

// Fetched once: EVP_aes_256_gcm() would repeat the provider lookup on every init, which costs
// about as much as sealing a token. A fetched cipher is immutable and safe to share.
const EVP_CIPHER* aes_256_gcm() {
  static const cipher_ptr cipher{EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr)};
  return cipher.get();
}

const unsigned char* as_bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

unsigned char* as_bytes(std::string& s) {
  return reinterpret_cast<unsigned char*>(s.data());
}

// A zeroed buffer for bytes that end up in a secret_string. Reserving more than any small-string
// buffer keeps the bytes on the heap, so moving the string hands over the pointer rather than
// copying the bytes and leaving a stray copy in the moved-from object.
std::string secret_buffer(std::size_t n) {
  std::string buf;
  buf.reserve(std::max(n, sizeof(std::string)));
  buf.resize(n);
  return buf;
}

void append_be32(std::string& out, std::uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>(v >> 16));
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

std::uint32_t read_be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

// The label, then each part as a 4-byte length and its bytes: the lengths keep ("ab", "c") and
// ("a", "bc") apart. Empty if a part is too long to be described.
std::optional<std::string> associated_data(std::string_view label,
                                           std::initializer_list<std::string_view> parts) {
  std::size_t size = label.size();
  for (auto part : parts) {
    if (part.size() > UINT32_MAX)
      return std::nullopt;
    size += 4 + part.size();
  }

  std::string aad;
  aad.reserve(size);
  aad.append(label);
  for (auto part : parts) {
    append_be32(aad, static_cast<std::uint32_t>(part.size()));
    aad.append(part);
  }
  return aad;
}

bool fits_int(std::size_t n) {
  return n <= static_cast<std::size_t>(INT_MAX);
}

// AES-256-GCM over `plaintext`; writes plaintext.size() bytes to `ciphertext` and 16 to `tag`.
bool gcm_encrypt(const secret_string& key, const unsigned char* nonce, std::string_view aad,
                 std::string_view plaintext, unsigned char* ciphertext, unsigned char* tag) {
  if (key.size() != key_size || aes_256_gcm() == nullptr || !fits_int(aad.size()) ||
      !fits_int(plaintext.size()))
    return false;

  cipher_ctx_ptr ctx{EVP_CIPHER_CTX_new()};
  if (!ctx ||
      EVP_EncryptInit_ex(ctx.get(), aes_256_gcm(), nullptr, as_bytes(key.reveal()), nonce) != 1)
    return false;

  int len = 0;
  if (EVP_EncryptUpdate(ctx.get(), nullptr, &len, as_bytes(aad), static_cast<int>(aad.size())) != 1)
    return false;
  if (EVP_EncryptUpdate(ctx.get(), ciphertext, &len, as_bytes(plaintext),
                        static_cast<int>(plaintext.size())) != 1)
    return false;

  // GCM is a stream mode: Final emits nothing, it only completes the tag.
  int tail = 0;
  if (EVP_EncryptFinal_ex(ctx.get(), ciphertext + len, &tail) != 1)
    return false;
  return EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_GET_TAG, static_cast<int>(tag_size), tag) ==
         1;
}

// Inverse of gcm_encrypt. On false, `plaintext` may hold unauthenticated bytes: the caller wipes.
bool gcm_decrypt(const secret_string& key, const unsigned char* nonce, std::string_view aad,
                 std::string_view ciphertext, const unsigned char* tag, unsigned char* plaintext) {
  if (key.size() != key_size || aes_256_gcm() == nullptr || !fits_int(aad.size()) ||
      !fits_int(ciphertext.size()))
    return false;

  cipher_ctx_ptr ctx{EVP_CIPHER_CTX_new()};
  if (!ctx ||
      EVP_DecryptInit_ex(ctx.get(), aes_256_gcm(), nullptr, as_bytes(key.reveal()), nonce) != 1)
    return false;

  int len = 0;
  if (EVP_DecryptUpdate(ctx.get(), nullptr, &len, as_bytes(aad), static_cast<int>(aad.size())) != 1)
    return false;
  if (EVP_DecryptUpdate(ctx.get(), plaintext, &len, as_bytes(ciphertext),
                        static_cast<int>(ciphertext.size())) != 1)
    return false;

  // OpenSSL only reads the expected tag, but its ctrl signature takes a mutable pointer.
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_TAG, static_cast<int>(tag_size),
                          const_cast<unsigned char*>(tag)) != 1)
    return false;
  int tail = 0;
  return EVP_DecryptFinal_ex(ctx.get(), plaintext + len, &tail) == 1;
}

int base64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

// Strict RFC 4648 base64: whole quantums, the alphabet only, padding only at the end, and
// unused bits zero, so that every byte string has exactly one accepted encoding.
std::optional<std::size_t> base64_padding(std::string_view text) {
  if (text.size() % 4 != 0)
    return std::nullopt;

  std::size_t padding = 0;
  while (padding < text.size() && text[text.size() - 1 - padding] == '=')
    ++padding;
  if (padding > 2)
    return std::nullopt;

  std::string_view data = text.substr(0, text.size() - padding);
  for (char c : data) {
    if (base64_value(static_cast<unsigned char>(c)) < 0)
      return std::nullopt;
  }

  if (padding > 0) {
    const int unused_mask = padding == 1 ? 0x03 : 0x0f;
    if ((base64_value(static_cast<unsigned char>(data.back())) & unused_mask) != 0)
      return std::nullopt;
  }
  return padding;
}

// Decodes validated text into `out`, sized 3/4 of the text less the padding. EVP_DecodeBlock
// decodes each '=' as a zero byte, so the padding is cut off here.
bool base64_decode_into(std::string_view text, std::string& out) {
  const auto padding = base64_padding(text);
  if (!padding)
    return false;

  // EVP_DecodeBlock takes an int length: decode in whole quantums well below that.
  constexpr std::size_t chunk = std::size_t{4} << 20;
  std::size_t written = 0;
  for (std::size_t pos = 0; pos < text.size(); pos += chunk) {
    const std::string_view part = text.substr(pos, chunk);
    const int n =
        EVP_DecodeBlock(as_bytes(out) + written, as_bytes(part), static_cast<int>(part.size()));
    if (n < 0)
      return false;
    written += static_cast<std::size_t>(n);
  }

  out.resize(written - *padding);
  return true;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front()))
    text.remove_prefix(1);
  while (!text.empty() && is_space(text.back()))
    text.remove_suffix(1);
  return text;
}

// The 32 key bytes from base64 with surrounding whitespace; nothing on failure.
std::optional<secret_string> parse_master_key(std::string_view text) {
  text = trim(text);
  std::string buf = secret_buffer(text.size() / 4 * 3);
  if (!base64_decode_into(text, buf) || buf.size() != key_size) {
    wipe_string(buf);
    return std::nullopt;
  }
  return secret_string{std::move(buf)};
}

std::string unreadable_reason(int error) {
  switch (error) {
    case ENOENT:
      return "does not exist";
    case EACCES:
      return "permission denied";
    case EISDIR:
      return "is a directory";
    default:
      return "cannot be read";
  }
}

failure key_file_unreadable(const std::string& path, int error) {
  return make_failure("master_key_unreadable",
                      "master key file " + path + ": " + unreadable_reason(error));
}

[[noreturn]] void crypto_broken() {
  // Without a working CSPRNG or hash there is no safe value to hand back; stopping the process
  // is the only answer that cannot leak or reuse a key.
  std::abort();
}

void fill_random(unsigned char* out, std::size_t n) {
  while (n > 0) {
    const std::size_t part = std::min<std::size_t>(n, INT_MAX);
    if (RAND_bytes(out, static_cast<int>(part)) != 1)
      crypto_broken();
    out += part;
    n -= part;
  }
}

// Nonces come from a small per-thread buffer of CSPRNG output rather than one RAND_bytes call
// each: a call costs about 1 µs whether it returns 12 bytes or 768, which was 45% of a seal.
// AES-GCM needs its 96-bit nonces unique under a key, not secret; 12 bytes cut from a larger
// RAND_bytes output are exactly as random as 12 bytes asked for alone, so uniqueness holds
// with the same probability as before, as long as no buffered byte is ever handed out twice.
//
// That can happen in only one way: fork. The child gets a copy of the buffer and would hand
// out the very nonces the parent hands out next, under the same data keys, which in GCM
// reveals the XOR of two plaintexts and lets the authentication key be recovered. So the
// buffer is dropped in a child, by two independent guards:
//   - the pid the buffer was filled in must be the caller's pid (catches every way a process
//     can be copied, also _Fork() and raw clone(), which run no atfork handlers);
//   - a pthread_atfork child handler bumps a generation the buffer was filled under (catches
//     the one case the pid misses: a descendant that inherited an unused buffer and was given
//     the pid of its dead ancestor, possibly twice in a row).
// OpenSSL's own generator is fork-safe, so the refill in the child draws fresh bytes.
constexpr std::size_t nonces_per_refill = 64;

std::atomic<std::uint64_t> fork_generation{0};

void note_fork_in_child() {
  fork_generation.fetch_add(1, std::memory_order_relaxed);
}

class nonce_buffer {
 public:
  nonce_buffer() = default;
  nonce_buffer(const nonce_buffer&) = delete;
  nonce_buffer& operator=(const nonce_buffer&) = delete;
  ~nonce_buffer() { OPENSSL_cleanse(bytes_.data(), bytes_.size()); }

  // Writes the next 12 unused bytes to `out`; false only if the CSPRNG fails.
  bool next(unsigned char* out) {
    if (used_ == bytes_.size() || pid_ != ::getpid() ||
        generation_ != fork_generation.load(std::memory_order_relaxed)) {
      if (!refill())
        return false;
    }
    std::memcpy(out, bytes_.data() + used_, nonce_size);
    // A handed-out nonce is public (it is stored in the sealed value), so this is hygiene, not
    // secrecy: the buffer never keeps a copy of a nonce already in use.
    OPENSSL_cleanse(bytes_.data() + used_, nonce_size);
    used_ += nonce_size;
    return true;
  }

 private:
  bool refill() {
    static std::once_flag registered;
    // Should registration fail (ENOMEM), the pid guard still stands.
    std::call_once(registered, [] { ::pthread_atfork(nullptr, nullptr, note_fork_in_child); });

    const auto generation = fork_generation.load(std::memory_order_relaxed);
    // Marked empty first, so a failed draw leaves nothing usable behind.
    used_ = bytes_.size();
    if (RAND_bytes(bytes_.data(), static_cast<int>(bytes_.size())) != 1) {
      OPENSSL_cleanse(bytes_.data(), bytes_.size());
      return false;
    }
    pid_ = ::getpid();
    generation_ = generation;
    used_ = 0;
    return true;
  }

  std::array<unsigned char, nonce_size * nonces_per_refill> bytes_{};
  std::size_t used_ = bytes_.size();  // empty until the first draw
  pid_t pid_ = 0;
  std::uint64_t generation_ = 0;
};

// One buffer per thread: no lock on the seal path, and a thread's nonces never pass through
// another thread's memory.
bool next_nonce(unsigned char* out) {
  thread_local nonce_buffer buffer;
  return buffer.next(out);
}

}  // namespace

result<master_key> master_key::from_base64(std::string_view text, std::uint32_t version) {
  auto key = parse_master_key(text);
  if (!key)
    return make_failure("master_key_invalid", "master key is not base64 of 32 bytes");
  return master_key{std::move(*key), version};
}

result<master_key> master_key::load_file(const std::string& path, std::uint32_t version) {
  // Plain read(2) into a buffer of our own: stream classes keep their own copy of the bytes,
  // which nothing would wipe. A directory opens fine and fails at read with EISDIR.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return key_file_unreadable(path, errno);
  file_closer closer{fd};

  std::array<char, key_file_limit> buf;
  scoped_cleanse wipe_buf{buf.data(), buf.size()};
  std::size_t len = 0;
  while (len < buf.size()) {
    const ssize_t n = ::read(fd, buf.data() + len, buf.size() - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return key_file_unreadable(path, errno);
    if (n == 0)
      break;
    len += static_cast<std::size_t>(n);
  }

  // A full buffer means the file is larger than any key file.
  auto key = len < buf.size() ? parse_master_key({buf.data(), len}) : std::nullopt;
  if (!key)
    return make_failure("master_key_invalid",
                        "master key file " + path + " is not base64 of 32 bytes");
  return master_key{std::move(*key), version};
}

secret_string generate_data_key() {
  std::string buf = secret_buffer(key_size);
  fill_random(as_bytes(buf), buf.size());
  return secret_string{std::move(buf)};
}

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  fill_random(as_bytes(out), out.size());
  return out;
}

result<std::string> wrap_data_key(const master_key& kek, const secret_string& dek,
                                  std::string_view owner) {
  if (dek.size() != key_size)
    return make_failure("key_wrap_failed", "data key is not 32 bytes");
  auto aad = associated_data(wrap_label, {owner});
  if (!aad)
    return make_failure("key_wrap_failed", "owner is too long");

  std::string out;
  out.reserve(wrap_size);
  out.push_back(static_cast<char>(format_v1));
  append_be32(out, kek.version());
  out.resize(wrap_size);
  if (!next_nonce(as_bytes(out) + wrap_nonce_offset))
    return make_failure("key_wrap_failed", "random nonce unavailable");

  unsigned char* base = as_bytes(out);
  if (!gcm_encrypt(kek.bytes(), base + wrap_nonce_offset, *aad, dek.reveal(),
                   base + wrap_key_offset, base + wrap_tag_offset))
    return make_failure("key_wrap_failed", "AES-GCM encryption failed");
  return out;
}

result<secret_string> unwrap_data_key(const master_key& kek, std::string_view wrapped,
                                      std::string_view owner) {
  const unsigned char* base = as_bytes(wrapped);
  if (wrapped.size() != wrap_size || base[0] != format_v1)
    return make_failure("key_unwrap_failed", "wrapped data key is malformed");

  // Checked before decrypting so that a missed rotation step reads as such, not as tampering.
  if (read_be32(base + wrap_kek_version_offset) != kek.version())
    return make_failure("master_key_version_mismatch",
                        "wrapped data key names master key version " +
                            std::to_string(read_be32(base + wrap_kek_version_offset)) +
                            ", loaded version is " + std::to_string(kek.version()));

  auto aad = associated_data(wrap_label, {owner});
  if (!aad)
    return make_failure("key_unwrap_failed", "owner is too long");

  std::string dek = secret_buffer(key_size);
  if (!gcm_decrypt(kek.bytes(), base + wrap_nonce_offset, *aad,
                   wrapped.substr(wrap_key_offset, key_size), base + wrap_tag_offset,
                   as_bytes(dek))) {
    wipe_string(dek);
    return make_failure("key_unwrap_failed", "wrapped data key failed to authenticate");
  }
  return secret_string{std::move(dek)};
}

result<std::string> seal(const secret_string& dek, std::string_view plaintext,
                         const seal_context& where) {
  auto aad = associated_data(seal_label, {where.owner, where.provider, where.field});
  if (!aad)
    return make_failure("seal_failed", "seal context is too long");

  std::string out(seal_min_size + plaintext.size(), '\0');
  unsigned char* base = as_bytes(out);
  base[0] = format_v1;
  if (!next_nonce(base + 1))
    return make_failure("seal_failed", "random nonce unavailable");

  if (!gcm_encrypt(dek, base + 1, *aad, plaintext, base + seal_header_size,
                   base + seal_header_size + plaintext.size()))
    return make_failure("seal_failed", "AES-GCM encryption failed");
  return out;
}

result<secret_string> open(const secret_string& dek, std::string_view sealed,
                           const seal_context& where) {
  const unsigned char* base = as_bytes(sealed);
  if (sealed.empty())
    return make_failure("open_failed", "sealed value is empty");
  if (base[0] != format_v1)
    return make_failure("unsupported_format",
                        "sealed value has format version " + std::to_string(base[0]));
  if (sealed.size() < seal_min_size)
    return make_failure("open_failed", "sealed value is truncated");

  auto aad = associated_data(seal_label, {where.owner, where.provider, where.field});
  if (!aad)
    return make_failure("open_failed", "seal context is too long");

  const std::size_t text_size = sealed.size() - seal_min_size;
  std::string plaintext = secret_buffer(text_size);
  if (!gcm_decrypt(dek, base + 1, *aad, sealed.substr(seal_header_size, text_size),
                   base + seal_header_size + text_size, as_bytes(plaintext))) {
    wipe_string(plaintext);
    return make_failure("open_failed", "sealed value failed to authenticate");
  }
  return secret_string{std::move(plaintext)};
}

std::string base64_encode(std::string_view bytes) {
  // EVP_EncodeBlock takes an int length and writes a trailing NUL: encode whole 3-byte groups
  // per call, each call's NUL overwritten by the next, the last one cut off.
  constexpr std::size_t chunk = std::size_t{3} << 20;
  std::string out((bytes.size() + 2) / 3 * 4 + 1, '\0');
  std::size_t written = 0;
  for (std::size_t pos = 0; pos < bytes.size(); pos += chunk) {
    const std::string_view part = bytes.substr(pos, chunk);
    written += static_cast<std::size_t>(
        EVP_EncodeBlock(as_bytes(out) + written, as_bytes(part), static_cast<int>(part.size())));
  }

  out.resize(written);
  return out;
}

result<std::string> base64_decode(std::string_view text) {
  std::string out(text.size() / 4 * 3, '\0');
  if (!base64_decode_into(text, out)) {
    wipe_string(out);
    return make_failure("invalid_base64", "text is not valid base64");
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  std::array<unsigned char, 32> digest{};
  unsigned int size = 0;
  if (EVP_Digest(data.data(), data.size(), digest.data(), &size, EVP_sha256(), nullptr) != 1 ||
      size != digest.size())
    crypto_broken();

  constexpr std::string_view hex = "0123456789abcdef";
  std::string out;
  out.reserve(digest.size() * 2);
  for (unsigned char b : digest) {
    out.push_back(hex[b >> 4]);
    out.push_back(hex[b & 0x0f]);
  }
  return out;
}

}  // namespace latchkey
