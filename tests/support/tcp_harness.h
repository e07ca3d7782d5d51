// Engine test harness (smoltcp/gVisor style). The stack under test sits on a scripted link
// in virtual time; the test plays the peer: it injects segments built from a template with
// sequence numbers RELATIVE to each side's ISN, and inspects what the stack sent. State
// fixtures are made by running real handshakes. A failing test leaves the pcap of its
// traffic in test-pcaps/ under the working directory.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "stack/buffer/stream_buffers.h"
#include "stack/core/clock.h"
#include "stack/netif/link.h"
#include "stack/netif/pcap_tap.h"
#include "stack/stack.h"
#include "stack/wire/tcp.h"

namespace xtcp::test {

inline constexpr std::uint32_t kStackAddr = 0xC6120002;  // 198.18.0.2
inline constexpr std::uint32_t kPeerAddr = 0xC6120001;   // 198.18.0.1
inline constexpr std::uint16_t kServerPort = 7;
inline constexpr std::uint16_t kPeerPort = 40000;
inline constexpr std::uint32_t kPeerIsn = 1'000'000;     // peer's ISN (absolute)

// A link the test scripts: packets the test queues are received by the stack; packets the
// stack sends are kept for the test to inspect.
class ScriptLink final : public Link {
 public:
  int send(std::span<const std::byte> packet) override;
  int receive_batch(int max_packets, PacketHandler on_packet) override;
  std::size_t mtu() const override { return mtu_; }
  void set_mtu(std::size_t mtu) { mtu_ = mtu; }

  void queue_inbound(std::vector<std::byte> packet) { inbound_.push_back(std::move(packet)); }
  std::vector<std::vector<std::byte>> take_outbound();
  int send_result = 0;  // what send() returns (e.g. -EAGAIN to model a full device)

 private:
  std::size_t mtu_ = 1500;
  std::deque<std::vector<std::byte>> inbound_;
  std::vector<std::vector<std::byte>> outbound_;
};

// A segment the stack sent, decoded. rseq/rack are relative: rseq = seq - stack ISS,
// rack = ack - peer ISN (so the peer's SYN is 0 and its first data byte is 1).
struct Sent {
  std::uint8_t flags = 0;
  std::uint32_t seq = 0;
  std::uint32_t ack = 0;
  std::uint32_t rseq = 0;
  std::uint32_t rack = 0;
  std::uint16_t window = 0;
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;
  wire::TcpOptions opts;
  std::vector<std::byte> payload;
  std::string describe() const;
  bool has(std::uint8_t f) const { return (flags & f) != 0; }
};

// What the peer sends. seq is relative to the peer ISN, ack relative to the stack ISS
// (unless absolute_* is set). Fields left alone take the defaults of an in-window segment.
struct Seg {
  std::uint8_t flags = wire::tcp_flags::kAck;
  std::uint32_t seq = 1;
  std::uint32_t ack = 1;
  bool absolute_seq = false;
  bool absolute_ack = false;
  std::uint16_t window = 65535;
  std::uint16_t src_port = 0;  // 0: the harness's peer_port
  std::uint16_t dst_port = 0;  // 0: the harness's stack_port
  std::uint16_t urgent = 0;
  wire::TcpOptions opts;
  std::vector<std::byte> payload;
  bool bad_checksum = false;
};

std::vector<std::byte> bytes_of(std::string_view s);
std::vector<std::byte> pattern_bytes(std::size_t n, std::uint32_t seed = 1);

// Composable expectations on one sent segment: expect(s, Match().flags(kAck).rack(101)).
class Match {
 public:
  Match& flags(std::uint8_t f) { flags_ = f; return *this; }
  Match& rseq(std::uint32_t v) { rseq_ = v; return *this; }
  Match& rack(std::uint32_t v) { rack_ = v; return *this; }
  Match& len(std::size_t v) { len_ = v; return *this; }
  Match& window(std::uint16_t v) { window_ = v; return *this; }
  Match& payload(std::vector<std::byte> p) { payload_ = std::move(p); return *this; }
  Match& sack_blocks(std::size_t n) { sacks_ = n; return *this; }
  ::testing::AssertionResult check(const Sent& s) const;

 private:
  std::optional<std::uint8_t> flags_;
  std::optional<std::uint32_t> rseq_, rack_;
  std::optional<std::size_t> len_, sacks_;
  std::optional<std::uint16_t> window_;
  std::optional<std::vector<std::byte>> payload_;
};
#define EXPECT_SEGMENT(sent, match) EXPECT_TRUE((match).check(sent))

struct HarnessOptions {
  TcpConfig tcp;
  std::size_t rx_capacity = 64 * 1024;
  std::size_t tx_capacity = 64 * 1024;
  std::size_t mtu = 1500;
  std::uint8_t ttl = 64;  // IpConfig::default_ttl
  int rx_batch = 64;      // StackConfig::rx_batch
  TimeNs max_timer_delay = seconds(2);  // StackConfig::max_timer_delay
};

class TcpHarness {
 public:
  explicit TcpHarness(const HarnessOptions& options = {});
  ~TcpHarness();

  ManualClock clock{seconds(100)};
  ScriptLink link;
  StreamBuffers buffers;
  std::unique_ptr<PcapTap> tap;  // mirrors the traffic; the file is kept only on failure
  std::unique_ptr<Stack> stack;
  TcpLayer& tcp() { return stack->tcp(); }

  // The stack ISS learned from its SYN or SYN-ACK (relative numbers are based on it).
  std::uint32_t iss = 0;
  // Ports of the connection under test; establish_active switches them.
  std::uint16_t stack_port = kServerPort;
  std::uint16_t peer_port = kPeerPort;
  // Options of the listener establish_passive() opens (e.g. application-controlled ACKs).
  ListenOptions listen_options;

  void inject(const Seg& seg);
  void inject_raw(std::vector<std::byte> ip_packet);
  std::vector<std::byte> build(const Seg& seg) const;
  // Segments sent since the last call (ICMP and others are skipped).
  std::vector<Sent> sent();
  // Exactly one segment sent since the last call, or a test failure.
  Sent sent_one();
  void expect_silence();
  // Moves virtual time and runs due timers.
  void advance(TimeNs dt);
  // Advances to the next engine deadline (at most max); returns the time moved.
  TimeNs advance_to_next_deadline(TimeNs max = seconds(3600));

  std::vector<TcpEvent> events();
  std::string read_all(ConnId conn);

  // Fixtures through real handshakes. Peer options default to Linux's SYN options.
  static wire::TcpOptions linux_syn_options();
  ConnId establish_passive(const wire::TcpOptions& peer_opts = linux_syn_options(),
                           std::uint16_t peer_window = 65535);
  ConnId establish_active(const wire::TcpOptions& peer_opts = linux_syn_options(),
                          std::uint16_t peer_window = 65535);
  // The peer's TSval for the next segment (if the test uses timestamps).
  std::uint32_t peer_ts = 5000;
  // Adds a timestamp option echoing the stack's last TSval, if timestamps are on.
  Seg with_ts(Seg s);
  std::uint32_t last_stack_tsval = 0;
  bool peer_uses_ts = false;

 private:
  std::string pcap_path_;
};

}  // namespace xtcp::test
