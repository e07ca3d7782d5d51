// The XTCP runtime (see runtime.h), part 2: connections. Engine events feed each group's
// ready list; recv/send keep the ackd bookkeeping.
//
// A connection's received bytes stay in its pool from arrival until the application names
// them in ackd. xtcp_recv always delivers from the oldest unacknowledged byte; `seen` counts
// how many of those the application has already been shown, so a connection is offered again
// only when it has something new (more bytes, a complete message, its end) or after an ackd
// that left bytes behind: an application that acknowledges nothing is never spun on.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "api/src/errors.h"
#include "api/src/runtime_internal.h"

namespace xtcp::api {

using internal::header_len;
using internal::kConnecting;
using internal::kEnded;
using internal::kEndReported;
using internal::kFree;
using internal::kInFifo;
using internal::kMaxSlots;
using internal::kNil;
using internal::kOpen;
using internal::kPeerFin;
using internal::kPending;
using internal::kQueued;
using internal::load_be;

// ---- readiness ---------------------------------------------------------------------------
//
// Each group's ready list is a FIFO of slots, not links in the connection records: a
// connection becomes ready at the back (kQueued, counted in ready_count, and an entry unless
// it still has one: kInFifo), xtcp_recv serves the front. Taking a connection off the list
// (no more news, closed) only clears kQueued; its entry stays and is skipped when popped, or
// dropped by ready_compact once such entries outnumber the queued ones. An entry carries the
// generation it was pushed under, so one left by a closed connection never names the next
// connection of its slot.

// The descriptor is readable exactly while the group is ready. The runtime writes the
// eventfd when the group becomes ready and reads it (resetting the counter) when it is
// drained. Once the application has the descriptor it may read the counter itself, as
// eventfd users do; the runtime cannot see that, so for such a group every call that
// leaves it ready writes again (one cheap syscall; level- and edge-triggered epoll both
// see the descriptor readable after any xtcp call).
void Runtime::sync_fd(Group& g) {
  const bool want = group_ready(g);
  std::uint64_t v = 1;
  if (want) {
    if (!g.signaled || g.fd_exported) {
      const ssize_t r = ::write(g.efd, &v, sizeof v);
      (void)r;
      g.signaled = true;
    }
  } else if (g.signaled) {
    const ssize_t r = ::read(g.efd, &v, sizeof v);
    (void)r;
    g.signaled = false;
  }
}

void Runtime::ready_push(Group& g, std::uint32_t slot) {
  Conn& c = conns_[slot];
  c.flags |= kQueued;
  ++g.ready_count;
  if ((c.flags & kInFifo) == 0) {
    c.flags |= kInFifo;
    g.ready.push_back(internal::ready_entry(slot, c.gen));
  }
}

void Runtime::ready_unlink(Group& g, std::uint32_t slot) {
  Conn& c = conns_[slot];
  if ((c.flags & kQueued) == 0) {
    return;
  }
  c.flags &= static_cast<std::uint8_t>(~kQueued);
  --g.ready_count;
  ready_compact(g);
}

bool Runtime::ready_current(const Group& g, std::uint32_t entry) const {
  const Conn& c = conns_[entry & 0xFFFFFF];
  return c.gen == (entry >> 24) && c.state == kOpen && c.gd == g.gd && (c.flags & kInFifo) != 0;
}

std::uint32_t Runtime::ready_front(Group& g) {
  while (!g.ready.empty()) {
    const std::uint32_t e = g.ready.front();
    const std::uint32_t slot = e & 0xFFFFFF;
    if (ready_current(g, e)) {
      if ((conns_[slot].flags & kQueued) != 0) {
        return slot;
      }
      conns_[slot].flags &= static_cast<std::uint8_t>(~kInFifo);  // taken off the list meanwhile
    }
    g.ready.pop_front();  // left by a closed connection, or no longer queued
  }
  return kNil;
}

void Runtime::ready_take_front(Group& g) {
  Conn& c = conns_[g.ready.front() & 0xFFFFFF];
  g.ready.pop_front();
  c.flags &= static_cast<std::uint8_t>(~(kInFifo | kQueued));
  --g.ready_count;
}

void Runtime::ready_compact(Group& g) {
  if (g.ready.size() < 64 || g.ready.size() <= 2 * static_cast<std::size_t>(g.ready_count)) {
    return;
  }
  // Keeps the entry of each queued connection, in order; a connection that has an entry but
  // is not queued loses it (and will get a new one at the back when it is ready again).
  std::size_t kept = 0;
  for (const std::uint32_t e : g.ready) {
    if (!ready_current(g, e)) {
      continue;  // left by a closed connection (or a duplicate: see below)
    }
    Conn& c = conns_[e & 0xFFFFFF];
    c.flags &= static_cast<std::uint8_t>(~kInFifo);  // set again below for the kept ones
    if ((c.flags & kQueued) != 0) {
      g.ready[kept++] = e;
    }
  }
  g.ready.resize(kept);
  for (const std::uint32_t e : g.ready) {
    conns_[e & 0xFFFFFF].flags |= kInFifo;
  }
}

bool Runtime::scan_frames(Conn& c) {
  const std::size_t held = rx_.held(c.conn);
  const SharedRxPool* pool = rx_.pool(rx_.slot_of(c.conn));
  if (pool == nullptr) {
    return true;
  }
  const Group* g = group(c.gd);
  const auto max_message = static_cast<std::uint32_t>(g != nullptr ? g->opts.max_message : INT32_MAX);
  const Cold* k = cold_if(c);
  std::uint32_t frames_end = k != nullptr ? k->frames_end : 0;
  std::uint32_t scan_pos = k != nullptr ? k->scan_pos : 0;
  // Works on copies; a connection gets a cold record only when they move.
  auto store = [&](bool ok) {
    if (frames_end != (k != nullptr ? k->frames_end : 0) || scan_pos != (k != nullptr ? k->scan_pos : 0)) {
      Cold& w = cold_of(c);
      w.frames_end = frames_end;
      w.scan_pos = scan_pos;
    }
    return ok;
  };
  if (c.framing == XTCP_FRAME_DELIMITER) {
    std::byte tmp[512];
    const auto delim = static_cast<std::byte>(c.delimiter);
    while (scan_pos < held) {
      const std::size_t n =
          pool->peek(c.conn, scan_pos, wire::MutableByteSpan(tmp, std::min(sizeof tmp, held - scan_pos)));
      const std::byte* hit = std::find(tmp, tmp + n, delim);
      if (hit == tmp + n) {
        scan_pos += static_cast<std::uint32_t>(n);
        continue;
      }
      const auto end = static_cast<std::uint32_t>(scan_pos + (hit - tmp) + 1);
      if (end - frames_end > max_message) {
        return store(false);
      }
      frames_end = scan_pos = end;
    }
    return store(held - frames_end <= max_message);  // a partial message already too long
  }
  const std::size_t hdr = header_len(c.framing);
  while (held - frames_end >= hdr) {
    std::byte h[4];
    pool->peek(c.conn, frames_end, wire::MutableByteSpan(h, hdr));
    const std::uint64_t total = hdr + static_cast<std::uint64_t>(load_be(h, hdr));
    if (total > max_message) {
      return store(false);
    }
    if (frames_end + total > held) {
      break;
    }
    frames_end += static_cast<std::uint32_t>(total);
  }
  return store(true);
}

// The largest message boundary within the first n bytes of the stream (copied to data).
std::size_t Runtime::frame_cut(const Conn& c, std::uint32_t frames_end, const std::byte* data,
                               std::size_t n) const {
  if (n >= frames_end) {
    return frames_end;
  }
  if (c.framing == XTCP_FRAME_DELIMITER) {
    const auto delim = static_cast<std::byte>(c.delimiter);
    for (std::size_t i = n; i > 0; --i) {
      if (data[i - 1] == delim) {
        return i;
      }
    }
    return 0;
  }
  const std::size_t hdr = header_len(c.framing);
  std::size_t off = 0;
  while (off + hdr <= n) {
    const std::size_t total = hdr + load_be(data + off, hdr);
    if (off + total > n) {
      break;
    }
    off += total;
  }
  return off;
}

bool Runtime::at_boundary(const Conn& c, std::size_t ackd) const {
  if (c.framing == XTCP_FRAME_NONE || ackd == 0 || c.conn == kNoConn) {
    return true;
  }
  const SharedRxPool* pool = rx_.pool(rx_.slot_of(c.conn));
  if (pool == nullptr) {
    return true;
  }
  if (c.framing == XTCP_FRAME_DELIMITER) {
    std::byte b{};
    pool->peek(c.conn, ackd - 1, wire::MutableByteSpan(&b, 1));
    return b == static_cast<std::byte>(c.delimiter);
  }
  const std::size_t hdr = header_len(c.framing);
  std::size_t off = 0;
  while (off < ackd) {
    std::byte h[4];
    if (pool->peek(c.conn, off, wire::MutableByteSpan(h, hdr)) != hdr) {
      return false;
    }
    off += hdr + load_be(h, hdr);
  }
  return off == ackd;
}

void Runtime::kill(Conn& c, int error) {
  if (c.conn != kNoConn) {
    // The address outlives the engine side (xtcp_pars, xtcp_connection_info).
    std::uint32_t addr = 0;
    std::uint16_t port = 0;
    remote_of(c, &addr, &port);
    Cold& k = cold_of(c);
    k.remote_addr = addr;
    k.remote_port = port;
    k.gone = true;
    engine_to_slot_.clear(c.conn);
    stack_->tcp().abort(c.conn);  // RST; the engine frees the connection and its bytes
    c.conn = kNoConn;
  }
  c.flags |= kEnded;
  c.error = internal::error_byte(error);
}

bool Runtime::has_news(std::uint32_t slot) {
  Conn& c = conns_[slot];
  if ((c.flags & kEndReported) != 0) {
    return false;
  }
  if ((c.flags & kEnded) != 0 && c.error != 0) {
    return true;  // a reset or timed-out connection is reported before its data
  }
  if (c.conn != kNoConn) {
    std::size_t avail;
    if (c.framing == XTCP_FRAME_NONE) {
      avail = rx_.held(c.conn);
    } else {
      if (!scan_frames(c)) {
        kill(c, EPROTO);  // a message larger than XTCP_OPT_MAX_MESSAGE
        return true;
      }
      const Cold* k = cold_if(c);
      avail = k != nullptr ? k->frames_end : 0;
      if (rx_.held(c.conn) > avail) {
        stack_->tcp().grow_window(c.conn);  // a message still coming must find room
      }
    }
    const Cold* k = cold_if(c);
    if (avail > (k != nullptr ? k->seen : 0)) {
      return true;
    }
    if (avail > 0 && (c.flags & internal::kWantWrite) != 0) {
      // Bytes shown but refused an answer wait for room and will be offered again: the
      // client's end comes after them, or they could never be answered.
      return false;
    }
  }
  return (c.flags & (kPeerFin | kEnded)) != 0;
}

void Runtime::refresh(std::uint32_t slot) {
  Conn& c = conns_[slot];
  if (c.state != kOpen) {
    return;
  }
  Group* g = group(c.gd);
  if (g == nullptr) {
    return;
  }
  const bool want = has_news(slot);
  if (want && (c.flags & kQueued) == 0) {
    ready_push(*g, slot);
  } else if (!want) {
    ready_unlink(*g, slot);
  }
  sync_fd(*g);
}

// ---- engine events -----------------------------------------------------------------------

void Runtime::process_events() {
  TcpLayer& tcp = stack_->tcp();
  // Handling an event can queue more (accept() reports data that came before it).
  for (int round = 0; round < 8 && tcp.has_events(); ++round) {
    tcp.poll_events([this](const TcpEvent& e) { on_event(e); });
  }
}

void Runtime::on_event(const TcpEvent& e) {
  if (e.type == TcpEventType::kAcceptable) {
    take_accepted(e.port);
    return;
  }
  const std::uint32_t slot = engine_to_slot_.slot(e.conn);
  if (slot == EngineIndex::kNone) {
    return;  // a connection the application closed, or one we never took
  }
  Conn& c = conns_[slot];
  switch (e.type) {
    case TcpEventType::kConnected: {
      c.flags &= static_cast<std::uint8_t>(~kConnecting);
      // An active open that completed becomes writable once, for groups that ask.
      Group* g = group(c.gd);
      if (g != nullptr && g->writable_events && c.state == kOpen) {
        g->writable.push_back(WriteWaiter{slot, c.gen});
        sync_fd(*g);
      }
      return;
    }
    case TcpEventType::kWritable:
      if ((c.flags & internal::kWantWrite) != 0) {
        try_wake(slot);
      }
      return;
    case TcpEventType::kReadable:
      break;
    case TcpEventType::kPeerClosed:
      c.flags |= kPeerFin;
      break;
    case TcpEventType::kClosed:
      c.flags |= kEnded;
      c.error = internal::error_byte(e.error);
      if (c.state == kPending) {
        // Died before the application accepted it: nobody will ever see it.
        Group* g = group(c.gd);
        engine_to_slot_.clear(c.conn);
        stack_->tcp().close(c.conn);
        if (g != nullptr) {
          --g->pending_live;
          if (Pool* p = pool_of(g->pool)) {
            --p->connections;
          }
        }
        free_slot(slot);
        if (g != nullptr) {
          sync_fd(*g);
        }
        return;
      }
      break;
    default:
      return;
  }
  refresh(slot);
}

// The runtime takes every established connection out of the engine's accept queue at once
// and keeps its own FIFO per group, so it can refuse exactly the ones not accepted in time.
void Runtime::take_accepted(std::uint16_t port) {
  TcpLayer& tcp = stack_->tcp();
  const std::uint16_t gd = port_gd_[port];
  Group* g = group(gd);
  Pool* p = g != nullptr ? pool_of(g->pool) : nullptr;
  const TimeNs now = clock_.now();
  for (std::uint32_t guard = 0; guard <= tcp.config().accept_backlog + 1024u; ++guard) {
    const std::int64_t r = tcp.accept(port);
    if (r < 0) {
      break;
    }
    const auto id = static_cast<ConnId>(r);
    std::uint32_t slot = kNil;
    if (g != nullptr && p != nullptr && g->pending_live < tcp.config().accept_backlog) {
      slot = alloc_slot();
    }
    if (slot != kNil) {
      ++live_conns_;
      if (!engine_to_slot_.set(id, slot)) {
        free_slot(slot);  // an id beyond the engine's max_connections: cannot happen
        slot = kNil;
      }
    }
    if (slot == kNil) {
      tcp.abort(id);  // backlog full or no slot: refuse (RST)
      continue;
    }
    Conn& c = conns_[slot];
    c.conn = id;
    c.gd = static_cast<std::uint16_t>(gd);
    c.state = kPending;
    ++p->connections;
    const TimeNs deadline =
        g->opts.accept_timeout_ms > 0 ? now + ms(g->opts.accept_timeout_ms) : kNever;
    g->pending.push_back(Pending{slot, c.gen, deadline});
    ++g->pending_live;
  }
  if (g != nullptr) {
    sync_fd(*g);
  }
}

void Runtime::sweep_accept_timeouts(TimeNs now) {
  for (auto& gp : groups_) {
    if (!gp) {
      continue;
    }
    Group& g = *gp;
    bool changed = false;
    while (!g.pending.empty()) {
      const Pending p = g.pending.front();
      Conn& c = conns_[p.slot];
      if (c.gen != p.gen || c.state != kPending || c.gd != g.gd) {
        g.pending.pop_front();  // accepted or died meanwhile
        continue;
      }
      if (p.deadline > now) {
        break;
      }
      // A connection request not accepted in time is refused.
      g.pending.pop_front();
      engine_to_slot_.clear(c.conn);
      stack_->tcp().abort(c.conn);
      --g.pending_live;
      if (Pool* pool = pool_of(g.pool)) {
        ++pool->accept_timeouts;
        --pool->connections;
      }
      free_slot(p.slot);
      changed = true;
    }
    if (changed) {
      sync_fd(g);
    }
  }
}

// ---- the calls ---------------------------------------------------------------------------

int Runtime::accept(int pool, int gd) {
  Group* g = group(gd);
  if (g == nullptr || (pool != 0 && g->pool != pool)) {
    return -EBADF;
  }
  process_events();
  while (!g->pending.empty()) {
    const Pending p = g->pending.front();
    g->pending.pop_front();
    Conn& c = conns_[p.slot];
    if (c.gen != p.gen || c.state != kPending || c.gd != gd) {
      continue;
    }
    --g->pending_live;
    c.state = kOpen;
    c.framing = static_cast<std::uint8_t>(g->opts.framing);
    c.delimiter = static_cast<std::uint8_t>(g->opts.delimiter);
    ++g->connections;
    if (c.conn != kNoConn) {
      stack_->tcp().set_nodelay(c.conn, g->opts.nodelay);
    }
    refresh(p.slot);  // bytes (or the end) may have come before the accept
    sync_fd(*g);
    return make_cd(p.slot);
  }
  sync_fd(*g);
  return -EAGAIN;
}

int Runtime::pars(int gd, int cd, sockaddr_in* sa) {
  std::uint32_t slot = 0;
  const Conn* c = conn(0, gd, cd, &slot);
  if (c == nullptr) {
    return -EBADF;
  }
  if (sa == nullptr) {
    return -EINVAL;
  }
  std::uint32_t addr = 0;
  std::uint16_t port = 0;
  remote_of(*c, &addr, &port);
  std::memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_port = htons(port);
  sa->sin_addr.s_addr = htonl(addr);
  return 0;
}

int Runtime::close(int pool, int gd, int cd) {
  std::uint32_t slot = 0;
  Conn* c = conn(pool, gd, cd, &slot);
  if (c == nullptr) {
    return -EBADF;
  }
  Group& g = *group(gd);
  ready_unlink(g, slot);
  if (c->conn != kNoConn) {
    const ConnId id = c->conn;
    engine_to_slot_.clear(id);
    TcpLayer& tcp = stack_->tcp();
    const std::size_t held = rx_.held(id);
    if (held > 0 && (c->flags & (kEnded | kPeerFin)) == 0) {
      // RFC 2525 2.17: closing with unacknowledged data resets, so the client learns that
      // its bytes were not processed.
      tcp.abort(id);
    } else {
      // A client that has finished sending gets an orderly close even if it left an
      // unterminated tail: a RST would also destroy answers still in flight to it.
      rx_.detach(id);  // bytes still arriving before the FIN exchange ends are dropped
      if (held > 0 && (c->flags & kEnded) == 0) {
        tcp.consumed(id);  // ACK the dropped tail and the FIN, or the client resends them
      }
      tcp.close(id);
    }
  }
  release_descriptor(g, slot);
  return 0;
}

void Runtime::release_descriptor(Group& g, std::uint32_t slot) {
  --g.connections;
  if (Pool* p = pool_of(g.pool)) {
    --p->connections;
  }
  free_slot(slot);
  sync_fd(g);
}

int Runtime::shutdown(int gd, int cd, int how) {
  std::uint32_t slot = 0;
  Conn* c = conn(0, gd, cd, &slot);
  if (c == nullptr) {
    return -EBADF;
  }
  if (how != SHUT_WR) {
    explain("how %d: only SHUT_WR (%d) is supported; xtcp_close or xtcp_abort end both directions", how,
            SHUT_WR);
    return -EINVAL;
  }
  if (c->conn == kNoConn) {
    return c->error != 0 ? -static_cast<int>(c->error) : -ENOTCONN;
  }
  if ((c->flags & kConnecting) != 0) {
    explain("the connection is not established yet (xtcp_connect in progress)");
    return -ENOTCONN;
  }
  // RFC 9293 3.10.4: CLOSE in ESTABLISHED queues a FIN after the data (FIN-WAIT-1), in
  // CLOSE-WAIT it goes to LAST-ACK; either way receiving goes on until the peer's FIN.
  const int rc = stack_->tcp().shutdown(c->conn);
  refresh(slot);
  return rc;
}

int Runtime::abort(int gd, int cd) {
  std::uint32_t slot = 0;
  Conn* c = conn(0, gd, cd, &slot);
  if (c == nullptr) {
    return -EBADF;
  }
  Group& g = *group(gd);
  ready_unlink(g, slot);
  if (c->conn != kNoConn) {
    // RFC 9293 3.10.4 ABORT: a RST in a synchronized state; queued data is dropped.
    engine_to_slot_.clear(c->conn);
    stack_->tcp().abort(c->conn);
  }
  release_descriptor(g, slot);
  return 0;
}

int Runtime::redeliver(int gd, int cd) {
  std::uint32_t slot = 0;
  Conn* c = conn(0, gd, cd, &slot);
  if (c == nullptr) {
    return -EBADF;
  }
  if (c->cold != 0) {
    cold_[c->cold - 1].seen = 0;
    settle_cold(*c);
  }
  // An orderly end already reported comes again after the bytes offered again; an end by
  // error was reported before any data and stays reported.
  if ((c->flags & kEndReported) != 0 && c->error == 0 && c->conn != kNoConn && rx_.held(c->conn) > 0) {
    c->flags &= static_cast<std::uint8_t>(~kEndReported);
  }
  refresh(slot);
  return 0;
}

int Runtime::recv(int pool, int gd, int* cd, void* buf, std::size_t len, std::uint64_t* user_data) {
  Group* g = group(gd);
  if (g == nullptr || (pool != 0 && g->pool != pool)) {
    return -EBADF;
  }
  if (cd == nullptr || buf == nullptr || len == 0) {
    return -EINVAL;
  }
  len = std::min<std::size_t>(len, INT_MAX);
  process_events();
  const Pool* p = pool_of(g->pool);
  // Bounded: every pass either returns or pops one entry of the ready FIFO.
  for (;;) {
    const std::uint32_t slot = ready_front(*g);
    if (slot == kNil) {
      break;
    }
    Conn& c = conns_[slot];
    if (!has_news(slot)) {
      ready_take_front(*g);
      continue;
    }
    *cd = make_cd(slot);
    if (user_data != nullptr) {
      *user_data = c.user_data;
    }
    if ((c.flags & kEnded) != 0 && c.error != 0) {
      c.flags |= kEndReported;
      ready_take_front(*g);
      sync_fd(*g);
      return -static_cast<int>(c.error);
    }
    const Cold* k = cold_if(c);
    const std::uint32_t frames_end = k != nullptr ? k->frames_end : 0;
    const std::uint32_t seen = k != nullptr ? k->seen : 0;
    const std::size_t avail =
        c.conn == kNoConn ? 0 : (c.framing == XTCP_FRAME_NONE ? rx_.held(c.conn) : frames_end);
    if (avail > seen) {
      auto* out = static_cast<std::byte*>(buf);
      std::size_t n = p->rx->peek(c.conn, 0, wire::MutableByteSpan(out, std::min(len, avail)));
      if (c.framing != XTCP_FRAME_NONE) {
        n = frame_cut(c, frames_end, out, n);
        if (n == 0) {
          return -EMSGSIZE;  // stays first in line for a call with a larger buffer
        }
      }
      Cold& w = cold_of(c);
      w.delivered = static_cast<std::uint32_t>(n);
      w.seen = std::max(w.seen, w.delivered);
      ready_take_front(*g);
      sync_fd(*g);
      return static_cast<int>(n);
    }
    c.flags |= kEndReported;  // orderly end, after all data was shown
    ready_take_front(*g);
    sync_fd(*g);
    return 0;
  }
  sync_fd(*g);
  return -EAGAIN;
}

int Runtime::connect(int gd, const sockaddr_in* addr) {
  Group* g = group(gd);
  if (g == nullptr) {
    return -EBADF;
  }
  if (addr == nullptr || addr->sin_family != AF_INET) {
    return -EINVAL;
  }
  Pool* p = pool_of(g->pool);
  const std::uint32_t slot = alloc_slot();
  if (slot == kNil) {
    return -ENOMEM;
  }
  ++live_conns_;
  staged_pool_slot_ = p->slot;  // the SYN's window is computed inside connect()
  const std::int64_t r = stack_->tcp().connect(ntohl(addr->sin_addr.s_addr), ntohs(addr->sin_port), 0);
  staged_pool_slot_ = -1;
  if (r < 0) {
    free_slot(slot);
    return static_cast<int>(r);
  }
  const auto id = static_cast<ConnId>(r);
  rx_.bind(id, p->slot);
  if (!engine_to_slot_.set(id, slot)) {
    stack_->tcp().abort(id);  // an id beyond the engine's max_connections: cannot happen
    free_slot(slot);
    return -ENOMEM;
  }
  Conn& c = conns_[slot];
  c.conn = id;
  c.gd = static_cast<std::uint16_t>(gd);
  c.state = kOpen;
  c.flags = kConnecting;
  c.framing = static_cast<std::uint8_t>(g->opts.framing);
  c.delimiter = static_cast<std::uint8_t>(g->opts.delimiter);
  stack_->tcp().set_nodelay(id, g->opts.nodelay);
  ++g->connections;
  ++p->connections;
  return make_cd(slot);
}

}  // namespace xtcp::api
