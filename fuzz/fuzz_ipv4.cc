// libFuzzer target for the IPv4 layer (and through it Ipv4View, IcmpView, the ICMP quote
// parser and reassembly). The input is a list of packets fed to a fresh Ipv4Layer over a
// recording link in virtual time; whatever the layer sends must itself be well formed.
//
// Input format, repeated until the bytes run out:
//   ctrl (1 byte) | length (2 bytes, big-endian, clamped to what is left) | packet bytes
// ctrl bits help the fuzzer past checks it cannot solve by mutation alone:
//   0x01 rewrite dst/src to local/peer   0x02 fix the IP header checksum
//   0x04 fix the ICMP checksum           0x08 advance the clock by (ctrl >> 4) * 4 s first
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "stack/core/clock.h"
#include "stack/ip/ipv4_layer.h"
#include "stack/netif/link.h"
#include "stack/wire/checksum.h"
#include "stack/wire/icmp.h"
#include "stack/wire/ipv4.h"

namespace {

using namespace xtcp;

constexpr std::uint32_t kLocal = wire::ipv4_addr(198, 18, 0, 2);
constexpr std::uint32_t kPeer = wire::ipv4_addr(198, 18, 0, 1);
constexpr std::size_t kMtu = 1500;

void check(bool ok) {
  if (!ok) {
    __builtin_trap();
  }
}

// Every packet the layer emits must parse, come from us, and be ICMP within the MTU.
class CheckingLink final : public Link {
 public:
  int send(std::span<const std::byte> packet) override {
    check(packet.size() <= kMtu);
    const auto ip = wire::Ipv4View::parse(packet);
    check(ip.has_value());
    check(ip->packet().size() == packet.size());
    check(ip->src() == kLocal && ip->protocol() == wire::kProtoIcmp && !ip->is_fragment());
    check(!wire::is_martian_source(ip->dst()) && ip->dst() != kLocal);
    const auto icmp = wire::IcmpView::parse(ip->payload());
    check(icmp.has_value());
    if (icmp->is_error()) {
      // At most 576 bytes (RFC 1812 4.3.2.3), sent back to the source of what it quotes.
      check(packet.size() <= wire::kIcmpErrorMaxLen);
      const wire::ByteSpan quote = icmp->payload();
      check(quote.size() >= wire::kIpv4HeaderMin);
      check((static_cast<std::uint8_t>(quote[0]) >> 4) == 4);
      check(wire::load_be32(quote.data() + 12) == ip->dst());
      check(wire::load_u8(quote.data() + 9) != wire::kProtoIcmp ||
            quote.size() > (static_cast<std::size_t>(quote[0]) & 0xf) * 4);
    } else {
      check(icmp->type() == wire::kIcmpEchoReply);
    }
    return 0;
  }
  int receive_batch(int, PacketHandler) override { return 0; }
  std::size_t mtu() const override { return kMtu; }
};

class TouchingUpper final : public IpUpperLayer {
 public:
  void tcp_input(std::uint32_t src, std::uint32_t dst, std::uint8_t, wire::ByteSpan seg) override {
    check(dst == kLocal && src != kLocal);
    // Read every byte so AddressSanitizer checks the span's bounds.
    std::uint8_t x = 0;
    for (std::byte b : seg) {
      x = static_cast<std::uint8_t>(x ^ static_cast<std::uint8_t>(b));
    }
    sink_ = static_cast<std::uint8_t>(sink_ + x);
  }
  void icmp_error_input(const IcmpErrorInfo& info) override {
    check(info.quoted_src == kLocal && info.quoted_protocol == wire::kProtoTcp);
  }

 private:
  std::uint8_t sink_ = 0;
};

void fix_up(std::uint8_t ctrl, std::vector<std::byte>& pkt) {
  if (pkt.size() < wire::kIpv4HeaderMin) {
    return;
  }
  std::size_t hl = (static_cast<std::size_t>(pkt[0]) & 0xf) * 4;
  if (hl < wire::kIpv4HeaderMin || hl > pkt.size()) {
    hl = wire::kIpv4HeaderMin;
  }
  if (ctrl & 0x01) {
    wire::store_be32(pkt.data() + 12, kPeer);
    wire::store_be32(pkt.data() + 16, kLocal);
  }
  if ((ctrl & 0x04) && static_cast<std::uint8_t>(pkt[9]) == wire::kProtoIcmp) {
    std::size_t end = wire::load_be16(pkt.data() + 2);
    end = end < hl ? hl : (end > pkt.size() ? pkt.size() : end);
    if (end >= hl + 4) {
      wire::store_be16(pkt.data() + hl + 2, 0);
      wire::store_be16(pkt.data() + hl + 2,
                       wire::internet_checksum(wire::ByteSpan(pkt.data() + hl, end - hl)));
    }
  }
  if (ctrl & 0x02) {
    wire::store_be16(pkt.data() + 10, 0);
    wire::store_be16(pkt.data() + 10, wire::internet_checksum(wire::ByteSpan(pkt.data(), hl)));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ManualClock clock(seconds(1000));
  CheckingLink link;
  TouchingUpper upper;
  IpConfig config;
  config.local_addr = kLocal;
  config.reassembly_max_datagrams = 8;  // small limits so the fuzzer reaches them
  config.reassembly_max_bytes = 32 * 1024;
  config.icmp_burst = 4;
  Ipv4Layer ip(config, link, clock);
  ip.set_upper(&upper);

  std::vector<std::byte> pkt;
  std::size_t at = 0;
  while (at < size) {
    const std::uint8_t ctrl = data[at++];
    std::size_t len = 0;
    if (size - at >= 2) {
      len = (static_cast<std::size_t>(data[at]) << 8) | data[at + 1];
      at += 2;
    }
    if (len > size - at) {
      len = size - at;
    }
    if (ctrl & 0x08) {
      clock.advance(seconds(4) * (ctrl >> 4));
      ip.poll_timers(clock.now());
    }
    // A copy of exactly len bytes, so ASan flags any read past the packet.
    pkt.assign(reinterpret_cast<const std::byte*>(data + at),
               reinterpret_cast<const std::byte*>(data + at + len));
    at += len;
    fix_up(ctrl, pkt);
    ip.input(pkt);
    check(ip.reassembly_datagrams() <= config.reassembly_max_datagrams);
    check(ip.reassembly_bytes() <= config.reassembly_max_bytes);
  }
  clock.advance(config.reassembly_timeout);
  check(ip.next_deadline() <= clock.now() || ip.reassembly_datagrams() == 0);
  ip.poll_timers(clock.now());
  check(ip.reassembly_datagrams() == 0 && ip.reassembly_bytes() == 0);
  check(ip.next_deadline() == kNever);
  return 0;
}
