// Loadgen core: the stack in client mode, the clients' lifecycle (ramp, connect, churn,
// close), the phases of a run and the progress snapshots. What each workload sends and
// checks is in loadgen_workloads.cc.
#include "tools/loadgen/loadgen.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <thread>

#include "tools/loadgen/loadgen_internal.h"

namespace xtcp::loadgen {

const char* to_string(Workload w) {
  switch (w) {
    case Workload::kConnectOnly: return "connect-only";
    case Workload::kEcho: return "echo";
    case Workload::kIm: return "im";
    case Workload::kBurst: return "burst";
  }
  return "?";
}

namespace {

StackConfig client_stack_config(const Options& o) {
  StackConfig c;
  c.ip.local_addr = o.src_addr;
  c.ip.local_addr_count = o.src_count;
  c.tcp.max_connections = o.max_connections != 0 ? o.max_connections : o.connections + o.connections / 10 + 16;
  c.tcp.nagle = false;  // a client sends whole messages; Nagle would only add latency
  c.rx_batch = 256;
  return c;
}

SharedRxPoolOptions rx_options() {
  SharedRxPoolOptions o;
  o.chunk_size = 256;
  o.conn_window = 64 * 1024;
  return o;
}

}  // namespace

Loadgen::Loadgen(const Options& options, Link& link, const Clock& clock)
    : opt_(options),
      link_(link),
      clock_(clock),
      rx_(options.rx_pool_size, rx_options()),
      tx_(options.tx_cache_size, 128, 1u << 20),
      rng_(options.seed),
      clients_(options.connections),
      sends_(clock.now()),
      life_(clock.now()),
      pending_(std::make_unique<Pending>()) {
  stack_ = std::make_unique<Stack>(client_stack_config(opt_), link_, clock_, rx_, tx_);
  ready_pos_.assign(options.connections, kNotReady);
  r_.workload = opt_.workload;
  r_.target_connections = opt_.connections;
}

Loadgen::~Loadgen() = default;

std::uint32_t Loadgen::next_source_addr() {
  // Skip the range's network and broadcast addresses when it is a whole prefix: the kernel
  // would not route them back to us.
  for (;;) {
    const std::uint32_t a = opt_.src_addr + next_addr_;
    next_addr_ = (next_addr_ + 1) % opt_.src_count;
    const std::uint8_t low = static_cast<std::uint8_t>(a & 0xff);
    if (opt_.src_count < 256 || (low != 0 && low != 255)) {
      return a;
    }
  }
}

TimeNs Loadgen::draw_lifetime() {
  std::exponential_distribution<double> d(1.0 / static_cast<double>(opt_.lifetime));
  return std::max<TimeNs>(ms(100), static_cast<TimeNs>(d(rng_)));
}

void Loadgen::start_connect(std::uint32_t index) {
  Client& c = clients_[index];
  ++c.gen;
  c.state = kConnecting;
  c.awaiting = 0;
  c.echo_left = 0;
  c.echo_pos = 0;
  c.seq = 0;
  c.started_at = clock_.now();
  ++r_.connects_started;
  // A source address whose ports toward the target are used up gives way to the next.
  std::int64_t conn = -EADDRNOTAVAIL;
  for (std::uint32_t tries = 0; tries < 8 && conn == -EADDRNOTAVAIL; ++tries) {
    conn = stack_->tcp().connect(opt_.target_addr, opt_.target_port, 0, next_source_addr());
  }
  if (conn < 0) {
    ++r_.connects_failed;
    c.state = kIdle;
    return;
  }
  c.conn = static_cast<ConnId>(conn);
  if (c.conn >= conn_to_client_.size()) {
    conn_to_client_.resize(std::max<std::size_t>(c.conn + 1, conn_to_client_.size() * 2), kNoClient);
  }
  conn_to_client_[c.conn] = index;
}

void Loadgen::on_event(const TcpEvent& e) {
  if (e.conn >= conn_to_client_.size() || conn_to_client_[e.conn] == kNoClient) {
    return;
  }
  const std::uint32_t index = conn_to_client_[e.conn];
  Client& c = clients_[index];
  switch (e.type) {
    case TcpEventType::kConnected:
      on_established(index);
      return;
    case TcpEventType::kReadable:
      on_readable(index);
      return;
    case TcpEventType::kPeerClosed:
      // The server closed: expected after QUIT (churn with server_closes), else the server
      // dropped a client it should have kept.
      if (c.state != kClosing) {
        ++r_.resets;
      }
      finish(index, c.state == kClosing);
      return;
    case TcpEventType::kClosed:
      on_closed(index, e.error);
      return;
    default:
      return;
  }
}

void Loadgen::on_established(std::uint32_t index) {
  Client& c = clients_[index];
  const TimeNs now = clock_.now();
  ++established_;
  ++r_.connects_ok;
  r_.peak_established = std::max(r_.peak_established, established_);
  const TimeNs took = now - c.started_at;
  r_.connect_latency.record(static_cast<std::uint64_t>(took / kNsPerUs));
  r_.slowest_connect_ms = std::max(r_.slowest_connect_ms, static_cast<double>(took) / 1e6);
  c.state = kReady;
  switch (opt_.workload) {
    case Workload::kEcho: {
      std::uniform_int_distribution<TimeNs> phase(0, std::max<TimeNs>(0, opt_.interval - 1));
      sends_.add(index, c.gen, now + phase(rng_));
      break;
    }
    case Workload::kIm:
      c.state = kLoggingIn;
      im_login(c);
      break;
    case Workload::kConnectOnly:
    case Workload::kBurst:
      break;
  }
  if (opt_.lifetime > 0) {
    life_.add(index, c.gen, now + draw_lifetime());
  }
}

void Loadgen::on_closed(std::uint32_t index, int error) {
  Client& c = clients_[index];
  if (c.state == kConnecting) {
    ++r_.connects_failed;
  } else if (c.state != kClosing) {
    ++r_.resets;  // reset or timed out while established
  }
  (void)error;
  finish(index, c.state == kClosing);
}

// The connection is over (closed by us, by the server, or broken): release it, and with
// churn open the client's next connection shortly.
void Loadgen::finish(std::uint32_t index, bool on_purpose) {
  Client& c = clients_[index];
  const bool was_established = c.state != kConnecting && c.state != kIdle;
  if (c.conn != kNoConn) {
    conn_to_client_[c.conn] = kNoClient;
    stack_->tcp().close(c.conn);
    c.conn = kNoConn;
  }
  if (was_established && established_ > 0) {
    --established_;
  }
  if (opt_.workload == Workload::kIm) {
    im_ready_remove(index);
    im_forget_target(index);
  }
  if (c.echo_left > 0) {
    // Its message will not be answered (counted as an error where that is one).
    if (opt_.workload == Workload::kBurst) {
      burst_answered();
    } else if (echo_outstanding_ > 0) {
      --echo_outstanding_;
    }
  }
  c.echo_left = 0;
  c.state = kIdle;
  ++c.gen;  // what the former connection scheduled is void
  if (on_purpose) {
    ++r_.churn_closes;
  }
  if (opt_.lifetime > 0 && phase_ < Phase::kDrain) {
    life_.add(index, c.gen, clock_.now() + ms(10));  // reconnect
  }
}

void Loadgen::close_client(std::uint32_t index) {
  Client& c = clients_[index];
  if (c.conn == kNoConn || c.state == kClosing) {
    return;
  }
  if (opt_.server_closes && opt_.workload == Workload::kIm && c.state == kReady && c.awaiting == 0) {
    c.state = kClosing;
    write(c, "QUIT\n");  // the server answers BYE and closes: TIME-WAIT is the server's
    return;
  }
  c.state = kClosing;
  finish(index, true);  // FIN from us: TIME-WAIT is ours
}

void Loadgen::start_burst() {
  const TimeNs now = clock_.now();
  burst_started_ = now;
  burst_outstanding_ = 0;
  for (std::uint32_t i = 0; i < clients_.size(); ++i) {
    Client& c = clients_[i];
    if (c.state == kReady && c.echo_left == 0) {
      echo_send(c, i);
      if (c.echo_left > 0) {
        ++burst_outstanding_;
      }
    }
  }
  next_burst_ = kNever;
  if (burst_outstanding_ == 0) {
    r_.burst_seconds.push_back(0);
    ++bursts_done_;
  }
}

void Loadgen::burst_answered() {
  if (burst_outstanding_ == 0) {
    return;
  }
  if (--burst_outstanding_ == 0) {
    r_.burst_seconds.push_back(static_cast<double>(clock_.now() - burst_started_) / 1e9);
    ++bursts_done_;
    if (bursts_done_ < opt_.bursts) {
      next_burst_ = clock_.now() + opt_.interval;
    }
  }
}

void Loadgen::advance_phase() {
  const TimeNs now = clock_.now();
  switch (phase_) {
    case Phase::kRamp: {
      const bool all_tried = next_to_start_ >= opt_.connections;
      // Every client has come up once (or failed): later losses are counted, not waited for.
      const bool settled = r_.connects_ok + r_.connects_failed >= opt_.connections;
      if (all_tried && (settled || now - start_ > ramp_timeout_)) {
        phase_ = Phase::kMeasure;
        ramp_done_at_ = now;
        r_.ramp_seconds = static_cast<double>(now - start_) / 1e9;
        measure_start_ = now;
        measure_end_ = now + opt_.duration;
        const IpStats& ip = stack_->ip().stats();
        packets_out_at_measure_ = ip.packets_out;
        packets_in_at_measure_ = ip.packets_in;
        answered_at_measure_ = r_.messages_answered;
        if (opt_.workload == Workload::kBurst) {
          next_burst_ = now + ms(500);  // let the last handshakes' ACKs settle
        }
      }
      return;
    }
    case Phase::kMeasure: {
      const bool bursts_over = opt_.workload == Workload::kBurst && bursts_done_ >= opt_.bursts;
      if (now >= measure_end_ || bursts_over) {
        phase_ = Phase::kDrain;
        measure_end_ = now;
        drain_end_ = now + opt_.drain;
        const IpStats& ip = stack_->ip().stats();
        r_.packets_out = ip.packets_out - packets_out_at_measure_;
        r_.packets_in = ip.packets_in - packets_in_at_measure_;
        r_.answered_in_measure = r_.messages_answered - answered_at_measure_;
      }
      return;
    }
    case Phase::kDrain:
      if (now >= drain_end_ || outstanding() == 0) {
        phase_ = Phase::kDone;
      }
      return;
    case Phase::kDone:
      return;
  }
}

std::uint64_t Loadgen::outstanding() const {
  std::uint64_t n = pending_->size() + burst_outstanding_;
  if (opt_.workload == Workload::kEcho) {
    n += echo_outstanding_;
  }
  return n;
}

void Loadgen::turn() {
  const TimeNs now = clock_.now();
  // Ramp: start what the rate allows by now (a bounded batch per turn keeps turns short).
  if (phase_ == Phase::kRamp && next_to_start_ < opt_.connections) {
    std::uint64_t due = opt_.connections;
    if (opt_.ramp_per_s > 0) {
      due = static_cast<std::uint64_t>(opt_.ramp_per_s * static_cast<double>(now - start_) / 1e9) + 1;
    }
    due = std::min<std::uint64_t>({due, opt_.connections, next_to_start_ + 4096ull});
    while (next_to_start_ < due) {
      start_connect(next_to_start_++);
    }
  }
  stack_->poll();
  stack_->tcp().poll_events([this](const TcpEvent& e) { on_event(e); });
  const bool sending = phase_ == Phase::kRamp || phase_ == Phase::kMeasure;
  life_.run_due(now, [&](std::uint32_t index, std::uint32_t gen) {
    Client& c = clients_[index];
    if (c.gen != gen) {
      return;
    }
    if (c.state == kIdle) {
      if (phase_ < Phase::kDrain) {
        start_connect(index);
      }
    } else {
      close_client(index);
    }
  });
  sends_.run_due(now, [&](std::uint32_t index, std::uint32_t gen) {
    Client& c = clients_[index];
    if (c.gen == gen && sending) {
      send_due(index);
    }
  });
  if (phase_ == Phase::kMeasure && now >= next_burst_) {
    start_burst();
  }
  // Events raised by our own sends (a reset answer) are handled in the same turn.
  stack_->tcp().poll_events([this](const TcpEvent& e) { on_event(e); });
  // This turn's connects and messages (a whole burst) leave together on a batching link
  // (--io uring), before run() sleeps.
  stack_->flush_link();
  advance_phase();
  if (progress_ && now >= next_progress_) {
    report_progress();
    next_progress_ = now + progress_every_;
  }
}

TimeNs Loadgen::next_wake() const {
  TimeNs t = std::min({stack_->next_deadline(), link_.next_event_time(), sends_.next_due(), life_.next_due(),
                       next_progress_, next_burst_});
  if (phase_ == Phase::kRamp && next_to_start_ < opt_.connections) {
    if (opt_.ramp_per_s <= 0) {
      return clock_.now();
    }
    t = std::min(t, start_ + static_cast<TimeNs>(static_cast<double>(next_to_start_) / opt_.ramp_per_s * 1e9));
  }
  if (phase_ == Phase::kMeasure) {
    t = std::min(t, measure_end_);
  }
  if (phase_ == Phase::kDrain) {
    t = std::min(t, drain_end_);
  }
  return t;
}

void Loadgen::report_progress() {
  const TimeNs now = clock_.now();
  Progress p;
  p.elapsed_s = static_cast<double>(now - start_) / 1e9;
  p.phase = phase_ == Phase::kRamp ? "ramp" : phase_ == Phase::kMeasure ? "measure" : phase_ == Phase::kDrain ? "drain" : "done";
  p.established = established_;
  p.target = opt_.connections;
  const double dt = static_cast<double>(now - last_progress_at_) / 1e9;
  if (dt > 0 && last_progress_at_ != 0) {
    p.messages_per_s = static_cast<double>(r_.messages_answered - answered_at_last_progress_) / dt;
  }
  answered_at_last_progress_ = r_.messages_answered;
  last_progress_at_ = now;
  p.p50_us = r_.latency.percentile(50);
  p.p99_us = r_.latency.percentile(99);
  p.p999_us = r_.latency.percentile(99.9);
  p.errors = r_.errors();
  p.retransmits = stack_->tcp().stats().retransmits;
  progress_(p);
}

// The run is over: every connection still open is reset, so the server does not keep a
// million idle connections (a kernel server its descriptors) after the tool has gone. In
// batches, letting the link drain between them, for at most a few seconds.
void Loadgen::reset_all() {
  const TimeNs give_up = clock_.now() + seconds(5);
  std::uint32_t i = 0;
  while (i < clients_.size() && clock_.now() < give_up) {
    for (std::uint32_t batch = 0; batch < 2048 && i < clients_.size(); ++i) {
      Client& c = clients_[i];
      if (c.conn != kNoConn) {
        conn_to_client_[c.conn] = kNoClient;
        stack_->tcp().abort(c.conn);
        c.conn = kNoConn;
        c.state = kIdle;
        ++batch;
      }
    }
    stack_->poll();
    stack_->tcp().poll_events([](const TcpEvent&) {});
    if (pump_) {
      pump_();
    }
  }
}

Results Loadgen::run() {
  start_ = clock_.now();
  last_progress_at_ = start_;
  next_progress_ = progress_ ? start_ + progress_every_ : kNever;
  // Connections that cannot come up in this time count as failed.
  const double ramp_s = opt_.ramp_per_s > 0 ? static_cast<double>(opt_.connections) / opt_.ramp_per_s : 0.0;
  ramp_timeout_ = static_cast<TimeNs>(ramp_s * 1e9) + seconds(120);
  const int fd = link_.poll_fd();
  while (phase_ != Phase::kDone) {
    if (stop_ && stop_()) {
      break;
    }
    turn();
    if (pump_) {
      pump_();
    }
    if (phase_ == Phase::kDone) {
      break;
    }
    const TimeNs now = clock_.now();
    const TimeNs wake = next_wake();
    if (wake <= now) {
      continue;
    }
    const TimeNs delay = std::min<TimeNs>(wake - now, ms(100));
    if (fd >= 0 && !pump_) {
      pollfd p{fd, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>((delay + kNsPerMs - 1) / kNsPerMs));
    } else if (pump_ && delay > us(200)) {
      // In process the other side runs in pump(): give it the time, without spinning a core.
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  // What never arrived is lost.
  r_.messages_lost += pending_->size();
  reset_all();
  if (phase_ >= Phase::kMeasure) {
    r_.measure_seconds = static_cast<double>(measure_end_ - measure_start_) / 1e9;
  }
  if (phase_ == Phase::kMeasure) {  // stopped early: count what the period had
    const IpStats& ip = stack_->ip().stats();
    r_.packets_out = ip.packets_out - packets_out_at_measure_;
    r_.packets_in = ip.packets_in - packets_in_at_measure_;
    r_.answered_in_measure = r_.messages_answered - answered_at_measure_;
  }
  r_.retransmits = stack_->tcp().stats().retransmits;
  return r_;
}

}  // namespace xtcp::loadgen
