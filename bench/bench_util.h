// Shared pieces of the in-memory benchmarks: a stack in virtual time on a link that swallows
// what it sends (remembering the last TCP header), and a scripted peer that builds valid
// IPv4/TCP packets and opens connections through real handshakes (no field poking).
//
//   BenchPeer --build_*()--> bytes --BenchStack::input()--> Ipv4Layer -> TcpLayer
//   TcpLayer -> Ipv4Layer::send -> SinkLink (counted, last header decoded, then dropped)
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "stack/buffer/stream_buffers.h"
#include "stack/core/clock.h"
#include "stack/netif/link.h"
#include "stack/stack.h"
#include "stack/wire/tcp.h"

namespace xtcp::bench {

inline constexpr std::uint32_t kStackAddr = 0xC6120002;  // 198.18.0.2
inline constexpr std::uint32_t kPeerAddr = 0xC6120001;   // 198.18.0.1 (first peer)
inline constexpr std::uint16_t kServerPort = 7;

// What the stack last sent, decoded from fixed header offsets.
struct SentHeader {
  std::uint8_t flags = 0;
  std::uint32_t seq = 0;
  std::uint32_t ack = 0;
  std::uint32_t payload_len = 0;
  std::uint16_t window = 0;
  bool has_ts = false;
  std::uint32_t ts_val = 0;
};

// Drops every packet the stack sends after counting it and decoding its TCP header.
class SinkLink final : public Link {
 public:
  int send(std::span<const std::byte> packet) override;
  int receive_batch(int, PacketHandler) override { return 0; }
  std::size_t mtu() const override { return 1500; }

  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  std::uint64_t data_segments = 0;  // TCP segments with payload
  SentHeader last;
  // End sequence (seq + payload) of every data segment sent while `record_ends` is set.
  bool record_ends = false;
  std::vector<std::uint32_t> ends;
};

struct PeerOptions {
  bool timestamps = true;
  bool sack = true;
  int window_scale = 7;  // < 0: not offered
  std::uint16_t mss = 1460;
  std::uint16_t window = 65535;  // raw field of every segment the peer sends
};

// One remote endpoint of a connection, as the peer sees it.
struct BenchPeer {
  std::uint32_t addr = kPeerAddr;
  std::uint16_t port = 40000;
  std::uint16_t stack_port = kServerPort;
  PeerOptions opts;
  std::uint32_t snd_nxt = 1'000'000;  // next sequence number the peer sends
  std::uint32_t rcv_nxt = 0;          // next sequence number expected from the stack
  std::uint32_t ts_val = 5000;        // the peer's clock
  std::uint32_t ts_ecr = 0;           // last TSval seen from the stack
  bool ts_ok = false;                 // both sides sent timestamps on SYN / SYN-ACK

  // Writes one IPv4 packet (20-byte header, TCP with the peer's timestamp if negotiated) into
  // out (room for 60 + payload bytes) and returns its length.
  std::size_t build(std::byte* out, std::uint8_t flags, std::uint32_t seq, std::uint32_t ack,
                    std::uint16_t window, wire::ByteSpan payload, bool syn_options = false) const;
  // A pure ACK of everything the stack sent so far.
  std::size_t build_ack(std::byte* out) const;
};

// Rewrites the sequence number and TSval of a packet built by BenchPeer::build in place,
// fixing the TCP checksum incrementally (RFC 1624).
void restamp(std::byte* packet, std::uint32_t seq, std::uint32_t ts_val);

class BenchStack {
 public:
  BenchStack(const TcpConfig& tcp, std::size_t rx_capacity, std::size_t tx_capacity);

  ManualClock clock{seconds(100)};
  SinkLink link;
  StreamBuffers buffers;
  Stack stack;

  TcpLayer& tcp() { return stack.tcp(); }
  void input(const std::byte* packet, std::size_t len) { stack.ip().input(wire::ByteSpan(packet, len)); }
  void drop_events();

  // Passive open on peer.stack_port through SYN / SYN-ACK / ACK, then accept(). The port must
  // be listening. Fills peer.rcv_nxt and peer.ts_ecr. Returns the connection or -1.
  std::int64_t establish(BenchPeer& peer);

 private:
  std::vector<std::byte> scratch_;
};

// Resident set size of this process in bytes (/proc/self/statm).
std::size_t resident_bytes();

}  // namespace xtcp::bench
