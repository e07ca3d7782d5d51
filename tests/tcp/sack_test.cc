// Selective acknowledgment (RFC 2018) both ways: as receiver, out-of-order segments are
// queued (within bounds) and ACKed at once with SACK blocks, the newest first, and a filled
// hole delivers everything in order once; as sender, loss recovery resends only the holes
// the peer's SACK blocks leave.
#include <gtest/gtest.h>

#include <utility>

#include "tests/support/tcp_harness.h"
#include "tests/tcp/data_path_util.h"

namespace xtcp::test {
namespace {

using namespace wire::tcp_flags;  // NOLINT
using dp::ack_seg;
using dp::data_seg;
using dp::info_of;
using dp::open_with_rtt;
using dp::peer_options;
using dp::slice;
using dp::with_sack;

constexpr std::uint32_t kMss = 1460;
using Block = std::pair<std::uint32_t, std::uint32_t>;

// SACK blocks of a segment the stack sent, relative to the peer's ISN.
std::vector<Block> blocks_of(const Sent& s) {
  std::vector<Block> out;
  for (std::size_t i = 0; i < s.opts.sack_count; ++i) {
    out.emplace_back(s.opts.sack[i].left.raw() - kPeerIsn, s.opts.sack[i].right.raw() - kPeerIsn);
  }
  return out;
}

// ---- receiver -------------------------------------------------------------------------

TEST(SackReceiver, OutOfOrderAckedAtOnceNewestBlockFirst) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(true), 0);
  const auto data = pattern_bytes(5 * kMss, 3);
  auto seg = [&](std::uint32_t i) { return data_seg(1 + i * kMss, slice(data, i * kMss, kMss)); };

  // Segment 1 before 0: an immediate duplicate ACK (RFC 5681 4.2, no delayed ACK) with one
  // SACK block for it.
  h.inject(seg(1));
  Sent a = h.sent_one();
  EXPECT_SEGMENT(a, Match().flags(kAck).rack(1).len(0).sack_blocks(1));
  EXPECT_EQ(blocks_of(a), (std::vector<Block>{{1 + kMss, 1 + 2 * kMss}}));

  // Segment 3: the block holding it comes first (RFC 2018 section 4), then the older one.
  h.inject(seg(3));
  a = h.sent_one();
  EXPECT_SEGMENT(a, Match().rack(1).sack_blocks(2));
  EXPECT_EQ(blocks_of(a),
            (std::vector<Block>{{1 + 3 * kMss, 1 + 4 * kMss}, {1 + kMss, 1 + 2 * kMss}}));

  // Segment 2 joins them into one range.
  h.inject(seg(2));
  a = h.sent_one();
  EXPECT_EQ(blocks_of(a), (std::vector<Block>{{1 + kMss, 1 + 4 * kMss}}));
  EXPECT_EQ(h.read_all(c), "") << "nothing in order yet";

  // Segment 0 fills the hole: the cumulative ACK jumps over everything queued, at once
  // (a filled hole is ACKed immediately), with no SACK left.
  h.inject(seg(0));
  a = h.sent_one();
  EXPECT_SEGMENT(a, Match().flags(kAck).rack(1 + 4 * kMss).sack_blocks(0));
  EXPECT_EQ(h.read_all(c), dp::as_string(slice(data, 0, 4 * kMss)));

  // Old copies are not delivered again.
  h.inject(seg(1));
  h.inject(seg(3));
  for (const Sent& x : h.sent()) {
    EXPECT_SEGMENT(x, Match().rack(1 + 4 * kMss).sack_blocks(0));
  }
  h.inject(seg(4));
  EXPECT_EQ(h.read_all(c), dp::as_string(slice(data, 4 * kMss, kMss)));
  EXPECT_EQ(h.tcp().stats().bytes_in, 5u * kMss);
  EXPECT_EQ(h.tcp().stats().ooo_segments, 3u);
}

TEST(SackReceiver, PartialFillKeepsRemainingBlocks) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(true), 0);
  const auto data = pattern_bytes(4 * kMss, 4);
  auto seg = [&](std::uint32_t i) { return data_seg(1 + i * kMss, slice(data, i * kMss, kMss)); };
  h.inject(seg(1));
  h.inject(seg(3));
  h.sent();
  h.inject(seg(0));  // ack moves to 2*MSS+1; segment 3 still waits beyond a hole
  const Sent a = h.sent_one();
  EXPECT_SEGMENT(a, Match().rack(1 + 2 * kMss).sack_blocks(1));
  EXPECT_EQ(blocks_of(a), (std::vector<Block>{{1 + 3 * kMss, 1 + 4 * kMss}}));
  h.inject(seg(2));
  EXPECT_SEGMENT(h.sent_one(), Match().rack(1 + 4 * kMss).sack_blocks(0));
  EXPECT_EQ(h.read_all(c), dp::as_string(data));
}

TEST(SackReceiver, OverlappingOutOfOrderPiecesDeliveredOnce) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(true), 0);
  const auto data = pattern_bytes(3000, 5);
  // Overlapping, repeated, and nested out-of-order pieces.
  h.inject(data_seg(1001, slice(data, 1000, 500)));
  h.inject(data_seg(1201, slice(data, 1200, 800)));
  h.inject(data_seg(1101, slice(data, 1100, 100)));
  h.inject(data_seg(2501, slice(data, 2500, 500)));
  h.inject(data_seg(1001, slice(data, 1000, 1000)));
  const auto acks = h.sent();
  ASSERT_FALSE(acks.empty());
  EXPECT_EQ(blocks_of(acks.back()).size(), 2u);
  h.inject(data_seg(1, slice(data, 0, 1100)));
  h.inject(data_seg(2001, slice(data, 2000, 600)));
  EXPECT_EQ(h.read_all(c), dp::as_string(data));
  EXPECT_EQ(info_of(h, c).rcv_nxt.raw() - kPeerIsn, 3001u);
  EXPECT_EQ(h.tcp().stats().bytes_in, 3000u);
}

TEST(SackReceiver, OutOfOrderFinProcessedWhenHoleFills) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(true), 0);
  const auto data = pattern_bytes(2 * kMss, 6);
  Seg last = data_seg(1 + kMss, slice(data, kMss, kMss));
  last.flags = kAck | kFin;
  h.inject(last);
  EXPECT_SEGMENT(h.sent_one(), Match().rack(1).sack_blocks(1));
  EXPECT_EQ(info_of(h, c).state, TcpState::kEstablished);
  h.inject(data_seg(1, slice(data, 0, kMss)));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rack(2 + 2 * kMss).sack_blocks(0));
  EXPECT_EQ(info_of(h, c).state, TcpState::kCloseWait);
  bool peer_closed = false;
  for (const TcpEvent& e : h.events()) {
    peer_closed |= e.type == TcpEventType::kPeerClosed;
  }
  EXPECT_TRUE(peer_closed);
  EXPECT_EQ(h.read_all(c), dp::as_string(data));
}

TEST(SackReceiver, QueueBoundedBySegments) {
  HarnessOptions o;
  o.tcp.ooo_max_segments_per_conn = 3;
  TcpHarness h(o);
  const ConnId c = open_with_rtt(h, peer_options(true), 0);
  const auto data = pattern_bytes(1100, 7);
  // Five separate pieces above a hole at [1, 101): only three fit.
  for (std::uint32_t k = 1; k <= 5; ++k) {
    h.inject(data_seg(1 + 200 * k, slice(data, 200 * k, 100)));
  }
  EXPECT_EQ(h.tcp().stats().ooo_segments, 3u);
  EXPECT_EQ(h.tcp().stats().ooo_dropped, 2u);
  const auto acks = h.sent();
  ASSERT_EQ(acks.size(), 5u) << "every out-of-order segment is ACKed, kept or not";
  EXPECT_EQ(blocks_of(acks.back()).size(), 3u);
  // The peer resends everything in order: each byte arrives once, in order.
  h.inject(data_seg(1, slice(data, 0, 1100)));
  EXPECT_EQ(h.read_all(c), dp::as_string(data));
  EXPECT_EQ(h.tcp().stats().bytes_in, 1100u);
}

TEST(SackReceiver, QueueBoundedByBytes) {
  HarnessOptions o;
  o.tcp.ooo_max_bytes_per_conn = 250;
  TcpHarness h(o);
  const ConnId c = open_with_rtt(h, peer_options(true), 0);
  const auto data = pattern_bytes(800, 8);
  h.inject(data_seg(101, slice(data, 100, 100)));
  h.inject(data_seg(301, slice(data, 300, 100)));
  h.inject(data_seg(501, slice(data, 500, 100)));  // would make 300 bytes
  EXPECT_EQ(h.tcp().stats().ooo_segments, 2u);
  EXPECT_EQ(h.tcp().stats().ooo_dropped, 1u);
  h.sent();
  h.inject(data_seg(1, slice(data, 0, 100)));
  // In order up to 201; [201, 301) is missing, [301, 401) is queued.
  EXPECT_SEGMENT(h.sent_one(), Match().rack(201).sack_blocks(1));
  h.inject(data_seg(201, slice(data, 200, 600)));
  EXPECT_EQ(h.read_all(c), dp::as_string(data));
}

TEST(SackReceiver, QueueBoundedAcrossConnections) {
  // ooo_max_bytes_total caps all connections together: the second connection gets what
  // the first left, and space comes back when the first one's hole is filled.
  HarnessOptions o;
  o.tcp.ooo_max_bytes_total = 1000;
  TcpHarness h(o);
  const ConnId a = open_with_rtt(h, peer_options(true), 0);
  const std::uint32_t iss_a = h.iss;
  // A second connection from another peer port.
  h.peer_port = kPeerPort + 1;
  Seg syn;
  syn.flags = kSyn;
  syn.seq = 0;
  syn.opts = peer_options(true);
  h.inject(syn);
  h.sent_one();
  h.inject(Seg{});
  const std::int64_t b = h.tcp().accept(kServerPort);
  ASSERT_GE(b, 0);
  const std::uint32_t iss_b = h.iss;
  const auto data = pattern_bytes(1000, 20);
  h.inject(data_seg(101, slice(data, 100, 800)));  // b: 800 bytes queued
  h.peer_port = kPeerPort;
  h.iss = iss_a;
  h.inject(data_seg(101, slice(data, 100, 800)));  // a: would make 1600: dropped whole
  EXPECT_EQ(h.tcp().stats().ooo_segments, 1u);
  EXPECT_EQ(h.tcp().stats().ooo_dropped, 1u);
  h.inject(data_seg(101, slice(data, 100, 150)));  // a: 950 in all, fits
  EXPECT_EQ(h.tcp().stats().ooo_segments, 2u);
  h.inject(data_seg(1001, pattern_bytes(100)));  // a: would make 1050
  EXPECT_EQ(h.tcp().stats().ooo_dropped, 2u);
  h.sent();
  // a's hole filled: what it held is delivered and its share returns to the pool.
  h.inject(data_seg(1, slice(data, 0, 100)));
  EXPECT_EQ(h.read_all(a), dp::as_string(slice(data, 0, 250)));
  h.peer_port = kPeerPort + 1;
  h.iss = iss_b;
  h.inject(data_seg(1001, pattern_bytes(150)));
  EXPECT_EQ(h.tcp().stats().ooo_dropped, 2u) << "freed space is reusable";
  h.inject(data_seg(1, slice(data, 0, 100)));
  EXPECT_EQ(h.read_all(static_cast<ConnId>(b)), dp::as_string(slice(data, 0, 900)));
}

TEST(SackReceiver, FloodOfTinyPiecesKeepsMemoryBounded) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(true), 0);
  const std::size_t before = h.tcp().memory_bytes();
  const auto data = pattern_bytes(8000, 9);
  for (std::uint32_t k = 1; k <= 2000; ++k) {
    h.inject(data_seg(1 + 2 * k, slice(data, 2 * k, 1)));
  }
  h.sent();
  const auto& st = h.tcp().stats();
  EXPECT_EQ(st.ooo_segments, 256u) << "default ooo_max_segments_per_conn";
  EXPECT_EQ(st.ooo_dropped, 2000u - 256u);
  EXPECT_LT(h.tcp().memory_bytes() - before, 64u * 1024u);
  // Still a working connection: in-order data flows.
  h.inject(data_seg(1, slice(data, 0, 8000)));
  EXPECT_EQ(h.read_all(c), dp::as_string(data));
}

TEST(SackReceiver, SackBlocksOnDataSegmentsComeOutOfThePayload) {
  // A data segment carrying SACK blocks must still fit the peer's MSS (options are not part
  // of it): 1460 - 12 bytes of SACK option without timestamps, 1460 - 12 - 12 with them.
  for (const bool ts : {false, true}) {
    SCOPED_TRACE(ts);
    TcpHarness h;
    wire::TcpOptions opts = peer_options(true);
    opts.has_timestamp = ts;
    opts.ts_val = 100;
    const ConnId c = open_with_rtt(h, opts, 0);
    h.inject(h.with_ts(data_seg(1 + kMss, pattern_bytes(100))));  // a hole at [1, 1461)
    EXPECT_SEGMENT(h.sent_one(), Match().rack(1).sack_blocks(1));
    ASSERT_EQ(h.tcp().send(c, pattern_bytes(3 * kMss)), 3 * kMss);
    const auto s = h.sent();
    ASSERT_GE(s.size(), 2u);
    const std::size_t room = kMss - 12 - (ts ? 12 : 0);
    for (const Sent& x : s) {
      EXPECT_EQ(x.opts.sack_count, 1u);
      EXPECT_EQ(x.payload.size(), room) << x.describe();
    }
    EXPECT_EQ(h.stack->ip().stats().drop_out_invalid, 0u);
  }
}

// ---- sender ---------------------------------------------------------------------------

TEST(SackSender, RetransmitsOnlyTheHoles) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(true), 0);
  const auto data = pattern_bytes(10 * kMss, 10);
  ASSERT_EQ(h.tcp().send(c, data), 10 * kMss);
  ASSERT_EQ(h.sent().size(), 10u);
  auto rel = [](std::uint32_t i) { return 1 + i * kMss; };
  // Segments 0, 3 and 6 are lost. Each arriving segment draws a duplicate ACK whose
  // SACK blocks describe what the peer holds, newest block first.
  auto dup = [&](std::vector<Block> b) { h.inject(with_sack(ack_seg(1), std::move(b), h.iss)); };
  dup({{rel(1), rel(2)}});
  dup({{rel(1), rel(3)}});
  h.expect_silence();
  dup({{rel(4), rel(5)}, {rel(1), rel(3)}});
  // Third duplicate: fast retransmit of the first segment.
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(rel(0)).len(kMss).payload(slice(data, 0, kMss)));
  // Later duplicates: the next hole, skipping SACKed data ([rel1, rel3) is held).
  dup({{rel(4), rel(6)}, {rel(1), rel(3)}});
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(rel(3)).len(kMss).payload(slice(data, 3 * kMss, kMss)));
  dup({{rel(7), rel(8)}, {rel(4), rel(6)}, {rel(1), rel(3)}});
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(rel(6)).len(kMss).payload(slice(data, 6 * kMss, kMss)));
  dup({{rel(7), rel(9)}, {rel(4), rel(6)}, {rel(1), rel(3)}});
  dup({{rel(7), rel(10)}, {rel(4), rel(6)}, {rel(1), rel(3)}});
  h.expect_silence();  // no holes left below the highest SACKed byte
  // The retransmissions arrive: partial ACKs up to the next hole, which was already
  // resent; nothing is sent a second time.
  h.inject(with_sack(ack_seg(rel(3)), {{rel(4), rel(6)}, {rel(7), rel(10)}}, h.iss));
  h.inject(with_sack(ack_seg(rel(6)), {{rel(7), rel(10)}}, h.iss));
  h.expect_silence();
  h.inject(ack_seg(rel(10)));
  h.expect_silence();
  EXPECT_EQ(h.tcp().stats().retransmits, 3u);
  EXPECT_EQ(h.tcp().stats().fast_retransmits, 1u);
  EXPECT_EQ(h.tcp().stats().rto_expirations, 0u);
  EXPECT_EQ(info_of(h, c).snd_una.raw() - h.iss, rel(10));
  // RFC 6582 step 3 option 1: min(ssthresh, max(FlightSize, SMSS) + SMSS), flight now 0.
  EXPECT_EQ(info_of(h, c).cwnd, 2 * kMss);
}

TEST(SackSender, InvalidBlocksIgnored) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(true), 0);
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(4 * kMss)), 4 * kMss);
  h.sent();
  h.inject(with_sack(ack_seg(1 + kMss),
                     {{1 + 5 * kMss, 1 + 6 * kMss},  // beyond anything sent
                      {1, 1 + kMss},                 // below the cumulative ACK
                      {1 + 3 * kMss, 1 + 2 * kMss}},  // empty / reversed
                     h.iss));
  EXPECT_EQ(h.tcp().stats().sack_blocks_invalid, 3u);
  EXPECT_EQ(info_of(h, c).snd_una.raw() - h.iss, 1 + kMss);
}

TEST(SackSender, NotUsedWithoutPermission) {
  // Without SACK-permitted in the SYN the stack neither sends blocks nor trusts any.
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  h.inject(data_seg(101, pattern_bytes(100)));
  EXPECT_SEGMENT(h.sent_one(), Match().rack(1).sack_blocks(0));
  ASSERT_EQ(h.tcp().send(c, pattern_bytes(10 * kMss)), 10 * kMss);
  h.sent();
  for (int k = 0; k < 5; ++k) {
    h.inject(with_sack(ack_seg(1), {{1 + kMss, 1 + 2 * kMss}}, h.iss));
  }
  EXPECT_EQ(h.tcp().stats().sack_blocks_in, 0u);
}

}  // namespace
}  // namespace xtcp::test
