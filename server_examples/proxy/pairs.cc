#include "server_examples/proxy/pairs.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <xtcp/xtcp.h>

#include <algorithm>
#include <cerrno>

namespace xtcp_proxy {
namespace {

constexpr int kMaxAcceptsPerRound = 4096;
constexpr int kMaxRecvsPerRound = 8192;
constexpr std::size_t kRecvBuffer = 64 * 1024;  // one connection's whole receive window
constexpr auto kMaxIdleSweepEvery = std::chrono::seconds(1);
constexpr auto kMinIdleSweepEvery = std::chrono::milliseconds(50);

int ms_until(Clock::time_point t, Clock::time_point now) {
  if (t <= now) {
    return 0;
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - now).count() + 1;
  return static_cast<int>(std::min<std::int64_t>(ms, 60'000));
}

}  // namespace

PairTable::PairTable(int client_gd, int server_gd, Balancer* balancer, const ProxyOptions& options)
    : gd_{client_gd, server_gd}, balancer_(balancer), options_(options), buf_(kRecvBuffer) {}

int PairTable::run_once(int timeout_ms) {
  xtcp_set readable;
  xtcp_set acceptable;
  XTCP_ZERO(&readable);
  XTCP_ZERO(&acceptable);
  XTCP_SET(gd_[kClient], &readable);
  XTCP_SET(gd_[kServer], &readable);
  XTCP_SET(gd_[kClient], &acceptable);
  const int wait_ms = std::min(timeout_ms, next_timer_ms());
  timeval tv{wait_ms / 1000, (wait_ms % 1000) * 1000};
  const int rc = xtcp_select(std::max(gd_[kClient], gd_[kServer]) + 1, &readable, &acceptable, &tv);
  if (rc < 0) {
    return rc;
  }
  if (rc > 0 && XTCP_ISSET(gd_[kClient], &acceptable)) {
    accept_clients();
  }
  // Writable first: a connect that completed, room for bytes that waited.
  drain_writable(kServer);
  drain_writable(kClient);
  if (rc > 0) {
    drain_recv(kServer);
    drain_recv(kClient);
  }
  sweep_timeouts();
  return 0;
}

int PairTable::next_timer_ms() const {
  const Clock::time_point now = Clock::now();
  int ms = 60'000;
  if (!connect_deadlines_.empty()) {
    ms = std::min(ms, ms_until(connect_deadlines_.front().at, now));
  }
  if (options_.idle_timeout.count() > 0 && open_ > 0) {
    ms = std::min(ms, ms_until(next_idle_sweep_, now));
  }
  return ms;
}

// ---- opening ------------------------------------------------------------------------------

void PairTable::accept_clients() {
  for (int i = 0; i < kMaxAcceptsPerRound; ++i) {
    const int cd = xtcp_accept(gd_[kClient]);
    if (cd < 0) {
      return;
    }
    if (options_.max_pairs != 0 && open_ >= options_.max_pairs) {
      ++refused_limit_;
      xtcp_abort(gd_[kClient], cd);  // beyond --max-connections: refused with RST
      continue;
    }
    std::uint32_t p;
    if (!free_.empty()) {
      p = free_.back();
      free_.pop_back();
    } else {
      p = static_cast<std::uint32_t>(pairs_.size());
      pairs_.emplace_back();
    }
    Pair& pair = pairs_[p];
    pair.in_use = true;
    pair.half[kClient].cd = cd;
    pair.last_active = Clock::now();
    sockaddr_in sa{};
    if (xtcp_pars(gd_[kClient], cd, &sa) == 0) {
      pair.client_addr = ntohl(sa.sin_addr.s_addr);
      pair.client_port = ntohs(sa.sin_port);
    }
    xtcp_set_user_data(gd_[kClient], cd, tag(p, kClient));
    ++open_;
    ++total_;
    connect_next(p);
  }
}

void PairTable::connect_next(std::uint32_t p) {
  Pair& pair = pairs_[p];
  const Clock::time_point now = Clock::now();
  for (;;) {
    const int s = balancer_->pick(pair.client_addr, pair.tried, now);
    if (s == Balancer::kNone) {
      // RFC 9293 3.10.7: nobody to carry the connection: the client learns it by a RST.
      ++reset_no_server_;
      xtcp_abort(gd_[kClient], pair.half[kClient].cd);
      release(p);
      return;
    }
    if (pair.tried != 0) {
      ++failovers_;
    }
    pair.tried |= TriedSet{1} << s;
    const ServerAddress& a = balancer_->address(s);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(a.addr);
    sa.sin_port = htons(a.port);
    const int cd = xtcp_connect(gd_[kServer], &sa);
    if (cd < 0) {
      ++connect_failures_;  // no local port or no memory: try the next server
      continue;
    }
    balancer_->opened(s);
    pair.server = static_cast<std::int8_t>(s);
    pair.half[kServer] = Half{};
    pair.half[kServer].cd = cd;
    pair.connecting = true;
    pair.attempt = ++next_attempt_;
    xtcp_set_user_data(gd_[kServer], cd, tag(p, kServer));
    connect_deadlines_.push_back(ConnectDeadline{p, pair.attempt, now + options_.connect_timeout});
    if (options_.header != ProxyHeader::kNone) {
      // Queued now, it leaves with the first segment after the handshake, before any byte
      // of the client's.
      ProxiedFlow flow{pair.client_addr, pair.client_port, options_.listen_addr, options_.listen_port};
      pair.header_left = std::make_unique<std::string>(proxy_header(options_.header, flow));
      send_header(pair);
    }
    return;
  }
}

void PairTable::send_header(Pair& pair) {
  std::string& h = *pair.header_left;
  const int n = xtcp_send(gd_[kServer], pair.half[kServer].cd, 0, h.data(), h.size());
  if (n > 0) {
    h.erase(0, static_cast<std::size_t>(n));
  }
  if (h.empty()) {
    pair.header_left.reset();
  }
  // Else the rest goes when the server half becomes writable.
}

void PairTable::connected(std::uint32_t p) {
  Pair& pair = pairs_[p];
  pair.connecting = false;
  pair.last_active = Clock::now();
  client_may_go(p);
}

void PairTable::client_may_go(std::uint32_t p) {
  Pair& pair = pairs_[p];
  if (pair.connecting || pair.header_left) {
    return;  // the client's bytes wait until the server's half is there, header first
  }
  Half& c = pair.half[kClient];
  if (c.eof_pending && held(pair, kClient) == 0) {
    c.eof_pending = false;
    pass_fin(p, kClient);  // the client finished before the server's half could take its FIN
  } else if (c.waits || c.eof_pending) {
    redeliver(pair, kClient);  // what the client sent meanwhile, and its end after it
  }
}

void PairTable::connect_failed(std::uint32_t p, bool timed_out) {
  Pair& pair = pairs_[p];
  ++connect_failures_;
  if (timed_out) {
    ++connect_timeouts_;
  }
  balancer_->mark_down(pair.server, Clock::now());
  balancer_->closed(pair.server);
  pair.server = -1;
  xtcp_abort(gd_[kServer], pair.half[kServer].cd);
  pair.half[kServer] = Half{};
  pair.connecting = false;
  pair.header_left.reset();
  connect_next(p);
}

// ---- moving bytes -------------------------------------------------------------------------

void PairTable::drain_writable(Side s) {
  for (;;) {
    const int cd = xtcp_writable(gd_[s]);
    if (cd < 0) {
      return;
    }
    std::uint64_t t = 0;
    if (xtcp_get_user_data(gd_[s], cd, &t) < 0 || t == 0) {
      continue;
    }
    const auto p = static_cast<std::uint32_t>((t - 1) >> 1);
    Pair& pair = pairs_[p];
    if (!pair.in_use || pair.half[s].cd != cd) {
      continue;
    }
    if (s == kServer) {
      if (pair.connecting) {
        connected(p);
        continue;
      }
      if (pair.header_left) {
        send_header(pair);
      }
      client_may_go(p);
    } else if (pair.half[kServer].waits) {
      redeliver(pair, kServer);
    }
  }
}

void PairTable::redeliver(Pair& pair, Side s) {
  Half& h = pair.half[s];
  h.waits = false;
  h.eof_pending = false;  // the end, if it came, is reported again after the bytes
  xtcp_redeliver(gd_[s], h.cd);
}

void PairTable::drain_recv(Side s) {
  for (int i = 0; i < kMaxRecvsPerRound; ++i) {
    int cd = -1;
    std::uint64_t t = 0;
    const int n = xtcp_recv_user(gd_[s], &cd, &t, buf_.data(), buf_.size());
    if (n == -EAGAIN || cd <= 0) {
      return;
    }
    const auto p = static_cast<std::uint32_t>((t - 1) >> 1);
    if (t == 0 || p >= pairs_.size() || !pairs_[p].in_use || pairs_[p].half[s].cd != cd) {
      xtcp_abort(gd_[s], cd);  // belongs to no pair: cannot happen, but never leaks
      continue;
    }
    if (s == kServer && n >= 0 && pairs_[p].connecting) {
      connected(p);  // bytes or a FIN: established, its writable report still to come
    }
    if (n > 0) {
      forward(p, s, buf_.data(), static_cast<std::size_t>(n));
    } else if (n == 0) {
      on_end(p, s);
    } else {
      on_error(p, s, -n);
    }
  }
}

void PairTable::forward(std::uint32_t p, Side from, const char* data, std::size_t n) {
  Pair& pair = pairs_[p];
  const Side to = other(from);
  if (from == kClient && (pair.connecting || pair.header_left)) {
    pair.half[from].waits = true;  // held until the server half is established
    return;
  }
  const int sent = xtcp_send(gd_[to], pair.half[to].cd, 0, data, n);
  if (sent > 0) {
    // Only what the other half took is acknowledged: the rest stays in this half's pool.
    xtcp_send(gd_[from], pair.half[from].cd, static_cast<std::size_t>(sent), nullptr, 0);
    bytes_[from] += static_cast<std::uint64_t>(sent);
    pair.last_active = Clock::now();
    note_cached(pair, to);
  }
  if (sent < static_cast<int>(n) && (sent >= 0 || sent == -EAGAIN)) {
    // The other half was refused room: it becomes writable once its peer's ACKs free some.
    pair.half[from].waits = true;
    ++deferred_[from];
  }
  // Other failures (the other half ended): its own xtcp_recv reports that.
}

std::uint64_t PairTable::held(const Pair& pair, Side s) const {
  xtcp_conn_info info{};
  return xtcp_connection_info(gd_[s], pair.half[s].cd, &info) == 0 ? info.rx_held : 0;
}

void PairTable::note_cached(const Pair& pair, Side s) {
  xtcp_conn_info info{};
  if (xtcp_connection_info(gd_[s], pair.half[s].cd, &info) == 0) {
    cached_peak_ = std::max(cached_peak_, info.tx_cached);
  }
}

// ---- ends ---------------------------------------------------------------------------------

void PairTable::on_end(std::uint32_t p, Side from) {
  Pair& pair = pairs_[p];
  Half& h = pair.half[from];
  if (h.eof_done) {
    return;
  }
  const bool server_half_not_ready = from == kClient && (pair.connecting || pair.header_left);
  if (server_half_not_ready || h.waits || held(pair, from) > 0) {
    // Bytes before the FIN still wait (or the server half is not there yet): the FIN is
    // passed on after them.
    h.eof_pending = true;
    if (held(pair, from) > 0) {
      h.waits = true;
    }
    return;
  }
  pass_fin(p, from);
}

void PairTable::pass_fin(std::uint32_t p, Side from) {
  Pair& pair = pairs_[p];
  const Side to = other(from);
  pair.half[from].eof_done = true;
  ++half_closes_from_[from];
  pair.last_active = Clock::now();
  // RFC 9293 3.10.4: CLOSE in ESTABLISHED or CLOSE-WAIT: the FIN follows the queued bytes.
  xtcp_shutdown(gd_[to], pair.half[to].cd, SHUT_WR);
  if (pair.half[to].eof_done) {
    finish(p);
  }
}

void PairTable::on_error(std::uint32_t p, Side from, int /*error*/) {
  Pair& pair = pairs_[p];
  if (from == kServer && pair.connecting) {
    connect_failed(p, false);  // refused (RST) or the stack's SYN retries ran out
    return;
  }
  ++resets_from_[from];
  reset_both(p);
}

void PairTable::reset_both(std::uint32_t p) {
  Pair& pair = pairs_[p];
  for (Side s : {kClient, kServer}) {
    if (pair.half[s].cd > 0) {
      xtcp_abort(gd_[s], pair.half[s].cd);  // RST toward a peer still there; frees the other
    }
  }
  release(p);
}

void PairTable::finish(std::uint32_t p) {
  Pair& pair = pairs_[p];
  // Both directions ended: the stack finishes each close (the last bytes, FIN, TIME-WAIT)
  // on its own; the pair's state goes now.
  for (Side s : {kClient, kServer}) {
    xtcp_close(gd_[s], pair.half[s].cd);
  }
  release(p);
}

void PairTable::release(std::uint32_t p) {
  Pair& pair = pairs_[p];
  if (pair.server >= 0) {
    balancer_->closed(pair.server);
  }
  pair = Pair{};
  free_.push_back(p);
  --open_;
}

void PairTable::sweep_timeouts() {
  const Clock::time_point now = Clock::now();
  while (!connect_deadlines_.empty() && connect_deadlines_.front().at <= now) {
    const ConnectDeadline d = connect_deadlines_.front();
    connect_deadlines_.pop_front();
    Pair& pair = pairs_[d.pair];
    if (pair.in_use && pair.connecting && pair.attempt == d.attempt) {
      connect_failed(d.pair, true);
    }
  }
  if (options_.idle_timeout.count() <= 0 || now < next_idle_sweep_) {
    return;
  }
  next_idle_sweep_ =
      now + std::clamp<Clock::duration>(options_.idle_timeout / 4, kMinIdleSweepEvery, kMaxIdleSweepEvery);
  for (std::uint32_t p = 0; p < pairs_.size(); ++p) {
    Pair& pair = pairs_[p];
    if (pair.in_use && !pair.connecting && now - pair.last_active >= options_.idle_timeout) {
      ++idle_timeouts_;
      reset_both(p);
    }
  }
}

// ---- counters -----------------------------------------------------------------------------

void PairTable::counters(std::vector<xtcp::cli::Counter>* out) const {
  std::uint64_t cached = 0;
  for (const Pair& pair : pairs_) {
    if (!pair.in_use) {
      continue;
    }
    for (Side s : {kClient, kServer}) {
      xtcp_conn_info info{};
      if (pair.half[s].cd > 0 && xtcp_connection_info(gd_[s], pair.half[s].cd, &info) == 0) {
        cached += info.tx_cached;
      }
    }
  }
  const xtcp::cli::Counter rows[] = {
      {"proxy.pairs_open", open_},
      {"proxy.pairs_total", total_},
      {"proxy.bytes_to_server", bytes_[kClient]},
      {"proxy.bytes_to_client", bytes_[kServer]},
      {"proxy.server_connect_failures", connect_failures_},
      {"proxy.server_connect_timeouts", connect_timeouts_},
      {"proxy.failovers", failovers_},
      {"proxy.servers_down", balancer_->down_count(Clock::now())},
      {"proxy.clients_reset_no_server", reset_no_server_},
      {"proxy.clients_refused_limit", refused_limit_},
      {"proxy.resets_from_client", resets_from_[kClient]},
      {"proxy.resets_from_server", resets_from_[kServer]},
      {"proxy.half_closes_from_client", half_closes_from_[kClient]},
      {"proxy.half_closes_from_server", half_closes_from_[kServer]},
      {"proxy.idle_timeouts", idle_timeouts_},
      {"proxy.waits_for_server_room", deferred_[kClient]},
      {"proxy.waits_for_client_room", deferred_[kServer]},
      {"proxy.pair_buffer_bytes", cached},
      {"proxy.pair_buffer_peak", cached_peak_},
  };
  out->insert(out->end(), std::begin(rows), std::end(rows));
}

}  // namespace xtcp_proxy
