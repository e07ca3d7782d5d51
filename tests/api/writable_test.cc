// Answers that did not fit the shared transmit cache: refused sends are remembered and the
// connection is woken (xtcp_writable, and its unacknowledged bytes come again) once the
// room it asked for is there; XTCP_OPT_SEND_ALL queues an answer whole or not at all and
// then leaves the request unacknowledged. Also per-connection user data. Virtual time.
#include <gtest/gtest.h>

#include <string>

#include "tests/api/api_test_util.h"

namespace xtcp::test::api_bench {
namespace {

// A small cache so a few answers fill it: 16 chunks of 128 bytes.
api::RuntimeConfig small_cache(std::size_t cache, std::size_t conn_limit = 1u << 20) {
  api::RuntimeConfig c = default_config();
  c.tx_cache_size = cache;
  c.tx_conn_limit = conn_limit;
  return c;
}

struct Opened {
  Client c;
  int cd = 0;
};

std::vector<Opened> open_clients(Bench& b, int gd, int n) {
  std::vector<Opened> out(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    out[static_cast<std::size_t>(i)].c.port = static_cast<std::uint16_t>(42000 + i);
    out[static_cast<std::size_t>(i)].cd = b.open(out[static_cast<std::size_t>(i)].c, gd);
  }
  return out;
}

TEST(ApiWritable, SendAllLeavesTheRequestUntilTheCacheHasRoom) {
  Bench b(small_cache(2048));
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 7000);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_SEND_ALL, 1), 0);
  auto cl = open_clients(b, gd, 2);
  const std::string big(1500, 'a');
  b.inject(cl[0].c, data(1, "REQ1\n"));
  auto r = b.recv(gd);
  ASSERT_EQ(r.cd, cl[0].cd);
  ASSERT_EQ(b.send(gd, r.cd, r.data.size(), big), 1500);
  b.sent({&cl[0].c});  // the answer (two segments), still unacknowledged: it stays cached
  b.inject(cl[1].c, data(1, "REQ2\n"));
  r = b.recv(gd);
  ASSERT_EQ(r.cd, cl[1].cd);
  EXPECT_EQ(b.send(gd, r.cd, r.data.size(), big), -EAGAIN) << "1500 bytes do not fit 512";
  b.expect_silence();  // nothing queued, and the request is not acknowledged either
  EXPECT_EQ(b.rt->rx_pool(b.pool)->used(), 5u) << "REQ2 still held";
  EXPECT_EQ(b.recv(gd).rc, -EAGAIN) << "not offered again before there is room";
  // The first client acknowledges its answer: the room is there, REQ2 comes again.
  b.inject(cl[0].c, ack(1501, 6));
  r = b.recv(gd);
  ASSERT_EQ(r.cd, cl[1].cd);
  EXPECT_EQ(r.data, "REQ2\n");
  ASSERT_EQ(b.send(gd, r.cd, r.data.size(), big), 1500);
  const auto segs = b.sent({&cl[1].c});
  ASSERT_FALSE(segs.empty());
  EXPECT_EQ(segs[0].seg.rack, 6u) << "the ACK of REQ2 rides on its answer";
}

TEST(ApiWritable, AnswerLargerThanAConnectionsShareIsMessageTooBig) {
  Bench b(small_cache(64 * 1024, 1024));
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 7000);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_SEND_ALL, 1), 0);
  auto cl = open_clients(b, gd, 1);
  b.inject(cl[0].c, data(1, "REQ\n"));
  const auto r = b.recv(gd);
  EXPECT_EQ(b.send(gd, r.cd, r.data.size(), std::string(2000, 'x')), -EMSGSIZE);
  EXPECT_EQ(b.rt->rx_pool(b.pool)->used(), 4u) << "not acknowledged";
}

TEST(ApiWritable, RefusedConnectionsAreWokenInTheOrderOfTheirRefusals) {
  Bench b(small_cache(2048));
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 7000);
  EXPECT_EQ(b.rt->writable(gd), -EAGAIN) << "none yet; the group now reports writable connections";
  auto cl = open_clients(b, gd, 4);
  // Client 0 fills the cache with an answer it does not acknowledge yet.
  ASSERT_EQ(b.send(gd, cl[0].cd, 0, std::string(2048, 'f')), 2048);
  b.sent();
  // 3, then 1, then 2 are refused: woken in that order.
  for (const int i : {3, 1, 2}) {
    EXPECT_EQ(b.send(gd, cl[static_cast<std::size_t>(i)].cd, 0, std::string(300, 'p')), -EAGAIN);
  }
  b.rt->drive();
  EXPECT_EQ(b.rt->writable(gd), -EAGAIN) << "no room yet";
  xtcp_set r;
  XTCP_ZERO(&r);
  XTCP_SET(gd, &r);
  timeval zero{0, 0};
  EXPECT_EQ(b.rt->select(gd + 1, &r, nullptr, &zero), 0);
  // The client ACKs 1460 bytes: room for all three 300-byte answers.
  b.inject(cl[0].c, ack(1461));
  XTCP_ZERO(&r);
  XTCP_SET(gd, &r);
  EXPECT_EQ(b.rt->select(gd + 1, &r, nullptr, &zero), 1) << "writable connections make the group ready";
  EXPECT_EQ(b.rt->writable(gd), cl[3].cd);
  EXPECT_EQ(b.rt->writable(gd), cl[1].cd);
  EXPECT_EQ(b.rt->writable(gd), cl[2].cd);
  EXPECT_EQ(b.rt->writable(gd), -EAGAIN) << "once per refusal";
  XTCP_ZERO(&r);
  XTCP_SET(gd, &r);
  EXPECT_EQ(b.rt->select(gd + 1, &r, nullptr, &zero), 0);
  for (const int i : {3, 1, 2}) {
    EXPECT_EQ(b.send(gd, cl[static_cast<std::size_t>(i)].cd, 0, std::string(300, 'p')), 300);
  }
}

// The oldest refusal is served first even when a later one would fit: no starvation by
// small answers behind a large one.
TEST(ApiWritable, TheOldestRefusalGoesFirst) {
  Bench b(small_cache(2048));
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 7000);
  EXPECT_EQ(b.rt->writable(gd), -EAGAIN);
  auto cl = open_clients(b, gd, 3);
  ASSERT_EQ(b.send(gd, cl[0].cd, 0, std::string(2048, 'f')), 2048);
  b.sent();
  EXPECT_EQ(b.send(gd, cl[1].cd, 0, std::string(1000, 'L')), -EAGAIN);
  EXPECT_EQ(b.send(gd, cl[2].cd, 0, std::string(100, 's')), -EAGAIN);
  b.inject(cl[0].c, ack(257));  // 256 bytes free: enough for the small one only
  EXPECT_EQ(b.rt->writable(gd), -EAGAIN) << "the large answer was refused first";
  b.inject(cl[0].c, ack(2049));
  EXPECT_EQ(b.rt->writable(gd), cl[1].cd);
  EXPECT_EQ(b.rt->writable(gd), cl[2].cd);
}

// A connection limited by its own share of the cache (its client does not acknowledge)
// waits for its own ACKs and does not hold up the others.
TEST(ApiWritable, OwnShareWaitsForItsClientsAcks) {
  Bench b(small_cache(64 * 1024, 1024));
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 7000);
  EXPECT_EQ(b.rt->writable(gd), -EAGAIN);
  auto cl = open_clients(b, gd, 2);
  ASSERT_EQ(b.send(gd, cl[0].cd, 0, std::string(1024, 'h')), 1024);
  EXPECT_EQ(b.send(gd, cl[0].cd, 0, std::string(200, 'h')), -EAGAIN) << "its share is full";
  ASSERT_EQ(b.send(gd, cl[1].cd, 0, std::string(1000, 'o')), 1000) << "others still have room";
  b.sent();
  b.rt->drive();
  EXPECT_EQ(b.rt->writable(gd), -EAGAIN);
  b.inject(cl[0].c, ack(513));  // frees 512 of its bytes
  EXPECT_EQ(b.rt->writable(gd), cl[0].cd);
}

// A program that never asks for writable connections is not woken for them: its refused
// connection only comes back through xtcp_recv when it holds unacknowledged bytes.
TEST(ApiWritable, GroupThatNeverAsksIsNotWoken) {
  Bench b(small_cache(2048));
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 7000);
  auto cl = open_clients(b, gd, 2);
  ASSERT_EQ(b.send(gd, cl[0].cd, 0, std::string(2048, 'f')), 2048);
  b.sent();
  EXPECT_EQ(b.send(gd, cl[1].cd, 0, std::string(300, 'p')), -EAGAIN);
  b.inject(cl[0].c, ack(2049));
  xtcp_set r;
  XTCP_ZERO(&r);
  XTCP_SET(gd, &r);
  timeval zero{0, 0};
  EXPECT_EQ(b.rt->select(gd + 1, &r, nullptr, &zero), 0);
  struct xtcp_counter ctr[256];
  const int n = b.rt->counters(ctr, 256);
  std::uint64_t refused = 0, woken = 0;
  for (int i = 0; i < n; ++i) {
    if (std::string(ctr[i].name) == "api.sends_refused") {
      refused = ctr[i].value;
    } else if (std::string(ctr[i].name) == "api.writable_wakeups") {
      woken = ctr[i].value;
    }
  }
  EXPECT_EQ(refused, 1u);
  EXPECT_EQ(woken, 1u);
}

// A client that half-closes while its request waits for room (XTCP_OPT_SEND_ALL refused
// the answer): the request comes again once there is room, and only then the end.
TEST(ApiWritable, TheEndWaitsForARefusedRequest) {
  Bench b(small_cache(2048));
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 7000);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_SEND_ALL, 1), 0);
  auto cl = open_clients(b, gd, 2);
  ASSERT_EQ(b.send(gd, cl[0].cd, 0, std::string(2048, 'f')), 2048);
  b.sent();
  b.inject(cl[1].c, data(1, "REQ\n"));
  auto r = b.recv(gd);
  ASSERT_EQ(r.cd, cl[1].cd);
  EXPECT_EQ(b.send(gd, r.cd, r.data.size(), std::string(300, 'a')), -EAGAIN);
  Seg fin = data(5, "");
  fin.flags = kAck | kFin;
  b.inject(cl[1].c, fin);
  EXPECT_EQ(b.recv(gd).rc, -EAGAIN) << "not the end yet: REQ was never answered";
  b.inject(cl[0].c, ack(2049));
  r = b.recv(gd);
  ASSERT_EQ(r.cd, cl[1].cd);
  EXPECT_EQ(r.data, "REQ\n");
  ASSERT_EQ(b.send(gd, r.cd, r.data.size(), std::string(300, 'a')), 300);
  r = b.recv(gd);
  EXPECT_EQ(r.cd, cl[1].cd);
  EXPECT_EQ(r.rc, 0) << "now the end";
}

TEST(ApiUserData, ComesBackWithEveryRecvAndGoesWithTheConnection) {
  Bench b;
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 7000);
  auto cl = open_clients(b, gd, 2);
  std::uint64_t v = 1;
  ASSERT_EQ(b.rt->get_user_data(gd, cl[0].cd, &v), 0);
  EXPECT_EQ(v, 0u) << "0 until set";
  ASSERT_EQ(b.rt->set_user_data(gd, cl[0].cd, 0x1111), 0);
  ASSERT_EQ(b.rt->set_user_data(gd, cl[1].cd, 0x2222), 0);
  EXPECT_EQ(b.rt->get_user_data(gd, cl[0].cd, nullptr), -EINVAL);
  b.inject(cl[1].c, data(1, "B\n"));
  b.inject(cl[0].c, data(1, "A\n"));
  char buf[16];
  for (int i = 0; i < 2; ++i) {
    int cd = 0;
    std::uint64_t user = 0;
    ASSERT_EQ(b.rt->recv(0, gd, &cd, buf, sizeof buf, &user), 2);
    EXPECT_EQ(user, cd == cl[0].cd ? 0x1111u : 0x2222u);
    EXPECT_EQ(buf[0], cd == cl[0].cd ? 'A' : 'B');
  }
  // A reset connection still reports its user data with its end.
  Seg rst;
  rst.flags = kRst;
  rst.seq = 3;
  b.inject(cl[0].c, rst);
  int cd = 0;
  std::uint64_t user = 0;
  EXPECT_EQ(b.rt->recv(0, gd, &cd, buf, sizeof buf, &user), -ECONNRESET);
  EXPECT_EQ(cd, cl[0].cd);
  EXPECT_EQ(user, 0x1111u);
  ASSERT_EQ(b.rt->close(0, gd, cd), 0);
  EXPECT_EQ(b.rt->set_user_data(gd, cl[0].cd, 1), -EBADF);
  EXPECT_EQ(b.rt->get_user_data(gd, cl[0].cd, &v), -EBADF);
  // The slot's next connection starts at 0.
  Opened again;
  again.c.port = 43000;
  again.cd = b.open(again.c, gd);
  ASSERT_EQ(b.rt->get_user_data(gd, again.cd, &v), 0);
  EXPECT_EQ(v, 0u);
}

}  // namespace
}  // namespace xtcp::test::api_bench
