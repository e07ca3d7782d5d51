// Malformed and hostile segments against a stack with two established connections: each
// test checks the specific TcpStats counter moved, that nothing harmful went out (no RST,
// no SYN-ACK, no bytes delivered that should not be), and that the victim and ANOTHER
// connection on the same stack still carry data afterwards.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "stack/wire/ipv4.h"
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

Seg data_seg(std::uint32_t seq, std::string_view text) {
  Seg s = seg(kAck | kPsh, seq, 1);
  s.payload = bytes_of(text);
  return s;
}

std::string as_string(const std::vector<std::byte>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size());
}

// The TCP part of the packet the harness builds for s.
std::vector<std::byte> tcp_part(const TcpHarness& h, const Seg& s) {
  const auto p = h.build(s);
  return std::vector<std::byte>(p.begin() + wire::kIpv4HeaderMin, p.end());
}

// Wraps TCP bytes in a correct IPv4 header from the peer to the stack. The TCP checksum is
// recomputed when there is room for it, unless keep_checksum.
std::vector<std::byte> ip_packet(std::vector<std::byte> tcp, bool keep_checksum = false) {
  if (!keep_checksum && tcp.size() >= wire::kTcpHeaderMin) {
    wire::fill_tcp_checksum(wire::MutableByteSpan(tcp.data(), tcp.size()), kPeerAddr, kStackAddr);
  }
  std::vector<std::byte> p(wire::kIpv4HeaderMin + tcp.size());
  wire::Ipv4Fields ipf;
  ipf.total_length = static_cast<std::uint16_t>(p.size());
  ipf.id = 7;
  ipf.protocol = wire::kProtoTcp;
  ipf.src = kPeerAddr;
  ipf.dst = kStackAddr;
  wire::emit_ipv4_header(p.data(), ipf);
  std::copy(tcp.begin(), tcp.end(), p.begin() + wire::kIpv4HeaderMin);
  return p;
}

// s (built without options) with raw option bytes (a multiple of 4) spliced in after the
// fixed header and the data offset set to match.
std::vector<std::byte> with_raw_options(const TcpHarness& h, const Seg& s,
                                        std::initializer_list<std::uint8_t> opts) {
  EXPECT_EQ(opts.size() % 4, 0u);
  auto tcp = tcp_part(h, s);
  std::vector<std::byte> o;
  for (std::uint8_t b : opts) {
    o.push_back(static_cast<std::byte>(b));
  }
  tcp.insert(tcp.begin() + wire::kTcpHeaderMin, o.begin(), o.end());
  tcp[12] = static_cast<std::byte>(((wire::kTcpHeaderMin + o.size()) / 4) << 4);
  return tcp;
}

// Two established connections: the victim (peer port 40000) and a bystander (40001).
struct Pair {
  Flow victim;
  Flow other;
};

Pair open_pair(TcpHarness& h) {
  Pair p;
  const ConnId v = h.establish_passive(no_ts_options());
  p.victim = save_flow(h, v);
  p.other = open_passive(h, 40001);
  use_flow(h, p.victim);
  EXPECT_EQ(h.stack->ip().stats().drop_truncated, 0u);
  return p;
}

// Nothing went out, the victim is still established, and both connections work.
void expect_unharmed(TcpHarness& h, Pair& p) {
  h.expect_silence();
  for (const TcpEvent& e : h.events()) {
    EXPECT_TRUE(e.type == TcpEventType::kReadable) << to_string(e.type);
  }
  EXPECT_EQ(state_of(h, p.victim.conn), TcpState::kEstablished);
  expect_flow_works(h, p.other, "other");
  expect_flow_works(h, p.victim, "victim");
  EXPECT_EQ(h.tcp().stats().rst_out, 0u);
}

// ---- header structure -------------------------------------------------------------------------

TEST(BadInput, TruncatedHeaderEveryLength) {
  TcpHarness h;
  Pair p = open_pair(h);
  const auto full = tcp_part(h, data_seg(1, "payload"));
  const auto before = h.tcp().stats();
  for (std::size_t n = 0; n < wire::kTcpHeaderMin; ++n) {
    const auto cut = full.begin() + static_cast<std::ptrdiff_t>(n);
    h.inject_raw(ip_packet(std::vector<std::byte>(full.begin(), cut), true));
  }
  EXPECT_EQ(h.tcp().stats().segs_in, before.segs_in + 20);
  EXPECT_EQ(h.tcp().stats().drop_malformed, before.drop_malformed + 20);
  EXPECT_EQ(h.stack->ip().stats().drop_truncated, 0u) << "the IP header itself was fine";
  EXPECT_EQ(h.read_all(p.victim.conn), "");
  expect_unharmed(h, p);
}

TEST(BadInput, DataOffsetBelowFive) {
  TcpHarness h;
  Pair p = open_pair(h);
  const auto before = h.tcp().stats();
  for (std::uint8_t off = 0; off < 5; ++off) {
    auto tcp = tcp_part(h, data_seg(1, "payload"));
    tcp[12] = static_cast<std::byte>(off << 4);
    h.inject_raw(ip_packet(tcp));
  }
  EXPECT_EQ(h.tcp().stats().drop_malformed, before.drop_malformed + 5);
  EXPECT_EQ(h.read_all(p.victim.conn), "");
  expect_unharmed(h, p);
}

TEST(BadInput, DataOffsetBeyondSegment) {
  TcpHarness h;
  Pair p = open_pair(h);
  const auto before = h.tcp().stats();
  auto bare = tcp_part(h, seg(kAck, 1, 1));  // 20 bytes
  bare[12] = static_cast<std::byte>(6 << 4);
  h.inject_raw(ip_packet(bare));
  auto with_data = tcp_part(h, data_seg(1, "0123456789012345"));  // 36 bytes
  with_data[12] = static_cast<std::byte>(15 << 4);                 // claims 60
  h.inject_raw(ip_packet(with_data));
  EXPECT_EQ(h.tcp().stats().drop_malformed, before.drop_malformed + 2);
  EXPECT_EQ(h.read_all(p.victim.conn), "");
  expect_unharmed(h, p);
}

// ---- options ----------------------------------------------------------------------------------

TEST(BadInput, ZeroAndOneOptionLength) {
  TcpHarness h;
  Pair p = open_pair(h);
  const auto before = h.tcp().stats();
  const Seg d = data_seg(1, "payload");
  h.inject_raw(ip_packet(with_raw_options(h, d, {8, 0, 1, 1})));     // timestamp, length 0
  h.inject_raw(ip_packet(with_raw_options(h, d, {1, 0x22, 0, 1})));  // unknown kind, length 0
  h.inject_raw(ip_packet(with_raw_options(h, d, {2, 1, 1, 1})));     // length 1
  h.inject_raw(ip_packet(with_raw_options(h, d, {1, 1, 1, 0x22})));  // length byte missing
  EXPECT_EQ(h.tcp().stats().drop_bad_options, before.drop_bad_options + 4);
  EXPECT_EQ(h.read_all(p.victim.conn), "");
  expect_unharmed(h, p);
}

TEST(BadInput, OverlongOptionLength) {
  TcpHarness h;
  Pair p = open_pair(h);
  const auto before = h.tcp().stats();
  const Seg d = data_seg(1, "payload");
  h.inject_raw(ip_packet(with_raw_options(h, d, {5, 40, 0, 0, 0, 0, 0, 0})));  // SACK, 40 > 8
  h.inject_raw(ip_packet(with_raw_options(h, d, {1, 1, 0x22, 3})));            // 3 > 2 left
  h.inject_raw(ip_packet(with_raw_options(h, d, {0x22, 255, 0, 0})));
  EXPECT_EQ(h.tcp().stats().drop_bad_options, before.drop_bad_options + 3);
  EXPECT_EQ(h.read_all(p.victim.conn), "");
  expect_unharmed(h, p);
}

TEST(BadInput, MssOptionWithWrongSize) {
  TcpHarness h;
  Pair p = open_pair(h);
  const auto before = h.tcp().stats();
  h.peer_port = 40002;  // a new connection attempt to the listener
  Seg syn = seg(kSyn, 0, 0);
  h.inject_raw(ip_packet(with_raw_options(h, syn, {2, 3, 5, 1})));                 // MSS, 3
  h.inject_raw(ip_packet(with_raw_options(h, syn, {2, 6, 5, 0xb4, 0, 0, 1, 1})));  // MSS, 6
  EXPECT_EQ(h.tcp().stats().drop_bad_options, before.drop_bad_options + 2);
  EXPECT_EQ(h.tcp().stats().passive_opens, before.passive_opens);
  EXPECT_EQ(h.tcp().connection_count(), 2u);
  expect_unharmed(h, p);
}

// RFC 7323 2.3: a shift above 14 is used as 14 (and logged); the connection works.
TEST(BadInput, WindowScaleAbove14IsClampedAndWorks) {
  TcpHarness h;
  Pair p = open_pair(h);
  const auto before = h.tcp().stats();
  Flow f = open_passive(h, 40002, no_ts_options(true, 15));
  EXPECT_EQ(h.tcp().stats().wscale_clamped, before.wscale_clamped + 1);
  Seg small = seg(kAck, 1, 1);
  small.window = 1;
  h.inject(small);
  h.expect_silence();
  ConnInfo info{};
  ASSERT_EQ(h.tcp().info(f.conn, &info), 0);
  EXPECT_EQ(info.snd_wnd, 1u << 14) << "window field scaled by 14, not 15";
  expect_flow_works(h, f, "scaled");
  use_flow(h, p.victim);
  expect_unharmed(h, p);
}

// ---- checksum, flags, ports -------------------------------------------------------------------

TEST(BadInput, BadChecksum) {
  TcpHarness h;
  Pair p = open_pair(h);
  const auto before = h.tcp().stats();
  Seg d = data_seg(1, "corrupt");
  d.bad_checksum = true;
  h.inject(d);
  Seg rst = seg(kRst, 1, 0);  // would reset the connection if believed
  rst.bad_checksum = true;
  h.inject(rst);
  EXPECT_EQ(h.tcp().stats().drop_bad_checksum, before.drop_bad_checksum + 2);
  EXPECT_EQ(h.tcp().stats().rst_in, 0u);
  EXPECT_EQ(h.read_all(p.victim.conn), "");
  expect_unharmed(h, p);
}

// Flag combinations no real stack sends: dropped without an answer wherever they go.
void expect_bad_flags_dropped(std::uint8_t flags) {
  TcpHarness h;
  Pair p = open_pair(h);
  const auto before = h.tcp().stats();
  Seg s = data_seg(1, "flags");
  s.flags = flags;
  s.urgent = 1;
  h.inject(s);  // at the victim, in window
  s.seq = 0;
  h.peer_port = 40002;
  h.inject(s);  // at the listener
  h.stack_port = 9999;
  h.inject(s);  // at a closed port
  use_flow(h, p.victim);
  EXPECT_EQ(h.tcp().stats().drop_bad_flags, before.drop_bad_flags + 3) << int{flags};
  EXPECT_EQ(h.tcp().stats().rst_in, 0u);
  EXPECT_EQ(h.tcp().stats().passive_opens, before.passive_opens);
  EXPECT_EQ(h.read_all(p.victim.conn), "");
  expect_unharmed(h, p);
}

TEST(BadInput, AllFlags) { expect_bad_flags_dropped(kFin | kSyn | kRst | kPsh | kAck | kUrg); }
TEST(BadInput, SynFin) { expect_bad_flags_dropped(kSyn | kFin); }
TEST(BadInput, SynRst) { expect_bad_flags_dropped(kSyn | kRst); }
TEST(BadInput, NullFlags) { expect_bad_flags_dropped(0); }
TEST(BadInput, FinPshUrgWithoutAck) { expect_bad_flags_dropped(kFin | kPsh | kUrg); }

TEST(BadInput, PortZero) {
  TcpHarness h;
  Pair p = open_pair(h);
  const auto before = h.tcp().stats();
  auto syn = tcp_part(h, seg(kSyn, 0, 0));
  syn[0] = syn[1] = std::byte{0};  // source port 0, to the listener
  h.inject_raw(ip_packet(syn));
  auto to_zero = tcp_part(h, data_seg(1, "x"));
  to_zero[2] = to_zero[3] = std::byte{0};  // destination port 0
  h.inject_raw(ip_packet(to_zero));
  auto ack = tcp_part(h, seg(kAck, 1, 1));
  ack[0] = ack[1] = std::byte{0};
  h.inject_raw(ip_packet(ack));
  EXPECT_EQ(h.tcp().stats().drop_bad_port, before.drop_bad_port + 3);
  EXPECT_EQ(h.tcp().stats().passive_opens, before.passive_opens);
  expect_unharmed(h, p);
}

// ---- sequence space ---------------------------------------------------------------------------

TEST(BadInput, DataBeyondReceiveWindowIsTrimmedAndAcked) {
  HarnessOptions o;
  o.rx_capacity = 4096;  // a 4096-byte window, no scaling
  TcpHarness h(o);
  Pair p = open_pair(h);
  const auto before = h.tcp().stats();
  const auto big = pattern_bytes(5000, 3);
  Seg d = seg(kAck | kPsh, 1, 1);
  d.payload = big;
  h.inject(d);
  // The bytes beyond the window are cut; the ACK tells the sender where the window ends.
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(1).rack(4097).window(0).len(0));
  EXPECT_EQ(h.tcp().stats().data_trimmed, before.data_trimmed + 904);
  EXPECT_EQ(h.tcp().stats().bytes_in, before.bytes_in + 4096);
  EXPECT_EQ(h.read_all(p.victim.conn),
            as_string(std::vector<std::byte>(big.begin(), big.begin() + 4096)));
  // Reading reopens the window, which is announced.
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(1).rack(4097).window(4096));

  // Entirely beyond the window: not acceptable, answered with an ACK (3.10.7.4).
  Seg far = seg(kAck | kPsh, 4097 + 4096 + 10, 1);
  far.payload = bytes_of("far");
  h.inject(far);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(1).rack(4097).len(0));
  EXPECT_EQ(h.tcp().stats().drop_out_of_window, before.drop_out_of_window + 1);
  EXPECT_EQ(h.read_all(p.victim.conn), "");
  p.victim.peer_next = 4097;
  expect_unharmed(h, p);
}

// First copy wins: bytes already received (delivered or queued out of order) are never
// replaced by a retransmission carrying different bytes for the same sequence numbers.
TEST(BadInput, OverlappingRetransmissionKeepsFirstCopy) {
  TcpHarness h;
  Pair p = open_pair(h);
  const auto before = h.tcp().stats();
  h.inject(data_seg(1, "AAAA"));
  h.inject(data_seg(1, "BBBBbbbb"));  // 1..4 again, different bytes, plus 5..8
  EXPECT_EQ(h.tcp().stats().data_trimmed, before.data_trimmed + 4);
  EXPECT_EQ(h.read_all(p.victim.conn), "AAAAbbbb");
  h.sent();  // ACKs

  h.inject(data_seg(13, "CCCC"));  // out of order: 13..16
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rack(9).sack_blocks(1));
  EXPECT_EQ(h.tcp().stats().ooo_segments, before.ooo_segments + 1);
  h.inject(data_seg(9, "XXXXyyyyZZ"));  // 9..18, overlapping the queued 13..16
  EXPECT_EQ(h.read_all(p.victim.conn), "XXXXCCCCZZ");
  const auto acks = h.sent();
  ASSERT_FALSE(acks.empty());
  EXPECT_SEGMENT(acks.back(), Match().flags(kAck).rack(19).sack_blocks(0));
  ConnInfo info{};
  ASSERT_EQ(h.tcp().info(p.victim.conn, &info), 0);
  EXPECT_EQ(info.rcv_nxt.raw(), kPeerIsn + 19);

  // One in-order segment spanning several queued pieces: the gaps come from it, the
  // queued ranges from the queue.
  h.inject(data_seg(23, "DDDD"));  // 23..26
  h.inject(data_seg(31, "EEEE"));  // 31..34
  h.sent();
  h.inject(data_seg(19, "1111xxxx2222xxxx3333"));  // 19..38
  EXPECT_EQ(h.read_all(p.victim.conn), "1111DDDD2222EEEE3333");
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rack(39).sack_blocks(0));
  p.victim.peer_next = 39;
  expect_unharmed(h, p);
}

TEST(BadInput, BogusUrgentPointerDeliversInline) {
  TcpHarness h;
  Pair p = open_pair(h);
  const auto before = h.tcp().stats();
  Seg u = data_seg(1, "urgent");
  u.flags |= kUrg;
  u.urgent = 60000;  // far beyond the segment
  h.inject(u);
  Seg z = data_seg(7, "zero");
  z.flags |= kUrg;
  z.urgent = 0;
  h.inject(z);
  Seg nourg = data_seg(11, "plain");
  nourg.urgent = 3;  // pointer without the flag: meaningless, not counted
  h.inject(nourg);
  EXPECT_EQ(h.tcp().stats().urgent_ignored, before.urgent_ignored + 2);
  EXPECT_EQ(h.read_all(p.victim.conn), "urgentzeroplain");
  // Ordinary ACKs: every second segment at once, the last one delayed.
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(1).rack(11).len(0));
  h.advance(h.tcp().config().delayed_ack_timeout);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(1).rack(16).len(0));
  p.victim.peer_next = 16;
  expect_unharmed(h, p);
}

// ---- SACK ---------------------------------------------------------------------------------------

TEST(BadInput, SackBlocksOutsideWindowAreIgnored) {
  TcpHarness h;
  Pair p = open_pair(h);
  const auto out = pattern_bytes(2920, 5);
  ASSERT_EQ(h.tcp().send(p.victim.conn, out), 2920);
  const auto flight = h.sent();
  ASSERT_EQ(flight.size(), 2u);
  const auto before = h.tcp().stats();
  Seg a = seg(kAck, 1, 1);
  a.opts.sack_count = 4;
  const std::uint32_t base = h.iss;
  a.opts.sack[0] = {wire::SeqNum(base + 3021), wire::SeqNum(base + 3120)};  // beyond SND.MAX
  a.opts.sack[1] = {wire::SeqNum(base - 1000), wire::SeqNum(base - 500)};   // below SND.UNA
  a.opts.sack[2] = {wire::SeqNum(base + 100), wire::SeqNum(base + 100)};    // empty
  a.opts.sack[3] = {wire::SeqNum(base + 900), wire::SeqNum(base + 200)};    // inverted
  h.inject(a);
  h.expect_silence();
  EXPECT_EQ(h.tcp().stats().sack_blocks_in, before.sack_blocks_in + 4);
  EXPECT_EQ(h.tcp().stats().sack_blocks_invalid, before.sack_blocks_invalid + 4);
  EXPECT_EQ(h.tcp().stats().retransmits, before.retransmits);
  h.inject(seg(kAck, 1, 2921));
  h.expect_silence();
  p.victim.stack_next = 2921;
  expect_unharmed(h, p);
}

TEST(BadInput, StormOfTinySackBlocksIsBounded) {
  TcpHarness h;
  Pair p = open_pair(h);
  const std::size_t in_flight = 10 * 1460;
  ASSERT_EQ(h.tcp().send(p.victim.conn, pattern_bytes(in_flight, 9)),
            static_cast<std::int64_t>(in_flight));
  ASSERT_EQ(h.sent().size(), 10u);
  const auto before = h.tcp().stats();
  const std::size_t mem_before = h.tcp().memory_bytes();
  std::size_t max_mem = mem_before;
  std::size_t sent_total = 0;
  std::size_t bytes_resent = 0;
  std::uint32_t x = 12345;
  constexpr int kAcks = 2500;  // 4 blocks each: 10,000 blocks
  for (int i = 0; i < kAcks; ++i) {
    Seg a = seg(kAck, 1, 1);
    a.opts.sack_count = 4;
    for (auto& b : a.opts.sack) {
      x = x * 1103515245u + 12345u;
      const std::uint32_t off = 2 + (x >> 8) % (in_flight - 2);
      b = {wire::SeqNum(h.iss + off), wire::SeqNum(h.iss + off + 1)};
    }
    h.inject(a);
    for (const Sent& s : h.sent()) {
      ++sent_total;
      bytes_resent += s.payload.size();
      EXPECT_FALSE(s.has(kRst));
    }
    max_mem = std::max(max_mem, h.tcp().memory_bytes());
  }
  EXPECT_EQ(h.tcp().stats().sack_blocks_in, before.sack_blocks_in + 4 * kAcks);
  EXPECT_EQ(h.tcp().stats().sack_blocks_invalid, before.sack_blocks_invalid);
  // With SACK only ACKs that SACK something new are duplicate ACKs (RFC 6675 section 2):
  // the random one-byte blocks soon repeat each other.
  EXPECT_GE(h.tcp().stats().dup_acks, before.dup_acks + 3);
  EXPECT_LT(h.tcp().stats().dup_acks, before.dup_acks + kAcks);
  EXPECT_EQ(h.tcp().stats().fast_retransmits, before.fast_retransmits + 1);
  EXPECT_LE(max_mem, mem_before + 4096) << "SACK state must stay bounded";
  // Each byte in flight is resent at most once per recovery, whatever the blocks say.
  EXPECT_LE(bytes_resent, in_flight) << sent_total << " segments";
  EXPECT_EQ(state_of(h, p.victim.conn), TcpState::kEstablished);
  // Everything acknowledged: back to normal.
  h.inject(seg(kAck, 1, static_cast<std::uint32_t>(in_flight + 1)));
  h.sent();
  p.victim.stack_next = static_cast<std::uint32_t>(in_flight + 1);
  expect_unharmed(h, p);
}

}  // namespace
}  // namespace xtcp::test
