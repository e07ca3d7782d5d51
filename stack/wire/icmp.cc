// ICMP parsing and emission: checksum verification over the whole message, echo reply and
// error construction into caller-provided buffers, and the quoted-datagram parser.
#include "stack/wire/icmp.h"

#include <algorithm>
#include <cstring>

#include "stack/wire/checksum.h"
#include "stack/wire/ipv4.h"

namespace xtcp::wire {

const char* to_string(IcmpError e) {
  switch (e) {
    case IcmpError::kNone:
      return "none";
    case IcmpError::kTruncated:
      return "truncated";
    case IcmpError::kBadChecksum:
      return "bad checksum";
    case IcmpError::kBadQuote:
      return "bad quote";
  }
  return "unknown";
}

std::optional<IcmpView> IcmpView::parse(ByteSpan message, IcmpError* err) {
  auto fail = [err](IcmpError e) -> std::optional<IcmpView> {
    if (err != nullptr) {
      *err = e;
    }
    return std::nullopt;
  };
  if (message.size() < kIcmpHeaderLen) {
    return fail(IcmpError::kTruncated);
  }
  Checksum sum;
  sum.add(message);
  if (sum.folded() != 0xffff) {
    return fail(IcmpError::kBadChecksum);
  }
  if (err != nullptr) {
    *err = IcmpError::kNone;
  }
  return IcmpView(message);
}

namespace {

// Fills in the checksum of an ICMP message already written at out[0, len).
void finish_icmp(std::byte* out, std::size_t len) {
  store_be16(out + 2, 0);
  store_be16(out + 2, internet_checksum(ByteSpan(out, len)));
}

}  // namespace

std::size_t emit_icmp_echo_reply(MutableByteSpan out, const IcmpView& request) {
  if (out.size() < kIcmpHeaderLen) {
    return 0;
  }
  const ByteSpan data = request.payload();
  const std::size_t data_len = std::min(data.size(), out.size() - kIcmpHeaderLen);
  std::byte* o = out.data();
  store_u8(o, kIcmpEchoReply);
  store_u8(o + 1, 0);
  store_be32(o + 4, request.rest_of_header());  // identifier and sequence number
  if (data_len != 0) {
    std::memmove(o + kIcmpHeaderLen, data.data(), data_len);  // may alias the request
  }
  const std::size_t len = kIcmpHeaderLen + data_len;
  finish_icmp(o, len);
  return len;
}

std::size_t emit_icmp_error(MutableByteSpan out, std::uint8_t type, std::uint8_t code,
                            std::uint32_t rest_of_header, ByteSpan original) {
  // The minimum quote is the original IP header plus 8 bytes (RFC 792), or the whole
  // original if that is shorter. A header length that is not readable counts as 20.
  std::size_t header_len = kIpv4HeaderMin;
  if (!original.empty()) {
    header_len = std::max<std::size_t>(kIpv4HeaderMin, (load_u8(original.data()) & 0xf) * 4u);
  }
  const std::size_t min_quote = std::min(original.size(), header_len + 8);
  if (out.size() < kIcmpHeaderLen + min_quote) {
    return 0;
  }
  const std::size_t quote =
      std::min({original.size(), out.size() - kIcmpHeaderLen, kIcmpErrorQuoteMax});
  if (quote < min_quote) {
    return 0;  // only when the header is so long that header + 8 exceeds kIcmpErrorQuoteMax
  }
  std::byte* o = out.data();
  store_u8(o, type);
  store_u8(o + 1, code);
  store_be32(o + 4, rest_of_header);
  if (quote != 0) {
    std::memmove(o + kIcmpHeaderLen, original.data(), quote);
  }
  const std::size_t len = kIcmpHeaderLen + quote;
  finish_icmp(o, len);
  return len;
}

std::size_t emit_icmp_dest_unreachable(MutableByteSpan out, std::uint8_t code, ByteSpan original,
                                       std::uint16_t next_hop_mtu) {
  // RFC 1191 section 4: the low 16 bits carry the next-hop MTU; the high 16 are unused (0).
  const std::uint32_t rest = code == kUnreachFragNeeded ? next_hop_mtu : 0;
  return emit_icmp_error(out, kIcmpDestUnreachable, code, rest, original);
}

std::optional<IcmpQuote> parse_icmp_quote(ByteSpan quoted, IcmpError* err) {
  auto fail = [err](IcmpError e) -> std::optional<IcmpQuote> {
    if (err != nullptr) {
      *err = e;
    }
    return std::nullopt;
  };
  if (quoted.size() < kIpv4HeaderMin) {
    return fail(IcmpError::kTruncated);
  }
  const std::byte* p = quoted.data();
  const std::uint8_t vihl = load_u8(p);
  const std::size_t header_len = static_cast<std::size_t>(vihl & 0xf) * 4;
  if ((vihl >> 4) != 4 || header_len < kIpv4HeaderMin) {
    return fail(IcmpError::kBadQuote);
  }
  if (quoted.size() < header_len + 8) {
    return fail(IcmpError::kTruncated);
  }
  IcmpQuote q;
  q.tos = load_u8(p + 1);
  q.total_length = load_be16(p + 2);
  q.id = load_be16(p + 4);
  q.fragment_offset = static_cast<std::uint32_t>(load_be16(p + 6) & 0x1fff) * 8;
  q.protocol = load_u8(p + 9);
  q.src = load_be32(p + 12);
  q.dst = load_be32(p + 16);
  q.header = quoted.first(header_len);
  q.transport = quoted.subspan(header_len);
  if (q.fragment_offset == 0) {
    const std::byte* t = q.transport.data();
    q.src_port = load_be16(t);
    q.dst_port = load_be16(t + 2);
    q.tcp_seq = load_be32(t + 4);
  }
  if (err != nullptr) {
    *err = IcmpError::kNone;
  }
  return q;
}

}  // namespace xtcp::wire
