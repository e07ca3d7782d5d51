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
// Fair windows (docs/architecture.md, "Shared buffers and throttling"). The window a
// connection is offered is a share the pool can honour:
//  - committed: every byte advertised and not yet received is committed, rounded up to
//    whole chunks per connection (the engine reports each connection's promise through
//    promised()); a grant never takes the committed total past the free chunks, so data
//    inside an advertised window finds room (RFC 9293 3.8.6: an offered window is
//    honoured, and its right edge never moves left);
//  - fair share: one connection may hold plus be promised at most
//    max(min_share, (size - reserve) / connections holding data or a promise), and never
//    conn_window;
//  - reserve: grants leave `reserve` bytes uncommitted, except to a connection holding
//    nothing (new, or quiet since its last request), which may be promised up to
//    quiet_window from it: such a connection finds room for a request, and connections
//    holding data (hoarders among them) cannot take the reserve;
//  - windows grow with use: a new connection starts with quiet_window, and a quiet one
//    (holding nothing, its window still open) is only topped up to quiet_window, so idle
//    connections do not sit on large promises.
// Overbooking, the one exception: idle connections keep their windows open for ever, so
// with many of them (or a small pool) everything may be promised already. A connection is
// then still offered up to quiet_window of what is physically free if it holds nothing, or
// up to min_share in all beyond the reserve if it holds less, without backing: none is starved of
// room for a request, and larger windows are always backed. Only overbooked bytes can be
// refused; what is refused is counted, and the connection is queued (bounded FIFO,
// refusal order) so the runtime can ACK it as soon as room frees up.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>

#include "stack/buffer/chunk_queues.h"
#include "stack/buffer/stores.h"

namespace xtcp {

struct SharedRxPoolOptions {
  std::size_t chunk_size = 256;
  // The most one connection may hold: its largest receive window. Bounds what one flooding
  // connection can take from the others.
  std::size_t conn_window = 64 * 1024;
  // Free bytes only connections holding nothing (new and quiet ones) may be promised.
  // SIZE_MAX: 1/16 of the pool.
  std::size_t low_water = SIZE_MAX;
  // The smallest fair share: one full-sized segment and a little more. Capped at
  // conn_window.
  std::size_t min_share = 1536;
  // The window of a new or quiet connection (within its fair share). Two full-sized
  // segments and some: a quiet connection's window is topped up once it has used one MSS
  // of it (receiver SWS avoidance, RFC 9293 3.8.6.2.2), so what remains always takes a
  // request of an MSS. Capped at conn_window.
  std::size_t quiet_window = 4096;
  // Connections remembered as refused (for window updates when room frees up).
  std::size_t refused_fifo = 4096;
};

struct SharedRxPoolStats {
  std::uint64_t bytes_in = 0;         // bytes stored
  std::uint64_t bytes_refused = 0;    // bytes offered by the engine and refused (dropped)
  std::uint64_t throttled_appends = 0;  // appends cut short while below low_water
  std::uint64_t refused_dropped = 0;  // refusals not remembered: the refused FIFO was full
};

class SharedRxPool final : public RxStore {
 public:
  // Throws std::bad_alloc when the slab cannot be allocated.
  explicit SharedRxPool(std::size_t size, const SharedRxPoolOptions& options = {});
  // Maps the per-connection index for ids [0, n) up front (no resident cost until used), so
  // it never grows on the packet path (ChunkQueues::reserve_connections).
  void reserve_connections(std::size_t n) { q_.reserve_connections(n); }
  // Which connections are busy elsewhere: a connection that holds nothing here but whose
  // answers wait in the transmit cache for a client that does not take them (the runtime
  // says: its window is zero) is not quiet, and may not draw on the reserve.
  // Otherwise every hoarder, each time its held bytes were echoed into the cache, would
  // take a quiet window out of the reserve, until the reserve, kept for new and quiet
  // connections' requests, was theirs. Unset: holding nothing is quiet.
  void set_busy_test(std::function<bool(ConnId)> busy) { busy_ = std::move(busy); }

  // RxStore (engine side).
  std::size_t append(ConnId conn, wire::ByteSpan data) override;
  // What conn could be offered if nothing were promised to it yet.
  std::size_t free_space(ConnId conn) const override { return offer(conn, 0); }
  std::size_t offer(ConnId conn, std::size_t promised) const override;
  void promised(ConnId conn, std::size_t before, std::size_t after) override;
  // Queued with the refused connections: it is told (ACKed) when room frees up.
  void window_closed(ConnId conn) override { note_refused(conn); }
  // quiet_window at most: the window grows once the connection uses it.
  std::size_t initial_window(ConnId conn) const override;
  // The connection's fair share now (what receiver SWS avoidance calls its buffer).
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
  bool throttled() const { return q_.free_chunk_bytes() < low_water_ + committed_; }
  // Promised, not yet received bytes the pool keeps room for (whole chunks per connection).
  std::size_t committed() const { return committed_; }
  std::size_t promisers() const { return promisers_; }
  std::size_t reserve() const { return low_water_; }
  std::size_t min_share() const { return min_share_; }
  std::size_t quiet_window() const { return quiet_window_; }
  // The most one connection may hold plus be promised now.
  std::size_t fair_share(ConnId conn) const;
  // Connections refused bytes, oldest first (at most refused_fifo; one entry per refusal
  // episode of a connection while it is queued is not guaranteed: duplicates are skipped
  // by the consumer). pop_refused returns kNoConn when empty.
  bool has_refused() const { return !refused_.empty(); }
  std::size_t refused_count() const { return refused_.size(); }
  ConnId front_refused() const { return refused_.empty() ? kNoConn : refused_.front(); }
  void pop_refused() {
    if (!refused_.empty()) {
      refused_.pop_front();
    }
  }
  const SharedRxPoolStats& stats() const { return stats_; }
  std::size_t memory_bytes() const { return q_.memory_bytes(); }

 private:
  ChunkQueues q_;
  // The largest window of any connection.
  void note_refused(ConnId conn);
  std::size_t window_cap() const { return std::min(conn_window_, q_.capacity()); }
  // Bytes of free chunks a promise needs at most: the promise rounded up to whole chunks.
  std::size_t counted(std::size_t promise) const {
    const std::size_t c = q_.chunk_size();
    return (promise + c - 1) / c * c;
  }
  std::size_t conn_window_;
  std::size_t low_water_;
  std::size_t min_share_;
  std::size_t quiet_window_;
  std::size_t refused_cap_;
  std::function<bool(ConnId)> busy_;
  std::size_t committed_ = 0;
  std::size_t promisers_ = 0;  // connections with a promise
  std::deque<ConnId> refused_;
  SharedRxPoolStats stats_;
};

}  // namespace xtcp
