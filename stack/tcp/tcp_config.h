// Runtime configuration of a TCP layer (no compile-time switches). Defaults follow Linux
// where an RFC leaves the choice open; each such default says so.
#pragma once

#include <cstdint>

#include "stack/core/clock.h"
#include "stack/core/log.h"

namespace xtcp {

struct TcpConfig {
  // Options offered on our SYNs and accepted on peers'.
  bool window_scaling = true;   // RFC 7323
  bool timestamps = true;       // RFC 7323
  bool sack = true;             // RFC 2018
  std::uint16_t mss = 1460;     // what we advertise; the stack sets it from the link MTU

  bool nagle = true;            // RFC 9293 3.7.4, per-connection override in the API
  bool delayed_ack = true;      // RFC 9293 3.8.6.3 / RFC 5681 4.2
  TimeNs delayed_ack_timeout = ms(40);  // Linux's minimum delayed-ACK time; RFC limit 500 ms

  // Retransmission timer, RFC 6298. min_rto 200 ms follows Linux (RFC 6298 says 1 s).
  TimeNs initial_rto = seconds(1);
  TimeNs min_rto = ms(200);
  TimeNs max_rto = seconds(60);
  int max_retransmits = 15;         // data: Linux tcp_retries2
  // RFC 8985 section 7 tail loss probe (with SACK): a lost last segment is resent after
  // about two round trips instead of waiting for the RTO; Linux does the same.
  bool tail_loss_probe = true;
  int max_syn_retransmits = 6;      // Linux tcp_syn_retries
  int max_synack_retransmits = 5;   // Linux tcp_synack_retries

  TimeNs time_wait = seconds(60);         // 2*MSL
  TimeNs fin_wait2_timeout = seconds(60); // orphaned FIN-WAIT-2, Linux tcp_fin_timeout

  bool keepalive = false;
  TimeNs keepalive_idle = seconds(7200);
  TimeNs keepalive_interval = seconds(75);
  int keepalive_probes = 9;

  std::uint32_t syn_backlog = 1024;   // half-open connections per listener before cookies
  bool syn_cookies = true;            // RFC 4987 when the SYN queue is full
  std::uint32_t accept_backlog = 4096;

  // RFC 5961 section 7: challenge ACKs are rate limited, here per connection.
  std::uint32_t challenge_acks_per_second = 10;

  // Out-of-order queue bounds (per connection and for the whole layer).
  std::uint32_t ooo_max_bytes_per_conn = 1u << 20;
  std::uint32_t ooo_max_segments_per_conn = 256;
  std::uint64_t ooo_max_bytes_total = 64ull << 20;

  std::uint32_t initial_cwnd_segments = 10;  // RFC 6928
  std::uint32_t max_connections = 1u << 20;
  // TIME-WAIT entries kept at most (0: as many as max_connections); past it the oldest entry
  // is recycled early (tcp.time_wait_recycled). Reserved at start-up, ~38 bytes each.
  std::uint32_t max_time_wait = 0;
  std::uint16_t ephemeral_port_min = 32768;
  std::uint16_t ephemeral_port_max = 60999;

  // Where rare events (table full, SYN cookies switched on) are reported; nullptr: nowhere.
  Logger* logger = nullptr;
};

}  // namespace xtcp
