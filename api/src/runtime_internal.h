// Internal to the API library: the definitions of the Runtime's nested types and the
// constants shared by runtime.cc (pools, groups, driving) and runtime_conn.cc (events,
// readiness, recv/send). Not installed.
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>

#include "api/src/runtime.h"
#include "stack/netif/pcap_tap.h"
#include "stack/netif/shm_link.h"
#include "stack/netif/tun_link.h"
#include "stack/netif/uring_tun_link.h"

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
  kInFifo = 128,      // has an entry in the group's ready FIFO (perhaps no longer queued)
};

// A ready FIFO entry: the slot and the generation it was pushed under.
inline std::uint32_t ready_entry(std::uint32_t slot, std::uint8_t gen) {
  return slot | (static_cast<std::uint32_t>(gen) << 24);
}

inline std::uint32_t load_be(const std::byte* p, std::size_t n) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  }
  return v;
}

// The errno a connection ended with, in the byte of its hot record (the ones used are < 256).
inline std::uint8_t error_byte(int e) { return static_cast<std::uint8_t>(e >= 0 && e < 256 ? e : EIO); }

inline std::size_t header_len(int framing) { return framing == XTCP_FRAME_U16BE ? 2 : 4; }

}  // namespace internal

struct Runtime::Owned {
  SteadyClock clock;
  std::unique_ptr<TunLink> tun;
  std::unique_ptr<UringTunLink> uring;  // instead of tun for XTCP_IO_URING
  std::unique_ptr<ShmLink> shm;  // instead of tun when LinkSetup::shm_name is set
  std::unique_ptr<PcapTap> tap;  // on top of whichever device; forwards flush()
  Link& device() {
    if (shm) {
      return *shm;
    }
    if (uring) {
      return *uring;
    }
    return *tun;
  }
  Link& link() { return tap ? static_cast<Link&>(*tap) : device(); }
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
  // Connections with something for xtcp_recv, served round-robin: ready_entry()s in the
  // order they became ready; ready_count of them are queued (kQueued), the rest are skipped.
  std::deque<std::uint32_t> ready;
  std::uint32_t ready_count = 0;
  std::deque<Pending> pending;  // accepted by the engine, waiting for xtcp_accept (FIFO)
  std::deque<WriteWaiter> writable;  // woken after a refused send, for xtcp_writable (FIFO)
  bool fd_exported = false;     // the application has the eventfd (xtcp_group_fd)
  // The application asks for writable connections (it called xtcp_writable): only then
  // do they make the group ready, or a program that never asks would be woken for ever.
  bool writable_events = false;
  std::size_t pending_live = 0;
  std::uint64_t connections = 0;
};

}  // namespace xtcp::api
