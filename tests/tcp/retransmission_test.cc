// Retransmission and congestion control in virtual time: the RFC 6298 timer (initial value,
// estimator, clamps, backoff, Karn, give-up), RFC 7323 RTT measurement, and RFC 5681/6582
// slow start, fast retransmit and NewReno recovery. The peer never offers SACK here unless a
// test says so, so recovery is pure NewReno.
#include <gtest/gtest.h>

#include <cerrno>

#include "tests/support/tcp_harness.h"
#include "tests/tcp/data_path_util.h"

namespace xtcp::test {
namespace {

using namespace wire::tcp_flags;  // NOLINT
using dp::ack_seg;
using dp::info_of;
using dp::open_with_rtt;
using dp::with_sack;
using dp::peer_options;

constexpr std::uint32_t kMss = 1460;

bool has_event(const std::vector<TcpEvent>& ev, TcpEventType type, int error = 0) {
  for (const TcpEvent& e : ev) {
    if (e.type == type && e.error == error) {
      return true;
    }
  }
  return false;
}

// ---- RFC 6298 timer ------------------------------------------------------------------

TEST(Rto, InitialRtoIsOneSecondAndSynBacksOff) {
  HarnessOptions o;
  o.tcp.max_syn_retransmits = 3;
  TcpHarness h(o);
  h.stack_port = 50000;
  h.peer_port = 80;
  const std::int64_t c = h.tcp().connect(kPeerAddr, 80, 50000);
  ASSERT_GE(c, 0);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kSyn).rseq(0));
  // RFC 6298 2.1: RTO starts at 1 s; 5.5: doubles on each expiry.
  for (const TimeNs expect : {seconds(1), seconds(2), seconds(4)}) {
    EXPECT_EQ(h.advance_to_next_deadline(), expect);
    EXPECT_SEGMENT(h.sent_one(), Match().flags(kSyn).rseq(0));
  }
  // Three retransmissions allowed: the next expiry gives up, with no RST (nothing was
  // synchronized) and ETIMEDOUT.
  EXPECT_EQ(h.advance_to_next_deadline(), seconds(8));
  h.expect_silence();
  EXPECT_TRUE(has_event(h.events(), TcpEventType::kClosed, ETIMEDOUT));
  EXPECT_EQ(h.tcp().stats().conn_timeouts, 1u);
}

TEST(Rto, ComputedFromSamples) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), ms(100));
  // First sample R = 100 ms: SRTT = R, RTTVAR = R/2, RTO = SRTT + 4*RTTVAR (RFC 6298 2.2).
  ConnInfo i = info_of(h, c);
  EXPECT_EQ(i.srtt_us, 100'000u);
  EXPECT_EQ(i.rto_us, 300'000u);

  ASSERT_EQ(h.tcp().send(c, pattern_bytes(1000)), 1000);
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).len(1000));
  h.advance(ms(40));
  h.inject(ack_seg(1001));
  // R' = 40 ms (2.3): RTTVAR = 3/4*50 + 1/4*|100-40| = 52.5; SRTT = 7/8*100 + 1/8*40 = 92.5.
  i = info_of(h, c);
  EXPECT_EQ(i.srtt_us, 92'500u);
  EXPECT_EQ(i.rto_us, 92'500u + 4 * 52'500u);

  ASSERT_EQ(h.tcp().send(c, pattern_bytes(1000)), 1000);
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1001).len(1000));
  h.advance(ms(200));
  h.inject(ack_seg(2001));
  // RTTVAR = 3/4*52.5 + 1/4*107.5 = 66.25; SRTT = 7/8*92.5 + 1/8*200 = 105.9375.
  i = info_of(h, c);
  EXPECT_EQ(i.srtt_us, 105'937u);
  EXPECT_EQ(i.rto_us, 105'937u + 4 * 66'250u);

  // The timer in force is the computed one: unanswered data is resent after exactly RTO
  // (rounded up to the 1 ms timer tick).
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(10)), 10);
  h.sent();
  EXPECT_EQ(h.advance_to_next_deadline(), ms(371));
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(2001).len(10));
}

TEST(Rto, ClampedToMinRto) {
  {
    TcpHarness h;
    const ConnId c = open_with_rtt(h, peer_options(false), 0);
    EXPECT_EQ(info_of(h, c).rto_us, 200'000u) << "Linux's 200 ms floor (config default)";
  }
  {
    HarnessOptions o;
    o.tcp.min_rto = ms(50);
    TcpHarness h(o);
    const ConnId c = open_with_rtt(h, peer_options(false), ms(5));
    // 5 ms + 4 * 2.5 ms = 15 ms, raised to min_rto.
    EXPECT_EQ(info_of(h, c).srtt_us, 5'000u);
    EXPECT_EQ(info_of(h, c).rto_us, 50'000u);
    ASSERT_EQ(h.tcp().send(c, pattern_bytes(10)), 10);
    h.sent();
    EXPECT_EQ(h.advance_to_next_deadline(), ms(50));
    EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).len(10));
  }
}

TEST(Rto, ExponentialBackoffAtExactTimes) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(1000)), 1000);
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).len(1000));
  TimeNs expect = ms(200);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(h.advance_to_next_deadline(), expect) << "expiry " << i;
    EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck | kPsh).rseq(1).len(1000).payload(pattern_bytes(1000)));
    expect *= 2;
  }
  EXPECT_EQ(h.tcp().stats().rto_expirations, 6u);
  EXPECT_EQ(h.tcp().stats().retransmits, 6u);
  // Backoff is capped by max_rto (60 s).
  for (int i = 0; i < 4; ++i) {
    h.advance_to_next_deadline();
    h.sent();
  }
  EXPECT_EQ(h.advance_to_next_deadline(), seconds(60));
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).len(1000));
  // An ACK of new data ends the backoff: fresh data is timed with the plain RTO again.
  h.inject(ack_seg(1001));
  h.expect_silence();
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(10)), 10);
  h.sent();
  EXPECT_EQ(h.advance_to_next_deadline(), ms(200));
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1001).len(10));
}

TEST(Rto, KarnNoSampleFromRetransmittedSegment) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), ms(100));
  ASSERT_EQ(info_of(h, c).srtt_us, 100'000u);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(500)), 500);
  h.sent();
  EXPECT_EQ(h.advance_to_next_deadline(), ms(300));
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).len(500));
  h.advance(ms(10));
  h.inject(ack_seg(501));
  // The ACK is ambiguous (310 ms for the original, 10 ms for the copy): no sample.
  EXPECT_EQ(info_of(h, c).srtt_us, 100'000u);
  EXPECT_EQ(info_of(h, c).rto_us, 300'000u);
  // The next segment sent for the first time is timed again.
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(500)), 500);
  h.sent();
  h.advance(ms(20));
  h.inject(ack_seg(1001));
  EXPECT_EQ(info_of(h, c).srtt_us, (7 * 100'000u + 20'000u) / 8);
}

TEST(Rto, TimestampsGiveSamplesEvenForRetransmissions) {
  TcpHarness h;
  wire::TcpOptions opts = peer_options(false);
  opts.has_timestamp = true;
  opts.ts_val = 7000;
  const ConnId c = open_with_rtt(h, opts, ms(100));
  ASSERT_EQ(info_of(h, c).srtt_us, 100'000u);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(500)), 500);
  const Sent first = h.sent_one();
  ASSERT_TRUE(first.opts.has_timestamp);
  EXPECT_EQ(h.advance_to_next_deadline(), ms(300));
  const Sent again = h.sent_one();
  EXPECT_SEGMENT(again, Match().rseq(1).len(500));
  EXPECT_EQ(again.opts.ts_val - first.opts.ts_val, 300u) << "TSval is a 1 ms clock";
  h.advance(ms(20));
  // RFC 7323 4.1: the echoed TSval names the transmission that was acknowledged, so the
  // ACK of the retransmission gives an unambiguous 20 ms sample.
  h.inject(h.with_ts(ack_seg(501)));
  EXPECT_EQ(info_of(h, c).srtt_us, (7 * 100'000u + 20'000u) / 8);

  // A delayed ACK echoing an older TSval measures from that older transmission.
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(500)), 500);
  const Sent third = h.sent_one();
  const std::uint32_t srtt_before = info_of(h, c).srtt_us;
  h.advance(ms(60));
  Seg ack = ack_seg(1001);
  ack.opts.has_timestamp = true;
  ack.opts.ts_val = ++h.peer_ts;
  ack.opts.ts_ecr = third.opts.ts_val;
  h.inject(ack);
  EXPECT_EQ(info_of(h, c).srtt_us, (7 * srtt_before + 60'000u) / 8);
}

TEST(Rto, GivesUpAfterMaxRetransmitsWithRst) {
  HarnessOptions o;
  o.tcp.max_retransmits = 3;
  TcpHarness h(o);
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(2 * kMss)), 2 * kMss);
  EXPECT_EQ(h.sent().size(), 2u);
  for (const TimeNs expect : {ms(200), ms(400), ms(800)}) {
    EXPECT_EQ(h.advance_to_next_deadline(), expect);
    EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).len(kMss));
  }
  EXPECT_TRUE(h.events().empty());
  EXPECT_EQ(h.advance_to_next_deadline(), ms(1600));
  // The RST carries the highest sequence number sent (RFC 9293 SND.NXT), which the peer
  // may already have reached; an older one would be out of its window and ignored.
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kRst | kAck).rseq(1 + 2 * kMss).rack(1));
  EXPECT_TRUE(has_event(h.events(), TcpEventType::kClosed, ETIMEDOUT));
  EXPECT_EQ(info_of(h, c).state, TcpState::kClosed);
  EXPECT_EQ(info_of(h, c).error, ETIMEDOUT);
  EXPECT_EQ(h.tcp().send(c, pattern_bytes(1)), -ETIMEDOUT);
  EXPECT_EQ(h.tcp().stats().conn_timeouts, 1u);
  EXPECT_EQ(h.tcp().stats().rst_out, 1u);
  // Nothing more happens on the wire.
  h.advance(seconds(100));
  h.expect_silence();
  EXPECT_EQ(h.tcp().close(c), 0);
  EXPECT_EQ(h.tcp().connection_count(), 0u);
}

TEST(Rto, AckAfterRtoRollbackCarriesHighestSeq) {
  // After an RTO the sender goes back to snd_una, but a pure ACK it sends must still carry
  // the highest sequence number sent (BSD uses snd_max for pure ACKs); else a peer that
  // received everything sees an old sequence number, drops the ACK and its data stalls.
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(3 * kMss)), 3 * kMss);
  EXPECT_EQ(h.sent().size(), 3u);
  EXPECT_EQ(h.advance_to_next_deadline(), ms(200));
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).len(kMss));
  // The peer (which got all three segments, its ACK was lost) sends data of its own.
  h.inject(dp::data_seg(1, bytes_of("hello"), 1));
  EXPECT_EQ(h.read_all(c), "hello");
  h.advance(ms(40));  // delayed ACK
  const auto s = h.sent();
  ASSERT_FALSE(s.empty());
  for (const Sent& x : s) {
    if (x.payload.empty()) {
      EXPECT_SEGMENT(x, Match().flags(kAck).rseq(1 + 3 * kMss).rack(6));
    }
  }
}

TEST(Rto, RetransmissionAckedInFullIsAccepted) {
  // Data held back by Nagle sits after the first segment when the RTO fires. Whatever the
  // retransmission carries, the peer's ACK of all of it must be acceptable.
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(100)), 100);
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).len(100));
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(1000)), 1000);
  h.expect_silence();  // Nagle: a small segment waits while data is unacknowledged
  EXPECT_EQ(h.advance_to_next_deadline(), ms(200));
  const Sent r = h.sent_one();
  EXPECT_SEGMENT(r, Match().rseq(1));
  ASSERT_GE(r.payload.size(), 100u);
  const auto len = static_cast<std::uint32_t>(r.payload.size());
  h.inject(ack_seg(1 + len));
  EXPECT_EQ(h.tcp().stats().drop_ack_invalid, 0u);
  EXPECT_EQ(info_of(h, c).snd_una.raw() - h.iss, 1 + len);
  // Whatever is left goes out, and the whole stream is delivered once.
  for (const Sent& x : h.sent()) {
    EXPECT_EQ(x.rseq, 1 + len);
  }
}

// ---- RFC 5681 / 6582 ----------------------------------------------------------------

TEST(CongestionControl, SlowStartGrowsOneMssPerAck) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  EXPECT_EQ(info_of(h, c).cwnd, 10 * kMss) << "RFC 6928 initial window";
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(30 * kMss)), 30 * kMss);
  const auto first = h.sent();
  ASSERT_EQ(first.size(), 10u);
  for (std::uint32_t i = 0; i < 10; ++i) {
    EXPECT_SEGMENT(first[i], Match().rseq(1 + i * kMss).len(kMss));
  }
  std::uint32_t next = 1 + 10 * kMss;
  for (std::uint32_t k = 1; k <= 10; ++k) {
    h.inject(ack_seg(1 + k * kMss));
    EXPECT_EQ(info_of(h, c).cwnd, (10 + k) * kMss);
    // Each ACK frees one segment and grows cwnd by one: two new segments.
    const auto s = h.sent();
    ASSERT_EQ(s.size(), 2u) << "ack " << k;
    EXPECT_SEGMENT(s[0], Match().rseq(next).len(kMss));
    EXPECT_SEGMENT(s[1], Match().rseq(next + kMss).len(kMss));
    next += 2 * kMss;
  }
  // A stretch ACK for several segments still grows cwnd by at most one MSS (RFC 5681 3.1).
  h.inject(ack_seg(1 + 13 * kMss));
  EXPECT_EQ(info_of(h, c).cwnd, 21 * kMss);
}

TEST(CongestionControl, FastRetransmitAndNewRenoRecovery) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  // Ten segments fill the initial window; four more wait.
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(14 * kMss)), 14 * kMss);
  ASSERT_EQ(h.sent().size(), 10u);
  // Segments 1 and 3 are lost; 2, 4..10 arrive and each draws a duplicate ACK.
  // RFC 3042 limited transmit: each of the first two duplicates lets one new segment out.
  h.inject(ack_seg(1));
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1 + 10 * kMss).len(kMss));
  h.inject(ack_seg(1));
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1 + 11 * kMss).len(kMss));
  EXPECT_EQ(h.tcp().stats().fast_retransmits, 0u);
  h.inject(ack_seg(1));
  // RFC 5681 3.2 step 2-3: ssthresh = FlightSize/2 (12 segments out), resend the first
  // unacked segment, cwnd = ssthresh + 3*SMSS.
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).len(kMss).payload(pattern_bytes(kMss)));
  ConnInfo i = info_of(h, c);
  EXPECT_EQ(i.ssthresh, 6 * kMss);
  EXPECT_EQ(i.cwnd, 9 * kMss);
  EXPECT_EQ(h.tcp().stats().fast_retransmits, 1u);
  // Step 4: each further duplicate inflates cwnd by one SMSS; new data goes out once
  // cwnd exceeds the flight (12 segments).
  h.inject(ack_seg(1));  // cwnd 10
  h.inject(ack_seg(1));  // cwnd 11
  h.inject(ack_seg(1));  // cwnd 12
  h.expect_silence();
  h.inject(ack_seg(1));  // cwnd 13
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1 + 12 * kMss).len(kMss));
  h.inject(ack_seg(1));  // cwnd 14
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1 + 13 * kMss).len(kMss));
  EXPECT_EQ(info_of(h, c).cwnd, 14 * kMss);
  EXPECT_EQ(h.tcp().stats().fast_retransmits, 1u) << "one recovery, not one per dupack";

  // The retransmitted segment 1 fills the first hole: a partial ACK up to the next hole.
  // RFC 6582 3.2 step 4: resend the first unacked segment at once, deflate cwnd by the
  // amount acked and add back one SMSS.
  h.inject(ack_seg(1 + 2 * kMss));
  auto s = h.sent();
  ASSERT_GE(s.size(), 1u);
  EXPECT_SEGMENT(s[0], Match().rseq(1 + 2 * kMss).len(kMss).payload(dp::slice(pattern_bytes(14 * kMss), 2 * kMss, kMss)));
  i = info_of(h, c);
  EXPECT_EQ(i.cwnd, 14 * kMss - 2 * kMss + kMss);
  EXPECT_EQ(h.tcp().stats().fast_retransmits, 1u);
  // Full ACK (covers everything sent before recovery began): recovery ends with
  // cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS) (RFC 6582 3.2 step 3, option 1);
  // segments 13 and 14 are still in flight.
  h.inject(ack_seg(1 + 12 * kMss));
  i = info_of(h, c);
  EXPECT_EQ(i.cwnd, std::min(6 * kMss, 2 * kMss + kMss));
  EXPECT_EQ(i.ssthresh, 6 * kMss);
  // Out of recovery: plain ACKs now grow cwnd by slow start (cwnd < ssthresh).
  h.sent();
  h.inject(ack_seg(1 + 14 * kMss));
  EXPECT_EQ(info_of(h, c).cwnd, 3 * kMss + kMss);
  EXPECT_EQ(h.tcp().stats().retransmits, 2u);
}

TEST(CongestionControl, DupAcksBelowThresholdAndWindowUpdatesDoNotRetransmit) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(4 * kMss)), 4 * kMss);
  ASSERT_EQ(h.sent().size(), 4u);
  h.inject(ack_seg(1));
  h.inject(ack_seg(1));
  // A changed window is a window update, not a duplicate ACK (RFC 5681 section 2).
  h.inject(ack_seg(1, 60000));
  h.inject(ack_seg(1, 50000));
  h.expect_silence();
  EXPECT_EQ(h.tcp().stats().fast_retransmits, 0u);
  // Data from the peer is not a duplicate ACK either.
  h.inject(dp::data_seg(1, bytes_of("x"), 1, 50000));
  for (const Sent& x : h.sent()) {
    EXPECT_TRUE(x.payload.empty()) << x.describe();
  }
  EXPECT_EQ(h.tcp().stats().fast_retransmits, 0u);
  EXPECT_EQ(info_of(h, c).cwnd, 10 * kMss);
}

TEST(CongestionControl, RtoCollapsesCwndAndGoesBackToSndUna) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(10 * kMss)), 10 * kMss);
  ASSERT_EQ(h.sent().size(), 10u);
  EXPECT_EQ(h.advance_to_next_deadline(), ms(200));
  // RFC 5681 3.1: ssthresh = max(FlightSize/2, 2*SMSS), cwnd = one segment (loss window),
  // and the first unacknowledged segment goes again.
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).len(kMss));
  ConnInfo i = info_of(h, c);
  EXPECT_EQ(i.cwnd, kMss);
  EXPECT_EQ(i.ssthresh, 5 * kMss);
  // Slow start from one segment, resending everything after the ACK point (go-back-N).
  h.inject(ack_seg(1 + kMss));
  auto s = h.sent();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_SEGMENT(s[0], Match().rseq(1 + kMss).len(kMss));
  EXPECT_SEGMENT(s[1], Match().rseq(1 + 2 * kMss).len(kMss));
  h.inject(ack_seg(1 + 3 * kMss));
  s = h.sent();
  ASSERT_EQ(s.size(), 3u);
  EXPECT_SEGMENT(s[2], Match().rseq(1 + 5 * kMss).len(kMss));
  h.inject(ack_seg(1 + 6 * kMss));
  s = h.sent();
  ASSERT_EQ(s.size(), 4u);
  EXPECT_SEGMENT(s[3], Match().rseq(1 + 9 * kMss).len(kMss));
  h.inject(ack_seg(1 + 10 * kMss));
  h.expect_silence();
  EXPECT_EQ(info_of(h, c).cwnd, 5 * kMss);
  // At ssthresh: congestion avoidance, about one SMSS per RTT (RFC 5681 eq. 3).
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(5 * kMss)), 5 * kMss);
  EXPECT_EQ(h.sent().size(), 5u);
  h.inject(ack_seg(1 + 11 * kMss));
  EXPECT_EQ(info_of(h, c).cwnd, 5 * kMss + kMss * kMss / (5 * kMss));
  EXPECT_EQ(h.tcp().stats().retransmits, 10u);
  EXPECT_EQ(h.tcp().stats().rto_expirations, 1u);
}

TEST(CongestionControl, DupAcksAfterRtoDoNotStartFastRecovery) {
  // RFC 6582 3.2 step 1/2: duplicates that do not cover more than `recover` (set at the
  // RTO) come from our own go-back-N retransmissions and must not halve cwnd again.
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(10 * kMss)), 10 * kMss);
  h.sent();
  h.advance_to_next_deadline();
  h.sent();
  for (int k = 0; k < 4; ++k) {
    h.inject(ack_seg(1));
  }
  EXPECT_EQ(h.tcp().stats().fast_retransmits, 0u);
  EXPECT_EQ(info_of(h, c).ssthresh, 5 * kMss);
}

// ---- spurious retransmissions: detection and undo (RFC 3522, RFC 2883 4, RFC 3708) ------

// The ACK after an RTO echoes the ORIGINAL transmission's timestamp: the original was only
// late, the resend was spurious, and the window reduction is undone (RFC 3522, RFC 4015).
TEST(SpuriousRetransmission, EifelUndoesAnRtoReduction) {
  TcpHarness h;
  wire::TcpOptions opts = peer_options(true);
  opts.has_timestamp = true;
  opts.ts_val = 7000;
  const ConnId c = open_with_rtt(h, opts, ms(100));
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(500)), 500);
  const Sent first = h.sent_one();
  const std::uint32_t cwnd_before = info_of(h, c).cwnd;
  h.advance_to_next_deadline();  // no ACK: RTO (or first a tail loss probe)
  h.sent();
  while (h.tcp().stats().rto_expirations == 0) {
    h.advance_to_next_deadline();
    h.sent();
  }
  ASSERT_LT(info_of(h, c).cwnd, cwnd_before) << "the RTO reduced the window";
  Seg ack = ack_seg(501);
  ack.opts.has_timestamp = true;
  ack.opts.ts_val = ++h.peer_ts;
  ack.opts.ts_ecr = first.opts.ts_val;  // acknowledges the original
  h.inject(ack);
  EXPECT_EQ(h.tcp().stats().spurious_undone, 1u);
  EXPECT_EQ(info_of(h, c).cwnd, cwnd_before);
}

// The ACK echoes the resend's timestamp: the original was lost; the reduction stays.
TEST(SpuriousRetransmission, ARealLossIsNotUndone) {
  TcpHarness h;
  wire::TcpOptions opts = peer_options(true);
  opts.has_timestamp = true;
  opts.ts_val = 7000;
  const ConnId c = open_with_rtt(h, opts, ms(100));
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(500)), 500);
  h.sent_one();
  const std::uint32_t cwnd_before = info_of(h, c).cwnd;
  Sent resent;
  while (h.tcp().stats().rto_expirations == 0) {
    h.advance_to_next_deadline();
    for (const Sent& s : h.sent()) {
      resent = s;
    }
  }
  h.inject(h.with_ts(ack_seg(501)));  // echoes the latest TSval: the resend's
  EXPECT_EQ(h.tcp().stats().spurious_undone, 0u);
  EXPECT_LT(info_of(h, c).cwnd, cwnd_before);
  (void)resent;
}

// Without timestamps the peer's D-SACK (a block below the cumulative ACK: the resent segment
// arrived twice) shows the resend was not needed (RFC 2883 section 4). D-SACK blocks are not
// counted as invalid SACK blocks.
TEST(SpuriousRetransmission, DsackUndoesAnRtoReduction) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(true), ms(100));
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(500)), 500);
  h.sent_one();
  const std::uint32_t cwnd_before = info_of(h, c).cwnd;
  while (h.tcp().stats().rto_expirations == 0) {
    h.advance_to_next_deadline();
    h.sent();
  }
  ASSERT_LT(info_of(h, c).cwnd, cwnd_before);
  h.inject(ack_seg(501));  // the original's ACK
  EXPECT_EQ(h.tcp().stats().spurious_undone, 0u) << "not known yet";
  h.inject(with_sack(ack_seg(501), {{1, 501}}, h.iss));  // the resend arrived twice
  EXPECT_EQ(h.tcp().stats().dsack_blocks_in, 1u);
  EXPECT_EQ(h.tcp().stats().sack_blocks_invalid, 0u);
  EXPECT_EQ(h.tcp().stats().spurious_undone, 1u);
  EXPECT_EQ(info_of(h, c).cwnd, cwnd_before);
}

}  // namespace
}  // namespace xtcp::test
