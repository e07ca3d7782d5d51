// The calls a proxy needs, in virtual time against a scripted peer: half-close
// (xtcp_shutdown: FIN while still receiving, and sending in CLOSE-WAIT after the peer's
// FIN), reset (xtcp_abort), the outcome of an active open (writable once established,
// -ECONNREFUSED on the peer's RST), a per-group limit on cached bytes (XTCP_OPT_TX_LIMIT),
// and bytes offered again on request (xtcp_redeliver).
#include <netinet/in.h>
#include <sys/socket.h>

#include <string>

#include "tests/api/api_test_util.h"

namespace xtcp::test::api_bench {
namespace {

int state_of(Bench& b, int gd, int cd) {
  xtcp_conn_info info{};
  EXPECT_EQ(b.rt->conn_info(gd, cd, &info), 0);
  return info.state;
}

Seg fin(std::uint32_t rel_seq, std::uint32_t rel_ack) {
  Seg s;
  s.flags = kFin | kAck;
  s.seq = rel_seq;
  s.ack = rel_ack;
  s.window = 65535;
  return s;
}

// RFC 9293 3.10.4 CLOSE in ESTABLISHED: the FIN follows the queued data (FIN-WAIT-1), and
// the connection goes on receiving until the peer's own FIN.
TEST(ApiHalfClose, ShutdownSendsFinAndKeepsReceiving) {
  Bench b;
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 7000);
  Client c;
  const int cd = b.open(c, gd);
  ASSERT_EQ(b.send(gd, cd, 0, "hello"), 5);
  EXPECT_EQ(str(b.sent_one(c).payload), "hello");
  EXPECT_EQ(b.rt->shutdown(gd, cd, SHUT_RD), -EINVAL);
  ASSERT_EQ(b.rt->shutdown(gd, cd, SHUT_WR), 0);
  const Sent f = b.sent_one(c);
  EXPECT_NE(f.flags & kFin, 0) << f.describe();
  EXPECT_EQ(f.rseq, 6u) << "the FIN comes after the 5 bytes";
  EXPECT_EQ(state_of(b, gd, cd), XTCP_STATE_FIN_WAIT_1);
  EXPECT_EQ(b.send(gd, cd, 0, "more"), -EPIPE) << "nothing may follow the FIN";
  b.inject(c, ack(7));
  EXPECT_EQ(state_of(b, gd, cd), XTCP_STATE_FIN_WAIT_2);

  // The peer still talks: its bytes are delivered and acknowledged as usual.
  b.inject(c, data(1, "request", 7));
  auto r = b.recv(gd);
  EXPECT_EQ(r.cd, cd);
  EXPECT_EQ(r.data, "request");
  ASSERT_EQ(b.send(gd, cd, 7, ""), 0);
  const Sent a = b.sent_one(c);
  EXPECT_EQ(a.rack, 8u) << a.describe();
  b.inject(c, fin(8, 7));
  r = b.recv(gd);
  EXPECT_EQ(r.rc, 0) << "the peer's orderly end";
  EXPECT_EQ(r.cd, cd);
  EXPECT_EQ(b.rt->close(0, gd, cd), 0);
  EXPECT_EQ(b.rt->open_connections(), 0u);
}

// RFC 9293 3.10.4 CLOSE in CLOSE-WAIT: after the peer's FIN (xtcp_recv returned 0) the
// connection still sends; xtcp_shutdown then sends the last FIN (LAST-ACK).
TEST(ApiHalfClose, SendingGoesOnAfterThePeersFin) {
  Bench b;
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 7000);
  Client c;
  const int cd = b.open(c, gd);
  b.inject(c, data(1, "q"));
  b.inject(c, fin(2, 1));
  auto r = b.recv(gd);
  EXPECT_EQ(r.data, "q");
  ASSERT_EQ(b.send(gd, cd, 1, ""), 0);
  r = b.recv(gd);
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.cd, cd);
  EXPECT_EQ(state_of(b, gd, cd), XTCP_STATE_CLOSE_WAIT);
  b.sent({&c});
  ASSERT_EQ(b.send(gd, cd, 0, "late answer"), 11);
  const Sent ans = b.sent_one(c);
  EXPECT_EQ(str(ans.payload), "late answer");
  ASSERT_EQ(b.rt->shutdown(gd, cd, SHUT_WR), 0);
  const Sent f = b.sent_one(c);
  EXPECT_NE(f.flags & kFin, 0) << f.describe();
  EXPECT_EQ(f.rseq, 12u);
  EXPECT_EQ(state_of(b, gd, cd), XTCP_STATE_LAST_ACK);
  b.inject(c, ack(13, 3));
  EXPECT_EQ(state_of(b, gd, cd), XTCP_STATE_CLOSED);
  EXPECT_EQ(b.rt->close(0, gd, cd), 0);
  EXPECT_EQ(b.rt->open_connections(), 0u);
}

// RFC 9293 3.10.4 ABORT in a synchronized state: a RST, queued data dropped; the
// descriptor is gone at once.
TEST(ApiAbort, SendsRstAndReleasesTheDescriptor) {
  Bench b;
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 7000);
  Client c;
  const int cd = b.open(c, gd);
  b.inject(c, data(1, "unread"));
  ASSERT_EQ(b.rt->abort(gd, cd), 0);
  const Sent rst = b.sent_one(c);
  EXPECT_NE(rst.flags & kRst, 0) << rst.describe();
  EXPECT_EQ(b.rt->abort(gd, cd), -EBADF);
  EXPECT_EQ(b.send(gd, cd, 0, "x"), -EBADF);
  EXPECT_EQ(b.rt->open_connections(), 0u);
  EXPECT_EQ(b.rt->rx_pool(b.pool)->used(), 0u) << "its held bytes are released";
  EXPECT_EQ(b.recv(gd).rc, -EAGAIN);
}

// An active open reports its outcome: writable once established, -ECONNREFUSED from
// xtcp_recv when the peer answers the SYN with a RST (RFC 9293 3.10.7.3).
TEST(ApiConnectOutcome, WritableWhenEstablishedRefusedOnRst) {
  Bench b;
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 0);
  ASSERT_EQ(b.rt->writable(gd), -EAGAIN);  // the group now reports writable connections
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(80);
  to.sin_addr.s_addr = htonl(0xC6120001);

  Client up;
  up.addr = 0xC6120001;
  up.port = 80;
  up.isn = 5000;
  const int cd = b.rt->connect(gd, &to);
  ASSERT_GT(cd, 0);
  auto out = b.sent({&up});
  ASSERT_EQ(out.size(), 1u);
  up.server_port = out[0].seg.src_port;
  EXPECT_EQ(b.rt->shutdown(gd, cd, SHUT_WR), -ENOTCONN) << "no FIN before the handshake";
  EXPECT_EQ(b.rt->writable(gd), -EAGAIN);
  Seg synack;
  synack.flags = kSyn | kAck;
  synack.seq = 0;
  synack.ack = 1;
  synack.window = 65535;
  b.inject(up, synack);
  b.sent({&up});  // the handshake's last ACK
  EXPECT_EQ(b.rt->writable(gd), cd) << "established: writable once";
  EXPECT_EQ(b.rt->writable(gd), -EAGAIN);

  Client down = up;
  const int cd2 = b.rt->connect(gd, &to);
  ASSERT_GT(cd2, 0);
  out = b.sent({&down});
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].seg.flags, kSyn);
  down.server_port = out[0].seg.src_port;
  down.iss = out[0].seg.seq;
  Seg rst;
  rst.flags = kRst | kAck;
  rst.seq = 0;
  rst.ack = 1;
  rst.window = 0;
  b.inject(down, rst);
  const auto r = b.recv(gd);
  EXPECT_EQ(r.rc, -ECONNREFUSED);
  EXPECT_EQ(r.cd, cd2);
  EXPECT_EQ(b.rt->writable(gd), -EAGAIN) << "a refused connect is not writable";
  EXPECT_EQ(b.rt->close(0, gd, cd2), 0);
  EXPECT_EQ(b.rt->abort(gd, cd), 0);
}

// XTCP_OPT_TX_LIMIT: a connection holds at most this many bytes in the transmit cache;
// the rest is refused, and its peer's ACK makes it writable again.
TEST(ApiTxLimit, BoundsWhatOneConnectionCaches) {
  Bench b;
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 7000);
  EXPECT_EQ(b.rt->setopt(gd, XTCP_OPT_TX_LIMIT, 100), -EINVAL);
  ASSERT_EQ(b.rt->setopt(gd, XTCP_OPT_TX_LIMIT, 2000), 0);
  std::int64_t v = 0;
  ASSERT_EQ(b.rt->getopt(gd, XTCP_OPT_TX_LIMIT, &v), 0);
  EXPECT_EQ(v, 2000);
  ASSERT_EQ(b.rt->writable(gd), -EAGAIN);
  Client c;
  const int cd = b.open(c, gd);
  const std::string big(5000, 'a');
  EXPECT_EQ(b.send(gd, cd, 0, big), 2000);
  std::size_t on_wire = 0;
  for (const auto& o : b.sent({&c})) {
    on_wire += o.seg.payload.size();
  }
  EXPECT_EQ(on_wire, 2000u);
  EXPECT_EQ(b.send(gd, cd, 0, big), -EAGAIN);
  xtcp_conn_info info{};
  ASSERT_EQ(b.rt->conn_info(gd, cd, &info), 0);
  EXPECT_EQ(info.tx_cached, 2000u);
  EXPECT_EQ(b.rt->writable(gd), -EAGAIN);
  b.inject(c, ack(2001));
  EXPECT_EQ(b.rt->writable(gd), cd) << "the peer's ACK freed the room";
  EXPECT_EQ(b.send(gd, cd, 0, big), 2000);
}

// xtcp_redeliver: bytes left unacknowledged come again from xtcp_recv, and an orderly end
// already reported comes again after them.
TEST(ApiRedeliver, OffersHeldBytesAndTheEndAgain) {
  Bench b;
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 7000);
  Client c;
  const int cd = b.open(c, gd);
  b.inject(c, data(1, "abc"));
  EXPECT_EQ(b.recv(gd).data, "abc");
  EXPECT_EQ(b.recv(gd).rc, -EAGAIN) << "shown once until something changes";
  ASSERT_EQ(b.rt->redeliver(gd, cd), 0);
  EXPECT_EQ(b.recv(gd).data, "abc");
  b.inject(c, fin(4, 1));
  auto r = b.recv(gd);
  EXPECT_EQ(r.rc, 0) << "the end, with 3 bytes still held";
  EXPECT_EQ(b.recv(gd).rc, -EAGAIN);
  ASSERT_EQ(b.rt->redeliver(gd, cd), 0);
  r = b.recv(gd);
  EXPECT_EQ(r.data, "abc");
  ASSERT_EQ(b.send(gd, cd, 3, ""), 0);
  r = b.recv(gd);
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.cd, cd);
  EXPECT_EQ(b.rt->redeliver(gd, cd + 1), -EBADF);
  EXPECT_EQ(b.rt->close(0, gd, cd), 0);
}

}  // namespace
}  // namespace xtcp::test::api_bench
