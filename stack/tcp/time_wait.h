// Compact TIME-WAIT table: on entering TIME-WAIT the control block is released and only a
// 28-byte record of the flow stays for 2*MSL, so a server closing many connections does not
// keep their control blocks. All in, at a million entries: 28 bytes of record + 9.4 of index
// (FlowIndex, 8-byte slots at load <= 0.85) = ~37.5 bytes per entry.
//
// Every entry lives the same 2*MSL, so records sit in a ring in insertion order, which is
// expiry order, and expiry pops from the head: no timer per entry. Restarting 2*MSL (a
// retransmitted FIN) moves an entry to the tail. The ring and its index are sized once, at
// construction, for a maximum number of entries; when the ring is full an insert recycles the
// oldest entry, the one nearest its end (counted in recycled()). (Linux, past
// tcp_max_tw_buckets, instead lets the newly closing connection skip TIME-WAIT.) An entry
// erased or restarted early keeps its ring slot until the head passes it: the ring holds the
// entries of the last 2*MSL, live or not.
//
// A record carries no expiry of its own. Records inserted one after another share an expiry
// group: a run of the ring with one deadline, 256 groups at most, numbered in the record's
// last byte. While fewer than 32 groups are open every distinct deadline gets a group of its
// own (exact). Beyond that a record joins the newest group unless that group's first deadline
// is at least 1/200 of the record's remaining time (its deadline minus the last expire() time)
// before the record's own, and the group's deadline moves up to the record's. So an entry
// never leaves before its own deadline, and at most 1/200 of 2*MSL after it when expire() runs
// on time (0.3 s of 60 s; the kernel's timer wheel allows up to 12.5%).
#pragma once

#include <cstddef>
#include <cstdint>

#include "stack/core/flow_index.h"
#include "stack/tcp/tcb.h"

namespace xtcp {

class TimeWaitTable final : private FlowKeySource {
 public:
  // What the engine hands to insert() and what find() shows: the stored record plus its
  // deadline. Not what the ring stores (Record, 28 bytes): find() decodes a record into a
  // copy, so changes made through the pointer are not kept (use restart() / erase()).
  struct Entry {
    FlowKey key;              // 12
    SeqNum snd_nxt;           // our FIN + 1: the ACK value the peer should send
    SeqNum rcv_nxt;           // the peer's FIN + 1: what we ACK
    std::uint32_t ts_recent;  // for PAWS and the TSecr of our re-ACKs
    Tick expires;             // when 2*MSL is over (the record's group's deadline in find())
    std::uint16_t window;     // the (scaled) window field we last sent
    std::uint8_t flags;       // kTimestamps, kDead
    std::uint8_t reserved;
  };
  static constexpr std::uint8_t kTimestamps = 1;
  static constexpr std::uint8_t kDead = 2;

  // One ring slot: the entry without its deadline, plus the number of its expiry group.
  struct Record {
    FlowKey key;
    SeqNum snd_nxt;
    SeqNum rcv_nxt;
    std::uint32_t ts_recent;
    std::uint16_t window;
    std::uint8_t flags;
    std::uint8_t group;
  };
  static_assert(sizeof(Record) == 28, "TIME-WAIT records are meant to stay at 28 bytes");

  // Until the engine passes its own limit: enough for a million connections closing at once.
  static constexpr std::size_t kDefaultMaxEntries = std::size_t{1} << 20;

  explicit TimeWaitTable(std::size_t max_entries = kDefaultMaxEntries,
                         std::uint64_t seed = FlowTable::random_seed());
  TimeWaitTable(const TimeWaitTable&) = delete;  // the index reads keys from this object
  TimeWaitTable& operator=(const TimeWaitTable&) = delete;

  // The entry of `key`, decoded into a buffer of the table: valid until the next call on the
  // table. nullptr if there is none.
  Entry* find(const FlowKey& key);
  // Adds (or replaces) the entry for e.key at the tail; e.expires must be now + 2*MSL (an
  // earlier deadline than the tail's is raised to it: the ring stays in expiry order). A
  // full ring first recycles its oldest entry.
  void insert(const Entry& e);
  // Restarts the entry's 2*MSL (RFC 9293 3.10.7.4, TIME-WAIT FIN processing): it moves to
  // the tail with the new deadline. e is found again by e->key.
  void restart(Entry* e, Tick expires);
  // Removes the entry of e->key, if any.
  void erase(Entry* e);
  // Removes every entry whose time is up. Returns how many.
  std::size_t expire(Tick now);
  Tick next_expiry() const;  // 0 when empty

  std::size_t size() const { return live_; }
  std::size_t max_entries() const { return capacity_; }
  // Live entries dropped before their time to make room for new ones.
  std::uint64_t recycled() const { return recycled_; }
  // What the table costs: the object, every ring page written so far and the index's
  // written pages (FlowIndex::memory_bytes). Grows to reserved_bytes() as the ring fills.
  std::size_t memory_bytes() const;
  // What it costs at most: the whole ring and the whole index.
  std::size_t reserved_bytes() const;

 private:
  static constexpr std::size_t kGroups = 256;
  // Below this many open groups every distinct deadline opens a group of its own.
  static constexpr std::size_t kExactGroups = 32;
  // Beyond it a group spans at least 1/kGroupSpanDivisor of the time left to its deadline.
  static constexpr Tick kGroupSpanDivisor = 200;

  FlowKey key_of(std::uint32_t slot) const override { return ring_[slot].key; }

  std::size_t slot_after(std::size_t slot, std::size_t n) const {
    const std::size_t s = slot + n;
    return s >= capacity_ ? s - capacity_ : s;
  }
  void append(const Record& r, Tick expires);
  void kill(std::size_t slot);
  // Drops the head slot (live or not) and any dead ones behind it.
  void advance_head();
  void pop_dead_head();
  std::uint8_t group_for(Tick expires);

  std::size_t capacity_;
  ZeroedPages storage_;
  Record* ring_;
  std::size_t head_ = 0;      // oldest slot in use; live whenever used_ > 0
  std::size_t used_ = 0;      // slots from head_ to the tail, dead ones included
  std::size_t live_ = 0;
  std::size_t written_ = 0;   // ring slots written at least once (a prefix of the ring)
  std::uint64_t recycled_ = 0;
  Tick now_ = 0;              // the latest expire() time
  // Expiry groups, a ring of kGroups: group g covers the records numbered g, in one run.
  std::uint32_t head_group_ = 0;
  std::uint32_t groups_ = 0;  // open groups
  Tick group_expires_[kGroups] = {};
  Tick group_opened_[kGroups] = {};
  Entry found_{};
  FlowIndex index_;
};

}  // namespace xtcp
