// Sequence rewriting: a client packet of the capture, made to fit the live connection.
// The client's own sequence numbers and TSvals stay as captured (replay plays that client);
// what refers to the server's side is moved from the capture's server sequence space into
// the live server's (its ISN differs): the acknowledgement number, SACK blocks, and the
// timestamp echo (TSecr, RFC 7323 section 3: the latest TSval the live server sent). An ACK
// never covers more than the live server has sent, unless the captured one went beyond the
// captured server's too (then it goes beyond by as much). Addresses may be moved (the
// server's to where the live one answers, the clients' to addresses the kernel does not
// own); checksums are recomputed, and one that was wrong in the capture stays wrong.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "tools/replay/capture.h"

namespace xtcp::replay {

// The right edge of the window a server advertised last (ACK + window, scaled after the
// SYN as RFC 7323 section 2.2 says): how far the client may send. In the client's sequence
// space, which replay keeps as captured.
struct AdvertisedWindow {
  bool known = false;
  std::uint32_t right_edge = 0;
  std::uint8_t shift = 0;  // from the server's SYN-ACK
  void take(const TcpFacts& f);
  // The segment [seq, end) fits inside it.
  bool covers(std::uint32_t end) const;
};

// What the live server has done on one flow, from the segments it sent.
struct LiveFlow {
  bool syn = false;
  std::uint32_t iss = 0;
  bool has_high = false;
  std::uint32_t high = 0;  // one past the highest sequence number it sent (SYN, data, FIN)
  bool has_tsval = false;
  std::uint32_t tsval = 0;
  FlowEnd end;
  StreamAssembler stream;
  AdvertisedWindow window;
  std::uint64_t packets = 0;

  // Takes one segment from the server on this flow.
  void take(std::span<const std::byte> ip, const TcpFacts& f);
  ServerProgress progress() const;
};

// The captured server's state on one flow as replay walks the capture in order.
struct CapturedServerState {
  bool has_high = false;
  std::uint32_t high = 0;
  ServerProgress progress;
  AdvertisedWindow window;
  void take(std::span<const std::byte> ip, const TcpFacts& f, const Flow& flow);
};

struct AddressMap {
  std::optional<std::uint32_t> server_addr;  // the live server's address (default: the captured one)
  std::optional<std::uint16_t> server_port;
  // Client addresses are moved to base, base+1, ... in order of first appearance.
  std::optional<std::uint32_t> client_base;
  std::vector<std::uint32_t> seen_clients;
  std::uint32_t client(std::uint32_t captured);
};

// The captured client packet p of flow, rewritten for the live connection.
std::vector<std::byte> rewrite_client_packet(const CapturedPacket& p, const Flow& flow,
                                             const CapturedServerState& captured_server, const LiveFlow& live,
                                             AddressMap& addresses);

}  // namespace xtcp::replay
