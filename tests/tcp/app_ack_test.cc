// Application-controlled ACKs (XTCP): the request/answer flows on the wire (the answer
// carries the request's ACK; a lost request, a lost answer, a lost client ACK), the ACK
// deadline, partial release, and the window telling the truth about held data.
#include <gtest/gtest.h>

#include "tests/support/tcp_harness.h"
#include "tests/tcp/data_path_util.h"

namespace xtcp::test {
namespace {

using namespace wire::tcp_flags;  // NOLINT
using dp::ack_seg;
using dp::data_seg;
using dp::info_of;
using dp::peer_options;

ConnId open_app_ack(TcpHarness& h, TimeNs deadline = 0) {
  h.listen_options.app_ack = true;
  h.listen_options.ack_deadline = deadline;
  return h.establish_passive(peer_options(true));
}

std::string read_n(TcpHarness& h, ConnId c, std::size_t n) {
  std::vector<std::byte> buf(n);
  const std::size_t got = h.buffers.read(c, buf);
  return std::string(reinterpret_cast<const char*>(buf.data()), got);
}

// The request is not ACKed by itself; the answer carries the ACK.
TEST(AppAck, AnswerCarriesTheAck) {
  TcpHarness h;
  const ConnId c = open_app_ack(h);
  h.inject(data_seg(1, bytes_of("REQ1")));
  h.advance(seconds(2));  // far past any delayed-ACK time: still no ACK of its own
  h.expect_silence();
  ASSERT_EQ(read_n(h, c, 4), "REQ1");
  ASSERT_EQ(h.tcp().send(c, bytes_of("ANS1")), 4);
  const Sent answer = h.sent_one();
  EXPECT_SEGMENT(answer, Match().flags(kAck | kPsh).rseq(1).rack(5).payload(bytes_of("ANS1")));
  // The client's ACK purges the answer from the transmit cache.
  EXPECT_EQ(h.buffers.tx_queued(c), 4u);
  h.inject(ack_seg(5, 65535, 5));
  EXPECT_EQ(h.buffers.tx_queued(c), 0u);
  h.advance(seconds(5));
  h.expect_silence();
}

// ackd smaller than what was delivered: only the released part is ACKed.
TEST(AppAck, PartialReleaseAcksOnlyThatMuch) {
  TcpHarness h;
  const ConnId c = open_app_ack(h);
  h.inject(data_seg(1, bytes_of("HELLOWORLD")));
  ASSERT_EQ(read_n(h, c, 5), "HELLO");
  h.tcp().consumed(c);  // xtcp_send with len 0: an ACK alone
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(1).rack(6).len(0));
  ASSERT_EQ(read_n(h, c, 5), "WORLD");
  h.tcp().consumed(c);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rack(11).len(0));
}

// The request is lost; its retransmission is served in due course. A duplicate of a
// request still held (not yet answered) draws nothing.
TEST(AppAck, RetransmittedRequestWhileHeldIsSilent) {
  TcpHarness h;
  const ConnId c = open_app_ack(h);
  h.inject(data_seg(1, bytes_of("REQ1")));
  h.inject(data_seg(1, bytes_of("REQ1")));  // the client's RTO fired before we answered
  h.expect_silence();
  EXPECT_EQ(h.tcp().stats().held_duplicates, 1u);
  ASSERT_EQ(read_n(h, c, 8), "REQ1") << "held data is stored once";
  ASSERT_EQ(h.tcp().send(c, bytes_of("ANS1")), 4);
  EXPECT_SEGMENT(h.sent_one(), Match().rack(5).payload(bytes_of("ANS1")));
}

// The answer is lost; the client retransmits the request; the cached answer goes again
// with the ACK, and the application is not woken.
TEST(AppAck, RetransmittedRequestIsAnsweredFromCache) {
  TcpHarness h;
  const ConnId c = open_app_ack(h);
  h.inject(data_seg(1, bytes_of("REQ1")));
  h.events();
  ASSERT_EQ(read_n(h, c, 4), "REQ1");
  ASSERT_EQ(h.tcp().send(c, bytes_of("ANS1")), 4);
  h.sent();  // the answer is lost on the way
  h.inject(data_seg(1, bytes_of("REQ1")));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck | kPsh).rseq(1).rack(5).payload(bytes_of("ANS1")));
  EXPECT_EQ(h.tcp().stats().answers_from_cache, 1u);
  EXPECT_TRUE(h.events().empty()) << "the application must not see the duplicate";
  EXPECT_EQ(h.buffers.readable(c), 0u);
}

// The client's ACK of the answer is lost: the answer is resent on the resend timer until
// ACKed; with no ACK at all the connection is eventually marked down and its cached answer
// purged.
TEST(AppAck, AnswerResentUntilAckedOrDown) {
  HarnessOptions o;
  o.tcp.max_retransmits = 3;
  TcpHarness h(o);
  const ConnId c = open_app_ack(h);
  h.inject(data_seg(1, bytes_of("REQ1")));
  ASSERT_EQ(read_n(h, c, 4), "REQ1");
  ASSERT_EQ(h.tcp().send(c, bytes_of("ANS1")), 4);
  h.sent();
  h.advance_to_next_deadline();
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).rack(5).payload(bytes_of("ANS1")));
  h.advance_to_next_deadline();
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).rack(5).payload(bytes_of("ANS1")));
  h.advance_to_next_deadline();
  h.sent();
  h.advance_to_next_deadline();  // gives up: RST and "down"
  const auto ev = h.events();
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back().type, TcpEventType::kClosed);
  EXPECT_EQ(ev.back().error, ETIMEDOUT);
  EXPECT_EQ(info_of(h, c).state, TcpState::kClosed);
  EXPECT_EQ(h.buffers.tx_queued(c), 0u) << "the cached answer is purged when the connection is down";
}

TEST(AppAck, DeadlineAcksAnywayWhenTheAnswerIsSlow) {
  TcpHarness h;
  const ConnId c = open_app_ack(h, ms(100));
  h.inject(data_seg(1, bytes_of("REQ1")));
  h.advance(ms(99));
  h.expect_silence();
  h.advance(ms(2));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rack(5).len(0));
  EXPECT_EQ(h.tcp().stats().ack_deadlines, 1u);
  // The late answer still goes out, and ACKs nothing new.
  ASSERT_EQ(read_n(h, c, 4), "REQ1");
  ASSERT_EQ(h.tcp().send(c, bytes_of("ANS1")), 4);
  EXPECT_SEGMENT(h.sent_one(), Match().rack(5).payload(bytes_of("ANS1")));
}

// Segments the server sends meanwhile (a push, a duplicate ACK for out-of-order data) do
// not cancel the deadline of the bytes the application holds.
TEST(AppAck, DeadlineSurvivesPushesAndDuplicateAcks) {
  TcpHarness h;
  const ConnId c = open_app_ack(h, ms(100));
  h.inject(data_seg(1, bytes_of("REQ1")));
  h.advance(ms(10));
  ASSERT_EQ(h.tcp().send(c, bytes_of("PUSH")), 4);  // a notification, ACKs nothing
  EXPECT_SEGMENT(h.sent_one(), Match().rack(1).payload(bytes_of("PUSH")));
  h.inject(data_seg(9, bytes_of("LATER")));  // a hole at 5..8: duplicate ACK with SACK
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rack(1).len(0));
  h.advance(ms(80));
  h.expect_silence();
  h.advance(ms(11));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rack(5).len(0)) << "the deadline ACKs the held request";
  EXPECT_EQ(h.tcp().stats().ack_deadlines, 1u);
}

TEST(AppAck, WindowCountsHeldBytes) {
  HarnessOptions o;
  o.rx_capacity = 8192;  // no window scaling needed at this size
  TcpHarness h(o);
  const ConnId c = open_app_ack(h);
  h.inject(data_seg(1, pattern_bytes(1000)));
  h.expect_silence();
  std::vector<std::byte> buf(400);
  ASSERT_EQ(h.buffers.read(c, buf), 400u);
  h.tcp().consumed(c);
  // 600 bytes still held, 7592 free after them: seen from the ACK point (401) the peer may
  // send 8192 bytes, exactly what the store can hold. The window tells the truth.
  const Sent ack = h.sent_one();
  EXPECT_EQ(ack.rack, 401u);
  EXPECT_EQ(ack.window, 8192u);
}

TEST(AppAck, FinIsAckedOnlyAfterHeldDataIsReleased) {
  TcpHarness h;
  const ConnId c = open_app_ack(h);
  Seg s = data_seg(1, bytes_of("BYE"));
  s.flags |= kFin;
  h.inject(s);
  h.expect_silence();
  ASSERT_EQ(read_n(h, c, 3), "BYE");
  h.tcp().consumed(c);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rack(5).len(0)) << "data and FIN ACKed together";
}

TEST(AppAck, ClassicListenerStillAcksByItself) {
  TcpHarness h;
  const ConnId c = h.establish_passive(peer_options(true));
  h.inject(data_seg(1, bytes_of("REQ1")));
  h.advance(ms(50));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rack(5).len(0));
  (void)c;
}

}  // namespace
}  // namespace xtcp::test
