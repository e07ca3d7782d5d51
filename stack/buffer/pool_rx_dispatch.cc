// Routing of engine receive-store calls to connection pools (see pool_rx_dispatch.h).
#include "stack/buffer/pool_rx_dispatch.h"

#include <algorithm>

namespace xtcp {

int PoolRxDispatch::add_pool(SharedRxPool* pool) {
  if (pools_.size() >= kDetached - 1) {
    return -1;
  }
  pools_.push_back(pool);
  return static_cast<int>(pools_.size() - 1);
}

void PoolRxDispatch::remove_pool(int slot) {
  if (slot >= 0 && static_cast<std::size_t>(slot) < pools_.size()) {
    pools_[slot] = nullptr;
  }
}

void PoolRxDispatch::bind(ConnId conn, int slot) {
  if (conn >= map_.size()) {
    map_.resize(std::max<std::size_t>(static_cast<std::size_t>(conn) + 1, map_.size() * 2));
  }
  map_[conn] = slot < 0 ? kUnmapped : static_cast<std::uint16_t>(slot + 1);
}

void PoolRxDispatch::detach(ConnId conn) {
  if (SharedRxPool* p = resolve(conn)) {
    p->release(conn);
  }
  if (conn >= map_.size()) {
    map_.resize(std::max<std::size_t>(static_cast<std::size_t>(conn) + 1, map_.size() * 2));
  }
  map_[conn] = kDetached;
}

SharedRxPool* PoolRxDispatch::resolve(ConnId conn) const {
  if (conn < map_.size() && map_[conn] != kUnmapped) {
    const std::uint16_t m = map_[conn];
    return m == kDetached ? nullptr : pools_[m - 1u];
  }
  if (!resolver_) {
    return nullptr;
  }
  const int slot = resolver_(conn);
  if (slot < 0 || static_cast<std::size_t>(slot) >= pools_.size() || pools_[slot] == nullptr) {
    return nullptr;  // not cached: the group may be opened later
  }
  if (conn >= map_.size()) {
    map_.resize(std::max<std::size_t>(static_cast<std::size_t>(conn) + 1, map_.size() * 2));
  }
  map_[conn] = static_cast<std::uint16_t>(slot + 1);
  return pools_[slot];
}

int PoolRxDispatch::slot_of(ConnId conn) const {
  if (resolve(conn) == nullptr) {
    return -1;
  }
  return map_[conn] - 1;
}

std::size_t PoolRxDispatch::append(ConnId conn, wire::ByteSpan data) {
  if (conn < map_.size() && map_[conn] == kDetached) {
    discarded_ += data.size();
    return data.size();
  }
  SharedRxPool* p = resolve(conn);
  return p != nullptr ? p->append(conn, data) : 0;
}

std::size_t PoolRxDispatch::free_space(ConnId conn) const {
  if (conn < map_.size() && map_[conn] == kDetached) {
    return default_capacity_;
  }
  const SharedRxPool* p = resolve(conn);
  return p != nullptr ? p->free_space(conn) : 0;
}

std::size_t PoolRxDispatch::capacity(ConnId conn) const {
  // No resolving here: the engine asks at start-up, before any pool or connection exists.
  if (conn < map_.size() && map_[conn] != kUnmapped && map_[conn] != kDetached) {
    if (const SharedRxPool* p = pools_[map_[conn] - 1u]) {
      return p->capacity(conn);
    }
  }
  return default_capacity_;
}

std::size_t PoolRxDispatch::held(ConnId conn) const {
  const SharedRxPool* p = resolve(conn);
  return p != nullptr ? p->held(conn) : 0;
}

void PoolRxDispatch::release(ConnId conn) {
  if (conn < map_.size()) {
    if (map_[conn] != kUnmapped && map_[conn] != kDetached) {
      if (SharedRxPool* p = pools_[map_[conn] - 1u]) {
        p->release(conn);
      }
    }
    map_[conn] = kUnmapped;
  }
}

}  // namespace xtcp
