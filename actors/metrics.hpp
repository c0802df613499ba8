// Counters for every outcome an operator alerts on, exposed by the gateway at GET /metrics in
// the Prometheus text format. Plain atomics: incremented from actors and HTTP threads, read by
// the metrics route; labels are fixed words, never ids or secrets.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace latchkey {

struct metrics {
  std::atomic<std::uint64_t> refresh_ok{0};
  std::atomic<std::uint64_t> refresh_rotated{0};
  std::atomic<std::uint64_t> refresh_invalid_grant{0};
  std::atomic<std::uint64_t> refresh_transient{0};
  std::atomic<std::uint64_t> refresh_permanent{0};
  std::atomic<std::uint64_t> token_cache_hits{0};

  std::atomic<std::uint64_t> task_created{0};
  std::atomic<std::uint64_t> task_attempts{0};
  std::atomic<std::uint64_t> task_succeeded{0};
  std::atomic<std::uint64_t> task_failed{0};
  std::atomic<std::uint64_t> task_retried{0};
  std::atomic<std::uint64_t> task_blocked{0};
  std::atomic<std::uint64_t> task_cancelled{0};
  std::atomic<std::uint64_t> connections_needing_reconnect{0};

  /// The counters in the Prometheus text exposition format.
  std::string render() const;
};

}  // namespace latchkey
