// ChunkQueues: one slab of fixed-size chunks shared by many per-connection byte FIFOs. The
// XTCP shared receive buffer (SharedRxPool) and the shared transmit cache (SharedTxCache)
// are both built on it: bytes enter at a connection's tail, are read at any offset, and
// leave from its head; no connection owns memory beyond the chunks its bytes occupy.
//
//   slab:    [c0][c1][c2][c3][c4][c5] ...        every chunk chunk_size bytes
//   next_:    c0->c3  c3->c4  c4->none           (conn 7: head c0, tail c4)
//             c1->c2  c2->c5  ...                (free list)
//   index_:   conn 7 -> 1 + r, every other conn -> 0 (empty)   4 bytes per connection id
//   records_: r = {head c0, tail c4, head_off, size}          16 bytes per NON-EMPTY queue
//
// An empty queue has no record: its index entry is 0. A record is taken when a queue gets
// its first byte and goes back to a LIFO free list when the queue empties (pop_front to
// zero, release), so records exist only for queues holding bytes; there are never more
// than chunks (each such queue holds at least one), so the record pool is reserved for
// that many at construction and never moves. The index and the record pool live in
// zero-page-backed mappings (ZeroPageArray): pages that were never written read as zero
// and are not resident, so a million idle connections cost the index pages of the ids that
// ever held a byte, and reserve_connections() can map the index for the largest id up
// front without paying for it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "stack/buffer/stores.h"
#include "stack/wire/bytes.h"

namespace xtcp {

// An anonymous private mapping (MAP_NORESERVE, no transparent huge pages) that reads as
// zero until written: only pages written to become resident. Growth keeps the contents
// and moves no bytes (mremap).
class ZeroPages {
 public:
  ZeroPages() = default;
  ~ZeroPages();
  ZeroPages(ZeroPages&& o) noexcept : data_(o.data_), size_(o.size_) {
    o.data_ = nullptr;
    o.size_ = 0;
  }
  ZeroPages& operator=(ZeroPages&& o) noexcept;
  ZeroPages(const ZeroPages&) = delete;
  ZeroPages& operator=(const ZeroPages&) = delete;

  std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }  // bytes mapped, whole pages
  // Maps at least n bytes in all (never shrinks); the new bytes read as zero. Throws
  // std::bad_alloc.
  void grow(std::size_t n);

  static std::size_t page_size();
  static std::size_t round_to_pages(std::size_t n) {
    const std::size_t p = page_size();
    return (n + p - 1) / p * p;
  }

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// A growable array of T over ZeroPages: every element reads as all-zero bytes until
// written, and growing keeps the elements where they are in the array (not in memory:
// references do not survive growth). Owners call note_written(i) when they first write a
// non-zero value at i, so resident_bytes() counts exactly the pages made resident.
template <class T>
class ZeroPageArray {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>);

 public:
  // Elements addressable without growing.
  std::size_t size() const { return size_; }
  T& operator[](std::size_t i) { return reinterpret_cast<T*>(pages_.data())[i]; }
  const T& operator[](std::size_t i) const { return reinterpret_cast<const T*>(pages_.data())[i]; }
  // Makes elements [0, n) addressable.
  void reserve(std::size_t n) {
    if (n > size_) {
      if (n > SIZE_MAX / sizeof(T)) {
        throw std::bad_alloc();
      }
      pages_.grow(n * sizeof(T));
      size_ = pages_.size() / sizeof(T);
      written_.resize((pages_.size() / ZeroPages::page_size() + 63) / 64);
    }
  }
  // Makes element i addressable, at least doubling the size when it grows.
  void ensure(std::size_t i) {
    if (i >= size_) {
      reserve(i + 1 > 2 * size_ ? i + 1 : 2 * size_);
    }
  }
  // Element i (addressable) is being written: its page is resident from now on.
  void note_written(std::size_t i) {
    const std::size_t page = i * sizeof(T) / ZeroPages::page_size();
    const std::uint64_t bit = std::uint64_t{1} << (page % 64);
    if ((written_[page / 64] & bit) == 0) {
      written_[page / 64] |= bit;
      ++written_pages_;
    }
  }
  // Pages written so far: what the mapping has made resident.
  std::size_t resident_bytes() const { return written_pages_ * ZeroPages::page_size(); }

 private:
  ZeroPages pages_;
  std::size_t size_ = 0;
  std::vector<std::uint64_t> written_;  // one bit per mapped page: written yet?
  std::size_t written_pages_ = 0;
};

class ChunkQueues {
 public:
  static constexpr std::uint32_t kNone = UINT32_MAX;

  // total_bytes is rounded down to whole chunks. Throws std::bad_alloc (the slab is one
  // allocation: its pages are touched only as chunks are first used) or
  // std::invalid_argument for a chunk size of 0 or more than 2^32 chunks.
  ChunkQueues(std::size_t total_bytes, std::size_t chunk_size);
  ChunkQueues(const ChunkQueues&) = delete;
  ChunkQueues& operator=(const ChunkQueues&) = delete;

  // Maps the per-connection index for ids [0, n) now, so the packet path never grows it for
  // those ids (larger ids still work: the index then grows, without copying). The mapping
  // costs no resident memory until ids are used. Throws std::bad_alloc.
  void reserve_connections(std::size_t n) { index_.reserve(n); }

  std::size_t chunk_size() const { return chunk_size_; }
  std::size_t capacity() const { return chunk_count_ * chunk_size_; }
  std::size_t free_chunks() const { return free_count_; }
  std::size_t free_chunk_bytes() const { return free_count_ * chunk_size_; }
  // Bytes queued for all connections, and for one.
  std::size_t used() const { return used_; }
  std::size_t bytes(ConnId conn) const {
    const Queue* q = find(conn);
    return q != nullptr ? q->size : 0;
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

  // Queues holding bytes now (each has a record), and records ever made: the record pool's
  // resident size in records, at most the most queues ever non-empty at once.
  std::size_t queues_in_use() const { return records_in_use_; }
  std::size_t queue_records() const { return records_made_; }
  // Per-connection index entries mapped (reserved or grown to), resident or not.
  std::size_t index_size() const { return index_.size(); }

  // The whole slab (one allocation of the configured size, resident as chunks are first
  // used), the chunk links, the index pages holding an id that ever held bytes, and the
  // record pages up to the most records ever in use at once. The index and record parts are
  // exactly what those mappings made resident; a reserved, unused index counts nothing.
  std::size_t memory_bytes() const;

 private:
  struct Queue {
    std::uint32_t head;      // first chunk; in a free record: the next free record or kNone
    std::uint32_t tail;      // last chunk
    std::uint32_t head_off;  // first live byte inside the head chunk
    std::uint32_t size;      // live bytes in the chain, never 0 in a record in use
  };
  static_assert(sizeof(Queue) == 16);

  const Queue* find(ConnId conn) const {
    if (conn >= index_.size()) {
      return nullptr;
    }
    const std::uint32_t r = index_[conn];
    return r == 0 ? nullptr : &records_[r - 1];
  }
  Queue* find(ConnId conn) { return const_cast<Queue*>(std::as_const(*this).find(conn)); }
  // Gives conn (which must be empty) a record; returns it.
  Queue& take_record(ConnId conn);
  // conn's queue is empty now: its record goes back to the free list.
  void drop_record(ConnId conn);

  std::uint32_t alloc_chunk();
  void free_chunk(std::uint32_t c);
  std::byte* chunk(std::uint32_t c) const { return slab_.get() + static_cast<std::size_t>(c) * chunk_size_; }

  std::size_t chunk_size_;
  std::size_t chunk_count_;
  std::unique_ptr<std::byte[]> slab_;
  std::vector<std::uint32_t> next_;  // per chunk: the next chunk of its queue or of the free list
  std::uint32_t free_head_ = kNone;
  std::size_t free_count_ = 0;
  std::size_t chunks_touched_ = 0;  // highest chunk ever handed out + 1
  std::size_t used_ = 0;

  ZeroPageArray<std::uint32_t> index_;  // per ConnId: 0 empty, else 1 + record
  ZeroPageArray<Queue> records_;        // reserved for chunk_count_ records, never grows
  std::uint32_t free_record_ = kNone;   // LIFO through Queue::head
  std::size_t records_made_ = 0;        // records [0, records_made_) were ever handed out
  std::size_t records_in_use_ = 0;
};

}  // namespace xtcp
