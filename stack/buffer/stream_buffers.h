// Per-connection byte rings behind the RxStore and TxStore interfaces: the classic socket
// model, used by the plain echo server and by tests. A ring is allocated on a connection's
// first byte and freed on release, so idle connections cost only an empty slot.
#pragma once

#include <memory>
#include <vector>

#include "stack/buffer/stores.h"

namespace xtcp {

class ByteRing {
 public:
  explicit ByteRing(std::size_t capacity) : data_(new std::byte[capacity]), cap_(capacity) {}
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return cap_; }
  std::size_t free_space() const { return cap_ - size_; }
  std::size_t push(wire::ByteSpan in);
  std::size_t peek(std::size_t offset, wire::MutableByteSpan out) const;
  void pop(std::size_t n);

 private:
  std::unique_ptr<std::byte[]> data_;
  std::size_t cap_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

class StreamBuffers {
 public:
  StreamBuffers(std::size_t rx_capacity, std::size_t tx_capacity)
      : rx_cap_(rx_capacity), tx_cap_(tx_capacity) {}

  RxStore& rx() { return rx_view_; }
  TxStore& tx() { return tx_view_; }

  // Application side: take received bytes out (frees receive window).
  std::size_t read(ConnId conn, wire::MutableByteSpan out);
  std::size_t readable(ConnId conn) const;
  // Bytes queued for sending that the peer has not acknowledged yet.
  std::size_t tx_queued(ConnId conn) const;
  std::size_t memory_bytes() const { return allocated_; }

 private:
  struct Slot {
    std::unique_ptr<ByteRing> rx;
    std::unique_ptr<ByteRing> tx;
  };
  class RxView final : public RxStore {
   public:
    explicit RxView(StreamBuffers& b) : b_(b) {}
    std::size_t append(ConnId conn, wire::ByteSpan data) override;
    std::size_t free_space(ConnId conn) const override;
    std::size_t capacity(ConnId) const override { return b_.rx_cap_; }
    std::size_t held(ConnId conn) const override { return b_.readable(conn); }
    void release(ConnId conn) override { b_.drop(conn, /*rx=*/true); }

   private:
    StreamBuffers& b_;
  };
  class TxView final : public TxStore {
   public:
    explicit TxView(StreamBuffers& b) : b_(b) {}
    std::size_t append(ConnId conn, wire::ByteSpan data) override;
    std::size_t free_space(ConnId conn) const override;
    std::size_t copy(ConnId conn, std::size_t offset, wire::MutableByteSpan dst) const override;
    void consume(ConnId conn, std::size_t n) override;
    void release(ConnId conn) override { b_.drop(conn, /*rx=*/false); }

   private:
    StreamBuffers& b_;
  };

  Slot& slot(ConnId conn);
  const Slot* find(ConnId conn) const;
  ByteRing& ring(std::unique_ptr<ByteRing>& r, std::size_t cap);
  void drop(ConnId conn, bool rx);

  std::size_t rx_cap_;
  std::size_t tx_cap_;
  std::size_t allocated_ = 0;
  std::vector<Slot> slots_;
  RxView rx_view_{*this};
  TxView tx_view_{*this};
};

}  // namespace xtcp
