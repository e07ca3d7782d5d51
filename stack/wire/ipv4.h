// IPv4 header (RFC 791) as a view over received bytes, validated once by parse(), and an
// emitter for the 20-byte option-less header xtcp sends. Received packet -> parse() ->
// Ipv4View -> accessors (no bounds checks needed) -> payload() to ICMP/TCP; outgoing
// headers are written in place by emit_ipv4_header(). Addresses are host-order uint32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "stack/wire/bytes.h"

namespace xtcp::wire {

inline constexpr std::size_t kIpv4HeaderMin = 20;
inline constexpr std::size_t kIpv4HeaderMax = 60;       // IHL is 4 bits of 32-bit words
inline constexpr std::size_t kIpv4MaxPacket = 65535;    // total length is 16 bits
inline constexpr std::uint8_t kProtoIcmp = 1, kProtoTcp = 6, kProtoUdp = 17;

// IPv4 option types walked by the validator (RFC 791 section 3.1, "Options").
inline constexpr std::uint8_t kIpOptEol = 0;
inline constexpr std::uint8_t kIpOptNop = 1;

// Why parse() refused a packet. kTruncated always means "the buffer is shorter than the
// header says" (including a total length field larger than the buffer: a lying length and a
// packet cut in transit cannot be told apart); the other values are impossible field values.
enum class Ipv4Error : std::uint8_t {
  kNone = 0,
  kTruncated,        // < 20 bytes, IHL*4 > buffer, or total length > buffer
  kBadVersion,       // version != 4
  kBadHeaderLength,  // IHL < 5
  kBadTotalLength,   // total length < IHL*4
  kBadChecksum,      // header checksum does not verify (RFC 791 3.1, RFC 1122 3.2.1.2)
  kBadOptions,       // an option's length byte is missing, < 2, or runs past the header
};

const char* to_string(Ipv4Error e);

// A validated IPv4 packet. The only way to get one is parse(), which returns std::nullopt
// (and the reason in *err) for anything malformed, so every Ipv4View in existence has
// passed validation and its accessors read only inside [header, header + total_length).
// The view does not own the bytes; it is valid while the underlying buffer is.
class Ipv4View {
 public:
  // Validation order follows what can be trusted: length for the fixed header, version,
  // IHL, the header checksum (so a corrupted length field is reported as a checksum error),
  // then total length against the buffer, then the options walk. Bytes beyond total length
  // (link padding, e.g. an Ethernet minimum frame) are not part of the datagram and are cut
  // off (RFC 791 3.1 "Total Length"; Linux ip_rcv_core trims the same way).
  static std::optional<Ipv4View> parse(ByteSpan packet, Ipv4Error* err = nullptr);

  std::uint8_t version() const { return 4; }  // parse() guarantees it
  std::size_t header_length() const { return header_len_; }
  std::uint8_t tos() const { return load_u8(p() + 1); }
  std::uint8_t dscp() const { return static_cast<std::uint8_t>(tos() >> 2); }
  std::uint8_t ecn() const { return static_cast<std::uint8_t>(tos() & 0x3); }
  std::uint16_t total_length() const { return load_be16(p() + 2); }
  std::uint16_t id() const { return load_be16(p() + 4); }
  bool reserved_flag() const { return (load_u8(p() + 6) & 0x80) != 0; }
  bool dont_fragment() const { return (load_u8(p() + 6) & 0x40) != 0; }
  bool more_fragments() const { return (load_u8(p() + 6) & 0x20) != 0; }
  // In bytes (the field counts 8-byte units), 0..65528.
  std::uint32_t fragment_offset() const {
    return static_cast<std::uint32_t>(load_be16(p() + 6) & 0x1fff) * 8;
  }
  bool is_fragment() const { return more_fragments() || fragment_offset() != 0; }
  std::uint8_t ttl() const { return load_u8(p() + 8); }
  std::uint8_t protocol() const { return load_u8(p() + 9); }
  std::uint16_t checksum() const { return load_be16(p() + 10); }
  std::uint32_t src() const { return load_be32(p() + 12); }
  std::uint32_t dst() const { return load_be32(p() + 16); }

  ByteSpan header() const { return packet_.first(header_len_); }
  ByteSpan options() const { return packet_.subspan(kIpv4HeaderMin, header_len_ - kIpv4HeaderMin); }
  // Exactly total_length - header_length bytes; link padding is excluded.
  ByteSpan payload() const { return packet_.subspan(header_len_); }
  // Header and payload: exactly total_length bytes.
  ByteSpan packet() const { return packet_; }

 private:
  Ipv4View(ByteSpan packet, std::size_t header_len) : packet_(packet), header_len_(header_len) {}
  const std::byte* p() const { return packet_.data(); }

  ByteSpan packet_;  // trimmed to total_length
  std::size_t header_len_ = 0;
};

// Walks options per RFC 791 3.1: EOL ends the list (the rest is padding), NOP is one byte,
// every other option carries a length byte >= 2 that must fit in the remaining bytes.
// Returns false if the walk cannot complete. Option contents are not interpreted: a host
// that does not implement an option ignores it (RFC 1122 3.2.1.8).
bool ipv4_options_well_formed(ByteSpan options);

// Fields of an outgoing option-less header. Fragment offset is always 0 and MF clear:
// xtcp never fragments what it sends (TCP sizes segments to the path MTU).
struct Ipv4Fields {
  std::uint8_t tos = 0;
  std::uint16_t total_length = 0;  // header (20) + payload
  std::uint16_t id = 0;
  bool dont_fragment = true;
  std::uint8_t ttl = 64;
  std::uint8_t protocol = 0;
  std::uint32_t src = 0;
  std::uint32_t dst = 0;
};

// Writes 20 bytes at out (version 4, IHL 5, no options) including the header checksum.
void emit_ipv4_header(std::byte* out, const Ipv4Fields& f);

// Dotted-quad helpers. parse_ipv4 is strict: exactly four decimal parts 0..255, no signs,
// no spaces, no leading zeros (which inet_aton would read as octal). Returns false and leaves
// *out unchanged on failure.
std::string format_ipv4(std::uint32_t addr);
bool parse_ipv4(std::string_view text, std::uint32_t* out);

constexpr std::uint32_t ipv4_addr(std::uint8_t a, std::uint8_t b, std::uint8_t c,
                                  std::uint8_t d) {
  return (static_cast<std::uint32_t>(a) << 24) | (static_cast<std::uint32_t>(b) << 16) |
         (static_cast<std::uint32_t>(c) << 8) | d;
}

// Address classes (RFC 1122 3.2.1.3, RFC 5735 / RFC 6890 special-purpose registry).
constexpr bool is_unspecified(std::uint32_t a) { return a == 0; }
constexpr bool is_limited_broadcast(std::uint32_t a) { return a == 0xffffffffu; }
constexpr bool is_loopback(std::uint32_t a) { return (a >> 24) == 127; }
constexpr bool is_multicast(std::uint32_t a) { return (a >> 28) == 0xe; }         // 224/4
constexpr bool is_reserved_class_e(std::uint32_t a) { return (a >> 28) == 0xf; }  // 240/4
// True for addresses that cannot be the source of a datagram from a single remote host:
// - 0/8 "this network" (RFC 1122 allows it only while a host boots, never toward a server;
//   Linux treats 0/8 as martian too);
// - 127/8 loopback (RFC 1122 3.2.1.3 (g): MUST NOT appear outside a host);
// - 224/4 multicast and 240/4 including 255.255.255.255 (RFC 1122 3.2.1.3: a host MUST
//   silently discard a datagram whose source is broadcast or multicast).
constexpr bool is_martian_source(std::uint32_t a) {
  return (a >> 24) == 0 || is_loopback(a) || is_multicast(a) || is_reserved_class_e(a);
}

}  // namespace xtcp::wire
