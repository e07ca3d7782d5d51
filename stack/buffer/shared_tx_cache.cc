// The shared transmit cache: per-connection share limit over ChunkQueues (see
// shared_tx_cache.h).
#include "stack/buffer/shared_tx_cache.h"

#include <algorithm>

namespace xtcp {

SharedTxCache::SharedTxCache(std::size_t size, std::size_t chunk_size, std::size_t conn_limit,
                             std::size_t reserve, std::size_t min_share)
    : q_(size, chunk_size),
      conn_limit_(conn_limit == 0 ? SIZE_MAX : conn_limit),
      reserve_(std::min(q_.capacity(), reserve == SIZE_MAX ? q_.capacity() / 16 : reserve)),
      min_share_(std::min(min_share, conn_limit_)) {}

std::size_t SharedTxCache::share(ConnId conn) const {
  const std::size_t holders = q_.queues_in_use() + (q_.bytes(conn) == 0 ? 1 : 0);
  return std::min(conn_limit_, std::max(min_share_, (q_.capacity() - reserve_) / holders));
}

std::size_t SharedTxCache::free_space(ConnId conn) const {
  const std::size_t queued = q_.bytes(conn);
  const std::size_t limit = share(conn);
  const std::size_t room = queued >= limit ? 0 : limit - queued;
  // The reserve is for connections holding nothing, up to min_share each: a quiet one's
  // answer always finds room, and connections holding answers (hoarders among them) never
  // take it.
  const std::size_t free = q_.free_chunk_bytes();
  const std::size_t general = free > reserve_ ? free - reserve_ : 0;
  const std::size_t appendable =
      queued > 0 ? q_.tail_room(conn) + general : std::min(free, general + min_share_);
  return std::min(room, appendable);
}

std::size_t SharedTxCache::append(ConnId conn, wire::ByteSpan data) {
  const std::size_t took = q_.append(conn, data, free_space(conn));
  stats_.bytes_in += took;
  stats_.refused += data.size() - took;
  return took;
}

}  // namespace xtcp
