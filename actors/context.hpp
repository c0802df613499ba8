// What every actor of a node shares: the store, the keyring, the audit log, the options and
// the handles of the long-lived actors. Built once by the runtime before any actor starts;
// read-only afterwards except for the handles, which are set before the first message flows.
#pragma once

#include <caf/actor.hpp>
#include <memory>

#include "actors/metrics.hpp"
#include "config/options.hpp"
#include "persistence/audit_log.hpp"
#include "persistence/keyring.hpp"
#include "persistence/store.hpp"

namespace latchkey {

struct runtime_context {
  store* db = nullptr;
  keyring* keys = nullptr;
  audit_log* audit = nullptr;
  options opts;
  metrics counters;

  caf::actor users;      // registry of user actors
  caf::actor scheduler;  // due index and task state transitions
  caf::actor outbound;   // blocking HTTP on detached workers
};

using context_ptr = std::shared_ptr<runtime_context>;

/// Actor factories (one file each).
caf::behavior outbound_actor(caf::event_based_actor* self, int workers);
caf::behavior users_actor(caf::event_based_actor* self, context_ptr ctx);
caf::behavior user_actor(caf::event_based_actor* self, std::string user, context_ptr ctx);
caf::behavior scheduler_actor(caf::event_based_actor* self, context_ptr ctx);
caf::behavior run_actor(caf::event_based_actor* self, task_record task, context_ptr ctx);

}  // namespace latchkey
