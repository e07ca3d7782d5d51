// TIME-WAIT ring; see time_wait.h. Positions are absolute counters so the index stays
// valid when the ring grows.
#include "stack/tcp/time_wait.h"

namespace xtcp {

TimeWaitTable::Entry* TimeWaitTable::find(const FlowKey& key) {
  auto pos = index_.find(key);
  if (!pos) {
    return nullptr;
  }
  return &at(*pos);
}

void TimeWaitTable::grow() {
  std::vector<Entry> bigger(ring_.empty() ? 64 : ring_.size() * 2);
  for (std::uint32_t p = head_; p != tail_; ++p) {
    bigger[p & (bigger.size() - 1)] = at(p);
  }
  ring_ = std::move(bigger);
}

void TimeWaitTable::insert(const Entry& e) {
  if (Entry* old = find(e.key)) {
    erase(old);
  }
  if (ring_.empty() || tail_ - head_ == ring_.size()) {
    pop_dead_head();
    if (ring_.empty() || tail_ - head_ == ring_.size()) {
      grow();
    }
  }
  if (tail_ == FlowTable::kNoValue) {
    // The index cannot store this position (it marks empty slots): burn it as a dead
    // entry. Happens once every 2^32 insertions.
    at(tail_) = Entry{};
    at(tail_).flags = kDead;
    ++tail_;
    if (tail_ - head_ == ring_.size()) {
      grow();
    }
  }
  const std::uint32_t pos = tail_++;
  at(pos) = e;
  at(pos).flags &= static_cast<std::uint8_t>(~kDead);
  index_.insert(e.key, pos);
  ++live_;
}

void TimeWaitTable::restart(Entry* e, Tick expires) {
  Entry copy = *e;
  copy.expires = expires;
  erase(e);
  insert(copy);
}

void TimeWaitTable::erase(Entry* e) {
  if ((e->flags & kDead) != 0) {
    return;
  }
  index_.erase(e->key);
  e->flags |= kDead;
  --live_;
  pop_dead_head();
}

void TimeWaitTable::pop_dead_head() {
  while (head_ != tail_ && (at(head_).flags & kDead) != 0) {
    ++head_;
  }
}

std::size_t TimeWaitTable::expire(Tick now) {
  std::size_t n = 0;
  while (head_ != tail_) {
    Entry& e = at(head_);
    if ((e.flags & kDead) == 0) {
      if (!tick_before_eq(e.expires, now)) {
        break;
      }
      index_.erase(e.key);
      --live_;
      ++n;
    }
    ++head_;
  }
  return n;
}

Tick TimeWaitTable::next_expiry() const {
  for (std::uint32_t p = head_; p != tail_; ++p) {
    const Entry& e = ring_[p & (ring_.size() - 1)];
    if ((e.flags & kDead) == 0) {
      return e.expires;
    }
  }
  return 0;
}

std::size_t TimeWaitTable::memory_bytes() const {
  return ring_.capacity() * sizeof(Entry) + index_.memory_bytes();
}

}  // namespace xtcp
