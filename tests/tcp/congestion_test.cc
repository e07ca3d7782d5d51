// NewReno behind the congestion-control interface: the window arithmetic of RFC 5681,
// RFC 6582 and RFC 7661 on a bare Tcb, without segments.
#include "stack/tcp/congestion.h"

#include <gtest/gtest.h>

namespace xtcp {
namespace {

Tcb with_mss(std::uint16_t mss) {
  Tcb t;
  t.snd_mss = mss;
  NewReno::on_established(t, 10);
  return t;
}

TEST(NewReno, InitialWindowIsTenSegmentsAndSsthreshHigh) {
  const Tcb t = with_mss(1000);
  EXPECT_EQ(t.cwnd, 10'000u);
  EXPECT_GE(t.ssthresh, 1u << 30);
}

TEST(NewReno, SlowStartGrowsByTheBytesAckedUpToOneMssPerAck) {
  Tcb t = with_mss(1000);
  NewReno::on_ack(t, 1000, 10'000);  // a full window in flight
  EXPECT_EQ(t.cwnd, 11'000u);
  NewReno::on_ack(t, 3000, 11'000);  // a stretch ACK still counts one MSS (RFC 3465 L = 1)
  EXPECT_EQ(t.cwnd, 12'000u);
}

TEST(NewReno, AWindowNotInUseDoesNotGrow) {
  Tcb t = with_mss(1000);
  NewReno::on_ack(t, 1000, 2000);  // an application-limited sender: 2 KB of a 10 KB window
  EXPECT_EQ(t.cwnd, 10'000u) << "RFC 7661";
}

TEST(NewReno, CongestionAvoidanceGrowsAboutOneMssPerWindow) {
  Tcb t = with_mss(1000);
  t.ssthresh = 5000;
  t.cwnd = 10'000;
  for (int i = 0; i < 10; ++i) {
    NewReno::on_ack(t, 1000, t.cwnd);
  }
  EXPECT_GE(t.cwnd, 10'900u);
  EXPECT_LE(t.cwnd, 11'000u);
}

TEST(NewReno, FastRecoveryHalvesInflatesAndDeflates) {
  Tcb t = with_mss(1000);
  t.cwnd = 20'000;
  NewReno::on_enter_recovery(t, 20'000);
  EXPECT_EQ(t.ssthresh, 10'000u);
  EXPECT_EQ(t.cwnd, 13'000u) << "ssthresh + 3 MSS";
  NewReno::on_dupack_in_recovery(t);
  EXPECT_EQ(t.cwnd, 14'000u);
  NewReno::on_partial_ack(t, 3000);  // deflate by 3000, add back one MSS
  EXPECT_EQ(t.cwnd, 12'000u);
  NewReno::on_exit_recovery(t, 4000);  // min(ssthresh, max(flight, mss) + mss)
  EXPECT_EQ(t.cwnd, 5000u);
  NewReno::on_exit_recovery(t, 50'000);
  EXPECT_EQ(t.cwnd, 10'000u) << "never above ssthresh";
}

TEST(NewReno, TimeoutLeavesOneSegmentAndHalfTheFlight) {
  Tcb t = with_mss(1000);
  NewReno::on_rto(t, 30'000);
  EXPECT_EQ(t.cwnd, 1000u);
  EXPECT_EQ(t.ssthresh, 15'000u);
  NewReno::on_rto(t, 1000);
  EXPECT_EQ(t.ssthresh, 2000u) << "at least two segments";
}

TEST(NewReno, ARepairedProbeReducesLikeFastRecovery) {
  Tcb t = with_mss(1000);
  t.cwnd = 8000;
  NewReno::on_probe_repaired(t, 2000);
  EXPECT_EQ(t.ssthresh, 4000u);
  EXPECT_EQ(t.cwnd, 4000u);
}

}  // namespace
}  // namespace xtcp
