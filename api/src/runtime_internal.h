// Internal to the API library: the definitions of the Runtime's nested types and the
// constants shared by runtime.cc (pools, groups, driving) and runtime_conn.cc (events,
// readiness, recv/send). Not installed.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>

#include "api/src/runtime.h"
#include "stack/netif/pcap_tap.h"
#include "stack/netif/tun_link.h"

namespace xtcp::api {
namespace internal {

inline constexpr std::uint32_t kNil = UINT32_MAX;
inline constexpr std::uint32_t kMaxSlots = (1u << 24) - 2;  // cd = gen(7 bits) << 24 | slot + 1

enum ConnState : std::uint8_t { kFree = 0, kPending = 1, kOpen = 2 };
enum ConnFlag : std::uint8_t {
  kQueued = 1,        // in the group's ready list
  kPeerFin = 2,       // the client sent FIN
  kEnded = 4,         // the engine connection finished (error says how)
  kEndReported = 8,   // xtcp_recv has reported the end; only xtcp_close is left
  kConnecting = 16,   // active open not yet established
  kWantWrite = 32,    // a send was refused; woken when the cache has room (write_want_)
  kInWriteFifo = 64,  // waits in write_fifo_
};

inline std::uint32_t load_be(const std::byte* p, std::size_t n) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  }
  return v;
}

inline std::size_t header_len(int framing) { return framing == XTCP_FRAME_U16BE ? 2 : 4; }

}  // namespace internal

struct Runtime::Owned {
  SteadyClock clock;
  std::unique_ptr<TunLink> tun;
  std::unique_ptr<PcapTap> tap;
  Link& link() { return tap ? static_cast<Link&>(*tap) : static_cast<Link&>(*tun); }
};

struct Runtime::Pool {
  int id = 0;
  int slot = -1;  // in the PoolRxDispatch
  std::unique_ptr<SharedRxPool> rx;
  std::uint64_t groups = 0;
  std::uint64_t connections = 0;
  std::uint64_t acks_on_answers = 0;
  std::uint64_t acks_alone = 0;
  std::uint64_t accept_timeouts = 0;
};

struct Runtime::Group {
  int gd = 0;
  int pool = 0;
  std::uint16_t port = 0;
  int efd = -1;
  bool signaled = false;  // efd's counter is non-zero
  GroupOptions opts;
  std::uint32_t ready_head = internal::kNil;
  std::uint32_t ready_tail = internal::kNil;
  std::deque<Pending> pending;  // accepted by the engine, waiting for xtcp_accept (FIFO)
  std::deque<WriteWaiter> writable;  // woken after a refused send, for xtcp_writable (FIFO)
  bool fd_exported = false;     // the application has the eventfd (xtcp_group_fd)
  // The application asks for writable connections (it called xtcp_writable): only then
  // do they make the group ready, or a program that never asks would be woken for ever.
  bool writable_events = false;
  std::size_t pending_live = 0;
  std::uint64_t connections = 0;
};

// 56 bytes per connection on top of the engine's control block.
struct Runtime::Conn {
  std::uint64_t user_data = 0;
  ConnId conn = kNoConn;  // engine connection; kNoConn once the engine side is gone
  std::uint16_t gd = 0;   // 0: free slot
  std::uint8_t gen = 0;
  std::uint8_t state = internal::kFree;
  std::uint8_t flags = 0;
  std::uint8_t framing = XTCP_FRAME_NONE;
  std::uint8_t delimiter = '\n';
  std::int16_t error = 0;
  std::uint16_t remote_port = 0;  // host order
  std::uint32_t remote_addr = 0;  // host order
  std::uint32_t delivered = 0;    // bytes the last xtcp_recv returned, not yet acknowledged
  std::uint32_t seen = 0;         // unacknowledged bytes the application has been shown
  std::uint32_t frames_end = 0;   // framing: end of the last complete message found
  std::uint32_t scan_pos = 0;     // delimiter framing: bytes searched so far
  std::uint32_t max_message = 0;
  std::uint32_t prev = internal::kNil;      // ready list
  std::uint32_t next = internal::kNil;
};

}  // namespace xtcp::api
