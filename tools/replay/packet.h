// The IPv4/TCP facts xtcp-replay reads from a packet, tolerant of malformed input: a capture
// may hold segments with bad checksums, bad header lengths or bad options on purpose (the
// adversarial suites), and those must still be assigned to their flow and replayed as they
// are. Only the fixed fields that every TCP header has (ports, seq, ack, flags) are needed
// to place a packet; the rest is read when it parses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace xtcp::replay {

struct Endpoint {
  std::uint32_t addr = 0;
  std::uint16_t port = 0;
  bool operator==(const Endpoint&) const = default;
};
// "198.18.0.1:40000"
std::string format_endpoint(const Endpoint& e);

// What one IPv4 packet carrying TCP says. valid is false when the packet is not IPv4/TCP or
// too short to hold the TCP fixed fields (ports..flags); such packets are not replayed.
struct TcpFacts {
  bool valid = false;
  std::size_t ip_header = 0;  // IPv4 header length (IHL * 4)
  std::size_t tcp_offset = 0;
  std::size_t tcp_length = 0;  // IPv4 total length - IHL*4, cut to the bytes present
  Endpoint src;
  Endpoint dst;
  std::uint32_t seq = 0;
  std::uint32_t ack = 0;
  std::uint8_t flags = 0;
  // The TCP header length is sane (20..60 and within the segment): payload and options
  // can be read. Otherwise the segment carries no payload as far as replay is concerned.
  bool header_ok = false;
  std::size_t header_length = 0;
  std::size_t payload_offset = 0;  // from the start of the IP packet
  std::size_t payload_length = 0;
  std::uint16_t window = 0;  // as sent (unscaled)
  bool has_tsval = false;
  std::uint32_t tsval = 0;
  bool has_wscale = false;
  std::uint8_t wscale = 0;
  bool has(std::uint8_t f) const { return (flags & f) != 0; }
  // Sequence space the segment takes: payload, SYN and FIN.
  std::uint32_t seq_length() const;
};

TcpFacts read_tcp_facts(std::span<const std::byte> ip);

// Calls on_option(kind, offset, length) for every option of the TCP option bytes (NOPs and
// EOL aside) up to the first malformed one (a length under 2 or running past the end):
// what comes after that cannot be told apart and is left as it is.
template <typename OnOption>
void for_each_tcp_option(std::span<const std::byte> opts, const OnOption& on_option) {
  std::size_t i = 0;
  while (i < opts.size()) {
    const auto kind = static_cast<std::uint8_t>(opts[i]);
    if (kind == 0) {  // EOL
      return;
    }
    if (kind == 1) {  // NOP
      ++i;
      continue;
    }
    if (i + 1 >= opts.size()) {
      return;
    }
    const auto len = static_cast<std::size_t>(opts[i + 1]);
    if (len < 2 || i + len > opts.size()) {
      return;
    }
    on_option(kind, i, len);
    i += len;
  }
}

// Checksums as the packet carries them: whether each is right (for the addresses the packet
// has). A packet that arrived with a wrong checksum keeps a wrong one when rewritten.
bool ip_checksum_ok(std::span<const std::byte> ip, const TcpFacts& f);
bool tcp_checksum_ok(std::span<const std::byte> ip, const TcpFacts& f);
// Recomputes the checksums; a `false` keeps that checksum wrong (one bit off the right value).
void set_checksums(std::span<std::byte> ip, const TcpFacts& f, bool ip_ok, bool tcp_ok);

// Printable form of bytes: text as is with \n \r \t \\ and \xNN escapes.
std::string escape_bytes(std::span<const std::byte> bytes, std::size_t max);
std::string hex_bytes(std::span<const std::byte> bytes, std::size_t max);

}  // namespace xtcp::replay
