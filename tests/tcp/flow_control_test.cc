// Flow control and the small timers of the data path: window scaling both ways (RFC 7323),
// the peer's window as a hard limit, zero-window persist probing (RFC 9293 3.8.6.1), the
// receive window as the RxStore fills and empties with SWS avoidance (3.8.6.2), Nagle
// (3.7.4), delayed ACKs (RFC 5681 4.2), keepalive (RFC 1122 4.2.3.6) and MSS clamping.
#include <gtest/gtest.h>

#include <cerrno>

#include "tests/support/tcp_harness.h"
#include "tests/tcp/data_path_util.h"

namespace xtcp::test {
namespace {

using namespace wire::tcp_flags;  // NOLINT
using dp::ack_seg;
using dp::as_string;
using dp::data_seg;
using dp::info_of;
using dp::open_with_rtt;
using dp::peer_options;
using dp::slice;

constexpr std::uint32_t kMss = 1460;

std::size_t total_len(const std::vector<Sent>& v) {
  std::size_t n = 0;
  for (const Sent& s : v) {
    n += s.payload.size();
  }
  return n;
}

// ---- window scaling and the peer's window ---------------------------------------------

TEST(FlowControl, WindowScaleUsedBothWays) {
  HarnessOptions o;
  o.rx_capacity = 200'000;  // needs shift 2 to be advertised
  o.tcp.delayed_ack = false;
  TcpHarness h(o);
  ASSERT_EQ(h.tcp().listen(kServerPort), 0);
  Seg syn;
  syn.flags = kSyn;
  syn.seq = 0;
  syn.window = 1000;
  syn.opts = peer_options(true, 7);
  h.inject(syn);
  const Sent synack = h.sent_one();
  ASSERT_TRUE(synack.opts.has_window_scale);
  EXPECT_EQ(synack.opts.window_scale, 2);
  EXPECT_EQ(synack.window, 65535) << "RFC 7323 2.2: a SYN's window is never scaled";
  Seg ack;
  ack.window = 100;  // 100 << 7 = 12800 bytes
  h.inject(ack);
  const auto c = static_cast<ConnId>(h.tcp().accept(kServerPort));
  h.events();
  EXPECT_EQ(info_of(h, c).snd_wnd, 12'800u);

  // We never send beyond snd_una + 12800, though cwnd (14600) would allow more.
  const auto out = pattern_bytes(20'000, 11);
  ASSERT_EQ(h.tcp().send(c, out), 20'000);
  auto s = h.sent();
  EXPECT_LE(total_len(s), 12'800u);
  EXPECT_EQ(total_len(s), 8u * kMss) << "the 1120-byte tail waits (Nagle/sender SWS)";
  for (const Sent& x : s) {
    EXPECT_LE(x.rseq + x.payload.size(), 1u + 12'800u);
  }
  // The window field we send is our free space >> 2.
  h.inject(data_seg(1, pattern_bytes(1000), 1, 100));
  Sent a = h.sent_one();
  EXPECT_SEGMENT(a, Match().flags(kAck).rack(1001).window((200'000 - 1000) / 4));
  // A scaled update from the peer: 300 << 7 = 38400 bytes beyond its ACK.
  h.inject(ack_seg(1 + 8 * kMss, 300, 1001));
  EXPECT_EQ(info_of(h, c).snd_wnd, 38'400u);
  s = h.sent();
  EXPECT_EQ(total_len(s), 5u * kMss) << "the 1020-byte tail waits for the ACK (Nagle)";
  EXPECT_EQ(h.read_all(c).size(), 1000u);
}

TEST(FlowControl, PeerWindowNeverExceeded) {
  HarnessOptions o;
  TcpHarness h(o);
  const ConnId c = open_with_rtt(h, peer_options(false), 0, 3000);
  const auto out = pattern_bytes(10'000, 12);
  ASSERT_EQ(h.tcp().send(c, out), 10'000);
  std::vector<std::byte> got;
  std::uint32_t acked = 1;
  for (int round = 0; round < 20 && got.size() < out.size(); ++round) {
    const auto s = h.sent();
    ASSERT_FALSE(s.empty()) << "stalled at " << acked;
    for (const Sent& x : s) {
      EXPECT_LE(x.rseq + x.payload.size(), acked + 3000) << x.describe();
      ASSERT_EQ(x.rseq, 1 + got.size()) << "in order, no retransmission";
      got.insert(got.end(), x.payload.begin(), x.payload.end());
    }
    acked = static_cast<std::uint32_t>(1 + got.size());
    h.inject(ack_seg(acked, 3000));
  }
  EXPECT_EQ(got, out);
}

TEST(FlowControl, WindowTakenFromRetransmittedSegmentThatAcksNewData) {
  // The peer retransmits an old segment of its own, carrying its current ACK and a much
  // smaller window. Its sequence number is below the last window update's, but the ACK is
  // new: the window must be taken (as Linux does), or we keep sending into the old one.
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0, 4 * kMss);
  h.inject(data_seg(1, pattern_bytes(1000), 1, 4 * kMss));
  h.inject(data_seg(1001, pattern_bytes(1000), 1, 4 * kMss));
  h.sent();
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(6 * kMss)), 6 * kMss);
  EXPECT_EQ(h.sent().size(), 4u) << "the peer's window holds four segments";
  // Repacketized: [1, 2501) overlaps what we have and brings 500 new bytes, so it is
  // acceptable, but its sequence number is below that of the last window update.
  h.inject(data_seg(1, pattern_bytes(2500), 1 + kMss, 100));
  EXPECT_EQ(info_of(h, c).snd_wnd, 100u);
  for (const Sent& x : h.sent()) {
    EXPECT_TRUE(x.payload.empty()) << "sent beyond the peer's window: " << x.describe();
  }
}

TEST(FlowControl, PureAckStaysInsideShrunkWindow) {
  // We sent beyond what the peer can now take (it shrank its window to zero and dropped
  // our data). An ACK from us numbered above its window would be unacceptable to it and
  // dropped, ACK field and all; it must carry a number the peer accepts (Linux's
  // tcp_acceptable_seq), here the peer's RCV.NXT = our SND.UNA.
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(3 * kMss)), 3 * kMss);
  EXPECT_EQ(h.sent().size(), 3u);
  h.inject(data_seg(1, bytes_of("abc"), 1, 0));
  EXPECT_EQ(h.read_all(c), "abc");
  h.advance(ms(40));
  const Sent a = h.sent_one();
  EXPECT_SEGMENT(a, Match().flags(kAck).rseq(1).rack(4).len(0));
}

TEST(FlowControl, PureAckAtOurRightWindowEdgeIsAccepted) {
  // The peer filled our window and its data is still on the way; its ACK carries
  // SEQ = its SND.NXT = our right edge. RFC 9293's strict test would drop it (and its ACK
  // field); Linux and BSD accept it, and so must we.
  HarnessOptions o;
  o.rx_capacity = 4096;
  TcpHarness h(o);
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(100)), 100);
  h.sent();
  h.inject(ack_seg(101, 65535, 1 + 4096));
  EXPECT_EQ(info_of(h, c).snd_una.raw() - h.iss, 101u);
  EXPECT_EQ(h.tcp().stats().drop_out_of_window, 0u);
  h.expect_silence();
}

TEST(FlowControl, OutOfWindowPureAcksAnsweredAtLimitedRate) {
  // Each unacceptable segment is answered with an ACK (3.10.7.4), but pure ACKs only within
  // the per-connection budget: two ends that each find the other's ACKs out of window would
  // otherwise ping-pong forever (an ACK storm). Data is always answered.
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  for (int i = 0; i < 50; ++i) {
    h.inject(ack_seg(1, 65535, 1'000'000));
  }
  EXPECT_EQ(h.sent().size(), 10u) << "challenge_acks_per_second";
  EXPECT_EQ(h.tcp().stats().oow_acks_limited, 40u);
  h.inject(data_seg(1'000'000, bytes_of("x")));
  EXPECT_EQ(h.sent().size(), 1u) << "out-of-window data is still answered";
  h.advance(seconds(1));
  h.inject(ack_seg(1, 65535, 1'000'000));
  EXPECT_EQ(h.sent().size(), 1u) << "a new second, a new budget";
  EXPECT_EQ(info_of(h, c).state, TcpState::kEstablished);
}

// ---- zero window: persist ---------------------------------------------------------------

TEST(FlowControl, ZeroWindowProbesWithBackoffThenResumes) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(1000)), 1000);
  h.sent();
  h.inject(ack_seg(1001, 0));  // all acked, window closed
  const auto rest = pattern_bytes(500, 13);
  ASSERT_EQ(h.tcp().send(c, rest), 500);
  h.expect_silence();
  // Probes (like Linux: an old sequence number, no data) on the persist timer, backed off;
  // the peer answers each with window 0, which keeps the connection alive.
  TimeNs expect = ms(200);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(h.advance_to_next_deadline(), expect) << "probe " << i;
    EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(1000).len(0));
    h.inject(ack_seg(1001, 0));
    h.expect_silence();
    expect *= 2;
  }
  EXPECT_EQ(h.tcp().stats().window_probes, 5u);
  EXPECT_EQ(info_of(h, c).state, TcpState::kEstablished);
  // The window opens: the waiting bytes go at once.
  h.inject(ack_seg(1001, 65535));
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1001).len(500).payload(rest));
}

TEST(FlowControl, LostWindowUpdateRecoveredByProbe) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0, 0);
  const auto out = pattern_bytes(100, 14);
  ASSERT_EQ(h.tcp().send(c, out), 100);
  h.expect_silence();
  EXPECT_EQ(h.advance_to_next_deadline(), ms(200));
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(0).len(0));
  // The peer's window update was lost; its answer to the probe carries the open window.
  h.inject(ack_seg(1, 5000));
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).len(100).payload(out));
}

TEST(FlowControl, UnansweredZeroWindowProbesTimeOut) {
  HarnessOptions o;
  o.tcp.max_retransmits = 3;
  TcpHarness h(o);
  const ConnId c = open_with_rtt(h, peer_options(false), 0, 0);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(100)), 100);
  for (const TimeNs expect : {ms(200), ms(400), ms(800)}) {
    EXPECT_EQ(h.advance_to_next_deadline(), expect);
    EXPECT_SEGMENT(h.sent_one(), Match().rseq(0).len(0));
  }
  EXPECT_EQ(h.advance_to_next_deadline(), ms(1600));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kRst | kAck));
  bool closed = false;
  for (const TcpEvent& e : h.events()) {
    closed |= e.type == TcpEventType::kClosed && e.error == ETIMEDOUT;
  }
  EXPECT_TRUE(closed);
  EXPECT_EQ(info_of(h, c).error, ETIMEDOUT);
}

TEST(FlowControl, ClosedWindowWithDataInFlightIsNotTimedOutWhilePeerAnswers) {
  // The peer closes its window while our data is in flight (it shrank it). Our timed-out
  // retransmissions then act as window probes, and as long as the peer answers them the
  // connection MUST stay open (RFC 1122 4.2.2.17), however many there are.
  HarnessOptions o;
  o.tcp.max_retransmits = 3;
  TcpHarness h(o);
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  const auto out = pattern_bytes(3 * kMss, 19);
  ASSERT_EQ(h.tcp().send(c, out), 3 * kMss);
  EXPECT_EQ(h.sent().size(), 3u);
  h.inject(ack_seg(1 + kMss, 0));
  for (int i = 0; i < 10; ++i) {
    h.advance_to_next_deadline();
    const auto s = h.sent();
    ASSERT_FALSE(s.empty()) << "round " << i;
    h.inject(ack_seg(1 + kMss, 0));
  }
  EXPECT_EQ(info_of(h, c).state, TcpState::kEstablished);
  EXPECT_TRUE(h.events().empty());
  EXPECT_EQ(h.tcp().stats().conn_timeouts, 0u);
  // The window opens: everything is delivered.
  h.inject(ack_seg(1 + kMss, 65535));
  h.advance_to_next_deadline();
  h.inject(ack_seg(1 + 3 * kMss, 65535));
  EXPECT_EQ(info_of(h, c).snd_una.raw() - h.iss, 1 + 3 * kMss);
  // A peer that stops answering is given up on.
  ASSERT_EQ(h.tcp().send(c, out), 3 * kMss);
  h.sent();
  h.inject(ack_seg(1 + 4 * kMss, 0));
  for (int i = 0; i < 20 && info_of(h, c).state == TcpState::kEstablished; ++i) {
    h.advance_to_next_deadline();
  }
  EXPECT_EQ(info_of(h, c).state, TcpState::kClosed);
  EXPECT_EQ(info_of(h, c).error, ETIMEDOUT);
}

// ---- receive window -------------------------------------------------------------------

TEST(FlowControl, ReceiveWindowShrinksTrimsAndReopensWithoutSws) {
  HarnessOptions o;
  o.rx_capacity = 4096;
  o.tcp.delayed_ack = false;
  TcpHarness h(o);
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  const auto in = pattern_bytes(8000, 15);
  h.inject(data_seg(1, slice(in, 0, kMss)));
  EXPECT_SEGMENT(h.sent_one(), Match().rack(1 + kMss).window(4096 - kMss));
  h.inject(data_seg(1 + kMss, slice(in, kMss, kMss)));
  EXPECT_SEGMENT(h.sent_one(), Match().rack(1 + 2 * kMss).window(4096 - 2 * kMss));
  // 1460 bytes into a 1176-byte window: the excess is cut off, the window reaches 0.
  h.inject(data_seg(1 + 2 * kMss, slice(in, 2 * kMss, kMss)));
  EXPECT_SEGMENT(h.sent_one(), Match().rack(4097).window(0));
  EXPECT_EQ(h.tcp().stats().data_trimmed, 3u * kMss - 4096);
  // Data into the closed window: dropped, answered with the same ACK.
  h.inject(data_seg(4097, slice(in, 4096, 100)));
  EXPECT_SEGMENT(h.sent_one(), Match().rack(4097).window(0));
  // A zero-window probe below rcv_nxt is answered too.
  h.inject(ack_seg(1, 65535, 4096));
  EXPECT_SEGMENT(h.sent_one(), Match().rack(4097).window(0));

  // The application reads a little: below min(buffer/2, MSS) no window update is worth
  // sending (receiver SWS avoidance, RFC 9293 3.8.6.2.2).
  std::string got;
  std::byte buf[4096];
  auto read_some = [&](std::size_t n) {
    const std::size_t k = h.buffers.read(c, wire::MutableByteSpan(buf, n));
    got.append(reinterpret_cast<const char*>(buf), k);
    h.tcp().consumed(c);
    return k;
  };
  ASSERT_EQ(read_some(1000), 1000u);
  h.expect_silence();
  // Past the threshold: the update announces all the free space.
  ASSERT_EQ(read_some(1000), 1000u);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rack(4097).window(2000));
  // The rest of the stream follows as the application keeps reading; every segment the
  // peer sends fits the window last advertised.
  std::uint32_t next = 4097;
  std::uint32_t right = 4097 + 2000;
  for (int round = 0; round < 50 && next < 8001; ++round) {
    const std::uint32_t n = std::min<std::uint32_t>({1000, 8001 - next, right - next});
    ASSERT_GT(n, 0u) << "window closed at " << next;
    h.inject(data_seg(next, slice(in, next - 1, n)));
    next += n;
    read_some(sizeof buf);
    for (const Sent& x : h.sent()) {
      EXPECT_EQ(x.rack, next);
      right = std::max(right, x.rack + x.window);
    }
  }
  read_some(sizeof buf);
  EXPECT_EQ(got, as_string(in));
}

TEST(FlowControl, NoWindowUpdateForSmallReadsOfLargeBuffer) {
  HarnessOptions o;
  o.tcp.delayed_ack = false;
  TcpHarness h(o);
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  const auto in = pattern_bytes(10 * kMss, 16);
  for (std::uint32_t i = 0; i < 10; ++i) {
    h.inject(data_seg(1 + i * kMss, slice(in, i * kMss, kMss)));
  }
  h.sent();
  std::byte buf[kMss];
  ASSERT_EQ(h.buffers.read(c, wire::MutableByteSpan(buf, 1000)), 1000u);
  h.tcp().consumed(c);
  h.expect_silence();
  ASSERT_EQ(h.buffers.read(c, wire::MutableByteSpan(buf, kMss)), kMss);
  h.tcp().consumed(c);
  h.expect_silence();
  ASSERT_EQ(h.buffers.read(c, wire::MutableByteSpan(buf, kMss)), kMss);
  h.tcp().consumed(c);
  // 3920 bytes freed: at least two segments' worth, the update goes out.
  const Sent u = h.sent_one();
  EXPECT_SEGMENT(u, Match().flags(kAck).rack(1 + 10 * kMss));
  EXPECT_EQ(u.window, 65536u - 10 * kMss + 1000 + 2 * kMss);
}

// ---- Nagle ------------------------------------------------------------------------------

TEST(FlowControl, NagleHoldsSmallSegmentsWhileDataInFlight) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  ASSERT_EQ(h.tcp().send(c, bytes_of("aaaa")), 4);
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).payload(bytes_of("aaaa")));
  ASSERT_EQ(h.tcp().send(c, bytes_of("bb")), 2);
  ASSERT_EQ(h.tcp().send(c, bytes_of("cc")), 2);
  h.expect_silence();
  // A full segment is never held.
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(kMss)), kMss);
  const Sent full = h.sent_one();
  EXPECT_SEGMENT(full, Match().rseq(5).len(kMss));
  // The ACK releases the held small tail as one segment.
  h.inject(ack_seg(5 + kMss));
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(5 + kMss).len(4));
}

TEST(FlowControl, NodelaySendsSmallSegmentsAtOnce) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  ASSERT_EQ(h.tcp().set_nodelay(c, true), 0);
  ASSERT_EQ(h.tcp().send(c, bytes_of("aaaa")), 4);
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).payload(bytes_of("aaaa")));
  ASSERT_EQ(h.tcp().send(c, bytes_of("bb")), 2);
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(5).payload(bytes_of("bb")));
  ASSERT_EQ(h.tcp().send(c, bytes_of("cc")), 2);
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(7).payload(bytes_of("cc")));
  // Turning Nagle back on holds again.
  ASSERT_EQ(h.tcp().set_nodelay(c, false), 0);
  ASSERT_EQ(h.tcp().send(c, bytes_of("dd")), 2);
  h.expect_silence();
  // set_nodelay(true) pushes what was held (like Linux's TCP_NODELAY).
  ASSERT_EQ(h.tcp().set_nodelay(c, true), 0);
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(9).payload(bytes_of("dd")));
}

// ---- delayed ACK ------------------------------------------------------------------------

TEST(FlowControl, DelayedAckAfterTimeoutOrSecondSegment) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  const auto in = pattern_bytes(6 * kMss, 17);
  h.inject(data_seg(1, slice(in, 0, kMss)));
  h.expect_silence();
  EXPECT_EQ(h.advance_to_next_deadline(), ms(40));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rack(1 + kMss));
  // Every second full-sized segment is ACKed at once (RFC 5681 4.2).
  for (std::uint32_t i = 1; i < 5; ++i) {
    h.inject(data_seg(1 + i * kMss, slice(in, i * kMss, kMss)));
    if (i % 2 == 1) {
      h.expect_silence();
    } else {
      EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rack(1 + (i + 1) * kMss));
    }
  }
  // Data going the other way carries the pending ACK, and the timer is cancelled.
  h.inject(data_seg(1 + 5 * kMss, slice(in, 5 * kMss, kMss)));
  h.expect_silence();
  ASSERT_EQ(h.tcp().send(c, bytes_of("reply")), 5);
  EXPECT_SEGMENT(h.sent_one(), Match().rack(1 + 6 * kMss).payload(bytes_of("reply")));
  h.inject(ack_seg(6, 65535, 1 + 6 * kMss));
  h.advance(ms(100));
  h.expect_silence();
  EXPECT_EQ(h.read_all(c), as_string(in));
}

TEST(FlowControl, DelayedAckOffAcksEverySegment) {
  HarnessOptions o;
  o.tcp.delayed_ack = false;
  TcpHarness h(o);
  open_with_rtt(h, peer_options(false), 0);
  const auto in = pattern_bytes(3 * kMss, 18);
  for (std::uint32_t i = 0; i < 3; ++i) {
    h.inject(data_seg(1 + i * kMss, slice(in, i * kMss, kMss)));
    EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rack(1 + (i + 1) * kMss));
  }
}

// ---- keepalive --------------------------------------------------------------------------

TEST(Keepalive, UnansweredProbesDropConnection) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  ASSERT_EQ(h.tcp().set_keepalive(c, true), 0);
  h.advance(seconds(7200) - ms(1));
  h.expect_silence();
  h.advance(ms(1));
  // RFC 9293 3.8.4: SEG.SEQ = SND.NXT - 1, no data.
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(0).len(0));
  for (int i = 1; i < 9; ++i) {
    EXPECT_EQ(h.advance_to_next_deadline(), seconds(75));
    EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(0).len(0));
  }
  EXPECT_EQ(h.tcp().stats().keepalive_probes, 9u);
  EXPECT_TRUE(h.events().empty());
  EXPECT_EQ(h.advance_to_next_deadline(), seconds(75));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kRst | kAck));
  bool closed = false;
  for (const TcpEvent& e : h.events()) {
    closed |= e.type == TcpEventType::kClosed && e.error == ETIMEDOUT;
  }
  EXPECT_TRUE(closed);
  EXPECT_EQ(h.tcp().stats().conn_timeouts, 1u);
}

TEST(Keepalive, AnsweredProbeKeepsConnectionAndRestartsIdleTime) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  ASSERT_EQ(h.tcp().set_keepalive(c, true), 0);
  h.advance(seconds(7200));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(0).len(0));
  for (int round = 0; round < 3; ++round) {
    h.inject(ack_seg(1));  // the peer answers
    // RFC 1122 4.2.3.6: the next probe only after another full idle period with nothing
    // received, not one probe interval later.
    h.advance(seconds(7200) - ms(1));
    h.expect_silence();
    h.advance(ms(1));
    EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(0).len(0)) << "round " << round;
  }
  EXPECT_EQ(h.tcp().stats().keepalive_probes, 4u);
  EXPECT_EQ(info_of(h, c).state, TcpState::kEstablished);
  EXPECT_EQ(h.tcp().stats().conn_timeouts, 0u);
}

// The peer half-closed (FIN) and then vanished: keepalive still finds out (as Linux).
TEST(Keepalive, ProbesInCloseWaitToo) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  ASSERT_EQ(h.tcp().set_keepalive(c, true), 0);
  Seg fin = ack_seg(1);
  fin.flags = kFin | kAck;
  h.inject(fin);
  h.sent();  // the ACK of the FIN
  ASSERT_EQ(info_of(h, c).state, TcpState::kCloseWait);
  h.advance(seconds(7200));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(0).len(0));
  for (int i = 1; i < 9; ++i) {
    h.advance_to_next_deadline();
    h.sent();
  }
  EXPECT_EQ(h.tcp().stats().keepalive_probes, 9u);
  h.advance_to_next_deadline();
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kRst | kAck));
  EXPECT_EQ(h.tcp().stats().conn_timeouts, 1u);
}

TEST(Keepalive, TrafficPostponesFirstProbe) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  ASSERT_EQ(h.tcp().set_keepalive(c, true), 0);
  h.advance(seconds(7000));
  h.inject(data_seg(1, bytes_of("hi")));
  EXPECT_EQ(h.read_all(c), "hi");
  h.advance(ms(40));
  h.sent();  // delayed ACK
  // No probe at 7200 s after set_keepalive: the connection was not idle that long.
  h.advance(seconds(200) - ms(40));
  h.expect_silence();
  h.advance(seconds(7000));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(0).len(0));
}

// ---- MSS --------------------------------------------------------------------------------

TEST(FlowControl, TinyPeerMssIsClamped) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false, -1, 1), 0);
  const std::uint32_t mss = info_of(h, c).snd_mss;
  EXPECT_GE(mss, 48u) << "not one byte per segment";
  EXPECT_LE(mss, 536u);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(1000)), 1000);
  const auto s = h.sent();
  ASSERT_FALSE(s.empty());
  for (const Sent& x : s) {
    EXPECT_EQ(x.payload.size(), mss);
  }
}

TEST(FlowControl, MissingMssMeans536) {
  TcpHarness h;
  wire::TcpOptions none;
  const ConnId c = open_with_rtt(h, none, 0);
  EXPECT_EQ(info_of(h, c).snd_mss, 536u);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(1000)), 1000);
  const auto s = h.sent();
  ASSERT_EQ(s.size(), 1u) << "Nagle holds the 464-byte tail";
  EXPECT_EQ(s[0].payload.size(), 536u);
}

}  // namespace
}  // namespace xtcp::test
