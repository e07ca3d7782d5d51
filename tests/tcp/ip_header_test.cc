// The IPv4 header of TCP's segments comes from the IP layer: IpConfig's TTL, our address,
// DF set, a fresh identification per packet. TCP writes only its own header and payload.
#include <gtest/gtest.h>

#include <set>

#include "tests/support/tcp_harness.h"
#include "stack/wire/ipv4.h"

namespace xtcp::test {
namespace {

using namespace wire::tcp_flags;  // NOLINT

// Every packet the stack sent since the last call, checked for the IPv4 fields TCP relies
// on; returns their identifications.
std::vector<std::uint16_t> check_ip_headers(TcpHarness& h, std::uint8_t ttl, std::size_t expect_count) {
  std::vector<std::uint16_t> ids;
  const auto packets = h.link.take_outbound();
  EXPECT_EQ(packets.size(), expect_count);
  for (const auto& p : packets) {
    const auto ip = wire::Ipv4View::parse(wire::ByteSpan(p.data(), p.size()));
    EXPECT_TRUE(ip.has_value());
    if (!ip) {
      continue;
    }
    EXPECT_EQ(ip->ttl(), ttl);
    EXPECT_TRUE(ip->dont_fragment());
    EXPECT_EQ(ip->protocol(), wire::kProtoTcp);
    EXPECT_EQ(ip->src(), kStackAddr);
    EXPECT_EQ(ip->dst(), kPeerAddr);
    ids.push_back(ip->id());
  }
  return ids;
}

TEST(TcpIpHeader, EverySegmentCarriesTheConfiguredTtl) {
  HarnessOptions o;
  o.ttl = 17;
  TcpHarness h(o);
  ASSERT_EQ(h.tcp().listen(kServerPort), 0);
  Seg syn;
  syn.flags = kSyn;
  syn.seq = 0;
  syn.opts = TcpHarness::linux_syn_options();
  h.inject(syn);  // SYN-ACK
  std::set<std::uint16_t> ids;
  for (const auto id : check_ip_headers(h, 17, 1)) {
    ids.insert(id);
  }
  // The harness did not see the SYN-ACK (taken above), so its ACK number is not the
  // stack's ISS + 1: an unacceptable ACK in SYN-RECEIVED, answered by a RST.
  h.inject(Seg{});
  for (const auto id : check_ip_headers(h, 17, 1)) {
    ids.insert(id);
  }
  // A segment for no connection: the RST reply carries the TTL too.
  Seg stray;
  stray.flags = kAck;
  stray.dst_port = 9;
  h.inject(stray);
  for (const auto id : check_ip_headers(h, 17, 1)) {
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 3u) << "each packet gets its own identification";
}

TEST(TcpIpHeader, DataAndAcksCarryTheConfiguredTtl) {
  HarnessOptions o;
  o.ttl = 200;
  TcpHarness h(o);
  const ConnId c = h.establish_passive();
  h.link.take_outbound();
  Seg data;
  data.payload = bytes_of("hello");
  h.inject(data);
  h.advance(ms(500));  // delayed ACK
  check_ip_headers(h, 200, 1);
  ASSERT_EQ(h.tcp().send(c, wire::ByteSpan(bytes_of("answer"))), 6);
  check_ip_headers(h, 200, 1);
}

}  // namespace
}  // namespace xtcp::test
