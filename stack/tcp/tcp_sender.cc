// The sending part of the TCP layer: the send loop over what the windows allow (RFC 9293
// 3.7.4 Nagle, 3.8.6.2.1 sender SWS avoidance, the congestion window), data segments, ACKs,
// RSTs and zero-window probes (3.8.6.1). A segment is built in the IP layer's buffer, which
// adds the IPv4 header. Its state is the send sequence space of the Tcb.
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
    if (tcb.has(tcb_flag::kUndoArmed) && tcb.undo_retrans < UINT16_MAX) {
      if (tcb.undo_retrans++ == 0) {
        tcb.undo_tsval = o.has_timestamp ? o.ts_val : 0;
      }
    }
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
