// libFuzzer target for what xtcp-replay makes of a capture's packets (docs/replay.md): the
// tolerant IPv4/TCP reader (read_tcp_facts), flow extraction with the server's reassembled
// byte stream and flow ends (extract_flows, StreamAssembler), and the per-packet walk the
// replayer does over them (the captured server's state, a live server's state, the client
// packets rewritten for the live connection). A pcap is user input: whatever it holds must
// never crash, hang or grow without bound, and the results must agree with the packets.
//
// Input format:
//   header (7 bytes): sel | addr (4, big-endian) | port (2, big-endian)
//     sel & 0x80: the given server endpoint is addr:port; else it is the destination (sel & 1
//       clear) or source (set) of packet number (sel >> 1 & 0x1f) % count, when that packet
//       is IPv4/TCP. extract_flows runs without a server (guessed from the first SYN) and
//       with this one.
//     sel & 0x40 (with 0x80 clear: on port & 1, addr): the rewriting moves the client
//       addresses to a base, the server's address and port.
//   then packets until the bytes run out or kMaxPackets: length (2 bytes, big-endian,
//     clamped to what is left) | IPv4 packet bytes.
// Packets get timestamps 1 ms apart.
#include <algorithm>
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "stack/core/clock.h"
#include "stack/wire/ipv4.h"
#include "stack/wire/tcp.h"
#include "tools/replay/capture.h"
#include "tools/replay/packet.h"
#include "tools/replay/rewrite.h"

namespace {

using namespace xtcp;
using namespace xtcp::replay;
namespace tf = wire::tcp_flags;

constexpr std::size_t kHeader = 7;
constexpr std::size_t kMaxPackets = 512;

// The harness's own reference checks carry no coverage instrumentation: their loops would
// only add noise to the features libFuzzer steers by.
#define XTCP_HARNESS_ONLY __attribute__((no_sanitize("coverage")))

// A violated invariant aborts with its text, so libFuzzer keeps the input.
void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_replay invariant violated: %s\n", what);
    std::abort();
  }
}
#define CHECK(cond) check((cond), #cond)

std::uint16_t be16(const std::uint8_t* p) { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }
std::uint32_t be32(const std::uint8_t* p) {
  return (static_cast<std::uint32_t>(be16(p)) << 16) | be16(p + 2);
}

// What read_tcp_facts says must lie inside the packet, with the documented bounds.
XTCP_HARNESS_ONLY void check_facts(std::span<const std::byte> ip, const TcpFacts& f) {
  if (!f.valid) {
    CHECK(!f.header_ok && f.payload_length == 0);
    return;
  }
  CHECK(ip.size() >= wire::kIpv4HeaderMin);
  CHECK(f.tcp_offset >= wire::kIpv4HeaderMin && f.tcp_offset == std::max(f.ip_header, wire::kIpv4HeaderMin));
  CHECK(f.tcp_length >= 14 && f.tcp_offset + f.tcp_length <= ip.size());
  if (f.header_ok) {
    CHECK(f.header_length >= wire::kTcpHeaderMin && f.header_length <= 60 && f.header_length <= f.tcp_length);
    CHECK(f.payload_offset == f.tcp_offset + f.header_length);
    CHECK(f.payload_offset + f.payload_length == f.tcp_offset + f.tcp_length);
  } else {
    CHECK(f.payload_length == 0 && !f.has_tsval && !f.has_wscale);
  }
  CHECK(f.wscale <= wire::kMaxWindowScale);
}

// The server's stream of one flow computed the plain way: every byte offset the server's
// segments (from its first SYN on) cover, with the values sent there.
struct ReferenceStream {
  std::map<std::uint64_t, std::bitset<256>> bytes;
  std::uint64_t high = 0;
};

XTCP_HARNESS_ONLY ReferenceStream reference_stream(const Capture& cap, const Flow& fl) {
  ReferenceStream r;
  bool has_base = false;
  std::uint32_t base = 0;
  for (const std::size_t i : fl.packets) {
    if (cap.from_client[i]) {
      continue;
    }
    const TcpFacts& f = cap.packets[i].facts;
    if (f.has(tf::kSyn) && !has_base) {
      has_base = true;
      base = f.seq + 1;
    }
    if (!has_base || !f.header_ok || f.payload_length == 0) {
      continue;
    }
    const std::uint32_t first = f.has(tf::kSyn) ? f.seq + 1 : f.seq;
    const auto rel = static_cast<std::int64_t>(static_cast<std::int32_t>(first - base));
    for (std::size_t k = 0; k < f.payload_length; ++k) {
      const std::int64_t at = rel + static_cast<std::int64_t>(k);
      if (at < 0) {
        continue;
      }
      r.bytes[static_cast<std::uint64_t>(at)].set(
          static_cast<std::uint8_t>(cap.packets[i].ip[f.payload_offset + k]));
      r.high = std::max(r.high, static_cast<std::uint64_t>(at) + 1);
    }
  }
  return r;
}

// Every byte of server_bytes is one the server sent at that offset; the stream stops where
// the first hole is, and a gap is reported when bytes lie past it.
XTCP_HARNESS_ONLY void check_server_stream(const Capture& cap, const Flow& fl) {
  const ReferenceStream r = reference_stream(cap, fl);
  std::uint64_t contiguous = 0;
  for (auto it = r.bytes.begin(); it != r.bytes.end() && it->first == contiguous; ++it) {
    ++contiguous;
  }
  CHECK(fl.server_bytes.size() == contiguous);
  for (std::size_t k = 0; k < fl.server_bytes.size(); ++k) {
    CHECK(r.bytes.at(k).test(static_cast<std::uint8_t>(fl.server_bytes[k])));
  }
  CHECK(fl.server_bytes_gap == (r.high > contiguous));
}

XTCP_HARNESS_ONLY void check_capture(const Capture& cap, std::size_t count) {
  CHECK(cap.packets.size() == count);
  CHECK(cap.flow_of.size() == count && cap.from_client.size() == count);
  std::size_t ignored = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const TcpFacts& f = cap.packets[i].facts;
    const bool to_server = f.valid && f.dst == cap.server;
    const bool from_server = f.valid && f.src == cap.server;
    if (cap.flow_of[i] == SIZE_MAX) {
      CHECK(!to_server && !from_server);
      ++ignored;
      continue;
    }
    CHECK(cap.flow_of[i] < cap.flows.size());
    CHECK(cap.from_client[i] == to_server);
    const Flow& fl = cap.flows[cap.flow_of[i]];
    CHECK((to_server ? f.src : f.dst) == fl.client);
  }
  CHECK(ignored == cap.ignored_packets);
  std::size_t in_flows = 0;
  for (std::size_t x = 0; x < cap.flows.size(); ++x) {
    const Flow& fl = cap.flows[x];
    CHECK(fl.server == cap.server && !fl.packets.empty());
    CHECK(fl.client_packets + fl.server_packets == fl.packets.size());
    bool fin = false;
    bool rst = false;
    bool client_syn = false;
    bool server_syn = false;
    for (std::size_t j = 0; j < fl.packets.size(); ++j) {
      const std::size_t i = fl.packets[j];
      CHECK(i < count && cap.flow_of[i] == x);
      CHECK(j == 0 || fl.packets[j - 1] < i);
      const TcpFacts& f = cap.packets[i].facts;
      if (cap.from_client[i]) {
        if (f.has(tf::kSyn) && !f.has(tf::kAck) && !client_syn) {
          client_syn = true;
          CHECK(fl.client_isn == f.seq);
        }
        continue;
      }
      if (f.has(tf::kSyn) && !server_syn) {
        server_syn = true;
        CHECK(fl.server_isn == f.seq);
      }
      fin = fin || f.has(tf::kFin);
      rst = rst || f.has(tf::kRst);
    }
    CHECK(fl.client_syn == client_syn && fl.server_syn == server_syn);
    CHECK(fl.end == (FlowEnd{fin, rst}));
    CHECK(!describe(fl.end).empty());
    in_flows += fl.packets.size();
    check_server_stream(cap, fl);
  }
  CHECK(in_flows + ignored == count);
}

// The replayer's walk over the capture (tools/replay/replayer.cc): server packets update the
// captured server's state, and here also a live server's (as if it answered exactly as
// captured); client packets are rewritten for the live connection, which keeps their size,
// offsets, own fields and checksum rightness.
void walk_like_replay(const Capture& cap, AddressMap addresses) {
  std::vector<CapturedServerState> captured(cap.flows.size());
  std::vector<LiveFlow> live(cap.flows.size());
  for (std::size_t i = 0; i < cap.packets.size(); ++i) {
    const std::size_t x = cap.flow_of[i];
    if (x == SIZE_MAX) {
      continue;
    }
    const CapturedPacket& p = cap.packets[i];
    if (!cap.from_client[i]) {
      captured[x].take(p.ip, p.facts, cap.flows[x]);
      live[x].take(p.ip, p.facts);
      const ServerProgress progress = live[x].progress();
      CHECK(progress.fin == live[x].end.fin && progress.rst == live[x].end.rst);
      continue;
    }
    (void)captured[x].window.covers(p.facts.seq + static_cast<std::uint32_t>(p.facts.payload_length));
    const std::vector<std::byte> out = rewrite_client_packet(p, cap.flows[x], captured[x], live[x], addresses);
    CHECK(out.size() == p.ip.size());
    const TcpFacts nf = read_tcp_facts(out);
    const TcpFacts& f = p.facts;
    CHECK(nf.valid && nf.tcp_offset == f.tcp_offset && nf.tcp_length == f.tcp_length);
    CHECK(nf.header_ok == f.header_ok && nf.payload_offset == f.payload_offset &&
          nf.payload_length == f.payload_length);
    CHECK(nf.src.port == f.src.port && nf.seq == f.seq && nf.flags == f.flags && nf.window == f.window);
    CHECK(nf.has_tsval == f.has_tsval && nf.has_wscale == f.has_wscale && nf.wscale == f.wscale);
    CHECK(ip_checksum_ok(out, nf) == ip_checksum_ok(p.ip, f));
    CHECK(tcp_checksum_ok(out, nf) == tcp_checksum_ok(p.ip, f));
    if (f.header_ok && f.payload_length > 0) {
      CHECK(std::equal(out.begin() + static_cast<std::ptrdiff_t>(f.payload_offset), out.end(),
                       p.ip.begin() + static_cast<std::ptrdiff_t>(f.payload_offset)));
    }
    (void)escape_bytes(std::span<const std::byte>(out).subspan(nf.payload_offset, nf.payload_length), 64);
    (void)hex_bytes(out, 64);
  }
  for (std::size_t x = 0; x < cap.flows.size(); ++x) {
    // A live server that sent exactly what the captured one did has sent the same stream.
    CHECK(live[x].stream.bytes() == cap.flows[x].server_bytes);
    CHECK(live[x].stream.gap() == cap.flows[x].server_bytes_gap);
    CHECK(live[x].end == cap.flows[x].end);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < kHeader) {
    return 0;
  }
  const std::uint8_t sel = data[0];
  const Endpoint literal{be32(data + 1), be16(data + 5)};
  std::vector<CapturedPacket> packets;
  std::size_t at = kHeader;
  TimeNs t = seconds(1700000000);
  while (at + 2 <= size && packets.size() < kMaxPackets) {
    const std::size_t len = std::min<std::size_t>(be16(data + at), size - at - 2);
    at += 2;
    CapturedPacket p;
    p.time = t;
    t += ms(1);
    const auto* first = reinterpret_cast<const std::byte*>(data + at);
    p.ip.assign(first, first + len);
    at += len;
    p.facts = read_tcp_facts(p.ip);
    check_facts(p.ip, p.facts);
    packets.push_back(std::move(p));
  }

  std::optional<Endpoint> server;
  if (sel & 0x80) {
    server = literal;
  } else if (!packets.empty()) {
    const TcpFacts& f = packets[((sel >> 1) & 0x1f) % packets.size()].facts;
    if (f.valid) {
      server = (sel & 1) ? f.src : f.dst;
    }
  }
  AddressMap addresses;
  if ((sel & 0x40) && !(sel & 0x80)) {
    addresses.client_base = literal.addr;
    if (literal.port & 1) {
      addresses.server_addr = literal.addr ^ 0xff;
      addresses.server_port = literal.port;
    }
  }

  bool any_syn = false;
  for (const CapturedPacket& p : packets) {
    any_syn = any_syn || (p.facts.valid && p.facts.has(tf::kSyn) && !p.facts.has(tf::kAck));
  }
  const std::size_t count = packets.size();
  std::string error;
  const std::optional<Capture> guessed = extract_flows(packets, std::nullopt, &error);
  CHECK(guessed.has_value() == any_syn);
  if (guessed) {
    check_capture(*guessed, count);
    walk_like_replay(*guessed, addresses);
  } else {
    CHECK(!error.empty());
  }
  if (server) {
    error.clear();
    const std::optional<Capture> given = extract_flows(std::move(packets), server, &error);
    CHECK(given.has_value() && given->server == *server);
    check_capture(*given, count);
    walk_like_replay(*given, addresses);
  }
  return 0;
}
