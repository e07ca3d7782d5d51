// A pcap file as xtcp-replay sees it: the IPv4 packets it holds (read with libtins, any of
// the usual link types), grouped into TCP flows between clients and one server, with what
// the server sent on each flow (its byte stream, reassembled by sequence number, and how
// it ended). The flows' client packets are what replay sends; the rest is what it expects.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "stack/core/clock.h"
#include "tools/replay/packet.h"

namespace xtcp::replay {

struct CapturedPacket {
  TimeNs time = 0;  // capture timestamp, nanoseconds since the epoch
  std::vector<std::byte> ip;
  TcpFacts facts;
};

// How the server side of a flow ended: FIN, RST, both (a FIN, then a RST), or neither.
struct FlowEnd {
  bool fin = false;
  bool rst = false;
  bool operator==(const FlowEnd&) const = default;
};
std::string describe(const FlowEnd& end);

// What the server had sent on a flow at some point of the capture.
struct ServerProgress {
  bool syn = false;             // its SYN (a SYN-ACK) was seen
  std::uint64_t data_high = 0;  // highest data offset sent, + 1 (relative to its ISN + 1)
  bool fin = false;
  bool rst = false;
};

struct Flow {
  Endpoint client;
  Endpoint server;
  // Indices into Capture::packets, in capture order; both directions.
  std::vector<std::size_t> packets;
  bool client_syn = false;  // the capture holds the client's SYN (else no handshake to replay)
  std::uint32_t client_isn = 0;
  bool server_syn = false;
  std::uint32_t server_isn = 0;
  std::vector<std::byte> server_bytes;  // the server's byte stream, in sequence order
  bool server_bytes_gap = false;        // data past a hole the capture never filled (left out)
  FlowEnd end;
  std::uint64_t client_packets = 0;
  std::uint64_t server_packets = 0;
};

struct Capture {
  std::vector<CapturedPacket> packets;
  std::vector<Flow> flows;
  Endpoint server;
  std::size_t ignored_packets = 0;  // not IPv4/TCP, or neither end is the server
  // For each packet: its flow (SIZE_MAX when ignored) and whether it comes from the client.
  std::vector<std::size_t> flow_of;
  std::vector<bool> from_client;
};

// Reads every packet of the file. nullopt with *error when the file cannot be read.
std::optional<std::vector<CapturedPacket>> read_pcap(const std::string& path, std::string* error);

// Groups the packets into flows. The server is `server` when given, else the destination of
// the first SYN without ACK; a flow is one client endpoint's conversation with it (a new SYN
// with another ISN after the flow ended starts a new flow on the same ports). nullopt with
// *error when no server can be told.
std::optional<Capture> extract_flows(std::vector<CapturedPacket> packets, const std::optional<Endpoint>& server,
                                     std::string* error);

// The server's byte stream from its segments (by sequence number relative to base, the
// first data byte). Bytes already in the stream are never rewritten: a retransmission or
// overlap adds only what lies past the end. Past a hole, the waiting segments join in the
// order of their offsets once the hole fills, so where two waiting copies of the same
// bytes differ, the one that starts lower wins. gap() is true while bytes past a hole wait.
class StreamAssembler {
 public:
  void set_base(std::uint32_t first_data_seq) { base_ = first_data_seq; has_base_ = true; }
  bool has_base() const { return has_base_; }
  void add(std::uint32_t seq, std::span<const std::byte> data);
  const std::vector<std::byte>& bytes() const { return bytes_; }
  bool gap() const { return !pending_.empty(); }
  // One past the highest data offset seen (relative to base).
  std::uint64_t high() const { return high_; }

 private:
  void drain();
  std::uint32_t base_ = 0;
  bool has_base_ = false;
  std::vector<std::byte> bytes_;
  // Out of order, by offset: each piece is looked at once, when the stream reaches it, so a
  // hole early in a long capture costs a lookup per later segment, not a scan of all of them.
  std::multimap<std::uint64_t, std::vector<std::byte>> pending_;
  std::uint64_t high_ = 0;
};

}  // namespace xtcp::replay
