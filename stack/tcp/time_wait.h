// Compact TIME-WAIT table: on entering TIME-WAIT the control block is released and only
// this 32-byte flow entry stays for 2*MSL, so a server closing many connections does not
// keep their full control blocks. Every entry lives for the same time, so entries sit in a
// ring in expiry order and expiry pops from the head: no timer per entry. Restarting 2*MSL
// (a retransmitted FIN) moves an entry to the tail.
#pragma once

#include <cstdint>
#include <vector>

#include "stack/core/flow_table.h"
#include "stack/tcp/tcb.h"

namespace xtcp {

class TimeWaitTable {
 public:
  struct Entry {
    FlowKey key;              // 12
    SeqNum snd_nxt;           // our FIN + 1: the ACK value the peer should send
    SeqNum rcv_nxt;           // the peer's FIN + 1: what we ACK
    std::uint32_t ts_recent;  // for PAWS and the TSecr of our re-ACKs
    Tick expires;
    std::uint16_t window;     // the (scaled) window field we last sent
    std::uint8_t flags;       // kTimestamps, kDead
    std::uint8_t reserved;
  };
  static_assert(sizeof(Entry) == 32, "TIME-WAIT entries are meant to stay at 32 bytes");
  static constexpr std::uint8_t kTimestamps = 1;
  static constexpr std::uint8_t kDead = 2;

  // first_position lets tests start near the 2^32 wrap of the position counter.
  explicit TimeWaitTable(std::uint32_t first_position = 0) : head_(first_position), tail_(first_position) {}

  Entry* find(const FlowKey& key);
  // Adds (or replaces) the entry for e.key; e.expires must be now + 2*MSL.
  void insert(const Entry& e);
  // Restarts the entry's 2*MSL (RFC 9293 3.10.7.4, TIME-WAIT FIN processing).
  void restart(Entry* e, Tick expires);
  void erase(Entry* e);
  // Removes every entry whose time is up. Returns how many.
  std::size_t expire(Tick now);
  Tick next_expiry() const;  // 0 when empty
  std::size_t size() const { return live_; }
  std::size_t memory_bytes() const;

 private:
  Entry& at(std::uint32_t pos) { return ring_[pos & (ring_.size() - 1)]; }
  void grow();
  void pop_dead_head();

  std::vector<Entry> ring_;     // power-of-two size
  std::uint32_t head_;          // absolute positions; index maps key -> position
  std::uint32_t tail_;
  std::size_t live_ = 0;
  FlowTable index_;
};

}  // namespace xtcp
