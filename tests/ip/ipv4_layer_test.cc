// Ipv4Layer tests over a recording in-test Link and a fake TCP layer, in virtual time:
// exact echo reply bytes, unreachables, every drop reason with its counter, fragment
// reassembly (order, overlap, duplicates, limits, timeout), ICMP errors up to TCP, rate limit.
#include "stack/ip/ipv4_layer.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <map>
#include <string>
#include <vector>

#include "stack/wire/checksum.h"
#include "stack/wire/icmp.h"
#include "stack/wire/ipv4.h"

namespace xtcp {
namespace {

using wire::ByteSpan;
using wire::ipv4_addr;
using Bytes = std::vector<std::byte>;

constexpr std::uint32_t kLocal = ipv4_addr(198, 18, 0, 2);
constexpr std::uint32_t kPeer = ipv4_addr(198, 18, 0, 1);

Bytes bytes_of(std::initializer_list<int> v) {
  Bytes out;
  for (int b : v) {
    out.push_back(static_cast<std::byte>(b));
  }
  return out;
}

Bytes concat(const Bytes& a, const Bytes& b) {
  Bytes out = a;
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

Bytes pattern(std::size_t n, int seed = 0) {
  Bytes out(n);
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = static_cast<std::byte>((i * 7 + static_cast<std::size_t>(seed)) & 0xff);
  }
  return out;
}

class RecordingLink final : public Link {
 public:
  int send(std::span<const std::byte> packet) override {
    if (fail_with != 0) {
      return fail_with;
    }
    sent.emplace_back(packet.begin(), packet.end());
    return 0;
  }
  int receive_batch(int, PacketHandler) override { return 0; }
  std::size_t mtu() const override { return mtu_value; }

  std::vector<Bytes> sent;
  std::size_t mtu_value = 1500;
  int fail_with = 0;
};

struct TcpCall {
  std::uint32_t src, dst;
  std::uint8_t tos;
  Bytes segment;
};

class FakeUpper final : public IpUpperLayer {
 public:
  void tcp_input(std::uint32_t src, std::uint32_t dst, std::uint8_t tos,
                 wire::ByteSpan segment) override {
    tcp.push_back({src, dst, tos, Bytes(segment.begin(), segment.end())});
  }
  void icmp_error_input(const IcmpErrorInfo& info) override { errors.push_back(info); }

  std::vector<TcpCall> tcp;
  std::vector<IcmpErrorInfo> errors;
};

// Packet construction. Header fields are written by emit_ipv4_header and then edited, with
// the checksum recomputed, so tests can make any (valid-checksum) header they need.
struct Spec {
  std::uint8_t protocol = wire::kProtoTcp;
  std::uint32_t src = kPeer;
  std::uint32_t dst = kLocal;
  std::uint16_t id = 0x4242;
  std::uint16_t flags_frag = 0x4000;  // DF
  std::uint8_t tos = 0;
  Bytes options;  // multiple of 4
};

Bytes make_packet(const Spec& s, const Bytes& payload) {
  const std::size_t hl = 20 + s.options.size();
  Bytes pkt(hl + payload.size());
  wire::Ipv4Fields f;
  f.tos = s.tos;
  f.total_length = static_cast<std::uint16_t>(pkt.size());
  f.id = s.id;
  f.protocol = s.protocol;
  f.src = s.src;
  f.dst = s.dst;
  wire::emit_ipv4_header(pkt.data(), f);
  pkt[0] = static_cast<std::byte>(0x40 | (hl / 4));
  std::copy(s.options.begin(), s.options.end(), pkt.begin() + 20);
  wire::store_be16(pkt.data() + 6, s.flags_frag);
  std::copy(payload.begin(), payload.end(), pkt.begin() + static_cast<long>(hl));
  pkt[10] = pkt[11] = std::byte{0};
  wire::store_be16(pkt.data() + 10, wire::internet_checksum(ByteSpan(pkt.data(), hl)));
  return pkt;
}

void refresh_checksum(Bytes& pkt) {
  const std::size_t hl = (static_cast<std::size_t>(pkt[0]) & 0xf) * 4;
  pkt[10] = pkt[11] = std::byte{0};
  wire::store_be16(pkt.data() + 10, wire::internet_checksum(ByteSpan(pkt.data(), hl)));
}

Bytes make_fragment(std::uint8_t protocol, std::uint16_t id, std::uint32_t offset, bool more,
                    const Bytes& data, std::uint32_t src = kPeer) {
  Spec s;
  s.protocol = protocol;
  s.id = id;
  s.src = src;
  s.flags_frag = static_cast<std::uint16_t>((more ? 0x2000 : 0) | (offset / 8));
  return make_packet(s, data);
}

Bytes make_icmp(std::uint8_t type, std::uint8_t code, std::uint32_t rest, const Bytes& data) {
  Bytes msg(8 + data.size());
  msg[0] = static_cast<std::byte>(type);
  msg[1] = static_cast<std::byte>(code);
  wire::store_be32(msg.data() + 4, rest);
  std::copy(data.begin(), data.end(), msg.begin() + 8);
  wire::store_be16(msg.data() + 2, wire::internet_checksum(msg));
  return msg;
}

// A TCP header as we would have sent it: ports 443 -> 51000, seq 0x01020304.
Bytes tcp_header(std::uint16_t sport = 443, std::uint16_t dport = 51000,
                 std::uint32_t seq = 0x01020304) {
  Bytes t(20, std::byte{0});
  wire::store_be16(t.data(), sport);
  wire::store_be16(t.data() + 2, dport);
  wire::store_be32(t.data() + 4, seq);
  t[12] = std::byte{0x50};
  t[13] = std::byte{0x18};
  return t;
}

using StatMap = std::map<std::string, std::uint64_t>;

StatMap snapshot(const IpStats& s) {
  StatMap m;
  s.for_each([&m](const char* name, std::uint64_t v) { m[name] = v; });
  return m;
}

// Counters that changed between two snapshots, with their deltas.
StatMap delta(const StatMap& before, const StatMap& after) {
  StatMap d;
  for (const auto& [name, v] : after) {
    if (v != before.at(name)) {
      d[name] = v - before.at(name);
    }
  }
  return d;
}

class Ipv4LayerTest : public ::testing::Test {
 protected:
  static IpConfig default_config() {
    IpConfig c;
    c.local_addr = kLocal;
    c.first_id = 0x9127;
    return c;
  }
  void SetUp() override { make(default_config()); }
  void make(const IpConfig& c) {
    ip = std::make_unique<Ipv4Layer>(c, link, clock);
    ip->set_upper(&upper);
  }
  // Feeds a packet and returns which counters moved (besides packets_in / bytes_in).
  StatMap feed(const Bytes& pkt) {
    const StatMap before = snapshot(ip->stats());
    ip->input(pkt);
    StatMap d = delta(before, snapshot(ip->stats()));
    EXPECT_EQ(d["packets_in"], 1u);
    EXPECT_EQ(d["bytes_in"], pkt.size());
    d.erase("packets_in");
    d.erase("bytes_in");
    return d;
  }

  ManualClock clock{seconds(100)};
  RecordingLink link;
  FakeUpper upper;
  std::unique_ptr<Ipv4Layer> ip;
};

// ---------------------------------------------------------------------------------------
// Echo, unreachables, TCP delivery

// The ICMP part of a Linux echo request and of Linux's reply to it (captured on lo).
const Bytes kPingIcmp = bytes_of({
    0x08, 0x00, 0x04, 0x9a, 0x1c, 0x2d, 0x00, 0x01, 0x65, 0xa1, 0xb2, 0xc3, 0x00, 0x00,
    0x00, 0x00, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
    0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29,
    0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
});
const Bytes kPongIcmp = bytes_of({
    0x00, 0x00, 0x0c, 0x9a, 0x1c, 0x2d, 0x00, 0x01, 0x65, 0xa1, 0xb2, 0xc3, 0x00, 0x00,
    0x00, 0x00, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
    0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29,
    0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
});

TEST_F(Ipv4LayerTest, PingGetsExactEchoReply) {
  // 198.18.0.1 -> 198.18.0.2, id 0x9126, DF, TTL 64; header checksum computed offline.
  const Bytes request =
      concat(bytes_of({0x45, 0x00, 0x00, 0x4c, 0x91, 0x26, 0x40, 0x00, 0x40, 0x01,
                       0x1d, 0x63, 0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12, 0x00, 0x02}),
             kPingIcmp);
  // What Linux sends for the same request (id 0x9127, no DF, TTL 64), with our addresses.
  const Bytes expected =
      concat(bytes_of({0x45, 0x00, 0x00, 0x4c, 0x91, 0x27, 0x00, 0x00, 0x40, 0x01,
                       0x5d, 0x62, 0xc6, 0x12, 0x00, 0x02, 0xc6, 0x12, 0x00, 0x01}),
             kPongIcmp);
  const StatMap d = feed(request);
  ASSERT_EQ(link.sent.size(), 1u);
  EXPECT_EQ(link.sent[0], expected);
  EXPECT_EQ(d, (StatMap{{"icmp_in", 1},
                        {"icmp_echo_in", 1},
                        {"icmp_echo_replies", 1},
                        {"packets_out", 1},
                        {"bytes_out", 76}}));
  EXPECT_TRUE(upper.tcp.empty());
}

TEST_F(Ipv4LayerTest, EchoReplyKeepsTosAndUsesNextId) {
  Spec s;
  s.protocol = wire::kProtoIcmp;
  s.tos = 0x10;
  ip->input(make_packet(s, make_icmp(wire::kIcmpEchoRequest, 0, 0x00070009, pattern(5))));
  ip->input(make_packet(s, make_icmp(wire::kIcmpEchoRequest, 0, 0x0007000a, {})));
  ASSERT_EQ(link.sent.size(), 2u);
  const auto r0 = wire::Ipv4View::parse(link.sent[0]);
  const auto r1 = wire::Ipv4View::parse(link.sent[1]);
  ASSERT_TRUE(r0 && r1);
  EXPECT_EQ(r0->tos(), 0x10);
  EXPECT_EQ(r0->id(), 0x9127);
  EXPECT_EQ(r1->id(), 0x9128);
  const auto i0 = wire::IcmpView::parse(r0->payload());
  ASSERT_TRUE(i0);
  EXPECT_EQ(i0->echo_seq(), 9);
  EXPECT_EQ(i0->payload().size(), 5u);
  EXPECT_EQ(wire::IcmpView::parse(r1->payload())->payload().size(), 0u);
}

TEST_F(Ipv4LayerTest, UdpGetsPortUnreachableQuotingTheDatagram) {
  // The captured "hello xtcp\n" datagram, readdressed to us.
  Spec s;
  s.protocol = wire::kProtoUdp;
  s.id = 0x3904;
  const Bytes udp = bytes_of({0x9c, 0x40, 0x00, 0x09, 0x00, 0x13, 0xfe, 0x26, 0x68, 0x65, 0x6c,
                              0x6c, 0x6f, 0x20, 0x78, 0x74, 0x63, 0x70, 0x0a});
  const Bytes datagram = make_packet(s, udp);
  const StatMap d = feed(datagram);
  EXPECT_EQ(d.at("drop_udp"), 1u);
  EXPECT_EQ(d.at("icmp_unreach_sent"), 1u);
  ASSERT_EQ(link.sent.size(), 1u);
  const Bytes& out = link.sent[0];
  ASSERT_EQ(out.size(), 20 + 8 + datagram.size());
  const auto rip = wire::Ipv4View::parse(out);
  ASSERT_TRUE(rip);
  // Like Linux: TOS 0xc0 (RFC 1812 4.3.2.5), no DF, TTL 64.
  EXPECT_EQ(rip->tos(), 0xc0);
  EXPECT_FALSE(rip->dont_fragment());
  EXPECT_EQ(rip->ttl(), 64);
  EXPECT_EQ(rip->protocol(), wire::kProtoIcmp);
  EXPECT_EQ(rip->src(), kLocal);
  EXPECT_EQ(rip->dst(), kPeer);
  const auto icmp = wire::IcmpView::parse(rip->payload());
  ASSERT_TRUE(icmp);
  EXPECT_EQ(icmp->type(), wire::kIcmpDestUnreachable);
  EXPECT_EQ(icmp->code(), wire::kUnreachPort);
  EXPECT_EQ(icmp->rest_of_header(), 0u);
  EXPECT_EQ(Bytes(icmp->payload().begin(), icmp->payload().end()), datagram);
}

TEST_F(Ipv4LayerTest, LargeUdpQuoteIsCappedAt576Bytes) {
  Spec s;
  s.protocol = wire::kProtoUdp;
  const Bytes datagram = make_packet(s, pattern(1400));
  ip->input(datagram);
  ASSERT_EQ(link.sent.size(), 1u);
  EXPECT_EQ(link.sent[0].size(), 576u);
  EXPECT_TRUE(std::equal(link.sent[0].begin() + 28, link.sent[0].end(), datagram.begin()));
}

TEST_F(Ipv4LayerTest, UnknownProtocolGetsProtocolUnreachable) {
  Spec s;
  s.protocol = 47;  // GRE
  const Bytes pkt = make_packet(s, pattern(30));
  const StatMap d = feed(pkt);
  EXPECT_EQ(d.at("drop_unknown_protocol"), 1u);
  ASSERT_EQ(link.sent.size(), 1u);
  const auto rip = wire::Ipv4View::parse(link.sent[0]);
  const auto icmp = wire::IcmpView::parse(rip->payload());
  ASSERT_TRUE(icmp);
  EXPECT_EQ(icmp->type(), wire::kIcmpDestUnreachable);
  EXPECT_EQ(icmp->code(), wire::kUnreachProtocol);
  EXPECT_EQ(Bytes(icmp->payload().begin(), icmp->payload().end()), pkt);
}

TEST_F(Ipv4LayerTest, TcpGoesUpLengthTrimmed) {
  Spec s;
  s.tos = 0x02;                                    // ECT(0)
  s.options = bytes_of({0x94, 0x04, 0x00, 0x00});  // router alert, ignored
  const Bytes segment = concat(tcp_header(), pattern(100));
  Bytes pkt = make_packet(s, segment);
  pkt.resize(pkt.size() + 6, std::byte{0xee});  // link padding
  const StatMap d = feed(pkt);
  EXPECT_TRUE(d.empty()) << "a good TCP packet only counts packets_in/bytes_in";
  ASSERT_EQ(upper.tcp.size(), 1u);
  EXPECT_EQ(upper.tcp[0].src, kPeer);
  EXPECT_EQ(upper.tcp[0].dst, kLocal);
  EXPECT_EQ(upper.tcp[0].tos, 0x02);
  EXPECT_EQ(upper.tcp[0].segment, segment);
  EXPECT_TRUE(link.sent.empty());
}

TEST_F(Ipv4LayerTest, TcpWithoutUpperIsCountedNotCrashed) {
  ip->set_upper(nullptr);
  const StatMap d = feed(make_packet(Spec{}, tcp_header()));
  EXPECT_EQ(d, (StatMap{{"drop_no_upper", 1}}));
  EXPECT_TRUE(link.sent.empty());
}

// ---------------------------------------------------------------------------------------
// Every malformed or unwanted packet: its own counter, nothing sent, nothing delivered.

struct BadCase {
  const char* name;
  Bytes packet;
  const char* counter;
};

std::vector<BadCase> bad_cases() {
  const Bytes good = make_packet(Spec{}, tcp_header());
  std::vector<BadCase> cases;
  cases.push_back({"empty", {}, "drop_truncated"});
  cases.push_back({"short", Bytes(good.begin(), good.begin() + 19), "drop_truncated"});
  cases.push_back({"cut", Bytes(good.begin(), good.end() - 1), "drop_truncated"});
  {
    Bytes p = good;
    p[0] = std::byte{0x65};
    refresh_checksum(p);
    cases.push_back({"version6", p, "drop_bad_version"});
  }
  {
    Bytes p = good;
    p[0] = std::byte{0x44};
    cases.push_back({"ihl4", p, "drop_bad_header_len"});
  }
  {
    Bytes p = good;
    wire::store_be16(p.data() + 2, 12);
    refresh_checksum(p);
    cases.push_back({"total_below_header", p, "drop_bad_total_len"});
  }
  {
    Bytes p = good;
    wire::store_be16(p.data() + 2, 1000);
    refresh_checksum(p);
    cases.push_back({"total_beyond_buffer", p, "drop_truncated"});
  }
  {
    Bytes p = good;
    p[8] = std::byte{0x3f};  // TTL changed, checksum not
    cases.push_back({"checksum", p, "drop_bad_checksum"});
  }
  {
    Spec s;
    s.options = bytes_of({0x07, 0x09, 0x04, 0x00});
    cases.push_back({"options", make_packet(s, tcp_header()), "drop_bad_options"});
  }
  for (std::uint32_t dst : {ipv4_addr(198, 18, 0, 3), 0xffffffffu, ipv4_addr(224, 0, 0, 1),
                            ipv4_addr(198, 18, 255, 255), 0u}) {
    Spec s;
    s.dst = dst;
    s.protocol = wire::kProtoUdp;  // would draw an ICMP error if it got that far
    cases.push_back({"not_for_us", make_packet(s, pattern(12)), "drop_not_for_us"});
  }
  for (std::uint32_t src :
       {0u, ipv4_addr(0, 0, 0, 9), ipv4_addr(127, 0, 0, 1), ipv4_addr(224, 0, 0, 5),
        ipv4_addr(240, 1, 2, 3), 0xffffffffu, kLocal}) {
    Spec s;
    s.src = src;
    s.protocol = wire::kProtoUdp;
    cases.push_back({"martian_source", make_packet(s, pattern(12)), "drop_bad_source"});
  }
  {
    Spec s;
    s.protocol = wire::kProtoIcmp;
    Bytes icmp = make_icmp(wire::kIcmpEchoRequest, 0, 1, pattern(10));
    icmp[9] ^= std::byte{0x40};
    cases.push_back({"icmp_checksum", make_packet(s, icmp), "icmp_bad"});
  }
  {
    Spec s;
    s.protocol = wire::kProtoIcmp;
    cases.push_back({"icmp_short", make_packet(s, pattern(7)), "icmp_bad"});
  }
  {
    Spec s;
    s.protocol = wire::kProtoIcmp;
    cases.push_back(
        {"icmp_unknown_type", make_packet(s, make_icmp(42, 0, 0, pattern(4))), "icmp_other_in"});
    cases.push_back({"icmp_echo_reply", make_packet(s, make_icmp(wire::kIcmpEchoReply, 0, 0, {})),
                     "icmp_other_in"});
    cases.push_back({"icmp_timestamp",
                     make_packet(s, make_icmp(wire::kIcmpTimestampRequest, 0, 0, pattern(12))),
                     "icmp_other_in"});
  }
  for (std::uint16_t frag : {static_cast<std::uint16_t>(0x2000 | 0),  // MF, 12 bytes: misaligned
                             static_cast<std::uint16_t>(0x1fff)}) {   // offset 65528 + 12 > 65515
    Spec s;
    s.flags_frag = frag;
    cases.push_back({"bad_fragment", make_packet(s, pattern(12)), "drop_fragment_bad"});
  }
  {
    Spec s;
    s.flags_frag = 0x2000 | 4;  // MF, no data
    cases.push_back({"empty_fragment", make_packet(s, {}), "drop_fragment_bad"});
  }
  return cases;
}

TEST_F(Ipv4LayerTest, EveryBadPacketHasItsCounterAndSendsNothing) {
  for (const BadCase& c : bad_cases()) {
    SCOPED_TRACE(c.name);
    StatMap d = feed(c.packet);
    StatMap expected{{c.counter, 1}};
    if (std::string(c.counter).rfind("icmp_", 0) == 0) {
      expected["icmp_in"] = 1;
    }
    if (std::string(c.counter).rfind("drop_fragment_", 0) == 0) {
      expected["fragments_in"] = 1;
    }
    EXPECT_EQ(d, expected);
    EXPECT_TRUE(link.sent.empty());
    EXPECT_TRUE(upper.tcp.empty());
    EXPECT_TRUE(upper.errors.empty());
    EXPECT_EQ(ip->reassembly_datagrams(), 0u);
  }
}

TEST_F(Ipv4LayerTest, EveryTruncationOfAGoodPacketIsCounted) {
  const Bytes good = make_packet(Spec{}, tcp_header());
  for (std::size_t n = 0; n < good.size(); ++n) {
    ip->input(ByteSpan(good.data(), n));
  }
  EXPECT_EQ(ip->stats().drop_truncated, good.size());
  EXPECT_TRUE(upper.tcp.empty());
  EXPECT_TRUE(link.sent.empty());
}

// ---------------------------------------------------------------------------------------
// Fragment reassembly

TEST_F(Ipv4LayerTest, FragmentsInOrderAreReassembledAndDelivered) {
  const Bytes segment = concat(tcp_header(), pattern(3000));
  ip->input(
      make_fragment(wire::kProtoTcp, 7, 0, true, Bytes(segment.begin(), segment.begin() + 1480)));
  ip->input(make_fragment(wire::kProtoTcp, 7, 1480, true,
                          Bytes(segment.begin() + 1480, segment.begin() + 2960)));
  EXPECT_TRUE(upper.tcp.empty());
  EXPECT_EQ(ip->reassembly_datagrams(), 1u);
  EXPECT_GT(ip->reassembly_bytes(), 2960u);
  EXPECT_EQ(ip->next_deadline(), clock.now() + seconds(30));
  ip->input(
      make_fragment(wire::kProtoTcp, 7, 2960, false, Bytes(segment.begin() + 2960, segment.end())));
  ASSERT_EQ(upper.tcp.size(), 1u);
  EXPECT_EQ(upper.tcp[0].segment, segment);
  EXPECT_EQ(upper.tcp[0].src, kPeer);
  EXPECT_EQ(ip->stats().fragments_in, 3u);
  EXPECT_EQ(ip->stats().reassembled, 1u);
  EXPECT_EQ(ip->reassembly_datagrams(), 0u);
  EXPECT_EQ(ip->reassembly_bytes(), 0u);
  EXPECT_EQ(ip->next_deadline(), kNever);
  EXPECT_TRUE(link.sent.empty());
}

TEST_F(Ipv4LayerTest, FragmentsOutOfOrderAreReassembled) {
  const Bytes segment = concat(tcp_header(), pattern(60, 3));  // 80 bytes: 5 fragments of 16
  const std::vector<std::uint32_t> order = {64, 16, 48, 0, 32};
  for (std::uint32_t off : order) {
    ASSERT_TRUE(upper.tcp.empty());
    ip->input(make_fragment(wire::kProtoTcp, 9, off, off != 64,
                            Bytes(segment.begin() + off, segment.begin() + off + 16)));
  }
  ASSERT_EQ(upper.tcp.size(), 1u);
  EXPECT_EQ(upper.tcp[0].segment, segment);
  EXPECT_EQ(ip->stats().reassembled, 1u);
}

TEST_F(Ipv4LayerTest, InterleavedDatagramsAreKeptApart) {
  const Bytes a = concat(tcp_header(1, 2), pattern(24, 1));
  const Bytes b = concat(tcp_header(3, 4), pattern(24, 2));
  ip->input(make_fragment(wire::kProtoTcp, 100, 0, true, Bytes(a.begin(), a.begin() + 24)));
  ip->input(make_fragment(wire::kProtoTcp, 101, 24, false, Bytes(b.begin() + 24, b.end())));
  // Same id from another source is a different datagram (RFC 791 key).
  ip->input(make_fragment(wire::kProtoTcp, 100, 24, false, pattern(8), ipv4_addr(198, 18, 0, 9)));
  EXPECT_EQ(ip->reassembly_datagrams(), 3u);
  ip->input(make_fragment(wire::kProtoTcp, 101, 0, true, Bytes(b.begin(), b.begin() + 24)));
  ip->input(make_fragment(wire::kProtoTcp, 100, 24, false, Bytes(a.begin() + 24, a.end())));
  ASSERT_EQ(upper.tcp.size(), 2u);
  EXPECT_EQ(upper.tcp[0].segment, b);
  EXPECT_EQ(upper.tcp[1].segment, a);
  EXPECT_EQ(ip->reassembly_datagrams(), 1u);
}

TEST_F(Ipv4LayerTest, FragmentedPingIsAnsweredWhole) {
  const Bytes icmp = make_icmp(wire::kIcmpEchoRequest, 0, 0x00010002, pattern(1992));  // 2000
  ip->input(
      make_fragment(wire::kProtoIcmp, 55, 1000, false, Bytes(icmp.begin() + 1000, icmp.end())));
  ip->input(make_fragment(wire::kProtoIcmp, 55, 0, true, Bytes(icmp.begin(), icmp.begin() + 1000)));
  ASSERT_EQ(link.sent.size(), 1u);
  // RFC 1122 3.2.2.6: we do not fragment, so the 2028-byte reply is truncated to the MTU.
  EXPECT_EQ(link.sent[0].size(), 1500u);
  const auto rip = wire::Ipv4View::parse(link.sent[0]);
  ASSERT_TRUE(rip);
  const auto reply = wire::IcmpView::parse(rip->payload());
  ASSERT_TRUE(reply) << "checksum is over the truncated reply";
  EXPECT_EQ(reply->type(), wire::kIcmpEchoReply);
  EXPECT_EQ(reply->rest_of_header(), 0x00010002u);
  EXPECT_TRUE(std::equal(reply->payload().begin(), reply->payload().end(), icmp.begin() + 8));

  link.mtu_value = 4000;
  make(default_config());
  ip->input(
      make_fragment(wire::kProtoIcmp, 56, 1000, false, Bytes(icmp.begin() + 1000, icmp.end())));
  ip->input(make_fragment(wire::kProtoIcmp, 56, 0, true, Bytes(icmp.begin(), icmp.begin() + 1000)));
  ASSERT_EQ(link.sent.size(), 2u);
  EXPECT_EQ(link.sent[1].size(), 2020u);
}

TEST_F(Ipv4LayerTest, OverlappingFragmentsDropTheWholeDatagram) {
  const Bytes data = pattern(48);
  ip->input(make_fragment(wire::kProtoTcp, 1, 0, true, Bytes(data.begin(), data.begin() + 24)));
  ip->input(make_fragment(wire::kProtoTcp, 1, 32, false, Bytes(data.begin() + 32, data.end())));
  const std::size_t charged = ip->reassembly_bytes();
  EXPECT_GT(charged, 0u);
  // 16..31 overlaps the first fragment's 16..23 (the teardrop shape).
  StatMap d = feed(
      make_fragment(wire::kProtoTcp, 1, 16, true, Bytes(data.begin() + 16, data.begin() + 32)));
  EXPECT_EQ(d, (StatMap{{"fragments_in", 1}, {"drop_fragment_overlap", 1}}));
  EXPECT_EQ(ip->reassembly_bytes(), 0u) << "fragments freed at once";
  EXPECT_EQ(ip->reassembly_datagrams(), 1u) << "the key is remembered";
  // The missing piece arrives: it would complete the datagram, but it is abandoned.
  d = feed(
      make_fragment(wire::kProtoTcp, 1, 24, true, Bytes(data.begin() + 24, data.begin() + 32)));
  EXPECT_EQ(d, (StatMap{{"fragments_in", 1}, {"drop_fragment_abandoned", 1}}));
  EXPECT_TRUE(upper.tcp.empty());
  // At the deadline the remembered key goes away silently: no timeout count, no ICMP.
  clock.advance(seconds(30));
  ip->poll_timers(clock.now());
  EXPECT_EQ(ip->reassembly_datagrams(), 0u);
  EXPECT_EQ(ip->stats().drop_fragment_timeout, 0u);
  EXPECT_TRUE(link.sent.empty());
}

TEST_F(Ipv4LayerTest, OverlapWithFollowingFragmentAndSameOffsetDifferentData) {
  const Bytes data = pattern(48);
  ip->input(
      make_fragment(wire::kProtoTcp, 2, 16, true, Bytes(data.begin() + 16, data.begin() + 32)));
  ip->input(make_fragment(wire::kProtoTcp, 2, 8, true, Bytes(data.begin(), data.begin() + 16)));
  EXPECT_EQ(ip->stats().drop_fragment_overlap, 1u);

  ip->input(
      make_fragment(wire::kProtoTcp, 3, 16, true, Bytes(data.begin() + 16, data.begin() + 32)));
  Bytes changed(data.begin() + 16, data.begin() + 32);
  changed[3] ^= std::byte{1};
  ip->input(make_fragment(wire::kProtoTcp, 3, 16, true, changed));
  EXPECT_EQ(ip->stats().drop_fragment_overlap, 2u) << "same place, different bytes";
  EXPECT_EQ(ip->stats().drop_fragment_duplicate, 0u);
}

TEST_F(Ipv4LayerTest, ExactDuplicateFragmentIsIgnored) {
  const Bytes segment = concat(tcp_header(), pattern(12));  // 32 bytes
  const Bytes first =
      make_fragment(wire::kProtoTcp, 4, 0, true, Bytes(segment.begin(), segment.begin() + 16));
  ip->input(first);
  const StatMap d = feed(first);
  EXPECT_EQ(d, (StatMap{{"fragments_in", 1}, {"drop_fragment_duplicate", 1}}));
  ip->input(
      make_fragment(wire::kProtoTcp, 4, 16, false, Bytes(segment.begin() + 16, segment.end())));
  ASSERT_EQ(upper.tcp.size(), 1u);
  EXPECT_EQ(upper.tcp[0].segment, segment);
}

TEST_F(Ipv4LayerTest, InconsistentEndAbandonsTheDatagram) {
  ip->input(make_fragment(wire::kProtoTcp, 5, 16, false, pattern(8)));  // ends at 24
  // Data beyond the end.
  StatMap d = feed(make_fragment(wire::kProtoTcp, 5, 24, true, pattern(8)));
  EXPECT_EQ(d, (StatMap{{"fragments_in", 1}, {"drop_fragment_bad", 1}}));
  EXPECT_EQ(ip->reassembly_bytes(), 0u);
  // A second, different end for another datagram.
  ip->input(make_fragment(wire::kProtoTcp, 6, 16, false, pattern(8)));
  d = feed(make_fragment(wire::kProtoTcp, 6, 8, false, pattern(8)));  // ends at 16
  EXPECT_EQ(d, (StatMap{{"fragments_in", 1}, {"drop_fragment_bad", 1}}));
  // An end before data already held.
  ip->input(make_fragment(wire::kProtoTcp, 8, 32, true, pattern(8)));
  d = feed(make_fragment(wire::kProtoTcp, 8, 8, false, pattern(16)));  // ends at 24 < 40
  EXPECT_EQ(d, (StatMap{{"fragments_in", 1}, {"drop_fragment_bad", 1}}));
  EXPECT_TRUE(upper.tcp.empty());
}

TEST_F(Ipv4LayerTest, ReassemblyTimeoutSendsTimeExceededWhenFirstFragmentArrived) {
  const Bytes segment = concat(tcp_header(), pattern(40));
  const Bytes first =
      make_fragment(wire::kProtoTcp, 11, 0, true, Bytes(segment.begin(), segment.begin() + 32));
  ip->input(first);
  const TimeNs deadline = clock.now() + seconds(30);
  EXPECT_EQ(ip->next_deadline(), deadline);
  clock.advance(seconds(10));
  ip->input(make_fragment(wire::kProtoTcp, 12, 16, false, pattern(8)));  // no first fragment
  EXPECT_EQ(ip->next_deadline(), deadline) << "earliest deadline";

  clock.set(deadline - 1);
  ip->poll_timers(clock.now());
  EXPECT_EQ(ip->reassembly_datagrams(), 2u);
  clock.set(deadline);
  ip->poll_timers(clock.now());
  EXPECT_EQ(ip->reassembly_datagrams(), 1u);
  EXPECT_EQ(ip->stats().drop_fragment_timeout, 1u);
  ASSERT_EQ(link.sent.size(), 1u);
  const auto rip = wire::Ipv4View::parse(link.sent[0]);
  ASSERT_TRUE(rip);
  EXPECT_EQ(rip->dst(), kPeer);
  const auto icmp = wire::IcmpView::parse(rip->payload());
  ASSERT_TRUE(icmp);
  EXPECT_EQ(icmp->type(), wire::kIcmpTimeExceeded);
  EXPECT_EQ(icmp->code(), wire::kTimeExceededReassembly);
  EXPECT_EQ(Bytes(icmp->payload().begin(), icmp->payload().end()), first)
      << "quotes the first fragment as it arrived";
  EXPECT_EQ(ip->stats().icmp_time_exceeded_sent, 1u);

  // The datagram without its first fragment expires silently (RFC 1122 3.3.2).
  EXPECT_EQ(ip->next_deadline(), deadline + seconds(10));
  clock.advance(seconds(10));
  ip->poll_timers(clock.now());
  EXPECT_EQ(ip->stats().drop_fragment_timeout, 2u);
  EXPECT_EQ(link.sent.size(), 1u);
  EXPECT_EQ(ip->reassembly_datagrams(), 0u);
  EXPECT_EQ(ip->reassembly_bytes(), 0u);
  EXPECT_EQ(ip->next_deadline(), kNever);
}

TEST_F(Ipv4LayerTest, NoTimeExceededAboutAnIcmpError) {
  // A fragmented ICMP error (unusual, but legal) times out: RFC 1122 3.2.2 forbids an ICMP
  // error about it. A fragmented echo request times out: an error is allowed.
  const Bytes err = make_icmp(wire::kIcmpDestUnreachable, 1, 0, pattern(40));
  ip->input(make_fragment(wire::kProtoIcmp, 20, 0, true, Bytes(err.begin(), err.begin() + 16)));
  const Bytes echo = make_icmp(wire::kIcmpEchoRequest, 0, 0, pattern(40));
  ip->input(make_fragment(wire::kProtoIcmp, 21, 0, true, Bytes(echo.begin(), echo.begin() + 16)));
  clock.advance(seconds(31));
  ip->poll_timers(clock.now());
  EXPECT_EQ(ip->stats().drop_fragment_timeout, 2u);
  ASSERT_EQ(link.sent.size(), 1u);
  const auto rip = wire::Ipv4View::parse(link.sent[0]);
  const auto icmp = wire::IcmpView::parse(rip->payload());
  ASSERT_TRUE(icmp);
  EXPECT_EQ(icmp->type(), wire::kIcmpTimeExceeded);
  EXPECT_EQ(wire::parse_icmp_quote(icmp->payload())->id, 21);
}

TEST_F(Ipv4LayerTest, DatagramLimitRefusesNewDatagrams) {
  IpConfig c = default_config();
  c.reassembly_max_datagrams = 4;
  make(c);
  for (std::uint16_t id = 0; id < 4; ++id) {
    ip->input(make_fragment(wire::kProtoTcp, id, 0, true, concat(tcp_header(), pattern(4))));
  }
  const StatMap d =
      feed(make_fragment(wire::kProtoTcp, 99, 0, true, concat(tcp_header(), pattern(4))));
  EXPECT_EQ(d, (StatMap{{"fragments_in", 1}, {"drop_fragment_limit", 1}}));
  EXPECT_EQ(ip->reassembly_datagrams(), 4u);
  // Datagrams in progress still complete.
  ip->input(make_fragment(wire::kProtoTcp, 2, 24, false, pattern(8)));
  EXPECT_EQ(upper.tcp.size(), 1u);
  EXPECT_EQ(ip->reassembly_datagrams(), 3u);
}

TEST_F(Ipv4LayerTest, ByteLimitRefusesFragments) {
  IpConfig c = default_config();
  c.reassembly_max_bytes = 4096;
  make(c);
  ip->input(make_fragment(wire::kProtoTcp, 1, 0, true, pattern(2000)));
  EXPECT_EQ(ip->stats().drop_fragment_limit, 0u);
  // Same datagram, would pass 4096.
  StatMap d = feed(make_fragment(wire::kProtoTcp, 1, 2000, true, pattern(2096)));
  EXPECT_EQ(d, (StatMap{{"fragments_in", 1}, {"drop_fragment_limit", 1}}));
  // New datagram that does not fit: refused, and no empty entry is left behind.
  d = feed(make_fragment(wire::kProtoTcp, 2, 0, true, pattern(2096)));
  EXPECT_EQ(d, (StatMap{{"fragments_in", 1}, {"drop_fragment_limit", 1}}));
  EXPECT_EQ(ip->reassembly_datagrams(), 1u);
  EXPECT_LE(ip->reassembly_bytes(), 4096u);
  // Tiny fragments are charged their overhead too: a flood of them stops well short of the
  // 4096 / 8 = 512 fragments the payload alone would allow.
  for (std::uint32_t off = 2000; off < 2000 + 8 * 200; off += 16) {
    ip->input(make_fragment(wire::kProtoTcp, 1, off, true, pattern(8)));
  }
  EXPECT_GT(ip->stats().drop_fragment_limit, 2u);
  EXPECT_LE(ip->reassembly_bytes(), 4096u);
}

TEST_F(Ipv4LayerTest, ReassembledDatagramOver65535IsDropped) {
  // A 60-byte first header plus 65515 bytes of payload: every fragment is legal alone, the
  // whole would be 65575 bytes.
  Spec s;
  s.id = 77;
  s.flags_frag = 0x2000;
  s.options = Bytes(40, std::byte{0x01});
  ip->input(make_packet(s, pattern(65472)));
  EXPECT_EQ(ip->reassembly_datagrams(), 1u);
  const StatMap d = feed(make_fragment(wire::kProtoTcp, 77, 65472, false, pattern(43)));
  EXPECT_EQ(d, (StatMap{{"fragments_in", 1}, {"drop_fragment_bad", 1}}));
  EXPECT_EQ(ip->reassembly_datagrams(), 0u);
  EXPECT_EQ(ip->reassembly_bytes(), 0u);
  EXPECT_TRUE(upper.tcp.empty());
}

TEST_F(Ipv4LayerTest, LargestLegalReassemblyIsDelivered) {
  // 20-byte header + 65515 bytes = 65535 exactly.
  const Bytes data = pattern(65515);
  ip->input(make_fragment(wire::kProtoTcp, 78, 0, true, Bytes(data.begin(), data.begin() + 65000)));
  ip->input(
      make_fragment(wire::kProtoTcp, 78, 65000, false, Bytes(data.begin() + 65000, data.end())));
  ASSERT_EQ(upper.tcp.size(), 1u);
  EXPECT_EQ(upper.tcp[0].segment, data);
}

TEST_F(Ipv4LayerTest, ReassembledUdpDrawsOnePortUnreachable) {
  const Bytes udp = pattern(64);
  ip->input(make_fragment(wire::kProtoUdp, 31, 32, false, Bytes(udp.begin() + 32, udp.end())));
  EXPECT_TRUE(link.sent.empty()) << "never an error about a non-initial fragment";
  ip->input(make_fragment(wire::kProtoUdp, 31, 0, true, Bytes(udp.begin(), udp.begin() + 32)));
  ASSERT_EQ(link.sent.size(), 1u);
  const auto rip = wire::Ipv4View::parse(link.sent[0]);
  const auto icmp = wire::IcmpView::parse(rip->payload());
  ASSERT_TRUE(icmp);
  EXPECT_EQ(icmp->code(), wire::kUnreachPort);
  const auto quoted = wire::Ipv4View::parse(icmp->payload());
  ASSERT_TRUE(quoted) << "the quote is the reassembled datagram with a valid header";
  EXPECT_FALSE(quoted->is_fragment());
  EXPECT_EQ(quoted->total_length(), 84);
  EXPECT_EQ(Bytes(quoted->payload().begin(), quoted->payload().end()), udp);
}

// ---------------------------------------------------------------------------------------
// ICMP errors received

Bytes icmp_error_packet(std::uint8_t type, std::uint8_t code, std::uint32_t rest,
                        const Bytes& quoted, std::uint32_t reporter = ipv4_addr(203, 0, 113, 1)) {
  Spec s;
  s.protocol = wire::kProtoIcmp;
  s.src = reporter;
  s.tos = 0xc0;
  return make_packet(s, make_icmp(type, code, rest, quoted));
}

// The first 28 bytes of a TCP segment we sent to 203.0.113.7.
Bytes our_tcp_quote(std::uint32_t src = kLocal, std::uint8_t protocol = wire::kProtoTcp) {
  Spec s;
  s.src = src;
  s.dst = ipv4_addr(203, 0, 113, 7);
  s.protocol = protocol;
  const Bytes full = make_packet(s, concat(tcp_header(443, 51000, 0xa1b2c3d4), pattern(1000)));
  return Bytes(full.begin(), full.begin() + 28);
}

TEST_F(Ipv4LayerTest, FragmentationNeededReachesTcp) {
  const StatMap d = feed(icmp_error_packet(wire::kIcmpDestUnreachable, wire::kUnreachFragNeeded,
                                           1280, our_tcp_quote()));
  EXPECT_EQ(d, (StatMap{{"icmp_in", 1}, {"icmp_errors_in", 1}, {"icmp_errors_delivered", 1}}));
  ASSERT_EQ(upper.errors.size(), 1u);
  const IcmpErrorInfo& e = upper.errors[0];
  EXPECT_EQ(e.type, wire::kIcmpDestUnreachable);
  EXPECT_EQ(e.code, wire::kUnreachFragNeeded);
  EXPECT_EQ(e.quoted_src, kLocal);
  EXPECT_EQ(e.quoted_dst, ipv4_addr(203, 0, 113, 7));
  EXPECT_EQ(e.quoted_protocol, wire::kProtoTcp);
  EXPECT_EQ(e.quoted_src_port, 443);
  EXPECT_EQ(e.quoted_dst_port, 51000);
  EXPECT_EQ(e.quoted_tcp_seq, 0xa1b2c3d4u);
  EXPECT_EQ(e.next_hop_mtu, 1280);
  EXPECT_EQ(e.reporter, ipv4_addr(203, 0, 113, 1));
  EXPECT_TRUE(link.sent.empty()) << "never an ICMP error about an ICMP error";
}

TEST_F(Ipv4LayerTest, TimeExceededAndParameterProblemReachTcp) {
  ip->input(icmp_error_packet(wire::kIcmpTimeExceeded, wire::kTimeExceededTtl, 0, our_tcp_quote()));
  ip->input(icmp_error_packet(wire::kIcmpParameterProblem, 0, 0x14000000, our_tcp_quote()));
  ip->input(
      icmp_error_packet(wire::kIcmpDestUnreachable, wire::kUnreachHost, 0xffff, our_tcp_quote()));
  ASSERT_EQ(upper.errors.size(), 3u);
  EXPECT_EQ(upper.errors[0].type, wire::kIcmpTimeExceeded);
  EXPECT_EQ(upper.errors[0].next_hop_mtu, 0);
  EXPECT_EQ(upper.errors[1].type, wire::kIcmpParameterProblem);
  EXPECT_EQ(upper.errors[1].param_pointer, 20);
  EXPECT_EQ(upper.errors[2].code, wire::kUnreachHost);
  EXPECT_EQ(upper.errors[2].next_hop_mtu, 0) << "MTU only for code 4";
  EXPECT_EQ(upper.errors[2].quoted_tcp_seq, 0xa1b2c3d4u);
  EXPECT_TRUE(link.sent.empty());
}

TEST_F(Ipv4LayerTest, IcmpErrorsNotAboutOurTcpAreIgnored) {
  const Bytes other_src = our_tcp_quote(ipv4_addr(198, 18, 0, 77));
  const Bytes udp = our_tcp_quote(kLocal, wire::kProtoUdp);
  Bytes short_quote = our_tcp_quote();
  short_quote.pop_back();  // IP header + 7 bytes: one short of what RFC 792 guarantees
  Bytes non_initial = our_tcp_quote();
  wire::store_be16(non_initial.data() + 6, 0x2000 | 10);
  for (const Bytes& q : {other_src, udp, short_quote, non_initial}) {
    const StatMap d = feed(icmp_error_packet(wire::kIcmpDestUnreachable, wire::kUnreachPort, 0, q));
    EXPECT_EQ(d, (StatMap{{"icmp_in", 1}, {"icmp_errors_in", 1}, {"icmp_errors_ignored", 1}}));
  }
  // Source quench (RFC 6633) and redirect are ignored even about our TCP.
  ip->input(icmp_error_packet(wire::kIcmpSourceQuench, 0, 0, our_tcp_quote()));
  ip->input(icmp_error_packet(wire::kIcmpRedirect, 1, ipv4_addr(198, 18, 0, 254), our_tcp_quote()));
  EXPECT_EQ(ip->stats().icmp_errors_ignored, 6u);
  ip->set_upper(nullptr);
  ip->input(icmp_error_packet(wire::kIcmpDestUnreachable, 0, 0, our_tcp_quote()));
  EXPECT_EQ(ip->stats().icmp_errors_ignored, 7u);
  EXPECT_TRUE(upper.errors.empty());
  EXPECT_TRUE(link.sent.empty());
}

// ---------------------------------------------------------------------------------------
// Rate limit, send path, ids, stats

TEST_F(Ipv4LayerTest, IcmpErrorRateLimitHolds) {
  IpConfig c = default_config();
  c.icmp_rate_per_sec = 10;  // one token per 100 ms
  c.icmp_burst = 3;
  make(c);
  Spec s;
  s.protocol = wire::kProtoUdp;
  const Bytes udp = make_packet(s, pattern(16));
  for (int i = 0; i < 5; ++i) {
    ip->input(udp);
  }
  EXPECT_EQ(link.sent.size(), 3u);
  EXPECT_EQ(ip->stats().icmp_unreach_sent, 3u);
  EXPECT_EQ(ip->stats().icmp_rate_limited, 2u);
  EXPECT_EQ(ip->stats().drop_udp, 5u);

  clock.advance(ms(99));
  ip->input(udp);
  EXPECT_EQ(link.sent.size(), 3u);
  clock.advance(ms(1));
  ip->input(udp);
  EXPECT_EQ(link.sent.size(), 4u);

  // A long silence refills the bucket to its burst, not beyond.
  clock.advance(seconds(3600));
  for (int i = 0; i < 10; ++i) {
    ip->input(udp);
  }
  EXPECT_EQ(link.sent.size(), 7u);
  EXPECT_EQ(ip->stats().icmp_rate_limited, 2u + 1u + 7u);
  // Echo replies are not errors and are not limited.
  Spec e;
  e.protocol = wire::kProtoIcmp;
  for (int i = 0; i < 10; ++i) {
    ip->input(
        make_packet(e, make_icmp(wire::kIcmpEchoRequest, 0, static_cast<std::uint32_t>(i), {})));
  }
  EXPECT_EQ(link.sent.size(), 17u);
}

TEST_F(Ipv4LayerTest, RateZeroDisablesIcmpErrors) {
  IpConfig c = default_config();
  c.icmp_rate_per_sec = 0;
  make(c);
  Spec s;
  s.protocol = wire::kProtoUdp;
  ip->input(make_packet(s, pattern(16)));
  EXPECT_TRUE(link.sent.empty());
  EXPECT_EQ(ip->stats().icmp_rate_limited, 1u);
}

TEST_F(Ipv4LayerTest, SendCountsAndReportsLinkErrors) {
  Spec s;
  s.src = kLocal;
  s.dst = kPeer;
  const Bytes pkt = make_packet(s, tcp_header());
  EXPECT_EQ(ip->send(pkt), 0);
  ASSERT_EQ(link.sent.size(), 1u);
  EXPECT_EQ(link.sent[0], pkt);
  EXPECT_EQ(ip->stats().packets_out, 1u);
  EXPECT_EQ(ip->stats().bytes_out, pkt.size());

  link.fail_with = -EAGAIN;
  EXPECT_EQ(ip->send(pkt), -EAGAIN);
  EXPECT_EQ(ip->stats().drop_link_error, 1u);
  EXPECT_EQ(ip->stats().packets_out, 1u);
  link.fail_with = 0;

  EXPECT_EQ(ip->send(ByteSpan(pkt.data(), 19)), -EINVAL);
  const Bytes big(1501);
  EXPECT_EQ(ip->send(big), -EMSGSIZE);
  EXPECT_EQ(ip->stats().drop_out_invalid, 2u);
  EXPECT_EQ(link.sent.size(), 1u);
}

TEST_F(Ipv4LayerTest, LinkFailureDoesNotCountAReply) {
  link.fail_with = -ENOBUFS;
  Spec e;
  e.protocol = wire::kProtoIcmp;
  ip->input(make_packet(e, make_icmp(wire::kIcmpEchoRequest, 0, 1, {})));
  EXPECT_EQ(ip->stats().icmp_echo_in, 1u);
  EXPECT_EQ(ip->stats().icmp_echo_replies, 0u);
  EXPECT_EQ(ip->stats().drop_link_error, 1u);
}

TEST_F(Ipv4LayerTest, NextIdCountsFromConfigAndWraps) {
  IpConfig c = default_config();
  c.first_id = 0xfffe;
  make(c);
  EXPECT_EQ(ip->next_id(), 0xfffe);
  EXPECT_EQ(ip->next_id(), 0xffff);
  EXPECT_EQ(ip->next_id(), 0);
  EXPECT_EQ(ip->local_addr(), kLocal);
}

TEST_F(Ipv4LayerTest, StatsForEachVisitsEveryCounter) {
  const StatMap m = snapshot(ip->stats());
  EXPECT_EQ(m.size(), sizeof(IpStats) / sizeof(std::uint64_t));
  for (const char* name : {"packets_in",
                           "bytes_in",
                           "packets_out",
                           "bytes_out",
                           "drop_truncated",
                           "drop_bad_version",
                           "drop_bad_header_len",
                           "drop_bad_total_len",
                           "drop_bad_checksum",
                           "drop_bad_options",
                           "drop_not_for_us",
                           "drop_bad_source",
                           "drop_unknown_protocol",
                           "drop_link_error",
                           "fragments_in",
                           "reassembled",
                           "drop_fragment_timeout",
                           "drop_fragment_overlap",
                           "drop_fragment_limit",
                           "icmp_echo_in",
                           "icmp_echo_replies",
                           "icmp_errors_in",
                           "icmp_unreach_sent",
                           "icmp_rate_limited",
                           "icmp_bad"}) {
    EXPECT_EQ(m.count(name), 1u) << name;
  }
  Bytes junk(3);
  ip->input(junk);
  EXPECT_EQ(snapshot(ip->stats()).at("drop_truncated"), 1u);
}

}  // namespace
}  // namespace xtcp
