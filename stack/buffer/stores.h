// Where connection bytes live. The TCP engine keeps no buffers of its own: in-order received
// bytes are handed to an RxStore, and unacknowledged outgoing bytes are read back from a
// TxStore when (re)transmitting. StreamBuffers implements both per connection (classic
// sockets); the XTCP API implements them over shared pools.
//
//   peer --segment--> TcpLayer --append()--> RxStore --(app reads)--> application
//   application --TcpLayer::send()--> TxStore.append(); TcpLayer --copy()--> segment --> peer
//   peer ACK --> TcpLayer --consume(acked)--> TxStore drops the acknowledged prefix
#pragma once

#include <cstddef>
#include <cstdint>

#include "stack/wire/bytes.h"

namespace xtcp {

// Index of a connection's control block; stable for the connection's life.
using ConnId = std::uint32_t;
inline constexpr ConnId kNoConn = UINT32_MAX;

class RxStore {
 public:
  virtual ~RxStore() = default;
  // Stores in-order bytes for conn. Returns how many were taken (less when full).
  virtual std::size_t append(ConnId conn, wire::ByteSpan data) = 0;
  // Bytes conn may still receive: what the advertised window is computed from.
  virtual std::size_t free_space(ConnId conn) const = 0;
  // How far beyond the next expected byte conn's window may reach now, given that
  // `promised` bytes beyond it were already advertised (a promise is never taken back, so
  // the answer is at least `promised`). Stores shared by many connections answer with a
  // share they can honour; a private buffer simply has free_space().
  virtual std::size_t offer(ConnId conn, std::size_t promised) const {
    return promised > free_space(conn) ? promised : free_space(conn);
  }
  // conn's outstanding promise (advertised right edge minus next expected byte) went from
  // `before` to `after`: a window was advertised, bytes arrived, or the connection ended
  // (after 0). Shared stores keep the promised space committed.
  virtual void promised(ConnId /*conn*/, std::size_t /*before*/, std::size_t /*after*/) {}
  // The engine advertises window 0 to conn (the store had no room for it): a shared store
  // remembers it, to have it told when room frees up.
  virtual void window_closed(ConnId /*conn*/) {}
  // The window of conn's SYN or SYN-ACK. A shared store starts small; windows grow with use.
  virtual std::size_t initial_window(ConnId conn) const { return offer(conn, 0); }
  // Largest free_space conn can ever have; used for window-scale choice and SWS avoidance.
  virtual std::size_t capacity(ConnId conn) const = 0;
  // Received bytes the store still keeps for conn (not yet taken by the application).
  // With application-controlled ACKs the engine acknowledges only what is no longer held.
  virtual std::size_t held(ConnId conn) const = 0;
  // The connection is gone: drop whatever it had.
  virtual void release(ConnId conn) = 0;
};

class TxStore {
 public:
  virtual ~TxStore() = default;
  // Queues bytes for conn after those already queued. Returns how many were taken.
  virtual std::size_t append(ConnId conn, wire::ByteSpan data) = 0;
  virtual std::size_t free_space(ConnId conn) const = 0;
  // Copies up to dst.size() bytes starting offset bytes after the oldest unacknowledged byte.
  virtual std::size_t copy(ConnId conn, std::size_t offset, wire::MutableByteSpan dst) const = 0;
  // The peer acknowledged the oldest n bytes: they may be dropped.
  virtual void consume(ConnId conn, std::size_t n) = 0;
  virtual void release(ConnId conn) = 0;
};

}  // namespace xtcp
