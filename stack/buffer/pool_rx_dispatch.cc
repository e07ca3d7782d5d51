// Routing of engine receive-store calls to connection pools (see pool_rx_dispatch.h).
#include "stack/buffer/pool_rx_dispatch.h"

#include <algorithm>

namespace xtcp {

void PoolRxDispatch::reserve_connections(std::size_t n) {
  map_.reserve(n);
  reserved_ = std::max(reserved_, n);
  for (SharedRxPool* p : pools_) {
    if (p != nullptr) {
      p->reserve_connections(reserved_);
    }
  }
}

int PoolRxDispatch::add_pool(SharedRxPool* pool) {
  if (pools_.size() >= kDetached - 1u) {
    return -1;
  }
  if (pool != nullptr && reserved_ > 0) {
    pool->reserve_connections(reserved_);
  }
  pools_.push_back(pool);
  return static_cast<int>(pools_.size() - 1);
}

void PoolRxDispatch::remove_pool(int slot) {
  if (slot >= 0 && static_cast<std::size_t>(slot) < pools_.size()) {
    pools_[slot] = nullptr;
  }
}

void PoolRxDispatch::set(ConnId conn, std::uint16_t m) const {
  if (entry(conn) == m) {
    return;  // no write: an id's page becomes resident only when it is really mapped
  }
  map_.ensure(conn);
  map_.note_written(conn);
  map_[conn] = m;
}

void PoolRxDispatch::bind(ConnId conn, int slot) {
  set(conn, slot < 0 ? kUnmapped : static_cast<std::uint16_t>(slot + 1));
}

void PoolRxDispatch::detach(ConnId conn) {
  SharedRxPool* p = resolve(conn);
  if (p != nullptr) {
    p->release(conn);
  }
  set(conn, static_cast<std::uint16_t>(kDetached | (p != nullptr ? map_[conn] : 0)));
}

SharedRxPool* PoolRxDispatch::resolve(ConnId conn) const {
  if (const std::uint16_t m = entry(conn); m != kUnmapped) {
    return detached(m) ? nullptr : pools_[m - 1u];
  }
  if (!resolver_) {
    return nullptr;
  }
  const int slot = resolver_(conn);
  if (slot < 0 || static_cast<std::size_t>(slot) >= pools_.size() || pools_[slot] == nullptr) {
    return nullptr;  // not cached: the group may be opened later
  }
  set(conn, static_cast<std::uint16_t>(slot + 1));
  return pools_[slot];
}

int PoolRxDispatch::slot_of(ConnId conn) const {
  if (resolve(conn) == nullptr) {
    return -1;
  }
  return map_[conn] - 1;
}

std::size_t PoolRxDispatch::append(ConnId conn, wire::ByteSpan data) {
  if (detached(entry(conn))) {
    discarded_ += data.size();
    return data.size();
  }
  SharedRxPool* p = resolve(conn);
  return p != nullptr ? p->append(conn, data) : 0;
}

std::size_t PoolRxDispatch::free_space(ConnId conn) const {
  if (detached(entry(conn))) {
    return default_capacity_;
  }
  const SharedRxPool* p = resolve(conn);
  return p != nullptr ? p->free_space(conn) : 0;
}

std::size_t PoolRxDispatch::offer(ConnId conn, std::size_t promised) const {
  if (detached(entry(conn))) {
    // Its bytes are discarded as if read, and it is closing: the promise made stays (and
    // stays committed until the engine releases it), nothing more is offered.
    return promised;
  }
  const SharedRxPool* p = resolve(conn);
  return p != nullptr ? p->offer(conn, promised) : promised;
}

void PoolRxDispatch::window_closed(ConnId conn) {
  if (SharedRxPool* p = resolve(conn)) {
    p->window_closed(conn);
  }
}

std::size_t PoolRxDispatch::initial_window(ConnId conn) const {
  if (detached(entry(conn))) {
    return 0;
  }
  const SharedRxPool* p = resolve(conn);
  return p != nullptr ? p->initial_window(conn) : 0;
}

void PoolRxDispatch::promised(ConnId conn, std::size_t before, std::size_t after) {
  const std::uint16_t m = entry(conn);
  SharedRxPool* p = m != kUnmapped ? pool_of_entry(m) : resolve(conn);
  if (p != nullptr) {
    p->promised(conn, before, after);
  }
}

std::size_t PoolRxDispatch::capacity(ConnId conn) const {
  // No resolving here: the engine asks at start-up, before any pool or connection exists.
  const std::uint16_t m = entry(conn);
  if (m != kUnmapped && !detached(m)) {
    if (const SharedRxPool* p = pools_[m - 1u]) {
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
  const std::uint16_t m = entry(conn);
  if (m != kUnmapped && !detached(m)) {
    if (SharedRxPool* p = pools_[m - 1u]) {
      p->release(conn);
    }
  }
  if (m != kUnmapped) {
    map_[conn] = kUnmapped;
  }
}

std::size_t PoolRxDispatch::memory_bytes() const {
  return map_.resident_bytes();
}

}  // namespace xtcp
