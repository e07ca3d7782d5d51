// Per-connection FIFOs of fixed-size chunks over one slab (see chunk_queues.h). Chunks are
// linked through next_; the free list is LIFO so recently used (cache-warm) chunks go first.
// Queue records are recycled the same way, so the record pages in use stay the first ones.
#include "stack/buffer/chunk_queues.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <stdexcept>

namespace xtcp {

ZeroPages::~ZeroPages() {
  if (data_ != nullptr) {
    ::munmap(data_, size_);
  }
}

ZeroPages& ZeroPages::operator=(ZeroPages&& o) noexcept {
  if (this != &o) {
    if (data_ != nullptr) {
      ::munmap(data_, size_);
    }
    data_ = o.data_;
    size_ = o.size_;
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

std::size_t ZeroPages::page_size() {
  static const std::size_t size = [] {
    const long p = ::sysconf(_SC_PAGESIZE);
    return p > 0 ? static_cast<std::size_t>(p) : std::size_t{4096};
  }();
  return size;
}

void ZeroPages::grow(std::size_t n) {
  if (n <= size_) {
    return;
  }
  if (n > SIZE_MAX - page_size()) {
    throw std::bad_alloc();
  }
  const std::size_t bytes = round_to_pages(n);
  // MAP_NORESERVE: reserving for a million connection ids commits nothing. A grown mapping
  // keeps its pages (the page tables move, the bytes do not) and its new part reads as zero.
  void* p = data_ == nullptr
                ? ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
                : ::mremap(data_, size_, bytes, MREMAP_MAYMOVE);
  if (p == MAP_FAILED) {
    throw std::bad_alloc();
  }
  // Small pages only: one written entry must not make a 2 MiB huge page resident. Advice
  // only: where it is refused, memory is still correct.
  ::madvise(p, bytes, MADV_NOHUGEPAGE);
  data_ = static_cast<std::byte*>(p);
  size_ = bytes;
}

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
  // A queue holding bytes holds a chunk: never more records than chunks. Address space
  // only; pages become resident as records are first used.
  records_.reserve(chunk_count_);
}

std::uint32_t ChunkQueues::alloc_chunk() {
  const std::uint32_t c = free_head_;
  free_head_ = next_[c];
  next_[c] = kNone;
  --free_count_;
  chunks_touched_ = std::max<std::size_t>(chunks_touched_, static_cast<std::size_t>(c) + 1);
  return c;
}

void ChunkQueues::free_chunk(std::uint32_t c) {
  next_[c] = free_head_;
  free_head_ = c;
  ++free_count_;
}

ChunkQueues::Queue& ChunkQueues::take_record(ConnId conn) {
  index_.ensure(conn);
  std::uint32_t r;
  if (free_record_ != kNone) {
    r = free_record_;
    free_record_ = records_[r].head;
  } else {
    r = static_cast<std::uint32_t>(records_made_++);
  }
  ++records_in_use_;
  index_.note_written(conn);
  index_[conn] = r + 1;
  Queue& q = records_[r];
  q = Queue{kNone, kNone, 0, 0};
  return q;
}

void ChunkQueues::drop_record(ConnId conn) {
  const std::uint32_t r = index_[conn] - 1;
  records_[r].head = free_record_;
  free_record_ = r;
  index_[conn] = 0;
  --records_in_use_;
}

std::size_t ChunkQueues::tail_room(ConnId conn) const {
  const Queue* q = find(conn);
  if (q == nullptr) {
    return 0;
  }
  // Every chunk but the head is filled from its start, so the tail's fill follows from the
  // head offset and the size alone.
  const std::size_t in_tail = (static_cast<std::size_t>(q->head_off) + q->size - 1) % chunk_size_ + 1;
  return chunk_size_ - in_tail;
}

std::size_t ChunkQueues::append(ConnId conn, wire::ByteSpan data, std::size_t limit) {
  std::size_t n = std::min({data.size(), limit, appendable(conn)});
  if (n == 0) {
    return 0;
  }
  Queue* qp = find(conn);
  std::size_t room = 0;  // free bytes in the tail chunk
  if (qp == nullptr) {
    qp = &take_record(conn);
    qp->head = qp->tail = alloc_chunk();
    room = chunk_size_;
  } else {
    room = chunk_size_ - ((static_cast<std::size_t>(qp->head_off) + qp->size - 1) % chunk_size_ + 1);
  }
  Queue& q = *qp;
  // A queue's size is a u32: beyond that the caller must pop first.
  n = std::min<std::size_t>(n, UINT32_MAX - q.size);
  std::size_t done = 0;
  while (done < n) {
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
    room -= k;
    q.size += static_cast<std::uint32_t>(k);
  }
  used_ += n;
  return n;
}

std::size_t ChunkQueues::peek(ConnId conn, std::size_t offset, wire::MutableByteSpan dst) const {
  const Queue* q = find(conn);
  if (q == nullptr || offset >= q->size) {
    return 0;
  }
  const std::size_t n = std::min(dst.size(), q->size - offset);
  std::size_t pos = q->head_off + offset;
  std::uint32_t c = q->head;
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
  Queue* qp = find(conn);
  if (qp == nullptr) {
    return 0;
  }
  Queue& q = *qp;
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
  const Queue* q = find(conn);
  if (q == nullptr) {
    return;
  }
  const std::size_t chunks = (static_cast<std::size_t>(q->head_off) + q->size + chunk_size_ - 1) / chunk_size_;
  next_[q->tail] = free_head_;
  free_head_ = q->head;
  free_count_ += chunks;
  used_ -= q->size;
  drop_record(conn);
}

std::size_t ChunkQueues::memory_bytes() const {
  // The slab is counted as far as chunks were ever used: its pages become resident only then
  // (the free list hands chunks out lowest first), so the count agrees with the RSS.
  return chunks_touched_ * chunk_size_ + next_.capacity() * sizeof(std::uint32_t) +
         index_.resident_bytes() +
         ZeroPages::round_to_pages(records_made_ * sizeof(Queue));
}

}  // namespace xtcp
