// SharedTxCache: the one transmit cache shared by all connection pools. An answer stays
// here, in fixed-size chunks, from xtcp_send until the client ACKs it; the engine reads it
// back at any offset to (re)transmit, and the ACK purges it. A connection that goes down is
// purged at once.
//
//   xtcp_send --TcpLayer::send--> append(conn) ; TcpLayer --copy(conn, offset)--> segment
//   client ACK --> TcpLayer --consume(conn, n)--> chunks back to the free list
//
// The API uses 128-byte chunks: answers are mostly short ("OK", a presence line, one relayed
// message of 100-200 bytes), and every connection with an unacknowledged answer pins at
// least one chunk, so a million waiting answers cost 128 MB rather than 256 MB.
//
// Fair shares (docs/architecture.md, "Shared buffers and throttling"): one connection may
// have at most share(conn) = min(conn_limit, max(min_share, (size - reserve) / connections
// holding answers)) cached, and only a connection holding nothing may take from the last
// `reserve` bytes (up to min_share): peers that advertise window 0 and never read (hoarders)
// cannot take the whole cache, and a new or quiet connection finds room for an answer.
#pragma once

#include <cstddef>
#include <cstdint>

#include "stack/buffer/chunk_queues.h"
#include "stack/buffer/stores.h"

namespace xtcp {

struct SharedTxCacheStats {
  std::uint64_t bytes_in = 0;      // answer bytes cached
  std::uint64_t bytes_purged = 0;  // acknowledged by the client and dropped
  std::uint64_t bytes_released = 0;  // dropped with their connection (down or closed)
  std::uint64_t refused = 0;       // bytes not taken because the cache (or the conn's share) was full
};

class SharedTxCache final : public TxStore {
 public:
  // conn_limit: the most one connection may have cached (0: the whole cache). Throws
  // std::bad_alloc when the slab cannot be allocated.
  // reserve: bytes only connections holding nothing may use (SIZE_MAX: 1/16 of the cache);
  // min_share: the share never shrinks below this (capped at conn_limit).
  explicit SharedTxCache(std::size_t size, std::size_t chunk_size = 256, std::size_t conn_limit = 0,
                         std::size_t reserve = SIZE_MAX, std::size_t min_share = 16 * 1024);
  // Maps the per-connection index for ids [0, n) up front (no resident cost until used), so
  // it never grows on the packet path (ChunkQueues::reserve_connections).
  void reserve_connections(std::size_t n) { q_.reserve_connections(n); }

  std::size_t append(ConnId conn, wire::ByteSpan data) override;
  std::size_t free_space(ConnId conn) const override;
  std::size_t copy(ConnId conn, std::size_t offset, wire::MutableByteSpan dst) const override {
    return q_.peek(conn, offset, dst);
  }
  void consume(ConnId conn, std::size_t n) override {
    stats_.bytes_purged += q_.pop_front(conn, n);
  }
  void release(ConnId conn) override {
    stats_.bytes_released += q_.bytes(conn);
    q_.release(conn);
  }

  std::size_t size() const { return q_.capacity(); }
  // The most one connection may ever have cached.
  std::size_t conn_limit() const { return conn_limit_; }
  // The most conn may have cached now: its fair share (see the header comment).
  std::size_t share(ConnId conn) const;
  std::size_t reserve() const { return reserve_; }
  std::size_t min_share() const { return min_share_; }
  // Connections holding answers now.
  std::size_t holders() const { return q_.queues_in_use(); }
  std::size_t used() const { return q_.used(); }
  std::size_t queued(ConnId conn) const { return q_.bytes(conn); }
  const SharedTxCacheStats& stats() const { return stats_; }
  std::size_t memory_bytes() const { return q_.memory_bytes(); }

 private:
  ChunkQueues q_;
  std::size_t conn_limit_;
  std::size_t reserve_;
  std::size_t min_share_;
  SharedTxCacheStats stats_;
};

}  // namespace xtcp
