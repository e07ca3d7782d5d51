#include "tools/replay/packet.h"

#include <algorithm>
#include <cstdio>

#include "stack/wire/bytes.h"
#include "stack/wire/checksum.h"
#include "stack/wire/ipv4.h"
#include "stack/wire/tcp.h"

namespace xtcp::replay {

using wire::load_be16;
using wire::load_be32;
namespace tf = wire::tcp_flags;

std::string format_endpoint(const Endpoint& e) { return wire::format_ipv4(e.addr) + std::string(":") + std::to_string(e.port); }

std::uint32_t TcpFacts::seq_length() const {
  return static_cast<std::uint32_t>(payload_length) + (has(tf::kSyn) ? 1 : 0) + (has(tf::kFin) ? 1 : 0);
}

namespace {

// The timestamp and window scale options (RFC 7323 sections 3 and 2) that come before any
// malformed option.
void read_options(std::span<const std::byte> opts, TcpFacts* f) {
  for_each_tcp_option(opts, [&](std::uint8_t kind, std::size_t at, std::size_t len) {
    if (kind == wire::tcp_option::kTimestamp && len == 10) {
      f->has_tsval = true;
      f->tsval = load_be32(opts.data() + at + 2);
    }
    if (kind == wire::tcp_option::kWindowScale && len == 3) {
      f->has_wscale = true;
      f->wscale = std::min(static_cast<std::uint8_t>(opts[at + 2]), wire::kMaxWindowScale);
    }
  });
}

}  // namespace

TcpFacts read_tcp_facts(std::span<const std::byte> ip) {
  TcpFacts f;
  if (ip.size() < wire::kIpv4HeaderMin || (static_cast<std::uint8_t>(ip[0]) >> 4) != 4 ||
      static_cast<std::uint8_t>(ip[9]) != wire::kProtoTcp) {
    return f;
  }
  // A header length under 20 (malformed on purpose) still leaves TCP at 20 for placing the
  // packet in its flow: the server drops it, replay must still send it.
  const std::size_t ihl = static_cast<std::size_t>(static_cast<std::uint8_t>(ip[0]) & 0x0f) * 4;
  const std::size_t tcp_at = std::max(ihl, wire::kIpv4HeaderMin);
  const std::size_t total = std::min<std::size_t>(load_be16(ip.data() + 2), ip.size());
  if (total < tcp_at + 14) {
    return f;
  }
  f.valid = true;
  f.ip_header = ihl;
  f.tcp_offset = tcp_at;
  f.tcp_length = total - tcp_at;
  const std::byte* t = ip.data() + tcp_at;
  f.src = Endpoint{load_be32(ip.data() + 12), load_be16(t)};
  f.dst = Endpoint{load_be32(ip.data() + 16), load_be16(t + 2)};
  f.seq = load_be32(t + 4);
  f.ack = load_be32(t + 8);
  f.flags = static_cast<std::uint8_t>(t[13]);
  if (f.tcp_length >= 16) {
    f.window = load_be16(t + 14);
  }
  if (f.tcp_length < wire::kTcpHeaderMin) {
    return f;
  }
  const std::size_t hl = static_cast<std::size_t>(static_cast<std::uint8_t>(t[12]) >> 4) * 4;
  if (hl < wire::kTcpHeaderMin || hl > f.tcp_length) {
    return f;
  }
  f.header_ok = true;
  f.header_length = hl;
  f.payload_offset = tcp_at + hl;
  f.payload_length = f.tcp_length - hl;
  read_options(ip.subspan(tcp_at + wire::kTcpHeaderMin, hl - wire::kTcpHeaderMin), &f);
  return f;
}

namespace {

std::uint16_t ip_checksum_value(std::span<const std::byte> ip, std::size_t ihl) {
  wire::Checksum c;
  c.add(ip.subspan(0, 10));
  c.add(ip.subspan(12, std::max<std::size_t>(ihl, 12) - 12));
  return c.finish();
}

std::uint16_t tcp_checksum_value(std::span<const std::byte> ip, const TcpFacts& f) {
  const std::span<const std::byte> seg = ip.subspan(f.tcp_offset, f.tcp_length);
  wire::Checksum c = wire::pseudo_header_sum(load_be32(ip.data() + 12), load_be32(ip.data() + 16), wire::kProtoTcp,
                                             static_cast<std::uint16_t>(seg.size()));
  c.add(seg.subspan(0, 16));
  c.add(seg.subspan(18));
  return c.finish();
}

}  // namespace

bool ip_checksum_ok(std::span<const std::byte> ip, const TcpFacts& f) {
  return ip_checksum_value(ip, f.ip_header) == load_be16(ip.data() + 10);
}

bool tcp_checksum_ok(std::span<const std::byte> ip, const TcpFacts& f) {
  if (f.tcp_length < wire::kTcpHeaderMin) {
    return true;  // no checksum field to judge
  }
  // 0x0000 and 0xffff are the same one's-complement value.
  const std::uint16_t want = tcp_checksum_value(ip, f);
  const std::uint16_t have = load_be16(ip.data() + f.tcp_offset + 16);
  return want == have || (want == 0xffff && have == 0) || (want == 0 && have == 0xffff);
}

void set_checksums(std::span<std::byte> ip, const TcpFacts& f, bool ip_ok, bool tcp_ok) {
  if (!f.valid) {
    return;
  }
  if (f.tcp_length >= wire::kTcpHeaderMin) {
    const std::uint16_t v = tcp_checksum_value(ip, f);
    wire::store_be16(ip.data() + f.tcp_offset + 16, tcp_ok ? v : static_cast<std::uint16_t>(v ^ 1));
  }
  const std::uint16_t v = ip_checksum_value(ip, f.ip_header);
  wire::store_be16(ip.data() + 10, ip_ok ? v : static_cast<std::uint16_t>(v ^ 1));
}

std::string escape_bytes(std::span<const std::byte> bytes, std::size_t max) {
  std::string out;
  for (std::size_t i = 0; i < bytes.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

std::string hex_bytes(std::span<const std::byte> bytes, std::size_t max) {
  std::string out;
  for (std::size_t i = 0; i < bytes.size() && i < max; ++i) {
    char buf[4];
    std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned>(bytes[i]));
    if (i > 0) {
      out += ' ';
    }
    out += buf;
  }
  return out;
}

}  // namespace xtcp::replay
