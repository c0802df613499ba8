#include "persistence/store.hpp"

#include <algorithm>

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

namespace latchkey {

namespace {

const std::vector<std::string>& family_names() {
  static const std::vector<std::string> names{rocksdb::kDefaultColumnFamilyName,
                                              "providers",
                                              "agents",
                                              "agent_keys",
                                              "keys",
                                              "connections",
                                              "tasks",
                                              "due",
                                              "audit",
                                              "meta",
                                              "active_tasks"};
  return names;
}

std::string join_key(const std::string& a, const std::string& b) {
  std::string key = a;
  key.push_back('\0');
  key += b;
  return key;
}

std::string due_key(std::int64_t due_ms, const std::string& task_id) {
  return big_endian64(static_cast<std::uint64_t>(std::max<std::int64_t>(due_ms, 0))) + task_id;
}

std::uint64_t read_big_endian64(std::string_view bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | static_cast<unsigned char>(bytes[i]);
  return v;
}

failure read_failure(const rocksdb::Status& s) {
  return make_failure("store_read_failed", "storage read failed: " + s.ToString());
}

}  // namespace

std::string big_endian64(std::uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

struct store::families {
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::ColumnFamilyHandle* providers() const { return handles[1]; }
  rocksdb::ColumnFamilyHandle* agents() const { return handles[2]; }
  rocksdb::ColumnFamilyHandle* agent_keys() const { return handles[3]; }
  rocksdb::ColumnFamilyHandle* keys() const { return handles[4]; }
  rocksdb::ColumnFamilyHandle* connections() const { return handles[5]; }
  rocksdb::ColumnFamilyHandle* tasks() const { return handles[6]; }
  rocksdb::ColumnFamilyHandle* due() const { return handles[7]; }
  rocksdb::ColumnFamilyHandle* audit() const { return handles[8]; }
  rocksdb::ColumnFamilyHandle* meta() const { return handles[9]; }
  rocksdb::ColumnFamilyHandle* active_tasks() const { return handles[10]; }
};

result<std::unique_ptr<store>> store::open(const std::string& dir) {
  rocksdb::DBOptions options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  // Keep RocksDB's own info log small; it never holds record values.
  options.keep_log_file_num = 3;
  options.max_log_file_size = 8 << 20;

  // No block compression: sealed values are random bytes and do not compress, and plain
  // blocks let the secret scans in tests/ search SST files byte for byte.
  rocksdb::ColumnFamilyOptions family_options;
  family_options.compression = rocksdb::kNoCompression;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& name : family_names())
    descriptors.emplace_back(name, family_options);

  auto cfs = std::make_unique<families>();
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(options, dir, descriptors, &cfs->handles, &raw);
  if (!s.ok())
    return make_failure("store_unavailable",
                        "cannot open the database in " + dir + ": " + s.ToString());
  std::unique_ptr<store> db(new store(std::unique_ptr<rocksdb::DB>(raw), std::move(cfs)));
  if (auto migrated = db->migrate(); !migrated)
    return migrated.error();
  return db;
}

result<std::unique_ptr<store>> store::open_read_only(const std::string& dir) {
  // A read-only open cannot create column families, and a directory written by an older
  // version may lack newer ones: open those that exist, leave the others null.
  rocksdb::DBOptions options;
  std::vector<std::string> existing;
  auto s = rocksdb::DB::ListColumnFamilies(options, dir, &existing);
  if (!s.ok())
    return make_failure("store_unavailable",
                        "cannot open the database in " + dir + ": " + s.ToString());
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& name : family_names())
    if (std::find(existing.begin(), existing.end(), name) != existing.end())
      descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions{});

  std::vector<rocksdb::ColumnFamilyHandle*> opened;
  rocksdb::DB* raw = nullptr;
  s = rocksdb::DB::OpenForReadOnly(options, dir, descriptors, &opened, &raw);
  if (!s.ok())
    return make_failure("store_unavailable",
                        "cannot open the database in " + dir + ": " + s.ToString());
  auto cfs = std::make_unique<families>();
  cfs->handles.assign(family_names().size(), nullptr);
  for (auto* handle : opened) {
    auto at = std::find(family_names().begin(), family_names().end(), handle->GetName());
    cfs->handles[static_cast<std::size_t>(at - family_names().begin())] = handle;
  }
  return std::unique_ptr<store>(new store(std::unique_ptr<rocksdb::DB>(raw), std::move(cfs)));
}

status store::migrate() {
  // Schema 2 added the active_tasks index; build it from the stored tasks once.
  static constexpr const char* schema_key = "schema_version";
  static constexpr const char* current = "2";
  std::string version;
  auto s = db_->Get(rocksdb::ReadOptions{}, cfs_->meta(), schema_key, &version);
  if (s.ok() && version == current)
    return ok_status();
  if (!s.ok() && !s.IsNotFound())
    return read_failure(s);

  rocksdb::WriteBatch batch;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions{}, cfs_->tasks()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto task = decode_task(it->value().ToStringView());
    if (!task)
      return task.error();
    if (task_status_is_pending(task->status) || task->status == task_status::blocked)
      batch.Put(cfs_->active_tasks(), join_key(task->user, task->id), "");
  }
  if (!it->status().ok())
    return read_failure(it->status());
  batch.Put(cfs_->meta(), schema_key, current);
  rocksdb::WriteOptions options;
  options.sync = true;
  if (s = db_->Write(options, &batch); !s.ok())
    return make_failure("store_write_failed", "schema migration failed: " + s.ToString());
  return ok_status();
}

store::store(std::unique_ptr<rocksdb::DB> db, std::unique_ptr<families> cfs)
    : cfs_(std::move(cfs)), db_(std::move(db)) {}

store::~store() {
  for (auto* handle : cfs_->handles)
    if (handle != nullptr)
      db_->DestroyColumnFamilyHandle(handle);
  db_->Close();
}

store_batch store::batch() {
  return store_batch(this);
}

status store::commit(store_batch& batch, bool sync) {
  rocksdb::WriteOptions options;
  options.sync = sync;
  auto s = db_->Write(options, batch.batch_.get());
  if (!s.ok())
    return make_failure("store_write_failed", "storage write failed: " + s.ToString());
  batch.batch_->Clear();
  return ok_status();
}

result<std::optional<std::string>> store::get(rocksdb::ColumnFamilyHandle* cf,
                                              const std::string& key) {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions{}, cf, key, &value);
  if (s.IsNotFound())
    return std::optional<std::string>{};
  if (!s.ok())
    return read_failure(s);
  return std::optional<std::string>{std::move(value)};
}

namespace {

// Looks `key` up and decodes it with `decode`, passing "not found" through as nullopt.
template <class Record, class Lookup, class Decode>
result<std::optional<Record>> get_record(Lookup&& lookup, Decode decode) {
  auto raw = lookup();
  if (!raw)
    return raw.error();
  if (!raw.value())
    return std::optional<Record>{};
  auto record = decode(*raw.value());
  if (!record)
    return record.error();
  return std::optional<Record>{std::move(record).value()};
}

}  // namespace

result<std::optional<provider_record>> store::get_provider(const std::string& id) {
  return get_record<provider_record>([&] { return get(cfs_->providers(), id); }, decode_provider);
}

result<std::optional<agent_record>> store::get_agent(const std::string& id) {
  return get_record<agent_record>([&] { return get(cfs_->agents(), id); }, decode_agent);
}

result<std::optional<agent_record>> store::find_agent_by_key_hash(const std::string& key_hash) {
  auto id = get(cfs_->agent_keys(), key_hash);
  if (!id)
    return id.error();
  if (!id.value())
    return std::optional<agent_record>{};
  return get_agent(*id.value());
}

result<std::optional<std::string>> store::get_wrapped_key(const std::string& owner) {
  return get(cfs_->keys(), owner);
}

result<std::optional<connection_record>> store::get_connection(const std::string& user,
                                                               const std::string& provider) {
  return get_record<connection_record>(
      [&] { return get(cfs_->connections(), join_key(user, provider)); }, decode_connection);
}

result<std::optional<task_record>> store::get_task(const std::string& user, const std::string& id) {
  return get_record<task_record>([&] { return get(cfs_->tasks(), join_key(user, id)); },
                                 decode_task);
}

namespace {

// Visits every key/value under `prefix` in order until `visit` returns false.
template <class Visit>
rocksdb::Status scan_prefix(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                            const std::string& prefix, Visit visit) {
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions{}, cf));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
    if (!visit(it->key(), it->value()))
      break;
  return it->status();
}

}  // namespace

result<std::vector<task_record>> store::list_tasks(const std::string& user) {
  std::vector<task_record> out;
  std::optional<failure> problem;
  auto s = scan_prefix(db_.get(), cfs_->tasks(), join_key(user, ""),
                       [&](const rocksdb::Slice&, const rocksdb::Slice& value) {
                         auto task = decode_task(value.ToStringView());
                         if (!task) {
                           problem = task.error();
                           return false;
                         }
                         out.push_back(std::move(task).value());
                         return true;
                       });
  if (!s.ok())
    return read_failure(s);
  if (problem)
    return *problem;
  return out;
}

result<std::size_t> store::count_active_tasks(const std::string& user) {
  std::size_t count = 0;
  auto s = scan_prefix(db_.get(), cfs_->active_tasks(), join_key(user, ""),
                       [&](const rocksdb::Slice&, const rocksdb::Slice&) {
                         ++count;
                         return true;
                       });
  if (!s.ok())
    return read_failure(s);
  return count;
}

result<std::vector<due_entry>> store::scan_due() {
  std::vector<due_entry> out;
  auto s = scan_prefix(
      db_.get(), cfs_->due(), "", [&](const rocksdb::Slice& key, const rocksdb::Slice& value) {
        if (key.size() <= 8)
          return true;  // not ours; never written by this code
        out.push_back(due_entry{static_cast<std::int64_t>(read_big_endian64(key.ToStringView())),
                                std::string(key.ToStringView().substr(8)), value.ToString()});
        return true;
      });
  if (!s.ok())
    return read_failure(s);
  return out;
}

result<std::vector<audit_record>> store::list_audit(const std::string& user,
                                                    std::uint64_t after_seq, std::size_t limit) {
  std::vector<audit_record> out;
  std::optional<failure> problem;
  auto prefix = join_key(user, "");
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions{}, cfs_->audit()));
  for (it->Seek(prefix + big_endian64(after_seq + 1));
       it->Valid() && it->key().starts_with(prefix) && out.size() < limit; it->Next()) {
    auto record = decode_audit(it->value().ToStringView());
    if (!record)
      return record.error();
    out.push_back(std::move(record).value());
  }
  if (!it->status().ok())
    return read_failure(it->status());
  return out;
}

result<std::optional<audit_record>> store::last_audit(const std::string& user) {
  auto prefix = join_key(user, "");
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions{}, cfs_->audit()));
  it->SeekForPrev(prefix + std::string(8, '\xff'));
  if (!it->status().ok())
    return read_failure(it->status());
  if (!it->Valid() || !it->key().starts_with(prefix))
    return std::optional<audit_record>{};
  auto record = decode_audit(it->value().ToStringView());
  if (!record)
    return record.error();
  return std::optional<audit_record>{std::move(record).value()};
}

status store::flush() {
  auto s = db_->Flush(rocksdb::FlushOptions{}, cfs_->handles);
  if (!s.ok())
    return make_failure("store_write_failed", "flush failed: " + s.ToString());
  return ok_status();
}

store_batch::store_batch() = default;
store_batch::~store_batch() = default;
store_batch::store_batch(store_batch&&) noexcept = default;

store_batch::store_batch(store* owner)
    : owner_(owner), batch_(std::make_unique<rocksdb::WriteBatch>()) {}

void store_batch::put_provider(const provider_record& r) {
  batch_->Put(owner_->cfs_->providers(), r.id, encode(r));
}

void store_batch::put_agent(const agent_record& r) {
  batch_->Put(owner_->cfs_->agents(), r.id, encode(r));
  batch_->Put(owner_->cfs_->agent_keys(), r.key_hash, r.id);
}

void store_batch::delete_agent(const agent_record& r) {
  batch_->Delete(owner_->cfs_->agents(), r.id);
  batch_->Delete(owner_->cfs_->agent_keys(), r.key_hash);
}

void store_batch::put_wrapped_key(const std::string& owner, const std::string& wrapped) {
  batch_->Put(owner_->cfs_->keys(), owner, wrapped);
}

void store_batch::put_connection(const connection_record& r) {
  batch_->Put(owner_->cfs_->connections(), join_key(r.user, r.provider), encode(r));
}

void store_batch::put_task(const task_record& r, std::optional<std::int64_t> previous_due_ms) {
  batch_->Put(owner_->cfs_->tasks(), join_key(r.user, r.id), encode(r));
  if (previous_due_ms)
    batch_->Delete(owner_->cfs_->due(), due_key(*previous_due_ms, r.id));
  if (task_status_is_pending(r.status))
    batch_->Put(owner_->cfs_->due(), due_key(r.due_at_ms, r.id), r.user);
  if (task_status_is_pending(r.status) || r.status == task_status::blocked)
    batch_->Put(owner_->cfs_->active_tasks(), join_key(r.user, r.id), "");
  else
    batch_->Delete(owner_->cfs_->active_tasks(), join_key(r.user, r.id));
}

void store_batch::put_audit(const audit_record& r) {
  batch_->Put(owner_->cfs_->audit(), join_key(r.user, big_endian64(r.seq)), encode(r));
}

}  // namespace latchkey
