// PoolRxDispatch: the engine has one RxStore per TcpLayer, the XTCP API several connection
// pools; this RxStore routes each connection to its pool's SharedRxPool. A connection's pool
// is resolved on its first use (the SYN-ACK's window, at the latest its first byte) through a
// resolver the API supplies (the pool of the group listening on its local port), then fixed
// until the engine releases the connection.
//
//   TcpLayer --append/free_space/held(conn)--> map_[conn] --> pools_[slot] (SharedRxPool)
//
// map_ is 2 bytes per connection id in a zero-page-backed mapping (0 = unmapped): ids never
// mapped cost no resident memory, and reserve_connections() maps it for the largest id at
// start-up so it never grows on the packet path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "stack/buffer/shared_rx_pool.h"
#include "stack/buffer/stores.h"

namespace xtcp {

class PoolRxDispatch final : public RxStore {
 public:
  // Returns the pool slot for a connection not mapped yet, or -1 (no pool: nothing stored).
  using Resolver = std::function<int(ConnId)>;

  // default_capacity: what capacity() answers for connections without a pool (the engine
  // asks for conn 0 at start-up to choose its window scale).
  explicit PoolRxDispatch(std::size_t default_capacity) : default_capacity_(default_capacity) {}

  void set_resolver(Resolver r) { resolver_ = std::move(r); }
  // Maps the routing table for connection ids [0, n) now (address space only), and reserves
  // the same ids in every pool added, now or later (SharedRxPool::reserve_connections).
  // Larger ids still work: the table then grows. Throws std::bad_alloc.
  void reserve_connections(std::size_t n);
  // Slots are never reused, so a stale mapping cannot reach a newer pool. Throws
  // std::bad_alloc if the pool's index cannot be reserved (see reserve_connections).
  int add_pool(SharedRxPool* pool);
  // The pool's connections must be gone (or detached) first; later bytes for them are refused.
  void remove_pool(int slot);
  SharedRxPool* pool(int slot) const {
    return slot >= 0 && static_cast<std::size_t>(slot) < pools_.size() ? pools_[slot] : nullptr;
  }
  // Maps conn to slot now (active opens: before the resolver could find it by port).
  void bind(ConnId conn, int slot);
  // The application let go of conn: bytes it still receives are discarded (as if read).
  void detach(ConnId conn);
  // conn's pool slot, resolving it if needed; -1 if none.
  int slot_of(ConnId conn) const;
  std::uint64_t discarded() const { return discarded_; }
  // The routing table's pages made resident (those holding an id ever mapped); the pools
  // count their own memory.
  std::size_t memory_bytes() const;

  // RxStore
  std::size_t append(ConnId conn, wire::ByteSpan data) override;
  std::size_t free_space(ConnId conn) const override;
  std::size_t offer(ConnId conn, std::size_t promised) const override;
  std::size_t initial_window(ConnId conn) const override;
  void window_closed(ConnId conn) override;
  // Reaches the pool even after detach(): the connection's promise is given back when the
  // engine releases it.
  void promised(ConnId conn, std::size_t before, std::size_t after) override;
  std::size_t capacity(ConnId conn) const override;
  std::size_t held(ConnId conn) const override;
  void release(ConnId conn) override;

 private:
  // An entry is kUnmapped, or slot + 1, with kDetached set once the application let go
  // (the pool still keeps the connection's promise until the engine releases it).
  static constexpr std::uint16_t kUnmapped = 0;
  static constexpr std::uint16_t kDetached = 0x8000;
  static bool detached(std::uint16_t m) { return (m & kDetached) != 0; }
  // The pool an entry names, detached or not (nullptr: none).
  SharedRxPool* pool_of_entry(std::uint16_t m) const {
    const std::uint16_t s = m & static_cast<std::uint16_t>(~kDetached);
    return s == 0 ? nullptr : pools_[s - 1u];
  }
  SharedRxPool* resolve(ConnId conn) const;
  void set(ConnId conn, std::uint16_t m) const;
  // conn's entry, kUnmapped beyond the table.
  std::uint16_t entry(ConnId conn) const { return conn < map_.size() ? map_[conn] : kUnmapped; }

  std::size_t default_capacity_;
  Resolver resolver_;
  std::vector<SharedRxPool*> pools_;
  std::size_t reserved_ = 0;
  // Per connection id: kUnmapped, or slot + 1 (| kDetached). Mutable: resolving on a const
  // query (free_space for the SYN-ACK) fixes the mapping.
  mutable ZeroPageArray<std::uint16_t> map_;
  std::uint64_t discarded_ = 0;
};

}  // namespace xtcp
