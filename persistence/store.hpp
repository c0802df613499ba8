// The RocksDB store: one database, one column family per kind of record.
//
// Key layouts (all strings are raw bytes; '\0' separates parts, ids never contain it):
//   providers    provider id                          -> provider_record
//   agents       agent id                             -> agent_record
//   agent_keys   sha256 hex of the API key            -> agent id
//   keys         owner ("user:<id>", "providers")     -> wrapped data key (envelope.hpp)
//   connections  user '\0' provider                   -> connection_record
//   tasks        user '\0' task id                    -> task_record
//   due          8-byte big-endian due ms, task id    -> user (scanned in time order)
//   audit        user '\0' 8-byte big-endian seq      -> audit_record
//   meta         name                                 -> value
//   active_tasks user '\0' task id                    -> "" for each pending or blocked task,
//                                                        so the per-user limit is counted
//                                                        without reading finished tasks
//
// Every commit is written with a synced WAL, so whatever a caller was told succeeded survives
// kill -9 and power loss. The store is thread-safe (RocksDB is); callers serialize writes to
// the same record themselves (one user actor per user, the scheduler for task transitions).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "persistence/records.hpp"
#include "persistence/result.hpp"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class WriteBatch;
}  // namespace rocksdb

namespace latchkey {

class store;

/// A group of writes applied atomically by store::commit.
class store_batch {
 public:
  store_batch();
  ~store_batch();
  store_batch(store_batch&&) noexcept;

  void put_provider(const provider_record& r);
  void put_agent(const agent_record& r);
  /// Removes the agent and its key hash: the key stops working with this commit.
  void delete_agent(const agent_record& r);
  void put_wrapped_key(const std::string& owner, const std::string& wrapped);
  void put_connection(const connection_record& r);
  /// Writes the task and keeps the due index in step: removes the entry at `previous_due_ms`
  /// (if any) and adds one at `r.due_at_ms` while the status is pending.
  void put_task(const task_record& r, std::optional<std::int64_t> previous_due_ms);
  void put_audit(const audit_record& r);

 private:
  friend class store;
  explicit store_batch(store* owner);

  store* owner_ = nullptr;
  std::unique_ptr<rocksdb::WriteBatch> batch_;
};

struct due_entry {
  std::int64_t due_ms;
  std::string task_id;
  std::string user;
};

class store {
 public:
  /// Opens (creating if needed) the database in `dir`. Failure codes: "store_unavailable"
  /// with the directory and RocksDB's reason (which never contains record contents).
  static result<std::unique_ptr<store>> open(const std::string& dir);
  /// Opens an existing database without writing anything to it (start-up checks).
  static result<std::unique_ptr<store>> open_read_only(const std::string& dir);
  ~store();

  store_batch batch();
  /// Applies the batch atomically, with a synced WAL unless `sync` is false (then it becomes
  /// durable with the next synced commit). Failure code "store_write_failed".
  status commit(store_batch& batch, bool sync = true);

  result<std::optional<provider_record>> get_provider(const std::string& id);
  result<std::optional<agent_record>> get_agent(const std::string& id);
  result<std::optional<agent_record>> find_agent_by_key_hash(const std::string& key_hash);
  result<std::optional<std::string>> get_wrapped_key(const std::string& owner);
  result<std::optional<connection_record>> get_connection(const std::string& user,
                                                          const std::string& provider);
  result<std::optional<task_record>> get_task(const std::string& user, const std::string& id);
  /// A user's tasks in id order (ids sort by creation time).
  result<std::vector<task_record>> list_tasks(const std::string& user);
  /// How many of the user's tasks are pending or blocked.
  result<std::size_t> count_active_tasks(const std::string& user);
  /// Every due-index entry in time order (the scheduler loads it at start).
  result<std::vector<due_entry>> scan_due();
  /// A user's audit records in order; `after_seq` skips what the caller has seen.
  result<std::vector<audit_record>> list_audit(const std::string& user, std::uint64_t after_seq,
                                               std::size_t limit);
  /// The user's newest audit record, if any (to continue the hash chain).
  result<std::optional<audit_record>> last_audit(const std::string& user);

  /// Flushes memtables (used by tests that inspect SST files).
  status flush();

 private:
  friend class store_batch;
  struct families;

  store(std::unique_ptr<rocksdb::DB> db, std::unique_ptr<families> cfs);
  /// Brings a directory written by an older version up to the current layout.
  status migrate();
  result<std::optional<std::string>> get(rocksdb::ColumnFamilyHandle* cf, const std::string& key);

  std::unique_ptr<families> cfs_;
  std::unique_ptr<rocksdb::DB> db_;
};

/// Encodes `v` as 8 big-endian bytes, so byte order equals numeric order for v >= 0.
std::string big_endian64(std::uint64_t v);

}  // namespace latchkey
