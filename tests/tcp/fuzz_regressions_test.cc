// Regression tests for engine defects found by fuzz/fuzz_tcp.cc, each replayed as the
// shortest segment-level script that shows it (the fuzzer input is named in the comment).
#include <gtest/gtest.h>

#include <cerrno>

#include "tests/support/tcp_harness.h"
#include "tests/tcp/engine_test_util.h"

namespace xtcp::test {
namespace {

using namespace wire::tcp_flags;  // NOLINT

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
    EXPECT_TRUE(s.has(kSyn) || s.rseq != 0) << "sequence number of the SYN reused: " << s.describe();
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

}  // namespace
}  // namespace xtcp::test
