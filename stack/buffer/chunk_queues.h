// ChunkQueues: one slab of fixed-size chunks shared by many per-connection byte FIFOs. The
// XTCP shared receive buffer (SharedRxPool) and the shared transmit cache (SharedTxCache)
// are both built on it: bytes enter at a connection's tail, are read at any offset, and
// leave from its head; no connection owns memory beyond the chunks its bytes occupy.
//
//   slab:   [c0][c1][c2][c3][c4][c5] ...        every chunk chunk_size bytes
//   next_:   c0->c3  c3->c4  c4->none           (conn 7: head c0, tail c4)
//            c1->c2  c2->c5  ...                (free list)
//   queue:  {head, tail, head_off, size}: 16 bytes per connection id, nothing else
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "stack/buffer/stores.h"
#include "stack/wire/bytes.h"

namespace xtcp {

class ChunkQueues {
 public:
  static constexpr std::uint32_t kNone = UINT32_MAX;

  // total_bytes is rounded down to whole chunks. Throws std::bad_alloc (the slab is one
  // allocation: its pages are touched only as chunks are first used) or
  // std::invalid_argument for a chunk size of 0 or more than 2^32 chunks.
  ChunkQueues(std::size_t total_bytes, std::size_t chunk_size);
  ChunkQueues(const ChunkQueues&) = delete;
  ChunkQueues& operator=(const ChunkQueues&) = delete;

  std::size_t chunk_size() const { return chunk_size_; }
  std::size_t capacity() const { return chunk_count_ * chunk_size_; }
  std::size_t free_chunks() const { return free_count_; }
  std::size_t free_chunk_bytes() const { return free_count_ * chunk_size_; }
  // Bytes queued for all connections, and for one.
  std::size_t used() const { return used_; }
  std::size_t bytes(ConnId conn) const {
    return conn < queues_.size() ? queues_[conn].size : 0;
  }
  // Bytes that still fit in conn's last chunk (no new chunk needed).
  std::size_t tail_room(ConnId conn) const;
  // What conn could append right now: its tail room plus every free chunk.
  std::size_t appendable(ConnId conn) const { return tail_room(conn) + free_chunk_bytes(); }

  // Appends up to min(data.size(), limit) bytes; returns how many were stored.
  std::size_t append(ConnId conn, wire::ByteSpan data, std::size_t limit = SIZE_MAX);
  // Copies bytes starting `offset` bytes after conn's head; returns how many were copied.
  std::size_t peek(ConnId conn, std::size_t offset, wire::MutableByteSpan dst) const;
  // Drops up to n bytes from conn's head (freeing emptied chunks); returns how many.
  std::size_t pop_front(ConnId conn, std::size_t n);
  // Drops all of conn's bytes in O(1) (its chain is spliced onto the free list).
  void release(ConnId conn);

  // Slab, chunk links and queue table.
  std::size_t memory_bytes() const;

 private:
  struct Queue {
    std::uint32_t head = kNone;
    std::uint32_t tail = kNone;
    std::uint32_t head_off = 0;  // first live byte inside the head chunk
    std::uint32_t size = 0;      // live bytes in the chain
  };
  static_assert(sizeof(Queue) == 16);

  std::uint32_t alloc_chunk();
  void free_chunk(std::uint32_t c);
  Queue& queue(ConnId conn);
  std::byte* chunk(std::uint32_t c) const { return slab_.get() + static_cast<std::size_t>(c) * chunk_size_; }

  std::size_t chunk_size_;
  std::size_t chunk_count_;
  std::unique_ptr<std::byte[]> slab_;
  std::vector<std::uint32_t> next_;  // per chunk: the next chunk of its queue or of the free list
  std::uint32_t free_head_ = kNone;
  std::size_t free_count_ = 0;
  std::size_t used_ = 0;
  std::vector<Queue> queues_;  // indexed by ConnId; grows to the largest id seen
};

}  // namespace xtcp
