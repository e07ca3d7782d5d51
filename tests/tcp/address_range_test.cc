// A stack that owns a range of addresses (IpConfig::local_addr_count), as a load generator
// does: it accepts packets for any of them, answers from the address a packet was sent to,
// and opens connections from the address it is told. Two stacks over an in-memory link.
#include <gtest/gtest.h>

#include <memory>

#include "stack/buffer/stream_buffers.h"
#include "stack/netif/mem_link.h"
#include "stack/stack.h"
#include "stack/wire/ipv4.h"

namespace xtcp::test {
namespace {

constexpr std::uint32_t kRangeStart = 0xC6128001;  // 198.18.128.1
constexpr std::uint32_t kRangeCount = 1000;
constexpr std::uint32_t kServer = 0xC6120002;      // 198.18.0.2

struct TwoStacks {
  ManualClock clock{seconds(10)};
  MemLinkPair pair{clock};
  StreamBuffers cbuf{64 * 1024, 64 * 1024};
  StreamBuffers sbuf{64 * 1024, 64 * 1024};
  std::unique_ptr<Stack> client;
  std::unique_ptr<Stack> server;

  TwoStacks() {
    StackConfig cc;
    cc.ip.local_addr = kRangeStart;
    cc.ip.local_addr_count = kRangeCount;
    StackConfig sc;
    sc.ip.local_addr = kServer;
    client = std::make_unique<Stack>(cc, pair.a(), clock, cbuf.rx(), cbuf.tx());
    server = std::make_unique<Stack>(sc, pair.b(), clock, sbuf.rx(), sbuf.tx());
  }
  void run(int rounds = 10) {
    for (int i = 0; i < rounds; ++i) {
      client->poll();
      server->poll();
      clock.advance(ms(1));
    }
  }
};

TEST(AddressRange, ConnectionsFromAnyAddressOfTheRange) {
  TwoStacks s;
  ASSERT_EQ(s.server->tcp().listen(80), 0);
  const std::uint32_t from[] = {kRangeStart, kRangeStart + 500, kRangeStart + kRangeCount - 1};
  std::vector<ConnId> conns;
  for (const std::uint32_t a : from) {
    const std::int64_t c = s.client->tcp().connect(kServer, 80, 0, a);
    ASSERT_GE(c, 0);
    conns.push_back(static_cast<ConnId>(c));
  }
  EXPECT_EQ(s.client->tcp().connect(kServer, 80, 0, kRangeStart + kRangeCount), -EADDRNOTAVAIL);
  EXPECT_EQ(s.client->tcp().connect(kServer, 80, 0, kServer), -EADDRNOTAVAIL);
  s.run();
  for (std::size_t i = 0; i < conns.size(); ++i) {
    ConnInfo info{};
    ASSERT_EQ(s.client->tcp().info(conns[i], &info), 0);
    EXPECT_EQ(info.state, TcpState::kEstablished);
    EXPECT_EQ(info.key.local_addr, from[i]);
    const std::int64_t a = s.server->tcp().accept(80);
    ASSERT_GE(a, 0);
    ConnInfo sinfo{};
    ASSERT_EQ(s.server->tcp().info(static_cast<ConnId>(a), &sinfo), 0);
    EXPECT_EQ(sinfo.key.remote_addr, from[i]) << "the server sees the address the client chose";
  }
  // The same ephemeral port may serve two local addresses: ports are per address.
  EXPECT_EQ(s.client->ip().stats().drop_not_for_us, 0u);
}

TEST(AddressRange, PacketsBeyondTheRangeAreNotOurs) {
  TwoStacks s;
  ASSERT_EQ(s.server->tcp().listen(80), 0);
  // The server answers a SYN from an address outside the client's range: the client
  // stack drops the SYN-ACK as not for it.
  StackConfig other;
  other.ip.local_addr = kRangeStart + kRangeCount;  // one past the range
  StreamBuffers obuf{4096, 4096};
  ManualClock& clock = s.clock;
  MemLinkPair side{clock};
  Stack outsider(other, side.a(), clock, obuf.rx(), obuf.tx());
  ASSERT_GE(outsider.tcp().connect(kServer, 80), 0);
  std::vector<std::byte> syn;
  side.b().receive_batch(1, [&](std::span<const std::byte> p) { syn.assign(p.begin(), p.end()); });
  ASSERT_FALSE(syn.empty());
  s.pair.a().send(syn);  // as if the outsider's SYN came through the client's link
  s.run(2);
  EXPECT_GE(s.client->ip().stats().drop_not_for_us, 1u) << "the SYN-ACK to the outsider";
}

}  // namespace
}  // namespace xtcp::test
