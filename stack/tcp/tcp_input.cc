// Segment arrival, RFC 9293 section 3.10.7 in order, with RFC 5961 (blind attacks),
// RFC 7323 (PAWS), RFC 5681/6582 (fast retransmit, NewReno) and RFC 2018 (SACK).
// Every malformed or unacceptable segment is dropped and counted in TcpStats.
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

void TcpLayer::adopt_syn_options(Tcb& tcb, const wire::TcpOptions& opts, bool /*from_cookie*/) {
  // RFC 9293 3.7.1: without an MSS option assume 536. Clamp tiny MSS values (a peer
  // announcing MSS 1 would make us send a segment per byte; Linux clamps to 48).
  std::uint16_t mss = opts.has_mss ? opts.mss : 536;
  mss = std::clamp<std::uint16_t>(mss, 64, config_.mss);
  // An active open may have learned a smaller path MTU while its SYN was out (see connect()).
  const std::uint16_t path_limit = tcb.state == TcpState::kSynSent ? tcb.snd_mss : config_.mss;
  mss = std::min(mss, path_limit);
  if (config_.window_scaling && opts.has_window_scale) {
    tcb.set(tcb_flag::kWindowScaleOk);
    tcb.snd_wscale = opts.window_scale;
    tcb.rcv_wscale = rcv_wscale_;
  } else {
    tcb.snd_wscale = 0;
    tcb.rcv_wscale = 0;
  }
  if (config_.sack && opts.sack_permitted) {
    tcb.set(tcb_flag::kSackOk);
  }
  if (config_.timestamps && opts.has_timestamp) {
    tcb.set(tcb_flag::kTimestampsOk);
    tcb.ts_recent = opts.ts_val;
    tcb.ts_recent_tick = now_tick();
    // Every segment carries the 12-byte option (off a path limit too: it counts packets).
    mss = static_cast<std::uint16_t>(mss - 12);
  }
  tcb.snd_mss = mss;
  // RFC 6928 initial window; RFC 5681 ssthresh starts arbitrarily high.
  tcb.cwnd = config_.initial_cwnd_segments * tcb.snd_mss;
  tcb.ssthresh = UINT32_MAX / 2;
}

// RFC 9293 3.10.7.2.
void TcpLayer::listen_input(Listener& l, std::uint16_t port, const Segment& seg,
                            const SeqNum* iss) {
  if (seg.has(kRst)) {
    return;
  }
  if (seg.has(kAck)) {
    // Only a listener that sent cookies lately checks an ACK as one (as Linux): any other
    // stray ACK is answered with a RST without computing a hash.
    if (!seg.has(kSyn) && config_.syn_cookies && cookies_outstanding(l)) {
      const std::int64_t conn = open_from_cookie(port, l, seg);
      if (conn >= 0) {
        Segment rest = seg;
        synchronized_input(static_cast<ConnId>(conn), open(static_cast<ConnId>(conn)), rest);
        settle(static_cast<ConnId>(conn));
        return;
      }
    }
    send_rst_reply(seg);
    return;
  }
  if (!seg.has(kSyn)) {
    return;
  }
  if (l.syn_received >= config_.syn_backlog || l.accept_len >= config_.accept_backlog) {
    // RFC 4987 3.6: keep no state; the cookie in our ISN lets the final ACK rebuild it.
    if (config_.syn_cookies && l.accept_len < config_.accept_backlog) {
      if (!cookies_outstanding(l) && config_.logger != nullptr) {
        config_.logger->report(LogKind::kSynCookies, LogLevel::kWarning, clock_.now(),
                               "tcp: port %u: SYN queue full (%u half-open): answering with SYN cookies",
                               port, l.syn_received);
      }
      send_cookie_synack(seg, l);
    } else {
      ++stats_.drop_listen_overflow;
      report_accept_overflow(port);
    }
    return;
  }
  const std::int64_t id = alloc_conn(seg.key);
  if (id < 0) {
    return;
  }
  const auto conn = static_cast<ConnId>(id);
  Tcb& tcb = open(conn);
  tcb.set(tcb_flag::kPassive);
  tcb.listen_port = port;
  tcb.irs = seg.seq;
  tcb.rcv_nxt = seg.seq + 1;
  tcb.rcv_adv = tcb.rcv_nxt;
  if (l.options.app_ack) {
    tcb.set(tcb_flag::kAppAck);  // XTCP: ACKs follow the application
    tcb.rcv_ack = tcb.rcv_nxt;
  }
  tcb.iss = iss != nullptr ? *iss : isn_.isn(seg.key, clock_.now());
  tcb.snd_una = tcb.snd_nxt = tcb.snd_max = tcb.iss;
  tcb.snd_end = tcb.iss + 1;
  tcb.recover = tcb.iss;
  adopt_syn_options(tcb, seg.opts, false);
  tcb.snd_wnd = seg.window;  // RFC 7323 2.2: the window in a SYN is never scaled
  tcb.max_snd_wnd = tcb.snd_wnd;
  tcb.snd_wl1 = seg.seq;
  tcb.snd_wl2 = tcb.iss;
  set_state(tcb, TcpState::kSynReceived);
  ++l.syn_received;
  ++stats_.passive_opens;
  // Data on a SYN is not queued (we would have to hold it before the handshake is
  // complete); the peer retransmits it after our SYN-ACK acknowledges only the SYN.
  send_syn(conn, tcb, true);
}

void TcpLayer::report_accept_overflow(std::uint16_t port) {
  if (config_.logger != nullptr) {
    config_.logger->report(LogKind::kAcceptQueueFull, LogLevel::kWarning, clock_.now(),
                           "tcp: port %u: accept queue full (%u waiting): connection refused",
                           port, config_.accept_backlog);
  }
}

bool TcpLayer::cookies_outstanding(const Listener& l) const {
  // SynCookies accepts a cookie for two 64-second periods: at most 128 s after it was made.
  constexpr Tick kCookieLifetimeMs = 128'000;
  return l.last_cookie_at != 0 && tick_before_eq(now_tick(), l.last_cookie_at + kCookieLifetimeMs);
}

void TcpLayer::send_cookie_synack(const Segment& seg, Listener& l) {
  l.last_cookie_at = now_tick();
  if (l.last_cookie_at == 0) {
    l.last_cookie_at = 1;  // 0 means never
  }
  const std::uint16_t peer_mss = seg.opts.has_mss ? seg.opts.mss : 536;
  const SeqNum cookie = cookies_.make(seg.key, seg.seq, std::min(peer_mss, config_.mss), clock_.now());
  ++stats_.syn_cookies_sent;
  wire::TcpFields f;
  f.src_port = seg.key.local_port;
  f.dst_port = seg.key.remote_port;
  f.seq = cookie;
  f.ack = seg.seq + 1;
  f.flags = kSyn | kAck;
  f.window = static_cast<std::uint16_t>(std::min<std::size_t>(65535, rx_.capacity(0)));
  wire::TcpOptions o;
  o.has_mss = true;
  o.mss = config_.mss;
  if (config_.timestamps && seg.opts.has_timestamp) {
    CookieOptions co;
    co.sack = config_.sack && seg.opts.sack_permitted;
    co.has_window_scale = config_.window_scaling && seg.opts.has_window_scale;
    co.window_scale = seg.opts.window_scale;
    const std::uint32_t now_ts =
        static_cast<std::uint32_t>((clock_.now() - epoch_) / kNsPerMs) + isn_.timestamp_offset(seg.key);
    o.has_timestamp = true;
    o.ts_val = SynCookies::encode_ts(now_ts, co);
    o.ts_ecr = seg.opts.ts_val;
    o.sack_permitted = co.sack;
    if (co.has_window_scale) {
      o.has_window_scale = true;
      o.window_scale = rcv_wscale_;
    }
  }
  transmit(seg.key, f, o, {}, kNoConn, 0, 0);
}

// The ACK that completes a cookie handshake: rebuild the connection from it.
std::int64_t TcpLayer::open_from_cookie(std::uint16_t port, Listener& l, const Segment& seg) {
  const SeqNum peer_isn = seg.seq - 1;
  const auto mss = cookies_.check(seg.key, peer_isn, seg.ack - 1, clock_.now());
  if (!mss) {
    ++stats_.syn_cookies_bad;
    return -EINVAL;
  }
  if (l.accept_len >= config_.accept_backlog) {
    ++stats_.drop_listen_overflow;
    report_accept_overflow(port);
    return -ENOBUFS;
  }
  const std::int64_t id = alloc_conn(seg.key);
  if (id < 0) {
    return id;
  }
  ++stats_.syn_cookies_ok;
  const auto conn = static_cast<ConnId>(id);
  Tcb& tcb = open(conn);
  tcb.set(tcb_flag::kPassive | tcb_flag::kSynFromCookie);
  tcb.listen_port = port;
  tcb.irs = peer_isn;
  tcb.rcv_nxt = seg.seq;
  // The right edge our cookie SYN-ACK advertised (see send_cookie_synack): without it the
  // window would be zero and data on this ACK and the next segments would be cut away.
  tcb.rcv_adv = tcb.rcv_nxt + static_cast<std::uint32_t>(std::min<std::size_t>(65535, rx_.capacity(0)));
  if (l.options.app_ack) {
    tcb.set(tcb_flag::kAppAck);  // XTCP: ACKs follow the application
    tcb.rcv_ack = tcb.rcv_nxt;
  }
  tcb.iss = seg.ack - 1;
  tcb.snd_una = tcb.iss;
  tcb.snd_nxt = tcb.snd_max = tcb.iss + 1;
  tcb.snd_end = tcb.iss + 1;
  tcb.recover = tcb.iss;
  wire::TcpOptions opts;
  opts.has_mss = true;
  opts.mss = *mss;
  if (seg.opts.has_timestamp) {
    const CookieOptions co = SynCookies::decode_ts(seg.opts.ts_ecr, *mss);
    opts.has_timestamp = true;
    opts.ts_val = seg.opts.ts_val;
    opts.sack_permitted = co.sack;
    opts.has_window_scale = co.has_window_scale;
    opts.window_scale = co.window_scale;
  }
  adopt_syn_options(tcb, opts, true);
  tcb.snd_wl1 = seg.seq - 1;  // let this ACK's window be taken
  tcb.snd_wl2 = tcb.iss;
  set_state(tcb, TcpState::kSynReceived);
  ++l.syn_received;
  ++stats_.passive_opens;
  return conn;
}

// RFC 9293 3.10.7.3.
void TcpLayer::syn_sent_input(ConnId conn, Tcb& tcb, const Segment& seg) {
  if (seg.has(kAck) && (seg.ack <= tcb.iss || seg.ack > tcb.snd_max)) {
    if (!seg.has(kRst)) {
      send_rst_reply(seg);
    }
    return;
  }
  if (seg.has(kRst)) {
    // RFC 5961 3.2: in SYN-SENT a RST counts only if it acknowledges our SYN.
    if (seg.has(kAck)) {
      ++stats_.rst_in;
      ++stats_.conn_resets;
      connection_done(conn, tcb, ECONNREFUSED);
    } else {
      ++stats_.rst_ignored;
    }
    return;
  }
  if (!seg.has(kSyn)) {
    return;
  }
  tcb.irs = seg.seq;
  tcb.rcv_nxt = seg.seq + 1;
  tcb.rcv_adv = tcb.rcv_nxt;
  adopt_syn_options(tcb, seg.opts, false);
  tcb.snd_wnd = seg.window;  // unscaled in a SYN (RFC 7323 2.2)
  tcb.max_snd_wnd = tcb.snd_wnd;
  tcb.snd_wl1 = seg.seq;
  tcb.snd_wl2 = seg.ack;
  if (seg.has(kAck)) {
    tcb.snd_una = seg.ack;
    tcb.recover = seg.ack;
    if (tcb.backoff == 0) {
      // RFC 6298 2.2 first sample; only from a SYN that was not retransmitted (Karn).
      update_rtt(tcb, static_cast<std::uint32_t>(
                          static_cast<std::int64_t>(now_tick() - tcb.rtt_start) * 1000));
    }
    tcb.rto_at = 0;
    established(conn, tcb);
    send_ack(conn, tcb);
    output(conn, tcb);
    rearm(conn, tcb);
    return;
  }
  // Simultaneous open (RFC 9293 figure 7): SYN-RECEIVED, our SYN again with an ACK.
  set_state(tcb, TcpState::kSynReceived);
  send_syn(conn, tcb, true);
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
  tcb.last_activity = now_tick();
  tcb.probes = 0;  // the peer is alive: keepalive and probe counts start over

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

bool TcpLayer::process_rst(ConnId conn, Tcb& tcb, const Segment& seg) {
  if (seg.seq != tcb.rcv_nxt) {
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

bool TcpLayer::process_sack(ConnId conn, Tcb& tcb, const Segment& seg) {
  Extra* x = nullptr;
  std::uint32_t sacked_before = 0;
  for (std::size_t i = 0; i < seg.opts.sack_count; ++i) {
    const wire::SackBlock& b = seg.opts.sack[i];
    ++stats_.sack_blocks_in;
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
  const std::uint32_t mss = tcb.snd_mss;
  if (tcb.has(tcb_flag::kInRecovery)) {
    if (tcb.snd_una >= tcb.recover) {
      // RFC 6582 3.2 step 3: full acknowledgment ends recovery; deflate the window.
      const std::uint32_t flight = static_cast<std::uint32_t>(tcb.snd_max - tcb.snd_una);
      tcb.cwnd = std::min(tcb.ssthresh, std::max(flight, mss) + mss);
      tcb.clear(tcb_flag::kInRecovery);
      tcb.dupacks = 0;
      return;
    }
    // Partial acknowledgment: the next hole is lost too; send it now.
    tcb.cwnd = tcb.cwnd > acked ? tcb.cwnd - acked : mss;
    if (acked >= mss) {
      tcb.cwnd += mss;
    }
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
  // RFC 7661 (Linux tcp_is_cwnd_limited): grow cwnd only when the flight was using it; a
  // sender limited by its application or the peer's window would otherwise inflate cwnd
  // without bound until the 32-bit value wraps and collapses it.
  const std::uint64_t flight_before = static_cast<std::uint32_t>(tcb.snd_max - tcb.snd_una) + acked;
  const bool cwnd_limited = tcb.cwnd < tcb.ssthresh ? 2 * flight_before >= tcb.cwnd
                                                    : flight_before + mss >= tcb.cwnd;
  if (!cwnd_limited) {
    return;
  }
  if (tcb.cwnd < tcb.ssthresh) {
    tcb.cwnd += std::min(acked, mss);  // slow start, RFC 5681 3.1 (with RFC 3465 L = 1)
  } else {
    tcb.cwnd += std::max<std::uint32_t>(1, mss * mss / std::max<std::uint32_t>(tcb.cwnd, 1));
  }
}

void TcpLayer::on_dupack(ConnId conn, Tcb& tcb) {
  ++stats_.dup_acks;
  const std::uint32_t mss = tcb.snd_mss;
  if (tcb.has(tcb_flag::kInRecovery)) {
    tcb.cwnd += mss;  // RFC 5681 3.2 step 4: inflate for the segment that left the network
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
  const std::uint32_t flight = static_cast<std::uint32_t>(tcb.snd_max - tcb.snd_una);
  tcb.ssthresh = std::max(flight / 2, 2 * mss);
  tcb.cwnd = tcb.ssthresh + 3 * mss;
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

void TcpLayer::deliver_in_order(ConnId conn, Tcb& tcb, wire::ByteSpan data) {
  const std::size_t took = rx_.append(conn, data);
  tcb.rcv_nxt += static_cast<std::uint32_t>(took);
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
    ooo_fin = x->ooo.pop_contiguous(&tcb.rcv_nxt, [&](wire::ByteSpan part) {
      const std::size_t took = rx_.append(conn, part);
      stats_.bytes_in += took;
      return took;
    });
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
  tcb.rcv_nxt += 1;
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
