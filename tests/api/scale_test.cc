// Groups share one descriptor: 100,000 connections in one group use no more file
// descriptors than one connection does (counted in /proc/self/fd), and their received bytes
// all live in the pool's one shared buffer.
#include <dirent.h>
#include <gtest/gtest.h>

#include <unordered_map>

#include "tests/api/api_test_util.h"

namespace xtcp::test::api_bench {
namespace {

int count_fds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) {
    return -1;
  }
  int n = 0;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') {
      ++n;
    }
  }
  ::closedir(d);
  return n - 1;  // the directory stream itself
}

// Client i: address 198.19.(i / 50000).1, port 10000 + i % 50000.
Client nth(std::uint32_t i) {
  Client c;
  c.addr = 0xC6130001u + ((i / 50000u) << 8);
  c.port = static_cast<std::uint16_t>(10000 + i % 50000);
  c.isn = 5000 + i;
  return c;
}

std::uint32_t index_of(std::uint32_t addr, std::uint16_t port) {
  return ((addr - 0xC6130001u) >> 8) * 50000u + (port - 10000u);
}

TEST(ApiScale, HundredThousandConnectionsInOneGroupUseOneDescriptor) {
  constexpr std::uint32_t kConns = 100'000;
  api::RuntimeConfig cfg = default_config();
  cfg.tx_cache_size = 8u << 20;  // 10,000 cached answers of one chunk each
  Bench b(cfg, 8u << 20, /*capture=*/false);
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 7000);
  ASSERT_GT(gd, 0);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_ACCEPT_TIMEOUT_MS, 0), 0);
  std::vector<Client> clients;
  clients.reserve(kConns);
  for (std::uint32_t i = 0; i < kConns; ++i) {
    clients.push_back(nth(i));
  }
  std::vector<int> cds;
  cds.reserve(kConns);
  int fds_after_one = -1;
  Seg syn;
  syn.flags = kSyn;
  syn.seq = 0;
  syn.opts.has_mss = true;
  syn.opts.mss = 1460;
  constexpr std::uint32_t kBatch = 500;
  for (std::uint32_t start = 0; start < kConns; start += kBatch) {
    const std::uint32_t end = std::min(kConns, start + kBatch);
    for (std::uint32_t i = start; i < end; ++i) {
      b.queue(clients[i], syn);
    }
    b.rt->drive();
    std::uint32_t synacks = 0;
    for (const auto& p : b.link.take_outbound()) {
      const auto ip = wire::Ipv4View::parse(p);
      ASSERT_TRUE(ip);
      wire::TcpError terr;
      const auto t = wire::TcpView::parse(ip->payload(), &terr);
      ASSERT_TRUE(t.ok());
      ASSERT_EQ(t.flags(), kSyn | kAck);
      Client& c = clients[index_of(ip->dst(), t.dst_port())];
      c.iss = t.seq().raw();
      b.queue(c, Seg{});  // the handshake's ACK
      ++synacks;
    }
    ASSERT_EQ(synacks, end - start);
    b.rt->drive();
    for (int cd = b.rt->accept(0, gd); cd > 0; cd = b.rt->accept(0, gd)) {
      cds.push_back(cd);
      if (cds.size() == 1) {
        fds_after_one = count_fds();
      }
    }
    ASSERT_EQ(cds.size(), end) << "every handshake accepted";
  }
  EXPECT_EQ(b.rt->open_connections(), kConns);
  EXPECT_EQ(count_fds(), fds_after_one) << "100,000 connections, the same descriptors as one";
  // Every 10th client sends a request: the bytes all land in the pool's one buffer.
  std::size_t sent_bytes = 0;
  for (std::uint32_t i = 0; i < kConns; i += 10) {
    b.queue(clients[i], data(1, "MSG hello\n"));
    sent_bytes += 10;
    if (i % 5000 == 0) {
      b.rt->drive();
    }
  }
  b.rt->drive();
  b.link.take_outbound();
  EXPECT_EQ(b.rt->rx_pool(b.pool)->used(), sent_bytes);
  std::size_t served = 0;
  for (std::uint32_t k = 0; k < kConns; ++k) {
    const auto r = b.recv(gd, 64);
    if (r.rc == -EAGAIN) {
      break;
    }
    ASSERT_EQ(r.data, "MSG hello\n");
    ASSERT_EQ(b.send(gd, r.cd, 10, "OK\n"), 3);
    ++served;
  }
  EXPECT_EQ(served, kConns / 10);
  EXPECT_EQ(b.rt->rx_pool(b.pool)->used(), 0u);
  EXPECT_EQ(b.rt->tx_cache().used(), 3u * served) << "answers cached until ACKed";
  EXPECT_EQ(count_fds(), fds_after_one);
}

}  // namespace
}  // namespace xtcp::test::api_bench
