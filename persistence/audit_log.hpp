// audit_log: appends audit records, one hash chain per user, so that a removed or edited
// record breaks the chain (each record's hash covers the previous record's hash).
//
// Records hold identifiers, event names, outcomes and error codes; never a token, secret or
// response body. Appends are written without a WAL sync of their own: they become durable
// with the next synced commit (every state change that follows them is one), so a crash can
// lose at most the newest few records, never a middle one.
//
// Thread-safe (a mutex serializes appends; the design's single audit writer).
#pragma once

#include <mutex>
#include <string>
#include <unordered_map>

#include "persistence/store.hpp"

namespace latchkey {

struct audit_event {
  std::string user;
  std::string actor;
  std::string event;
  std::string outcome;
  std::string provider;
  std::string task;
  std::string detail;
};

class audit_log {
 public:
  explicit audit_log(store& db) : db_(db) {}

  /// Appends to the user's chain and commits.
  status append(const audit_event& e);

  /// Adds the record to `batch` (for callers that commit it with other writes). The record is
  /// chained in memory at once, so the batch must be committed before the next append.
  status append_to(store_batch& batch, const audit_event& e);

 private:
  result<audit_record> next_record(const audit_event& e);

  store& db_;
  std::mutex mutex_;
  // user -> (last seq, last hash), loaded from the store on a user's first append.
  std::unordered_map<std::string, std::pair<std::uint64_t, std::string>> heads_;
};

/// Recomputes every hash of a user's chain; failure code "audit_chain_broken" at the first
/// record that does not match.
status verify_audit_chain(store& db, const std::string& user);

}  // namespace latchkey
