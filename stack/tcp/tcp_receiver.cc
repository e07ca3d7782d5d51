// The receiving part of the TCP layer: segment text in order into the RxStore, out of order
// into the reassembly queue (RFC 9293 3.10.7.4, seventh and eighth steps), the FIN; and what
// the receiver tells the peer: the ACK point (with application-controlled ACKs, what the
// application released), the advertised window (never shrinking, receiver SWS avoidance,
// RFC 9293 3.8.6.2.2), delayed ACKs (RFC 5681 4.2), SACK blocks and timestamps (RFC 2018,
// 7323). Its state is the receive sequence space of the Tcb and the out-of-order queue.
#include <algorithm>

#include "stack/tcp/segment.h"

namespace xtcp {

using namespace wire::tcp_flags;  // NOLINT

void TcpLayer::deliver_in_order(ConnId conn, Tcb& tcb, wire::ByteSpan data) {
  const std::size_t took = rx_.append(conn, data);
  const std::size_t promise = promise_of(tcb);
  tcb.rcv_nxt += static_cast<std::uint32_t>(took);
  rx_.promised(conn, promise, promise_of(tcb));
  stats_.bytes_in += took;
  if (took < data.size()) {
    stats_.rx_store_full += data.size() - took;
  }
  if (took > 0 && !tcb.has(tcb_flag::kReadableQueued) && tcb.has(tcb_flag::kAppOwned)) {
    tcb.set(tcb_flag::kReadableQueued);
    emit(TcpEventType::kReadable, conn);
  }
}

void TcpLayer::process_data(ConnId conn, Tcb& tcb, Segment& seg) {
  // Trim to [rcv_nxt, rcv_adv): bytes already received, and bytes beyond the window.
  wire::ByteSpan data = seg.payload;
  SeqNum seq = seg.seq;
  bool fin = seg.has(kFin);
  if (seq < tcb.rcv_nxt) {
    const auto skip = static_cast<std::size_t>(tcb.rcv_nxt - seq);
    if (skip > data.size()) {
      // Only the FIN may remain, and it was already counted if rcv_nxt passed it.
      data = {};
      fin = false;
    } else {
      data = data.subspan(skip);
    }
    stats_.data_trimmed += std::min(skip, seg.payload.size());
    seq = tcb.rcv_nxt;
  }
  const std::uint32_t room =
      tcb.rcv_adv > seq ? static_cast<std::uint32_t>(tcb.rcv_adv - seq) : 0;
  if (data.size() > room) {
    stats_.data_trimmed += data.size() - room;
    data = data.first(room);
    fin = false;  // the FIN lies beyond the window
    // The part beyond the window is unacceptable (RFC 9293 3.10.7.4): ACK at once so the
    // sender learns where the window ends.
    tcb.set(tcb_flag::kAckNow);
  }
  if (seq != tcb.rcv_nxt) {
    // Out of order: queue within bounds, ACK at once with SACK (RFC 5681 4.2).
    Extra& x = extra(conn, tcb);
    const std::size_t before = x.ooo.bytes();
    const std::size_t per_conn = config_.ooo_max_bytes_per_conn;
    const std::size_t budget = ooo_bytes_total_ >= config_.ooo_max_bytes_total
                                   ? before
                                   : std::min<std::size_t>(per_conn, before + config_.ooo_max_bytes_total - ooo_bytes_total_);
    const std::size_t stored = x.ooo.insert(tcb.rcv_nxt, seq, data, fin, budget,
                                            config_.ooo_max_segments_per_conn);
    ooo_bytes_total_ += x.ooo.bytes() - before;
    if (stored > 0) {
      ++stats_.ooo_segments;
    } else if (!data.empty()) {
      ++stats_.ooo_dropped;
    }
    tcb.set(tcb_flag::kAckNow);
    return;
  }
  // In order. First copy wins, as in OooQueue::insert: where this segment overlaps bytes
  // already queued out of order, the queued bytes are delivered and this segment's copy
  // of them is skipped, so a retransmission with different bytes cannot rewrite them.
  const SeqNum before = tcb.rcv_nxt;
  const SeqNum data_end = seq + static_cast<std::uint32_t>(data.size());
  Extra* x = find_extra(conn, tcb);
  bool filled_gap = false;
  bool ooo_fin = false;
  for (;;) {
    const SeqNum stop =
        x != nullptr && x->ooo.bytes() > 0 ? seq_min(data_end, x->ooo.front_seq()) : data_end;
    if (stop > tcb.rcv_nxt) {
      const SeqNum at = tcb.rcv_nxt;
      const auto len = static_cast<std::size_t>(stop - at);
      deliver_in_order(conn, tcb, data.subspan(static_cast<std::size_t>(at - seq), len));
      if (tcb.rcv_nxt != stop) {
        break;  // the receive store is full
      }
    }
    if (x == nullptr || x->ooo.empty()) {
      break;
    }
    filled_gap = true;
    const SeqNum popped_from = tcb.rcv_nxt;
    const std::size_t ooo_before = x->ooo.bytes();
    const std::size_t promise = promise_of(tcb);
    ooo_fin = x->ooo.pop_contiguous(&tcb.rcv_nxt, [&](wire::ByteSpan part) {
      const std::size_t took = rx_.append(conn, part);
      stats_.bytes_in += took;
      return took;
    });
    rx_.promised(conn, promise, promise_of(tcb));
    ooo_bytes_total_ -= ooo_before - x->ooo.bytes();
    if (ooo_fin || tcb.rcv_nxt == popped_from || !(tcb.rcv_nxt < data_end)) {
      break;
    }
  }
  if (filled_gap && tcb.rcv_nxt != before && !tcb.has(tcb_flag::kReadableQueued) &&
      tcb.has(tcb_flag::kAppOwned)) {
    tcb.set(tcb_flag::kReadableQueued);
    emit(TcpEventType::kReadable, conn);
  }
  const bool all_taken = !(tcb.rcv_nxt < data_end);
  fin = (fin && tcb.rcv_nxt == data_end) || ooo_fin;
  if (fin && all_taken) {
    process_fin(conn, tcb, seg);
    return;
  }
  if (tcb.has(tcb_flag::kAppAck)) {
    // XTCP: in-order data is ACKed when the application releases it (or at its deadline).
    if (!all_taken) {
      tcb.set(tcb_flag::kAckNow);  // tell the peer the window is full
    }
    arm_ack_deadline(tcb);
    return;
  }
  if (filled_gap || !tcb.has(tcb_flag::kDelayedAck) || !all_taken) {
    tcb.set(tcb_flag::kAckNow);
    return;
  }
  // RFC 5681 4.2: ACK at least every second full-sized segment; else within the delay.
  if (++tcb.unacked_segments >= 2) {
    tcb.set(tcb_flag::kAckNow);
    return;
  }
  schedule_delayed_ack(conn, tcb);
}

void TcpLayer::process_fin(ConnId conn, Tcb& tcb, const Segment& /*seg*/) {
  const std::size_t promise = promise_of(tcb);
  tcb.rcv_nxt += 1;
  rx_.promised(conn, promise, promise_of(tcb));
  tcb.set(tcb_flag::kPeerFin);
  // The FIN is ACKed now, except (XTCP) while the application still holds data before it:
  // then the ACK of data and FIN comes with the application's release.
  if (!tcb.has(tcb_flag::kAppAck) || refresh_app_ack(conn, tcb)) {
    tcb.set(tcb_flag::kAckNow);
  }
  if (tcb.has(tcb_flag::kAppOwned)) {
    emit(TcpEventType::kPeerClosed, conn);
  }
  switch (tcb.state) {
    case TcpState::kSynReceived:
    case TcpState::kEstablished:
      set_state(tcb, TcpState::kCloseWait);
      break;
    case TcpState::kFinWait1:
      if (tcb.snd_una == tcb.snd_end + 1) {
        send_ack(conn, tcb);
        enter_time_wait(conn, tcb);
      } else {
        set_state(tcb, TcpState::kClosing);  // simultaneous close
      }
      break;
    case TcpState::kFinWait2:
      send_ack(conn, tcb);
      enter_time_wait(conn, tcb);
      break;
    default:
      break;
  }
}

// What the store offers beyond rcv_nxt: at least what was promised already, so the right
// edge never moves left (RFC 9293 3.8.6.2.2, RFC 7323 2.4); a shared store answers with a
// share it can honour (RxStore::offer), so data inside the window is never refused.
std::uint32_t TcpLayer::receive_window(ConnId conn, const Tcb& tcb) const {
  const std::size_t limit = static_cast<std::size_t>(65535) << tcb.rcv_wscale;
  return static_cast<std::uint32_t>(std::min(rx_.offer(conn, promise_of(tcb)), limit));
}

std::size_t TcpLayer::promise_of(const Tcb& tcb) {
  return tcb.rcv_adv > tcb.rcv_nxt ? static_cast<std::size_t>(tcb.rcv_adv - tcb.rcv_nxt) : 0;
}

void TcpLayer::set_rcv_adv(ConnId conn, Tcb& tcb, SeqNum edge) {
  if (!(edge > tcb.rcv_adv)) {
    return;  // the right edge never moves left
  }
  const std::size_t promise = promise_of(tcb);
  tcb.rcv_adv = edge;
  rx_.promised(conn, promise, promise_of(tcb));
}

SeqNum TcpLayer::ack_point(const Tcb& tcb) const {
  return tcb.has(tcb_flag::kAppAck) ? tcb.rcv_ack : tcb.rcv_nxt;
}

// XTCP (application-controlled ACKs): ACK everything the application no longer holds in
// the RxStore, and the FIN once all data before it is released. Returns true if it moved.
bool TcpLayer::refresh_app_ack(ConnId conn, Tcb& tcb) {
  if (!tcb.has(tcb_flag::kAppAck)) {
    return false;
  }
  const std::size_t held = rx_.held(conn);
  const SeqNum data_end = tcb.rcv_nxt - (tcb.has(tcb_flag::kPeerFin) ? 1u : 0u);
  const SeqNum target = held == 0 ? tcb.rcv_nxt : data_end - static_cast<std::uint32_t>(held);
  if (!(target > tcb.rcv_ack)) {
    return false;
  }
  tcb.rcv_ack = target;
  if (tcb.rcv_ack == tcb.rcv_nxt) {
    tcb.delack_at = 0;  // nothing waits for the ACK deadline any more
  }
  return true;
}

void TcpLayer::arm_ack_deadline(Tcb& tcb) {
  if (tcb.delack_at != 0 || tcb.rcv_ack == tcb.rcv_nxt) {
    return;
  }
  auto it = listeners_.find(tcb.listen_port);
  if (it != listeners_.end() && it->second.options.ack_deadline > 0) {
    tcb.delack_at = deadline_tick(it->second.options.ack_deadline);
  }
}

// The window field for an outgoing segment, relative to the ACK it carries. The right edge
// never moves left (RFC 9293 3.8.6.2.2 SHOULD NOT shrink), and grows only by useful amounts
// (receiver SWS avoidance). Bytes held unacknowledged (XTCP) lie inside the window the peer
// sees, so the edge is rcv_nxt plus the store's free space either way: the window tells the
// truth about the space.
std::uint16_t TcpLayer::window_to_advertise(ConnId conn, Tcb& tcb) {
  const std::uint32_t scale = 1u << tcb.rcv_wscale;
  const SeqNum base = ack_point(tcb);
  const std::uint32_t old = tcb.rcv_adv > base ? static_cast<std::uint32_t>(tcb.rcv_adv - base) : 0;
  std::uint32_t wnd = receive_window(conn, tcb) + static_cast<std::uint32_t>(tcb.rcv_nxt - base);
  const std::uint32_t sws = std::min<std::uint32_t>(static_cast<std::uint32_t>(rx_.capacity(conn) / 2), tcb.snd_mss);
  if (wnd > old && wnd - old < sws && wnd < rx_.capacity(conn)) {
    wnd = old;
  }
  std::uint32_t field;
  if (wnd >= old) {
    field = wnd / scale;
    if (field * scale < old) {
      field = (old + scale - 1) / scale;
    }
  } else {
    field = (old + scale - 1) / scale;  // keep the old edge, rounded up to the scale
  }
  field = std::min<std::uint32_t>(field, 65535);
  set_rcv_adv(conn, tcb, base + field * scale);
  if (field == 0 && !tcb.has(tcb_flag::kPeerFin)) {
    rx_.window_closed(conn);  // to be told when the store has room (a window update)
  }
  return static_cast<std::uint16_t>(field);
}

void TcpLayer::fill_ack_options(ConnId conn, Tcb& tcb, wire::TcpOptions* o) {
  if (tcb.has(tcb_flag::kTimestampsOk)) {
    o->has_timestamp = true;
    o->ts_val = ts_now(tcb);
    o->ts_ecr = tcb.ts_recent;
  }
  if (tcb.has(tcb_flag::kSackOk)) {
    if (Extra* x = find_extra(conn, tcb); x != nullptr && !x->ooo.empty()) {
      o->sack_count = static_cast<std::uint8_t>(x->ooo.sack_blocks(&o->sack));
    }
  }
}

void TcpLayer::schedule_delayed_ack(ConnId /*conn*/, Tcb& tcb) {
  if (tcb.delack_at == 0) {
    tcb.delack_at = deadline_tick(config_.delayed_ack_timeout);
  }
}

}  // namespace xtcp
