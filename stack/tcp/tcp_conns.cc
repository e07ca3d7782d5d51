// A connection's two forms (see conn_store.h): the full Tcb while it is busy, the 64-byte
// TcbHot while it is quiet. quiet() says when every field outside the hot record has the
// value unpack() would give it again, so packing loses nothing the connection needs (the
// peer's window may come back rounded down to its scale: see packs_window_field).
#include <algorithm>

#include "stack/tcp/tcp_layer.h"

namespace xtcp {

namespace {

// Flags that stand for state kept only in the full Tcb (or a side table): a connection with
// any of them set is not quiet.
constexpr std::uint32_t kBusyFlags = tcb_flag::kAckNow | tcb_flag::kInRecovery | tcb_flag::kPersist |
                                     tcb_flag::kRttTiming | tcb_flag::kHasExtra | tcb_flag::kInAcceptQueue |
                                     tcb_flag::kTlpArmed | tcb_flag::kTlpOut | tcb_flag::kTlpResent |
                                     tcb_flag::kFinQueued | tcb_flag::kEventDone | tcb_flag::kUndoArmed;

// The hot record keeps a window as the 16-bit field the peer would send (wnd >> shift).
// A window that is no multiple of 2^shift, as the unscaled window of the SYN-ACK that
// completes an active open (RFC 7323 2.2: a SYN's window is never scaled), packs rounded
// down: sending a little less than the peer allows is always allowed. Never down to a
// closed window, which would stop the sender.
bool packs_window_field(std::uint32_t wnd, std::uint8_t shift) {
  const std::uint32_t field = wnd >> shift;
  return field <= 65535 && (field > 0 || wnd == 0);
}

}  // namespace

std::uint32_t TcpLayer::derived_rto_us(std::uint32_t srtt_us, std::uint32_t rttvar_us) const {
  if (srtt_us == 0) {
    return static_cast<std::uint32_t>(config_.initial_rto / kNsPerUs);
  }
  // As update_rtt computes it (RFC 6298 2.3).
  const std::uint64_t rto = srtt_us + std::max<std::uint32_t>(1000, 4 * rttvar_us);
  return static_cast<std::uint32_t>(std::clamp<std::uint64_t>(
      rto, static_cast<std::uint64_t>(config_.min_rto / kNsPerUs), static_cast<std::uint64_t>(config_.max_rto / kNsPerUs)));
}

bool TcpLayer::quiet(const Tcb& t) const {
  if (t.state != TcpState::kEstablished || (t.flags & kBusyFlags) != 0) {
    return false;
  }
  // Nothing queued or in flight, our SYN long acknowledged, nothing owed to the peer.
  if (t.snd_nxt != t.snd_una || t.snd_max != t.snd_una || t.snd_end != t.snd_una || t.snd_una == t.iss) {
    return false;
  }
  const SeqNum acked = t.has(tcb_flag::kAppAck) ? t.rcv_ack : t.rcv_nxt;
  if (acked != t.rcv_nxt || t.last_ack_sent != t.rcv_nxt) {
    return false;
  }
  if (t.rto_at != 0 || t.delack_at != 0 || t.keepalive_at != 0 || t.linger_at != 0) {
    return false;
  }
  if (t.backoff != 0 || t.dupacks != 0 || t.probes != 0 || t.unacked_segments != 0 || t.error != 0 ||
      t.accept_next != kNoConn) {
    return false;
  }
  // A spent challenge-ACK budget must last its second (RFC 5961 7): packing would refill it.
  if (t.challenge_acks != 0 && now_tick() - t.challenge_window < 1000) {
    return false;
  }
  if (!packs_window_field(t.snd_wnd, t.snd_wscale) || !packs_window_field(t.max_snd_wnd, t.snd_wscale) ||
      t.snd_wscale > 15 || t.rcv_wscale > 15) {
    return false;
  }
  if (t.rto_us != derived_rto_us(t.srtt_us, t.rttvar_us)) {
    return false;
  }
  return t.listen_port == (t.has(tcb_flag::kPassive) ? t.key.local_port : 0);
}

void TcpLayer::pack(const Tcb& t, TcbHot& h) const {
  h.key = t.key;
  h.state = t.state;
  h.wscales = static_cast<std::uint8_t>(t.snd_wscale << 4 | t.rcv_wscale);
  h.snd_mss = t.snd_mss;
  h.flags = t.flags;
  h.snd_wnd_field = static_cast<std::uint16_t>(t.snd_wnd >> t.snd_wscale);
  h.max_snd_wnd_field = static_cast<std::uint16_t>(t.max_snd_wnd >> t.snd_wscale);
  h.ts_recent_age = static_cast<std::uint16_t>(t.ts_recent_tick >> 16);
  h.snd_una = t.snd_una;
  h.rcv_nxt = t.rcv_nxt;
  h.rcv_adv = t.rcv_adv;
  h.ts_recent = t.ts_recent;
  h.srtt_us = t.srtt_us;
  h.rttvar_us = t.rttvar_us;
  h.cwnd = t.cwnd;
  h.ssthresh = t.ssthresh;
}

void TcpLayer::unpack(const TcbHot& h, ConnId conn, Tcb& t) const {
  t = Tcb{};
  t.self = conn;
  t.key = h.key;
  t.state = h.state;
  t.snd_wscale = static_cast<std::uint8_t>(h.wscales >> 4);
  t.rcv_wscale = static_cast<std::uint8_t>(h.wscales & 15);
  t.flags = h.flags;
  t.snd_mss = h.snd_mss;
  t.listen_port = t.has(tcb_flag::kPassive) ? h.key.local_port : 0;
  // Send side: everything sent is acknowledged; the SYN lies behind. recover below SND.UNA:
  // no old window's duplicate ACKs can come any more (RFC 6582).
  t.snd_una = t.snd_nxt = t.snd_max = t.snd_end = h.snd_una;
  t.iss = h.snd_una - 1;
  t.recover = h.snd_una - 1;
  t.rtt_seq = h.snd_una;
  t.snd_wnd = static_cast<std::uint32_t>(h.snd_wnd_field) << t.snd_wscale;
  t.max_snd_wnd = static_cast<std::uint32_t>(h.max_snd_wnd_field) << t.snd_wscale;
  // The next segment (SEQ >= RCV.NXT) may update the window, as the last one could.
  t.snd_wl1 = h.rcv_nxt - 1;
  t.snd_wl2 = h.snd_una;
  t.cwnd = h.cwnd;
  t.ssthresh = h.ssthresh;
  // Receive side: everything received is acknowledged.
  t.irs = h.rcv_nxt - 1;
  t.rcv_nxt = h.rcv_nxt;
  t.rcv_adv = h.rcv_adv;
  t.last_ack_sent = h.rcv_nxt;
  t.rcv_ack = h.rcv_nxt;
  t.ts_recent = h.ts_recent;
  t.ts_recent_tick = static_cast<Tick>(h.ts_recent_age) << 16;
  t.ts_offset = t.has(tcb_flag::kTimestampsOk) ? isn_.timestamp_offset(h.key) : 0;
  t.srtt_us = h.srtt_us;
  t.rttvar_us = h.rttvar_us;
  t.rto_us = derived_rto_us(h.srtt_us, h.rttvar_us);
  t.last_activity = now_tick();
  t.accept_next = kNoConn;
}

Tcb& TcpLayer::open(ConnId conn) {
  if (!conns_.attached(conn)) {
    const TcbHot hot = conns_.hot(conn);
    // Never fails: the cold slab has a slot for every connection.
    conns_.attach(conn);
    unpack(hot, conn, conns_.cold(conn));
  }
  return conns_.cold(conn);
}

void TcpLayer::settle(ConnId conn) {
  if (!conns_.live(conn) || !conns_.attached(conn)) {
    return;
  }
  const Tcb& t = conns_.cold(conn);
  if (!quiet(t)) {
    return;
  }
  const std::uint32_t cold = conns_.cold_index(conn);
  wheel_.cancel(cold);  // quiet means no deadline; the slot must not keep a stale one
  pack(t, conns_.hot(conn));
  conns_.detach(conn);
}

}  // namespace xtcp
