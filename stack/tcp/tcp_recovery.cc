// Loss recovery of the TCP layer: the RTT estimate and the retransmission timer (RFC 6298),
// duplicate ACKs and fast retransmit/recovery (RFC 5681, NewReno RFC 6582, limited and early
// retransmit RFC 3042/5827), the SACK scoreboard and SACK-based loss detection (RFC 2018,
// 6675), the tail loss probe (RFC 8985 7). What changes the congestion window is the
// congestion control's (congestion.h); this part decides when and what to resend.
#include <algorithm>

#include "stack/tcp/congestion.h"
#include "stack/tcp/segment.h"

namespace xtcp {

using namespace wire::tcp_flags;  // NOLINT

void TcpLayer::update_rtt(Tcb& tcb, std::uint32_t r) {
  // RFC 6298 2.2-2.3 with alpha = 1/8, beta = 1/4; G = 1 ms (our tick).
  r = std::max<std::uint32_t>(r, 1);
  if (tcb.srtt_us == 0) {
    tcb.srtt_us = r;
    tcb.rttvar_us = r / 2;
  } else {
    const std::uint32_t delta = tcb.srtt_us > r ? tcb.srtt_us - r : r - tcb.srtt_us;
    tcb.rttvar_us = (3 * tcb.rttvar_us + delta) / 4;
    tcb.srtt_us = (7 * tcb.srtt_us + r) / 8;
  }
  std::uint64_t rto = tcb.srtt_us + std::max<std::uint32_t>(1000, 4 * tcb.rttvar_us);
  rto = std::clamp<std::uint64_t>(rto, static_cast<std::uint64_t>(config_.min_rto / kNsPerUs),
                                  static_cast<std::uint64_t>(config_.max_rto / kNsPerUs));
  tcb.rto_us = static_cast<std::uint32_t>(rto);
}

bool TcpLayer::process_sack(ConnId conn, Tcb& tcb, const Segment& seg) {
  Extra* x = nullptr;
  std::uint32_t sacked_before = 0;
  for (std::size_t i = 0; i < seg.opts.sack_count; ++i) {
    const wire::SackBlock& b = seg.opts.sack[i];
    ++stats_.sack_blocks_in;
    // RFC 2883: a first block below the cumulative ACK, or inside the second block, reports
    // a segment that arrived twice (D-SACK). Not loss information; evidence for undo.
    const bool dsack = i == 0 && b.left < b.right &&
                       (b.right <= seg.ack || (seg.opts.sack_count > 1 && seg.opts.sack[1].left <= b.left &&
                                               b.right <= seg.opts.sack[1].right));
    if (dsack) {
      ++stats_.dsack_blocks_in;
      if (tcb.has(tcb_flag::kUndoArmed) && tcb.undo_marker <= b.left && b.right <= tcb.undo_high &&
          tcb.undo_retrans > 0) {
        --tcb.undo_retrans;
        try_undo(tcb);
      }
      continue;
    }
    // RFC 2018 / RFC 6675: blocks must be non-empty and within what we sent and is unacked.
    if (!(b.left < b.right) || b.left < tcb.snd_una || b.right > tcb.snd_max ||
        b.left < seg.ack) {
      ++stats_.sack_blocks_invalid;
      continue;
    }
    if (x == nullptr) {
      x = &extra(conn, tcb);
      sacked_before = x->scoreboard.sacked_bytes();
    }
    x->scoreboard.add(b.left, b.right);
  }
  return x != nullptr && x->scoreboard.sacked_bytes() > sacked_before;
}

void TcpLayer::on_new_ack(ConnId conn, Tcb& tcb, std::uint32_t acked) {
  if (tcb.has(tcb_flag::kInRecovery)) {
    if (tcb.snd_una >= tcb.recover) {
      // RFC 6582 3.2 step 3: full acknowledgment ends recovery; deflate the window.
      CongestionControl::on_exit_recovery(tcb, static_cast<std::uint32_t>(tcb.snd_max - tcb.snd_una));
      tcb.clear(tcb_flag::kInRecovery);
      tcb.dupacks = 0;
      return;
    }
    // Partial acknowledgment: the next hole is lost too; send it now.
    CongestionControl::on_partial_ack(tcb, acked);
    if (!retransmit_hole(conn, tcb)) {
      // With SACK, holes below rexmit_next were already resent in this recovery: sending
      // the one at snd_una again would duplicate it (RFC 6675 resends each hole once; a
      // lost retransmission is left to the RTO). Without SACK, NewReno resends it.
      const Extra* x = find_extra(conn, tcb);
      if (!(tcb.has(tcb_flag::kSackOk) && x != nullptr && tcb.snd_una < x->rexmit_next)) {
        retransmit_first(conn, tcb);
      }
    }
    return;
  }
  tcb.dupacks = 0;
  CongestionControl::on_ack(tcb, acked, static_cast<std::uint64_t>(tcb.snd_max - tcb.snd_una) + acked);
}

void TcpLayer::on_dupack(ConnId conn, Tcb& tcb) {
  ++stats_.dup_acks;
  const std::uint32_t mss = tcb.snd_mss;
  if (tcb.has(tcb_flag::kInRecovery)) {
    CongestionControl::on_dupack_in_recovery(tcb);
    retransmit_hole(conn, tcb);
    return;
  }
  ++tcb.dupacks;
  // RFC 6675 4 (IsLost): DupThresh duplicate ACKs, or DupThresh segments' worth of data
  // SACKed above snd_una, say the first unacknowledged segment is lost.
  const Extra* board = find_extra(conn, tcb);
  const bool sack_says_lost = board != nullptr && board->scoreboard.sacked_bytes() >= 3 * mss;
  // RFC 5827 early retransmit: with fewer than four segments outstanding and nothing new
  // that could be sent, three duplicate ACKs can never come; lower the threshold to
  // outstanding segments - 1 so a small flight's loss does not wait for the RTO.
  const std::uint32_t outstanding = static_cast<std::uint32_t>(tcb.snd_max - tcb.snd_una);
  const std::uint32_t segments = (outstanding + mss - 1) / mss;
  // With SACK the evidence is the SACKed data (RFC 5827 3.2): all but the first segment.
  const bool nothing_new = tcb.snd_nxt >= tcb.snd_end || tcb.snd_wnd <= outstanding;
  bool early = false;
  if (segments >= 2 && segments < 4 && nothing_new) {
    early = tcb.has(tcb_flag::kSackOk)
                ? board != nullptr && board->scoreboard.sacked_bytes() + mss >= outstanding
                : static_cast<std::uint32_t>(tcb.dupacks) + 1 >= segments;
  }
  if (tcb.dupacks < 3 && !sack_says_lost && !early) {
    return;  // limited transmit (RFC 3042) lets output() send new data meanwhile
  }
  // RFC 6582 3.2 step 2: only when the ACK covers more than the last recovery point, so
  // duplicate ACKs caused by our own retransmissions do not start a second recovery.
  if (!(tcb.snd_una > tcb.recover)) {
    return;
  }
  arm_undo(tcb);
  CongestionControl::on_enter_recovery(tcb, static_cast<std::uint32_t>(tcb.snd_max - tcb.snd_una));
  tcb.recover = tcb.snd_max;
  tcb.set(tcb_flag::kInRecovery);
  if (Extra* x = find_extra(conn, tcb)) {
    x->scoreboard.trim(tcb.snd_una);
  }
  ++stats_.fast_retransmits;
  tcb.clear(tcb_flag::kRttTiming);
  retransmit_first(conn, tcb);
  if (Extra* x = find_extra(conn, tcb)) {
    x->rexmit_next = tcb.snd_una + tcb.snd_mss;
  }
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
    CongestionControl::on_probe_repaired(tcb, static_cast<std::uint32_t>(tcb.snd_max - tcb.snd_una));
  }
  tcb.clear(tcb_flag::kTlpOut | tcb_flag::kTlpResent);
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

void TcpLayer::on_rto(ConnId conn, Tcb& tcb) {
  if (tcb.has(tcb_flag::kPersist)) {
    send_window_probe(conn, tcb);
    return;
  }
  ++stats_.rto_expirations;
  int limit = config_.max_retransmits;
  if (tcb.state == TcpState::kSynSent) {
    limit = config_.max_syn_retransmits;
  } else if (tcb.state == TcpState::kSynReceived) {
    limit = config_.max_synack_retransmits;
  }
  // RFC 1122 4.2.2.17: a peer that keeps its window closed MUST not be timed out while it
  // answers our probes. With data in flight and a zero window our retransmissions are those
  // probes: give up only once it has been silent for 2*max_rto (Linux: TCP_RTO_MAX).
  const bool closed_window_alive =
      tcb.state >= TcpState::kEstablished && tcb.snd_wnd == 0 &&
      static_cast<std::int32_t>(now_tick() - tcb.last_activity) <
          static_cast<std::int32_t>(2 * config_.max_rto / kNsPerMs);
  if (tcb.backoff >= limit && !closed_window_alive) {
    ++stats_.conn_timeouts;
    if (tcb.synchronized()) {
      send_rst(tcb);
    }
    connection_done(conn, tcb, ETIMEDOUT);
    return;
  }
  if (tcb.backoff < UINT8_MAX) {
    ++tcb.backoff;
  }
  tcb.clear(tcb_flag::kRttTiming);  // Karn: never time a retransmitted segment
  if (tcb.state == TcpState::kSynSent || tcb.state == TcpState::kSynReceived) {
    ++stats_.retransmits;
    send_syn(conn, tcb, tcb.state == TcpState::kSynReceived);
    return;
  }
  // RFC 6582 leaves recovery on RTO.
  arm_undo(tcb);
  CongestionControl::on_rto(tcb, static_cast<std::uint32_t>(tcb.snd_max - tcb.snd_una));
  tcb.clear(tcb_flag::kInRecovery);
  tcb.dupacks = 0;
  tcb.recover = tcb.snd_max;
  if (Extra* x = find_extra(conn, tcb)) {
    x->scoreboard.clear();  // the peer may have reneged; resend everything unacknowledged
  }
  tcb.snd_nxt = tcb.snd_una;
  retransmit_first(conn, tcb);
}

void TcpLayer::arm_undo(Tcb& tcb) {
  if (tcb.has(tcb_flag::kUndoArmed)) {
    return;  // a second reduction in the same episode: the window before the first counts
  }
  tcb.set(tcb_flag::kUndoArmed);
  tcb.prior_cwnd = tcb.cwnd;
  tcb.prior_ssthresh = tcb.ssthresh;
  tcb.undo_marker = tcb.snd_una;
  tcb.undo_high = tcb.snd_max;
  tcb.undo_retrans = 0;
  tcb.undo_until = 0;
}

void TcpLayer::try_undo(Tcb& tcb) {
  if (!tcb.has(tcb_flag::kUndoArmed) || tcb.undo_retrans != 0) {
    return;
  }
  // Every segment resent in this episode reached the peer twice: the originals were not
  // lost, only late. Give back the window (RFC 3708 / Linux tcp_undo_cwnd_reduction).
  tcb.cwnd = std::max(tcb.cwnd, tcb.prior_cwnd);
  tcb.ssthresh = std::max(tcb.ssthresh, tcb.prior_ssthresh);
  tcb.clear(tcb_flag::kInRecovery | tcb_flag::kUndoArmed);
  tcb.undo_until = 0;
  tcb.dupacks = 0;
  tcb.backoff = 0;
  ++stats_.spurious_undone;
}

}  // namespace xtcp
