// Per-connection FIFOs of fixed-size chunks over one slab (see chunk_queues.h). Chunks are
// linked through next_; the free list is LIFO so recently used (cache-warm) chunks go first.
#include "stack/buffer/chunk_queues.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace xtcp {

ChunkQueues::ChunkQueues(std::size_t total_bytes, std::size_t chunk_size)
    : chunk_size_(chunk_size), chunk_count_(chunk_size == 0 ? 0 : total_bytes / chunk_size) {
  if (chunk_size == 0 || chunk_size > UINT32_MAX || chunk_count_ >= kNone) {
    throw std::invalid_argument("ChunkQueues: bad chunk size or too many chunks");
  }
  // new[] without initialization: a large slab is mmap()ed and its pages stay untouched
  // (uncommitted) until bytes land in them.
  slab_.reset(new std::byte[chunk_count_ * chunk_size_]);
  next_.resize(chunk_count_);
  for (std::size_t i = 0; i < chunk_count_; ++i) {
    next_[i] = i + 1 < chunk_count_ ? static_cast<std::uint32_t>(i + 1) : kNone;
  }
  free_head_ = chunk_count_ > 0 ? 0 : kNone;
  free_count_ = chunk_count_;
}

std::uint32_t ChunkQueues::alloc_chunk() {
  const std::uint32_t c = free_head_;
  free_head_ = next_[c];
  next_[c] = kNone;
  --free_count_;
  return c;
}

void ChunkQueues::free_chunk(std::uint32_t c) {
  next_[c] = free_head_;
  free_head_ = c;
  ++free_count_;
}

ChunkQueues::Queue& ChunkQueues::queue(ConnId conn) {
  if (conn >= queues_.size()) {
    queues_.resize(std::max<std::size_t>(static_cast<std::size_t>(conn) + 1, queues_.size() * 2));
  }
  return queues_[conn];
}

std::size_t ChunkQueues::tail_room(ConnId conn) const {
  if (conn >= queues_.size() || queues_[conn].size == 0) {
    return 0;
  }
  const Queue& q = queues_[conn];
  // Every chunk but the head is filled from its start, so the tail's fill follows from the
  // head offset and the size alone.
  const std::size_t in_tail = (q.head_off + q.size - 1) % chunk_size_ + 1;
  return chunk_size_ - in_tail;
}

std::size_t ChunkQueues::append(ConnId conn, wire::ByteSpan data, std::size_t limit) {
  std::size_t n = std::min({data.size(), limit, appendable(conn)});
  if (n == 0) {
    return 0;
  }
  Queue& q = queue(conn);
  // A queue's size is a u32: beyond that the caller must pop first.
  n = std::min<std::size_t>(n, UINT32_MAX - q.size);
  std::size_t done = 0;
  if (q.size == 0) {
    q.head = q.tail = alloc_chunk();
    q.head_off = 0;
  }
  while (done < n) {
    std::size_t room = chunk_size_ - ((q.head_off + q.size - 1) % chunk_size_ + 1);
    if (q.size == 0) {
      room = chunk_size_;
    }
    if (room == 0) {
      const std::uint32_t c = alloc_chunk();
      next_[q.tail] = c;
      q.tail = c;
      room = chunk_size_;
    }
    const std::size_t at = chunk_size_ - room;
    const std::size_t k = std::min(room, n - done);
    std::memcpy(chunk(q.tail) + at, data.data() + done, k);
    done += k;
    q.size += static_cast<std::uint32_t>(k);
  }
  used_ += n;
  return n;
}

std::size_t ChunkQueues::peek(ConnId conn, std::size_t offset, wire::MutableByteSpan dst) const {
  if (conn >= queues_.size() || offset >= queues_[conn].size) {
    return 0;
  }
  const Queue& q = queues_[conn];
  const std::size_t n = std::min(dst.size(), q.size - offset);
  std::size_t pos = q.head_off + offset;
  std::uint32_t c = q.head;
  while (pos >= chunk_size_) {
    c = next_[c];
    pos -= chunk_size_;
  }
  std::size_t done = 0;
  while (done < n) {
    const std::size_t k = std::min(chunk_size_ - pos, n - done);
    std::memcpy(dst.data() + done, chunk(c) + pos, k);
    done += k;
    pos = 0;
    c = next_[c];
  }
  return n;
}

std::size_t ChunkQueues::pop_front(ConnId conn, std::size_t n) {
  if (conn >= queues_.size()) {
    return 0;
  }
  Queue& q = queues_[conn];
  n = std::min<std::size_t>(n, q.size);
  if (n == 0) {
    return 0;
  }
  if (n == q.size) {
    release(conn);
    return n;
  }
  std::size_t off = q.head_off + n;
  while (off >= chunk_size_) {
    const std::uint32_t c = q.head;
    q.head = next_[c];
    free_chunk(c);
    off -= chunk_size_;
  }
  q.head_off = static_cast<std::uint32_t>(off);
  q.size -= static_cast<std::uint32_t>(n);
  used_ -= n;
  return n;
}

void ChunkQueues::release(ConnId conn) {
  if (conn >= queues_.size() || queues_[conn].size == 0) {
    return;
  }
  Queue& q = queues_[conn];
  const std::size_t chunks = (q.head_off + q.size + chunk_size_ - 1) / chunk_size_;
  next_[q.tail] = free_head_;
  free_head_ = q.head;
  free_count_ += chunks;
  used_ -= q.size;
  q = Queue{};
}

std::size_t ChunkQueues::memory_bytes() const {
  return chunk_count_ * chunk_size_ + next_.capacity() * sizeof(std::uint32_t) +
         queues_.capacity() * sizeof(Queue);
}

}  // namespace xtcp
