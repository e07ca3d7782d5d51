// TIME-WAIT ring; see time_wait.h. Ring slots never move while in use, so the index maps a
// key straight to its slot, and reads keys back from the ring.
#include "stack/tcp/time_wait.h"

#include <algorithm>
#include <cassert>
#include <new>

namespace xtcp {

TimeWaitTable::TimeWaitTable(std::size_t max_entries, std::uint64_t seed)
    : capacity_(std::clamp<std::size_t>(max_entries, 1, std::size_t{FlowIndex::kMaxValue} + 1)),
      storage_(capacity_ * sizeof(Record)),
      ring_(static_cast<Record*>(storage_.data())),
      index_(*this, capacity_, FlowIndex::kDefaultMaxLoad, seed) {}

TimeWaitTable::Entry* TimeWaitTable::find(const FlowKey& key) {
  const auto slot = index_.find(key);
  if (!slot) {
    return nullptr;
  }
  const Record& r = ring_[*slot];
  found_ = Entry{r.key, r.snd_nxt, r.rcv_nxt, r.ts_recent, group_expires_[r.group], r.window,
                 r.flags, 0};
  return &found_;
}

void TimeWaitTable::kill(std::size_t slot) {
  Record& r = ring_[slot];
  index_.erase(r.key, static_cast<std::uint32_t>(slot));
  r.flags |= kDead;
  --live_;
}

void TimeWaitTable::advance_head() {
  const std::uint8_t group = ring_[head_].group;
  head_ = slot_after(head_, 1);
  if (--used_ == 0) {
    groups_ = 0;  // nothing left: the next insert opens a fresh group
  } else if (ring_[head_].group != group) {
    // Groups are consecutive runs of at least one record: the head left exactly one behind.
    head_group_ = (head_group_ + 1) % kGroups;
    --groups_;
  }
}

void TimeWaitTable::pop_dead_head() {
  while (used_ != 0 && (ring_[head_].flags & kDead) != 0) {
    advance_head();
  }
}

std::uint8_t TimeWaitTable::group_for(Tick expires) {
  if (groups_ == 0) {
    group_expires_[head_group_] = expires;
    group_opened_[head_group_] = expires;
    groups_ = 1;
    return static_cast<std::uint8_t>(head_group_);
  }
  const std::uint32_t tail = (head_group_ + groups_ - 1) % kGroups;
  if (tick_before_eq(expires, group_expires_[tail])) {
    return static_cast<std::uint8_t>(tail);  // lives to the tail's deadline: FIFO order kept
  }
  bool open = groups_ < kExactGroups;
  if (!open && groups_ < kGroups) {
    // Time left to this deadline as of the last expire() (a stale now_ only makes groups
    // coarser, never more numerous): a group spans at least 1/200 of it.
    const auto left = static_cast<std::int32_t>(expires - now_);
    const Tick span = left > 0 ? static_cast<Tick>(left) / kGroupSpanDivisor : 0;
    open = expires - group_opened_[tail] >= std::max<Tick>(span, 1);
  }
  if (!open) {
    group_expires_[tail] = expires;  // the whole group waits for its latest member
    return static_cast<std::uint8_t>(tail);
  }
  const std::uint32_t g = (tail + 1) % kGroups;
  group_expires_[g] = expires;
  group_opened_[g] = expires;
  ++groups_;
  return static_cast<std::uint8_t>(g);
}

void TimeWaitTable::append(const Record& r, Tick expires) {
  if (used_ == capacity_) {
    // Full ring: the oldest entry makes room (the head is always live).
    kill(head_);
    ++recycled_;
    advance_head();
    pop_dead_head();
  }
  const std::size_t slot = slot_after(head_, used_);
  Record& dst = ring_[slot];
  dst = r;
  dst.flags = static_cast<std::uint8_t>(r.flags & ~kDead);
  dst.group = group_for(expires);
  ++used_;
  ++live_;
  written_ = std::max(written_, slot + 1);
  const bool indexed = index_.insert(r.key, static_cast<std::uint32_t>(slot));
  assert(indexed);  // absent (callers erase first) and never full (live <= its capacity)
  (void)indexed;
}

void TimeWaitTable::insert(const Entry& e) {
  if (const auto slot = index_.find(e.key)) {
    kill(*slot);
    pop_dead_head();
  }
  append(Record{e.key, e.snd_nxt, e.rcv_nxt, e.ts_recent, e.window, e.flags, 0}, e.expires);
}

void TimeWaitTable::restart(Entry* e, Tick expires) {
  if (e == nullptr) {
    return;
  }
  const auto slot = index_.find(e->key);
  if (!slot) {
    return;
  }
  const Record r = ring_[*slot];
  kill(*slot);
  pop_dead_head();
  append(r, expires);
}

void TimeWaitTable::erase(Entry* e) {
  if (e == nullptr) {
    return;
  }
  if (const auto slot = index_.find(e->key)) {
    kill(*slot);
    pop_dead_head();
  }
}

std::size_t TimeWaitTable::expire(Tick now) {
  now_ = now;
  std::size_t n = 0;
  while (used_ != 0 && tick_before_eq(group_expires_[head_group_], now)) {
    if ((ring_[head_].flags & kDead) == 0) {
      kill(head_);
      ++n;
    }
    advance_head();
  }
  pop_dead_head();
  return n;
}

Tick TimeWaitTable::next_expiry() const { return used_ == 0 ? 0 : group_expires_[head_group_]; }

std::size_t TimeWaitTable::memory_bytes() const {
  const std::size_t page = ZeroedPages::page_size();
  const std::size_t ring = std::min((written_ * sizeof(Record) + page - 1) / page * page,
                                    storage_.bytes());
  return sizeof(*this) - sizeof(FlowIndex) + ring + index_.memory_bytes();
}

std::size_t TimeWaitTable::reserved_bytes() const {
  return sizeof(*this) - sizeof(FlowIndex) + storage_.bytes() + index_.reserved_bytes();
}

}  // namespace xtcp
