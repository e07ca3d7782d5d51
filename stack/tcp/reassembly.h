// Out-of-order receive queue (bounded) and the sender's SACK scoreboard (RFC 2018).
// Both are allocated only for connections that need them (see TcpLayer::Extra).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "stack/core/function_ref.h"
#include "stack/wire/bytes.h"
#include "stack/wire/tcp.h"

namespace xtcp {

using wire::SeqNum;

// Segments above rcv_nxt, sorted and non-overlapping. Bytes already held win over a
// retransmission that overlaps them with different content (first copy is kept).
class OooQueue {
 public:
  // Stores what fits of [seq, seq+len) above rcv_nxt. Returns bytes newly stored; 0 when
  // nothing was new or the limits refused it.
  std::size_t insert(SeqNum rcv_nxt, SeqNum seq, wire::ByteSpan data, bool fin,
                     std::size_t max_bytes, std::size_t max_segments);
  // Hands contiguous bytes at rcv_nxt to deliver (which returns how many it took) and
  // advances rcv_nxt over them. Returns true if a queued FIN became in-order.
  bool pop_contiguous(SeqNum* rcv_nxt, FunctionRef<std::size_t(wire::ByteSpan)> deliver);
  // SACK blocks for our ACKs: the range holding the latest segment first (RFC 2018 4).
  std::size_t sack_blocks(std::array<wire::SackBlock, wire::kMaxSackBlocks>* out) const;
  std::size_t bytes() const { return bytes_; }
  // First sequence number held; only when bytes() > 0.
  SeqNum front_seq() const { return segments_.front().seq; }
  bool empty() const { return segments_.empty() && !has_fin_; }
  void clear();
  std::size_t memory_bytes() const;

 private:
  struct Piece {
    SeqNum seq;
    std::vector<std::byte> data;
    SeqNum end() const { return seq + static_cast<std::uint32_t>(data.size()); }
  };
  std::vector<Piece> segments_;
  std::size_t bytes_ = 0;
  SeqNum latest_;  // a sequence number inside the most recently stored segment
  SeqNum fin_seq_;
  bool has_fin_ = false;
};

// Ranges the peer reported as received above snd_una. Bounded: a flood of tiny SACK
// blocks costs constant work per ACK and constant memory.
class SackScoreboard {
 public:
  static constexpr std::size_t kMaxRanges = 16;
  void add(SeqNum left, SeqNum right);
  void trim(SeqNum snd_una);
  void clear() { count_ = 0; }
  bool empty() const { return count_ == 0; }
  // First byte at or after from that is not SACKed, and where that hole ends (the next
  // SACKed range, or limit).
  SeqNum next_hole(SeqNum from, SeqNum limit, SeqNum* hole_end) const;
  std::uint32_t sacked_bytes() const;
  SeqNum highest() const;

 private:
  std::array<wire::SackBlock, kMaxRanges> ranges_{};
  std::size_t count_ = 0;
};

}  // namespace xtcp
