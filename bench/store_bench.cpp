// Costs of keeping a task: one store::commit of the task record with its due-index entry, with
// the WAL synced (what every state change pays) and without (what the write costs before the
// disk is involved), and the record's encoding and decoding on their own.
//
// BM_store_task_after_idle waits 50 ms before each synced commit, as a task's start does on an
// idle node: on the virtual disk measured here a flush after a quiet spell costs several times
// one in a busy stream, and that is the cost the due path sees.
//
// The commit benchmarks time each commit by hand and report its latency distribution
// (p50/p90/p99/max in µs) as counters, because a synced write's tail, not its mean, is what a
// task's start waits on. Records are generated before the timed loop from a fixed seed; each
// benchmark run writes into a fresh RocksDB directory under /tmp that it removes afterwards.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_temp_dir.hpp"
#include "persistence/records.hpp"
#include "persistence/store.hpp"

namespace latchkey {
namespace {

// Enough distinct records that a synced run (a few thousand commits a second) never writes
// the same key twice; an unsynced run cycles through them and overwrites, which RocksDB
// handles as an ordinary insert into the memtable.
constexpr std::size_t record_pool_size = 16384;
constexpr std::uint64_t record_seed = 20240601;

std::string hex(std::uint64_t v, int digits) {
  static constexpr char alphabet[] = "0123456789abcdef";
  std::string out(static_cast<std::size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i, v >>= 4)
    out[static_cast<std::size_t>(i)] = alphabet[v & 15];
  return out;
}

// A task as an agent would schedule it: a JSON POST with a body of a few hundred bytes, due
// within the next day, owned by one of a thousand users.
task_record make_task(std::mt19937_64& rng, std::int64_t base_ms) {
  std::uniform_int_distribution<std::int64_t> delay_ms(1000, 86'400'000);
  std::uniform_int_distribution<int> user(0, 999);
  std::uniform_int_distribution<int> body_words(20, 60);

  task_record task;
  task.created_at_ms = base_ms;
  task.updated_at_ms = base_ms;
  task.id = "t_" + hex(static_cast<std::uint64_t>(base_ms), 12) + hex(rng(), 16);
  task.user = "user-" + std::to_string(user(rng));
  task.provider = "google";
  task.agent = "scheduler-agent";
  task.scopes = {"https://www.googleapis.com/auth/gmail.send"};
  task.action.method = "POST";
  task.action.path = "/gmail/v1/users/me/messages/send";
  task.action.headers = {{"Content-Type", "application/json"}, {"X-Request-Source", "bench"}};
  std::string body = "{\"raw\":\"";
  for (int i = 0, n = body_words(rng); i < n; ++i)
    body += hex(rng(), 8);
  body += "\"}";
  task.action.body = std::move(body);
  task.run_at_ms = base_ms + delay_ms(rng);
  task.due_at_ms = task.run_at_ms;
  task.idempotency_key = "lk-" + task.id + "-1";
  return task;
}

std::vector<task_record> make_tasks(std::size_t n) {
  std::mt19937_64 rng{record_seed};
  // A fixed base time keeps the records identical from run to run.
  constexpr std::int64_t base_ms = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
  std::vector<task_record> tasks;
  tasks.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    tasks.push_back(make_task(rng, base_ms));
  return tasks;
}

const std::vector<task_record>& task_pool() {
  static const std::vector<task_record> pool = make_tasks(record_pool_size);
  return pool;
}

using latchkey::bench::temp_dir;

// Latency percentiles of the samples (nearest rank), in microseconds.
void report_percentiles(benchmark::State& state, std::vector<double>& samples_us) {
  if (samples_us.empty())
    return;
  std::sort(samples_us.begin(), samples_us.end());
  auto at = [&](double q) {
    auto rank = static_cast<std::size_t>(q * static_cast<double>(samples_us.size()));
    return samples_us[std::min(rank, samples_us.size() - 1)];
  };
  state.counters["p50_us"] = at(0.50);
  state.counters["p90_us"] = at(0.90);
  state.counters["p99_us"] = at(0.99);
  state.counters["max_us"] = samples_us.back();
}

// One commit per iteration: the task and its due entry, as user_actor::create_task writes
// them (less the audit record). Building the batch is timed with the commit, since encoding
// the record is part of every real write. `idle` is waited out, untimed, before each commit.
void commit_tasks(benchmark::State& state, bool sync,
                  std::chrono::milliseconds idle = std::chrono::milliseconds(0)) {
  const auto& tasks = task_pool();
  temp_dir dir("store-bench");
  if (dir.path().empty()) {
    state.SkipWithError("cannot create a directory under /tmp");
    return;
  }
  auto db = store::open(dir.path());
  if (!db) {
    state.SkipWithError(db.error().message.c_str());
    return;
  }

  std::vector<double> samples_us;
  samples_us.reserve(record_pool_size);
  std::size_t next = 0;
  for (auto _ : state) {
    const task_record& task = tasks[next];
    next = (next + 1) % tasks.size();
    if (idle.count() > 0)
      std::this_thread::sleep_for(idle);

    const auto start = std::chrono::steady_clock::now();
    auto batch = db.value()->batch();
    batch.put_task(task, std::nullopt);
    auto committed = db.value()->commit(batch, sync);
    const auto elapsed = std::chrono::steady_clock::now() - start;

    if (!committed) {
      state.SkipWithError(committed.error().message.c_str());
      break;
    }
    const double seconds = std::chrono::duration<double>(elapsed).count();
    state.SetIterationTime(seconds);
    samples_us.push_back(seconds * 1e6);
  }
  report_percentiles(state, samples_us);
}

void BM_store_task(benchmark::State& state) {
  commit_tasks(state, /*sync=*/true);
}
BENCHMARK(BM_store_task)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_store_task_unsynced(benchmark::State& state) {
  commit_tasks(state, /*sync=*/false);
}
BENCHMARK(BM_store_task_unsynced)->UseManualTime()->Unit(benchmark::kMicrosecond);

// A fixed count keeps a run to about 3 s of mostly sleeping.
void BM_store_task_after_idle(benchmark::State& state) {
  commit_tasks(state, /*sync=*/true, std::chrono::milliseconds(50));
}
BENCHMARK(BM_store_task_after_idle)->Iterations(60)->UseManualTime()->Unit(benchmark::kMicrosecond);

// The encodings of a few hundred different records are cycled through so that the numbers are
// not those of one record whose every branch the CPU has learnt.
constexpr std::size_t codec_pool_size = 256;

void BM_encode_task(benchmark::State& state) {
  const std::vector<task_record> tasks = make_tasks(codec_pool_size);
  std::size_t next = 0;
  std::int64_t bytes = 0;
  for (auto _ : state) {
    auto encoded = encode(tasks[next]);
    next = (next + 1) % tasks.size();
    bytes += static_cast<std::int64_t>(encoded.size());
    benchmark::DoNotOptimize(encoded);
  }
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_encode_task);

void BM_decode_task(benchmark::State& state) {
  std::vector<std::string> encoded;
  for (const auto& task : make_tasks(codec_pool_size))
    encoded.push_back(encode(task));
  std::size_t next = 0;
  std::int64_t bytes = 0;
  for (auto _ : state) {
    auto decoded = decode_task(encoded[next]);
    if (!decoded.ok()) {
      state.SkipWithError(decoded.error().code.c_str());
      break;
    }
    bytes += static_cast<std::int64_t>(encoded[next].size());
    next = (next + 1) % encoded.size();
    benchmark::DoNotOptimize(decoded);
  }
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_decode_task);

}  // namespace
}  // namespace latchkey
