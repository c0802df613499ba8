#include "actors/runtime.hpp"

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

#include <filesystem>

#include "actors/messages.hpp"

namespace latchkey {

result<std::unique_ptr<runtime>> runtime::start(const options& opts, master_key kek) {
  std::unique_ptr<runtime> rt(new runtime());

  auto db = store::open(opts.data_dir);
  if (!db)
    return db.error();
  rt->db_ = std::move(db).value();
  rt->keys_ = std::make_unique<keyring>(*rt->db_, std::move(kek));
  if (auto verified = rt->keys_->verify_master_key(); !verified)
    return verified.error();
  rt->audit_ = std::make_unique<audit_log>(*rt->db_);

  rt->ctx_ = std::make_shared<runtime_context>();
  rt->ctx_->db = rt->db_.get();
  rt->ctx_->keys = rt->keys_.get();
  rt->ctx_->audit = rt->audit_.get();
  rt->ctx_->opts = opts;

  // Two scheduler threads match the target machines; blocking work has its own threads.
  rt->config_ = std::make_unique<caf::actor_system_config>();
  rt->config_->set("scheduler.max-threads", 2);
  rt->system_ = std::make_unique<caf::actor_system>(*rt->config_);

  auto& sys = *rt->system_;
  auto& ctx = *rt->ctx_;
  ctx.outbound = sys.spawn(outbound_actor, opts.outbound_threads);
  ctx.users = sys.spawn(users_actor, rt->ctx_);
  // The scheduler starts last: its first tick may run tasks, which need the others.
  ctx.scheduler = sys.spawn(scheduler_actor, rt->ctx_);
  spdlog::info("runtime started data_dir={} outbound_threads={}", opts.data_dir,
               opts.outbound_threads);
  return rt;
}

void runtime::stop() {
  if (stopped_)
    return;
  stopped_ = true;

  // Exit the roots; linked children (user actors, outbound workers) follow. A run in flight
  // ends when its next request meets a stopped actor; the system's destructor waits for it.
  // The handles stay set: running actors may still read them while they wind down.
  // start() may have failed before the actors (or even the store) existed.
  if (ctx_)
    for (const auto& handle : {ctx_->scheduler, ctx_->users, ctx_->outbound})
      if (handle)
        caf::anon_send_exit(handle, caf::exit_reason::user_shutdown);
  system_.reset();
  if (!db_)
    return;

  // Move the memtables into SST files so the next start replays no WAL.
  if (auto flushed = db_->flush(); !flushed)
    spdlog::warn("flush at shutdown failed: {}", flushed.error().message);
  spdlog::info("runtime stopped");
}

runtime::~runtime() {
  stop();
  audit_.reset();
  keys_.reset();
  db_.reset();
}

}  // namespace latchkey
