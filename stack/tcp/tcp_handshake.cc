// The handshake part of the TCP layer: opening connections. A SYN to a listener (RFC 9293
// 3.10.7.2) makes a SYN-RECEIVED connection, or, with the SYN queue full, a SYN cookie
// (RFC 4987) answers without keeping state; an active open's SYN-SENT state (3.10.7.3);
// the options both sides agree on (MSS, window scale, SACK, timestamps: RFC 7323, 2018);
// ESTABLISHED and the accept queue.
#include <algorithm>
#include <cerrno>

#include "stack/tcp/congestion.h"
#include "stack/tcp/segment.h"

namespace xtcp {

using namespace wire::tcp_flags;  // NOLINT

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
  CongestionControl::on_established(tcb, config_.initial_cwnd_segments);
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
  // The cookie SYN-ACK was stateless: its promise is committed now.
  set_rcv_adv(conn, tcb, tcb.rcv_nxt + static_cast<std::uint32_t>(std::min<std::size_t>(65535, rx_.capacity(0))));
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

void TcpLayer::send_syn(ConnId conn, Tcb& tcb, bool with_ack) {
  wire::TcpFields f;
  f.src_port = tcb.key.local_port;
  f.dst_port = tcb.key.remote_port;
  f.seq = tcb.iss;
  f.ack = with_ack ? tcb.rcv_nxt : SeqNum(0);
  f.flags = static_cast<std::uint8_t>(kSyn | (with_ack ? kAck : 0));
  // RFC 7323 2.2: the window of a SYN or SYN-ACK is never scaled.
  // The store's offer: a share it can honour (see RxStore::offer).
  f.window = static_cast<std::uint16_t>(
      std::min<std::size_t>(65535, std::max(promise_of(tcb), rx_.initial_window(conn))));
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
    set_rcv_adv(conn, tcb, tcb.rcv_nxt + f.window);
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

void TcpLayer::established(ConnId conn, Tcb& tcb) {
  set_state(tcb, TcpState::kEstablished);
  ++stats_.established;
  tcb.backoff = 0;
  if (tcb.has(tcb_flag::kKeepalive)) {
    tcb.keepalive_at = deadline_tick(config_.keepalive_idle);
  }
  if (!tcb.has(tcb_flag::kPassive)) {
    emit(TcpEventType::kConnected, conn);
    return;
  }
  auto it = listeners_.find(tcb.listen_port);
  if (it == listeners_.end()) {
    return;
  }
  Listener& l = it->second;
  if (l.syn_received > 0) {
    --l.syn_received;
  }
  tcb.accept_next = kNoConn;
  tcb.set(tcb_flag::kInAcceptQueue);
  if (l.accept_tail == kNoConn) {
    l.accept_head = conn;
  } else {
    open(l.accept_tail).accept_next = conn;
  }
  l.accept_tail = conn;
  ++l.accept_len;
  emit(TcpEventType::kAcceptable, conn);
}

}  // namespace xtcp
