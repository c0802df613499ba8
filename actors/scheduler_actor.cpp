// scheduler: owns the due index and every task state transition after a task is accepted.
//
// The due index lives on disk (column family `due`); at start the scheduler loads it into an
// ordered in-memory set and arms one timer for the earliest entry. A task keeps its due entry
// while it runs and loses it only with its final outcome, so a task that was running when the
// node died runs again after the restart, with the same Idempotency-Key.
//
// Known limit: the whole due index is held in memory (about 100 bytes a task). A node that
// must hold tens of millions of pending tasks would keep only a window (say the next hour) in
// memory and refill it from disk on a timer; the on-disk order already supports that scan.

#include <spdlog/spdlog.h>

#include <random>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "actors/backoff.hpp"
#include "actors/context.hpp"
#include "actors/messages.hpp"

namespace latchkey {

namespace {

struct scheduler_state {
  context_ptr ctx;
  std::set<std::pair<std::int64_t, std::string>> window;  // (due ms, task id)
  std::unordered_map<std::string, std::string> owners;    // task id -> user
  std::unordered_map<std::string, caf::actor> running;    // task id -> run actor
  std::int64_t armed_for = INT64_MAX;
  backoff_policy backoff;
  std::mt19937_64 rng{std::random_device{}()};
};

using state_ptr = std::shared_ptr<scheduler_state>;

void add_to_window(scheduler_state& st, std::int64_t due_ms, const std::string& id,
                   const std::string& user) {
  st.window.emplace(due_ms, id);
  st.owners[id] = user;
}

void remove_from_window(scheduler_state& st, const task_record& task) {
  st.window.erase({task.due_at_ms, task.id});
}

void arm(caf::event_based_actor* self, const state_ptr& st) {
  if (st->window.empty())
    return;
  auto next = st->window.begin()->first;
  if (next >= st->armed_for)
    return;  // an earlier or equal tick is already on its way
  st->armed_for = next;
  // In microseconds: rounding the delay to whole milliseconds would fire up to 1 ms late.
  using namespace std::chrono;
  auto now_us = duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
  auto delay = std::max<std::int64_t>(next * 1000 - now_us, 0);
  self->delayed_send(self, microseconds(delay), tick_atom::value);
}

status save_task(scheduler_state& st, const task_record& task,
                 std::optional<std::int64_t> previous_due, const audit_event* event) {
  auto batch = st.ctx->db->batch();
  batch.put_task(task, previous_due);
  if (event != nullptr)
    if (auto audited = st.ctx->audit->append_to(batch, *event); !audited)
      return audited;
  return st.ctx->db->commit(batch);
}

void apply_outcome(caf::event_based_actor* self, const state_ptr& st, const std::string& user,
                   const std::string& id, const run_outcome& outcome);

void start_run(caf::event_based_actor* self, const state_ptr& st, const std::string& user,
               const std::string& id) {
  if (st->running.count(id) != 0)
    return;
  auto stored = st->ctx->db->get_task(user, id);
  if (!stored || !stored.value()) {
    spdlog::error("due task cannot be loaded user={} task={}", user, id);
    return;
  }
  auto task = std::move(*stored.value());
  if (!task_status_is_pending(task.status))
    return;  // cancelled or finished after it was indexed

  // Record the attempt before it starts: after a crash it is counted and repeated.
  task.status = task_status::running;
  task.attempts += 1;
  task.updated_at_ms = now_ms();
  if (auto saved = save_task(*st, task, task.due_at_ms, nullptr); !saved) {
    spdlog::error("cannot record the start of task user={} task={} code={}; retrying in 1 s", user,
                  id, saved.error().code);
    add_to_window(*st, now_ms() + 1000, id, user);
    return;
  }

  st->ctx->counters.task_attempts++;
  auto lateness = now_ms() - task.due_at_ms;
  spdlog::info("task started user={} task={} attempt={} late_ms={}", user, id, task.attempts,
               lateness);
  auto run = self->spawn(run_actor, task, st->ctx);
  st->running[id] = run;

  // The run bounds its own calls; this guard only catches a run that hangs or dies.
  auto guard = st->ctx->opts.outbound_timeout * 6 + std::chrono::seconds(30);
  self->request(run, guard, run_atom::value)
      .then([self, st, user,
             id](run_outcome& outcome) { apply_outcome(self, st, user, id, outcome); },
            [self, st, user, id](caf::error& err) {
              auto it = st->running.find(id);
              if (it != st->running.end())
                self->send_exit(it->second, caf::exit_reason::kill);
              spdlog::warn("task run did not report user={} task={} reason={}", user, id,
                           to_string(err));
              run_outcome lost;
              lost.kind = run_outcome::transient;
              lost.code = "run_lost";
              apply_outcome(self, st, user, id, lost);
            });
}

void apply_outcome(caf::event_based_actor* self, const state_ptr& st, const std::string& user,
                   const std::string& id, const run_outcome& outcome) {
  st->running.erase(id);
  auto stored = st->ctx->db->get_task(user, id);
  if (!stored || !stored.value()) {
    spdlog::error("finished task cannot be loaded user={} task={}", user, id);
    return;
  }
  auto task = std::move(*stored.value());
  auto previous_due = task.due_at_ms;
  task.response_status = outcome.response_status;
  task.last_error = outcome.code;
  task.updated_at_ms = now_ms();

  // A cancel that arrived while the run was in flight wins; only the response is recorded.
  if (task.status != task_status::cancelled) {
    switch (outcome.kind) {
      case run_outcome::succeeded:
        task.status = task_status::succeeded;
        break;
      case run_outcome::failed:
        task.status = task_status::failed;
        break;
      case run_outcome::blocked:
        task.status = task_status::blocked;
        break;
      case run_outcome::transient:
        if (task.attempts >= st->ctx->opts.max_attempts) {
          task.status = task_status::failed;
        } else {
          std::optional<std::chrono::milliseconds> retry_after;
          if (outcome.retry_after_ms)
            retry_after = std::chrono::milliseconds(*outcome.retry_after_ms);
          auto delay = st->backoff.delay(task.attempts, retry_after, st->rng);
          task.status = task_status::retrying;
          task.due_at_ms = now_ms() + delay.count();
        }
        break;
    }
  }

  audit_event event{user,
                    "scheduler",
                    "task.finished",
                    task.status,
                    task.provider,
                    task.id,
                    "attempt " + std::to_string(task.attempts) +
                        (outcome.code.empty() ? "" : " " + outcome.code)};
  if (task.status == task_status::retrying)
    event.event = "task.retry_scheduled";
  if (auto saved = save_task(*st, task, previous_due, &event); !saved) {
    spdlog::error("cannot record task outcome user={} task={} code={}; it will run again", user, id,
                  saved.error().code);
    add_to_window(*st, now_ms() + 1000, id, user);
    arm(self, st);
    return;
  }

  auto& counters = st->ctx->counters;
  if (task.status == task_status::succeeded)
    counters.task_succeeded++;
  else if (task.status == task_status::failed)
    counters.task_failed++;
  else if (task.status == task_status::retrying)
    counters.task_retried++;
  else if (task.status == task_status::blocked)
    counters.task_blocked++;
  spdlog::info("task {} user={} task={} attempt={} status={} code={}",
               task.status == task_status::retrying ? "will retry" : "finished", user, id,
               task.attempts, task.status, outcome.code.empty() ? "-" : outcome.code);
  if (task.status == task_status::retrying) {
    add_to_window(*st, task.due_at_ms, id, user);
    arm(self, st);
  }
}

void tick(caf::event_based_actor* self, const state_ptr& st) {
  st->armed_for = INT64_MAX;
  auto now = now_ms();
  while (!st->window.empty() && st->window.begin()->first <= now) {
    auto [due, id] = *st->window.begin();
    st->window.erase(st->window.begin());
    auto user = st->owners[id];
    st->owners.erase(id);
    start_run(self, st, user, id);
  }
  arm(self, st);
}

// Moves every pending (not running) task of one connection to `blocked`, in one write.
void block_connection(const state_ptr& st, const std::string& user, const std::string& provider,
                      const std::string& reason) {
  auto tasks = st->ctx->db->list_tasks(user);
  if (!tasks)
    return;
  auto batch = st->ctx->db->batch();
  int count = 0;
  for (auto& task : tasks.value()) {
    if (task.provider != provider || st->running.count(task.id) != 0 ||
        (task.status != task_status::scheduled && task.status != task_status::retrying))
      continue;
    remove_from_window(*st, task);
    auto previous_due = task.due_at_ms;
    task.status = task_status::blocked;
    task.last_error = reason;
    task.updated_at_ms = now_ms();
    batch.put_task(task, previous_due);
    ++count;
    st->ctx->counters.task_blocked++;
  }
  if (count == 0)
    return;
  if (auto committed = st->ctx->db->commit(batch); !committed)
    spdlog::error("cannot block tasks user={} provider={} code={}", user, provider,
                  committed.error().code);
  else
    spdlog::warn("blocked {} tasks user={} provider={} reason={}", count, user, provider, reason);
}

// After a reconnect, blocked tasks of that connection run again as soon as possible.
void unblock_connection(caf::event_based_actor* self, const state_ptr& st, const std::string& user,
                        const std::string& provider) {
  auto tasks = st->ctx->db->list_tasks(user);
  if (!tasks)
    return;
  auto batch = st->ctx->db->batch();
  std::vector<task_record> resumed;
  auto now = now_ms();
  for (auto& task : tasks.value()) {
    if (task.provider != provider || task.status != task_status::blocked)
      continue;
    task.status = task_status::scheduled;
    task.due_at_ms = std::max(now, task.run_at_ms);
    task.updated_at_ms = now;
    batch.put_task(task, std::nullopt);
    resumed.push_back(task);
  }
  if (resumed.empty())
    return;
  if (auto committed = st->ctx->db->commit(batch); !committed) {
    spdlog::error("cannot resume blocked tasks user={} provider={} code={}", user, provider,
                  committed.error().code);
    return;
  }
  for (const auto& task : resumed)
    add_to_window(*st, task.due_at_ms, task.id, user);
  spdlog::info("resumed {} blocked tasks user={} provider={}", resumed.size(), user, provider);
  arm(self, st);
}

task_result cancel_task(const state_ptr& st, const std::string& user, const std::string& id,
                        const std::string& actor) {
  auto stored = st->ctx->db->get_task(user, id);
  if (!stored)
    return stored.error();
  if (!stored.value())
    return make_failure("not_found", "no task '" + id + "' for this user");
  auto task = std::move(*stored.value());
  if (task.status == task_status::succeeded || task.status == task_status::failed ||
      task.status == task_status::cancelled)
    return make_failure("task_finished", "the task is already " + task.status);

  bool pending = task_status_is_pending(task.status);
  if (pending)
    remove_from_window(*st, task);
  task.status = task_status::cancelled;
  task.updated_at_ms = now_ms();
  st->ctx->counters.task_cancelled++;
  audit_event event{user, actor, "task.cancelled", "ok", task.provider, task.id, ""};
  if (auto saved =
          save_task(*st, task, pending ? std::optional(task.due_at_ms) : std::nullopt, &event);
      !saved)
    return saved.error();
  return task;
}

}  // namespace

caf::behavior scheduler_actor(caf::event_based_actor* self, context_ptr ctx) {
  auto st = std::make_shared<scheduler_state>();
  st->ctx = std::move(ctx);
  st->backoff.base = st->ctx->opts.retry_base_delay;
  st->backoff.max = st->ctx->opts.retry_max_delay;

  // Load the durable due index.
  if (auto due = st->ctx->db->scan_due(); due) {
    for (const auto& entry : due.value())
      add_to_window(*st, entry.due_ms, entry.task_id, entry.user);
    spdlog::info("scheduler loaded {} pending tasks", due.value().size());
  } else {
    spdlog::critical("cannot read the due index: {}", due.error().message);
  }
  arm(self, st);

  // Runs are not linked to the scheduler (a failing run must not take it down), so stop them
  // explicitly when the scheduler stops: a run waiting on an actor that is already gone would
  // otherwise wait forever and keep the node from exiting. Their tasks keep their due entries
  // and run again after the restart.
  self->attach_functor([st](const caf::error&) {
    for (auto& [id, run] : st->running)
      caf::anon_send_exit(run, caf::exit_reason::user_shutdown);
  });

  return {
      [self, st](tick_atom) { tick(self, st); },
      [self, st](schedule_atom, const task_record& task) {
        add_to_window(*st, task.due_at_ms, task.id, task.user);
        arm(self, st);
      },
      [st](cancel_task_atom, const std::string& user, const std::string& id,
           const std::string& actor) { return cancel_task(st, user, id, actor); },
      [st](block_atom, const std::string& user, const std::string& provider,
           const std::string& reason) { block_connection(st, user, provider, reason); },
      [self, st](unblock_atom, const std::string& user, const std::string& provider) {
        unblock_connection(self, st, user, provider);
      },
  };
}

}  // namespace latchkey
