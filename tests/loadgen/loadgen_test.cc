// The load generator against servers in the same process: every connection comes up, every
// echo and every IM message is checked, and a server that answers wrongly or drops a
// client makes the run fail. Correctness only: no timing is asserted.
#include <gtest/gtest.h>

#include <memory>

#include "server_examples/echo/echo_service.h"
#include "stack/buffer/stream_buffers.h"
#include "stack/netif/mem_link.h"
#include "tools/loadgen/inprocess.h"
#include "tools/loadgen/loadgen.h"

namespace xtcp::loadgen {
namespace {

constexpr std::uint32_t kServer = 0xC6120002;  // 198.18.0.2

MemLinkFaults roomy() {
  MemLinkFaults f;
  f.max_queue_packets = 1u << 22;
  return f;
}

Options base(Workload w, std::uint32_t connections, std::uint16_t port) {
  Options o;
  o.workload = w;
  o.connections = connections;
  o.ramp_per_s = 50'000;
  o.interval = ms(200);
  o.duration = seconds(2);
  o.drain = seconds(20);
  o.target_addr = kServer;
  o.target_port = port;
  o.rx_pool_size = 64u << 20;
  o.tx_cache_size = 64u << 20;
  return o;
}

void expect_clean(const Results& r, std::uint32_t connections) {
  EXPECT_EQ(r.connects_ok, connections);
  EXPECT_EQ(r.connects_failed, 0u);
  EXPECT_EQ(r.resets, 0u);
  EXPECT_EQ(r.bad_answers, 0u);
  EXPECT_EQ(r.messages_lost, 0u);
  EXPECT_EQ(r.messages_duplicated, 0u);
  EXPECT_EQ(r.messages_reordered, 0u);
  EXPECT_EQ(r.sends_refused, 0u);
  EXPECT_EQ(r.errors(), 0u);
}

// The CI-sized run of the issue: 50,000 connections in process, each echoing.
TEST(Loadgen, FiftyThousandEchoConnectionsInProcess) {
  SteadyClock clock;
  MemLinkPair pair(clock, roomy(), roomy());
  std::string err;
  auto server = InProcessTarget::create(InProcessTarget::Kind::kEcho, pair.b(), clock, kServer, 7, 50'000, &err);
  ASSERT_TRUE(server) << err;
  Options o = base(Workload::kEcho, 50'000, 7);
  o.interval = seconds(1);
  Loadgen gen(o, pair.a(), clock);
  gen.set_pump([&] { server->pump(); });
  const Results r = gen.run();
  expect_clean(r, 50'000);
  EXPECT_EQ(r.peak_established, 50'000u);
  EXPECT_GE(r.messages_answered, 50'000u) << "every connection echoed at least once";
  EXPECT_EQ(r.messages_answered, r.messages_sent);
}

TEST(Loadgen, ImUsersMessageEachOtherOnceAndInOrder) {
  SteadyClock clock;
  MemLinkPair pair(clock, roomy(), roomy());
  std::string err;
  auto server = InProcessTarget::create(InProcessTarget::Kind::kIm, pair.b(), clock, kServer, 7000, 300, &err);
  ASSERT_TRUE(server) << err;
  Options o = base(Workload::kIm, 300, 7000);
  o.interval = ms(50);
  Loadgen gen(o, pair.a(), clock);
  gen.set_pump([&] { server->pump(); });
  const Results r = gen.run();
  expect_clean(r, 300);
  EXPECT_EQ(r.logins, 300u);
  EXPECT_GE(r.messages_answered, 300u);
  EXPECT_EQ(r.messages_answered + r.offline_answers, r.messages_sent);
}

TEST(Loadgen, ChurnReopensConnectionsAndKeepsCounting) {
  SteadyClock clock;
  MemLinkPair pair(clock, roomy(), roomy());
  std::string err;
  auto server = InProcessTarget::create(InProcessTarget::Kind::kIm, pair.b(), clock, kServer, 7000, 200, &err);
  ASSERT_TRUE(server) << err;
  Options o = base(Workload::kIm, 200, 7000);
  o.interval = ms(50);
  o.lifetime = ms(400);
  o.server_closes = true;  // QUIT: the server closes first
  Loadgen gen(o, pair.a(), clock);
  gen.set_pump([&] { server->pump(); });
  const Results r = gen.run();
  EXPECT_GT(r.churn_closes, 200u) << "each connection lived about 0.4 s in a run of more than 2 s";
  EXPECT_GT(r.logins, r.churn_closes / 2);
  EXPECT_EQ(r.connects_failed, 0u);
  EXPECT_EQ(r.resets, 0u);
  EXPECT_EQ(r.bad_answers, 0u);
  EXPECT_EQ(r.messages_lost, 0u);
  EXPECT_EQ(r.messages_duplicated, 0u);
  EXPECT_EQ(r.messages_reordered, 0u);
}

TEST(Loadgen, BurstIsAnsweredCompletely) {
  SteadyClock clock;
  MemLinkPair pair(clock, roomy(), roomy());
  std::string err;
  auto server = InProcessTarget::create(InProcessTarget::Kind::kEcho, pair.b(), clock, kServer, 7, 5000, &err);
  ASSERT_TRUE(server) << err;
  Options o = base(Workload::kBurst, 5000, 7);
  o.bursts = 2;
  o.interval = ms(300);
  o.duration = seconds(30);
  Loadgen gen(o, pair.a(), clock);
  gen.set_pump([&] { server->pump(); });
  const Results r = gen.run();
  expect_clean(r, 5000);
  ASSERT_EQ(r.burst_seconds.size(), 2u);
  EXPECT_EQ(r.messages_answered, 10'000u);
}

// An echo server on the engine that corrupts one byte of every 1000th connection's echo:
// the load generator must notice and fail.
TEST(Loadgen, WrongEchoBytesFailTheRun) {
  SteadyClock clock;
  MemLinkPair pair(clock, roomy(), roomy());
  StreamBuffers buffers(64 * 1024, 64 * 1024);
  StackConfig sc;
  sc.ip.local_addr = kServer;
  Stack server(sc, pair.b(), clock, buffers.rx(), buffers.tx());
  ASSERT_EQ(server.tcp().listen(7), 0);
  std::vector<ConnId> conns;
  auto pump = [&] {
    server.poll();
    for (std::int64_t c; (c = server.tcp().accept(7)) >= 0;) {
      conns.push_back(static_cast<ConnId>(c));
    }
    std::byte buf[4096];
    for (const ConnId c : conns) {
      const std::size_t n = buffers.read(c, wire::MutableByteSpan(buf, sizeof buf));
      if (n == 0) {
        continue;
      }
      if (c % 1000 == 0) {
        buf[0] ^= std::byte{1};
      }
      server.tcp().send(c, wire::ByteSpan(buf, n));
      server.tcp().consumed(c);
    }
    server.tcp().poll_events([](const TcpEvent&) {});
  };
  Options o = base(Workload::kEcho, 3000, 7);
  o.duration = ms(500);
  o.drain = seconds(2);
  Loadgen gen(o, pair.a(), clock);
  gen.set_pump(pump);
  const Results r = gen.run();
  EXPECT_GE(r.bad_answers, 3u);
  EXPECT_GT(r.errors(), 0u);
}

}  // namespace
}  // namespace xtcp::loadgen
