// The host part of the TCP layer: connection slots and their lifecycle, listeners and the
// TIME-WAIT table, the application's calls, events, and the timer that each busy connection
// has. The other parts: tcp_input.cc (segment arrival, RFC 9293 3.10.7), tcp_handshake.cc,
// tcp_receiver.cc, tcp_sender.cc, tcp_recovery.cc (with congestion control behind
// congestion.h) and tcp_conns.cc (hot and cold connection state).
#include "stack/tcp/tcp_layer.h"

#include <algorithm>
#include <cerrno>

#include "stack/tcp/segment.h"

namespace xtcp {

// Settles (packs back when quiet) the connection an application call worked on, on every
// way out of the call.
class TcpLayer::SettleOnReturn {
 public:
  SettleOnReturn(TcpLayer& layer, ConnId conn) : layer_(layer), conn_(conn) {}
  ~SettleOnReturn() { layer_.settle(conn_); }
  SettleOnReturn(const SettleOnReturn&) = delete;
  SettleOnReturn& operator=(const SettleOnReturn&) = delete;

 private:
  TcpLayer& layer_;
  ConnId conn_;
};

const char* to_string(TcpState s) {
  static constexpr const char* kNames[kTcpStateCount] = {
      "CLOSED",     "LISTEN",     "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1",
      "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING",  "LAST-ACK",     "TIME-WAIT"};
  return kNames[static_cast<int>(s)];
}

const char* to_string(TcpEventType t) {
  switch (t) {
    case TcpEventType::kAcceptable: return "acceptable";
    case TcpEventType::kConnected: return "connected";
    case TcpEventType::kReadable: return "readable";
    case TcpEventType::kWritable: return "writable";
    case TcpEventType::kPeerClosed: return "peer_closed";
    case TcpEventType::kClosed: return "closed";
  }
  return "unknown";
}

TcpLayer::TcpLayer(const TcpConfig& config, Ipv4Layer& ip, const Clock& clock, RxStore& rx,
                   TxStore& tx)
    : config_(config),
      ip_(ip),
      clock_(clock),
      rx_(rx),
      tx_(tx),
      // One tick before now: tick 0 means "unset", so the first millisecond must not map
      // to it (tick() would bump it to 1 and timers armed then would fire 1 ms early).
      epoch_(clock.now() - kNsPerMs),
      isn_(random_sip_key()),
      cookies_(random_sip_key()),
      conns_(config.max_connections),
      flows_(conn_keys_, config.max_connections),
      wheel_(ms(1), clock.now()),
      time_wait_(config.max_time_wait != 0 ? config.max_time_wait : config.max_connections) {
  // RFC 7323 2.2: the smallest shift that lets our largest receive window be advertised.
  const std::size_t cap = rx_.capacity(0);
  while (rcv_wscale_ < wire::kMaxWindowScale && (cap >> rcv_wscale_) > 65535) {
    ++rcv_wscale_;
  }
  if (!config_.window_scaling) {
    rcv_wscale_ = 0;
  }
  ip_.set_upper(this);
}

TcpLayer::~TcpLayer() { ip_.set_upper(nullptr); }

// ---- time -----------------------------------------------------------------------------

Tick TcpLayer::tick(TimeNs t) const {
  const auto v = static_cast<Tick>((t - epoch_) / kNsPerMs);
  return v == 0 ? 1 : v;
}
Tick TcpLayer::now_tick() const { return tick(clock_.now()); }
Tick TcpLayer::deadline_tick(TimeNs delay) const {
  // Round up so a timer never fires before its delay has fully passed.
  return tick(clock_.now() + delay + kNsPerMs - 1);
}
TimeNs TcpLayer::tick_time(Tick t) const {
  const TimeNs now = clock_.now();
  const auto delta = static_cast<std::int32_t>(t - tick(now));
  return now - (now - epoch_) % kNsPerMs + static_cast<TimeNs>(delta) * kNsPerMs;
}
std::uint32_t TcpLayer::ts_now(const Tcb& tcb) const {
  return static_cast<std::uint32_t>((clock_.now() - epoch_) / kNsPerMs) + tcb.ts_offset;
}

// ---- slots ------------------------------------------------------------------------------

Tcb* TcpLayer::lookup(ConnId conn) {
  return conns_.live(conn) ? &open(conn) : nullptr;
}
// Read-only: a quiet connection is unpacked into a scratch Tcb, not attached.
const Tcb* TcpLayer::lookup(ConnId conn) const {
  if (!conns_.live(conn)) {
    return nullptr;
  }
  if (conns_.attached(conn)) {
    return &conns_.cold(conn);
  }
  unpack(conns_.hot(conn), conn, scratch_);
  return &scratch_;
}

// A connection the application holds a handle to.
Tcb* TcpLayer::app_tcb(ConnId conn) {
  Tcb* t = lookup(conn);
  if (t == nullptr || !t->has(tcb_flag::kAppOwned) || t->has(tcb_flag::kAppClosed)) {
    return nullptr;
  }
  return t;
}

void TcpLayer::init_tcb(Tcb& tcb, const FlowKey& key) {
  const ConnId self = tcb.self;
  tcb = Tcb{};
  tcb.self = self;
  tcb.key = key;
  tcb.rto_us = static_cast<std::uint32_t>(config_.initial_rto / kNsPerUs);
  tcb.ts_offset = isn_.timestamp_offset(key);
  tcb.ssthresh = UINT32_MAX;
  if (config_.nagle) {
    tcb.set(tcb_flag::kNagle);
  }
  if (config_.delayed_ack) {
    tcb.set(tcb_flag::kDelayedAck);
  }
  if (config_.keepalive) {
    tcb.set(tcb_flag::kKeepalive);
  }
  tcb.last_activity = now_tick();
}

std::int64_t TcpLayer::alloc_conn(const FlowKey& key) {
  const ConnId id = conns_.connections() < config_.max_connections ? conns_.alloc() : kNoConn;
  if (id == kNoConn) {
    ++stats_.drop_no_memory;
    if (config_.logger != nullptr) {
      config_.logger->report(LogKind::kConnTableFull, LogLevel::kWarning, clock_.now(),
                             "tcp: connection table full (%u connections): a new connection was refused",
                             config_.max_connections);
    }
    return -ENOMEM;
  }
  init_tcb(conns_.cold(id), key);
  TcbHot& hot = conns_.hot(id);
  hot.key = key;
  hot.state = TcpState::kClosed;  // live; the rest of the record is written when it goes quiet
  flows_.insert(key, id);
  ++state_counts_[static_cast<int>(TcpState::kClosed)];
  return id;
}

void TcpLayer::free_conn(ConnId conn) {
  Tcb& tcb = open(conn);
  flows_.erase(tcb.key, conn);
  wheel_.cancel(conns_.cold_index(conn));
  if (tcb.has(tcb_flag::kHasExtra)) {
    auto it = extras_.find(conn);
    if (it != extras_.end()) {
      ooo_bytes_total_ -= it->second.ooo.bytes();
      extras_.erase(it);
    }
  }
  rx_.promised(conn, promise_of(tcb), 0);  // its window lapses with it
  rx_.release(conn);
  tx_.release(conn);
  --state_counts_[static_cast<int>(tcb.state)];
  conns_.free(conn);
}

void TcpLayer::set_state(Tcb& tcb, TcpState s) {
  --state_counts_[static_cast<int>(tcb.state)];
  ++state_counts_[static_cast<int>(s)];
  tcb.state = s;
}

std::array<std::uint64_t, kTcpStateCount> TcpLayer::connections_by_state() const {
  auto counts = state_counts_;
  counts[static_cast<int>(TcpState::kListen)] = listeners_.size();
  // Connections finished but not yet closed by the application are not "CLOSED" sockets
  // in the kernel's sense either; TIME-WAIT entries are counted from their own table.
  counts[static_cast<int>(TcpState::kTimeWait)] += time_wait_.size();
  return counts;
}

TcpLayer::Extra& TcpLayer::extra(ConnId conn, Tcb& tcb) {
  tcb.set(tcb_flag::kHasExtra);
  return extras_[conn];
}

TcpLayer::Extra* TcpLayer::find_extra(ConnId conn, const Tcb& tcb) {
  if (!tcb.has(tcb_flag::kHasExtra)) {
    return nullptr;
  }
  auto it = extras_.find(conn);
  return it == extras_.end() ? nullptr : &it->second;
}

TcpLayer::Memory TcpLayer::memory() const {
  Memory m{};
  m.hot_blocks = conns_.hot_bytes() + sizeof(*this);
  m.busy_blocks = conns_.cold_bytes();
  for (const auto& [conn, e] : extras_) {
    m.busy_blocks += sizeof(e) + e.ooo.memory_bytes() + 32;  // 32: the map node's overhead
  }
  m.flow_index = flows_.memory_bytes();
  m.time_wait = time_wait_.memory_bytes();
  m.timers = wheel_.memory_bytes();
  return m;
}

// ---- lifecycle --------------------------------------------------------------------------

void TcpLayer::emit(TcpEventType type, ConnId conn, int error) {
  // After close()/abort() the application holds no handle: its id is freed when the
  // connection ends and may then name another one, so it gets no more events.
  const Tcb& tcb = open(conn);
  if (tcb.has(tcb_flag::kAppClosed)) {
    return;
  }
  events_.push_back(TcpEvent{type, conn, tcb.listen_port, error});
}

// The connection reached CLOSED. The slot lives on while the application still holds it
// (so it can learn why) or while it sits unaccepted in an accept queue.
void TcpLayer::connection_done(ConnId conn, Tcb& tcb, int error) {
  if (tcb.state == TcpState::kSynReceived && tcb.has(tcb_flag::kPassive)) {
    auto it = listeners_.find(tcb.listen_port);
    if (it != listeners_.end() && it->second.syn_received > 0) {
      --it->second.syn_received;
    }
  }
  set_state(tcb, TcpState::kClosed);
  tcb.error = static_cast<std::int16_t>(error);
  tcb.rto_at = tcb.delack_at = tcb.keepalive_at = tcb.linger_at = 0;
  wheel_.cancel(conns_.cold_index(conn));
  flows_.erase(tcb.key, conn);
  if (error != 0) {
    // A connection that is down purges what it still had to send at once; received bytes
    // stay readable until the application closes it.
    tx_.release(conn);
    tcb.snd_end = tcb.snd_una;
  }
  if (tcb.has(tcb_flag::kAppOwned) && !tcb.has(tcb_flag::kAppClosed)) {
    if (!tcb.has(tcb_flag::kEventDone)) {
      tcb.set(tcb_flag::kEventDone);
      emit(TcpEventType::kClosed, conn, error);
    }
    return;
  }
  if (tcb.has(tcb_flag::kInAcceptQueue)) {
    return;  // accept() or unlisten() frees it
  }
  free_conn(conn);
}

void TcpLayer::enter_time_wait(ConnId conn, Tcb& tcb) {
  ++stats_.time_wait_entered;
  TimeWaitTable::Entry e{};
  e.key = tcb.key;
  e.snd_nxt = tcb.snd_max;
  e.rcv_nxt = tcb.rcv_nxt;
  e.ts_recent = tcb.ts_recent;
  e.expires = deadline_tick(config_.time_wait);
  e.window = static_cast<std::uint16_t>(std::min<std::uint32_t>(
      65535, static_cast<std::uint32_t>(tcb.rcv_adv - tcb.rcv_nxt) >> tcb.rcv_wscale));
  e.flags = tcb.has(tcb_flag::kTimestampsOk) ? TimeWaitTable::kTimestamps : 0;
  // The control block goes; only the compact flow entry stays, in the TIME-WAIT table.
  connection_done(conn, tcb, 0);
  time_wait_.insert(e);
  stats_.time_wait_recycled = time_wait_.recycled();
}

// ---- application calls -------------------------------------------------------------------

int TcpLayer::listen(std::uint16_t port, const ListenOptions& options) {
  if (port == 0 || options.ack_deadline < 0) {
    return -EINVAL;
  }
  Listener l;
  l.options = options;
  if (!listeners_.emplace(port, l).second) {
    return -EADDRINUSE;
  }
  return 0;
}

int TcpLayer::unlisten(std::uint16_t port) {
  auto it = listeners_.find(port);
  if (it == listeners_.end()) {
    return -ENOENT;
  }
  // Connections nobody accepted are reset (as the kernel does on closing a listener).
  ConnId c = it->second.accept_head;
  listeners_.erase(it);
  while (c != kNoConn) {
    Tcb& t = open(c);
    const ConnId next = t.accept_next;
    t.clear(tcb_flag::kInAcceptQueue);
    if (t.state != TcpState::kClosed) {
      send_rst(t);
    }
    t.set(tcb_flag::kAppClosed);
    connection_done(c, t, ECONNABORTED);
    if (t.state == TcpState::kClosed && lookup(c) != nullptr) {
      free_conn(c);
    }
    c = next;
  }
  return 0;
}

std::int64_t TcpLayer::accept(std::uint16_t port) {
  auto it = listeners_.find(port);
  if (it == listeners_.end()) {
    return -EINVAL;
  }
  Listener& l = it->second;
  while (l.accept_head != kNoConn) {
    const ConnId conn = l.accept_head;
    Tcb& tcb = open(conn);
    l.accept_head = tcb.accept_next;
    if (l.accept_head == kNoConn) {
      l.accept_tail = kNoConn;
    }
    --l.accept_len;
    tcb.accept_next = kNoConn;
    tcb.clear(tcb_flag::kInAcceptQueue);
    if (tcb.state == TcpState::kClosed) {
      free_conn(conn);  // died before anyone accepted it
      continue;
    }
    tcb.set(tcb_flag::kAppOwned | tcb_flag::kAccepted);
    if (rx_.held(conn) > 0 || tcb.has(tcb_flag::kPeerFin)) {
      tcb.set(tcb_flag::kReadableQueued);
      emit(TcpEventType::kReadable, conn);
    }
    if (tcb.has(tcb_flag::kPeerFin)) {
      emit(TcpEventType::kPeerClosed, conn);
    }
    settle(conn);  // out of the accept queue: an idle connection packs now
    return conn;
  }
  return -EAGAIN;
}

std::uint16_t TcpLayer::ephemeral_port(std::uint32_t local_addr, std::uint32_t remote_addr,
                                       std::uint16_t remote_port) {
  const std::uint32_t span = config_.ephemeral_port_max - config_.ephemeral_port_min + 1;
  for (std::uint32_t i = 0; i < span; ++i) {
    next_ephemeral_ = static_cast<std::uint16_t>((next_ephemeral_ + 1) % span);
    const auto port = static_cast<std::uint16_t>(config_.ephemeral_port_min + next_ephemeral_);
    FlowKey k{local_addr, remote_addr, port, remote_port};
    if (!flows_.find(k) && time_wait_.find(k) == nullptr && listeners_.count(port) == 0) {
      return port;
    }
  }
  return 0;
}

std::int64_t TcpLayer::connect(std::uint32_t remote_addr, std::uint16_t remote_port,
                               std::uint16_t local_port, std::uint32_t local_addr) {
  if (remote_port == 0 || remote_addr == 0) {
    return -EINVAL;
  }
  if (local_addr == 0) {
    local_addr = ip_.local_addr();
  } else if (!ip_.is_local(local_addr)) {
    return -EADDRNOTAVAIL;
  }
  if (local_port == 0) {
    local_port = ephemeral_port(local_addr, remote_addr, remote_port);
    if (local_port == 0) {
      return -EADDRNOTAVAIL;
    }
  }
  FlowKey key{local_addr, remote_addr, local_port, remote_port};
  if (flows_.find(key)) {
    return -EADDRINUSE;
  }
  if (TimeWaitTable::Entry* tw = time_wait_.find(key)) {
    time_wait_.erase(tw);  // we are the active opener again: reuse, as Linux tw_reuse does
  }
  const std::int64_t id = alloc_conn(key);
  if (id < 0) {
    return id;
  }
  const auto conn = static_cast<ConnId>(id);
  Tcb& tcb = open(conn);
  tcb.set(tcb_flag::kAppOwned);
  tcb.iss = isn_.isn(key, clock_.now());
  tcb.snd_una = tcb.iss;
  tcb.snd_nxt = tcb.iss;
  tcb.snd_max = tcb.iss;
  tcb.snd_end = tcb.iss + 1;
  // Until the SYN-ACK says what the peer takes, snd_mss holds the path's limit: our own
  // ceiling, lowered by an ICMP "fragmentation needed" that arrives meanwhile (RFC 1191).
  tcb.snd_mss = config_.mss;
  set_state(tcb, TcpState::kSynSent);
  ++stats_.active_opens;
  send_syn(conn, tcb, false);
  return conn;
}

std::int64_t TcpLayer::send(ConnId conn, wire::ByteSpan data) {
  const SettleOnReturn settle_on_return(*this, conn);
  Tcb* tcb = lookup(conn);
  if (tcb == nullptr || !tcb->has(tcb_flag::kAppOwned) || tcb->has(tcb_flag::kAppClosed)) {
    return -EBADF;
  }
  switch (tcb->state) {
    case TcpState::kSynSent:
    case TcpState::kSynReceived:
    case TcpState::kEstablished:
    case TcpState::kCloseWait:
      break;
    case TcpState::kClosed:
      return tcb->error != 0 ? -tcb->error : -ENOTCONN;
    default:
      return -EPIPE;
  }
  if (tcb->has(tcb_flag::kFinQueued)) {
    return -EPIPE;
  }
  const std::size_t n = tx_.append(conn, data);
  tcb->snd_end += static_cast<std::uint32_t>(n);
  // Writable is reported once space frees up after the store filled or refused bytes.
  if (n < data.size() || tx_.free_space(conn) == 0) {
    tcb->set(tcb_flag::kWritableWanted);
  }
  if (tcb->synchronized()) {
    // XTCP: what the application released is ACKed by this very segment (the ACK rides
    // on the answer); if nothing can go out now, the ACK goes alone.
    const bool ack_moved = refresh_app_ack(conn, *tcb);
    output(conn, *tcb);
    if (ack_moved && tcb->last_ack_sent != ack_point(*tcb)) {
      send_ack(conn, *tcb);
    }
  }
  return static_cast<std::int64_t>(n);
}

int TcpLayer::want_writable(ConnId conn) {
  const SettleOnReturn settle_on_return(*this, conn);
  Tcb* tcb = app_tcb(conn);
  if (tcb == nullptr) {
    return -EBADF;
  }
  tcb->set(tcb_flag::kWritableWanted);
  return 0;
}

void TcpLayer::consumed(ConnId conn) {
  const SettleOnReturn settle_on_return(*this, conn);
  Tcb* tcb = lookup(conn);
  if (tcb == nullptr || !tcb->synchronized()) {
    return;
  }
  if (tcb->has(tcb_flag::kAppAck)) {
    if (refresh_app_ack(conn, *tcb)) {
      send_ack(conn, *tcb);  // an ACK without an answer (xtcp_send with len 0)
      rearm(conn, *tcb);
    }
    return;
  }
  if (tcb->has(tcb_flag::kPeerFin)) {
    return;
  }
  tcb->clear(tcb_flag::kReadableQueued);
  // RFC 9293 3.8.6.2.2 (receiver SWS avoidance): announce a larger window only once it has
  // grown by min(half the buffer, one MSS)... here two MSS, as Linux does for bulk flows.
  const std::uint32_t wnd = receive_window(conn, *tcb);
  const SeqNum right = tcb->rcv_nxt + wnd;
  const std::uint32_t growth = right > tcb->rcv_adv ? static_cast<std::uint32_t>(right - tcb->rcv_adv) : 0;
  const std::uint32_t threshold =
      std::min<std::uint32_t>(static_cast<std::uint32_t>(rx_.capacity(conn) / 2), 2u * tcb->snd_mss);
  // A closed window reopens as soon as the increase is worth advertising at all (the
  // RFC's min(buffer/2, MSS), what window_to_advertise() applies); a smaller one would go
  // out as yet another zero window.
  const std::uint32_t sws =
      std::min<std::uint32_t>(static_cast<std::uint32_t>(rx_.capacity(conn) / 2), tcb->snd_mss);
  if (growth >= threshold || (tcb->rcv_adv == tcb->rcv_nxt && growth >= sws)) {
    send_ack(conn, *tcb);
  }
}

void TcpLayer::update_window(ConnId conn) {
  const SettleOnReturn settle_on_return(*this, conn);
  Tcb* tcb = lookup(conn);
  if (tcb == nullptr || !tcb->synchronized() || tcb->state == TcpState::kTimeWait ||
      tcb->has(tcb_flag::kPeerFin)) {
    return;  // the peer sends no more data
  }
  // The store refused bytes inside the window it had offered and has room again: tell the
  // peer now, with the window as it stands (grown if the store allows; never shrunk,
  // RFC 9293 3.8.6.2.2), rather than leave it to its retransmission backoff. The ACK point
  // is unchanged, so for a sender with those bytes in flight this is a duplicate ACK
  // (RFC 5681 3.2: with the immediate ACKs sent when they were refused it may trigger
  // their fast retransmission); a window that had closed reopens.
  const std::uint32_t wnd = receive_window(conn, *tcb);
  const auto cap = static_cast<std::uint32_t>(std::min<std::size_t>(rx_.capacity(conn), UINT32_MAX));
  const std::uint32_t sws = std::min<std::uint32_t>(cap / 2, tcb->snd_mss);
  if (wnd == 0 || (promise_of(*tcb) == 0 && wnd < sws && wnd < cap)) {
    return;  // a closed window would stay closed (receiver SWS avoidance): nothing to tell
  }
  ++stats_.window_updates;
  send_ack(conn, *tcb);
}

void TcpLayer::grow_window(ConnId conn) {
  const SettleOnReturn settle_on_return(*this, conn);
  Tcb* tcb = lookup(conn);
  if (tcb == nullptr || !tcb->synchronized() || tcb->has(tcb_flag::kPeerFin) ||
      promise_of(*tcb) >= 2u * tcb->snd_mss) {
    return;  // the peer still has window to send more
  }
  // Windows start small and grow with use; with application-controlled ACKs they only move
  // with the application's releases. A message not complete yet cannot be released, so
  // when the peer has (almost) used up its window and the store offers more, say so now: a
  // window update, the ACK point unchanged (RFC 9293 3.8.6.2.2: an increase of at least
  // min(buffer / 2, MSS)).
  const std::uint32_t wnd = receive_window(conn, *tcb);
  const auto cap = static_cast<std::uint32_t>(std::min<std::size_t>(rx_.capacity(conn), UINT32_MAX));
  const auto promise = static_cast<std::uint32_t>(promise_of(*tcb));
  if (wnd > promise && wnd - promise >= std::min<std::uint32_t>(cap / 2, tcb->snd_mss)) {
    send_ack(conn, *tcb);
  }
}

int TcpLayer::shutdown(ConnId conn) {
  const SettleOnReturn settle_on_return(*this, conn);
  Tcb* tcb = app_tcb(conn);
  if (tcb == nullptr) {
    return -EBADF;
  }
  switch (tcb->state) {
    case TcpState::kSynSent:
      connection_done(conn, *tcb, 0);
      return 0;
    case TcpState::kSynReceived:
    case TcpState::kEstablished:
      tcb->set(tcb_flag::kFinQueued);
      set_state(*tcb, TcpState::kFinWait1);
      break;
    case TcpState::kCloseWait:
      tcb->set(tcb_flag::kFinQueued);
      set_state(*tcb, TcpState::kLastAck);
      break;
    case TcpState::kClosed:
      return tcb->error != 0 ? -tcb->error : -ENOTCONN;
    default:
      return 0;  // already closing
  }
  output(conn, *tcb);
  return 0;
}

int TcpLayer::close(ConnId conn) {
  const SettleOnReturn settle_on_return(*this, conn);
  Tcb* tcb = app_tcb(conn);
  if (tcb == nullptr) {
    return -EBADF;
  }
  if (tcb->state == TcpState::kClosed) {
    free_conn(conn);
    return 0;
  }
  if (tcb->state == TcpState::kSynSent) {
    // RFC 9293 3.10.4: delete the TCB. Released first, so no kClosed is queued for an id
    // that is freed at once and may name the next connection.
    tcb->set(tcb_flag::kAppClosed);
    connection_done(conn, *tcb, 0);
    return 0;
  }
  // RFC 2525 2.17: closing with unread data aborts, so the peer learns data was lost.
  if (rx_.held(conn) > 0) {
    return abort(conn);
  }
  const int rc = shutdown(conn);
  tcb = lookup(conn);
  if (tcb == nullptr) {
    return rc;
  }
  tcb->set(tcb_flag::kAppClosed);
  if (tcb->state == TcpState::kClosed) {
    free_conn(conn);
  } else if (tcb->state == TcpState::kFinWait2) {
    tcb->linger_at = deadline_tick(config_.fin_wait2_timeout);
    rearm(conn, *tcb);
  }
  return rc < 0 ? rc : 0;
}

int TcpLayer::abort(ConnId conn) {
  const SettleOnReturn settle_on_return(*this, conn);
  Tcb* tcb = app_tcb(conn);
  if (tcb == nullptr) {
    return -EBADF;
  }
  if (tcb->synchronized() || tcb->state == TcpState::kSynSent) {
    if (tcb->synchronized()) {
      send_rst(*tcb);
    }
  }
  tcb->set(tcb_flag::kAppClosed);
  if (tcb->state != TcpState::kClosed) {
    connection_done(conn, *tcb, ECONNABORTED);
  }
  if (lookup(conn) != nullptr && open(conn).state == TcpState::kClosed) {
    free_conn(conn);
  }
  return 0;
}

int TcpLayer::set_nodelay(ConnId conn, bool nodelay) {
  const SettleOnReturn settle_on_return(*this, conn);
  Tcb* tcb = app_tcb(conn);
  if (tcb == nullptr) {
    return -EBADF;
  }
  if (nodelay) {
    tcb->clear(tcb_flag::kNagle);
    output(conn, *tcb);
  } else {
    tcb->set(tcb_flag::kNagle);
  }
  return 0;
}

int TcpLayer::set_keepalive(ConnId conn, bool on) {
  const SettleOnReturn settle_on_return(*this, conn);
  Tcb* tcb = app_tcb(conn);
  if (tcb == nullptr) {
    return -EBADF;
  }
  if (on) {
    tcb->set(tcb_flag::kKeepalive);
    tcb->keepalive_at = deadline_tick(config_.keepalive_idle);
  } else {
    tcb->clear(tcb_flag::kKeepalive);
    tcb->keepalive_at = 0;
  }
  rearm(conn, *tcb);
  return 0;
}

int TcpLayer::info(ConnId conn, ConnInfo* out) const {
  const Tcb* t = lookup(conn);
  if (t == nullptr || out == nullptr) {
    return -EBADF;
  }
  const SeqNum acked = ack_point(*t);
  const std::uint32_t rcv_wnd = t->rcv_adv > acked ? static_cast<std::uint32_t>(t->rcv_adv - acked) : 0;
  *out = ConnInfo{t->state,   t->key,     t->snd_mss, t->cwnd,      t->snd_wnd, t->srtt_us,
                  t->rto_us,  t->snd_una, t->snd_nxt, t->rcv_nxt,   t->error,
                  t->ssthresh, t->rttvar_us, rcv_wnd,  t->backoff};
  return 0;
}

void TcpLayer::poll_events(FunctionRef<void(const TcpEvent&)> on_event) {
  // The callback may call back into the layer and queue more events: swap first.
  std::vector<TcpEvent> batch;
  batch.swap(events_);
  for (const TcpEvent& e : batch) {
    if (e.type == TcpEventType::kReadable && conns_.live(e.conn)) {
      if (conns_.attached(e.conn)) {
        conns_.cold(e.conn).clear(tcb_flag::kReadableQueued);
      } else {
        conns_.hot(e.conn).flags &= ~tcb_flag::kReadableQueued;
      }
    }
    on_event(e);
  }
  if (events_.empty()) {
    batch.clear();
    events_.swap(batch);  // keep the capacity
  }
}

// ---- timers -----------------------------------------------------------------------------

void TcpLayer::rearm(ConnId conn, Tcb& tcb) {
  Tick best = 0;
  for (Tick t : {tcb.rto_at, tcb.delack_at, tcb.keepalive_at, tcb.linger_at, tcb.undo_until}) {
    if (t != 0 && (best == 0 || tick_before_eq(t, best))) {
      best = t;
    }
  }
  if (best == 0) {
    wheel_.cancel(conns_.cold_index(conn));
  } else {
    wheel_.schedule(conns_.cold_index(conn), tick_time(best));
  }
}

void TcpLayer::advance(TimeNs now) {
  // Timers belong to cold slots (only busy connections have them).
  wheel_.advance(now, [this](std::uint32_t cold) {
    const ConnId conn = conns_.cold_at(cold).self;
    on_timer(conn);
    settle(conn);
  });
  time_wait_.expire(tick(now));
}

TimeNs TcpLayer::next_deadline() const {
  TimeNs next = wheel_.next_deadline();
  const Tick tw = time_wait_.next_expiry();
  if (tw != 0) {
    next = std::min(next, tick_time(tw));
  }
  return next;
}

void TcpLayer::on_timer(ConnId conn) {
  Tcb* tcb = lookup(conn);
  if (tcb == nullptr || tcb->state == TcpState::kClosed) {
    return;
  }
  const Tick now = now_tick();
  if (tcb->delack_at != 0 && tick_before_eq(tcb->delack_at, now)) {
    tcb->delack_at = 0;
    if (tcb->has(tcb_flag::kAppAck) && tcb->rcv_ack != tcb->rcv_nxt) {
      tcb->rcv_ack = tcb->rcv_nxt;  // the application's ACK deadline passed: ACK anyway
      ++stats_.ack_deadlines;
    }
    send_ack(conn, *tcb);
  }
  if (tcb->rto_at != 0 && tick_before_eq(tcb->rto_at, now)) {
    tcb->rto_at = 0;
    if (tcb->has(tcb_flag::kTlpArmed)) {
      tcb->clear(tcb_flag::kTlpArmed);
      if (probe_allowed(*tcb)) {
        send_loss_probe(conn, *tcb);
      } else {
        start_rto(*tcb);  // recovery began since the PTO was armed: the RTO takes over
      }
      rearm(conn, *tcb);
      return;
    }
    on_rto(conn, *tcb);
    if (lookup(conn) == nullptr || open(conn).state == TcpState::kClosed) {
      return;
    }
  }
  if (tcb->keepalive_at != 0 && tick_before_eq(tcb->keepalive_at, now)) {
    tcb->keepalive_at = 0;
    on_keepalive(conn, *tcb);
    if (lookup(conn) == nullptr || open(conn).state == TcpState::kClosed) {
      return;
    }
  }
  if (tcb->undo_until != 0 && tick_before_eq(tcb->undo_until, now)) {
    tcb->undo_until = 0;
    tcb->clear(tcb_flag::kUndoArmed);  // no D-SACK came: the resends were needed
  }
  if (tcb->linger_at != 0 && tick_before_eq(tcb->linger_at, now)) {
    tcb->linger_at = 0;
    // Orphaned FIN-WAIT-2: the peer never sent its FIN. Linux drops it silently.
    connection_done(conn, *tcb, ETIMEDOUT);
    return;
  }
  rearm(conn, *tcb);
}

void TcpLayer::on_keepalive(ConnId conn, Tcb& tcb) {
  // Like Linux, also in CLOSE-WAIT: a peer that half-closed and then died would otherwise
  // hold the connection for ever while the application has nothing to send. (FIN-WAIT-2 has
  // its own timeout; the other states have a FIN on the retransmission timer.)
  if (!tcb.has(tcb_flag::kKeepalive) ||
      (tcb.state != TcpState::kEstablished && tcb.state != TcpState::kCloseWait)) {
    return;
  }
  // RFC 1122 4.2.3.6: probe only after keepalive_idle with nothing received; traffic or an
  // answered probe starts the idle time over (Linux: keepalive_time_elapsed()).
  const auto idle = static_cast<Tick>(config_.keepalive_idle / kNsPerMs);
  if (static_cast<std::int32_t>(now_tick() - tcb.last_activity) < static_cast<std::int32_t>(idle)) {
    const Tick at = tcb.last_activity + idle;
    tcb.keepalive_at = at == 0 ? 1 : at;
    return;
  }
  if (tcb.probes >= config_.keepalive_probes) {
    ++stats_.conn_timeouts;
    send_rst(tcb);
    connection_done(conn, tcb, ETIMEDOUT);
    return;
  }
  // RFC 9293 3.8.4: a probe is a segment with SEG.SEQ = SND.NXT-1 and no data.
  ++tcb.probes;
  ++stats_.keepalive_probes;
  send_control(conn, tcb, tcb.snd_una - 1, wire::tcp_flags::kAck);
  tcb.keepalive_at = deadline_tick(config_.keepalive_interval);
}

}  // namespace xtcp
