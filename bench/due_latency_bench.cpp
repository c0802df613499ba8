// How late a due task's action reaches the API on an idle node: (time the API saw the request)
// - (the task's due_at). The aim is within 5 ms.
//
// The node is the real one (runtime::start on a fresh data directory under /tmp); a local
// httplib server on 127.0.0.1 plays both the provider's token endpoint and its API. The
// provider, the connection and the tasks are written the way the gateway writes them: the
// provider record directly, the connection and each task through the user's actor. Tasks are
// created one after another, each due 50 ms after it is created, and the next one only after
// the API saw the previous one, so every task comes due on an otherwise idle node.
//
// Besides the total, each task's path is split at the scheduler's "task started" log line
// (read from a log sink of this benchmark, with the logger's own timestamp): due -> started
// covers the timer, loading the task and the synced write that records the attempt; started ->
// API covers the run actor, the token lookup and the outbound HTTP call.
//
// BM_outbound_perform_loopback measures the outbound HTTP call on its own (a new loopback
// connection per call, as the product makes them), to show how much of the second part it is.
//
// Bounded: at most ~15 s for the main benchmark (201 tasks of ~55 ms), every wait has a limit,
// and the whole run stops itself after 50 s.
#include <benchmark/benchmark.h>
#include <httplib.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <algorithm>
#include <caf/all.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "actors/messages.hpp"
#include "actors/runtime.hpp"
#include "bench/bench_temp_dir.hpp"
#include "net/http_client.hpp"

namespace latchkey {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int measured_tasks = 200;
constexpr milliseconds lead_time{50};      // how far ahead of now each task is due
constexpr seconds wait_limit{5};           // for any one reply or API call
constexpr seconds time_budget{50};         // for the whole benchmark
constexpr std::uint64_t task_id_seed = 7;  // fixed: ids are the same from run to run

const std::string provider_id = "bench";
const std::string user_id = "alice";

std::int64_t wall_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

std::int64_t to_us(spdlog::log_clock::time_point t) {
  using namespace std::chrono;
  return duration_cast<microseconds>(t.time_since_epoch()).count();
}

// Keeps the time of every "task started ... task=<id>" line the scheduler logs, and every
// warning or error (a node that warns on an idle, healthy path has a problem worth naming).
class log_probe final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::optional<std::int64_t> started_us(const std::string& task) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = started_.find(task);
    if (it == started_.end())
      return std::nullopt;
    return it->second;
  }

  std::vector<std::string> problems() {
    std::lock_guard<std::mutex> lock(mutex_);
    return problems_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const std::string_view text(msg.payload.data(), msg.payload.size());
    if (text.starts_with("task started ")) {
      auto at = text.find(" task=");
      if (at != std::string_view::npos) {
        auto id = text.substr(at + 6);
        started_[std::string(id.substr(0, id.find(' ')))] = to_us(msg.time);
      }
    } else if (msg.level >= spdlog::level::warn) {
      problems_.emplace_back(text);
    }
  }
  void flush_() override {}

 private:
  std::map<std::string, std::int64_t> started_;
  std::vector<std::string> problems_;
};

// Routes the node's log lines to a probe for the duration of a benchmark, then puts the
// previous logger back.
class scoped_log_probe {
 public:
  scoped_log_probe() : previous_(spdlog::default_logger()), probe_(std::make_shared<log_probe>()) {
    auto logger = std::make_shared<spdlog::logger>("due-latency-bench", probe_);
    logger->set_level(spdlog::level::info);
    spdlog::set_default_logger(logger);
  }
  scoped_log_probe(const scoped_log_probe&) = delete;
  scoped_log_probe& operator=(const scoped_log_probe&) = delete;
  ~scoped_log_probe() { spdlog::set_default_logger(previous_); }

  log_probe& probe() { return *probe_; }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::shared_ptr<log_probe> probe_;
};

using latchkey::bench::temp_dir;

// The provider: a token endpoint that always grants, and an API that notes when each task's
// request arrived. Listens on 127.0.0.1 only, on a port the kernel picks.
class fake_provider {
 public:
  fake_provider() {
    server_.Post("/token", [this](const httplib::Request&, httplib::Response& res) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ++token_calls_;
      }
      res.set_content(R"({"access_token":"at","token_type":"Bearer","expires_in":3600})",
                      "application/json");
    });
    server_.Post(R"(/api/hit/([A-Za-z0-9_]+))",
                 [this](const httplib::Request& req, httplib::Response& res) {
                   // Taken first: the time the API saw the request.
                   const auto now = wall_us();
                   if (req.get_header_value("Authorization") != "Bearer at") {
                     res.status = 401;
                     return;
                   }
                   {
                     std::lock_guard<std::mutex> lock(mutex_);
                     seen_us_[req.matches[1].str()] = now;
                   }
                   seen_.notify_all();
                   res.set_content("{}", "application/json");
                 });
    server_.Post("/api/ping", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("{}", "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ > 0)
      thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  fake_provider(const fake_provider&) = delete;
  fake_provider& operator=(const fake_provider&) = delete;
  ~fake_provider() {
    if (thread_.joinable()) {
      server_.stop();
      thread_.join();
    }
  }

  bool listening() const { return port_ > 0; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // When the API saw `task`'s request; nullopt if it did not by `deadline`.
  std::optional<std::int64_t> wait_for(const std::string& task,
                                       std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!seen_.wait_until(lock, deadline, [&] { return seen_us_.count(task) != 0; }))
      return std::nullopt;
    return seen_us_[task];
  }

  int token_calls() {
    std::lock_guard<std::mutex> lock(mutex_);
    return token_calls_;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = -1;
  std::mutex mutex_;
  std::condition_variable seen_;
  std::map<std::string, std::int64_t> seen_us_;
  int token_calls_ = 0;
};

std::string hex(std::uint64_t v, int digits) {
  static constexpr char alphabet[] = "0123456789abcdef";
  std::string out(static_cast<std::size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i, v >>= 4)
    out[static_cast<std::size_t>(i)] = alphabet[v & 15];
  return out;
}

// Registers the provider as POST /v1/providers does: seal the client secret, then one commit.
status register_provider(runtime& rt, const fake_provider& api) {
  auto& ctx = *rt.context();
  provider_record record;
  record.id = provider_id;
  record.token_url = api.base_url() + "/token";
  record.api_base_url = api.base_url() + "/api";
  record.client_id = "bench-client";
  record.auth_method = "client_secret_basic";
  record.scopes = {"read"};
  record.created_at_ms = now_ms();
  auto sealed = ctx.keys->seal(seal_context{provider_key_owner(), record.id, "client_secret"},
                               "bench-client-secret");
  if (!sealed)
    return sealed.error();
  record.sealed_client_secret = std::move(sealed).value();
  auto batch = ctx.db->batch();
  batch.put_provider(record);
  return ctx.db->commit(batch);
}

result<caf::actor> user_actor_of(runtime& rt, const std::string& user) {
  caf::scoped_actor self{rt.system()};
  std::optional<caf::actor> found;
  self->request(rt.context()->users, wait_limit, lookup_atom::value, user)
      .receive([&](caf::actor& a) { found = std::move(a); }, [&](caf::error&) {});
  if (!found)
    return make_failure("unavailable", "the users actor did not answer");
  return *found;
}

// Stores the connection as PUT .../connections/{provider} does. No access token is handed
// over, so the first task's run refreshes one at the token endpoint.
status store_connection(runtime& rt, const caf::actor& user) {
  caf::scoped_actor self{rt.system()};
  // Field by field, so that fields added later keep their defaults.
  connection_input input;
  input.provider = provider_id;
  input.refresh_token = secret_string{std::string("bench-refresh-token")};
  input.scope = "read";
  input.actor = "agent:bench";
  std::optional<connection_result> answer;
  self->request(user, wait_limit, put_connection_atom::value, std::move(input))
      .receive([&](connection_result& r) { answer = std::move(r); }, [&](caf::error&) {});
  if (!answer)
    return make_failure("unavailable", "the user actor did not answer");
  if (!*answer)
    return answer->error();
  return ok_status();
}

// One task through to the API.
struct task_timing {
  double due_to_api_us = 0;
  std::optional<double> due_to_started_us;
  bool created_after_due = false;
  double create_us = 0;  // the create_task round trip through the user actor
  std::string id;
};

class task_driver {
 public:
  task_driver(runtime& rt, caf::actor user, fake_provider& api, log_probe& log)
      : rt_(rt), user_(std::move(user)), api_(api), log_(log) {}

  // Creates a task due `lead_time` from now (as POST .../tasks does) and waits for its action.
  result<task_timing> run_one() {
    const auto now = now_ms();
    task_record task;
    task.id = "t_" + hex(static_cast<std::uint64_t>(now), 12) + hex(rng_(), 16);
    task.user = user_id;
    task.provider = provider_id;
    task.agent = "bench";
    task.scopes = {"read"};
    task.action.method = "POST";
    task.action.path = "/hit/" + task.id;
    task.action.headers = {{"Content-Type", "application/json"}};
    task.action.body = "{}";
    task.run_at_ms = now + lead_time.count();
    task.due_at_ms = task.run_at_ms;
    task.idempotency_key = "lk-" + task.id + "-1";
    task.created_at_ms = now;
    task.updated_at_ms = now;
    const auto due_ms = task.due_at_ms;
    const auto id = task.id;

    caf::scoped_actor self{rt_.system()};
    std::optional<task_result> answer;
    const auto create_start = std::chrono::steady_clock::now();
    self->request(user_, wait_limit, create_task_atom::value, std::move(task))
        .receive([&](task_result& r) { answer = std::move(r); }, [&](caf::error&) {});
    const auto create_time = std::chrono::steady_clock::now() - create_start;
    if (!answer)
      return make_failure("unavailable", "the user actor did not answer create_task");
    if (!*answer)
      return answer->error();

    task_timing timing;
    timing.id = id;
    timing.create_us = std::chrono::duration<double, std::micro>(create_time).count();
    // A create that took longer than the lead time would make the task look late.
    timing.created_after_due = now_ms() >= due_ms;
    auto seen = api_.wait_for(id, std::chrono::steady_clock::now() + lead_time + wait_limit);
    if (!seen)
      return make_failure("timeout", "the API never saw task " + id);
    timing.due_to_api_us = static_cast<double>(*seen - due_ms * 1000);
    if (auto started = log_.started_us(id))
      timing.due_to_started_us = static_cast<double>(*started - due_ms * 1000);
    return timing;
  }

 private:
  runtime& rt_;
  caf::actor user_;
  fake_provider& api_;
  log_probe& log_;
  std::mt19937_64 rng_{task_id_seed};
};

double percentile(std::vector<double> samples, double q) {
  if (samples.empty())
    return 0;
  std::sort(samples.begin(), samples.end());
  auto rank = static_cast<std::size_t>(q * static_cast<double>(samples.size()));
  return samples[std::min(rank, samples.size() - 1)];
}

// Waits until the task's final state is stored, so the node stops with nothing in flight.
bool finished(runtime& rt, const std::string& id) {
  const auto deadline = std::chrono::steady_clock::now() + wait_limit;
  while (std::chrono::steady_clock::now() < deadline) {
    auto task = rt.db().get_task(user_id, id);
    if (task && task.value() && !task_status_is_pending(task.value()->status))
      return task.value()->status == task_status::succeeded;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return false;
}

struct due_samples {
  task_timing cold;
  std::vector<double> total_us;
  std::vector<double> started_us;
  std::vector<std::string> ids;
  std::vector<double> create_us;
  int created_after_due = 0;
};

// Sets the node up as an agent would and runs the tasks. Every actor handle lives in this
// scope only, so none outlives the actor system.
void drive(benchmark::State& state, runtime& node, fake_provider& api, log_probe& log,
           std::chrono::steady_clock::time_point started, due_samples& out) {
  auto user = user_actor_of(node, user_id);
  status ready = user ? register_provider(node, api) : status{user.error()};
  if (ready)
    ready = store_connection(node, user.value());
  if (!ready) {
    state.SkipWithError(ready.error().message.c_str());
    return;
  }

  task_driver driver(node, user.value(), api, log);

  // The first task pays for the access token (a token-endpoint call and a synced write of the
  // connection); it is reported on its own, not in the distribution.
  auto cold = driver.run_one();
  if (!cold) {
    state.SkipWithError(cold.error().message.c_str());
    return;
  }
  out.cold = cold.value();
  out.ids.push_back(cold->id);

  for (auto _ : state) {
    if (std::chrono::steady_clock::now() - started > time_budget) {
      state.SkipWithError("time budget exceeded");
      break;
    }
    auto timing = driver.run_one();
    if (!timing) {
      state.SkipWithError(timing.error().message.c_str());
      break;
    }
    state.SetIterationTime(timing->due_to_api_us / 1e6);
    out.total_us.push_back(timing->due_to_api_us);
    if (timing->due_to_started_us)
      out.started_us.push_back(*timing->due_to_started_us);
    out.created_after_due += timing->created_after_due ? 1 : 0;
    out.create_us.push_back(timing->create_us);
    out.ids.push_back(timing->id);
  }
}

void BM_due_to_action(benchmark::State& state) {
  const auto started = std::chrono::steady_clock::now();
  scoped_log_probe log;
  temp_dir dir("due-bench");
  fake_provider api;
  if (dir.path().empty() || !api.listening()) {
    state.SkipWithError("cannot create a temp directory or listen on 127.0.0.1");
    return;
  }

  options opts;  // the defaults latchkeyd runs with, but for the data directory
  opts.data_dir = dir.path() + "/data";
  auto kek = master_key::from_base64(base64_encode(std::string(32, '\x42')));
  if (!kek) {
    state.SkipWithError(kek.error().code.c_str());
    return;
  }
  auto rt = runtime::start(opts, std::move(kek).value());
  if (!rt) {
    state.SkipWithError(rt.error().message.c_str());
    return;
  }
  auto& node = *rt.value();

  due_samples samples;
  drive(state, node, api, log.probe(), started, samples);

  int not_succeeded = 0;
  for (const auto& id : samples.ids)
    not_succeeded += finished(node, id) ? 0 : 1;
  const int token_calls = api.token_calls();
  node.stop();
  if (samples.ids.empty())
    return;

  auto ms = [](double us) { return us / 1000.0; };
  state.counters["p50_ms"] = ms(percentile(samples.total_us, 0.50));
  state.counters["p90_ms"] = ms(percentile(samples.total_us, 0.90));
  state.counters["p99_ms"] = ms(percentile(samples.total_us, 0.99));
  state.counters["max_ms"] = ms(percentile(samples.total_us, 1.0));
  state.counters["cold_first_ms"] = ms(samples.cold.due_to_api_us);
  state.counters["started_p50_ms"] = ms(percentile(samples.started_us, 0.50));
  state.counters["started_p99_ms"] = ms(percentile(samples.started_us, 0.99));
  state.counters["created_after_due"] = samples.created_after_due;
  // Creating a task scans every task the user ever had (user_actor.cpp, create_task's limit
  // check): the first and last 20 creates show whether that grows with the history.
  const auto n = samples.create_us.size();
  if (n >= 40) {
    std::vector<double> first(samples.create_us.begin(), samples.create_us.begin() + 20);
    std::vector<double> last(samples.create_us.end() - 20, samples.create_us.end());
    state.counters["create_first20_p50_ms"] = ms(percentile(first, 0.5));
    state.counters["create_last20_p50_ms"] = ms(percentile(last, 0.5));
  }
  state.counters["not_succeeded"] = not_succeeded;
  state.counters["token_calls"] = token_calls;

  for (const auto& line : log.probe().problems())
    std::fprintf(stderr, "due_latency_bench: node logged: %s\n", line.c_str());
}
// One run of a fixed number of tasks: repetitions would only repeat the ~11 s.
BENCHMARK(BM_due_to_action)
    ->Iterations(measured_tasks)
    ->Repetitions(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// The outbound call on its own: a POST to the loopback API through the product's client, a new
// connection each time.
void BM_outbound_perform_loopback(benchmark::State& state) {
  fake_provider api;
  if (!api.listening()) {
    state.SkipWithError("cannot listen on 127.0.0.1");
    return;
  }
  http_request request;
  request.method = "POST";
  request.url = api.base_url() + "/api/ping";
  request.headers = {{"Content-Type", "application/json"}, {"Authorization", "Bearer at"}};
  request.body = "{}";
  request.timeout = milliseconds(2000);

  std::vector<double> samples_us;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    auto response = perform(request);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    if (response.status != 200) {
      state.SkipWithError("loopback call failed");
      break;
    }
    const double elapsed_s = std::chrono::duration<double>(elapsed).count();
    state.SetIterationTime(elapsed_s);
    samples_us.push_back(elapsed_s * 1e6);
  }
  state.counters["p50_us"] = percentile(samples_us, 0.50);
  state.counters["p99_us"] = percentile(samples_us, 0.99);
}
// A fixed count: every call leaves a socket in TIME_WAIT for a minute, and an open-ended run
// could use up the ephemeral ports.
BENCHMARK(BM_outbound_perform_loopback)
    ->Iterations(1000)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace latchkey
