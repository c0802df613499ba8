#include "persistence/audit_log.hpp"

#include "persistence/envelope.hpp"

namespace latchkey {

result<audit_record> audit_log::next_record(const audit_event& e) {
  auto head = heads_.find(e.user);
  if (head == heads_.end()) {
    auto last = db_.last_audit(e.user);
    if (!last)
      return last.error();
    auto start = last.value() ? std::make_pair(last.value()->seq, last.value()->hash)
                              : std::make_pair(std::uint64_t{0}, std::string{});
    head = heads_.emplace(e.user, start).first;
  }

  audit_record r;
  r.seq = head->second.first + 1;
  r.at_ms = now_ms();
  r.user = e.user;
  r.actor = e.actor;
  r.event = e.event;
  r.outcome = e.outcome;
  r.provider = e.provider;
  r.task = e.task;
  r.detail = e.detail;
  r.prev_hash = head->second.second;
  r.hash = sha256_hex(audit_hash_input(r));
  head->second = {r.seq, r.hash};
  return r;
}

status audit_log::append_to(store_batch& batch, const audit_event& e) {
  std::lock_guard<std::mutex> guard(mutex_);
  auto record = next_record(e);
  if (!record)
    return record.error();
  batch.put_audit(record.value());
  return ok_status();
}

status audit_log::append(const audit_event& e) {
  std::lock_guard<std::mutex> guard(mutex_);
  auto record = next_record(e);
  if (!record)
    return record.error();
  auto batch = db_.batch();
  batch.put_audit(record.value());
  auto committed = db_.commit(batch, /*sync=*/false);
  if (!committed)
    heads_.erase(e.user);  // reload the head from disk next time
  return committed;
}

status verify_audit_chain(store& db, const std::string& user) {
  std::string prev;
  std::uint64_t seq = 0;
  for (;;) {
    auto page = db.list_audit(user, seq, 1000);
    if (!page)
      return page.error();
    if (page.value().empty())
      return ok_status();
    for (const auto& r : page.value()) {
      if (r.prev_hash != prev || r.hash != sha256_hex(audit_hash_input(r)) || r.seq != seq + 1)
        return make_failure("audit_chain_broken", "audit chain of " + user + " breaks at record " +
                                                      std::to_string(r.seq));
      prev = r.hash;
      seq = r.seq;
    }
  }
}

}  // namespace latchkey
