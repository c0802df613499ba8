// Retry delays for transient failures: exponential backoff with jitter, never sooner than a
// server's Retry-After.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>

namespace latchkey {

struct backoff_policy {
  std::chrono::milliseconds base{2000};
  std::chrono::milliseconds max{600000};
  /// Retry-After values above this are clamped, so one hostile header cannot park a task for
  /// years.
  std::chrono::milliseconds max_retry_after{std::chrono::hours(24)};

  /// The delay before attempt `failed_attempts + 1`. The exponential step is
  /// base * 2^(failed_attempts - 1), capped at `max`; the delay is drawn uniformly from
  /// [step / 2, step] ("equal jitter", so retries of many tasks spread out but never collapse
  /// to zero), then raised to `retry_after` if the server asked for longer.
  std::chrono::milliseconds delay(int failed_attempts,
                                  std::optional<std::chrono::milliseconds> retry_after,
                                  std::mt19937_64& rng) const;
};

}  // namespace latchkey
