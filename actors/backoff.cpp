#include "actors/backoff.hpp"

#include <algorithm>

namespace latchkey {

std::chrono::milliseconds backoff_policy::delay(
    int failed_attempts, std::optional<std::chrono::milliseconds> retry_after,
    std::mt19937_64& rng) const {
  using std::chrono::milliseconds;

  // Exponential step, computed without overflow: stop doubling once it passes the cap.
  std::int64_t step = std::max<std::int64_t>(base.count(), 1);
  for (int i = 1; i < failed_attempts && step < max.count(); ++i)
    step *= 2;
  step = std::min<std::int64_t>(step, std::max<std::int64_t>(max.count(), 1));

  // Equal jitter in [step/2, step].
  std::uniform_int_distribution<std::int64_t> jitter(step / 2, step);
  milliseconds chosen{jitter(rng)};

  if (retry_after)
    chosen = std::max(chosen, std::min(*retry_after, max_retry_after));
  return chosen;
}

}  // namespace latchkey
