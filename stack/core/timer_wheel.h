// Timers for millions of connections. TimerWheel: one timer slot per owner (a connection's
// slot index) in a hierarchical timing wheel; schedule/cancel are O(1), advance() visits only
// non-empty buckets. FifoTimerQueue: constant-length timers (TIME_WAIT) in a ring buffer.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "stack/core/clock.h"
#include "stack/core/function_ref.h"

namespace xtcp {

// Hierarchical timing wheel keyed by owner id.
//
// Time is cut into ticks of `granularity`; tick = (deadline - start) / granularity. The wheel
// has 8 levels of 256 buckets, so 64 bits of tick are covered and no deadline (up to
// kNever - 1) ever needs an overflow list. A timer with tick t sits at the level of the
// highest byte in which t differs from the current tick, in the bucket named by that byte of
// t; when the current tick enters a bucket's range, the bucket is cascaded one or more levels
// down (each timer moves at most 7 times in its life, usually 0-2). Per-level bitmaps let
// advance() and next_deadline() jump straight to the next non-empty bucket, so idle time costs
// nothing and hours-long jumps are cheap.
//
// The current level-0 bucket also holds every timer whose tick is at or before the current
// tick (deadlines in the past) and is kept sorted by exact deadline, so timers fire in
// nondecreasing deadline order (equal deadlines in an unspecified but deterministic order),
// and next_deadline() is its head.
//
// Memory: one 16-byte Entry per owner id up to the largest id ever scheduled (the array only
// grows; reserve() up front to keep allocation off the packet path), plus ~8.5 KiB of bucket
// heads and bitmaps per wheel. Owner ids must be <= kMaxOwner.
class TimerWheel {
 public:
  static constexpr std::uint32_t kMaxOwner = 0x7FFF'FFFEu;

  explicit TimerWheel(TimeNs granularity = kNsPerMs, TimeNs start = 0);

  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;
  // A moved-from wheel may only be destroyed or assigned to.
  TimerWheel(TimerWheel&&) = default;
  TimerWheel& operator=(TimerWheel&&) = default;

  // Grows the per-owner array so owners [0, owners) never allocate in schedule().
  void reserve(std::uint32_t owners);

  // Arms owner's timer at `deadline`, moving it if already armed. A deadline at or before
  // the last advance() time fires at the next advance(). Scheduling at kNever is a cancel:
  // such a timer could never fire.
  void schedule(std::uint32_t owner, TimeNs deadline);

  // Disarms owner's timer; no effect if it is not armed.
  void cancel(std::uint32_t owner);

  bool is_scheduled(std::uint32_t owner) const;

  // The armed deadline, or kNever if owner's timer is not armed.
  TimeNs deadline(std::uint32_t owner) const;

  // Exact earliest armed deadline, or kNever when nothing is armed. O(1) when something is
  // due within the current tick or the answer is cached; otherwise a bitmap search over the
  // levels (at most 8 x 4 words) plus one pass over the first non-empty bucket, whose result
  // is cached until that earliest timer is cancelled or moved.
  TimeNs next_deadline() const;

  // Fires every timer with deadline <= now, each exactly once, earliest deadline first, and
  // returns how many fired. A timer is disarmed before its callback runs. Callbacks may
  // schedule and cancel any timer, including the one firing: a timer armed by a callback at a
  // deadline <= now fires within this same call (so a callback that always re-arms itself at
  // or before `now` loops forever: re-arm strictly in the future). advance() must not be
  // called from inside one of its own callbacks (such a nested call does nothing).
  std::size_t advance(TimeNs now, FunctionRef<void(std::uint32_t owner)> on_expire);

  std::size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  TimeNs granularity() const { return granularity_; }

  // Bytes owned by this wheel: the object itself plus the per-owner array's capacity.
  std::size_t memory_bytes() const;

  // 16 bytes per owner: exact deadline plus intrusive doubly-linked bucket links.
  struct Entry {
    TimeNs deadline;
    std::uint32_t prev;  // owner id, kHeadTag | bucket for a list head, or kIdle (not armed)
    std::uint32_t next;  // owner id or kNil
  };
  static_assert(sizeof(Entry) == 16);

 private:
  static constexpr int kSlotBits = 8;
  static constexpr int kSlots = 1 << kSlotBits;
  static constexpr int kLevels = 64 / kSlotBits;
  static constexpr int kBuckets = kLevels * kSlots;
  static constexpr int kWordsPerLevel = kSlots / 64;
  static constexpr std::uint32_t kNil = 0xFFFF'FFFFu;
  static constexpr std::uint32_t kIdle = 0xFFFF'FFFFu;
  static constexpr std::uint32_t kHeadTag = 0x8000'0000u;
  static constexpr std::uint64_t kNoTick = UINT64_MAX;

  std::uint64_t tick_of(TimeNs t) const;
  std::uint32_t current_bucket() const { return static_cast<std::uint32_t>(cur_ & (kSlots - 1)); }

  void ensure_owner(std::uint32_t owner);
  void link_front(std::uint32_t owner, std::uint32_t bucket);
  void link_sorted_current(std::uint32_t owner);
  void place(std::uint32_t owner, bool keep_current_sorted);
  void unlink(std::uint32_t owner);
  void remove(std::uint32_t owner);

  void set_bit(std::uint32_t bucket) { bits_[bucket >> 6] |= std::uint64_t{1} << (bucket & 63); }
  void clear_bit(std::uint32_t bucket) {
    bits_[bucket >> 6] &= ~(std::uint64_t{1} << (bucket & 63));
  }
  // First non-empty bucket of `level` with slot > after, or -1.
  int first_slot_above(int level, int after) const;
  // The first non-empty bucket after the current one, as level * kSlots + slot, or -1.
  int next_bucket() const;
  // The first tick covered by that bucket, or kNoTick.
  std::uint64_t next_event_tick() const;

  void move_to(std::uint64_t tick);
  void cascade(std::uint32_t bucket);
  void sort_bucket(std::uint32_t bucket);
  std::uint32_t merge(std::uint32_t a, std::uint32_t b);

  TimeNs granularity_;
  TimeNs start_;
  std::uint64_t cur_ = 0;  // current tick; every armed timer has tick >= cur_ or sits in its bucket
  std::size_t count_ = 0;
  bool advancing_ = false;
  // Cache of the earliest deadline for next_deadline(); kept exact on insert, dropped when the
  // timer holding it is removed.
  mutable bool min_valid_ = true;
  mutable TimeNs min_cache_ = kNever;
  std::vector<Entry> entries_;
  std::array<std::uint32_t, kBuckets> heads_;
  std::array<std::uint64_t, kBuckets / 64> bits_{};
};

// Constant-length timers (TIME_WAIT, 2MSL): every new deadline is now + a constant, so
// deadlines arrive in nondecreasing order and a FIFO replaces the wheel: push at the tail,
// expire from the head, O(1) each, 16 bytes per pending item in a growable ring buffer.
//
// Removal is lazy. push() returns a Ticket (a running sequence number); remove(ticket)
// overwrites that item with a tombstone in O(1) and tombstones are skipped when they reach the
// head. Callers that would rather not store tickets can keep the deadline in their own entry
// and ignore a popped (owner, deadline) that no longer matches it (stale after slot reuse).
// A push whose deadline is earlier than the tail's is allowed but fires in FIFO order: never
// early, possibly late (when the items ahead of it expire).
class FifoTimerQueue {
 public:
  using Ticket = std::uint64_t;
  static constexpr std::uint32_t kMaxOwner = 0xFFFF'FFFEu;

  explicit FifoTimerQueue(std::size_t initial_capacity = 0);

  Ticket push(std::uint32_t owner, TimeNs deadline);

  // Tombstones the item; false if it already expired or was removed.
  bool remove(Ticket ticket);

  // Pops every live item at the head with deadline <= now, calling on_expire(owner, deadline)
  // for each after it left the queue (so the callback may push or remove). Returns the count.
  std::size_t pop_expired(TimeNs now,
                          FunctionRef<void(std::uint32_t owner, TimeNs deadline)> on_expire);

  // Deadline of the head item, or kNever when empty.
  TimeNs next_deadline() const;

  std::size_t size() const { return live_; }
  bool empty() const { return live_ == 0; }
  std::size_t capacity() const { return items_.size(); }
  void reserve(std::size_t n);
  std::size_t memory_bytes() const;

 private:
  static constexpr std::uint32_t kRemoved = 0xFFFF'FFFFu;
  struct Item {
    TimeNs deadline;
    std::uint32_t owner;  // kRemoved for a tombstone
  };
  static_assert(sizeof(Item) == 16);

  Item& at(std::size_t i) { return items_[(head_ + i) & (items_.size() - 1)]; }
  const Item& at(std::size_t i) const { return items_[(head_ + i) & (items_.size() - 1)]; }
  void pop_front();
  void drop_front_tombstones();
  void grow(std::size_t min_capacity);

  std::vector<Item> items_;  // power-of-two size
  std::size_t head_ = 0;     // index of the oldest item
  std::size_t count_ = 0;    // items in the ring, tombstones included
  std::size_t live_ = 0;
  Ticket head_ticket_ = 0;   // ticket of the oldest item
};

}  // namespace xtcp
