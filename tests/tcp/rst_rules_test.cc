// RST handling and blind-attack defences: RFC 5961 (sections 3 RST, 4 SYN, 5 ACK, 7 rate
// limit, here per connection), RFC 9293 3.10.7.1 (answers for no connection) and 3.10.7.3
// (SYN-SENT). Each test asserts the exact segment sent, or that nothing was.
#include <gtest/gtest.h>

#include <cerrno>

#include "tests/support/tcp_harness.h"
#include "tests/tcp/engine_test_util.h"

namespace xtcp::test {
namespace {

using namespace wire::tcp_flags;  // NOLINT

Seg seg(std::uint8_t flags, std::uint32_t seq, std::uint32_t ack) {
  Seg s;
  s.flags = flags;
  s.seq = seq;
  s.ack = ack;
  return s;
}

Seg seg_at(std::uint8_t flags, std::uint32_t seq, std::uint32_t ack, std::string_view payload = {}) {
  Seg s = seg(flags, seq, ack);
  s.payload = bytes_of(payload);
  return s;
}

// The challenge ACK of RFC 5961: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, here on a fresh
// connection where both are 1.
Match challenge_ack() { return Match().flags(kAck).rseq(1).rack(1).len(0); }

// ---- RFC 5961 section 3: RST -----------------------------------------------------------------

TEST(RstRules, RstAtRcvNxtResets) {
  TcpHarness h;
  const ConnId c = h.establish_passive(no_ts_options());
  h.inject(seg(kRst, 1, 0));
  h.expect_silence();
  const auto ev = h.events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, TcpEventType::kClosed);
  EXPECT_EQ(ev[0].error, ECONNRESET);
  EXPECT_EQ(state_of(h, c), TcpState::kClosed);
  EXPECT_EQ(h.tcp().stats().rst_in, 1u);
  EXPECT_EQ(h.tcp().stats().conn_resets, 1u);
  EXPECT_EQ(h.tcp().send(c, bytes_of("x")), -ECONNRESET);
  h.advance(seconds(2));
  h.expect_silence();
}

TEST(RstRules, RstAckAtRcvNxtResetsEvenWithDataInFlight) {
  TcpHarness h;
  const ConnId c = h.establish_active(no_ts_options());
  ASSERT_EQ(h.tcp().send(c, bytes_of("pending")), 7);
  h.sent_one();
  h.inject(seg(kRst | kAck, 1, 1));
  h.expect_silence();
  const auto ev = h.events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].error, ECONNRESET);
  h.advance(seconds(5));
  h.expect_silence();
}

TEST(RstRules, RstInWindowButNotExactGetsChallengeAck) {
  TcpHarness h;
  const ConnId c = h.establish_passive(no_ts_options());
  h.inject(seg(kRst, 100, 0));
  EXPECT_SEGMENT(h.sent_one(), challenge_ack());
  h.inject(seg(kRst | kAck, 2, 1));
  EXPECT_SEGMENT(h.sent_one(), challenge_ack());
  EXPECT_EQ(h.tcp().stats().challenge_acks, 2u);
  EXPECT_EQ(h.tcp().stats().rst_in, 0u);
  EXPECT_EQ(state_of(h, c), TcpState::kEstablished);
  EXPECT_TRUE(h.events().empty());
  Flow f = save_flow(h, c);
  expect_flow_works(h, f);
}

TEST(RstRules, RstOutOfWindowIsIgnored) {
  TcpHarness h;
  const ConnId c = h.establish_passive(no_ts_options());
  h.inject(seg(kRst, 1u + 10'000'000u, 0));  // far above the window
  h.inject(seg(kRst, 0, 0));                 // below RCV.NXT
  h.inject(seg(kRst | kAck, 0xF0000000u, 1));
  h.expect_silence();
  EXPECT_EQ(h.tcp().stats().rst_ignored, 3u);
  EXPECT_EQ(h.tcp().stats().drop_out_of_window, 3u);
  EXPECT_EQ(h.tcp().stats().challenge_acks, 0u);
  EXPECT_EQ(state_of(h, c), TcpState::kEstablished);
  Flow f = save_flow(h, c);
  expect_flow_works(h, f);
}

// RFC 9293 3.10.7.4: an exact RST in SYN-RECEIVED of a passive open returns to LISTEN.
TEST(RstRules, RstInPassiveSynReceivedDropsHalfOpen) {
  TcpHarness h;
  ASSERT_EQ(h.tcp().listen(kServerPort), 0);
  Seg syn = seg(kSyn, 0, 0);
  syn.opts = no_ts_options();
  h.inject(syn);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kSyn | kAck).rseq(0).rack(1));
  h.inject(seg(kRst, 1, 0));
  h.expect_silence();
  EXPECT_EQ(count_in(h, TcpState::kSynReceived), 0u);
  EXPECT_EQ(h.tcp().connection_count(), 0u);
  EXPECT_TRUE(h.events().empty());
  EXPECT_EQ(h.tcp().accept(kServerPort), -EAGAIN);
  h.advance(seconds(3));
  h.expect_silence();
  // The listener still accepts.
  Flow f = open_passive(h, 40001);
  expect_flow_works(h, f);
}

// ---- RFC 5961 section 4: SYN in a synchronized state ------------------------------------

TEST(RstRules, SynInEstablishedGetsChallengeAckWhateverItsSequence) {
  TcpHarness h;
  const ConnId c = h.establish_passive(no_ts_options());
  Seg syn = seg(kSyn, 1, 0);  // in window
  syn.opts = no_ts_options();
  h.inject(syn);
  EXPECT_SEGMENT(h.sent_one(), challenge_ack());
  syn.seq = 0;  // the old ISN again
  h.inject(syn);
  EXPECT_SEGMENT(h.sent_one(), challenge_ack());
  syn.seq = 0x80000000u;  // a restarted peer's random new ISN
  h.inject(syn);
  EXPECT_SEGMENT(h.sent_one(), challenge_ack());
  EXPECT_EQ(h.tcp().stats().challenge_acks, 3u);
  EXPECT_EQ(state_of(h, c), TcpState::kEstablished);
  EXPECT_TRUE(h.events().empty());
  Flow f = save_flow(h, c);
  expect_flow_works(h, f);
}

// ---- RFC 5961 section 5: ACK -------------------------------------------------------------

TEST(RstRules, AckBeyondSndNxtGetsChallengeAckAndIsDropped) {
  TcpHarness h;
  const ConnId c = h.establish_passive(no_ts_options());
  Seg bad = seg(kAck | kPsh, 1, 1000);  // we sent nothing yet: SND.NXT is 1
  bad.payload = bytes_of("smuggled");
  h.inject(bad);
  EXPECT_SEGMENT(h.sent_one(), challenge_ack());
  EXPECT_EQ(h.tcp().stats().drop_ack_invalid, 1u);
  EXPECT_EQ(h.tcp().stats().challenge_acks, 1u);
  EXPECT_EQ(h.read_all(c), "") << "the data of a dropped segment is not delivered";
  ConnInfo info{};
  ASSERT_EQ(h.tcp().info(c, &info), 0);
  EXPECT_EQ(info.rcv_nxt.raw(), kPeerIsn + 1);
  EXPECT_EQ(info.snd_una.raw(), h.iss + 1);
  Flow f = save_flow(h, c);
  expect_flow_works(h, f);
}

TEST(RstRules, AckBelowSndUnaMinusMaxWindowGetsChallengeAck) {
  TcpHarness h;
  // No window scaling and a small window: MAX.SND.WND is 1000.
  const ConnId c = h.establish_passive(no_ts_options(false), 1000);
  Seg old = seg(kAck, 1, static_cast<std::uint32_t>(-1000));  // SND.UNA - 1001
  old.window = 1000;
  h.inject(old);
  EXPECT_SEGMENT(h.sent_one(), challenge_ack());
  EXPECT_EQ(h.tcp().stats().drop_ack_invalid, 1u);
  EXPECT_EQ(h.tcp().stats().challenge_acks, 1u);
  // Old but within MAX.SND.WND: acceptable, a duplicate to ignore.
  Seg dup = seg(kAck, 1, static_cast<std::uint32_t>(-500));
  dup.window = 1000;
  h.inject(dup);
  h.expect_silence();
  EXPECT_EQ(h.tcp().stats().drop_ack_invalid, 1u);
  EXPECT_EQ(state_of(h, c), TcpState::kEstablished);
}

// ---- RFC 5961 section 7: rate limit, per connection ------------------------------------------

TEST(RstRules, ChallengeAcksRateLimitedPerConnection) {
  TcpHarness h;
  const ConnId a = h.establish_passive(no_ts_options());
  Flow fa = save_flow(h, a);
  Flow fb = open_passive(h, 40001);
  const std::uint32_t budget = h.tcp().config().challenge_acks_per_second;
  ASSERT_GT(budget, 0u);

  use_flow(h, fa);
  for (std::uint32_t i = 0; i < budget + 15; ++i) {
    h.inject(seg(kRst, 100 + i, 0));
  }
  const auto burst = h.sent();
  ASSERT_EQ(burst.size(), budget);
  for (const Sent& s : burst) {
    EXPECT_EQ(s.dst_port, kPeerPort);
    EXPECT_SEGMENT(s, challenge_ack());
  }
  EXPECT_EQ(h.tcp().stats().challenge_acks, budget);
  EXPECT_EQ(h.tcp().stats().challenge_acks_limited, 15u);

  // Another connection still has its own budget.
  use_flow(h, fb);
  h.inject(seg(kRst, 100, 0));
  const Sent other = h.sent_one();
  EXPECT_EQ(other.dst_port, 40001);
  EXPECT_SEGMENT(other, challenge_ack());
  EXPECT_EQ(h.tcp().stats().challenge_acks, budget + 1);

  // The flooded one stays silent until its second is over...
  use_flow(h, fa);
  h.advance(ms(500));
  h.inject(seg(kRst, 100, 0));
  h.expect_silence();
  EXPECT_EQ(h.tcp().stats().challenge_acks_limited, 16u);
  // ...then its budget is back.
  h.advance(ms(500));
  h.inject(seg(kRst, 100, 0));
  EXPECT_SEGMENT(h.sent_one(), challenge_ack());
  EXPECT_EQ(h.tcp().stats().challenge_acks, budget + 2);

  EXPECT_EQ(state_of(h, fa.conn), TcpState::kEstablished);
  expect_flow_works(h, fa, "a");
  expect_flow_works(h, fb, "b");
}

// ---- RFC 9293 3.10.7.1: no connection ----------------------------------------------------------

TEST(RstRules, NoConnectionSegmentWithAckGetsRstAtItsAck) {
  TcpHarness h;
  h.stack_port = 9999;  // nothing listens there
  Seg s = seg(kAck | kPsh, 5, 777);
  s.absolute_ack = true;
  s.payload = bytes_of("abc");
  h.inject(s);
  const Sent rst = h.sent_one();
  EXPECT_EQ(rst.flags, kRst) << "<SEQ=SEG.ACK><CTL=RST>";
  EXPECT_EQ(rst.seq, 777u);
  EXPECT_EQ(rst.src_port, 9999);
  EXPECT_EQ(rst.dst_port, kPeerPort);
  EXPECT_TRUE(rst.payload.empty());
  EXPECT_EQ(h.tcp().stats().rst_out, 1u);
}

TEST(RstRules, NoConnectionSegmentWithoutAckGetsRstAck) {
  TcpHarness h;
  h.stack_port = 9999;
  Seg syn = seg(kSyn, 0, 0);
  syn.payload = bytes_of("0123456789");  // SEG.LEN = SYN + 10
  h.inject(syn);
  const Sent rst = h.sent_one();
  EXPECT_EQ(rst.flags, kRst | kAck) << "<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>";
  EXPECT_EQ(rst.seq, 0u);
  EXPECT_EQ(rst.rack, 11u);
  EXPECT_TRUE(rst.payload.empty());
}

TEST(RstRules, NoConnectionRstIsNotAnswered) {
  TcpHarness h;
  h.stack_port = 9999;
  h.inject(seg(kRst, 1, 0));
  h.inject(seg(kRst | kAck, 1, 1));
  h.expect_silence();
  EXPECT_EQ(h.tcp().stats().rst_out, 0u);
}

// ---- RFC 9293 3.10.7.3 and RFC 5961 3.2: SYN-SENT -----------------------------------------------

std::int64_t start_connect(TcpHarness& h) {
  h.stack_port = 50000;
  h.peer_port = 80;
  const std::int64_t c = h.tcp().connect(kPeerAddr, h.peer_port, h.stack_port);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kSyn).rseq(0));
  return c;
}

TEST(RstRules, SynSentIgnoresRstWithoutAck) {
  TcpHarness h;
  const std::int64_t c = start_connect(h);
  ASSERT_GE(c, 0);
  h.inject(seg(kRst, 0, 0));
  h.expect_silence();
  EXPECT_EQ(h.tcp().stats().rst_ignored, 1u);
  EXPECT_EQ(state_of(h, static_cast<ConnId>(c)), TcpState::kSynSent);
  EXPECT_TRUE(h.events().empty());
  // The open goes on.
  Seg synack = seg(kSyn | kAck, 0, 1);
  synack.opts = no_ts_options();
  h.inject(synack);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(1).rack(1));
  EXPECT_EQ(state_of(h, static_cast<ConnId>(c)), TcpState::kEstablished);
}

TEST(RstRules, SynSentRstWithAcceptableAckIsRefused) {
  TcpHarness h;
  const std::int64_t c = start_connect(h);
  ASSERT_GE(c, 0);
  // RST with an ACK outside (ISS, SND.NXT]: dropped, nothing sent (3.10.7.3 first check).
  h.inject(seg(kRst | kAck, 0, 5));
  h.expect_silence();
  EXPECT_EQ(state_of(h, static_cast<ConnId>(c)), TcpState::kSynSent);
  h.inject(seg(kRst | kAck, 0, 1));
  h.expect_silence();
  const auto ev = h.events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, TcpEventType::kClosed);
  EXPECT_EQ(ev[0].error, ECONNREFUSED);
  EXPECT_EQ(state_of(h, static_cast<ConnId>(c)), TcpState::kClosed);
}

TEST(RstRules, SynSentSynAckWithUnacceptableAckGetsRst) {
  TcpHarness h;
  const std::int64_t c = start_connect(h);
  ASSERT_GE(c, 0);
  Seg synack = seg(kSyn | kAck, 0, 0);  // SEG.ACK = ISS: acknowledges nothing
  synack.opts = no_ts_options();
  h.inject(synack);
  const Sent r1 = h.sent_one();
  EXPECT_EQ(r1.flags, kRst) << "<SEQ=SEG.ACK><CTL=RST>";
  EXPECT_EQ(r1.rseq, 0u);
  synack.ack = 2;  // beyond SND.NXT
  h.inject(synack);
  const Sent r2 = h.sent_one();
  EXPECT_EQ(r2.flags, kRst);
  EXPECT_EQ(r2.rseq, 2u);
  EXPECT_EQ(state_of(h, static_cast<ConnId>(c)), TcpState::kSynSent);
  EXPECT_TRUE(h.events().empty());
  // A proper SYN-ACK still completes the open.
  synack.ack = 1;
  h.inject(synack);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(1).rack(1));
  EXPECT_EQ(state_of(h, static_cast<ConnId>(c)), TcpState::kEstablished);
}

// RFC 5961 3.2 with application-controlled ACKs: while the application holds received
// bytes, our ACKs (challenge ACKs included) carry the application's ACK point, not RCV.NXT.
// A peer that lost its state answers a challenge ACK with a RST at that ACK (RFC 9293
// 3.10.7.1): it must reset the connection, or the connection could never be reset.
TEST(RstRules, AppAckRstAtTheAckPointWeSentResets) {
  TcpHarness h;
  h.listen_options.app_ack = true;
  const ConnId c = h.establish_passive();
  h.inject(seg_at(kAck | kPsh, 1, 1, "REQUEST"));  // held by the application: not ACKed
  h.expect_silence();
  // An in-window RST that is not exact draws a challenge ACK carrying the ACK point (1).
  h.inject(seg_at(kRst, 20, 1));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rack(1));
  // The peer answers at that ACK: the connection is reset.
  h.inject(seg_at(kRst, 1, 1));
  bool reset = false;
  for (const TcpEvent& e : h.events()) {
    reset |= e.type == TcpEventType::kClosed && e.error == ECONNRESET;
  }
  EXPECT_TRUE(reset);
  EXPECT_EQ(h.tcp().stats().conn_resets, 1u);
  (void)c;
}

// The same RST when nothing is held is an old one (below RCV.NXT): ignored.
TEST(RstRules, RstBelowRcvNxtIsIgnoredWhenNothingIsHeld) {
  TcpHarness h;
  h.listen_options.app_ack = true;
  const ConnId c = h.establish_passive();
  h.inject(seg_at(kAck | kPsh, 1, 1, "REQUEST"));
  std::vector<std::byte> buf(7);
  ASSERT_EQ(h.buffers.read(c, buf), 7u);
  h.tcp().consumed(c);  // released and ACKed: the ACK point is RCV.NXT again
  h.sent();
  h.inject(seg_at(kRst, 1, 1));
  EXPECT_EQ(h.tcp().stats().conn_resets, 0u);
  EXPECT_EQ(h.tcp().stats().rst_ignored, 1u);
}

// RSTs that are ignored say nothing of the peer: they must not keep a connection whose peer
// is gone from timing out (they used to reset the keepalive probe count).
TEST(RstRules, IgnoredRstsDoNotKeepADeadConnectionAlive) {
  HarnessOptions o;
  o.tcp.keepalive_idle = seconds(10);
  o.tcp.keepalive_interval = seconds(1);
  o.tcp.keepalive_probes = 3;
  TcpHarness h(o);
  const ConnId c = h.establish_passive();
  ASSERT_EQ(h.tcp().set_keepalive(c, true), 0);
  bool timed_out = false;
  for (int i = 0; i < 200 && !timed_out; ++i) {
    h.advance(ms(500));
    h.inject(seg_at(kRst, 1u << 30, 1));  // far out of window: ignored
    for (const TcpEvent& e : h.events()) {
      timed_out |= e.type == TcpEventType::kClosed && e.error == ETIMEDOUT;
    }
  }
  EXPECT_TRUE(timed_out) << "keepalive probes went unanswered; ignored RSTs are no answer";
  EXPECT_EQ(h.tcp().stats().conn_timeouts, 1u);
}

}  // namespace
}  // namespace xtcp::test
