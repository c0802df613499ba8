// The RocksDB store on a real directory: records persist across reopen, the due index follows
// task writes, and the audit chain detects tampering.

#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "persistence/audit_log.hpp"
#include "persistence/keyring.hpp"
#include "persistence/store.hpp"

#include <rocksdb/db.h>

namespace latchkey {
namespace {

namespace fs = std::filesystem;

class store_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("latchkey-store-" + std::to_string(std::random_device{}()));
    reopen();
  }
  void TearDown() override {
    db_.reset();
    fs::remove_all(dir_);
  }
  void reopen() {
    db_.reset();
    auto opened = store::open(dir_.string());
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    db_ = std::move(opened).value();
  }

  task_record task(const std::string& id, std::int64_t due, const char* status) {
    task_record t;
    t.id = id;
    t.user = "alice";
    t.provider = "crm";
    t.action.method = "GET";
    t.action.path = "/x";
    t.run_at_ms = due;
    t.due_at_ms = due;
    t.status = status;
    return t;
  }

  fs::path dir_;
  std::unique_ptr<store> db_;
};

// A committed task and its due entry are there after a reopen, in due order.
TEST_F(store_test, tasks_and_due_index_survive_reopen) {
  auto batch = db_->batch();
  batch.put_task(task("t2", 2000, task_status::scheduled), std::nullopt);
  batch.put_task(task("t1", 1000, task_status::scheduled), std::nullopt);
  batch.put_task(task("t3", 500, task_status::succeeded), std::nullopt);
  ASSERT_TRUE(db_->commit(batch).ok());
  reopen();

  auto due = db_->scan_due();
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 2u);
  EXPECT_EQ(due.value()[0].task_id, "t1");
  EXPECT_EQ(due.value()[0].due_ms, 1000);
  EXPECT_EQ(due.value()[0].user, "alice");
  EXPECT_EQ(due.value()[1].task_id, "t2");
  auto listed = db_->list_tasks("alice");
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 3u);
}

// Moving a task's due time or finishing it updates the index in the same write.
TEST_F(store_test, due_index_follows_task_updates) {
  auto t = task("t1", 1000, task_status::scheduled);
  auto batch = db_->batch();
  batch.put_task(t, std::nullopt);
  ASSERT_TRUE(db_->commit(batch).ok());

  t.status = task_status::retrying;
  t.due_at_ms = 5000;
  batch.put_task(t, 1000);
  ASSERT_TRUE(db_->commit(batch).ok());
  auto due = db_->scan_due();
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ(due.value()[0].due_ms, 5000);

  t.status = task_status::succeeded;
  batch.put_task(t, 5000);
  ASSERT_TRUE(db_->commit(batch).ok());
  EXPECT_TRUE(db_->scan_due()->empty());
}

// Users' tasks and connections do not bleed into each other ("al" is a prefix of "alice").
TEST_F(store_test, user_prefixes_are_exact) {
  auto a = task("t1", 1, task_status::scheduled);
  auto b = task("t2", 1, task_status::scheduled);
  b.user = "al";
  auto batch = db_->batch();
  batch.put_task(a, std::nullopt);
  batch.put_task(b, std::nullopt);
  ASSERT_TRUE(db_->commit(batch).ok());
  EXPECT_EQ(db_->list_tasks("al")->size(), 1u);
  EXPECT_EQ(db_->list_tasks("alice")->size(), 1u);
  EXPECT_FALSE(db_->get_task("al", "t1")->has_value());
}

// The active-task count follows status changes and ignores other users and finished tasks.
TEST_F(store_test, active_task_count_follows_status) {
  auto a = task("t1", 1, task_status::scheduled);
  auto b = task("t2", 1, task_status::blocked);
  auto c = task("t3", 1, task_status::succeeded);
  auto other = task("t4", 1, task_status::scheduled);
  other.user = "al";
  auto batch = db_->batch();
  for (auto* t : {&a, &b, &c, &other})
    batch.put_task(*t, std::nullopt);
  ASSERT_TRUE(db_->commit(batch).ok());
  EXPECT_EQ(db_->count_active_tasks("alice").value(), 2u);

  a.status = task_status::cancelled;
  batch.put_task(a, a.due_at_ms);
  ASSERT_TRUE(db_->commit(batch).ok());
  EXPECT_EQ(db_->count_active_tasks("alice").value(), 1u);
  EXPECT_EQ(db_->count_active_tasks("al").value(), 1u);
}

// A directory written before the active-task index existed opens read-only, and opening it
// for writing builds the index from the stored tasks.
TEST_F(store_test, directory_without_active_index_is_migrated) {
  db_.reset();
  fs::remove_all(dir_);
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> old_families;
    for (const char* name : {"default", "providers", "agents", "agent_keys", "keys", "connections",
                             "tasks", "due", "audit", "meta"})
      old_families.emplace_back(name, rocksdb::ColumnFamilyOptions{});
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, dir_.string(), old_families, &handles, &raw).ok());
    auto pending = task("t1", 1, task_status::scheduled);
    auto done = task("t2", 1, task_status::succeeded);
    for (auto* t : {&pending, &done})
      ASSERT_TRUE(
          raw->Put({}, handles[6], t->user + std::string(1, '\0') + t->id, encode(*t)).ok());
    for (auto* h : handles)
      raw->DestroyColumnFamilyHandle(h);
    delete raw;
  }

  auto read_only = store::open_read_only(dir_.string());
  ASSERT_TRUE(read_only.ok()) << read_only.error().message;
  read_only.value().reset();

  reopen();
  EXPECT_EQ(db_->count_active_tasks("alice").value(), 1u);
  reopen();  // the migration runs once; the count stays right
  EXPECT_EQ(db_->count_active_tasks("alice").value(), 1u);
}

// Agents are found by the hash of their key only.
TEST_F(store_test, agent_lookup_by_key_hash) {
  agent_record agent{"bot", "hash-1", true, {}, 1};
  auto batch = db_->batch();
  batch.put_agent(agent);
  ASSERT_TRUE(db_->commit(batch).ok());
  EXPECT_EQ(db_->find_agent_by_key_hash("hash-1")->value().id, "bot");
  EXPECT_FALSE(db_->find_agent_by_key_hash("hash-2")->has_value());
}

// The audit chain verifies, and a rewritten record breaks it.
TEST_F(store_test, audit_chain_detects_a_rewritten_record) {
  audit_log log(*db_);
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(log.append({"alice", "agent:bot", "task.scheduled", "ok", "crm", "t", ""}).ok());
  ASSERT_TRUE(log.append({"bob", "agent:bot", "x", "ok", "", "", ""}).ok());
  EXPECT_TRUE(verify_audit_chain(*db_, "alice").ok());
  auto records = db_->list_audit("alice", 0, 100);
  ASSERT_EQ(records->size(), 5u);
  EXPECT_EQ(records.value()[4].seq, 5u);

  auto forged = records.value()[2];
  forged.outcome = "failed";
  auto batch = db_->batch();
  batch.put_audit(forged);
  ASSERT_TRUE(db_->commit(batch).ok());
  auto verdict = verify_audit_chain(*db_, "alice");
  ASSERT_FALSE(verdict.ok());
  EXPECT_EQ(verdict.error().code, "audit_chain_broken");
}

// The chain continues across a reopen instead of restarting at 1.
TEST_F(store_test, audit_chain_continues_after_reopen) {
  {
    audit_log log(*db_);
    ASSERT_TRUE(log.append({"alice", "a", "e", "ok", "", "", ""}).ok());
  }
  reopen();
  audit_log log(*db_);
  ASSERT_TRUE(log.append({"alice", "a", "e", "ok", "", "", ""}).ok());
  EXPECT_EQ(db_->last_audit("alice")->value().seq, 2u);
  EXPECT_TRUE(verify_audit_chain(*db_, "alice").ok());
}

// The keyring creates one data key per owner, reuses it after reopen, and refuses a wrong
// master key.
TEST_F(store_test, keyring_keys_persist_and_wrong_master_key_fails) {
  auto kek = master_key::from_base64(base64_encode(std::string(32, 'k')));
  ASSERT_TRUE(kek.ok());
  std::string sealed;
  seal_context where{"user:alice", "crm", "refresh_token"};
  {
    keyring keys(*db_, kek.value());
    ASSERT_TRUE(keys.verify_master_key().ok());
    auto s = keys.seal(where, "rt-123");
    ASSERT_TRUE(s.ok());
    sealed = s.value();
  }
  reopen();
  keyring again(*db_, kek.value());
  auto opened = again.open(where, sealed);
  ASSERT_TRUE(opened.ok());
  EXPECT_TRUE(opened->equals("rt-123"));

  auto other = master_key::from_base64(base64_encode(std::string(32, 'x')));
  keyring wrong(*db_, other.value());
  EXPECT_EQ(wrong.verify_master_key().error().code, "master_key_mismatch");
  EXPECT_EQ(wrong.check_master_key().error().code, "master_key_mismatch");
  EXPECT_FALSE(wrong.open(where, sealed).ok());
}

}  // namespace
}  // namespace latchkey
