// The semantics the XTCP API promises (issue 3), each checked in virtual time on a scripted
// link: round-robin recv, the ackd rules, accept timeout, throttling, ACK modes, framing,
// group descriptors, several pools, and misuse answered with errors.
#include <gtest/gtest.h>
#include <poll.h>

#include <map>
#include <string>

#include "tests/api/api_test_util.h"

namespace xtcp::test::api_bench {
namespace {

int open_group(Bench& b, std::uint16_t port = 7000, int pool = 0) {
  const int gd = b.rt->open_group(pool != 0 ? pool : b.pool, PF_INET, SOCK_STREAM, 0, port);
  EXPECT_GT(gd, 0);
  return gd;
}

bool fd_readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

Client client(std::uint16_t port, std::uint32_t addr = 0xC6120001) {
  Client c;
  c.port = port;
  c.addr = addr;
  return c;
}

// recv is non-blocking and serves connections with data in turn: a connection that always
// has more (a flood) cannot starve a quiet one, and is itself served every round.
TEST(ApiSemantics, RecvIsRoundRobinAndNeverStarves) {
  Bench b;
  const int gd = open_group(b);
  EXPECT_EQ(b.recv(gd).rc, -EAGAIN);
  Client flood = client(40001);
  Client quiet = client(40002);
  const int fcd = b.open(flood, gd);
  const int qcd = b.open(quiet, gd);
  std::uint32_t fseq = 1;
  int quiet_served_at = -1;
  for (int round = 0; round < 20; ++round) {
    // The flooder sends before and after every recv; the quiet one once, in round 5.
    b.inject(flood, data(fseq, std::string(100, 'f')));
    fseq += 100;
    if (round == 5) {
      b.inject(quiet, data(1, "hello"));
    }
    b.inject(flood, data(fseq, std::string(100, 'f')));
    fseq += 100;
    const auto r = b.recv(gd);
    ASSERT_GT(r.rc, 0);
    if (r.cd == qcd) {
      EXPECT_EQ(r.data, "hello");
      quiet_served_at = round;
      ASSERT_EQ(b.send(gd, qcd, 5, "hi"), 2);
      // The flooder, which had data all along, comes next.
      const auto f = b.recv(gd);
      ASSERT_EQ(f.cd, fcd);
      ASSERT_EQ(b.send(gd, fcd, f.data.size(), ""), 0);
    } else {
      ASSERT_EQ(r.cd, fcd);
      ASSERT_EQ(b.send(gd, fcd, r.data.size(), ""), 0);
    }
    b.sent();
  }
  // Round 5 had the flooder's bytes queued before the quiet request: the quiet connection is
  // served right after them, in the next turn.
  EXPECT_EQ(quiet_served_at, 6);
}

// Three busy connections are served strictly in turn.
TEST(ApiSemantics, RecvServesBusyConnectionsInTurn) {
  Bench b;
  const int gd = open_group(b);
  Client cs[3] = {client(41000), client(41001), client(41002)};
  int cds[3];
  std::uint32_t seq[3] = {1, 1, 1};
  for (int i = 0; i < 3; ++i) {
    cds[i] = b.open(cs[i], gd);
  }
  std::vector<int> order;
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 3; ++i) {
      b.inject(cs[i], data(seq[i], "abcd"));
      seq[i] += 4;
    }
    for (int k = 0; k < 3; ++k) {
      const auto r = b.recv(gd);
      ASSERT_GT(r.rc, 0);
      order.push_back(r.cd);
      ASSERT_EQ(b.send(gd, r.cd, r.data.size(), ""), 0);
    }
    EXPECT_EQ(b.recv(gd).rc, -EAGAIN);
  }
  for (std::size_t i = 0; i < order.size(); ++i) {
    EXPECT_EQ(order[i], cds[i % 3]) << "position " << i;
  }
}

// Unacknowledged bytes are not offered again until something changes (no spinning), then
// come first; received bytes live in the pool until acknowledged.
TEST(ApiSemantics, UnacknowledgedBytesStayInThePoolAndComeFirst) {
  Bench b;
  const int gd = open_group(b);
  Client c = client(40000);
  const int cd = b.open(c, gd);
  b.inject(c, data(1, "PART"));
  EXPECT_EQ(b.recv(gd).data, "PART");
  EXPECT_EQ(b.recv(gd).rc, -EAGAIN) << "nothing new: not offered again";
  EXPECT_EQ(b.rt->rx_pool(b.pool)->used(), 4u);
  ASSERT_EQ(b.send(gd, cd, 0, ""), 0);  // acknowledges nothing
  EXPECT_EQ(b.recv(gd).rc, -EAGAIN);
  b.expect_silence();
  b.inject(c, data(5, "IAL\n"));
  const auto r = b.recv(gd);
  EXPECT_EQ(r.data, "PARTIAL\n") << "the unacknowledged part first, then the new bytes";
  EXPECT_EQ(b.rt->rx_pool(b.pool)->used(), 8u);
  ASSERT_EQ(b.send(gd, cd, 8, "OK\n"), 3);
  EXPECT_EQ(b.rt->rx_pool(b.pool)->used(), 0u);
  EXPECT_SEGMENT(b.sent_one(c), Match().rack(9).payload(bytes_of("OK\n")));
}

// A small buffer: recv gives what fits; acknowledging it offers the rest.
TEST(ApiSemantics, SmallBufferDeliversInPieces) {
  Bench b;
  const int gd = open_group(b);
  Client c = client(40000);
  const int cd = b.open(c, gd);
  b.inject(c, data(1, "0123456789"));
  auto r = b.recv(gd, 4);
  EXPECT_EQ(r.data, "0123");
  EXPECT_EQ(b.recv(gd, 4).rc, -EAGAIN);
  ASSERT_EQ(b.send(gd, cd, 4, ""), 0);
  EXPECT_EQ(b.recv(gd, 4).data, "4567");
  ASSERT_EQ(b.send(gd, cd, 2, ""), 0);
  EXPECT_EQ(b.recv(gd, 100).data, "6789");
}

// The end of a connection: data first, then 0 once; then only xtcp_close is left.
TEST(ApiSemantics, OrderlyEndAfterData) {
  Bench b;
  const int gd = open_group(b);
  Client c = client(40000);
  const int cd = b.open(c, gd);
  Seg s = data(1, "BYE");
  s.flags |= kFin;
  b.inject(c, s);
  b.expect_silence() ;  // XTCP: the FIN behind held data waits for the application too
  auto r = b.recv(gd);
  EXPECT_EQ(r.data, "BYE");
  ASSERT_EQ(b.send(gd, cd, 3, "CIAO"), 4);
  EXPECT_SEGMENT(b.sent_one(c), Match().rack(5).payload(bytes_of("CIAO")));
  r = b.recv(gd);
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.cd, cd);
  EXPECT_EQ(b.recv(gd).rc, -EAGAIN);
  EXPECT_EQ(b.rt->close(0, gd, cd), 0);
  EXPECT_SEGMENT(b.sent_one(c), Match().flags(kFin | kAck).rseq(5).rack(5));
}

// A client that sent an unterminated tail and then its FIN is closed in order: its bytes
// and FIN are ACKed, no RST (which would also destroy answers still in flight).
TEST(ApiSemantics, CloseAfterClientEndWithUnacknowledgedTail) {
  Bench b;
  const int gd = open_group(b);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_FRAMING, XTCP_FRAME_DELIMITER), 0);
  Client c = client(40000);
  const int cd = b.open(c, gd);
  Seg s = data(1, "ok\npartial");
  s.flags |= kFin;
  b.inject(c, s);
  auto r = b.recv(gd);
  ASSERT_EQ(r.data, "ok\n");
  ASSERT_EQ(b.send(gd, cd, 3, "fine\n"), 5);
  EXPECT_SEGMENT(b.sent_one(c), Match().rack(4).payload(bytes_of("fine\n")));
  r = b.recv(gd);
  EXPECT_EQ(r.rc, 0) << "the end; the tail never became a message";
  ASSERT_EQ(b.rt->close(0, gd, cd), 0);
  bool fin = false;
  for (const auto& o : b.sent({&c})) {
    EXPECT_FALSE(o.seg.has(kRst)) << o.seg.describe();
    EXPECT_EQ(o.seg.rack, 12u) << "tail and FIN acknowledged";
    fin = fin || o.seg.has(kFin);
  }
  EXPECT_TRUE(fin);
  EXPECT_EQ(b.rt->rx_pool(b.pool)->used(), 0u);
}

// Closing while the client still sends and we hold its bytes unprocessed: RST.
TEST(ApiSemantics, CloseWithUnprocessedBytesResets) {
  Bench b;
  const int gd = open_group(b);
  Client c = client(40000);
  const int cd = b.open(c, gd);
  b.inject(c, data(1, "unprocessed"));
  ASSERT_EQ(b.rt->close(0, gd, cd), 0);
  EXPECT_TRUE(b.sent_one(c).has(kRst));
  EXPECT_EQ(b.rt->rx_pool(b.pool)->used(), 0u);
}

TEST(ApiSemantics, ResetIsReported) {
  Bench b;
  const int gd = open_group(b);
  Client c = client(40000);
  const int cd = b.open(c, gd);
  b.inject(c, data(1, "REQ"));
  Seg rst;
  rst.flags = kRst;
  rst.seq = 4;
  b.inject(c, rst);
  const auto r = b.recv(gd);
  EXPECT_EQ(r.rc, -ECONNRESET) << "reported before the data it still had";
  EXPECT_EQ(r.cd, cd);
  EXPECT_EQ(b.send(gd, cd, 0, "x"), -ECONNRESET);
  EXPECT_EQ(b.rt->close(0, gd, cd), 0);
  EXPECT_EQ(b.rt->rx_pool(b.pool)->used(), 0u);
  b.expect_silence();
}

// A connection not accepted in time is refused with a RST.
TEST(ApiSemantics, AcceptTimeoutRefusesTheConnection) {
  Bench b;
  const int gd = open_group(b);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_ACCEPT_TIMEOUT_MS, 1000), 0);
  Client late = client(40000);
  Client early = client(40001);
  b.handshake(late);
  b.advance(ms(500));
  b.handshake(early);
  b.advance(ms(499));
  b.expect_silence();
  b.advance(ms(2));  // late's second is up
  const Sent rst = b.sent_one(late);
  EXPECT_TRUE(rst.has(kRst)) << rst.describe();
  struct xtcp_pool_stats st{};
  ASSERT_EQ(b.rt->pool_stats(b.pool, &st), 0);
  EXPECT_EQ(st.accept_timeouts, 1u);
  const int cd = b.rt->accept(0, gd);
  ASSERT_GT(cd, 0) << "the one still in time is accepted";
  sockaddr_in sa{};
  ASSERT_EQ(b.rt->pars(gd, cd, &sa), 0);
  EXPECT_EQ(ntohs(sa.sin_port), early.port);
  EXPECT_EQ(ntohl(sa.sin_addr.s_addr), early.addr);
  EXPECT_EQ(sa.sin_family, AF_INET);
  EXPECT_EQ(b.rt->accept(0, gd), -EAGAIN);
  b.advance(seconds(10));
  b.expect_silence();
}

// XTCP_ACK_AUTO: the classic listener for protocols that are not request/answer.
TEST(ApiSemantics, AutoAckModeAcksWithoutTheApplication) {
  Bench b;
  const int gd = open_group(b);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_ACK_MODE, XTCP_ACK_AUTO), 0);
  std::int64_t v = -1;
  ASSERT_EQ(b.rt->getopt(gd, XTCP_OPT_ACK_MODE, &v), 0);
  EXPECT_EQ(v, XTCP_ACK_AUTO);
  Client c = client(40000);
  const int cd = b.open(c, gd);
  b.inject(c, data(1, "STREAM"));
  b.advance(ms(50));  // the delayed ACK
  EXPECT_SEGMENT(b.sent_one(c), Match().flags(kAck).rack(7).len(0));
  EXPECT_EQ(b.recv(gd).data, "STREAM");
  ASSERT_EQ(b.send(gd, cd, 6, ""), 0);  // still frees the pool
  EXPECT_EQ(b.rt->rx_pool(b.pool)->used(), 0u);
}

// Throttling: a flooding connection the application does not keep up with is cut off below
// low water (its payload dropped and counted) while the ACK field of its segments is still
// processed; an idle client's request still gets in; windows never promise more.
// A flooder that sends everything its window allows and is never read: every in-window
// byte is kept (the window is a share the pool can honour), its window closes while the
// pool still has its reserve, a segment beyond the window still has its ACK field
// processed, and an idle client's request fits in the reserve.
TEST(ApiSemantics, ThrottlingKeepsInWindowDataAndProcessesAcks) {
  api::RuntimeConfig cfg = default_config();
  cfg.conn_window = 62 * 1024;  // more than the pool minus its 4 KiB reserve
  Bench b(cfg, 64 * 1024);
  const int gd = open_group(b);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_ACK_MODE, XTCP_ACK_AUTO), 0);  // windows move with ACKs
  Client flood = client(40001);
  Client idle = client(40002);
  const int fcd = b.open(flood, gd);
  b.open(idle, gd);
  // A push to the flooder (nothing acknowledged), so its ACK can free the transmit cache.
  ASSERT_EQ(b.send(gd, fcd, 0, "PUSH"), 4);
  b.sent();
  ConnInfo ci{};
  ASSERT_EQ(b.rt->stack().tcp().info(b.rt->engine_conn(gd, fcd), &ci), 0);
  std::uint32_t edge = 1 + ci.rcv_wnd;  // the right edge advertised so far (relative)
  std::uint32_t seq = 1;
  for (int round = 0; round < 200 && seq < edge + 1; ++round) {
    while (seq < edge) {
      const std::uint32_t n = std::min<std::uint32_t>(1400, edge - seq);
      b.queue(flood, data(seq, std::string(n, 'x')));
      seq += n;
    }
    b.rt->drive();
    b.advance(ms(300));  // delayed ACKs
    for (const auto& o : b.sent({&flood})) {
      edge = std::max(edge, o.seg.rack + o.seg.window);
    }
    if (seq == edge) {
      break;  // the window closed
    }
  }
  const SharedRxPool* pool = b.rt->rx_pool(b.pool);
  struct xtcp_pool_stats st{};
  ASSERT_EQ(b.rt->pool_stats(b.pool, &st), 0);
  EXPECT_EQ(seq, edge) << "the flooder's window closed";
  EXPECT_EQ(st.rx_dropped_full, 0u) << "no byte inside a window was refused";
  EXPECT_EQ(b.rt->stack().tcp().stats().rx_store_full, 0u);
  EXPECT_EQ(st.rx_buffer_used, seq - 1) << "every byte sent inside the window is kept";
  EXPECT_LE(edge - 1, 62u * 1024) << "never more than one connection's window";
  EXPECT_GE(pool->free_bytes() + 256, pool->reserve()) << "the reserve is still free";
  const std::uint64_t held = st.rx_buffer_used;
  EXPECT_EQ(b.rt->tx_cache().used(), 4u);
  // Payload beyond the closed window: not stored, yet its ACK of the push is processed.
  b.inject(flood, data(seq, std::string(1400, 'y'), 5));
  EXPECT_EQ(b.rt->tx_cache().used(), 0u) << "the ACK field freed the transmit cache";
  ASSERT_EQ(b.rt->pool_stats(b.pool, &st), 0);
  EXPECT_EQ(st.rx_buffer_used, held) << "the payload beyond the window was not stored";
  // The idle client's request fits in the reserve.
  b.inject(idle, data(1, "LOGIN bob\n"));
  int got_idle = 0;
  for (int i = 0; i < 3; ++i) {
    const auto r = b.recv(gd, 128 * 1024);
    if (r.rc > 0 && r.data == "LOGIN bob\n") {
      ++got_idle;
    }
  }
  EXPECT_EQ(got_idle, 1);
}

// A burst from more clients than the pool has chunks: each drive reads only as many packets
// as the pool has room for (about half a free chunk per packet), the rest wait in the device
// queue, and every request is stored and answered: none is dropped at a full pool.
TEST(ApiSemantics, BurstLargerThanThePoolWaitsInTheDeviceInsteadOfBeingDropped) {
  Bench b(default_config(), 32 * 1024);  // 128 chunks of 256 bytes
  const int gd = open_group(b);
  constexpr int kClients = 300;
  std::vector<Client> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(client(static_cast<std::uint16_t>(20000 + i)));
    b.open(clients.back(), gd);
  }
  b.sent();
  for (const Client& c : clients) {
    b.queue(c, data(1, "REQ " + std::to_string(c.port) + "\n"));
  }
  EXPECT_EQ(b.rt->input_rounds(), 1);
  EXPECT_EQ(b.rt->drive(), 64) << "one batch for a pool of 128 free chunks";
  int answered = 0;
  for (int round = 0; round < 50 && answered < kClients; ++round) {
    for (;;) {
      const auto r = b.recv(gd);
      if (r.rc <= 0) {
        break;
      }
      ASSERT_EQ(b.send(gd, r.cd, r.data.size(), "ANS\n"), 4);
      ++answered;
    }
    b.rt->drive();
  }
  EXPECT_EQ(answered, kClients);
  struct xtcp_pool_stats st{};
  ASSERT_EQ(b.rt->pool_stats(b.pool, &st), 0);
  EXPECT_EQ(st.rx_dropped_full, 0u);
  EXPECT_EQ(b.rt->input_rounds(), 1);
  api::RuntimeConfig big = default_config();
  Bench roomy(big, 1u << 20);  // 4096 chunks: the full 16 batches
  EXPECT_EQ(roomy.rt->input_rounds(), api::Runtime::kMaxInputRounds);
}

TEST(ApiSemantics, FramingU16ReturnsWholeMessages) {
  Bench b;
  const int gd = open_group(b);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_FRAMING, XTCP_FRAME_U16BE), 0);
  Client c = client(40000);
  const int cd = b.open(c, gd);
  b.inject(c, data(1, std::string("\0\3abc\0\2d", 8)));
  auto r = b.recv(gd);
  EXPECT_EQ(r.data, std::string("\0\3abc", 5)) << "only the whole message";
  EXPECT_EQ(b.send(gd, cd, 3, ""), -EINVAL) << "ackd must end on a message boundary";
  ASSERT_EQ(b.send(gd, cd, 5, "A"), 1);
  EXPECT_EQ(b.recv(gd).rc, -EAGAIN) << "the partial message is not offered";
  b.inject(c, data(9, std::string("e\0\1f", 4)));
  r = b.recv(gd);
  EXPECT_EQ(r.data, std::string("\0\2de\0\1f", 7)) << "every whole message that fits";
  r = b.recv(gd);
  EXPECT_EQ(r.rc, -EAGAIN);
  ASSERT_EQ(b.send(gd, cd, 4, ""), 0);  // the first of the two
  r = b.recv(gd, 2);
  EXPECT_EQ(r.rc, -EMSGSIZE) << "the next message (3 bytes) does not fit 2";
  EXPECT_EQ(r.cd, cd);
  r = b.recv(gd, 3);
  EXPECT_EQ(r.data, std::string("\0\1f", 3));
}

TEST(ApiSemantics, FramingU32AndOversizeMessageResets) {
  Bench b;
  const int gd = open_group(b);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_FRAMING, XTCP_FRAME_U32BE), 0);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_MAX_MESSAGE, 100), 0);
  Client c = client(40000);
  const int cd = b.open(c, gd);
  b.inject(c, data(1, std::string("\0\0\0\2hi", 6)));
  EXPECT_EQ(b.recv(gd).data, std::string("\0\0\0\2hi", 6));
  ASSERT_EQ(b.send(gd, cd, 6, ""), 0);
  b.sent();
  b.inject(c, data(7, std::string("\0\0\1\0", 4)));  // announces 256 bytes > 100
  const Sent rst = b.sent_one(c);
  EXPECT_TRUE(rst.has(kRst)) << rst.describe();
  const auto r = b.recv(gd);
  EXPECT_EQ(r.rc, -EPROTO);
  EXPECT_EQ(r.cd, cd);
  EXPECT_EQ(b.rt->close(0, gd, cd), 0);
}

TEST(ApiSemantics, FramingDelimiter) {
  Bench b;
  const int gd = open_group(b);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_FRAMING, XTCP_FRAME_DELIMITER), 0);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_DELIMITER, ';'), 0);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_MAX_MESSAGE, 8), 0);
  Client c = client(40000);
  const int cd = b.open(c, gd);
  b.inject(c, data(1, "ab;cd;ef"));
  auto r = b.recv(gd, 4);
  EXPECT_EQ(r.data, "ab;") << "whole messages that fit 4 bytes";
  ASSERT_EQ(b.send(gd, cd, 3, ""), 0);
  r = b.recv(gd);
  EXPECT_EQ(r.data, "cd;");
  ASSERT_EQ(b.send(gd, cd, 3, ""), 0);
  b.sent();
  b.inject(c, data(9, "ghijklm"));  // "efghijklm": 9 bytes without ';' > 8
  EXPECT_TRUE(b.sent_one(c).has(kRst));
  EXPECT_EQ(b.recv(gd).rc, -EPROTO);
}

// The group's one descriptor: readable while it has data or pending accepts, drained after.
TEST(ApiSemantics, GroupFdFollowsReadiness) {
  Bench b;
  const int gd = open_group(b);
  const int fd = b.rt->group_fd(gd);
  ASSERT_GE(fd, 0);
  EXPECT_FALSE(fd_readable(fd));
  Client c = client(40000);
  b.handshake(c);
  EXPECT_TRUE(fd_readable(fd)) << "a pending accept";
  const int cd = b.rt->accept(0, gd);
  ASSERT_GT(cd, 0);
  EXPECT_FALSE(fd_readable(fd));
  b.inject(c, data(1, "REQ"));
  EXPECT_TRUE(fd_readable(fd)) << "data";
  EXPECT_TRUE(fd_readable(fd)) << "level-triggered until drained";
  ASSERT_EQ(b.recv(gd).rc, 3);
  EXPECT_FALSE(fd_readable(fd)) << "the counter is reset once drained";
  ASSERT_EQ(b.send(gd, cd, 3, "ANS"), 3);
  EXPECT_FALSE(fd_readable(fd));
}

// xtcp_select on links without a descriptor drives once; the sets keep the ready groups.
TEST(ApiSemantics, SelectReportsReadyGroups) {
  Bench b;
  const int g1 = open_group(b, 7000);
  const int g2 = open_group(b, 7001);
  Client c = client(40000);
  c.server_port = 7001;
  b.handshake(c);
  xtcp_set r;
  xtcp_set a;
  XTCP_ZERO(&r);
  XTCP_ZERO(&a);
  XTCP_SET(g1, &r);
  XTCP_SET(g2, &r);
  XTCP_SET(g1, &a);
  XTCP_SET(g2, &a);
  timeval tv{0, 0};
  EXPECT_EQ(b.rt->select(g2 + 1, &r, &a, &tv), 1);
  EXPECT_FALSE(XTCP_ISSET(g1, &r));
  EXPECT_FALSE(XTCP_ISSET(g2, &r));
  EXPECT_FALSE(XTCP_ISSET(g1, &a));
  EXPECT_TRUE(XTCP_ISSET(g2, &a));
  const int cd = b.rt->accept(0, g2);
  ASSERT_GT(cd, 0);
  b.queue(c, data(1, "x"));  // processed by select's drive
  XTCP_ZERO(&r);
  XTCP_ZERO(&a);
  XTCP_SET(g1, &r);
  XTCP_SET(g2, &r);
  EXPECT_EQ(b.rt->select(g2 + 1, &r, &a, &tv), 1);
  EXPECT_TRUE(XTCP_ISSET(g2, &r));
  ASSERT_EQ(b.recv(g2).rc, 1);
  XTCP_SET(g1, &r);
  XTCP_SET(g2, &r);
  EXPECT_EQ(b.rt->select(g2 + 1, &r, nullptr, &tv), 0) << "timeout";
  EXPECT_FALSE(XTCP_ISSET(g2, &r));
  XTCP_SET(g2 + 5, &r);
  EXPECT_EQ(b.rt->select(g2 + 6, &r, nullptr, &tv), -EBADF) << "an unknown group in a set";
  EXPECT_EQ(b.rt->select(-1, nullptr, nullptr, &tv), -EINVAL);
  EXPECT_EQ(b.rt->select(XTCP_SETSIZE + 1, nullptr, nullptr, &tv), -EINVAL);
  timeval bad{0, 2'000'000};
  EXPECT_EQ(b.rt->select(1, nullptr, nullptr, &bad), -EINVAL);
}

// Several pools: each group's connections keep their bytes in their own pool's buffer.
TEST(ApiSemantics, PoolsKeepTheirOwnBuffers) {
  Bench b;
  const int p2 = b.rt->pool_create(64 * 1024);
  ASSERT_GT(p2, 0);
  ASSERT_NE(p2, b.pool);
  const int g1 = open_group(b, 7000);
  const int g2 = open_group(b, 7001, p2);
  Client c1 = client(40000);
  Client c2 = client(40001);
  c2.server_port = 7001;
  const int cd1 = b.open(c1, g1);
  const int cd2 = b.open(c2, g2);
  b.inject(c1, data(1, "one"));
  b.inject(c2, data(1, "second"));
  EXPECT_EQ(b.rt->rx_pool(b.pool)->used(), 3u);
  EXPECT_EQ(b.rt->rx_pool(p2)->used(), 6u);
  struct xtcp_pool_stats s2{};
  ASSERT_EQ(b.rt->pool_stats(p2, &s2), 0);
  EXPECT_EQ(s2.groups, 1u);
  EXPECT_EQ(s2.connections, 1u);
  EXPECT_EQ(s2.rx_buffer_size, 64u * 1024);
  // Per-pool calls check that the group belongs to the pool.
  int cd = 0;
  char buf[16];
  EXPECT_EQ(b.rt->recv(b.pool, g2, &cd, buf, sizeof buf), -EBADF);
  EXPECT_EQ(b.rt->recv(p2, g2, &cd, buf, sizeof buf), 6);
  EXPECT_EQ(cd, cd2);
  EXPECT_EQ(b.rt->send(b.pool, g2, cd2, 6, "", 0), -EBADF);
  EXPECT_EQ(b.rt->send(p2, g2, cd2, 6, "", 0), 0);
  EXPECT_EQ(b.rt->rx_pool(p2)->used(), 0u);
  // Destroying a pool resets its connections and closes its groups.
  b.sent();
  EXPECT_EQ(b.rt->pool_destroy(p2), 0);
  EXPECT_TRUE(b.sent_one(c2).has(kRst));
  EXPECT_EQ(b.rt->recv(0, g2, &cd, buf, sizeof buf), -EBADF);
  EXPECT_EQ(b.recv(g1).data, "one");
  EXPECT_EQ(b.send(g1, cd1, 3, "1"), 1);
}

// Misuse is answered with an error, never a crash.
TEST(ApiSemantics, MisuseIsAnError) {
  Bench b;
  const int gd = open_group(b);
  const int other = open_group(b, 7001);
  Client c = client(40000);
  const int cd = b.open(c, gd);
  char buf[8];
  int out = 0;
  EXPECT_EQ(b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 7000), -EADDRINUSE);
  EXPECT_EQ(b.rt->open_group(b.pool, PF_INET6, SOCK_STREAM, 0, 7002), -EAFNOSUPPORT);
  EXPECT_EQ(b.rt->open_group(b.pool, PF_INET, SOCK_DGRAM, 0, 7002), -EPROTONOSUPPORT);
  EXPECT_EQ(b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 17, 7002), -EPROTONOSUPPORT);
  EXPECT_EQ(b.rt->open_group(9999, PF_INET, SOCK_STREAM, 0, 7002), -EINVAL);
  EXPECT_EQ(b.rt->recv(0, 999, &out, buf, sizeof buf), -EBADF);
  EXPECT_EQ(b.rt->recv(0, -1, &out, buf, sizeof buf), -EBADF);
  EXPECT_EQ(b.rt->recv(0, gd, nullptr, buf, sizeof buf), -EINVAL);
  EXPECT_EQ(b.rt->recv(0, gd, &out, nullptr, sizeof buf), -EINVAL);
  EXPECT_EQ(b.rt->recv(0, gd, &out, buf, 0), -EINVAL);
  EXPECT_EQ(b.rt->send(0, gd, cd, 0, nullptr, 5), -EINVAL);
  EXPECT_EQ(b.rt->send(0, gd, cd, 1, "x", 1), -EINVAL) << "nothing delivered yet";
  EXPECT_EQ(b.rt->send(0, other, cd, 0, "x", 1), -EBADF) << "cd of another group";
  EXPECT_EQ(b.rt->send(0, gd, cd + 1, 0, "x", 1), -EBADF);
  EXPECT_EQ(b.rt->send(0, gd, 0, 0, "x", 1), -EBADF);
  EXPECT_EQ(b.rt->send(0, gd, -7, 0, "x", 1), -EBADF);
  EXPECT_EQ(b.rt->pars(gd, cd, nullptr), -EINVAL);
  EXPECT_EQ(b.rt->pars(other, cd, nullptr), -EBADF);
  EXPECT_EQ(b.rt->close(0, other, cd), -EBADF);
  EXPECT_EQ(b.rt->accept(0, 0), -EBADF);
  EXPECT_EQ(b.rt->accept(0, gd), -EAGAIN);
  EXPECT_EQ(b.rt->setopt(gd, 999, 1), -EINVAL);
  EXPECT_EQ(b.rt->setopt(gd, XTCP_OPT_FRAMING, 9), -EINVAL);
  EXPECT_EQ(b.rt->setopt(gd, XTCP_OPT_MAX_MESSAGE, 0), -EINVAL);
  EXPECT_EQ(b.rt->setopt(999, XTCP_OPT_FRAMING, 0), -EBADF);
  EXPECT_EQ(b.rt->getopt(gd, XTCP_OPT_FRAMING, nullptr), -EINVAL);
  EXPECT_EQ(b.rt->connect(gd, nullptr), -EINVAL);
  EXPECT_EQ(b.rt->group_fd(12345), -EBADF);
  EXPECT_EQ(b.rt->pool_stats(b.pool, nullptr), -EINVAL);
  EXPECT_EQ(b.rt->pool_destroy(4242), -EINVAL);
  EXPECT_EQ(b.rt->close(0, gd, cd), 0);
  EXPECT_EQ(b.rt->close(0, gd, cd), -EBADF) << "double close";
  EXPECT_EQ(b.rt->send(0, gd, cd, 0, "x", 1), -EBADF) << "closed cd";
  EXPECT_EQ(b.rt->close_group(gd), 0);
  EXPECT_EQ(b.rt->close_group(gd), -EBADF) << "double close of a group";
  EXPECT_EQ(b.rt->recv(0, gd, &out, buf, sizeof buf), -EBADF);
  EXPECT_EQ(b.rt->accept(0, gd), -EBADF);
}

// A stale descriptor never reaches the connection that reuses its slot.
TEST(ApiSemantics, StaleDescriptorDoesNotReachANewConnection) {
  Bench b;
  const int gd = open_group(b);
  Client c1 = client(40000);
  const int cd1 = b.open(c1, gd);
  ASSERT_EQ(b.rt->close(0, gd, cd1), 0);
  b.sent();
  Client c2 = client(40001);
  const int cd2 = b.open(c2, gd);
  EXPECT_NE(cd1, cd2);
  EXPECT_EQ(b.rt->send(0, gd, cd1, 0, "x", 1), -EBADF);
  EXPECT_EQ(b.rt->close(0, gd, cd1), -EBADF);
  EXPECT_EQ(b.send(gd, cd2, 0, "y"), 1);
}

// Closing a group resets its connections and frees its port.
TEST(ApiSemantics, CloseGroupResetsConnections) {
  Bench b;
  const int gd = open_group(b);
  Client c = client(40000);
  b.open(c, gd);
  Client pending = client(40001);
  b.handshake(pending);
  ASSERT_EQ(b.rt->close_group(gd), 0);
  int rsts = 0;
  for (const auto& o : b.sent()) {
    rsts += o.seg.has(kRst) ? 1 : 0;
  }
  EXPECT_EQ(rsts, 2);
  EXPECT_EQ(b.rt->open_connections(), 0u);
  EXPECT_GT(open_group(b), 0) << "the port is free again";
}

}  // namespace
}  // namespace xtcp::test::api_bench
