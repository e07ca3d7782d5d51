// The XTCP runtime (see runtime.h), part 3: sending answers, and connections whose answer
// did not fit. A refused send (the shared transmit cache, or the connection's share of it,
// full) is remembered with the room it needs. The connection is woken, made writable, once
// that room is there: connections limited by their own share wait for their client's ACKs
// (the engine's kWritable event); the others wait in one FIFO for room in the whole cache
// and are woken in the order they were refused, so no one is starved by later arrivals.
//
//   xtcp_send --refused--> note_refused --> own ACKs (kWritable) | write_fifo_
//   drive() --wake_waiters--> wake --> group.writable (xtcp_writable) + unacked bytes again
#include <algorithm>
#include <cerrno>
#include <climits>

#include "api/src/errors.h"
#include "api/src/runtime_internal.h"

namespace xtcp::api {

using internal::kInWriteFifo;
using internal::kNil;
using internal::kOpen;
using internal::kWantWrite;

int Runtime::send(int pool, int gd, int cd, std::size_t ackd, const void* buf, std::size_t len) {
  std::uint32_t slot = 0;
  Conn* c = conn(pool, gd, cd, &slot);
  if (c == nullptr) {
    return -EBADF;
  }
  if (buf == nullptr && len > 0) {
    explain("buf is NULL with len %zu", len);
    return -EINVAL;
  }
  const Cold* k = cold_if(*c);
  const std::uint32_t delivered = k != nullptr ? k->delivered : 0;
  if (ackd > delivered) {
    explain("ackd %zu is more than the %u bytes the last xtcp_recv delivered on this connection",
            ackd, delivered);
    return -EINVAL;
  }
  if (!at_boundary(*c, ackd)) {
    explain("ackd %zu does not end on a message boundary", ackd);
    return -EINVAL;
  }
  len = std::min<std::size_t>(len, INT_MAX);
  Group& g = *group(gd);
  Pool* p = pool_of(g.pool);
  TcpLayer& tcp = stack_->tcp();
  if (g.opts.send_all && len > 0 && c->conn != kNoConn) {
    // The whole answer or nothing; nothing also leaves the request unacknowledged.
    if (len > tx_.conn_limit()) {
      explain("an answer of %zu bytes can never fit one connection's share of the transmit "
              "cache (%zu bytes) with XTCP_OPT_SEND_ALL", len, tx_.conn_limit());
      return -EMSGSIZE;
    }
    if (tx_.free_space(c->conn) < len) {
      note_refused(slot, len);
      return -EAGAIN;
    }
  }
  if (ackd > 0) {
    // The acknowledged bytes leave the pool; the engine ACKs what the pool no longer holds.
    if (c->conn != kNoConn) {
      p->rx->pop_front(c->conn, ackd);
    }
    const auto a = static_cast<std::uint32_t>(ackd);
    Cold& w = cold_of(*c);  // delivered >= ackd > 0: it has one
    w.delivered -= a;
    w.seen = 0;  // what is left is offered again first
    w.frames_end = w.frames_end > a ? w.frames_end - a : 0;
    w.scan_pos = w.scan_pos > a ? w.scan_pos - a : 0;
    settle_cold(*c);  // all acknowledged: back to the hot record alone
  }
  int rc = 0;
  if (c->conn == kNoConn) {
    rc = c->error != 0 ? -static_cast<int>(c->error) : -ENOTCONN;
  } else if (len > 0) {
    const std::int64_t r = tcp.send(c->conn, wire::ByteSpan(static_cast<const std::byte*>(buf), len));
    if (r > 0) {
      rc = static_cast<int>(r);
      if (ackd > 0) {
        ++p->acks_on_answers;
      }
    } else if (r == 0) {
      rc = -EAGAIN;  // transmit cache full; the ACK went alone
      if (ackd > 0) {
        ++p->acks_alone;
      }
    } else {
      rc = static_cast<int>(r);
      if (ackd > 0) {
        tcp.consumed(c->conn);  // "irrespective of the success of sending, ackd is ACKed"
      }
    }
    if (r >= 0 && static_cast<std::size_t>(r) < len) {
      note_refused(slot, len - static_cast<std::size_t>(r));
    }
  } else if (ackd > 0) {
    tcp.consumed(c->conn);  // len 0: the ACK alone
    ++p->acks_alone;
  }
  refresh(slot);
  return rc;
}

bool Runtime::own_share_limits(ConnId conn, std::size_t want) const {
  return tx_.queued(conn) + want > tx_.conn_limit();
}

void Runtime::note_refused(std::uint32_t slot, std::size_t want) {
  Conn& c = conns_[slot];
  ++sends_refused_;
  write_want_[slot] = static_cast<std::uint32_t>(std::min(want, tx_.conn_limit()));
  c.flags |= kWantWrite;
  if (!own_share_limits(c.conn, want)) {
    logger_.report(LogKind::kTxCacheFull, LogLevel::kInfo, clock_.now(),
                   "api: transmit cache full (%zu of %zu bytes used): answers wait for room",
                   tx_.used(), tx_.size());
  }
  try_wake(slot);
}

void Runtime::try_wake(std::uint32_t slot) {
  Conn& c = conns_[slot];
  if (c.conn == kNoConn) {
    return;  // ended: xtcp_recv reports that instead
  }
  const std::uint32_t want = write_want_[slot];
  if (tx_.free_space(c.conn) >= want) {
    wake(slot);
  } else if (own_share_limits(c.conn, want)) {
    stack_->tcp().want_writable(c.conn);  // its client's next ACK frees the room
  } else if ((c.flags & kInWriteFifo) == 0) {
    c.flags |= kInWriteFifo;
    write_fifo_.push_back(WriteWaiter{slot, c.gen});
  }
}

void Runtime::wake(std::uint32_t slot) {
  Conn& c = conns_[slot];
  c.flags &= static_cast<std::uint8_t>(~(kWantWrite | kInWriteFifo));
  write_want_.erase(slot);
  ++writable_wakeups_;
  Group* g = group(c.gd);
  if (g == nullptr) {
    return;
  }
  if (g->writable_events) {
    g->writable.push_back(WriteWaiter{slot, c.gen});
  }
  if (c.cold != 0) {
    cold_[c.cold - 1].seen = 0;  // what it received and did not acknowledge is offered again
    settle_cold(c);
  }
  refresh(slot);
  sync_fd(*g);
}

void Runtime::wake_waiters() {
  while (!write_fifo_.empty()) {
    const WriteWaiter w = write_fifo_.front();
    Conn& c = conns_[w.slot];
    if (c.gen != w.gen || (c.flags & kInWriteFifo) == 0 || c.conn == kNoConn) {
      write_fifo_.pop_front();  // closed, ended or woken meanwhile
      if (c.gen == w.gen) {
        c.flags &= static_cast<std::uint8_t>(~kInWriteFifo);
      }
      continue;
    }
    const std::uint32_t want = write_want_[w.slot];
    if (tx_.free_space(c.conn) < want && !own_share_limits(c.conn, want)) {
      break;  // the oldest refusal goes first
    }
    write_fifo_.pop_front();
    c.flags &= static_cast<std::uint8_t>(~kInWriteFifo);
    try_wake(w.slot);
  }
}

int Runtime::writable(int gd) {
  Group* g = group(gd);
  if (g == nullptr) {
    return -EBADF;
  }
  g->writable_events = true;
  while (!g->writable.empty()) {
    const WriteWaiter w = g->writable.front();
    g->writable.pop_front();
    const Conn& c = conns_[w.slot];
    if (c.gen == w.gen && c.gd == gd && c.state == kOpen) {
      sync_fd(*g);
      return make_cd(w.slot);
    }
  }
  sync_fd(*g);
  return -EAGAIN;
}

int Runtime::set_user_data(int gd, int cd, std::uint64_t value) {
  std::uint32_t slot = 0;
  Conn* c = conn(0, gd, cd, &slot);
  if (c == nullptr) {
    return -EBADF;
  }
  c->user_data = value;
  return 0;
}

int Runtime::get_user_data(int gd, int cd, std::uint64_t* value) {
  std::uint32_t slot = 0;
  const Conn* c = conn(0, gd, cd, &slot);
  if (c == nullptr) {
    return -EBADF;
  }
  if (value == nullptr) {
    return -EINVAL;
  }
  *value = c->user_data;
  return 0;
}

}  // namespace xtcp::api
