// The stack behind its own input (a burst filled the device queue): timers that came due
// since the link was last empty wait for the backlog to drain, at most max_timer_delay,
// because the ACK they wait for may be among the packets not yet read; and a retransmitted
// request met in a backlog is not answered from the cache (it may have crossed the answer).
// Virtual time; a batch of 2 packets per round makes a backlog of a few packets.
#include <gtest/gtest.h>

#include "tests/support/tcp_harness.h"
#include "tests/tcp/data_path_util.h"

namespace xtcp::test {
namespace {

using namespace wire::tcp_flags;  // NOLINT
using dp::ack_seg;
using dp::data_seg;
using dp::peer_options;

HarnessOptions small_batches(TimeNs max_timer_delay = seconds(2)) {
  HarnessOptions o;
  o.rx_batch = 2;
  o.max_timer_delay = max_timer_delay;
  return o;
}

// A packet the stack reads and drops (bad checksum): room-filler for a backlog.
void queue_junk(TcpHarness& h, int n) {
  for (int i = 0; i < n; ++i) {
    Seg s = data_seg(1, bytes_of("junk"));
    s.bad_checksum = true;
    h.link.queue_inbound(h.build(s));
  }
}

// Sends 4 bytes from the stack and returns after the first transmission was taken.
ConnId established_with_data_in_flight(TcpHarness& h) {
  const ConnId c = h.establish_passive(peer_options(true));
  EXPECT_EQ(h.tcp().send(c, bytes_of("DATA")), 4);
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).payload(bytes_of("DATA")));
  h.clock.advance(ms(10));
  h.stack->poll();  // the link is empty: it was last drained now
  return c;
}

// The ACK of our data waits behind two other packets when the retransmission timer comes
// due: one round of one poll takes the two, leaves the ACK, and must not retransmit.
TEST(InputBacklog, RetransmissionTimerWaitsForTheAckInTheBacklog) {
  TcpHarness h(small_batches());
  established_with_data_in_flight(h);
  queue_junk(h, 2);
  h.link.queue_inbound(h.build(ack_seg(5)));
  h.clock.advance(ms(1500));  // past the RTO (200 ms after the handshake's RTT sample)
  EXPECT_EQ(h.stack->poll(1), 2);
  h.expect_silence();
  EXPECT_EQ(h.stack->backlog_polls(), 1u);
  EXPECT_EQ(h.stack->poll(), 1);  // the ACK: nothing is left to retransmit
  h.expect_silence();
  h.advance(seconds(60));
  h.expect_silence();
  EXPECT_EQ(h.tcp().stats().rto_expirations, 0u);
  EXPECT_EQ(h.tcp().stats().retransmits, 0u);
}

// The same with max_timer_delay 0: the timer fires with the ACK still unread (what the
// stack did before it held timers), which is what the rule above prevents.
TEST(InputBacklog, WithoutTheHoldTheTimerFiresBeforeTheAckIsRead) {
  TcpHarness h(small_batches(0));
  established_with_data_in_flight(h);
  queue_junk(h, 2);
  h.link.queue_inbound(h.build(ack_seg(5)));
  h.clock.advance(ms(1500));
  EXPECT_EQ(h.stack->poll(1), 2);
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).payload(bytes_of("DATA")));
  EXPECT_EQ(h.tcp().stats().rto_expirations, 1u);
}

// A backlog that never drains holds timers at most max_timer_delay past their deadline: a
// stack that stays behind its input still retransmits what was really lost.
TEST(InputBacklog, TimersWaitAtMostMaxTimerDelay) {
  TcpHarness h(small_batches(seconds(3)));
  established_with_data_in_flight(h);  // drained at T; the RTO (200 ms after the handshake's
                                       // RTT sample) is due at T - 10 ms + 200 ms
  queue_junk(h, 6);
  h.clock.advance(seconds(2));
  EXPECT_EQ(h.stack->poll(1), 2);
  h.expect_silence();
  h.clock.advance(ms(1150));  // T + 3.15 s: the deadline is 2.96 s past
  EXPECT_EQ(h.stack->poll(1), 2);
  h.expect_silence();
  h.clock.advance(ms(100));   // T + 3.25 s: 3.06 s past, though packets still wait
  EXPECT_EQ(h.stack->poll(1), 2);
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).payload(bytes_of("DATA")));
  EXPECT_EQ(h.stack->backlog_polls(), 3u);
}

// Timers due before the link was last empty fire at once, backlog or not: every packet
// that came before their deadline has been read.
TEST(InputBacklog, TimerDueBeforeTheLastDrainFires) {
  TcpHarness h(small_batches());
  established_with_data_in_flight(h);
  h.clock.advance(seconds(2));
  h.stack->poll();  // empty link: drained now, the RTO fires
  EXPECT_SEGMENT(h.sent_one(), Match().rseq(1).payload(bytes_of("DATA")));
  EXPECT_EQ(h.tcp().stats().rto_expirations, 1u);
}

ConnId answered_app_ack(TcpHarness& h) {
  h.listen_options.app_ack = true;
  const ConnId c = h.establish_passive(peer_options(true));
  h.inject(data_seg(1, bytes_of("REQ1")));
  h.events();
  std::vector<std::byte> buf(4);
  EXPECT_EQ(h.buffers.read(c, buf), 4u);
  EXPECT_EQ(h.tcp().send(c, bytes_of("ANS1")), 4);
  EXPECT_SEGMENT(h.sent_one(), Match().rack(5).payload(bytes_of("ANS1")));
  return c;
}

// The client's retransmitted request crossed our answer in our own queue: met in a backlog,
// with the client's ACK of the answer still behind it, it draws no resend of the answer.
TEST(InputBacklog, CrossedDuplicateRequestIsNotAnsweredFromTheCache) {
  TcpHarness h(small_batches());
  answered_app_ack(h);
  queue_junk(h, 2);
  h.link.queue_inbound(h.build(data_seg(1, bytes_of("REQ1"))));
  queue_junk(h, 1);
  h.link.queue_inbound(h.build(ack_seg(5, 65535, 5)));
  EXPECT_EQ(h.stack->poll(1), 2);  // a full round: the backlog is known from here on
  EXPECT_EQ(h.stack->poll(1), 2);  // the duplicate request, then junk
  h.expect_silence();
  EXPECT_EQ(h.tcp().stats().crossed_duplicates, 1u);
  EXPECT_EQ(h.stack->poll(), 1);   // the client's ACK of the answer
  h.advance(seconds(60));
  h.expect_silence();
  EXPECT_EQ(h.tcp().stats().answers_from_cache, 0u);
}

// Without a backlog the same duplicate means the answer was lost: it goes again at once.
TEST(InputBacklog, DuplicateRequestWithoutBacklogIsAnsweredFromTheCache) {
  TcpHarness h(small_batches());
  answered_app_ack(h);
  h.inject(data_seg(1, bytes_of("REQ1")));
  EXPECT_SEGMENT(h.sent_one(), Match().rack(5).payload(bytes_of("ANS1")));
  EXPECT_EQ(h.tcp().stats().answers_from_cache, 1u);
  EXPECT_EQ(h.tcp().stats().crossed_duplicates, 0u);
}

}  // namespace
}  // namespace xtcp::test
