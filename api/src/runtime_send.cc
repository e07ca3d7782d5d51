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
    if (tx_room(c->conn) < len) {
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
    // A throttled connection (its peer keeps window 0) gets what tx_room allows, maybe
    // nothing: then the ACK goes alone, as when the cache is full.
    const std::size_t take = std::min(len, tx_room(c->conn));
    // Refused outright: a peer that keeps window 0, or a connection at its group's limit
    // (XTCP_OPT_TX_LIMIT), which the engine's own share check does not know.
    const bool throttled =
        take == 0 && (peer_window_closed(c->conn) || tx_.queued(c->conn) >= group_tx_limit(c->conn));
    if (throttled && ackd > 0) {
      tcp.consumed(c->conn);
    }
    const std::int64_t r =
        throttled ? 0
                  : tcp.send(c->conn, wire::ByteSpan(static_cast<const std::byte*>(buf), take == 0 ? len : take));
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

// Its own ACKs can only help a connection that has answers cached: one holding nothing
// whose answer exceeds its (shrunken) share waits for the cache like any other.
bool Runtime::own_share_limits(ConnId conn, std::size_t want) const {
  const std::size_t queued = tx_.queued(conn);
  if (queued == 0) {
    return false;
  }
  const std::size_t share =
      peer_window_closed(conn) ? std::min(tx_.share(conn), tx_.min_share()) : tx_.share(conn);
  return queued + want > std::min(share, group_tx_limit(conn));
}

bool Runtime::peer_window_closed(ConnId conn) const {
  ConnInfo info{};
  return conn != kNoConn && stack_->tcp().info(conn, &info) == 0 && info.snd_wnd == 0 &&
         (info.state == TcpState::kEstablished || info.state == TcpState::kCloseWait);
}

// RFC 9293 3.8.6.1: a peer may keep window 0 as long as it likes; what we cache for it
// meanwhile cannot leave. Such a connection gets no more than min_share of the cache in
// all: the connections that hold the most and make no progress are throttled first.
std::size_t Runtime::tx_room(ConnId conn) const {
  const std::size_t queued = tx_.queued(conn);
  const std::size_t limit = group_tx_limit(conn);
  const std::size_t room = std::min(tx_.free_space(conn), queued >= limit ? 0 : limit - queued);
  if (!peer_window_closed(conn)) {
    return room;
  }
  const std::size_t cap = tx_.min_share();
  return std::min(room, queued >= cap ? 0 : cap - queued);
}

std::size_t Runtime::group_tx_limit(ConnId conn) const {
  const std::uint32_t slot = engine_to_slot_.slot(conn);
  if (slot == EngineIndex::kNone) {
    return SIZE_MAX;
  }
  const Group* g = group(conns_[slot].gd);
  return g != nullptr && g->opts.tx_limit > 0 ? static_cast<std::size_t>(g->opts.tx_limit) : SIZE_MAX;
}

void Runtime::update_refused_windows() {
  for (const auto& [id, p] : pools_) {
    SharedRxPool& rx = *p->rx;
    // Oldest refusal first, while the pool physically has room again (a free chunk). Each
    // entry once per round: one still without room is queued again (window_closed).
    for (std::size_t n = rx.refused_count(); n > 0 && rx.has_refused() && rx.free_bytes() >= rx.chunk_size();
         --n) {
      const ConnId conn = rx.front_refused();
      rx.pop_refused();
      const std::uint64_t before = stack_->tcp().stats().window_updates;
      stack_->tcp().update_window(conn);
      refused_window_updates_ += stack_->tcp().stats().window_updates - before;
    }
  }
}

bool Runtime::under_pressure(ConnId conn) const {
  if (tx_.used() + tx_.reserve() + tx_.size() / 4 >= tx_.size()) {
    return true;  // less than a quarter of the cache (beyond its reserve) is left
  }
  const SharedRxPool* rx = rx_.pool(rx_.slot_of(conn));
  return rx != nullptr && rx->throttled();
}

// RFC 9293 3.8.6.1: a receiver may keep a zero window indefinitely, and the sender must
// keep probing; a TCP implementation may nevertheless abort a connection whose zero window
// persists while it holds resources. Here: a refused answer waits, the peer keeps window 0
// (it does not read what we sent), answers are cached for it, and the cache or its pool is
// under pressure: past its group's limit it is reset and counted.
void Runtime::sweep_hoarders(TimeNs now) {
  if (now < next_hoarder_sweep_ || (write_want_.empty() && stuck_since_.empty())) {
    return;
  }
  constexpr TimeNs kSweepEvery = 100 * kNsPerMs;
  next_hoarder_sweep_ = now + kSweepEvery;
  std::vector<std::uint32_t> to_kill;
  for (auto it = stuck_since_.begin(); it != stuck_since_.end();) {
    it = write_want_.count(it->first) != 0 ? std::next(it) : stuck_since_.erase(it);
  }
  for (const auto& [slot, want] : write_want_) {
    const Conn& c = conns_[slot];
    const Group* g = group(c.gd);
    ConnInfo info{};
    const bool stuck = c.conn != kNoConn && g != nullptr && g->opts.zero_window_abort_ms > 0 &&
                       tx_.queued(c.conn) > 0 && stack_->tcp().info(c.conn, &info) == 0 &&
                       info.snd_wnd == 0;
    if (!stuck) {
      stuck_since_.erase(slot);
      continue;
    }
    const TimeNs since = stuck_since_.try_emplace(slot, now).first->second;
    if (now - since >= ms(g->opts.zero_window_abort_ms) && under_pressure(c.conn)) {
      to_kill.push_back(slot);
    }
  }
  // The ones holding the most go first, and only while the pressure lasts.
  std::sort(to_kill.begin(), to_kill.end(), [&](std::uint32_t x, std::uint32_t y) {
    return tx_.queued(conns_[x].conn) > tx_.queued(conns_[y].conn);
  });
  for (const std::uint32_t slot : to_kill) {
    if (!under_pressure(conns_[slot].conn)) {
      break;
    }
    stuck_since_.erase(slot);
    ++zero_window_aborts_;
    logger_.report(LogKind::kTxCacheFull, LogLevel::kInfo, now,
                   "api: reset a connection whose peer kept window 0 while holding %zu cached bytes",
                   tx_.queued(conns_[slot].conn));
    Conn& c = conns_[slot];
    kill(c, ECONNABORTED);
    write_want_.erase(slot);
    c.flags &= static_cast<std::uint8_t>(~(kWantWrite | kInWriteFifo));
    refresh(slot);  // the application learns of it from xtcp_recv (-ECONNABORTED)
  }
}

void Runtime::note_refused(std::uint32_t slot, std::size_t want) {
  Conn& c = conns_[slot];
  ++sends_refused_;
  // A want beyond what the connection may ever hold would never be met.
  write_want_[slot] =
      static_cast<std::uint32_t>(std::min({want, tx_.share(c.conn), group_tx_limit(c.conn)}));
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
  if (tx_room(c.conn) >= want) {
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
    if (tx_room(c.conn) < want && !own_share_limits(c.conn, want)) {
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
