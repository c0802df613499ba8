// The retry backoff: exponential, jittered within [step/2, step], capped, and never sooner
// than a server's Retry-After (itself clamped).

#include <gtest/gtest.h>

#include "actors/backoff.hpp"

namespace latchkey {
namespace {

using std::chrono::milliseconds;

// Each attempt's delay lies in [step/2, step] with step doubling from the base.
TEST(backoff, delay_doubles_within_jitter_bounds) {
  backoff_policy policy{milliseconds(1000), milliseconds(60000)};
  std::mt19937_64 rng(42);
  for (int attempt = 1; attempt <= 6; ++attempt) {
    auto step = 1000LL << (attempt - 1);
    for (int i = 0; i < 200; ++i) {
      auto d = policy.delay(attempt, std::nullopt, rng).count();
      EXPECT_GE(d, step / 2) << attempt;
      EXPECT_LE(d, step) << attempt;
    }
  }
}

// The step stops at the maximum, also for absurd attempt numbers (no overflow).
TEST(backoff, delay_is_capped_at_max) {
  backoff_policy policy{milliseconds(1000), milliseconds(5000)};
  std::mt19937_64 rng(1);
  for (int attempt : {4, 10, 64, 1000, 1 << 30}) {
    auto d = policy.delay(attempt, std::nullopt, rng).count();
    EXPECT_GE(d, 2500);
    EXPECT_LE(d, 5000);
  }
}

// Jitter spreads retries: many draws are not all equal.
TEST(backoff, delay_is_jittered) {
  backoff_policy policy{milliseconds(1000), milliseconds(60000)};
  std::mt19937_64 rng(7);
  std::set<long long> seen;
  for (int i = 0; i < 50; ++i)
    seen.insert(policy.delay(3, std::nullopt, rng).count());
  EXPECT_GT(seen.size(), 10u);
}

// Retry-After raises the delay (tests/cases/case-13.json), but is clamped.
TEST(backoff, retry_after_is_a_lower_bound_and_clamped) {
  backoff_policy policy{milliseconds(100), milliseconds(1000), milliseconds(3600000)};
  std::mt19937_64 rng(3);
  EXPECT_EQ(policy.delay(1, milliseconds(120000), rng).count(), 120000);
  EXPECT_EQ(policy.delay(1, milliseconds(999999999), rng).count(), 3600000);
  auto small = policy.delay(1, milliseconds(1), rng).count();
  EXPECT_GE(small, 50);
  EXPECT_LE(small, 100);
}

}  // namespace
}  // namespace latchkey
