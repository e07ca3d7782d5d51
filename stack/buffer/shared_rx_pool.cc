// The shared receive buffer of one connection pool: window accounting and throttling over
// ChunkQueues (see shared_rx_pool.h).
#include "stack/buffer/shared_rx_pool.h"

#include <algorithm>

namespace xtcp {

SharedRxPool::SharedRxPool(std::size_t size, const SharedRxPoolOptions& options)
    : q_(size, options.chunk_size),
      conn_window_(std::max<std::size_t>(options.conn_window, 1)),
      low_water_(std::min(q_.capacity(),
                          options.low_water == SIZE_MAX ? q_.capacity() / 16 : options.low_water)),
      min_share_(std::min(options.min_share, conn_window_)),
      quiet_window_(std::min(options.quiet_window, conn_window_)),
      refused_cap_(options.refused_fifo) {}

// The connection's buffer as the engine's receiver SWS avoidance sees it (RFC 9293
// 3.8.6.2.2: a window grows by min(buffer / 2, MSS) at least): its fair share now, so a
// connection squeezed to a small share still gets its window topped up.
std::size_t SharedRxPool::capacity(ConnId conn) const { return fair_share(conn); }

std::size_t SharedRxPool::fair_share(ConnId /*conn*/) const {
  // Connections holding data or a promise (the larger count: most are both), and this one.
  const std::size_t holders = std::max(q_.queues_in_use(), promisers_) + 1;
  const std::size_t shared = q_.capacity() - low_water_;
  return std::min(window_cap(), std::max(min_share_, shared / holders));
}

// See the header: the fair share caps what the connection holds plus what it is promised;
// a grant beyond the promise already made must be covered by free chunks nobody else was
// promised, leaving the reserve (which only connections holding nothing may use). A quiet
// connection (holding nothing, its window still open) is topped up to quiet_window, no
// more: windows grow for connections that use them.
std::size_t SharedRxPool::offer(ConnId conn, std::size_t promised) const {
  const std::size_t held = q_.bytes(conn);
  const bool quiet = held == 0 && !(busy_ && busy_(conn));
  const std::size_t share = fair_share(conn);
  std::size_t most = share > held ? share - held : 0;
  if (held == 0 && promised > 0) {
    most = std::min(most, std::max(promised, quiet_window_));
  }
  if (most <= promised) {
    return promised;  // a promise is never taken back (RFC 9293 3.8.6.2.2)
  }
  const std::size_t c = q_.chunk_size();
  const std::size_t chunks = q_.free_chunk_bytes();
  const std::size_t free = chunks + q_.tail_room(conn);
  const std::size_t uncommitted = chunks > committed_ ? chunks - committed_ : 0;
  const std::size_t general = uncommitted > low_water_ ? uncommitted - low_water_ : 0;
  // Growing the promise from `promised` to w costs counted(w) - counted(promised): within
  // the chunk already counted it is free, beyond it whole chunks of avail.
  const std::size_t paid = counted(promised);
  const auto grant = [&](std::size_t avail) {
    return std::min(most, std::max(promised, paid + avail / c * c));
  };
  std::size_t w = grant(general);
  if (quiet && w < quiet_window_) {
    // A new or quiet connection may draw on the reserve for its request; connections
    // holding data, or with answers waiting in the transmit cache, never do, so hoarders
    // cannot take it.
    w = std::max(w, std::min(quiet_window_, grant(uncommitted)));
  }
  if (held + w < quiet_window_) {
    // Everything is promised already (idle connections keep their windows): a connection
    // is still offered what is physically free, overbooked (see the header), so none is
    // starved of a request's room. One holding data gets no more than min_share in all,
    // and not from the reserve: that stays for new and quiet connections.
    if (quiet) {
      w = std::max(w, std::min({most, quiet_window_, free}));
    } else if (held < min_share_) {
      const std::size_t phys = free > low_water_ ? free - low_water_ : 0;
      w = std::max(w, std::min({most, min_share_ - held, phys}));
    }
  }
  // Never more than the pool could physically take now.
  return std::max(promised, std::min(w, free));
}

std::size_t SharedRxPool::initial_window(ConnId conn) const {
  return std::min(offer(conn, 0), std::max(quiet_window_, q_.chunk_size()));
}

void SharedRxPool::promised(ConnId /*conn*/, std::size_t before, std::size_t after) {
  const std::size_t b = counted(before);
  const std::size_t a = counted(after);
  if ((a > 0) != (b > 0)) {  // a connection's window opened or closed
    if (a > 0) {
      ++promisers_;
    } else if (promisers_ > 0) {
      --promisers_;
    }
  }
  if (a >= b) {
    committed_ += a - b;
  } else {
    committed_ -= std::min(committed_, b - a);
  }
}

std::size_t SharedRxPool::append(ConnId conn, wire::ByteSpan data) {
  // Every byte the engine appends lies inside a window it advertised: take all that fits
  // (the connection's cap aside), whatever the shares, so a promise is kept.
  const std::size_t held = q_.bytes(conn);
  const std::size_t cap = window_cap();
  const std::size_t room = held >= cap ? 0 : cap - held;
  const std::size_t took = q_.append(conn, data, room);
  stats_.bytes_in += took;
  if (took < data.size()) {
    stats_.bytes_refused += data.size() - took;
    if (throttled()) {
      ++stats_.throttled_appends;
    }
    note_refused(conn);
  }
  return took;
}

void SharedRxPool::note_refused(ConnId conn) {
  if (!refused_.empty() && refused_.back() == conn) {
    return;
  }
  if (refused_.size() < refused_cap_) {
    refused_.push_back(conn);
  } else {
    ++stats_.refused_dropped;
  }
}

}  // namespace xtcp
