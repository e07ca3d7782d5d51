// The API's per-connection state: a hot record of at most 24 bytes for every connection, a
// cold record only while a connection has data in hand (or its engine side is gone), slots
// recycled with a generation so stale descriptors keep failing, and the ready FIFO that
// serves connections round-robin while closed ones leave entries behind.
#include <gtest/gtest.h>
#include <poll.h>

#include <map>
#include <string>
#include <vector>

#include "tests/api/api_test_util.h"

namespace xtcp::test::api_bench {
namespace {

int open_group(Bench& b, std::uint16_t port = 7000) {
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, port);
  EXPECT_GT(gd, 0);
  return gd;
}

Client client(std::uint16_t port, std::uint32_t addr = 0xC6120001) {
  Client c;
  c.port = port;
  c.addr = addr;
  return c;
}

std::map<std::string, std::uint64_t> counters(api::Runtime& rt) {
  const int n = rt.counters(nullptr, 0);
  std::vector<xtcp_counter> v(static_cast<std::size_t>(n));
  rt.counters(v.data(), v.size());
  std::map<std::string, std::uint64_t> m;
  for (const auto& e : v) {
    m[e.name] = e.value;
  }
  return m;
}

bool fd_readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

TEST(ApiConnRecord, HotRecordIsAtMost24Bytes) {
  EXPECT_LE(api::Runtime::hot_record_bytes(), 24u);
  EXPECT_LE(api::Runtime::cold_record_bytes(), 24u);
}

// Bytes held but not yet shown need no cold record; shown bytes do until all of them are
// acknowledged, then the connection is back to its hot record alone.
TEST(ApiConnRecord, ColdRecordIsReturnedOnceEverythingShownIsAcknowledged) {
  Bench b;
  const int gd = open_group(b);
  Client c = client(40000);
  const int cd = b.open(c, gd);
  EXPECT_FALSE(b.rt->conn_busy(gd, cd));
  EXPECT_EQ(b.rt->busy_connections(), 0u);
  b.inject(c, data(1, "hello world"));
  EXPECT_FALSE(b.rt->conn_busy(gd, cd)) << "held, not yet shown";
  auto r = b.recv(gd);
  ASSERT_EQ(r.data, "hello world");
  EXPECT_TRUE(b.rt->conn_busy(gd, cd)) << "shown and unacknowledged";
  EXPECT_EQ(b.rt->busy_connections(), 1u);
  EXPECT_EQ(counters(*b.rt)["api.busy_connections"], 1u);
  ASSERT_EQ(b.send(gd, cd, 6, "partial"), 7);
  EXPECT_TRUE(b.rt->conn_busy(gd, cd)) << "5 bytes left unacknowledged";
  r = b.recv(gd);
  ASSERT_EQ(r.data, "world") << "the rest comes again first";
  ASSERT_EQ(b.send(gd, cd, 5, "done"), 4);
  EXPECT_FALSE(b.rt->conn_busy(gd, cd));
  EXPECT_EQ(b.rt->busy_connections(), 0u);
  const auto m = counters(*b.rt);
  EXPECT_EQ(m.at("api.busy_connections"), 0u);
  EXPECT_GT(m.at("mem.api"), 0u);
  EXPECT_EQ(b.recv(gd).rc, -EAGAIN);
  // The connection still works from its hot record alone.
  b.sent();
  b.inject(c, data(12, "again"));
  r = b.recv(gd);
  ASSERT_EQ(r.data, "again");
  ASSERT_EQ(b.send(gd, cd, 5, "ok"), 2);
  EXPECT_FALSE(b.rt->conn_busy(gd, cd));
  ASSERT_EQ(b.rt->close(0, gd, cd), 0);
  EXPECT_EQ(b.rt->busy_connections(), 0u);
}

// A partial framed message is data in hand (the scan position); its completion and
// acknowledgement return the cold record.
TEST(ApiConnRecord, PartialFramedMessageKeepsTheColdRecordUntilAcknowledged) {
  Bench b;
  const int gd = open_group(b);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_FRAMING, XTCP_FRAME_DELIMITER), 0);
  Client c = client(40000);
  const int cd = b.open(c, gd);
  b.inject(c, data(1, "abc"));
  EXPECT_EQ(b.recv(gd).rc, -EAGAIN) << "no whole message yet";
  EXPECT_TRUE(b.rt->conn_busy(gd, cd)) << "the scan position is kept";
  b.inject(c, data(4, "d\n"));
  const auto r = b.recv(gd);
  ASSERT_EQ(r.data, "abcd\n");
  ASSERT_EQ(b.send(gd, cd, 5, "ok"), 2);
  EXPECT_FALSE(b.rt->conn_busy(gd, cd));
  EXPECT_EQ(b.rt->busy_connections(), 0u);
}

// XTCP_OPT_MAX_MESSAGE is read from the group: a new limit applies to connections already
// accepted.
TEST(ApiConnRecord, MaxMessageAppliesAtOnceToTheGroupsConnections) {
  Bench b;
  const int gd = open_group(b);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_FRAMING, XTCP_FRAME_DELIMITER), 0);
  Client c = client(40000);
  const int cd = b.open(c, gd);
  b.inject(c, data(1, "0123456789\n"));
  auto r = b.recv(gd);
  ASSERT_EQ(r.data, "0123456789\n");
  ASSERT_EQ(b.send(gd, cd, r.data.size(), ""), 0);
  b.sent();
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_MAX_MESSAGE, 8), 0);
  b.inject(c, data(12, "0123456789\n"));
  EXPECT_TRUE(b.sent_one(c).has(kRst));
  r = b.recv(gd);
  EXPECT_EQ(r.rc, -EPROTO);
  EXPECT_EQ(r.cd, cd);
}

// The client resets: the engine keeps the connection until the application closes it, and
// the address comes from it.
TEST(ApiConnRecord, ParsAfterTheClientResets) {
  Bench b;
  const int gd = open_group(b);
  Client c = client(40123, 0xC6120007);
  const int cd = b.open(c, gd);
  Seg rst;
  rst.flags = kRst;
  rst.seq = 1;
  b.inject(c, rst);
  sockaddr_in sa{};
  ASSERT_EQ(b.rt->pars(gd, cd, &sa), 0);
  EXPECT_EQ(ntohs(sa.sin_port), c.port);
  EXPECT_EQ(ntohl(sa.sin_addr.s_addr), c.addr);
  const auto r = b.recv(gd);
  EXPECT_EQ(r.rc, -ECONNRESET);
  EXPECT_EQ(r.cd, cd);
  sa = sockaddr_in{};
  ASSERT_EQ(b.rt->pars(gd, cd, &sa), 0);
  EXPECT_EQ(ntohs(sa.sin_port), c.port);
  EXPECT_EQ(ntohl(sa.sin_addr.s_addr), c.addr);
  xtcp_conn_info info{};
  ASSERT_EQ(b.rt->conn_info(gd, cd, &info), 0);
  EXPECT_EQ(ntohs(info.remote.sin_port), c.port);
  EXPECT_EQ(info.error, ECONNRESET);
  ASSERT_EQ(b.rt->close(0, gd, cd), 0);
}

// The runtime resets (a framed message too big): the engine side is gone at once, and the
// address survives in the connection's cold record until xtcp_close.
TEST(ApiConnRecord, ParsAfterTheRuntimeResetsTheEngineSideIsGone) {
  Bench b;
  const int gd = open_group(b);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_FRAMING, XTCP_FRAME_U32BE), 0);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_MAX_MESSAGE, 100), 0);
  Client c = client(40555, 0xC6120009);
  const int cd = b.open(c, gd);
  b.inject(c, data(1, std::string("\0\0\1\0", 4)));  // announces 256 bytes > 100
  EXPECT_TRUE(b.sent_one(c).has(kRst));
  EXPECT_EQ(b.rt->engine_conn(gd, cd), kNoConn) << "the engine side is gone";
  EXPECT_TRUE(b.rt->conn_busy(gd, cd));
  sockaddr_in sa{};
  ASSERT_EQ(b.rt->pars(gd, cd, &sa), 0);
  EXPECT_EQ(sa.sin_family, AF_INET);
  EXPECT_EQ(ntohs(sa.sin_port), c.port);
  EXPECT_EQ(ntohl(sa.sin_addr.s_addr), c.addr);
  xtcp_conn_info info{};
  ASSERT_EQ(b.rt->conn_info(gd, cd, &info), 0);
  EXPECT_EQ(ntohs(info.remote.sin_port), c.port);
  EXPECT_EQ(ntohl(info.remote.sin_addr.s_addr), c.addr);
  EXPECT_EQ(info.error, EPROTO);
  EXPECT_EQ(b.recv(gd).rc, -EPROTO);
  ASSERT_EQ(b.rt->pars(gd, cd, &sa), 0);
  EXPECT_EQ(ntohs(sa.sin_port), c.port);
  ASSERT_EQ(b.rt->close(0, gd, cd), 0);
  EXPECT_EQ(b.rt->busy_connections(), 0u);
  EXPECT_EQ(b.rt->pars(gd, cd, &sa), -EBADF);
}

// Slots are reused (the most recently freed first); every call with a descriptor of an
// earlier connection of the slot fails, and the new connection starts with user data 0.
TEST(ApiConnRecord, StaleDescriptorsFailAfterSlotReuse) {
  Bench b;
  const int gd = open_group(b);
  std::vector<int> stale;
  std::uint16_t port = 41000;
  int cd = 0;
  for (int round = 0; round < 5; ++round) {
    Client a = client(port++);
    Client x = client(port++);
    const int cda = b.open(a, gd);
    cd = b.open(x, gd);
    if (round > 0) {
      EXPECT_EQ(cda & 0xFFFFFF, stale[0] & 0xFFFFFF) << "the slot freed last is reused first";
      EXPECT_EQ(cd & 0xFFFFFF, stale[1] & 0xFFFFFF);
    }
    std::uint64_t v = 1;
    ASSERT_EQ(b.rt->get_user_data(gd, cd, &v), 0);
    EXPECT_EQ(v, 0u) << "a reused slot starts with user data 0";
    ASSERT_EQ(b.rt->get_user_data(gd, cda, &v), 0);
    EXPECT_EQ(v, 0u);
    ASSERT_EQ(b.rt->set_user_data(gd, cd, 0xABCDEFu + static_cast<std::uint64_t>(round)), 0);
    ASSERT_EQ(b.rt->set_user_data(gd, cda, 77), 0);
    for (const int old : stale) {
      EXPECT_NE(old, cd);
      EXPECT_NE(old, cda);
      EXPECT_EQ(b.rt->send(0, gd, old, 0, "x", 1), -EBADF);
      EXPECT_EQ(b.rt->set_user_data(gd, old, 1), -EBADF);
      EXPECT_EQ(b.rt->get_user_data(gd, old, &v), -EBADF);
      sockaddr_in sa{};
      EXPECT_EQ(b.rt->pars(gd, old, &sa), -EBADF);
      xtcp_conn_info info{};
      EXPECT_EQ(b.rt->conn_info(gd, old, &info), -EBADF);
      EXPECT_EQ(b.rt->close(0, gd, old), -EBADF);
    }
    ASSERT_EQ(b.rt->get_user_data(gd, cd, &v), 0);
    EXPECT_EQ(v, 0xABCDEFu + static_cast<std::uint64_t>(round)) << "stale calls left it alone";
    // Close both: x's slot is freed last, so it is the next one handed out.
    ASSERT_EQ(b.rt->close(0, gd, cda), 0);
    ASSERT_EQ(b.rt->close(0, gd, cd), 0);
    b.sent();
    stale.insert(stale.begin(), {cd, cda});
  }
  EXPECT_EQ(b.rt->open_connections(), 0u);
}

// Connections closed while ready leave entries in the FIFO: they are skipped, a new
// connection in a closed one's slot is served in its own turn, and the group is ready
// exactly while a queued connection is left.
TEST(ApiConnRecord, ClosedConnectionsLeaveTheRoundRobinOrderIntact) {
  Bench b;
  const int gd = open_group(b);
  const int efd = b.rt->group_fd(gd);
  Client cs[3] = {client(42000), client(42001), client(42002)};
  int cds[3];
  for (int i = 0; i < 3; ++i) {
    cds[i] = b.open(cs[i], gd);
  }
  for (int i = 0; i < 3; ++i) {
    b.inject(cs[i], data(1, "req" + std::to_string(i)));
  }
  ASSERT_EQ(b.rt->close(0, gd, cds[1]), 0);  // ready, unprocessed: reset
  b.sent();
  Client d = client(42003);
  const int dcd = b.open(d, gd);
  EXPECT_EQ(dcd & 0xFFFFFF, cds[1] & 0xFFFFFF) << "the new connection has the closed one's slot";
  b.inject(d, data(1, "reqd"));
  std::vector<int> order;
  for (int k = 0; k < 3; ++k) {
    const auto r = b.recv(gd);
    ASSERT_GT(r.rc, 0);
    order.push_back(r.cd);
    ASSERT_EQ(b.send(gd, r.cd, r.data.size(), ""), 0);
  }
  EXPECT_EQ(order, (std::vector<int>{cds[0], cds[2], dcd}));
  EXPECT_EQ(b.recv(gd).rc, -EAGAIN);
  EXPECT_FALSE(fd_readable(efd));
  // Closing every ready connection leaves the group not ready.
  b.inject(cs[0], data(5, "more"));
  EXPECT_TRUE(fd_readable(efd));
  ASSERT_EQ(b.rt->close(0, gd, cds[0]), 0);
  EXPECT_FALSE(fd_readable(efd));
  timeval zero{0, 0};
  xtcp_set rs;
  XTCP_ZERO(&rs);
  XTCP_SET(gd, &rs);
  EXPECT_EQ(b.rt->select(gd + 1, &rs, nullptr, &zero), 0);
  EXPECT_EQ(b.recv(gd).rc, -EAGAIN);
}

// Many connections closed while ready (enough for the FIFO to drop their entries at once):
// the others are still served in the order they became ready, each once.
TEST(ApiConnRecord, ManyClosedWhileReadyKeepTheOthersInOrder) {
  Bench b;
  const int gd = open_group(b);
  constexpr int kConns = 150;
  std::vector<Client> cs;
  std::vector<int> cds;
  for (int i = 0; i < kConns; ++i) {
    cs.push_back(client(static_cast<std::uint16_t>(43000 + i)));
  }
  for (int i = 0; i < kConns; ++i) {
    cds.push_back(b.open(cs[static_cast<std::size_t>(i)], gd));
  }
  // Ready in reverse order of opening.
  for (int i = kConns - 1; i >= 0; --i) {
    b.inject(cs[static_cast<std::size_t>(i)], data(1, "r"));
  }
  std::vector<int> expect;
  for (int i = kConns - 1; i >= 0; --i) {
    if (i % 5 == 0) {
      expect.push_back(cds[static_cast<std::size_t>(i)]);
    } else {
      ASSERT_EQ(b.rt->close(0, gd, cds[static_cast<std::size_t>(i)]), 0);
    }
  }
  b.sent();
  // New connections take the freed slots and become ready after the survivors.
  std::vector<Client> late;
  for (int i = 0; i < 10; ++i) {
    late.push_back(client(static_cast<std::uint16_t>(44000 + i)));
  }
  for (auto& c : late) {
    expect.push_back(b.open(c, gd));
    b.inject(c, data(1, "l"));
  }
  std::vector<int> order;
  for (;;) {
    const auto r = b.recv(gd);
    if (r.rc == -EAGAIN) {
      break;
    }
    ASSERT_EQ(r.rc, 1);
    order.push_back(r.cd);
    ASSERT_EQ(b.send(gd, r.cd, 1, ""), 0);
  }
  EXPECT_EQ(order, expect);
  EXPECT_EQ(b.rt->busy_connections(), 0u);
}

// Idle connections cost the API their hot record and their entry in the engine index: the
// memory the API reports (mem.api) grows by about 28 bytes per connection, and none of them
// has a cold record.
TEST(ApiConnRecord, IdleConnectionsCostTheHotRecordAndAnIndexEntry) {
  constexpr std::uint32_t kConns = 20'000;
  Bench b(default_config(), 1u << 20, /*capture=*/false);
  const int gd = open_group(b);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_ACCEPT_TIMEOUT_MS, 0), 0);
  const std::uint64_t before = counters(*b.rt).at("mem.api");
  std::vector<Client> cs(kConns);
  for (std::uint32_t i = 0; i < kConns; ++i) {
    cs[i].addr = 0xC6130001u + ((i / 10000u) << 8);
    cs[i].port = static_cast<std::uint16_t>(20000 + i % 10000);
    cs[i].isn = 7000 + i;
  }
  Seg syn;
  syn.flags = kSyn;
  syn.seq = 0;
  syn.opts.has_mss = true;
  syn.opts.mss = 1460;
  std::size_t accepted = 0;
  constexpr std::uint32_t kBatch = 500;
  for (std::uint32_t start = 0; start < kConns; start += kBatch) {
    for (std::uint32_t i = start; i < start + kBatch; ++i) {
      b.queue(cs[i], syn);
    }
    b.rt->drive();
    for (const auto& p : b.link.take_outbound()) {
      const auto ip = wire::Ipv4View::parse(p);
      ASSERT_TRUE(ip);
      wire::TcpError terr;
      const auto t = wire::TcpView::parse(ip->payload(), &terr);
      ASSERT_TRUE(t.ok());
      const std::uint32_t i = ((ip->dst() - 0xC6130001u) >> 8) * 10000u + (t.dst_port() - 20000u);
      cs[i].iss = t.seq().raw();
      b.queue(cs[i], Seg{});
    }
    b.rt->drive();
    while (b.rt->accept(0, gd) > 0) {
      ++accepted;
    }
  }
  ASSERT_EQ(accepted, kConns);
  const auto m = counters(*b.rt);
  EXPECT_EQ(m.at("api.busy_connections"), 0u);
  const double per_conn = static_cast<double>(m.at("mem.api") - before) / kConns;
  std::printf("API memory per idle connection: %.1f bytes (hot record %zu, cold record %zu)\n", per_conn,
              api::Runtime::hot_record_bytes(), api::Runtime::cold_record_bytes());
  EXPECT_LE(per_conn, 32.0);
}

}  // namespace
}  // namespace xtcp::test::api_bench
