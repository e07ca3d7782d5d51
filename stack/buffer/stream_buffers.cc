// Byte rings per connection for the classic socket model (see stream_buffers.h).
#include "stack/buffer/stream_buffers.h"

#include <algorithm>
#include <cstring>

namespace xtcp {

std::size_t ByteRing::push(wire::ByteSpan in) {
  const std::size_t n = std::min(in.size(), free_space());
  const std::size_t tail = (head_ + size_) % cap_;
  const std::size_t first = std::min(n, cap_ - tail);
  std::memcpy(data_.get() + tail, in.data(), first);
  std::memcpy(data_.get(), in.data() + first, n - first);
  size_ += n;
  return n;
}

std::size_t ByteRing::peek(std::size_t offset, wire::MutableByteSpan out) const {
  if (offset >= size_) {
    return 0;
  }
  const std::size_t n = std::min(out.size(), size_ - offset);
  const std::size_t start = (head_ + offset) % cap_;
  const std::size_t first = std::min(n, cap_ - start);
  std::memcpy(out.data(), data_.get() + start, first);
  std::memcpy(out.data() + first, data_.get(), n - first);
  return n;
}

void ByteRing::pop(std::size_t n) {
  n = std::min(n, size_);
  head_ = (head_ + n) % cap_;
  size_ -= n;
}

StreamBuffers::Slot& StreamBuffers::slot(ConnId conn) {
  if (conn >= slots_.size()) {
    slots_.resize(std::max<std::size_t>(conn + 1, slots_.size() * 2));
  }
  return slots_[conn];
}

const StreamBuffers::Slot* StreamBuffers::find(ConnId conn) const {
  return conn < slots_.size() ? &slots_[conn] : nullptr;
}

ByteRing& StreamBuffers::ring(std::unique_ptr<ByteRing>& r, std::size_t cap) {
  if (!r) {
    r = std::make_unique<ByteRing>(cap);
    allocated_ += cap;
  }
  return *r;
}

void StreamBuffers::drop(ConnId conn, bool rx) {
  if (conn >= slots_.size()) {
    return;
  }
  std::unique_ptr<ByteRing>& ring = rx ? slots_[conn].rx : slots_[conn].tx;
  if (ring) {
    allocated_ -= ring->capacity();
    ring.reset();
  }
}

std::size_t StreamBuffers::read(ConnId conn, wire::MutableByteSpan out) {
  const Slot* s = find(conn);
  if (s == nullptr || !s->rx) {
    return 0;
  }
  const std::size_t n = s->rx->peek(0, out);
  s->rx->pop(n);
  return n;
}

std::size_t StreamBuffers::readable(ConnId conn) const {
  const Slot* s = find(conn);
  return s != nullptr && s->rx ? s->rx->size() : 0;
}

std::size_t StreamBuffers::tx_queued(ConnId conn) const {
  const Slot* s = find(conn);
  return s != nullptr && s->tx ? s->tx->size() : 0;
}

std::size_t StreamBuffers::RxView::append(ConnId conn, wire::ByteSpan data) {
  if (data.empty()) {
    return 0;
  }
  return b_.ring(b_.slot(conn).rx, b_.rx_cap_).push(data);
}

std::size_t StreamBuffers::RxView::free_space(ConnId conn) const {
  const Slot* s = b_.find(conn);
  return s != nullptr && s->rx ? s->rx->free_space() : b_.rx_cap_;
}

std::size_t StreamBuffers::TxView::append(ConnId conn, wire::ByteSpan data) {
  if (data.empty()) {
    return 0;
  }
  return b_.ring(b_.slot(conn).tx, b_.tx_cap_).push(data);
}

std::size_t StreamBuffers::TxView::free_space(ConnId conn) const {
  const Slot* s = b_.find(conn);
  return s != nullptr && s->tx ? s->tx->free_space() : b_.tx_cap_;
}

std::size_t StreamBuffers::TxView::copy(ConnId conn, std::size_t offset,
                                        wire::MutableByteSpan dst) const {
  const Slot* s = b_.find(conn);
  return s != nullptr && s->tx ? s->tx->peek(offset, dst) : 0;
}

void StreamBuffers::TxView::consume(ConnId conn, std::size_t n) {
  if (conn < b_.slots_.size() && b_.slots_[conn].tx) {
    b_.slots_[conn].tx->pop(n);
  }
}

}  // namespace xtcp
