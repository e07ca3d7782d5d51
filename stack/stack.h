// One stack instance ("shard"): a link, an IPv4 layer and a TCP layer driven together on one
// thread. poll() moves packets from the link into the layers and fires due timers; it is
// the whole run loop of a shard and never blocks. wait() blocks on the link descriptor until
// the next timer deadline, for programs that have nothing else to do.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>

#include "stack/buffer/stores.h"
#include "stack/core/clock.h"
#include "stack/ip/ipv4_layer.h"
#include "stack/netif/link.h"
#include "stack/tcp/tcp_layer.h"

namespace xtcp {

struct StackConfig {
  IpConfig ip;
  TcpConfig tcp;
  int rx_batch = 64;  // packets taken from the link per poll round
  // While the link still holds packets poll() did not get to (a backlog: every round came
  // back full), only the timers due by the moment the link was last seen empty fire; the
  // others wait for the backlog to drain, at most this long past their deadline. An
  // expired retransmission timer is no evidence of loss while the ACK it waits for may be
  // among the packets not yet read (RFC 6298 5.4 presumes the ACKs that arrived were
  // processed): after a burst that fills the device queue, firing them would resend every
  // answer whose ACK waits in our own input, and the resends, and the peers' D-SACKs for
  // them, make the backlog longer still. Timers due before the link was last empty are
  // genuine: every packet that came before them has been read. 0: every timer fires when
  // due.
  TimeNs max_timer_delay = seconds(2);
  // Where rare events of every layer are reported (overrides ip.logger and tcp.logger
  // when set); nullptr: the layers' own settings.
  Logger* logger = nullptr;
};

class Stack {
 public:
  // The stack uses but does not own link, clock and stores; they must outlive it.
  Stack(const StackConfig& config, Link& link, const Clock& clock, RxStore& rx, TxStore& tx);

  // Reads up to a batch of packets per round until the link is empty (at most
  // max_rounds rounds), then fires due timers: while packets still wait in the link, only
  // those due by the last time it was empty or more than config.max_timer_delay ago.
  // Flushes the link after every round and after the timers (Link::flush), so nothing
  // poll() sent is left queued in a batching link when it returns. Returns packets
  // processed.
  int poll(int max_rounds = 16);
  // Fires every due timer (no flush: callers that send outside poll() call flush_link()).
  void run_timers();
  // Hands what the link queued to the device (Link::flush). For sends made outside poll()
  // (an application's answers): call before sleeping or giving control away. A failure is
  // counted in link_errors() and logged; the packets stay queued for the next flush.
  int flush_link();
  // The next moment poll() has timer work to do.
  TimeNs next_deadline() const;
  // Flushes the link (sends made since the last poll() must not wait out the sleep), then
  // blocks until the link is readable or the next deadline (at most max_wait), using
  // poll(2) on the link's descriptor. Links without a descriptor return at once.
  void wait(TimeNs max_wait);

  Ipv4Layer& ip() { return ip_; }
  TcpLayer& tcp() { return tcp_; }
  const Ipv4Layer& ip() const { return ip_; }
  const TcpLayer& tcp() const { return tcp_; }
  Link& link() { return link_; }
  std::uint64_t link_errors() const { return link_errors_; }
  // Polls that left packets waiting in the link (every round came back full): the stack
  // is behind its input, and timers due since the link was last empty wait.
  std::uint64_t backlog_polls() const { return backlog_polls_; }

 private:
  StackConfig config_;
  Link& link_;
  const Clock& clock_;
  Ipv4Layer ip_;
  TcpLayer tcp_;
  std::uint64_t link_errors_ = 0;
  std::uint64_t backlog_polls_ = 0;
  bool backlogged_ = false;   // the last poll left packets in the link
  TimeNs drained_at_ = 0;     // when a poll last found the link empty
  TimeNs timers_until_ = 0;   // timers due up to here have fired

  void run_timers_until(TimeNs t);
};

// Prints every IP and TCP counter and the connections by state as "name value" lines.
void print_stats(const Stack& stack, std::FILE* out);

}  // namespace xtcp
