// IPv4 header validation (parse), the option walk, the header emitter and dotted-quad text.
// parse() checks every length before any field beyond it is read; emit writes 20 bytes.
#include "stack/wire/ipv4.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "stack/wire/checksum.h"

namespace xtcp::wire {

const char* to_string(Ipv4Error e) {
  switch (e) {
    case Ipv4Error::kNone:
      return "none";
    case Ipv4Error::kTruncated:
      return "truncated";
    case Ipv4Error::kBadVersion:
      return "bad version";
    case Ipv4Error::kBadHeaderLength:
      return "bad header length";
    case Ipv4Error::kBadTotalLength:
      return "bad total length";
    case Ipv4Error::kBadChecksum:
      return "bad checksum";
    case Ipv4Error::kBadOptions:
      return "bad options";
  }
  return "unknown";
}

bool ipv4_options_well_formed(ByteSpan options) {
  std::size_t i = 0;
  const std::size_t n = options.size();
  while (i < n) {
    const std::uint8_t type = load_u8(options.data() + i);
    if (type == kIpOptEol) {
      return true;  // the rest is padding; RFC 791 does not require it to be zero
    }
    if (type == kIpOptNop) {
      ++i;
      continue;
    }
    if (i + 1 >= n) {
      return false;  // no room for the length byte
    }
    const std::uint8_t len = load_u8(options.data() + i + 1);
    if (len < 2 || len > n - i) {
      return false;  // a length < 2 would loop forever or step backwards
    }
    i += len;
  }
  return true;
}

std::optional<Ipv4View> Ipv4View::parse(ByteSpan packet, Ipv4Error* err) {
  auto fail = [err](Ipv4Error e) -> std::optional<Ipv4View> {
    if (err != nullptr) {
      *err = e;
    }
    return std::nullopt;
  };
  if (packet.size() < kIpv4HeaderMin) {
    return fail(Ipv4Error::kTruncated);
  }
  const std::uint8_t vihl = load_u8(packet.data());
  if ((vihl >> 4) != 4) {
    return fail(Ipv4Error::kBadVersion);
  }
  const std::size_t header_len = static_cast<std::size_t>(vihl & 0xf) * 4;
  if (header_len < kIpv4HeaderMin) {
    return fail(Ipv4Error::kBadHeaderLength);
  }
  if (header_len > packet.size()) {
    return fail(Ipv4Error::kTruncated);
  }
  // RFC 1122 3.2.1.2: a host MUST verify the header checksum and silently discard on failure.
  Checksum sum;
  sum.add(packet.first(header_len));
  if (sum.folded() != 0xffff) {
    return fail(Ipv4Error::kBadChecksum);
  }
  const std::size_t total_len = load_be16(packet.data() + 2);
  if (total_len < header_len) {
    return fail(Ipv4Error::kBadTotalLength);
  }
  if (total_len > packet.size()) {
    return fail(Ipv4Error::kTruncated);
  }
  if (!ipv4_options_well_formed(packet.subspan(kIpv4HeaderMin, header_len - kIpv4HeaderMin))) {
    return fail(Ipv4Error::kBadOptions);
  }
  if (err != nullptr) {
    *err = Ipv4Error::kNone;
  }
  return Ipv4View(packet.first(total_len), header_len);
}

void emit_ipv4_header(std::byte* out, const Ipv4Fields& f) {
  store_u8(out + 0, 0x45);  // version 4, IHL 5
  store_u8(out + 1, f.tos);
  store_be16(out + 2, f.total_length);
  store_be16(out + 4, f.id);
  store_be16(out + 6, f.dont_fragment ? 0x4000 : 0x0000);
  store_u8(out + 8, f.ttl);
  store_u8(out + 9, f.protocol);
  store_be16(out + 10, 0);
  store_be32(out + 12, f.src);
  store_be32(out + 16, f.dst);
  store_be16(out + 10, internet_checksum(ByteSpan(out, kIpv4HeaderMin)));
}

std::string format_ipv4(std::uint32_t addr) {
  // inet_ntop formats network byte order and cannot overflow a buffer of INET_ADDRSTRLEN.
  // (A hand-written std::to_chars loop here tripped GCC 12's -Wstringop-overflow at -O3.)
  const in_addr a{htonl(addr)};
  char buf[INET_ADDRSTRLEN];
  if (inet_ntop(AF_INET, &a, buf, sizeof buf) == nullptr) {
    return std::string();  // cannot happen for AF_INET with INET_ADDRSTRLEN bytes
  }
  return std::string(buf);
}

bool parse_ipv4(std::string_view text, std::uint32_t* out) {
  std::uint32_t value = 0;
  std::size_t pos = 0;
  for (int part = 0; part < 4; ++part) {
    if (part != 0) {
      if (pos >= text.size() || text[pos] != '.') {
        return false;
      }
      ++pos;
    }
    const std::size_t start = pos;
    while (pos < text.size() && pos - start < 4 && text[pos] >= '0' && text[pos] <= '9') {
      ++pos;
    }
    const std::size_t digits = pos - start;
    if (digits == 0 || digits > 3 || (digits > 1 && text[start] == '0')) {
      return false;
    }
    unsigned octet = 0;
    for (std::size_t i = start; i < pos; ++i) {
      octet = octet * 10 + static_cast<unsigned>(text[i] - '0');
    }
    if (octet > 255) {
      return false;
    }
    value = (value << 8) | octet;
  }
  if (pos != text.size()) {
    return false;
  }
  *out = value;
  return true;
}

}  // namespace xtcp::wire
