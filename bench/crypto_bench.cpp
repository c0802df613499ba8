// Costs of the envelope operations on a token-sized secret. Every input is fixed and built
// outside the timed loop, so the numbers measure the crypto calls alone.
#include <benchmark/benchmark.h>

#include <string>

#include "persistence/envelope.hpp"

namespace latchkey {
namespace {

const seal_context bench_place{"user:bench", "google", "refresh_token"};

// A typical refresh token is 100-250 characters; 200 fixed bytes stand in for one.
std::string token_200_bytes() {
  std::string token;
  for (int i = 0; i < 200; ++i)
    token.push_back(static_cast<char>('A' + i % 26));
  return token;
}

secret_string fixed_data_key() {
  return secret_string{std::string(32, '\x5a')};
}

result<master_key> fixed_master_key() {
  return master_key::from_base64(base64_encode(std::string(32, '\x3c')));
}

void BM_seal_200B_token(benchmark::State& state) {
  const secret_string dek = fixed_data_key();
  const std::string token = token_200_bytes();

  for (auto _ : state) {
    auto sealed = seal(dek, token, bench_place);
    if (!sealed.ok()) {
      state.SkipWithError(sealed.error().code.c_str());
      break;
    }
    benchmark::DoNotOptimize(sealed);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(token.size()));
}
BENCHMARK(BM_seal_200B_token);

void BM_open_200B_token(benchmark::State& state) {
  const secret_string dek = fixed_data_key();
  auto sealed = seal(dek, token_200_bytes(), bench_place);
  if (!sealed.ok()) {
    state.SkipWithError(sealed.error().code.c_str());
    return;
  }

  for (auto _ : state) {
    auto opened = open(dek, *sealed, bench_place);
    if (!opened.ok()) {
      state.SkipWithError(opened.error().code.c_str());
      break;
    }
    benchmark::DoNotOptimize(opened);
  }
  state.SetBytesProcessed(state.iterations() * 200);
}
BENCHMARK(BM_open_200B_token);

void BM_wrap_data_key(benchmark::State& state) {
  auto kek = fixed_master_key();
  if (!kek.ok()) {
    state.SkipWithError(kek.error().code.c_str());
    return;
  }
  const secret_string dek = fixed_data_key();

  for (auto _ : state) {
    auto wrapped = wrap_data_key(*kek, dek, "user:bench");
    if (!wrapped.ok()) {
      state.SkipWithError(wrapped.error().code.c_str());
      break;
    }
    benchmark::DoNotOptimize(wrapped);
  }
}
BENCHMARK(BM_wrap_data_key);

void BM_unwrap_data_key(benchmark::State& state) {
  auto kek = fixed_master_key();
  if (!kek.ok()) {
    state.SkipWithError(kek.error().code.c_str());
    return;
  }
  auto wrapped = wrap_data_key(*kek, fixed_data_key(), "user:bench");
  if (!wrapped.ok()) {
    state.SkipWithError(wrapped.error().code.c_str());
    return;
  }

  for (auto _ : state) {
    auto dek = unwrap_data_key(*kek, *wrapped, "user:bench");
    if (!dek.ok()) {
      state.SkipWithError(dek.error().code.c_str());
      break;
    }
    benchmark::DoNotOptimize(dek);
  }
}
BENCHMARK(BM_unwrap_data_key);

}  // namespace
}  // namespace latchkey
