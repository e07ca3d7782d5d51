// xtcp-proxy's parts that need no network: which server a client goes to (round-robin,
// least connections, source hash), servers marked down and back after down_time, the
// --server parser, and the PROXY protocol header bytes (v1 text, v2 binary).
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "server_examples/proxy/balancer.h"
#include "server_examples/proxy/proxy_protocol.h"

namespace xtcp_proxy {
namespace {

std::vector<ServerAddress> servers(int n) {
  std::vector<ServerAddress> v;
  for (int i = 0; i < n; ++i) {
    ServerAddress a;
    std::string why;
    EXPECT_TRUE(parse_server_address(std::string("198.18.0.") + std::to_string(10 + i) + ":80", &a, &why)) << why;
    v.push_back(a);
  }
  return v;
}

const Clock::time_point kT0 = Clock::time_point{} + std::chrono::hours(1);

TEST(ProxyBalancer, RoundRobinGoesInTurnAndSkipsDownServers) {
  Balancer b(servers(3), BalancePolicy::kRoundRobin, std::chrono::seconds(10));
  EXPECT_EQ(b.pick(1, 0, kT0), 0);
  EXPECT_EQ(b.pick(1, 0, kT0), 1);
  EXPECT_EQ(b.pick(1, 0, kT0), 2);
  EXPECT_EQ(b.pick(1, 0, kT0), 0);
  b.mark_down(1, kT0);
  EXPECT_EQ(b.down_count(kT0), 1u);
  EXPECT_EQ(b.pick(1, 0, kT0), 2) << "1 is down";
  EXPECT_EQ(b.pick(1, 0, kT0), 0);
  EXPECT_EQ(b.pick(1, 0, kT0), 2);
  const auto later = kT0 + std::chrono::seconds(10);
  EXPECT_EQ(b.down_count(later), 0u) << "back after down_time";
  EXPECT_EQ(b.pick(1, 0, later), 0);
  EXPECT_EQ(b.pick(1, 0, later), 1);
}

TEST(ProxyBalancer, TriedServersAreNotChosenAgainAndNoneLeftIsNone) {
  Balancer b(servers(2), BalancePolicy::kRoundRobin, std::chrono::seconds(10));
  const int first = b.pick(1, 0, kT0);
  const TriedSet tried = TriedSet{1} << first;
  const int second = b.pick(1, tried, kT0);
  EXPECT_NE(second, first);
  EXPECT_EQ(b.pick(1, tried | TriedSet{1} << second, kT0), Balancer::kNone);
  b.mark_down(0, kT0);
  b.mark_down(1, kT0);
  EXPECT_EQ(b.pick(1, 0, kT0), Balancer::kNone) << "all down";
}

TEST(ProxyBalancer, LeastConnectionsPicksTheLeastLoaded) {
  Balancer b(servers(3), BalancePolicy::kLeastConn, std::chrono::seconds(10));
  b.opened(0);
  b.opened(0);
  b.opened(1);
  EXPECT_EQ(b.pick(1, 0, kT0), 2);
  b.opened(2);
  b.opened(2);
  EXPECT_EQ(b.pick(1, 0, kT0), 1);
  b.closed(0);
  b.closed(0);
  EXPECT_EQ(b.pick(1, 0, kT0), 0);
  b.mark_down(0, kT0);
  EXPECT_EQ(b.pick(1, 0, kT0), 1) << "the least loaded server is down";
}

TEST(ProxyBalancer, SourceHashKeepsAClientOnItsServer) {
  Balancer b(servers(4), BalancePolicy::kSourceHash, std::chrono::seconds(10));
  std::set<int> used;
  for (std::uint32_t client = 0xC6120100; client < 0xC6120140; ++client) {
    const int s = b.pick(client, 0, kT0);
    EXPECT_EQ(b.pick(client, 0, kT0), s) << "the same client, the same server";
    used.insert(s);
  }
  EXPECT_EQ(used.size(), 4u) << "64 clients spread over all 4 servers";
  const std::uint32_t client = 0xC6120101;
  const int home = b.pick(client, 0, kT0);
  b.mark_down(home, kT0);
  const int elsewhere = b.pick(client, 0, kT0);
  EXPECT_NE(elsewhere, home);
  EXPECT_NE(elsewhere, Balancer::kNone);
}

TEST(ProxyBalancer, ServerAddressesAreChecked) {
  ServerAddress a;
  std::string why;
  ASSERT_TRUE(parse_server_address("198.18.0.1:8080", &a, &why)) << why;
  EXPECT_EQ(a.addr, 0xC6120001u);
  EXPECT_EQ(a.port, 8080);
  for (const char* bad : {"198.18.0.1", "198.18.0.1:", "198.18.0.1:0", "198.18.0.1:65536", "198.18.0:80",
                          "host:80", "0.0.0.0:80", "198.18.0.1:8O"}) {
    why.clear();
    EXPECT_FALSE(parse_server_address(bad, &a, &why)) << bad;
    EXPECT_FALSE(why.empty()) << bad;
  }
}

TEST(ProxyHeaderBytes, V1IsOneTextLine) {
  const ProxiedFlow f{0xC6120005, 40123, 0xC6120002, 8000};
  EXPECT_EQ(proxy_header_v1(f), "PROXY TCP4 198.18.0.5 198.18.0.2 40123 8000\r\n");
  EXPECT_EQ(proxy_header(ProxyHeader::kNone, f), "");
}

TEST(ProxyHeaderBytes, V2IsTheBinaryBlock) {
  const ProxiedFlow f{0xC6120005, 40123, 0xC6120002, 8000};
  const std::string h = proxy_header_v2(f);
  const unsigned char want[28] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49,
                                  0x54, 0x0A, 0x21, 0x11, 0x00, 0x0C, 198,  18,   0,    5,
                                  198,  18,   0,    2,    0x9C, 0xBB, 0x1F, 0x40};
  ASSERT_EQ(h.size(), sizeof want);
  EXPECT_EQ(h, std::string(reinterpret_cast<const char*>(want), sizeof want));
  EXPECT_EQ(proxy_header(ProxyHeader::kV2, f), h);
}

}  // namespace
}  // namespace xtcp_proxy
