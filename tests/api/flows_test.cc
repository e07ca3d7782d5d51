// The request/answer flows of application-controlled ACKs (the answer carries the request's
// ACK; a lost request, a lost answer, a lost client ACK) driven THROUGH the XTCP API
// (xtcp_recv / xtcp_send with ackd), asserting the exact segments on the wire, in virtual
// time.
#include <gtest/gtest.h>

#include "tests/api/api_test_util.h"

namespace xtcp::test::api_bench {
namespace {

struct Flow {
  Bench b;
  Client c;
  int gd = 0;
  int cd = 0;
  explicit Flow(int ack_deadline_ms = 0, const api::RuntimeConfig& cfg = default_config()) : b(cfg) {
    gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, c.server_port);
    EXPECT_GT(gd, 0);
    if (ack_deadline_ms > 0) {
      EXPECT_EQ(b.rt->setopt(gd, XTCP_OPT_ACK_DEADLINE_MS, ack_deadline_ms), 0);
    }
    cd = b.open(c, gd);
  }
};

// Req[C,4] draws no ACK of its own; Ans[S,4] carries ACK[C+4]; the client's ACK purges the
// answer from the shared transmit cache.
TEST(ApiFlows, AnswerCarriesTheAck) {
  Flow f;
  f.b.inject(f.c, data(1, "REQ1"));
  f.b.advance(seconds(2));  // far past any delayed-ACK time
  f.b.expect_silence();
  const auto r = f.b.recv(f.gd);
  ASSERT_EQ(r.rc, 4);
  EXPECT_EQ(r.cd, f.cd);
  EXPECT_EQ(r.data, "REQ1");
  ASSERT_EQ(f.b.send(f.gd, f.cd, 4, "ANS1"), 4);
  const Sent ans = f.b.sent_one(f.c);
  EXPECT_SEGMENT(ans, Match().flags(kAck | kPsh).rseq(1).rack(5).payload(bytes_of("ANS1")));
  EXPECT_EQ(f.b.rt->tx_cache().used(), 4u);
  f.b.inject(f.c, ack(5, 5));
  EXPECT_EQ(f.b.rt->tx_cache().used(), 0u);
  f.b.advance(seconds(5));
  f.b.expect_silence();
  struct xtcp_pool_stats st{};
  ASSERT_EQ(f.b.rt->pool_stats(f.b.pool, &st), 0);
  EXPECT_EQ(st.acks_on_answers, 1u);
  EXPECT_EQ(st.acks_alone, 0u);
  EXPECT_EQ(st.rx_bytes, 4u);
  EXPECT_EQ(st.rx_buffer_used, 0u);
}

// The request is lost; the client's retransmission is served in due course. A duplicate of
// a request the application holds unanswered draws nothing.
TEST(ApiFlows, LostRequestIsServedWhenRetransmitted) {
  Flow f;
  // Req[C,4] is lost on the way: nothing reaches the stack.
  f.b.advance(seconds(1));
  EXPECT_EQ(f.b.recv(f.gd).rc, -EAGAIN);
  f.b.inject(f.c, data(1, "REQ1"));  // the client's RTO
  const auto r = f.b.recv(f.gd);
  ASSERT_EQ(r.data, "REQ1");
  f.b.inject(f.c, data(1, "REQ1"));  // another retransmission while we think
  f.b.expect_silence();
  EXPECT_EQ(f.b.recv(f.gd).rc, -EAGAIN) << "a duplicate does not wake the application";
  ASSERT_EQ(f.b.send(f.gd, f.cd, 4, "ANS1"), 4);
  EXPECT_SEGMENT(f.b.sent_one(f.c), Match().flags(kAck | kPsh).rseq(1).rack(5).payload(bytes_of("ANS1")));
}

// The answer is lost; the client retransmits the request; the cached answer goes again
// with the ACK, without waking the application.
TEST(ApiFlows, LostAnswerIsResentFromTheCache) {
  Flow f;
  f.b.inject(f.c, data(1, "REQ1"));
  ASSERT_EQ(f.b.recv(f.gd).data, "REQ1");
  ASSERT_EQ(f.b.send(f.gd, f.cd, 4, "ANS1"), 4);
  f.b.sent({&f.c});  // lost
  f.b.inject(f.c, data(1, "REQ1"));
  EXPECT_SEGMENT(f.b.sent_one(f.c), Match().flags(kAck | kPsh).rseq(1).rack(5).payload(bytes_of("ANS1")));
  EXPECT_EQ(f.b.recv(f.gd).rc, -EAGAIN) << "the application must not see the duplicate";
  struct xtcp_pool_stats st{};
  ASSERT_EQ(f.b.rt->pool_stats(f.b.pool, &st), 0);
  EXPECT_EQ(st.answers_from_cache, 1u);
  // The client's ACK of the resent answer purges the cache.
  f.b.inject(f.c, ack(5, 5));
  EXPECT_EQ(f.b.rt->tx_cache().used(), 0u);
}

// The client's ACK of the answer is lost; the answer is resent on the resend timer until
// ACKed.
TEST(ApiFlows, LostClientAckAnswerResentUntilAcked) {
  Flow f;
  f.b.inject(f.c, data(1, "REQ1"));
  ASSERT_EQ(f.b.recv(f.gd).data, "REQ1");
  ASSERT_EQ(f.b.send(f.gd, f.cd, 4, "ANS1"), 4);
  f.b.sent({&f.c});
  f.b.advance_to_next_deadline();
  EXPECT_SEGMENT(f.b.sent_one(f.c), Match().rseq(1).rack(5).payload(bytes_of("ANS1")));
  f.b.advance_to_next_deadline();
  EXPECT_SEGMENT(f.b.sent_one(f.c), Match().rseq(1).rack(5).payload(bytes_of("ANS1")));
  f.b.inject(f.c, ack(5, 5));  // this ACK arrives
  EXPECT_EQ(f.b.rt->tx_cache().used(), 0u);
  f.b.advance(seconds(120));
  f.b.expect_silence();
  EXPECT_EQ(f.b.recv(f.gd).rc, -EAGAIN);
}

// No ACK of the answer ever comes: after the last resend the connection goes down (RST),
// its cached answer is purged, and recv reports it once as timed out.
TEST(ApiFlows, LostClientAckConnectionDownIsReportedAsTimedOut) {
  api::RuntimeConfig cfg = default_config();
  cfg.stack.tcp.max_retransmits = 3;
  Flow f(0, cfg);
  f.b.inject(f.c, data(1, "REQ1"));
  ASSERT_EQ(f.b.recv(f.gd).data, "REQ1");
  ASSERT_EQ(f.b.send(f.gd, f.cd, 4, "ANS1"), 4);
  f.b.sent({&f.c});
  int resends = 0;
  for (int i = 0; i < 10 && f.b.rt->tx_cache().used() > 0; ++i) {
    f.b.advance_to_next_deadline();
    for (const auto& o : f.b.sent({&f.c})) {
      if (!o.seg.payload.empty()) {
        EXPECT_EQ(str(o.seg.payload), "ANS1");
        EXPECT_EQ(o.seg.rack, 5u);
        ++resends;
      } else {
        EXPECT_TRUE(o.seg.has(kRst)) << o.seg.describe();
      }
    }
  }
  EXPECT_EQ(resends, 3);
  EXPECT_EQ(f.b.rt->tx_cache().used(), 0u) << "the cached answer is purged when the connection is down";
  const auto r = f.b.recv(f.gd);
  EXPECT_EQ(r.rc, -ETIMEDOUT);
  EXPECT_EQ(r.cd, f.cd);
  EXPECT_EQ(f.b.recv(f.gd).rc, -EAGAIN) << "reported once";
  EXPECT_EQ(f.b.send(f.gd, f.cd, 0, "late"), -ETIMEDOUT);
  EXPECT_EQ(f.b.rt->close(0, f.gd, f.cd), 0);
  EXPECT_EQ(f.b.rt->close(0, f.gd, f.cd), -EBADF);
}

// xtcp_send with len 0: the ACK alone.
TEST(ApiFlows, AckWithoutAnswer) {
  Flow f;
  f.b.inject(f.c, data(1, "PING"));
  ASSERT_EQ(f.b.recv(f.gd).data, "PING");
  ASSERT_EQ(f.b.send(f.gd, f.cd, 4, ""), 0);
  EXPECT_SEGMENT(f.b.sent_one(f.c), Match().flags(kAck).rseq(1).rack(5).len(0));
  struct xtcp_pool_stats st{};
  ASSERT_EQ(f.b.rt->pool_stats(f.b.pool, &st), 0);
  EXPECT_EQ(st.acks_alone, 1u);
}

// ackd < delivered: only that much is ACKed and the rest comes again, first.
TEST(ApiFlows, PartialAckRedeliversTheRest) {
  Flow f;
  f.b.inject(f.c, data(1, "HELLOWORLD"));
  ASSERT_EQ(f.b.recv(f.gd).data, "HELLOWORLD");
  ASSERT_EQ(f.b.send(f.gd, f.cd, 5, "ok"), 2);
  EXPECT_SEGMENT(f.b.sent_one(f.c), Match().rack(6).payload(bytes_of("ok")));
  f.b.inject(f.c, data(11, "!", 3));
  const auto r = f.b.recv(f.gd);
  EXPECT_EQ(r.data, "WORLD!");
  EXPECT_EQ(f.b.send(f.gd, f.cd, 7, ""), -EINVAL) << "ackd > delivered";
  ASSERT_EQ(f.b.send(f.gd, f.cd, 6, ""), 0);
  EXPECT_SEGMENT(f.b.sent_one(f.c), Match().flags(kAck).rack(12).len(0));
}

// The ACK deadline: the stack ACKs a slow request by itself; the late answer still goes.
TEST(ApiFlows, AckDeadlineAcksAnyway) {
  Flow f(100);  // set before the client connected: options apply to new connections
  Client& c2 = f.c;
  const int cd2 = f.cd;
  f.b.inject(c2, data(1, "SLOW"));
  f.b.advance(ms(99));
  f.b.expect_silence();
  f.b.advance(ms(2));
  EXPECT_SEGMENT(f.b.sent_one(c2), Match().flags(kAck).rack(5).len(0));
  ASSERT_EQ(f.b.recv(f.gd).data, "SLOW");
  ASSERT_EQ(f.b.send(f.gd, cd2, 4, "DONE"), 4);
  EXPECT_SEGMENT(f.b.sent_one(c2), Match().rack(5).payload(bytes_of("DONE")));
}

}  // namespace
}  // namespace xtcp::test::api_bench
