// Timing wheel and FIFO timer queue (see timer_wheel.h for the layout). Data flows in through
// schedule()/push(), sits in intrusive bucket lists or the ring, and leaves through the
// expiry callbacks of advance()/pop_expired().
#include "stack/core/timer_wheel.h"

#include <algorithm>
#include <bit>
#include <cassert>

namespace xtcp {

TimerWheel::TimerWheel(TimeNs granularity, TimeNs start)
    : granularity_(granularity > 0 ? granularity : 1), start_(start) {
  heads_.fill(kNil);
}

std::uint64_t TimerWheel::tick_of(TimeNs t) const {
  if (t <= start_) {
    return 0;
  }
  // The difference of two int64 values fits in uint64 even when start_ is negative.
  const std::uint64_t delta = static_cast<std::uint64_t>(t) - static_cast<std::uint64_t>(start_);
  return delta / static_cast<std::uint64_t>(granularity_);
}

void TimerWheel::reserve(std::uint32_t owners) {
  if (owners > entries_.size()) {
    entries_.reserve(owners);
    entries_.resize(owners, Entry{kNever, kIdle, kNil});
  }
}

void TimerWheel::ensure_owner(std::uint32_t owner) {
  assert(owner <= kMaxOwner);
  if (owner >= entries_.size()) {
    // Doubling keeps growth amortized O(1) when owner ids are handed out densely.
    const std::size_t want = std::max<std::size_t>(std::size_t{owner} + 1, entries_.size() * 2);
    entries_.resize(std::min<std::size_t>(want, std::size_t{kMaxOwner} + 1),
                    Entry{kNever, kIdle, kNil});
  }
}

bool TimerWheel::is_scheduled(std::uint32_t owner) const {
  return owner < entries_.size() && entries_[owner].prev != kIdle;
}

TimeNs TimerWheel::deadline(std::uint32_t owner) const {
  return is_scheduled(owner) ? entries_[owner].deadline : kNever;
}

std::size_t TimerWheel::memory_bytes() const {
  return sizeof(*this) + entries_.capacity() * sizeof(Entry);
}

void TimerWheel::link_front(std::uint32_t owner, std::uint32_t bucket) {
  Entry& e = entries_[owner];
  const std::uint32_t old = heads_[bucket];
  e.prev = kHeadTag | bucket;
  e.next = old;
  if (old != kNil) {
    entries_[old].prev = owner;
  }
  heads_[bucket] = owner;
  set_bit(bucket);
}

// The walk covers only timers due within the current tick (or overdue), a short list.
void TimerWheel::link_sorted_current(std::uint32_t owner) {
  const std::uint32_t bucket = current_bucket();
  Entry& e = entries_[owner];
  std::uint32_t prev = kHeadTag | bucket;
  std::uint32_t cur = heads_[bucket];
  while (cur != kNil && entries_[cur].deadline <= e.deadline) {
    prev = cur;
    cur = entries_[cur].next;
  }
  e.prev = prev;
  e.next = cur;
  if (prev & kHeadTag) {
    heads_[bucket] = owner;
  } else {
    entries_[prev].next = owner;
  }
  if (cur != kNil) {
    entries_[cur].prev = owner;
  }
  set_bit(bucket);
}

void TimerWheel::place(std::uint32_t owner, bool keep_current_sorted) {
  const std::uint64_t tick = tick_of(entries_[owner].deadline);
  if (tick <= cur_) {
    if (keep_current_sorted) {
      link_sorted_current(owner);
    } else {
      link_front(owner, current_bucket());
    }
    return;
  }
  // The highest byte where tick and cur_ differ picks the level; tick's byte there is the slot
  // (always greater than cur_'s byte, since tick > cur_).
  const int level = (63 - std::countl_zero(tick ^ cur_)) / kSlotBits;
  const auto slot = static_cast<std::uint32_t>((tick >> (level * kSlotBits)) & (kSlots - 1));
  link_front(owner, static_cast<std::uint32_t>(level * kSlots) + slot);
}

void TimerWheel::unlink(std::uint32_t owner) {
  Entry& e = entries_[owner];
  const std::uint32_t prev = e.prev;
  const std::uint32_t next = e.next;
  if (prev & kHeadTag) {
    const std::uint32_t bucket = prev & ~kHeadTag;
    heads_[bucket] = next;
    if (next == kNil) {
      clear_bit(bucket);
    }
  } else {
    entries_[prev].next = next;
  }
  if (next != kNil) {
    entries_[next].prev = prev;
  }
  e.prev = kIdle;
  e.next = kNil;
}

void TimerWheel::remove(std::uint32_t owner) {
  unlink(owner);
  --count_;
  if (min_valid_ && entries_[owner].deadline == min_cache_) {
    min_valid_ = false;
  }
  if (count_ == 0) {
    min_valid_ = true;
    min_cache_ = kNever;
  }
}

void TimerWheel::schedule(std::uint32_t owner, TimeNs deadline) {
  if (deadline == kNever) {
    cancel(owner);
    return;
  }
  ensure_owner(owner);
  if (entries_[owner].prev != kIdle) {
    remove(owner);
  }
  entries_[owner].deadline = deadline;
  place(owner, /*keep_current_sorted=*/true);
  ++count_;
  if (count_ == 1) {
    min_valid_ = true;
    min_cache_ = deadline;
  } else if (min_valid_ && deadline < min_cache_) {
    min_cache_ = deadline;
  }
}

void TimerWheel::cancel(std::uint32_t owner) {
  if (is_scheduled(owner)) {
    remove(owner);
  }
}

int TimerWheel::first_slot_above(int level, int after) const {
  const int first = after + 1;
  if (first >= kSlots) {
    return -1;
  }
  const int base = level * kWordsPerLevel;
  int word = first >> 6;
  std::uint64_t bits = bits_[base + word] & (~std::uint64_t{0} << (first & 63));
  for (;;) {
    if (bits != 0) {
      return word * 64 + std::countr_zero(bits);
    }
    if (++word == kWordsPerLevel) {
      return -1;
    }
    bits = bits_[base + word];
  }
}

// Buckets at a lower level always precede those at a higher one: a level-l bucket lies in a
// later level-(l-1) block than anything below it. So the first hit, scanning upward, is the
// earliest bucket.
int TimerWheel::next_bucket() const {
  for (int level = 0; level < kLevels; ++level) {
    const int digit = static_cast<int>((cur_ >> (level * kSlotBits)) & (kSlots - 1));
    const int slot = first_slot_above(level, digit);
    if (slot >= 0) {
      return level * kSlots + slot;
    }
  }
  return -1;
}

std::uint64_t TimerWheel::next_event_tick() const {
  const int bucket = next_bucket();
  if (bucket < 0) {
    return kNoTick;
  }
  const int level = bucket / kSlots;
  const auto slot = static_cast<std::uint64_t>(bucket % kSlots);
  const int shift = (level + 1) * kSlotBits;
  const std::uint64_t high = shift >= 64 ? 0 : (cur_ >> shift) << shift;
  return high | (slot << (level * kSlotBits));
}

TimeNs TimerWheel::next_deadline() const {
  if (count_ == 0) {
    return kNever;
  }
  // Everything in the current bucket is due no later than anything elsewhere, and it is sorted.
  const std::uint32_t head = heads_[current_bucket()];
  if (head != kNil) {
    return entries_[head].deadline;
  }
  if (min_valid_) {
    return min_cache_;
  }
  const int bucket = next_bucket();
  assert(bucket >= 0);
  TimeNs best = kNever;
  for (std::uint32_t o = heads_[static_cast<std::size_t>(bucket)]; o != kNil;
       o = entries_[o].next) {
    best = std::min(best, entries_[o].deadline);
  }
  min_cache_ = best;
  min_valid_ = true;
  return best;
}

// Moves the current tick forward to `tick`, which must not pass any armed timer. Buckets whose
// range now contains the current tick are split into lower levels; the new current level-0
// bucket is then sorted so it can be fired in deadline order.
void TimerWheel::move_to(std::uint64_t tick) {
  const std::uint64_t old = cur_;
  cur_ = tick;
  for (int level = kLevels - 1; level >= 1; --level) {
    const int shift = level * kSlotBits;
    if ((old >> shift) == (tick >> shift)) {
      continue;
    }
    const auto slot = static_cast<std::uint32_t>((tick >> shift) & (kSlots - 1));
    cascade(static_cast<std::uint32_t>(level * kSlots) + slot);
  }
  sort_bucket(current_bucket());
}

void TimerWheel::cascade(std::uint32_t bucket) {
  std::uint32_t o = heads_[bucket];
  if (o == kNil) {
    return;
  }
  heads_[bucket] = kNil;
  clear_bit(bucket);
  // Placing relative to the new current tick only ever lands in lower levels (or the current
  // bucket, sorted afterwards by move_to), never back in this bucket.
  while (o != kNil) {
    const std::uint32_t next = entries_[o].next;
    place(o, /*keep_current_sorted=*/false);
    o = next;
  }
}

// Stable merge of two deadline-sorted lists linked through `next`; ties favour `a`.
std::uint32_t TimerWheel::merge(std::uint32_t a, std::uint32_t b) {
  std::uint32_t head = kNil;
  std::uint32_t tail = kNil;
  auto append = [&](std::uint32_t o) {
    if (tail == kNil) {
      head = o;
    } else {
      entries_[tail].next = o;
    }
    tail = o;
  };
  while (a != kNil && b != kNil) {
    if (entries_[b].deadline < entries_[a].deadline) {
      const std::uint32_t n = entries_[b].next;
      append(b);
      b = n;
    } else {
      const std::uint32_t n = entries_[a].next;
      append(a);
      a = n;
    }
  }
  const std::uint32_t rest = a != kNil ? a : b;
  if (tail == kNil) {
    return rest;
  }
  entries_[tail].next = rest;
  return head;
}

// Bottom-up merge sort through the `next` links (bins[i] holds a sorted run of 2^i entries,
// older entries in higher bins), then the `prev` links are rebuilt. No allocation.
void TimerWheel::sort_bucket(std::uint32_t bucket) {
  std::uint32_t o = heads_[bucket];
  if (o == kNil || entries_[o].next == kNil) {
    return;
  }
  std::array<std::uint32_t, 33> bins;
  bins.fill(kNil);
  int used = 0;
  while (o != kNil) {
    const std::uint32_t next = entries_[o].next;
    entries_[o].next = kNil;
    std::uint32_t carry = o;
    int i = 0;
    while (bins[i] != kNil) {
      carry = merge(bins[i], carry);
      bins[i] = kNil;
      ++i;
    }
    bins[i] = carry;
    used = std::max(used, i + 1);
    o = next;
  }
  std::uint32_t sorted = kNil;
  for (int i = 0; i < used; ++i) {
    if (bins[i] != kNil) {
      sorted = merge(bins[i], sorted);
    }
  }
  heads_[bucket] = sorted;
  std::uint32_t prev = kHeadTag | bucket;
  for (std::uint32_t x = sorted; x != kNil; x = entries_[x].next) {
    entries_[x].prev = prev;
    prev = x;
  }
}

std::size_t TimerWheel::advance(TimeNs now, FunctionRef<void(std::uint32_t owner)> on_expire) {
  if (advancing_) {
    return 0;
  }
  struct Guard {
    bool& flag;
    ~Guard() { flag = false; }
  } guard{advancing_};
  advancing_ = true;

  const std::uint64_t now_tick = tick_of(now);
  std::size_t fired = 0;
  for (;;) {
    // The current bucket's head is the globally earliest timer; callbacks may insert before
    // it, so the head is re-read every time.
    for (;;) {
      const std::uint32_t head = heads_[current_bucket()];
      if (head == kNil || entries_[head].deadline > now) {
        break;
      }
      remove(head);
      ++fired;
      on_expire(head);
    }
    if (cur_ >= now_tick) {
      break;
    }
    // Everything in the current bucket had tick <= cur_ < now_tick, hence deadline <= now, and
    // has fired: the bucket is empty. Jump to the next non-empty bucket or to now.
    assert(heads_[current_bucket()] == kNil);
    move_to(std::min(next_event_tick(), now_tick));
  }
  return fired;
}

// ---------------------------------------------------------------------------------------------

FifoTimerQueue::FifoTimerQueue(std::size_t initial_capacity) {
  if (initial_capacity > 0) {
    grow(initial_capacity);
  }
}

void FifoTimerQueue::grow(std::size_t min_capacity) {
  const std::size_t cap = std::bit_ceil(std::max<std::size_t>(min_capacity, 16));
  if (cap <= items_.size()) {
    return;
  }
  std::vector<Item> next(cap);
  for (std::size_t i = 0; i < count_; ++i) {
    next[i] = at(i);
  }
  items_.swap(next);
  head_ = 0;
}

void FifoTimerQueue::reserve(std::size_t n) { grow(n); }

FifoTimerQueue::Ticket FifoTimerQueue::push(std::uint32_t owner, TimeNs deadline) {
  assert(owner <= kMaxOwner);
  if (count_ == items_.size()) {
    grow(items_.size() * 2);
  }
  at(count_) = Item{deadline, owner};
  const Ticket ticket = head_ticket_ + count_;
  ++count_;
  ++live_;
  return ticket;
}

void FifoTimerQueue::pop_front() {
  head_ = (head_ + 1) & (items_.size() - 1);
  --count_;
  ++head_ticket_;
}

// Keeps the head live, so next_deadline() is O(1) and const.
void FifoTimerQueue::drop_front_tombstones() {
  while (count_ > 0 && at(0).owner == kRemoved) {
    pop_front();
  }
}

bool FifoTimerQueue::remove(Ticket ticket) {
  if (ticket < head_ticket_ || ticket - head_ticket_ >= count_) {
    return false;
  }
  Item& item = at(static_cast<std::size_t>(ticket - head_ticket_));
  if (item.owner == kRemoved) {
    return false;
  }
  item.owner = kRemoved;
  --live_;
  drop_front_tombstones();
  return true;
}

std::size_t FifoTimerQueue::pop_expired(
    TimeNs now, FunctionRef<void(std::uint32_t owner, TimeNs deadline)> on_expire) {
  std::size_t fired = 0;
  while (count_ > 0 && at(0).deadline <= now) {
    const Item item = at(0);
    pop_front();
    --live_;
    drop_front_tombstones();
    ++fired;
    on_expire(item.owner, item.deadline);
  }
  return fired;
}

TimeNs FifoTimerQueue::next_deadline() const { return count_ > 0 ? at(0).deadline : kNever; }

std::size_t FifoTimerQueue::memory_bytes() const {
  return sizeof(*this) + items_.capacity() * sizeof(Item);
}

}  // namespace xtcp
