// Segment arrival, RFC 9293 section 3.10.7 in order: parsing, the connection lookup, then for
// a synchronized connection the checks in the RFC's order (PAWS RFC 7323, sequence number,
// RST and SYN with RFC 5961's blind-attack rules, the ACK field) before the receiver takes
// the text and the FIN (tcp_receiver.cc); TIME-WAIT and ICMP errors. Every malformed or
// unacceptable segment is dropped and counted in TcpStats.
#include <algorithm>
#include <cerrno>

#include "stack/tcp/segment.h"

namespace xtcp {

using namespace wire::tcp_flags;  // NOLINT: flag names read better unqualified here

void TcpLayer::tcp_input(std::uint32_t src, std::uint32_t dst, std::uint8_t /*tos*/,
                         wire::ByteSpan bytes) {
  ++stats_.segs_in;
  wire::TcpError err;
  const wire::TcpView v = wire::TcpView::parse(bytes, &err);
  if (!v.ok()) {
    ++stats_.drop_malformed;
    return;
  }
  if (!v.verify_checksum(src, dst)) {
    ++stats_.drop_bad_checksum;
    return;
  }
  if (v.src_port() == 0 || v.dst_port() == 0) {
    ++stats_.drop_bad_port;
    return;
  }
  Segment seg;
  if (wire::parse_tcp_options(v.options(), &seg.opts) != wire::TcpError::kNone) {
    ++stats_.drop_bad_options;
    return;
  }
  if (seg.opts.window_scale_clamped) {
    ++stats_.wscale_clamped;
  }
  seg.flags = v.flags();
  // Combinations no real stack sends: SYN+FIN, SYN+RST, and segments with none of
  // SYN/ACK/RST (a FIN/PSH/URG-only or null scan). Dropped without an answer.
  if ((seg.has(kSyn) && (seg.has(kFin) || seg.has(kRst))) ||
      (seg.flags & (kSyn | kAck | kRst)) == 0) {
    ++stats_.drop_bad_flags;
    return;
  }
  if (seg.has(kUrg)) {
    ++stats_.urgent_ignored;  // RFC 6093: urgent data is delivered inline; pointer unused
  }
  seg.key = FlowKey{dst, src, v.dst_port(), v.src_port()};
  seg.seq = v.seq();
  seg.ack = v.ack();
  seg.window = v.window();
  seg.urgent = v.urgent_pointer();
  seg.payload = v.payload();
  seg.seq_len = v.seq_length();

  if (auto conn = flows_.find(seg.key)) {
    Tcb& tcb = open(*conn);
    if (tcb.state == TcpState::kSynSent) {
      syn_sent_input(*conn, tcb, seg);
    } else {
      synchronized_input(*conn, tcb, seg);
    }
    settle(*conn);
    return;
  }
  if (TimeWaitTable::Entry* tw = time_wait_.find(seg.key)) {
    time_wait_input(*tw, seg);
    return;
  }
  auto l = listeners_.find(seg.key.local_port);
  if (l != listeners_.end()) {
    listen_input(l->second, seg.key.local_port, seg);
    return;
  }
  closed_input(seg);
}

// RFC 9293 3.10.7.1: no connection. Answer with RST unless the segment is one.
void TcpLayer::closed_input(const Segment& seg) {
  if (seg.has(kRst)) {
    return;
  }
  send_rst_reply(seg);
}

bool TcpLayer::paws_reject(Tcb& tcb, const Segment& seg) {
  if (!tcb.has(tcb_flag::kTimestampsOk) || !seg.opts.has_timestamp || seg.has(kRst)) {
    return false;
  }
  // RFC 7323 5.5: a ts_recent idle for more than 24 days is no longer trusted.
  const Tick idle = now_tick() - tcb.ts_recent_tick;
  if (idle > 24u * 24 * 3600 * 1000) {
    return false;
  }
  return static_cast<std::int32_t>(seg.opts.ts_val - tcb.ts_recent) < 0;
}

// RFC 9293 3.10.7.4 first check, on a segment already known to belong to tcb. Trims the
// segment to the receive window in place (see synchronized_input).
bool TcpLayer::check_sequence(ConnId conn, Tcb& tcb, const Segment& seg) {
  if (seg.has(kRst) && rst_matches_ack_sent(tcb, seg)) {
    return true;  // below RCV.NXT but exactly what our ACKs told the peer (process_rst)
  }
  const std::uint32_t wnd =
      tcb.rcv_adv > tcb.rcv_nxt ? static_cast<std::uint32_t>(tcb.rcv_adv - tcb.rcv_nxt) : 0;
  const SeqNum end = tcb.rcv_nxt + wnd;
  bool ok;
  if (seg.seq_len == 0) {
    // RFC 9293 says RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND, but a sender that filled our
    // window sends its ACKs with SEQ = its SND.NXT = our right edge: accept that too, as
    // Linux (tcp_sequence) and BSD do, or its ACKs are all dropped until data arrives.
    ok = wnd == 0 ? seg.seq == tcb.rcv_nxt
                  : seq_in_range(seg.seq, tcb.rcv_nxt, end) || seg.seq == end;
  } else if (wnd == 0) {
    // Zero window: the data cannot be taken, but ACK/RST still count (RFC 9293 3.10.7.4).
    ok = seg.seq == tcb.rcv_nxt;
  } else {
    ok = seq_in_range(seg.seq, tcb.rcv_nxt, end) ||
         seq_in_range(seg.end() - 1, tcb.rcv_nxt, end);
  }
  if (!ok) {
    ++stats_.drop_out_of_window;
    if (seg.has(kRst)) {
      ++stats_.rst_ignored;
    } else if (seg.has(kSyn)) {
      // RFC 5961 4.2: a SYN gets a (rate-limited) challenge ACK whatever its sequence number.
      send_challenge_ack(conn, tcb);
    } else if (tcb.has(tcb_flag::kAppAck) && seg.seq_len > 0 && seg.end() <= tcb.rcv_nxt &&
               seg.end() > tcb.rcv_ack) {
      // XTCP: a retransmission of data the application holds and has not answered yet. Its
      // ACK will ride on the answer; ACKing the old point now would only be a duplicate.
      ++stats_.held_duplicates;
    } else if (tcb.has(tcb_flag::kAppAck) && seg.seq_len > 0 && tcb.snd_max > tcb.snd_una &&
               tcb.snd_una > tcb.iss && input_backlog_) {
      // XTCP: the request was answered and the client retransmitted it, but our input is
      // behind (a burst): the retransmission may have crossed the answer in our own queue,
      // with the client's ACK of the answer still waiting behind it. Resending the answer
      // would cost a packet and a D-SACK back for each such duplicate, and lengthen the
      // backlog; a lost answer is still resent by the retransmission timer.
      ++stats_.crossed_duplicates;
    } else if (tcb.has(tcb_flag::kAppAck) && seg.seq_len > 0 && tcb.snd_max > tcb.snd_una &&
               tcb.snd_una > tcb.iss) {
      // XTCP: the request was answered but the answer was lost; the client retransmits
      // the request. Resend the cached answer with the ACK, without waking the application.
      ++stats_.answers_from_cache;
      retransmit_first(conn, tcb);
    } else if (seg.seq_len == 0 && !take_ack_budget(tcb)) {
      // A pure ACK answered with a pure ACK can loop forever between two ends that each
      // find the other's out of window (an ACK storm; duplication multiplies it). Like
      // Linux (tcp_oow_rate_limited), such answers share the challenge-ACK budget.
      ++stats_.oow_acks_limited;
    } else {
      tcb.set(tcb_flag::kAckNow);
      send_ack(conn, tcb);
    }
  }
  return ok;
}

// RFC 5961 7: ACKs sent in answer to invalid segments are limited per connection, so one
// attacked flow cannot silence the challenges of all others (the global limit was
// CVE-2016-5696). True if one more may go out now.
bool TcpLayer::take_ack_budget(Tcb& tcb) {
  const Tick now = now_tick();
  if (now - tcb.challenge_window >= 1000) {
    tcb.challenge_window = now;
    tcb.challenge_acks = 0;
  }
  if (tcb.challenge_acks >= config_.challenge_acks_per_second) {
    return false;
  }
  ++tcb.challenge_acks;
  return true;
}

void TcpLayer::send_challenge_ack(ConnId conn, Tcb& tcb) {
  if (!take_ack_budget(tcb)) {
    ++stats_.challenge_acks_limited;
    return;
  }
  ++stats_.challenge_acks;
  send_ack(conn, tcb);
}

void TcpLayer::synchronized_input(ConnId conn, Tcb& tcb, Segment& seg) {

  // A retransmitted SYN while we wait in SYN-RECEIVED: our SYN-ACK was lost.
  if (tcb.state == TcpState::kSynReceived && seg.has(kSyn) && !seg.has(kAck) &&
      seg.seq == tcb.irs) {
    send_syn(conn, tcb, true);
    return;
  }
  // RFC 9293 figure 8 line 6 (simultaneous open): in SYN-RECEIVED the peer's SYN-ACK
  // acknowledges our SYN. Its SYN lies just below RCV.NXT, so the sequence check would drop
  // it; take it as the ACK it carries, as Linux's tcp_validate_incoming does. The window of
  // a SYN is unscaled (RFC 7323 2.2): express it in this connection's scale.
  if (tcb.state == TcpState::kSynReceived && seg.has(kSyn) && seg.has(kAck) && !seg.has(kRst) &&
      seg.seq == tcb.irs && tcb.snd_una < seg.ack && seg.ack <= tcb.snd_max) {
    seg.flags = static_cast<std::uint8_t>(seg.flags & ~kSyn);
    seg.seq = seg.seq + 1;
    seg.seq_len -= 1;
    seg.window = static_cast<std::uint16_t>(seg.window >> tcb.snd_wscale);
  }
  // RFC 7323 5.3 R1: PAWS, before the sequence check.
  if (paws_reject(tcb, seg)) {
    ++stats_.drop_paws;
    if (seg.seq_len > 0 || take_ack_budget(tcb)) {  // see check_sequence: no ACK storms
      send_ack(conn, tcb);
    } else {
      ++stats_.oow_acks_limited;
    }
    return;
  }
  // First: sequence number.
  if (!check_sequence(conn, tcb, seg)) {
    return;
  }
  // Second: RST (RFC 5961 3.2: exact match resets, in-window gets a challenge ACK).
  if (seg.has(kRst)) {
    process_rst(conn, tcb, seg);
    return;
  }
  // Fourth: SYN in a synchronized state (RFC 5961 4.2): challenge ACK, drop.
  if (seg.has(kSyn)) {
    send_challenge_ack(conn, tcb);
    return;
  }
  // The peer is alive: keepalive and probe counts start over. Only now: a segment dropped
  // above, an ignored RST above all, says nothing of the peer's state, and counting it would
  // keep a connection whose peer is gone from ever timing out.
  tcb.last_activity = now_tick();
  tcb.probes = 0;
  // Fifth: ACK.
  if (!seg.has(kAck)) {
    ++stats_.drop_no_ack;
    return;
  }
  // RFC 7323 4.3: remember the peer's timestamp if this segment covers Last.ACK.sent.
  if (tcb.has(tcb_flag::kTimestampsOk) && seg.opts.has_timestamp && seg.seq <= tcb.last_ack_sent &&
      static_cast<std::int32_t>(seg.opts.ts_val - tcb.ts_recent) >= 0) {
    tcb.ts_recent = seg.opts.ts_val;
    tcb.ts_recent_tick = now_tick();
  }
  if (!process_ack(conn, tcb, seg)) {
    return;  // dropped, or the connection is gone
  }
  // Seventh: segment text; eighth: FIN.
  const bool fin = seg.has(kFin);
  if (!seg.payload.empty() || fin) {
    switch (tcb.state) {
      case TcpState::kEstablished:
      case TcpState::kFinWait1:
      case TcpState::kFinWait2:
        if (tcb.has(tcb_flag::kAppClosed) && carries_new_data(tcb, seg)) {
          // RFC 1122 4.2.2.13: new data after CLOSE is data lost; tell the peer with a RST
          // rather than keep bytes nobody will read in the shared buffer (as Linux does).
          ++stats_.aborts_on_data;
          send_rst(tcb);
          connection_done(conn, tcb, ECONNRESET);
          return;
        }
        process_data(conn, tcb, seg);
        break;
      default:
        break;  // CLOSE-WAIT, CLOSING, LAST-ACK: the peer already sent FIN; ignore
    }
  }
  if (lookup(conn) == nullptr || open(conn).state == TcpState::kClosed) {
    return;
  }
  output(conn, tcb);
  if (tcb.has(tcb_flag::kAckNow)) {
    send_ack(conn, tcb);
  }
  rearm(conn, tcb);
}

// Payload beyond RCV.NXT: not only a retransmission of what was received.
bool TcpLayer::carries_new_data(const Tcb& tcb, const Segment& seg) {
  return !seg.payload.empty() && seg.seq + static_cast<std::uint32_t>(seg.payload.size()) > tcb.rcv_nxt;
}

// With application-controlled ACKs, bytes the application still holds lie between the ACK
// point we send and RCV.NXT. A peer that lost its state answers our (challenge) ACK with a
// RST whose sequence number is that ACK (RFC 9293 3.10.7.1), so RFC 5961 3.2's exact match
// is against the ACK point as well as RCV.NXT; a blind attacker has to guess it just as
// exactly.
bool TcpLayer::rst_matches_ack_sent(const Tcb& tcb, const Segment& seg) const {
  return tcb.has(tcb_flag::kAppAck) && seg.seq == tcb.rcv_ack && tcb.rcv_ack != tcb.rcv_nxt;
}

bool TcpLayer::process_rst(ConnId conn, Tcb& tcb, const Segment& seg) {
  if (seg.seq != tcb.rcv_nxt && !rst_matches_ack_sent(tcb, seg)) {
    send_challenge_ack(conn, tcb);
    return false;
  }
  ++stats_.rst_in;
  if (tcb.state == TcpState::kSynReceived && tcb.has(tcb_flag::kPassive)) {
    // RFC 9293 3.10.7.4: a passive open returns to LISTEN; nothing was handed up yet.
    connection_done(conn, tcb, ECONNREFUSED);
    return true;
  }
  ++stats_.conn_resets;
  connection_done(conn, tcb,
                  tcb.state == TcpState::kSynReceived ? ECONNREFUSED
                  : (tcb.state == TcpState::kClosing || tcb.state == TcpState::kLastAck) ? 0
                                                                                          : ECONNRESET);
  return true;
}

bool TcpLayer::process_ack(ConnId conn, Tcb& tcb, const Segment& seg) {
  if (tcb.state == TcpState::kSynReceived) {
    if (!(tcb.snd_una < seg.ack && seg.ack <= tcb.snd_max)) {
      send_rst_reply(seg);
      return false;
    }
    if (tcb.has(tcb_flag::kPassive) && listeners_.count(tcb.listen_port) == 0) {
      // The listener went away during the handshake: nobody could ever accept this
      // connection. Like Linux (request sockets die with their listener), answer as if there
      // were no connection (RFC 9293 3.10.7.1) and free it.
      send_rst_reply(seg);
      connection_done(conn, tcb, ECONNABORTED);
      return false;
    }
    tcb.snd_wnd = static_cast<std::uint32_t>(seg.window) << tcb.snd_wscale;
    tcb.max_snd_wnd = std::max(tcb.max_snd_wnd, tcb.snd_wnd);
    tcb.snd_wl1 = seg.seq;
    tcb.snd_wl2 = seg.ack;
    if (tcb.backoff == 0 && !tcb.has(tcb_flag::kSynFromCookie)) {
      update_rtt(tcb, static_cast<std::uint32_t>(now_tick() - tcb.rtt_start) * 1000);
    }
    tcb.snd_una = seg.ack;
    tcb.rto_at = 0;
    established(conn, tcb);
    if (tcb.has(tcb_flag::kFinQueued)) {
      set_state(tcb, TcpState::kFinWait1);  // closed while still in SYN-RECEIVED
    }
  }
  // RFC 5961 5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT].
  if (seg.ack > tcb.snd_max) {
    ++stats_.drop_ack_invalid;
    send_challenge_ack(conn, tcb);
    return false;
  }
  if (seg.ack < tcb.snd_una - std::max<std::uint32_t>(tcb.max_snd_wnd, 1)) {
    ++stats_.drop_ack_invalid;
    send_challenge_ack(conn, tcb);
    return false;
  }
  const bool window_changed =
      (static_cast<std::uint32_t>(seg.window) << tcb.snd_wscale) != tcb.snd_wnd;
  // RFC 6675 2: an ACK that brings new SACK information counts as a duplicate even when
  // the window changed (a receiving kernel's window moves with every read).
  const bool new_sack_info =
      tcb.has(tcb_flag::kSackOk) && seg.opts.sack_count > 0 && process_sack(conn, tcb, seg);
  const bool acks_new_data = seg.ack > tcb.snd_una;
  if (acks_new_data) {
    const SeqNum from = tcb.oldest_data();
    const SeqNum to = seq_min(seg.ack, tcb.snd_end);
    const std::uint32_t acked_total = static_cast<std::uint32_t>(seg.ack - tcb.snd_una);
    if (to > from) {
      tx_.consume(conn, static_cast<std::size_t>(to - from));
    }
    // RFC 3522 (Eifel detection): an ACK of resent data that echoes a timestamp older than
    // the first resend acknowledges the original: the resend was spurious (RFC 4015: undo).
    if (tcb.has(tcb_flag::kUndoArmed) && tcb.undo_tsval != 0 && seg.opts.has_timestamp &&
        seg.opts.ts_ecr != 0 && static_cast<std::int32_t>(seg.opts.ts_ecr - tcb.undo_tsval) < 0) {
      tcb.undo_retrans = 0;
      try_undo(tcb);
    }
    // The episode's data is all acknowledged: a D-SACK for a resend may still be on its way
    // (it leaves the peer when the resend arrives there); wait about a round trip for it.
    if (tcb.has(tcb_flag::kUndoArmed) && tcb.undo_until == 0 && seg.ack >= tcb.undo_high) {
      tcb.undo_until = deadline_tick(std::max<TimeNs>(2 * static_cast<TimeNs>(tcb.srtt_us) * kNsPerUs, ms(200)));
    }
    // RTT sample: RFC 7323 4.1 from the echoed timestamp, else the timed segment (Karn).
    if (tcb.has(tcb_flag::kTimestampsOk) && seg.opts.has_timestamp && seg.opts.ts_ecr != 0) {
      const std::uint32_t ms_elapsed = ts_now(tcb) - seg.opts.ts_ecr;
      if (ms_elapsed < 600'000) {
        update_rtt(tcb, ms_elapsed * 1000);
      }
    } else if (tcb.has(tcb_flag::kRttTiming) && seg.ack > tcb.rtt_seq) {
      tcb.clear(tcb_flag::kRttTiming);
      update_rtt(tcb, static_cast<std::uint32_t>(now_tick() - tcb.rtt_start) * 1000);
    }
    tcb.snd_una = seg.ack;
    if (tcb.snd_nxt < tcb.snd_una) {
      tcb.snd_nxt = tcb.snd_una;
    }
    tcb.backoff = 0;
    if (Extra* x = find_extra(conn, tcb)) {
      x->scoreboard.trim(tcb.snd_una);
    }
    end_probe_episode(tcb);
    on_new_ack(conn, tcb, acked_total);
    // RFC 6298 5.2/5.3: stop the timer when all is acknowledged, else restart it (or the
    // tail loss probe timeout, RFC 8985 7.2).
    if (tcb.snd_una == tcb.snd_max) {
      tcb.rto_at = 0;
      tcb.clear(tcb_flag::kTlpArmed);
    } else {
      arm_rto_or_probe(tcb);
    }
    if (tcb.has(tcb_flag::kWritableWanted) && tx_.free_space(conn) > 0) {
      tcb.clear(tcb_flag::kWritableWanted);
      emit(TcpEventType::kWritable, conn);
    }
  } else if (seg.ack == tcb.snd_una && seg.payload.empty() && !seg.has(kFin) && seg.window != 0 &&
             (tcb.has(tcb_flag::kSackOk) ? new_sack_info : !window_changed) && tcb.snd_max > tcb.snd_una) {
    // RFC 5681 section 2 definition of a duplicate ACK; a zero window is flow control, not
    // a sign of loss, so those ACKs do not count. With SACK (RFC 6675 section 2) only an
    // ACK that SACKs new data counts: a peer answering a duplicated segment with a D-SACK
    // (RFC 2883, a block below the ACK) saw nothing lost.
    on_dupack(conn, tcb);
  }
  // Window update, RFC 9293 3.10.7.4: only from segments newer than the last update. One
  // that acknowledges new data is newer whatever its sequence number (a retransmission
  // carries the current ACK and window); as Linux's tcp_may_update_window(). Else we would
  // keep applying a stale, larger window to the new SND.UNA and send beyond the peer's edge.
  if (acks_new_data || tcb.snd_wl1 < seg.seq ||
      (tcb.snd_wl1 == seg.seq && tcb.snd_wl2 <= seg.ack)) {
    const bool was_closed = tcb.snd_wnd == 0;
    tcb.snd_wnd = static_cast<std::uint32_t>(seg.window) << tcb.snd_wscale;
    tcb.max_snd_wnd = std::max(tcb.max_snd_wnd, tcb.snd_wnd);
    tcb.snd_wl1 = seg.seq;
    tcb.snd_wl2 = seg.ack;
    if (tcb.snd_wnd > 0 && tcb.has(tcb_flag::kPersist)) {
      tcb.clear(tcb_flag::kPersist);
      tcb.probes = 0;
      tcb.backoff = 0;
      tcb.rto_at = 0;
      if (tcb.snd_max > tcb.snd_una) {
        start_rto(tcb);
      }
    } else if (tcb.snd_wnd > 0 && was_closed && tcb.backoff > 0 && tcb.snd_max > tcb.snd_una) {
      // The window closed with data in flight and our timed-out retransmissions served as
      // probes (see on_rto): that backoff measured the closed window, not loss. Start over.
      tcb.backoff = 0;
      start_rto(tcb);
    }
  }
  const bool fin_acked = tcb.has(tcb_flag::kFinQueued) && tcb.snd_una == tcb.snd_end + 1;
  switch (tcb.state) {
    case TcpState::kFinWait1:
      if (fin_acked) {
        set_state(tcb, TcpState::kFinWait2);
        if (tcb.has(tcb_flag::kAppClosed)) {
          tcb.linger_at = deadline_tick(config_.fin_wait2_timeout);
        }
      }
      break;
    case TcpState::kClosing:
      if (fin_acked) {
        enter_time_wait(conn, tcb);
        return false;
      }
      break;
    case TcpState::kLastAck:
      if (fin_acked) {
        connection_done(conn, tcb, 0);
        return false;
      }
      break;
    default:
      break;
  }
  return true;
}

// RFC 9293 3.10.7.4 in TIME-WAIT, on the compact entry (no control block any more).
void TcpLayer::time_wait_input(TimeWaitTable::Entry& tw, const Segment& seg) {
  if (seg.has(kRst)) {
    ++stats_.rst_ignored;
    return;  // RFC 1337: ignore RST in TIME-WAIT (TIME-WAIT assassination)
  }
  const bool ts = (tw.flags & TimeWaitTable::kTimestamps) != 0;
  if (seg.has(kSyn) && !seg.has(kAck)) {
    // RFC 6191 / RFC 9293 3.10.7.4 note: a new SYN may reopen the 4-tuple if its sequence
    // number (or timestamp) is beyond what the old connection used.
    const bool newer = ts && seg.opts.has_timestamp
                           ? static_cast<std::int32_t>(seg.opts.ts_val - tw.ts_recent) > 0
                           : seg.seq > tw.rcv_nxt;
    if (newer) {
      // RFC 1122 4.2.2.13 (1): the new ISS must lie above every sequence number the old
      // connection used. Like Linux (tcp_timewait_state_process) take SND.NXT + 65537.
      const SeqNum iss = tw.snd_nxt + 65537;
      time_wait_.erase(&tw);
      ++stats_.time_wait_reused;
      auto l = listeners_.find(seg.key.local_port);
      if (l != listeners_.end()) {
        listen_input(l->second, seg.key.local_port, seg, &iss);
      } else {
        closed_input(seg);
      }
      return;
    }
  }
  const bool fin_again = seg.has(kFin) && seg.end() == tw.rcv_nxt;
  if (fin_again) {
    time_wait_.restart(&tw, deadline_tick(config_.time_wait));
  }
  TimeWaitTable::Entry* e = fin_again ? time_wait_.find(seg.key) : &tw;
  if (e == nullptr) {
    return;
  }
  wire::TcpFields f;
  f.src_port = e->key.local_port;
  f.dst_port = e->key.remote_port;
  f.seq = e->snd_nxt;
  f.ack = e->rcv_nxt;
  f.flags = kAck;
  f.window = e->window;
  wire::TcpOptions o;
  if ((e->flags & TimeWaitTable::kTimestamps) != 0) {
    o.has_timestamp = true;
    o.ts_val = static_cast<std::uint32_t>((clock_.now() - epoch_) / kNsPerMs) +
               isn_.timestamp_offset(e->key);
    o.ts_ecr = e->ts_recent;
  }
  transmit(e->key, f, o, {}, kNoConn, 0, 0);
}

void TcpLayer::icmp_error_input(const IcmpErrorInfo& info) {
  const FlowKey key{info.quoted_src, info.quoted_dst, info.quoted_src_port, info.quoted_dst_port};
  auto conn = flows_.find(key);
  if (!conn) {
    return;
  }
  icmp_error_for(*conn, info);
  settle(*conn);
}

void TcpLayer::icmp_error_for(ConnId conn_id, const IcmpErrorInfo& info) {
  const std::optional<ConnId> conn = conn_id;
  Tcb& tcb = open(*conn);
  // RFC 5927 4.1: believe the error only if it quotes a sequence number we have in flight.
  const SeqNum s(info.quoted_tcp_seq);
  if (!(tcb.snd_una <= s && s <= tcb.snd_max)) {
    return;
  }
  ++stats_.icmp_errors;
  constexpr std::uint8_t kDestUnreachable = 3;
  constexpr std::uint8_t kFragNeeded = 4;
  if (info.type == kDestUnreachable && info.code == kFragNeeded && info.next_hop_mtu >= 68) {
    // RFC 1191: shrink the MSS to the path MTU and resend what was lost.
    const std::uint32_t opt = tcb.has(tcb_flag::kTimestampsOk) ? 12 : 0;
    const std::uint32_t mss = info.next_hop_mtu > 40 + opt + 64 ? info.next_hop_mtu - 40 - opt : 64;
    if (mss < tcb.snd_mss) {
      tcb.snd_mss = static_cast<std::uint16_t>(mss);
      // Resend from the first unacknowledged data byte. While our SYN is unacknowledged
      // SND.UNA is the SYN's own number: going back there would put SND.NXT below SND.UNA
      // once the SYN-ACK comes (queued bytes then never go out) or a FIN at the ISS. The SYN
      // is not data; resending it is the RTO's job.
      tcb.snd_nxt = tcb.oldest_data();
      output(*conn, tcb);
      rearm(*conn, tcb);
    }
    return;
  }
  // RFC 1122 4.2.3.9: port/protocol unreachable are hard errors; abort only a connection
  // still opening (RFC 5461), later they are soft errors: TCP keeps retransmitting.
  constexpr std::uint8_t kProtoUnreach = 2;
  constexpr std::uint8_t kPortUnreach = 3;
  if (tcb.state == TcpState::kSynSent && info.type == kDestUnreachable &&
      (info.code == kProtoUnreach || info.code == kPortUnreach)) {
    connection_done(*conn, tcb, ECONNREFUSED);
  }
}

}  // namespace xtcp
