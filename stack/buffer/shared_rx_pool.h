// SharedRxPool: the one shared receive buffer of an XTCP connection pool. Every connection
// of the pool keeps its received, not yet acknowledged bytes here as a FIFO of 256-byte
// chunks; there are no per-connection buffers.
//
//   TcpLayer --append(conn)--> pool --peek(conn, offset)--> xtcp_recv (delivered, still held)
//   xtcp_send(ackd) --pop_front(conn, ackd)--> bytes leave; the engine ACKs what is no longer held
//
// Chunk size: 256 bytes. Instant-messaging requests are mostly 50-250 bytes, so one chunk
// holds a typical request with little slack (a 64-byte chunk would cost 6% in links alone
// and split most messages; a 1,500-byte one would waste most of each chunk on idle
// connections holding one short request). A full-sized segment spans six chunks.
//
// Throttling under buffer pressure: once free space falls below low_water, connections
// that already hold bytes may only fill the chunk they have, so the reserve serves idle
// connections' new requests; what the store refuses the engine drops (and counts) while
// still processing the segment's ACK field. free_space() tells the engine the truth, so the
// advertised window is never larger than what the pool could take when it was advertised.
#pragma once

#include <cstddef>
#include <cstdint>

#include "stack/buffer/chunk_queues.h"
#include "stack/buffer/stores.h"

namespace xtcp {

struct SharedRxPoolOptions {
  std::size_t chunk_size = 256;
  // The most one connection may hold: its largest receive window. Bounds what one flooding
  // connection can take from the others.
  std::size_t conn_window = 64 * 1024;
  // Free bytes below which connections already holding data are throttled. SIZE_MAX: 1/16
  // of the pool.
  std::size_t low_water = SIZE_MAX;
};

struct SharedRxPoolStats {
  std::uint64_t bytes_in = 0;         // bytes stored
  std::uint64_t bytes_refused = 0;    // bytes offered by the engine and refused (dropped)
  std::uint64_t throttled_appends = 0;  // appends cut short while below low_water
};

class SharedRxPool final : public RxStore {
 public:
  // Throws std::bad_alloc when the slab cannot be allocated.
  explicit SharedRxPool(std::size_t size, const SharedRxPoolOptions& options = {});
  // Maps the per-connection index for ids [0, n) up front (no resident cost until used), so
  // it never grows on the packet path (ChunkQueues::reserve_connections).
  void reserve_connections(std::size_t n) { q_.reserve_connections(n); }

  // RxStore (engine side).
  std::size_t append(ConnId conn, wire::ByteSpan data) override;
  std::size_t free_space(ConnId conn) const override;
  std::size_t capacity(ConnId conn) const override;
  std::size_t held(ConnId conn) const override { return q_.bytes(conn); }
  void release(ConnId conn) override { q_.release(conn); }

  // Application side.
  std::size_t peek(ConnId conn, std::size_t offset, wire::MutableByteSpan dst) const {
    return q_.peek(conn, offset, dst);
  }
  std::size_t pop_front(ConnId conn, std::size_t n) { return q_.pop_front(conn, n); }

  std::size_t size() const { return q_.capacity(); }
  std::size_t used() const { return q_.used(); }
  std::size_t free_bytes() const { return q_.free_chunk_bytes(); }
  std::size_t chunk_size() const { return q_.chunk_size(); }
  bool throttled() const { return q_.free_chunk_bytes() < low_water_; }
  const SharedRxPoolStats& stats() const { return stats_; }
  std::size_t memory_bytes() const { return q_.memory_bytes(); }

 private:
  ChunkQueues q_;
  std::size_t conn_window_;
  std::size_t low_water_;
  SharedRxPoolStats stats_;
};

}  // namespace xtcp
