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

}  // namespace
}  // namespace xtcp::test
