// The shared receive buffer of one connection pool: window accounting and throttling over
// ChunkQueues (see shared_rx_pool.h).
#include "stack/buffer/shared_rx_pool.h"

#include <algorithm>

namespace xtcp {

SharedRxPool::SharedRxPool(std::size_t size, const SharedRxPoolOptions& options)
    : q_(size, options.chunk_size),
      conn_window_(std::max<std::size_t>(options.conn_window, 1)),
      low_water_(options.low_water == SIZE_MAX ? q_.capacity() / 16 : options.low_water) {}

std::size_t SharedRxPool::capacity(ConnId /*conn*/) const {
  return std::min(conn_window_, q_.capacity());
}

std::size_t SharedRxPool::free_space(ConnId conn) const {
  const std::size_t held = q_.bytes(conn);
  const std::size_t cap = capacity(conn);
  if (held >= cap) {
    return 0;
  }
  std::size_t room = q_.tail_room(conn);
  // Below low water only connections that hold nothing may take new chunks: a flooding
  // connection cannot eat the reserve that lets idle clients' requests in.
  if (!(throttled() && held > 0)) {
    room += q_.free_chunk_bytes();
  }
  return std::min(cap - held, room);
}

std::size_t SharedRxPool::append(ConnId conn, wire::ByteSpan data) {
  const std::size_t room = free_space(conn);
  const std::size_t took = q_.append(conn, data, room);
  stats_.bytes_in += took;
  if (took < data.size()) {
    stats_.bytes_refused += data.size() - took;
    if (throttled()) {
      ++stats_.throttled_appends;
    }
  }
  return took;
}

}  // namespace xtcp
