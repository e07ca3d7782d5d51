// Fair shared buffers in the runtime, in virtual time on a scripted link: connections whose
// peers keep window 0 while their answers fill the transmit cache are reset past their
// group's XTCP_OPT_ZERO_WINDOW_ABORT_MS (and counted), a quiet connection's answer then
// fits; connections whose bytes the receive pool refused are ACKed as soon as room frees
// up, in the order they were refused; the window of a new connection is backed.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "tests/api/api_test_util.h"

namespace xtcp::test::api_bench {
namespace {

std::uint64_t counter(api::Runtime& rt, const std::string& name) {
  const int n = rt.counters(nullptr, 0);
  std::vector<xtcp_counter> c(static_cast<std::size_t>(n));
  rt.counters(c.data(), c.size());
  for (const auto& e : c) {
    if (name == e.name) {
      return e.value;
    }
  }
  ADD_FAILURE() << "no counter " << name;
  return 0;
}

Client client_at(std::uint16_t port) {
  Client c;
  c.port = port;
  return c;
}

TEST(ApiFairBuffers, ZeroWindowAbortOptionRange) {
  Bench b;
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 7000);
  std::int64_t v = 0;
  ASSERT_EQ(b.rt->getopt(gd, XTCP_OPT_ZERO_WINDOW_ABORT_MS, &v), 0);
  EXPECT_EQ(v, 60'000) << "the default";
  EXPECT_EQ(b.rt->setopt(gd, XTCP_OPT_ZERO_WINDOW_ABORT_MS, -1), -EINVAL);
  EXPECT_EQ(b.rt->setopt(gd, XTCP_OPT_ZERO_WINDOW_ABORT_MS, 0), 0) << "0: never";
  ASSERT_EQ(b.rt->getopt(gd, XTCP_OPT_ZERO_WINDOW_ABORT_MS, &v), 0);
  EXPECT_EQ(v, 0);
}

// Hoarders: clients that send requests but never read the answers (window 0 toward us).
// Their answers fill the transmit cache; past the limit they are reset, counted, and the
// application learns it (-ECONNABORTED); a well-behaved client's answer then fits.
void run_hoarders(bool abort_enabled) {
  api::RuntimeConfig cfg = default_config();
  cfg.tx_cache_size = 64 * 1024;  // reserve 4 KiB
  Bench b(cfg);
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 7000);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_ZERO_WINDOW_ABORT_MS, abort_enabled ? 1000 : 0), 0);
  ASSERT_EQ(b.rt->writable(gd), -EAGAIN);  // the group reports writable connections
  std::vector<Client> hoarders;
  std::vector<int> hcd;
  for (int i = 0; i < 3; ++i) {
    hoarders.push_back(client_at(static_cast<std::uint16_t>(41000 + i)));
    hcd.push_back(b.open(hoarders.back(), gd));
  }
  Client good = client_at(42000);
  const int gcd = b.open(good, gd);
  // Every hoarder asks; the server answers until the cache refuses; the hoarders then
  // advertise window 0 and read nothing.
  const std::string answer(8000, 'a');
  int refused_with_bytes_cached = 0;
  for (std::size_t i = 0; i < hoarders.size(); ++i) {
    b.inject(hoarders[i], data(1, "REQ\n"));
    auto r = b.recv(gd);
    ASSERT_EQ(r.cd, hcd[i]);
    int rc = b.send(gd, r.cd, r.data.size(), answer);
    while (rc > 0) {
      rc = b.send(gd, r.cd, 0, answer);
    }
    EXPECT_EQ(rc, -EAGAIN);
    if (b.rt->tx_cache().queued(b.rt->engine_conn(gd, r.cd)) > 0) {
      ++refused_with_bytes_cached;
    }
    b.sent();
    b.inject(hoarders[i], ack(1, 5, 0));  // nothing read: window 0
    b.sent();
  }
  EXPECT_GE(refused_with_bytes_cached, 2);
  EXPECT_GE(b.rt->tx_cache().used() + b.rt->tx_cache().reserve(), 64u * 1024 - 2 * 8000)
      << "the hoarders filled the cache but its reserve";
  // The well-behaved client asks; its answer waits (the hoarders hold the cache).
  b.inject(good, data(1, "HELLO\n"));
  auto r = b.recv(gd);
  ASSERT_EQ(r.cd, gcd);
  const int first = b.send(gd, gcd, r.data.size(), std::string(20000, 'g'));
  EXPECT_LT(first, 20000) << "not all of it fits while the hoarders hold the cache";
  // Half the limit: nobody is reset yet.
  for (int i = 0; i < 5; ++i) {
    b.advance(ms(100));
  }
  b.sent();
  EXPECT_EQ(counter(*b.rt, "api.zero_window_aborts"), 0u);
  for (int i = 0; i < 10; ++i) {
    b.advance(ms(100));
  }
  int rsts = 0;
  for (const auto& o : b.sent({&hoarders[0], &hoarders[1], &hoarders[2]})) {
    if ((o.seg.flags & kRst) != 0) {
      ++rsts;
      EXPECT_EQ(o.dst_port, hoarders[0].port) << "the one holding the most";
    }
  }
  if (!abort_enabled) {
    EXPECT_EQ(rsts, 0);
    EXPECT_EQ(counter(*b.rt, "api.zero_window_aborts"), 0u);
    return;
  }
  // The hoarder holding the most goes first; with its bytes gone the pressure is over and
  // the small one stays.
  EXPECT_EQ(counter(*b.rt, "api.zero_window_aborts"), 1u);
  EXPECT_EQ(rsts, 1) << "the reset hoarder got a RST";
  // The application learns of each reset from xtcp_recv.
  std::map<int, int> errors;
  for (int k = 0; k < 8; ++k) {
    int cd = 0;
    char buf[64];
    const int rc = b.rt->recv(0, gd, &cd, buf, sizeof buf);
    if (rc == -EAGAIN) {
      break;
    }
    errors[cd] = rc;
  }
  int aborted = 0;
  for (const auto& [cd, rc] : errors) {
    aborted += rc == -ECONNABORTED ? 1 : 0;
  }
  EXPECT_EQ(aborted, 1);
  EXPECT_EQ(errors[hcd[0]], -ECONNABORTED);
  // The room is back: the good client's answer goes on.
  const int rest = 20000 - std::max(first, 0);
  EXPECT_EQ(b.send(gd, gcd, 0, std::string(static_cast<std::size_t>(rest), 'g')), rest);
}

TEST(ApiFairBuffers, ZeroWindowHoardersAreResetPastTheLimitAndCounted) { run_hoarders(true); }

TEST(ApiFairBuffers, ZeroWindowHoardersAreKeptWhenTheLimitIsOff) { run_hoarders(false); }

// Overbooked windows (a small pool, everything promised) can be refused; when room frees
// up every refused connection is ACKed at once, oldest refusal first.
TEST(ApiFairBuffers, RefusedConnectionsAreToldInRefusalOrderWhenRoomFreesUp) {
  Bench b(default_config(), 8 * 1024);  // reserve 512, min_share 4096
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 7000);
  Client a = client_at(43000);
  Client c = client_at(43001);
  Client d = client_at(43002);
  Client e = client_at(43003);
  const int acd = b.open(a, gd);
  const int ccd = b.open(c, gd);
  b.open(d, gd);
  b.open(e, gd);
  const SharedRxPool* pool = b.rt->rx_pool(b.pool);
  EXPECT_GT(pool->committed(), pool->free_bytes()) << "d and e are overbooked";
  // a and c fill their (backed) windows; nothing is read.
  const auto fill = [&](Client& cl, int cd) {
    ConnInfo ci{};
    ASSERT_EQ(b.rt->stack().tcp().info(b.rt->engine_conn(gd, cd), &ci), 0);
    for (std::uint32_t seq = 1; seq < 1 + ci.rcv_wnd;) {
      const std::uint32_t n = std::min<std::uint32_t>(1400, 1 + ci.rcv_wnd - seq);
      b.inject(cl, data(seq, std::string(n, 'f')));
      seq += n;
    }
  };
  fill(a, acd);
  fill(c, ccd);
  EXPECT_EQ(pool->stats().bytes_refused, 0u) << "backed windows are honoured";
  EXPECT_LE(pool->free_bytes(), 512u);
  b.sent();
  // e, then d send inside their overbooked windows: what does not fit is refused.
  b.inject(e, data(1, std::string(1000, 'e')));
  b.inject(d, data(1, std::string(1000, 'd')));
  EXPECT_EQ(pool->free_bytes(), 0u);
  const std::uint64_t refused = pool->stats().bytes_refused;
  EXPECT_GE(refused, 1000u);
  b.sent();
  // The application takes a's bytes: room frees up; e and d hear at once, e first.
  auto r = b.recv(gd, 8192);
  while (r.rc > 0 && r.cd != acd) {
    r = b.recv(gd, 8192);
  }
  ASSERT_EQ(r.cd, acd);
  ASSERT_EQ(b.send(gd, acd, r.data.size(), "A"), 1);
  b.rt->drive();
  std::vector<std::uint16_t> order;
  std::map<std::uint16_t, std::uint32_t> acked;
  for (const auto& o : b.sent({&a, &c, &d, &e})) {
    if (o.dst_port == d.port || o.dst_port == e.port) {
      EXPECT_GT(o.seg.window, 0u);
      order.push_back(o.dst_port);
      acked[o.dst_port] = o.seg.rack;
    }
  }
  ASSERT_EQ(order.size(), 2u);
  EXPECT_EQ(order[0], e.port) << "refused first, told first";
  EXPECT_EQ(order[1], d.port);
  EXPECT_EQ(counter(*b.rt, "api.refused_window_updates"), 2u);
  // Their retransmissions of what was refused now fit.
  for (Client* cl : {&e, &d}) {
    const std::uint32_t from = acked[cl->port];
    b.inject(*cl, data(from, std::string(1001 - from, 'r')));
  }
  EXPECT_EQ(pool->stats().bytes_refused, refused);
}

// Windows start small and grow with use: with application-controlled ACKs a message larger
// than the first window still completes, because the stack sends a window update (the ACK
// point unchanged) once the client has used its window while the application holds a
// message not yet complete.
TEST(ApiFairBuffers, AMessageLargerThanTheFirstWindowCompletes) {
  Bench b;
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 7000);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_FRAMING, XTCP_FRAME_DELIMITER), 0);
  Client c = client_at(44000);
  const int cd = b.open(c, gd);
  ConnInfo ci{};
  ASSERT_EQ(b.rt->stack().tcp().info(b.rt->engine_conn(gd, cd), &ci), 0);
  std::uint32_t edge = 1 + ci.rcv_wnd;
  EXPECT_LE(ci.rcv_wnd, 4096u) << "a new connection starts with the quiet window";
  const std::string line = std::string(12000, 'm') + "\n";
  std::uint32_t seq = 1;
  int updates = 0;
  for (int round = 0; round < 50 && seq < 1 + line.size(); ++round) {
    while (seq < edge && seq < 1 + line.size()) {
      const std::uint32_t n = std::min<std::uint32_t>({1400, edge - seq, static_cast<std::uint32_t>(1 + line.size() - seq)});
      b.inject(c, data(seq, line.substr(seq - 1, n)));
      seq += n;
    }
    for (const auto& o : b.sent({&c})) {
      EXPECT_EQ(o.seg.rack, 1u) << "nothing is acknowledged before the application releases it";
      if (o.seg.rack + o.seg.window > edge) {
        ++updates;
        edge = o.seg.rack + o.seg.window;
      }
    }
  }
  EXPECT_GT(updates, 0) << "the window grew while the message was incomplete";
  ASSERT_EQ(seq, 1 + line.size()) << "the whole line got in";
  const auto r = b.recv(gd, 16384);
  EXPECT_EQ(r.cd, cd);
  EXPECT_EQ(r.data.size(), line.size());
}

}  // namespace
}  // namespace xtcp::test::api_bench
