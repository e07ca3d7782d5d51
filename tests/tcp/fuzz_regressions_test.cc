// Regression tests for engine defects found by fuzz/fuzz_tcp.cc, each replayed as the
// shortest segment-level script that shows it (the fuzzer input is named in the comment).
#include <gtest/gtest.h>

#include <cerrno>

#include "stack/wire/checksum.h"
#include "stack/wire/icmp.h"
#include "stack/wire/ipv4.h"
#include "tests/support/tcp_harness.h"
#include "tests/tcp/engine_test_util.h"

namespace xtcp::test {
namespace {

using namespace wire::tcp_flags;  // NOLINT

// ICMP "fragmentation needed" (RFC 1191) from the peer, quoting a segment we sent with
// sequence number seq (absolute) on the harness's current ports.
std::vector<std::byte> frag_needed(const TcpHarness& h, std::uint32_t seq, std::uint16_t mtu) {
  constexpr std::size_t kQuote = wire::kIpv4HeaderMin + wire::kTcpHeaderMin;
  constexpr std::size_t kTotal = wire::kIpv4HeaderMin + wire::kIcmpHeaderLen + kQuote;
  std::vector<std::byte> p(kTotal);
  std::byte* icmp = p.data() + wire::kIpv4HeaderMin;
  std::byte* quote = icmp + wire::kIcmpHeaderLen;
  wire::Ipv4Fields q;
  q.total_length = static_cast<std::uint16_t>(kQuote);
  q.protocol = wire::kProtoTcp;
  q.src = kStackAddr;
  q.dst = kPeerAddr;
  wire::emit_ipv4_header(quote, q);
  wire::TcpFields t;
  t.src_port = h.stack_port;
  t.dst_port = h.peer_port;
  t.seq = wire::SeqNum(seq);
  t.flags = kSyn;
  wire::emit_tcp_header(quote + wire::kIpv4HeaderMin, t, wire::TcpOptions{});
  wire::store_u8(icmp, wire::kIcmpDestUnreachable);
  wire::store_u8(icmp + 1, wire::kUnreachFragNeeded);
  wire::store_be16(icmp + 6, mtu);
  wire::store_be16(icmp + 2,
                   wire::internet_checksum(wire::ByteSpan(icmp, kTotal - wire::kIpv4HeaderMin)));
  wire::Ipv4Fields f;
  f.total_length = static_cast<std::uint16_t>(kTotal);
  f.protocol = wire::kProtoIcmp;
  f.src = kPeerAddr;
  f.dst = kStackAddr;
  wire::emit_ipv4_header(p.data(), f);
  return p;
}

// Simultaneous open, then close() in SYN-RECEIVED: FIN-WAIT-1 with our SYN still
// unacknowledged (RFC 9293 3.10.4 allows the FIN then). The retransmission timeout resent
// "the first unacknowledged byte", which was the SYN's sequence number: a FIN at the ISS,
// without SYN, that the peer's window check drops, so our SYN-ACK was never repeated.
// What is lost first is the SYN-ACK, and that is what must go out again.
TEST(FuzzRegressions, CloseInSynReceivedRetransmitsSynAckNotFinAtIss) {
  TcpHarness h;
  h.stack_port = 50000;
  h.peer_port = 80;
  const std::int64_t c = h.tcp().connect(kPeerAddr, h.peer_port, h.stack_port);
  ASSERT_GE(c, 0);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kSyn).rseq(0));
  Seg syn;
  syn.flags = kSyn;
  syn.seq = 0;
  syn.opts = no_ts_options();
  h.inject(syn);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kSyn | kAck).rseq(0).rack(1));
  ASSERT_EQ(state_of(h, static_cast<ConnId>(c)), TcpState::kSynReceived);

  ASSERT_EQ(h.tcp().close(static_cast<ConnId>(c)), 0);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kFin | kAck).rseq(1).rack(1).len(0));
  ASSERT_EQ(state_of(h, static_cast<ConnId>(c)), TcpState::kFinWait1);

  h.advance_to_next_deadline();
  for (const Sent& s : h.sent()) {
    EXPECT_TRUE(s.has(kSyn) || s.rseq != 0)
        << "sequence number of the SYN reused: " << s.describe();
    EXPECT_SEGMENT(s, Match().flags(kSyn | kAck).rseq(0).rack(1).len(0));
  }

  // The peer acknowledges the SYN and the FIN: FIN-WAIT-2, then its FIN ends the connection.
  Seg ack;
  ack.seq = 1;
  ack.ack = 2;
  h.inject(ack);
  h.expect_silence();
  EXPECT_EQ(state_of(h, static_cast<ConnId>(c)), TcpState::kFinWait2);
  Seg fin;
  fin.flags = kFin | kAck;
  fin.seq = 1;
  fin.ack = 2;
  h.inject(fin);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(2).rack(2));
  EXPECT_EQ(count_in(h, TcpState::kTimeWait), 1u);
}

// unlisten() reset the accept queue but not the half-open connections of the port. The
// final ACK of such a handshake then made an ESTABLISHED connection that no listener would
// queue and no application could ever accept or close: without keepalive it lived forever.
// Like Linux (request sockets die with their listener, and the ACK finds no socket), the
// ACK is now answered with RST (RFC 9293 3.10.7.1) and the connection freed.
TEST(FuzzRegressions, HandshakeCompletedAfterUnlistenIsResetNotOrphaned) {
  TcpHarness h;
  ASSERT_EQ(h.tcp().listen(kServerPort), 0);
  Seg syn;
  syn.flags = kSyn;
  syn.seq = 0;
  syn.opts = no_ts_options();
  h.inject(syn);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kSyn | kAck).rseq(0).rack(1));
  ASSERT_EQ(h.tcp().unlisten(kServerPort), 0);
  h.expect_silence();

  Seg ack;
  ack.seq = 1;
  ack.ack = 1;
  h.inject(ack);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kRst).rseq(1).len(0));
  EXPECT_TRUE(h.events().empty());
  EXPECT_EQ(h.tcp().connection_count(), 0u);
  EXPECT_EQ(count_in(h, TcpState::kEstablished), 0u);
  EXPECT_EQ(h.stack->next_deadline(), kNever);
}

// An ICMP "fragmentation needed" quoting our SYN made the engine resend "from SND.UNA",
// which before the SYN is acknowledged is the SYN's own sequence number: SND.NXT fell back
// to the ISS. Bytes queued in SYN-SENT were then never sent once the SYN-ACK came (SND.NXT
// below SND.UNA made the flight look like 4 GB), and after close() in SYN-RECEIVED the FIN
// went out at the ISS. The SYN is not data; its retransmission is the RTO's job (RFC 1191
// shrinks the MSS of data segments only).
// Active open from port 50000 to port 80; the SYN has been sent (and checked).
ConnId open_active(TcpHarness& h) {
  h.stack_port = 50000;
  h.peer_port = 80;
  const std::int64_t c = h.tcp().connect(kPeerAddr, h.peer_port, h.stack_port);
  EXPECT_GE(c, 0);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kSyn).rseq(0));
  return static_cast<ConnId>(c);
}

TEST(FuzzRegressions, FragNeededQuotingOurSynDoesNotRewindIntoIt) {
  TcpHarness h;
  const ConnId conn = open_active(h);
  const auto data = pattern_bytes(100);
  ASSERT_EQ(h.tcp().send(conn, data), 100);
  h.inject_raw(frag_needed(h, h.iss, 300));  // MSS 260 on this path
  h.expect_silence();
  EXPECT_EQ(h.stack->ip().stats().icmp_errors_delivered, 1u);

  Seg synack;
  synack.flags = kSyn | kAck;
  synack.seq = 0;
  synack.ack = 1;
  synack.opts = no_ts_options();
  h.inject(synack);
  const auto sent = h.sent();
  ASSERT_FALSE(sent.empty());
  EXPECT_SEGMENT(sent.back(), Match().flags(kAck | kPsh).rseq(1).rack(1).payload(data));
  ConnInfo info{};
  ASSERT_EQ(h.tcp().info(conn, &info), 0);
  EXPECT_LE(info.snd_una - info.snd_nxt, 0) << "SND.NXT below SND.UNA";
  EXPECT_EQ(info.snd_una.raw() - h.iss, 1u);
  EXPECT_EQ(info.snd_nxt.raw() - h.iss, 101u);
}

// A path MTU learned while our SYN is out (RFC 1191) survives the SYN-ACK: the peer's larger
// MSS does not undo it, and the timestamp option comes off it as off any MSS.
TEST(FuzzRegressions, PathMtuLearnedInSynSentCapsTheNegotiatedMss) {
  for (const bool timestamps : {false, true}) {
    TcpHarness h;
    const ConnId conn = open_active(h);
    h.inject_raw(frag_needed(h, h.iss, 1000));  // MSS 960 on this path
    Seg synack;
    synack.flags = kSyn | kAck;
    synack.seq = 0;
    synack.ack = 1;
    synack.opts = no_ts_options();
    synack.opts.has_mss = true;
    synack.opts.mss = 1460;
    if (timestamps) {
      synack.opts.has_timestamp = true;
      synack.opts.ts_val = 7;
      synack.opts.ts_ecr = 0;
    }
    h.inject(synack);
    ConnInfo info{};
    ASSERT_EQ(h.tcp().info(conn, &info), 0);
    EXPECT_EQ(info.snd_mss, timestamps ? 948u : 960u) << "timestamps " << timestamps;
    h.sent();
    ASSERT_EQ(h.tcp().send(conn, pattern_bytes(3000)), 3000);
    const auto sent = h.sent();
    ASSERT_FALSE(sent.empty());
    for (const auto& s : sent) {
      EXPECT_LE(s.payload.size(), info.snd_mss);
    }
    EXPECT_EQ(sent.front().payload.size(), info.snd_mss);
  }
}

TEST(FuzzRegressions, FragNeededInSynReceivedThenCloseSendsFinAfterSyn) {
  TcpHarness h;
  h.stack_port = 50000;
  h.peer_port = 80;
  const std::int64_t c = h.tcp().connect(kPeerAddr, h.peer_port, h.stack_port);
  ASSERT_GE(c, 0);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kSyn).rseq(0));
  Seg syn;
  syn.flags = kSyn;
  syn.seq = 0;
  syn.opts = no_ts_options();
  h.inject(syn);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kSyn | kAck).rseq(0).rack(1));
  h.inject_raw(frag_needed(h, h.iss, 576));
  h.expect_silence();
  ASSERT_EQ(h.tcp().close(static_cast<ConnId>(c)), 0);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kFin | kAck).rseq(1).rack(1).len(0));
}

// After close() the application no longer holds the handle, and the id is freed as soon as
// the connection ends (here on entering TIME-WAIT) and may name the next connection. The
// peer's FIN still queued kPeerClosed for it (and data or ACKs arriving after close() could
// queue kReadable or kWritable): the application would see them on a stale or reused id.
TEST(FuzzRegressions, NoEventsForAHandleReleasedByClose) {
  TcpHarness h;
  const ConnId c = h.establish_passive(no_ts_options());
  ASSERT_EQ(h.tcp().close(c), 0);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kFin | kAck).rseq(1).rack(1));
  Seg fin;
  fin.flags = kFin | kAck;
  fin.seq = 1;
  fin.ack = 2;
  h.inject(fin);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(2).rack(2));
  EXPECT_EQ(count_in(h, TcpState::kTimeWait), 1u);
  for (const TcpEvent& e : h.events()) {
    ADD_FAILURE() << "event " << to_string(e.type) << " for released connection " << e.conn;
  }
}

// The same for close() in SYN-SENT: shutdown() ended the connection and queued kClosed
// before close() marked the handle released, then the id was freed at once.
TEST(FuzzRegressions, NoClosedEventForAConnectClosedInSynSent) {
  TcpHarness h;
  h.stack_port = 50000;
  h.peer_port = 80;
  const std::int64_t c = h.tcp().connect(kPeerAddr, h.peer_port, h.stack_port);
  ASSERT_GE(c, 0);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kSyn).rseq(0));
  ASSERT_EQ(h.tcp().close(static_cast<ConnId>(c)), 0);
  h.expect_silence();  // RFC 9293 3.10.4: SYN-SENT, delete the TCB
  EXPECT_EQ(h.tcp().connection_count(), 0u);
  for (const TcpEvent& e : h.events()) {
    ADD_FAILURE() << "event " << to_string(e.type) << " for released connection " << e.conn;
  }
}

}  // namespace
}  // namespace xtcp::test
