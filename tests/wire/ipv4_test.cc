// Ipv4View / emit_ipv4_header tests: a captured Linux ping decoded field by field, every
// truncation, lying length fields, bad IHL and version, every single-bit header corruption,
// the option walk, fragments, and the dotted-quad helpers.
#include "stack/wire/ipv4.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "stack/wire/checksum.h"

namespace xtcp::wire {
namespace {

std::vector<std::byte> bytes_of(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int b : v) {
    out.push_back(static_cast<std::byte>(b));
  }
  return out;
}

// Echo request captured with tcpdump on lo (Linux 6.x), 127.0.0.1 -> 127.0.0.1, 76 bytes.
const std::vector<std::byte> kCapturedPing = bytes_of({
    0x45, 0x00, 0x00, 0x4c, 0x91, 0x26, 0x40, 0x00, 0x40, 0x01, 0xab, 0x88,  // IP
    0x7f, 0x00, 0x00, 0x01, 0x7f, 0x00, 0x00, 0x01,                          //
    0x08, 0x00, 0x04, 0x9a, 0x1c, 0x2d, 0x00, 0x01, 0x65, 0xa1, 0xb2, 0xc3,  // ICMP
    0x00, 0x00, 0x00, 0x00, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,  //
    0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23,  //
    0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f,  //
    0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
});

// Recomputes the header checksum after a test edits header fields.
void fix_checksum(std::vector<std::byte>& pkt) {
  const std::size_t hl = (static_cast<std::size_t>(pkt[0]) & 0xf) * 4;
  pkt[10] = pkt[11] = std::byte{0};
  store_be16(pkt.data() + 10, internet_checksum(ByteSpan(pkt.data(), std::min(hl, pkt.size()))));
}

// A header with the given options (padded with EOL to a multiple of 4) and payload bytes.
std::vector<std::byte> packet_with_options(std::vector<std::byte> options,
                                           std::size_t payload_len = 8) {
  while (options.size() % 4 != 0) {
    options.push_back(std::byte{0});
  }
  const std::size_t hl = 20 + options.size();
  std::vector<std::byte> pkt(hl + payload_len, std::byte{0xaa});
  Ipv4Fields f;
  f.total_length = static_cast<std::uint16_t>(hl + payload_len);
  f.protocol = kProtoTcp;
  f.src = ipv4_addr(198, 18, 0, 1);
  f.dst = ipv4_addr(198, 18, 0, 2);
  emit_ipv4_header(pkt.data(), f);
  pkt[0] = static_cast<std::byte>(0x40 | (hl / 4));
  std::copy(options.begin(), options.end(), pkt.begin() + 20);
  fix_checksum(pkt);
  return pkt;
}

Ipv4Error error_of(const std::vector<std::byte>& pkt) {
  Ipv4Error err = Ipv4Error::kNone;
  EXPECT_FALSE(Ipv4View::parse(pkt, &err).has_value());
  return err;
}

TEST(Ipv4View, DecodesCapturedPingFieldByField) {
  Ipv4Error err = Ipv4Error::kBadOptions;
  const auto ip = Ipv4View::parse(kCapturedPing, &err);
  ASSERT_TRUE(ip.has_value());
  EXPECT_EQ(err, Ipv4Error::kNone);
  EXPECT_EQ(ip->version(), 4);
  EXPECT_EQ(ip->header_length(), 20u);
  EXPECT_EQ(ip->tos(), 0);
  EXPECT_EQ(ip->dscp(), 0);
  EXPECT_EQ(ip->ecn(), 0);
  EXPECT_EQ(ip->total_length(), 76);
  EXPECT_EQ(ip->id(), 0x9126);
  EXPECT_FALSE(ip->reserved_flag());
  EXPECT_TRUE(ip->dont_fragment());
  EXPECT_FALSE(ip->more_fragments());
  EXPECT_EQ(ip->fragment_offset(), 0u);
  EXPECT_FALSE(ip->is_fragment());
  EXPECT_EQ(ip->ttl(), 64);
  EXPECT_EQ(ip->protocol(), kProtoIcmp);
  EXPECT_EQ(ip->checksum(), 0xab88);
  EXPECT_EQ(ip->src(), ipv4_addr(127, 0, 0, 1));
  EXPECT_EQ(ip->dst(), ipv4_addr(127, 0, 0, 1));
  EXPECT_TRUE(ip->options().empty());
  EXPECT_EQ(ip->header().size(), 20u);
  EXPECT_EQ(ip->header().data(), kCapturedPing.data());
  ASSERT_EQ(ip->payload().size(), 56u);
  EXPECT_EQ(ip->payload().data(), kCapturedPing.data() + 20);
  EXPECT_EQ(ip->payload()[0], std::byte{0x08});
  EXPECT_EQ(ip->payload()[55], std::byte{0x37});
  EXPECT_EQ(ip->packet().size(), 76u);
}

TEST(Ipv4View, LinkPaddingIsExcludedFromPayload) {
  auto padded = kCapturedPing;
  padded.resize(padded.size() + 10, std::byte{0xee});
  const auto ip = Ipv4View::parse(padded);
  ASSERT_TRUE(ip.has_value());
  EXPECT_EQ(ip->payload().size(), 56u);
  EXPECT_EQ(ip->packet().size(), 76u);
}

TEST(Ipv4View, EveryTruncationIsAnErrorNotACrash) {
  for (std::size_t n = 0; n < kCapturedPing.size(); ++n) {
    // Copy so AddressSanitizer sees the exact end of the buffer.
    const std::vector<std::byte> cut(kCapturedPing.begin(), kCapturedPing.begin() + n);
    Ipv4Error err = Ipv4Error::kNone;
    EXPECT_FALSE(Ipv4View::parse(cut, &err).has_value()) << "length " << n;
    EXPECT_EQ(err, Ipv4Error::kTruncated) << "length " << n;
  }
  EXPECT_TRUE(Ipv4View::parse(kCapturedPing).has_value());
}

TEST(Ipv4View, ErrorOutParamIsOptional) {
  EXPECT_FALSE(Ipv4View::parse(ByteSpan()).has_value());
  EXPECT_TRUE(Ipv4View::parse(kCapturedPing, nullptr).has_value());
}

TEST(Ipv4View, BadVersion) {
  for (int version : {0, 1, 5, 6, 15}) {
    auto pkt = kCapturedPing;
    pkt[0] = static_cast<std::byte>((version << 4) | 5);
    fix_checksum(pkt);
    EXPECT_EQ(error_of(pkt), Ipv4Error::kBadVersion) << "version " << version;
  }
}

TEST(Ipv4View, HeaderLengthBelowFiveIsRejected) {
  for (int ihl = 0; ihl < 5; ++ihl) {
    auto pkt = kCapturedPing;
    pkt[0] = static_cast<std::byte>(0x40 | ihl);
    EXPECT_EQ(error_of(pkt), Ipv4Error::kBadHeaderLength) << "ihl " << ihl;
  }
}

TEST(Ipv4View, HeaderLengthBeyondBufferIsTruncation) {
  // IHL 15 (60 bytes) on a 24-byte buffer: the header itself is cut off.
  auto pkt = packet_with_options({}, 4);
  pkt[0] = std::byte{0x4f};
  EXPECT_EQ(error_of(pkt), Ipv4Error::kTruncated);
}

TEST(Ipv4View, TotalLengthShorterThanHeaderIsRejected) {
  for (int len : {0, 1, 19}) {
    auto pkt = kCapturedPing;
    store_be16(pkt.data() + 2, static_cast<std::uint16_t>(len));
    fix_checksum(pkt);
    EXPECT_EQ(error_of(pkt), Ipv4Error::kBadTotalLength) << "total length " << len;
  }
  // With options, total length between 20 and IHL*4 is still shorter than the header.
  auto opt = packet_with_options(bytes_of({0x01, 0x01, 0x01, 0x01}), 8);
  store_be16(opt.data() + 2, 22);
  fix_checksum(opt);
  EXPECT_EQ(error_of(opt), Ipv4Error::kBadTotalLength);
}

TEST(Ipv4View, TotalLengthBeyondBufferIsTruncation) {
  for (int len : {77, 100, 65535}) {
    auto pkt = kCapturedPing;
    store_be16(pkt.data() + 2, static_cast<std::uint16_t>(len));
    fix_checksum(pkt);
    EXPECT_EQ(error_of(pkt), Ipv4Error::kTruncated) << "total length " << len;
  }
}

TEST(Ipv4View, TotalLengthEqualToHeaderGivesEmptyPayload) {
  auto pkt = kCapturedPing;
  store_be16(pkt.data() + 2, 20);
  fix_checksum(pkt);
  const auto ip = Ipv4View::parse(pkt);
  ASSERT_TRUE(ip.has_value());
  EXPECT_TRUE(ip->payload().empty());
}

TEST(Ipv4View, EverySingleBitErrorInTheHeaderIsCaught) {
  // Byte 0 (version/IHL) is checked before the checksum; every other bit flip is a checksum
  // failure, including flips of the length fields.
  for (std::size_t byte = 1; byte < 20; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      auto pkt = kCapturedPing;
      pkt[byte] ^= static_cast<std::byte>(1 << bit);
      EXPECT_EQ(error_of(pkt), Ipv4Error::kBadChecksum) << "byte " << byte << " bit " << bit;
    }
  }
  // The payload is not covered by the IP checksum (RFC 791): a flip there still parses.
  auto pkt = kCapturedPing;
  pkt[40] ^= std::byte{0x01};
  EXPECT_TRUE(Ipv4View::parse(pkt).has_value());
}

TEST(Ipv4View, OptionWalkAcceptsWellFormedOptions) {
  const std::vector<std::vector<std::byte>> good = {
      bytes_of({0x01, 0x01, 0x01, 0x00}),                          // NOPs then EOL
      bytes_of({0x94, 0x04, 0x00, 0x00}),                          // router alert (RFC 2113)
      bytes_of({0x07, 0x07, 0x04, 0, 0, 0, 0, 0x00}),              // record route, 1 slot
      bytes_of({0x00, 0xff, 0x00, 0xff}),                          // EOL, then padding junk
      bytes_of({0x44, 0x0c, 0x05, 0x00, 1, 2, 3, 4, 5, 6, 7, 8}),  // timestamp, exact fit
      bytes_of({0x01, 0x01, 0x01, 0x01}),                          // NOPs to the end
  };
  for (std::size_t i = 0; i < good.size(); ++i) {
    const auto pkt = packet_with_options(good[i]);
    Ipv4Error err = Ipv4Error::kNone;
    const auto ip = Ipv4View::parse(pkt, &err);
    ASSERT_TRUE(ip.has_value()) << "case " << i << ": " << to_string(err);
    EXPECT_EQ(ip->header_length(), 20 + ((good[i].size() + 3) / 4) * 4);
    EXPECT_EQ(ip->options().size(), ip->header_length() - 20);
    EXPECT_EQ(ip->options()[0], good[i][0]);
    EXPECT_EQ(ip->payload().size(), 8u);
  }
}

TEST(Ipv4View, OptionWalkRejectsMalformedOptions) {
  const std::vector<std::vector<std::byte>> bad = {
      bytes_of({0x07, 0x00, 0x00, 0x00}),  // length 0: would never advance
      bytes_of({0x07, 0x01, 0x00, 0x00}),  // length 1: cannot hold type+length
      bytes_of({0x07, 0x05, 0x04, 0x00}),  // length 5 in a 4-byte option area
      bytes_of({0x01, 0x01, 0x01, 0x44}),  // last byte starts an option, no length
      bytes_of({0x94, 0x04, 0x00, 0x00, 0x83, 0x09, 0, 0}),  // second option overruns
  };
  for (std::size_t i = 0; i < bad.size(); ++i) {
    const auto pkt = packet_with_options(bad[i]);
    EXPECT_EQ(error_of(pkt), Ipv4Error::kBadOptions) << "case " << i;
  }
}

TEST(Ipv4View, OptionsWellFormedDirect) {
  EXPECT_TRUE(ipv4_options_well_formed({}));
  const auto one_nop = bytes_of({0x01});
  EXPECT_TRUE(ipv4_options_well_formed(one_nop));
  const auto lone_type = bytes_of({0x83});
  EXPECT_FALSE(ipv4_options_well_formed(lone_type));
  const auto exact = bytes_of({0x83, 0x03, 0x04});
  EXPECT_TRUE(ipv4_options_well_formed(exact));
}

TEST(Ipv4View, FragmentFields) {
  // Second fragment of a 3000-byte UDP datagram: MF set, offset 185 units = 1480 bytes.
  auto pkt = packet_with_options({}, 16);
  store_be16(pkt.data() + 4, 0x1c46);
  store_be16(pkt.data() + 6, 0x2000 | 185);
  fix_checksum(pkt);
  auto ip = Ipv4View::parse(pkt);
  ASSERT_TRUE(ip.has_value());
  EXPECT_EQ(ip->id(), 0x1c46);
  EXPECT_TRUE(ip->more_fragments());
  EXPECT_FALSE(ip->dont_fragment());
  EXPECT_EQ(ip->fragment_offset(), 1480u);
  EXPECT_TRUE(ip->is_fragment());

  // Last fragment: MF clear but non-zero offset is still a fragment. Max offset 8191 units.
  store_be16(pkt.data() + 6, 0x8000 | 0x1fff);
  fix_checksum(pkt);
  ip = Ipv4View::parse(pkt);
  ASSERT_TRUE(ip.has_value());
  EXPECT_TRUE(ip->reserved_flag());
  EXPECT_FALSE(ip->more_fragments());
  EXPECT_EQ(ip->fragment_offset(), 65528u);
  EXPECT_TRUE(ip->is_fragment());

  // First fragment: MF set, offset 0.
  store_be16(pkt.data() + 6, 0x2000);
  fix_checksum(pkt);
  ip = Ipv4View::parse(pkt);
  ASSERT_TRUE(ip.has_value());
  EXPECT_EQ(ip->fragment_offset(), 0u);
  EXPECT_TRUE(ip->is_fragment());
}

TEST(Ipv4Emit, MatchesWellKnownHeaderBytes) {
  Ipv4Fields f;
  f.tos = 0;
  f.total_length = 0x73;
  f.id = 0;
  f.dont_fragment = true;
  f.ttl = 64;
  f.protocol = kProtoUdp;
  f.src = ipv4_addr(192, 168, 0, 1);
  f.dst = ipv4_addr(192, 168, 0, 199);
  std::vector<std::byte> out(20, std::byte{0x5a});
  emit_ipv4_header(out.data(), f);
  EXPECT_EQ(out, bytes_of({0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                           0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}));
}

TEST(Ipv4Emit, ReproducesCapturedHeaderAndRoundTrips) {
  Ipv4Fields f;
  f.total_length = 76;
  f.id = 0x9126;
  f.dont_fragment = true;
  f.ttl = 64;
  f.protocol = kProtoIcmp;
  f.src = ipv4_addr(127, 0, 0, 1);
  f.dst = ipv4_addr(127, 0, 0, 1);
  std::vector<std::byte> out(76);
  emit_ipv4_header(out.data(), f);
  EXPECT_TRUE(std::equal(out.begin(), out.begin() + 20, kCapturedPing.begin()));

  f.tos = 0xb8;  // EF
  f.dont_fragment = false;
  f.ttl = 1;
  f.id = 0xffff;
  f.src = ipv4_addr(198, 18, 255, 254);
  emit_ipv4_header(out.data(), f);
  const auto ip = Ipv4View::parse(out);
  ASSERT_TRUE(ip.has_value());
  EXPECT_EQ(ip->tos(), 0xb8);
  EXPECT_EQ(ip->dscp(), 46);
  EXPECT_FALSE(ip->dont_fragment());
  EXPECT_FALSE(ip->is_fragment());
  EXPECT_EQ(ip->ttl(), 1);
  EXPECT_EQ(ip->id(), 0xffff);
  EXPECT_EQ(ip->src(), ipv4_addr(198, 18, 255, 254));
  EXPECT_EQ(ip->total_length(), 76);
}

TEST(Ipv4Text, FormatAndParse) {
  EXPECT_EQ(format_ipv4(ipv4_addr(198, 18, 0, 1)), "198.18.0.1");
  EXPECT_EQ(format_ipv4(0), "0.0.0.0");
  EXPECT_EQ(format_ipv4(0xffffffffu), "255.255.255.255");
  std::uint32_t a = 0;
  EXPECT_TRUE(parse_ipv4("198.18.0.1", &a));
  EXPECT_EQ(a, ipv4_addr(198, 18, 0, 1));
  EXPECT_TRUE(parse_ipv4("0.0.0.0", &a));
  EXPECT_EQ(a, 0u);
  EXPECT_TRUE(parse_ipv4("255.255.255.255", &a));
  EXPECT_EQ(a, 0xffffffffu);
  for (const char* bad : {"", "1", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.256", "01.2.3.4",
                          "1.2.3.00", " 1.2.3.4", "1.2.3.4 ", "1..2.3", "1.2.3.-4", "+1.2.3.4",
                          "1.2.3.4a", "1234.1.1.1", "1.2.3.", ".1.2.3", "0x1.2.3.4", "1,2,3,4"}) {
    std::uint32_t out = 42;
    EXPECT_FALSE(parse_ipv4(bad, &out)) << '"' << bad << '"';
    EXPECT_EQ(out, 42u) << "output untouched on failure";
  }
  std::mt19937 rng(791);
  for (int i = 0; i < 1000; ++i) {
    const std::uint32_t addr = rng();
    std::uint32_t back = 0;
    ASSERT_TRUE(parse_ipv4(format_ipv4(addr), &back)) << format_ipv4(addr);
    EXPECT_EQ(back, addr);
  }
}

TEST(Ipv4Address, Classes) {
  EXPECT_TRUE(is_martian_source(0));
  EXPECT_TRUE(is_martian_source(ipv4_addr(0, 1, 2, 3)));
  EXPECT_TRUE(is_martian_source(ipv4_addr(127, 0, 0, 1)));
  EXPECT_TRUE(is_martian_source(ipv4_addr(224, 0, 0, 1)));
  EXPECT_TRUE(is_martian_source(ipv4_addr(239, 255, 255, 250)));
  EXPECT_TRUE(is_martian_source(ipv4_addr(240, 0, 0, 1)));
  EXPECT_TRUE(is_martian_source(0xffffffffu));
  EXPECT_FALSE(is_martian_source(ipv4_addr(198, 18, 0, 1)));
  EXPECT_FALSE(is_martian_source(ipv4_addr(1, 1, 1, 1)));
  EXPECT_FALSE(is_martian_source(ipv4_addr(223, 255, 255, 255)));
  EXPECT_TRUE(is_multicast(ipv4_addr(224, 0, 0, 251)));
  EXPECT_FALSE(is_multicast(ipv4_addr(223, 0, 0, 1)));
  EXPECT_TRUE(is_limited_broadcast(0xffffffffu));
  EXPECT_TRUE(is_loopback(ipv4_addr(127, 255, 0, 9)));
  EXPECT_TRUE(is_unspecified(0));
}

}  // namespace
}  // namespace xtcp::wire
