// Building and sending segments: the send loop (RFC 9293 3.7.4 Nagle, 3.8.6.2 SWS
// avoidance, RFC 5681 congestion window), retransmissions, ACKs, RSTs and probes.
#include <algorithm>

#include "stack/tcp/segment.h"
#include "stack/wire/ipv4.h"

namespace xtcp {

using namespace wire::tcp_flags;  // NOLINT

void TcpLayer::transmit(const FlowKey& key, const wire::TcpFields& f, const wire::TcpOptions& opts,
                        wire::ByteSpan payload, ConnId conn_for_payload, std::size_t tx_offset,
                        std::size_t len) {
  // The segment is built in the IP layer's buffer, which puts its own header in front.
  const wire::MutableByteSpan room = ip_.transport_buffer();
  std::byte* tcp = room.data();
  const std::size_t hdr = wire::emit_tcp_header(tcp, f, opts);
  if (conn_for_payload != kNoConn) {
    len = tx_.copy(conn_for_payload, tx_offset, wire::MutableByteSpan(tcp + hdr, len));
  } else {
    len = std::min(payload.size(), room.size() - hdr);
    std::copy_n(payload.data(), len, tcp + hdr);
  }
  wire::fill_tcp_checksum(wire::MutableByteSpan(tcp, hdr + len), key.local_addr, key.remote_addr);
  ++stats_.segs_out;
  ip_.send_transport(key.local_addr, key.remote_addr, wire::kProtoTcp, hdr + len);
}

std::uint32_t TcpLayer::receive_window(ConnId conn, const Tcb& tcb) const {
  const std::size_t limit = static_cast<std::size_t>(65535) << tcb.rcv_wscale;
  return static_cast<std::uint32_t>(std::min(rx_.free_space(conn), limit));
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
  const SeqNum edge = base + field * scale;
  if (edge > tcb.rcv_adv) {
    tcb.rcv_adv = edge;
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

// Payload bytes one data segment may carry. The peer's MSS counts no TCP options (RFC 9293
// 3.7.1, RFC 6691); snd_mss already allows for timestamps, but SACK blocks riding on a data
// segment must come out of the payload too (as Linux's tcp_current_mss does), or a full
// segment would exceed the path MTU and be dropped.
std::uint32_t TcpLayer::payload_room(ConnId conn, Tcb& tcb) {
  if (!tcb.has(tcb_flag::kSackOk)) {
    return tcb.snd_mss;
  }
  wire::TcpOptions o;
  fill_ack_options(conn, tcb, &o);
  if (o.sack_count == 0) {
    return tcb.snd_mss;
  }
  const std::size_t ts = o.has_timestamp ? 12 : 0;
  const std::size_t sack = wire::tcp_header_length(o) - wire::kTcpHeaderMin - ts;
  return tcb.snd_mss > sack ? static_cast<std::uint32_t>(tcb.snd_mss - sack) : 1;
}

void TcpLayer::start_rto(Tcb& tcb) {
  TimeNs rto = static_cast<TimeNs>(tcb.rto_us) * kNsPerUs;
  rto = std::min(rto << std::min<int>(tcb.backoff, 16), config_.max_rto);
  tcb.rto_at = deadline_tick(rto);
  tcb.clear(tcb_flag::kTlpArmed);
}

bool TcpLayer::probe_allowed(const Tcb& tcb) const {
  // RFC 8985 7.2: not in fast recovery or RTO recovery, one probe per episode, and only
  // with SACK (which tells what the probe repaired) and an RTT sample to scale it.
  return config_.tail_loss_probe && tcb.has(tcb_flag::kSackOk) && tcb.srtt_us != 0 &&
         (tcb.state == TcpState::kEstablished || tcb.state == TcpState::kCloseWait) &&
         !tcb.has(tcb_flag::kInRecovery) && !tcb.has(tcb_flag::kPersist) && !tcb.has(tcb_flag::kTlpOut) &&
         tcb.backoff == 0 && tcb.snd_max > tcb.snd_una;
}

void TcpLayer::arm_rto_or_probe(Tcb& tcb) {
  if (probe_allowed(tcb)) {
    arm_probe(tcb);
  } else {
    start_rto(tcb);
  }
}

void TcpLayer::arm_probe(Tcb& tcb) {
  // RFC 8985 7.2: PTO = 2 * SRTT, plus the peer's worst-case delayed-ACK time when a single
  // segment is out (its ACK may be held back); never later than the RTO would fire.
  TimeNs pto = 2 * static_cast<TimeNs>(tcb.srtt_us) * kNsPerUs;
  if (tcb.snd_max - tcb.snd_una <= tcb.snd_mss) {
    pto += ms(200);
  }
  pto = std::max(pto, ms(10));
  const TimeNs rto = static_cast<TimeNs>(tcb.rto_us) * kNsPerUs;
  if (pto >= rto) {
    start_rto(tcb);
    return;
  }
  tcb.rto_at = deadline_tick(pto);
  tcb.set(tcb_flag::kTlpArmed);
}

// RFC 8985 7.3: send one segment of new data if the peer's window takes it, else resend
// the last segment sent, so that its ACK (with SACK) shows what is missing at the tail.
void TcpLayer::send_loss_probe(ConnId conn, Tcb& tcb) {
  const std::uint32_t flight = static_cast<std::uint32_t>(tcb.snd_max - tcb.snd_una);
  const std::uint32_t unsent =
      tcb.snd_end > tcb.snd_max ? static_cast<std::uint32_t>(tcb.snd_end - tcb.snd_max) : 0;
  const std::uint32_t window_room = tcb.snd_wnd > flight ? tcb.snd_wnd - flight : 0;
  const std::uint32_t fresh = std::min({unsent, window_room, payload_room(conn, tcb)});
  ++stats_.tlp_probes;
  tcb.set(tcb_flag::kTlpOut);
  if (fresh > 0 && tcb.snd_nxt == tcb.snd_max) {
    tcb.clear(tcb_flag::kTlpResent);
    const bool fin = tcb.has(tcb_flag::kFinQueued) && tcb.snd_max + fresh == tcb.snd_end;
    send_data_segment(conn, tcb, tcb.snd_max, fresh, fin, false);
    tcb.snd_max += fresh + (fin ? 1 : 0);
    tcb.snd_nxt = tcb.snd_max;
  } else {
    tcb.set(tcb_flag::kTlpResent);
    tcb.clear(tcb_flag::kRttTiming);  // Karn: never time a resent segment
    // The last segment sent: its data end, and the FIN if the FIN is out.
    const bool fin_out = tcb.has(tcb_flag::kFinQueued) && tcb.snd_max == tcb.snd_end + 1;
    const SeqNum data_end = fin_out ? tcb.snd_end : tcb.snd_max;
    const std::uint32_t data = data_end > tcb.snd_una ? static_cast<std::uint32_t>(data_end - tcb.snd_una) : 0;
    const std::uint32_t len = std::min(data, payload_room(conn, tcb));
    send_data_segment(conn, tcb, data_end - len, len, fin_out, true);
  }
  start_rto(tcb);
}

void TcpLayer::end_probe_episode(Tcb& tcb) {
  if (!tcb.has(tcb_flag::kTlpOut)) {
    return;
  }
  if (tcb.has(tcb_flag::kTlpResent)) {
    // Without DSACK we cannot tell whether the original arrived too: assume the probe
    // repaired a loss and reduce as fast recovery would (RFC 8985 7.4.2; Linux does so).
    const std::uint32_t flight = static_cast<std::uint32_t>(tcb.snd_max - tcb.snd_una);
    tcb.ssthresh = std::max(std::max(flight, tcb.cwnd) / 2, 2u * tcb.snd_mss);
    tcb.cwnd = tcb.ssthresh;
  }
  tcb.clear(tcb_flag::kTlpOut | tcb_flag::kTlpResent);
}

void TcpLayer::schedule_delayed_ack(ConnId /*conn*/, Tcb& tcb) {
  if (tcb.delack_at == 0) {
    tcb.delack_at = deadline_tick(config_.delayed_ack_timeout);
  }
}

bool TcpLayer::send_data_segment(ConnId conn, Tcb& tcb, SeqNum seq, std::uint32_t len, bool fin,
                                 bool retransmission) {
  wire::TcpFields f;
  f.src_port = tcb.key.local_port;
  f.dst_port = tcb.key.remote_port;
  f.seq = seq;
  f.ack = ack_point(tcb);
  f.flags = static_cast<std::uint8_t>(kAck | (fin ? kFin : 0));
  const SeqNum data_end = seq + len;
  if (len > 0 && data_end == tcb.snd_end) {
    f.flags |= kPsh;  // last queued byte: tell the receiver to deliver
  }
  f.window = window_to_advertise(conn, tcb);
  wire::TcpOptions o;
  fill_ack_options(conn, tcb, &o);
  const SeqNum oldest = tcb.oldest_data();
  const auto offset = static_cast<std::size_t>(seq - oldest);
  transmit(tcb.key, f, o, {}, conn, offset, len);
  tcb.last_ack_sent = ack_point(tcb);
  ack_sent(tcb);
  stats_.bytes_out += len;
  if (retransmission) {
    ++stats_.retransmits;
  } else if (!tcb.has(tcb_flag::kRttTiming) && !tcb.has(tcb_flag::kTimestampsOk)) {
    tcb.set(tcb_flag::kRttTiming);
    tcb.rtt_seq = seq;
    tcb.rtt_start = now_tick();
  }
  if (!retransmission && probe_allowed(tcb)) {  // (probe_allowed excludes the persist state)
    arm_probe(tcb);  // RFC 8985 7.2: (re)start the PTO after new data
  } else if (tcb.rto_at == 0 || tcb.has(tcb_flag::kPersist)) {
    tcb.clear(tcb_flag::kPersist);
    start_rto(tcb);
  }
  return true;
}

void TcpLayer::output(ConnId conn, Tcb& tcb) {
  switch (tcb.state) {
    case TcpState::kEstablished:
    case TcpState::kCloseWait:
    case TcpState::kFinWait1:
    case TcpState::kClosing:
    case TcpState::kLastAck:
      break;
    default:
      return;
  }
  const bool fin_queued = tcb.has(tcb_flag::kFinQueued);
  const std::uint32_t room = payload_room(conn, tcb);
  for (;;) {
    const std::uint32_t avail =
        tcb.snd_end > tcb.snd_nxt ? static_cast<std::uint32_t>(tcb.snd_end - tcb.snd_nxt) : 0;
    const std::uint32_t flight = static_cast<std::uint32_t>(tcb.snd_nxt - tcb.snd_una);
    // RFC 3042 limited transmit: the first two duplicate ACKs each allow one more segment
    // of new data beyond cwnd, so a small window can still produce a third duplicate ACK.
    const std::uint32_t limited_transmit =
        tcb.has(tcb_flag::kInRecovery) ? 0 : std::min<std::uint32_t>(tcb.dupacks, 2) * tcb.snd_mss;
    const std::uint32_t wnd = std::min(tcb.snd_wnd, tcb.cwnd + limited_transmit);
    const std::uint32_t usable = wnd > flight ? wnd - flight : 0;
    const std::uint32_t len = std::min({avail, usable, room});
    // The FIN follows the last byte; like Linux it is sent even into a closed window.
    const bool send_fin = fin_queued && tcb.snd_nxt <= tcb.snd_end && tcb.snd_nxt + len == tcb.snd_end;
    if (len == 0 && !send_fin) {
      if (avail > 0 && tcb.snd_wnd <= flight && flight == 0 && !tcb.has(tcb_flag::kPersist)) {
        // RFC 9293 3.8.6.1: zero window with data waiting: probe on the persist timer.
        tcb.set(tcb_flag::kPersist);
        start_rto(tcb);
      }
      break;
    }
    if (len < room && !send_fin) {
      // Nagle (RFC 9293 3.7.4): hold a small segment while data is unacknowledged.
      if (tcb.has(tcb_flag::kNagle) && flight > 0) {
        break;
      }
      // Sender SWS avoidance (3.8.6.2.1): do not dribble a window-limited small segment.
      if (len < avail && flight > 0 && len < tcb.max_snd_wnd / 2) {
        break;
      }
    }
    const bool retransmission = tcb.snd_nxt < tcb.snd_max;
    send_data_segment(conn, tcb, tcb.snd_nxt, len, send_fin, retransmission);
    tcb.snd_nxt += len + (send_fin ? 1 : 0);
    tcb.snd_max = seq_max(tcb.snd_max, tcb.snd_nxt);
    if (send_fin) {
      break;
    }
  }
  rearm(conn, tcb);
}

void TcpLayer::retransmit_first(ConnId conn, Tcb& tcb) {
  if (tcb.snd_una == tcb.iss) {
    // Our SYN is unacknowledged though the state moved on (close() in SYN-RECEIVED goes to
    // FIN-WAIT-1, RFC 9293 3.10.4): the first thing lost is the SYN-ACK, so resend it. A
    // FIN or data must not take the SYN's sequence number.
    ++stats_.retransmits;
    send_syn(conn, tcb, true);
    return;
  }
  const SeqNum seq = tcb.snd_una;
  // Only bytes sent before (up to snd_max): new bytes here would not move snd_max, and the
  // peer's ACK of them would then be refused as acknowledging unsent data (RFC 5961 5.2).
  const SeqNum sent_end = seq_min(tcb.snd_end, tcb.snd_max);
  const std::uint32_t data = sent_end > seq ? static_cast<std::uint32_t>(sent_end - seq) : 0;
  const std::uint32_t len = std::min<std::uint32_t>(data, payload_room(conn, tcb));
  const bool fin = tcb.has(tcb_flag::kFinQueued) && seq + len == tcb.snd_end && tcb.snd_max > tcb.snd_end;
  if (len == 0 && !fin) {
    return;
  }
  send_data_segment(conn, tcb, seq, len, fin, true);
  const SeqNum end = seq + len + (fin ? 1 : 0);
  if (tcb.snd_nxt < end) {
    tcb.snd_nxt = end;
  }
  start_rto(tcb);
  rearm(conn, tcb);
}

// SACK-based loss recovery (RFC 2018, in the spirit of RFC 6675): resend the next range
// the peer has not SACKed, below the highest SACKed byte.
bool TcpLayer::retransmit_hole(ConnId conn, Tcb& tcb) {
  if (!tcb.has(tcb_flag::kSackOk)) {
    return false;
  }
  Extra* x = find_extra(conn, tcb);
  if (x == nullptr || x->scoreboard.empty()) {
    return false;
  }
  const SeqNum limit = seq_min(tcb.recover, x->scoreboard.highest());
  SeqNum hole_end;
  const SeqNum hole = x->scoreboard.next_hole(seq_max(tcb.snd_una, x->rexmit_next), limit, &hole_end);
  if (!(hole < hole_end) || !(hole < tcb.snd_end)) {
    return false;
  }
  const std::uint32_t len = std::min<std::uint32_t>(
      {static_cast<std::uint32_t>(hole_end - hole), static_cast<std::uint32_t>(tcb.snd_end - hole),
       payload_room(conn, tcb)});
  send_data_segment(conn, tcb, hole, len, false, true);
  x->rexmit_next = hole + len;
  return true;
}

void TcpLayer::send_control(ConnId conn, Tcb& tcb, SeqNum seq, std::uint8_t flags) {
  wire::TcpFields f;
  f.src_port = tcb.key.local_port;
  f.dst_port = tcb.key.remote_port;
  f.seq = seq;
  f.ack = ack_point(tcb);
  f.flags = flags;
  f.window = window_to_advertise(conn, tcb);
  wire::TcpOptions o;
  fill_ack_options(conn, tcb, &o);
  transmit(tcb.key, f, o, {}, kNoConn, 0, 0);
  tcb.last_ack_sent = ack_point(tcb);
}

// The sequence number of a segment without data (ACK, RST). RFC 9293's <SEQ=SND.NXT> is our
// snd_max (snd_nxt goes back on RTO; an older number can fall below the peer's RCV.NXT and
// the ACK be dropped; BSD uses snd_max too). But when we sent beyond the window the peer now
// offers (it shrank it, or trimmed what we sent), a number above its window is unacceptable
// as well (3.10.7.4) and the ACK field is lost with it: stay inside, as Linux's
// tcp_acceptable_seq() does.
SeqNum TcpLayer::acceptable_seq(const Tcb& tcb) const {
  const SeqNum wnd_end = tcb.snd_una + tcb.snd_wnd;
  if (tcb.snd_max <= wnd_end || tcb.snd_una == tcb.iss) {
    return tcb.snd_max;
  }
  return seq_max(tcb.snd_una, wnd_end - 1);  // RCV.NXT <= SEG.SEQ < RCV.NXT+RCV.WND
}

void TcpLayer::send_ack(ConnId conn, Tcb& tcb) {
  send_control(conn, tcb, acceptable_seq(tcb), kAck);
  ack_sent(tcb);
}

void TcpLayer::ack_sent(Tcb& tcb) {
  tcb.unacked_segments = 0;
  tcb.clear(tcb_flag::kAckNow);
  // XTCP: a segment that left without acknowledging held bytes (a push, a duplicate ACK for
  // out-of-order data) does not cancel their ACK deadline: without it a client whose data
  // waits behind a hole, or behind a slow answer, would only ever see its RTO.
  if (!tcb.has(tcb_flag::kAppAck) || tcb.rcv_ack == tcb.rcv_nxt) {
    tcb.delack_at = 0;
  }
}

void TcpLayer::send_syn(ConnId conn, Tcb& tcb, bool with_ack) {
  wire::TcpFields f;
  f.src_port = tcb.key.local_port;
  f.dst_port = tcb.key.remote_port;
  f.seq = tcb.iss;
  f.ack = with_ack ? tcb.rcv_nxt : SeqNum(0);
  f.flags = static_cast<std::uint8_t>(kSyn | (with_ack ? kAck : 0));
  // RFC 7323 2.2: the window of a SYN or SYN-ACK is never scaled.
  f.window = static_cast<std::uint16_t>(std::min<std::size_t>(65535, rx_.free_space(conn)));
  wire::TcpOptions o;
  o.has_mss = true;
  o.mss = config_.mss;
  if (config_.window_scaling && (!with_ack || tcb.has(tcb_flag::kWindowScaleOk))) {
    o.has_window_scale = true;
    o.window_scale = rcv_wscale_;
  }
  if (config_.sack && (!with_ack || tcb.has(tcb_flag::kSackOk))) {
    o.sack_permitted = true;
  }
  if (config_.timestamps && (!with_ack || tcb.has(tcb_flag::kTimestampsOk))) {
    o.has_timestamp = true;
    o.ts_val = ts_now(tcb);
    o.ts_ecr = with_ack ? tcb.ts_recent : 0;
  }
  transmit(tcb.key, f, o, {}, kNoConn, 0, 0);
  if (with_ack) {
    tcb.rcv_adv = tcb.rcv_nxt + f.window;
    tcb.last_ack_sent = tcb.rcv_nxt;
  }
  tcb.snd_nxt = tcb.iss + 1;
  tcb.snd_max = seq_max(tcb.snd_max, tcb.snd_nxt);
  if (tcb.backoff == 0) {
    tcb.rtt_start = now_tick();
  }
  start_rto(tcb);
  rearm(conn, tcb);
}

void TcpLayer::send_rst(Tcb& tcb) {
  wire::TcpFields f;
  f.src_port = tcb.key.local_port;
  f.dst_port = tcb.key.remote_port;
  f.seq = acceptable_seq(tcb);
  f.ack = tcb.rcv_nxt;
  f.flags = kRst | kAck;
  ++stats_.rst_out;
  transmit(tcb.key, f, wire::TcpOptions{}, {}, kNoConn, 0, 0);
}

// RFC 9293 3.10.7.1: the RST that answers a segment for no connection.
void TcpLayer::send_rst_reply(const Segment& seg) {
  wire::TcpFields f;
  f.src_port = seg.key.local_port;
  f.dst_port = seg.key.remote_port;
  if (seg.has(kAck)) {
    f.seq = seg.ack;
    f.flags = kRst;
  } else {
    f.seq = SeqNum(0);
    f.ack = seg.seq + seg.seq_len;
    f.flags = kRst | kAck;
  }
  ++stats_.rst_out;
  transmit(seg.key, f, wire::TcpOptions{}, {}, kNoConn, 0, 0);
}

void TcpLayer::send_window_probe(ConnId conn, Tcb& tcb) {
  if (tcb.snd_wnd > 0 || tcb.snd_end == tcb.snd_una) {
    tcb.clear(tcb_flag::kPersist);
    tcb.backoff = 0;
    output(conn, tcb);
    return;
  }
  // Like Linux: a zero-length segment with an old sequence number makes the receiver
  // answer with its current window, without us having to track a probe byte.
  if (tcb.probes >= config_.max_retransmits) {
    ++stats_.conn_timeouts;
    send_rst(tcb);
    connection_done(conn, tcb, ETIMEDOUT);
    return;
  }
  ++tcb.probes;
  ++stats_.window_probes;
  send_control(conn, tcb, tcb.snd_una - 1, kAck);
  if (tcb.backoff < 16) {
    ++tcb.backoff;
  }
  start_rto(tcb);
}

}  // namespace xtcp
