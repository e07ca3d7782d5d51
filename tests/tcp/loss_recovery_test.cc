// Loss recovery for small flights: RFC 3042 limited transmit, RFC 5827 early retransmit
// (dupack-based without SACK, SACK-based with it), and zero-window ACKs not taken as loss.
#include <gtest/gtest.h>

#include "tests/support/tcp_harness.h"
#include "tests/tcp/data_path_util.h"

namespace xtcp::test {
namespace {

using dp::ack_seg;
using dp::info_of;
using dp::open_with_rtt;
using dp::peer_options;
using dp::slice;
using dp::with_sack;
constexpr std::uint32_t kMss = 1460;

TEST(LossRecovery, LimitedTransmitSendsNewDataOnFirstTwoDupacks) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(12 * kMss)), 12 * kMss);
  ASSERT_EQ(h.sent().size(), 10u);  // initial window
  h.inject(ack_seg(1));
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1 + 10 * kMss).len(kMss));
  h.inject(ack_seg(1));
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1 + 11 * kMss).len(kMss));
  EXPECT_EQ(info_of(h, c).cwnd, 10 * kMss) << "limited transmit must not change cwnd";
  EXPECT_EQ(h.tcp().stats().fast_retransmits, 0u);
}

TEST(LossRecovery, EarlyRetransmitWithoutSackAfterOutstandingMinusOneDupacks) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(3 * kMss)), 3 * kMss);
  ASSERT_EQ(h.sent().size(), 3u);
  // The first segment is lost: segments 2 and 3 draw two duplicate ACKs, never three.
  h.inject(ack_seg(1));
  h.expect_silence();
  h.inject(ack_seg(1));
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).len(kMss).payload(pattern_bytes(kMss)));
  EXPECT_EQ(h.tcp().stats().fast_retransmits, 1u);
  EXPECT_EQ(h.tcp().stats().rto_expirations, 0u);
}

TEST(LossRecovery, EarlyRetransmitWithSackOnFirstSackedDupack) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(true), 0);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(2 * kMss)), 2 * kMss);
  ASSERT_EQ(h.sent().size(), 2u);
  // Segment 1 lost, segment 2 SACKed: with two outstanding, that is all the evidence.
  h.inject(with_sack(ack_seg(1), {{1 + kMss, 1 + 2 * kMss}}, h.iss));
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).len(kMss));
  EXPECT_EQ(h.tcp().stats().fast_retransmits, 1u);
}

TEST(LossRecovery, SackedDupackWithoutEvidenceDoesNotRetransmit) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(true), 0);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(3 * kMss)), 3 * kMss);
  ASSERT_EQ(h.sent().size(), 3u);
  // Only one of the two later segments SACKed: not yet enough for early retransmit.
  h.inject(with_sack(ack_seg(1), {{1 + 2 * kMss, 1 + 3 * kMss}}, h.iss));
  h.expect_silence();
  EXPECT_EQ(h.tcp().stats().fast_retransmits, 0u);
  (void)c;
}

// A peer that received a segment twice answers with a D-SACK (RFC 2883: a block below its
// cumulative ACK). With SACK, only ACKs that SACK new data count as duplicates (RFC 6675
// section 2), so a duplicating path causes no spurious fast retransmit.
TEST(LossRecovery, DsackAcksAreNotDuplicateAcks) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(true), 0);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(6 * kMss)), 6 * kMss);
  ASSERT_EQ(h.sent().size(), 6u);
  h.inject(ack_seg(1 + 2 * kMss));
  for (int i = 0; i < 4; ++i) {
    // Segment 1 arrived again: D-SACK of it, the cumulative ACK unchanged.
    h.inject(with_sack(ack_seg(1 + 2 * kMss), {{1, 1 + kMss}}, h.iss));
  }
  h.expect_silence();
  EXPECT_EQ(h.tcp().stats().dup_acks, 0u);
  EXPECT_EQ(h.tcp().stats().fast_retransmits, 0u);
  // Real loss is still seen: segments 4-6 SACKed above a lost segment 3.
  h.inject(with_sack(ack_seg(1 + 2 * kMss), {{1 + 3 * kMss, 1 + 6 * kMss}}, h.iss));
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1 + 2 * kMss).len(kMss));
  EXPECT_EQ(h.tcp().stats().fast_retransmits, 1u);
}

TEST(LossRecovery, ZeroWindowAcksAreNotDuplicateAcks) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(3 * kMss)), 3 * kMss);
  ASSERT_EQ(h.sent().size(), 3u);
  for (int i = 0; i < 5; ++i) {
    h.inject(ack_seg(1, 0));  // the peer closed its window; nothing is lost
  }
  h.expect_silence();
  EXPECT_EQ(h.tcp().stats().dup_acks, 0u);
  EXPECT_EQ(h.tcp().stats().fast_retransmits, 0u);
  (void)c;
}


// RFC 8985 section 7, tail loss probe. The RTT is 50 ms, so PTO = 2 * SRTT = 100 ms while
// the RTO is 200 ms (the minimum).
namespace tlp {

// Sends `segments` full segments and lets the peer acknowledge the first `acked` of them
// 50 ms later; returns the connection.
ConnId tail(TcpHarness& h, bool sack, int segments, int acked) {
  const ConnId c = open_with_rtt(h, peer_options(sack), ms(50));
  EXPECT_EQ(h.tcp().send(c, pattern_bytes(segments * kMss)), segments * kMss);
  EXPECT_EQ(h.sent().size(), static_cast<std::size_t>(segments));
  h.advance(ms(50));
  h.inject(ack_seg(1 + acked * kMss));
  h.expect_silence();
  return c;
}

}  // namespace tlp

TEST(LossRecovery, TailLossProbeResendsTheLastSegmentAfterTwoRoundTrips) {
  TcpHarness h;
  tlp::tail(h, true, 4, 2);  // segments 3 and 4 outstanding; 4 (the tail) is lost
  h.advance(ms(99));
  h.expect_silence();
  h.advance(ms(2));
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1 + 3 * kMss).len(kMss).payload(slice(pattern_bytes(4 * kMss), 3 * kMss, kMss)));
  EXPECT_EQ(h.tcp().stats().tlp_probes, 1u);
  EXPECT_EQ(h.tcp().stats().rto_expirations, 0u);
  // The probe's ACK SACKs segment 4: segment 3 is the hole, resent at once (RFC 5827).
  h.inject(with_sack(ack_seg(1 + 2 * kMss), {{1 + 3 * kMss, 1 + 4 * kMss}}, h.iss));
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1 + 2 * kMss).len(kMss));
  h.inject(ack_seg(1 + 4 * kMss));
  h.advance(seconds(5));
  h.expect_silence();
  EXPECT_EQ(h.tcp().stats().rto_expirations, 0u) << "recovered without a timeout";
}

TEST(LossRecovery, TailLossProbeSendsNewDataWhenThePeerWindowTakesIt) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(true), ms(50));
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(20 * kMss)), 20 * kMss);
  ASSERT_EQ(h.sent().size(), 10u) << "the initial window";
  h.advance(ms(101));  // no ACK at all: the probe is a new segment beyond cwnd
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1 + 10 * kMss).len(kMss));
  EXPECT_EQ(h.tcp().stats().tlp_probes, 1u);
  EXPECT_EQ(h.tcp().stats().retransmits, 0u);
  h.advance(ms(200));  // one probe per episode: then the RTO, from the first segment
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).len(kMss));
  EXPECT_EQ(h.tcp().stats().rto_expirations, 1u);
  EXPECT_EQ(h.tcp().stats().tlp_probes, 1u);
}

TEST(LossRecovery, NoTailLossProbeWithoutSack) {
  TcpHarness h;
  tlp::tail(h, false, 4, 2);
  h.advance(ms(199));
  h.expect_silence();
  h.advance(ms(2));
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1 + 2 * kMss).len(kMss)) << "the RTO resends the first";
  EXPECT_EQ(h.tcp().stats().tlp_probes, 0u);
}

// One segment out: its ACK may be a delayed one, so the PTO waits 200 ms more (RFC 8985
// 7.2), which here is later than the RTO: the RTO comes first.
TEST(LossRecovery, SingleSegmentTailWaitsForTheRto) {
  TcpHarness h;
  tlp::tail(h, true, 3, 2);
  h.advance(ms(199));
  h.expect_silence();
  h.advance(ms(2));
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1 + 2 * kMss).len(kMss));
  EXPECT_EQ(h.tcp().stats().tlp_probes, 0u);
  EXPECT_EQ(h.tcp().stats().rto_expirations, 1u);
}

TEST(LossRecovery, TailLossProbeCanBeTurnedOff) {
  HarnessOptions o;
  o.tcp.tail_loss_probe = false;
  TcpHarness h(o);
  tlp::tail(h, true, 4, 2);
  h.advance(ms(150));
  h.expect_silence();
  EXPECT_EQ(h.tcp().stats().tlp_probes, 0u);
}

}  // namespace
}  // namespace xtcp::test
