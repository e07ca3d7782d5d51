// The shared transmit cache: per-connection share limit over ChunkQueues (see
// shared_tx_cache.h).
#include "stack/buffer/shared_tx_cache.h"

#include <algorithm>

namespace xtcp {

SharedTxCache::SharedTxCache(std::size_t size, std::size_t chunk_size, std::size_t conn_limit)
    : q_(size, chunk_size), conn_limit_(conn_limit == 0 ? SIZE_MAX : conn_limit) {}

std::size_t SharedTxCache::free_space(ConnId conn) const {
  const std::size_t queued = q_.bytes(conn);
  const std::size_t share = queued >= conn_limit_ ? 0 : conn_limit_ - queued;
  return std::min(share, q_.appendable(conn));
}

std::size_t SharedTxCache::append(ConnId conn, wire::ByteSpan data) {
  const std::size_t took = q_.append(conn, data, free_space(conn));
  stats_.bytes_in += took;
  stats_.refused += data.size() - took;
  return took;
}

}  // namespace xtcp
