// Stack run loop: link -> Ipv4Layer::input -> TcpLayer, then timers.
#include "stack/stack.h"

#include <poll.h>

#include <algorithm>
#include <cstring>

namespace xtcp {
namespace {

IpConfig with_logger(IpConfig ip, Logger* logger) {
  if (logger != nullptr) {
    ip.logger = logger;
  }
  return ip;
}

TcpConfig with_link_mss(TcpConfig tcp, const Link& link, Logger* logger) {
  if (logger != nullptr) {
    tcp.logger = logger;
  }
  // Advertise what fits the link: MTU minus IPv4 and TCP headers (RFC 9293 3.7.1).
  const std::size_t mtu = link.mtu();
  if (mtu > 40) {
    tcp.mss = static_cast<std::uint16_t>(std::min<std::size_t>(tcp.mss, mtu - 40));
  }
  return tcp;
}

}  // namespace

Stack::Stack(const StackConfig& config, Link& link, const Clock& clock, RxStore& rx, TxStore& tx)
    : config_(config),
      link_(link),
      clock_(clock),
      ip_(with_logger(config.ip, config.logger), link, clock),
      tcp_(with_link_mss(config.tcp, link, config.logger), ip_, clock, rx, tx) {
  if (config_.logger == nullptr) {
    config_.logger = config.ip.logger;
  }
}

int Stack::poll(int max_rounds) {
  int total = 0;
  bool backlog = max_rounds > 0;
  // The first round continues the last poll's backlog, if it left one.
  tcp_.set_input_backlog(backlogged_);
  for (int round = 0; round < max_rounds; ++round) {
    const int n = link_.receive_batch(config_.rx_batch,
                                      [this](std::span<const std::byte> p) { ip_.input(p); });
    // The answers to this round's packets leave together (one submission on a batching
    // link) before the next round reads more: a client's answer never waits behind input
    // that came later.
    flush_link();
    if (n < 0) {
      ++link_errors_;
      if (config_.logger != nullptr) {
        config_.logger->report(LogKind::kLinkReceive, LogLevel::kError, clock_.now(),
                               "link: reading packets failed: %s (counted in link.errors)",
                               std::strerror(-n));
      }
      backlog = false;
      break;
    }
    total += n;
    if (n < config_.rx_batch) {
      backlog = false;
      break;
    }
    tcp_.set_input_backlog(true);  // a full round: more packets wait
  }
  backlogged_ = backlog;
  const TimeNs now = clock_.now();
  if (!backlog) {
    drained_at_ = now;
    run_timers_until(now);
  } else {
    ++backlog_polls_;
    run_timers_until(std::max(drained_at_, now - config_.max_timer_delay));
  }
  // Retransmissions, delayed ACKs and keep-alives the timers produced: poll() must not
  // return with packets held in the link, its caller may sleep next.
  flush_link();
  return total;
}

int Stack::flush_link() {
  const int rc = link_.flush();
  if (rc < 0) {
    // The packets stay queued in the link for its next flush (or its next receive round).
    ++link_errors_;
    if (config_.logger != nullptr) {
      config_.logger->report(LogKind::kLinkSend, LogLevel::kWarning, clock_.now(),
                             "link: handing queued packets to the device failed: %s (counted in link.errors)",
                             std::strerror(-rc));
    }
  }
  return rc;
}

void Stack::run_timers() { run_timers_until(clock_.now()); }

void Stack::run_timers_until(TimeNs t) {
  // Timers fire in deadline order and the wheel's time only moves forward.
  if (t < timers_until_) {
    return;
  }
  timers_until_ = t;
  tcp_.advance(t);
  ip_.poll_timers(t);
}

TimeNs Stack::next_deadline() const { return std::min(tcp_.next_deadline(), ip_.next_deadline()); }

void Stack::wait(TimeNs max_wait) {
  flush_link();
  const int fd = link_.poll_fd();
  if (fd < 0) {
    return;
  }
  const TimeNs now = clock_.now();
  TimeNs until = std::min({next_deadline(), link_.next_event_time(), now + max_wait});
  const TimeNs delay = std::max<TimeNs>(0, until - now);
  pollfd p{fd, POLLIN, 0};
  ::poll(&p, 1, static_cast<int>((delay + kNsPerMs - 1) / kNsPerMs));
}

void print_stats(const Stack& stack, std::FILE* out) {
  stack.ip().stats().for_each(
      [out](const char* name, std::uint64_t v) { std::fprintf(out, "ip.%s %llu\n", name, static_cast<unsigned long long>(v)); });
  stack.tcp().stats().for_each(
      [out](const char* name, std::uint64_t v) { std::fprintf(out, "tcp.%s %llu\n", name, static_cast<unsigned long long>(v)); });
  const auto by_state = stack.tcp().connections_by_state();
  for (int s = 0; s < kTcpStateCount; ++s) {
    std::fprintf(out, "conn.%s %llu\n", to_string(static_cast<TcpState>(s)),
                 static_cast<unsigned long long>(by_state[s]));
  }
}

}  // namespace xtcp
