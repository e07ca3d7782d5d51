// ICMPv4 (RFC 792) messages: a checksum-verified view over an IPv4 payload, emitters for
// echo replies and error messages, and a parser for the datagram an ICMP error quotes.
// IPv4 payload -> IcmpView::parse -> type/code/rest/payload; errors -> parse_icmp_quote ->
// who we sent what to (addresses, protocol, ports, TCP sequence number).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "stack/wire/bytes.h"

namespace xtcp::wire {

inline constexpr std::size_t kIcmpHeaderLen = 8;  // type, code, checksum, rest of header

// Types (RFC 792; RFC 1122 3.2.2).
inline constexpr std::uint8_t kIcmpEchoReply = 0;
inline constexpr std::uint8_t kIcmpDestUnreachable = 3;
inline constexpr std::uint8_t kIcmpSourceQuench = 4;  // deprecated by RFC 6633
inline constexpr std::uint8_t kIcmpRedirect = 5;
inline constexpr std::uint8_t kIcmpEchoRequest = 8;
inline constexpr std::uint8_t kIcmpTimeExceeded = 11;
inline constexpr std::uint8_t kIcmpParameterProblem = 12;
inline constexpr std::uint8_t kIcmpTimestampRequest = 13;
inline constexpr std::uint8_t kIcmpTimestampReply = 14;

// Destination unreachable codes (RFC 792, RFC 1122 3.2.2.1, RFC 1812 5.2.7.1).
inline constexpr std::uint8_t kUnreachNet = 0;
inline constexpr std::uint8_t kUnreachHost = 1;
inline constexpr std::uint8_t kUnreachProtocol = 2;
inline constexpr std::uint8_t kUnreachPort = 3;
inline constexpr std::uint8_t kUnreachFragNeeded = 4;  // RFC 1191: next-hop MTU in rest
inline constexpr std::uint8_t kUnreachSourceRouteFailed = 5;
inline constexpr std::uint8_t kUnreachNetUnknown = 6;
inline constexpr std::uint8_t kUnreachHostUnknown = 7;
inline constexpr std::uint8_t kUnreachSourceIsolated = 8;
inline constexpr std::uint8_t kUnreachNetProhibited = 9;
inline constexpr std::uint8_t kUnreachHostProhibited = 10;
inline constexpr std::uint8_t kUnreachNetTos = 11;
inline constexpr std::uint8_t kUnreachHostTos = 12;
inline constexpr std::uint8_t kUnreachAdminProhibited = 13;
inline constexpr std::uint8_t kUnreachPrecedenceViolation = 14;
inline constexpr std::uint8_t kUnreachPrecedenceCutoff = 15;

// Time exceeded codes.
inline constexpr std::uint8_t kTimeExceededTtl = 0;
inline constexpr std::uint8_t kTimeExceededReassembly = 1;

// Parameter problem codes (RFC 792, RFC 1122 3.2.2.5).
inline constexpr std::uint8_t kParamProblemPointer = 0;
inline constexpr std::uint8_t kParamProblemMissingOption = 1;

// RFC 1812 4.3.2.3: an ICMP error quotes as much of the original datagram as fits without
// the error exceeding 576 bytes: 576 - 20 (IP header) - 8 (ICMP header).
inline constexpr std::size_t kIcmpErrorMaxLen = 576;
inline constexpr std::size_t kIcmpErrorQuoteMax = kIcmpErrorMaxLen - 20 - kIcmpHeaderLen;

// RFC 1122 3.2.2: the error types (as opposed to query/informational ones). Unknown types
// are not errors; RFC 1812 4.3.2.7 treats them as informational.
constexpr bool icmp_is_error(std::uint8_t type) {
  return type == kIcmpDestUnreachable || type == kIcmpSourceQuench || type == kIcmpRedirect ||
         type == kIcmpTimeExceeded || type == kIcmpParameterProblem;
}

enum class IcmpError : std::uint8_t {
  kNone = 0,
  kTruncated,    // shorter than the 8-byte header, or a quote shorter than IP header + 8
  kBadChecksum,  // RFC 1122 3.2.2: silently discarded
  kBadQuote,     // quoted datagram is not a plausible IPv4 header (version, IHL)
};

const char* to_string(IcmpError e);

// A checksum-verified ICMP message. Like Ipv4View, it exists only after parse() succeeded;
// every accessor then reads inside the message. The checksum covers the whole message
// (RFC 792), so the view must be given the complete (reassembled) IP payload.
class IcmpView {
 public:
  static std::optional<IcmpView> parse(ByteSpan message, IcmpError* err = nullptr);

  std::uint8_t type() const { return load_u8(msg_.data()); }
  std::uint8_t code() const { return load_u8(msg_.data() + 1); }
  std::uint16_t checksum() const { return load_be16(msg_.data() + 2); }
  // Bytes 4..7, whose meaning depends on the type.
  std::uint32_t rest_of_header() const { return load_be32(msg_.data() + 4); }
  std::uint16_t echo_id() const { return load_be16(msg_.data() + 4); }
  std::uint16_t echo_seq() const { return load_be16(msg_.data() + 6); }
  // Destination unreachable code 4 (RFC 1191 section 4): low 16 bits; 0 from old routers.
  std::uint16_t next_hop_mtu() const { return load_be16(msg_.data() + 6); }
  // Parameter problem (RFC 792): octet of the quoted header where the problem is.
  std::uint8_t pointer() const { return load_u8(msg_.data() + 4); }
  bool is_error() const { return icmp_is_error(type()); }

  ByteSpan message() const { return msg_; }
  ByteSpan payload() const { return msg_.subspan(kIcmpHeaderLen); }

 private:
  explicit IcmpView(ByteSpan msg) : msg_(msg) {}
  ByteSpan msg_;
};

// Writes an echo reply to `request` (RFC 792: type 0, same identifier, sequence number and
// data) into out, truncating the data to fit (RFC 1122 3.2.2.6: when a reply would need
// fragmentation that is not implemented, it MUST be truncated and sent). Returns the bytes
// written, or 0 if out cannot hold even the 8-byte header.
std::size_t emit_icmp_echo_reply(MutableByteSpan out, const IcmpView& request);

// Writes an ICMP error message: header (type, code, rest of header) followed by the start of
// `original`, the offending datagram from its IP header on, limited to both out.size() - 8
// and kIcmpErrorQuoteMax. RFC 792 requires at least the IP header and 8 data bytes; if
// neither `original` nor `out` allow min(original.size(), that much), nothing is written and
// 0 is returned. Otherwise returns the bytes written.
std::size_t emit_icmp_error(MutableByteSpan out, std::uint8_t type, std::uint8_t code,
                            std::uint32_t rest_of_header, ByteSpan original);

// Destination unreachable; next_hop_mtu is only meaningful with kUnreachFragNeeded.
std::size_t emit_icmp_dest_unreachable(MutableByteSpan out, std::uint8_t code, ByteSpan original,
                                       std::uint16_t next_hop_mtu = 0);

// What an ICMP error says about the datagram it quotes. The first 8 transport bytes are
// always present (RFC 792); for TCP and UDP they hold the ports, for TCP also the sequence
// number. The quoted header's checksum is NOT verified: routers and NATs rewrite quoted
// headers without fixing it, and the receiver matches on the fields anyway (RFC 5927).
struct IcmpQuote {
  std::uint32_t src = 0;
  std::uint32_t dst = 0;
  std::uint8_t protocol = 0;
  std::uint8_t tos = 0;
  std::uint16_t id = 0;
  std::uint16_t total_length = 0;  // as it was in the original, not what was quoted
  std::uint32_t fragment_offset = 0;
  ByteSpan header;     // the quoted IP header (IHL*4 bytes)
  ByteSpan transport;  // quoted bytes after the header, at least 8
  // Valid only when the quote starts at fragment offset 0 (else the bytes are not a header).
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;
  std::uint32_t tcp_seq = 0;  // only meaningful for TCP
};

// Parses the payload of an ICMP error (IcmpView::payload()).
std::optional<IcmpQuote> parse_icmp_quote(ByteSpan quoted, IcmpError* err = nullptr);

}  // namespace xtcp::wire
