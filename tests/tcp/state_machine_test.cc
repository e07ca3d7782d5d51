// RFC 9293 state transitions (section 3.3.2, figure 5) driven segment by segment in virtual
// time: the exact segments on the wire and the state after each step. Also RFC 2525 2.17
// (close with unread data), RFC 1337, RFC 6191 / RFC 1122 4.2.2.13 (TIME-WAIT reuse) and
// RFC 4987 SYN cookies.
#include <gtest/gtest.h>

#include <cerrno>

#include "tests/support/tcp_harness.h"
#include "tests/tcp/engine_test_util.h"

namespace xtcp::test {
namespace {

using namespace wire::tcp_flags;  // NOLINT

Seg syn_at(std::uint32_t rel_seq, const wire::TcpOptions& opts = no_ts_options()) {
  Seg s;
  s.flags = kSyn;
  s.seq = rel_seq;
  s.opts = opts;
  return s;
}

Seg seg(std::uint8_t flags, std::uint32_t seq, std::uint32_t ack) {
  Seg s;
  s.flags = flags;
  s.seq = seq;
  s.ack = ack;
  return s;
}

std::int64_t start_connect(TcpHarness& h) {
  h.stack_port = 50000;
  h.peer_port = 80;
  return h.tcp().connect(kPeerAddr, h.peer_port, h.stack_port);
}

// ---- opening ------------------------------------------------------------------------------

TEST(StateMachine, PassiveOpenListenSynReceivedEstablished) {
  TcpHarness h;
  ASSERT_EQ(h.tcp().listen(kServerPort), 0);
  EXPECT_EQ(count_in(h, TcpState::kListen), 1u);
  h.inject(syn_at(0));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kSyn | kAck).rseq(0).rack(1).len(0));
  EXPECT_EQ(count_in(h, TcpState::kSynReceived), 1u);
  EXPECT_EQ(h.tcp().accept(kServerPort), -EAGAIN);
  EXPECT_TRUE(h.events().empty());

  h.inject(seg(kAck, 1, 1));
  h.expect_silence();
  const auto ev = h.events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, TcpEventType::kAcceptable);
  EXPECT_EQ(ev[0].port, kServerPort);
  const std::int64_t c = h.tcp().accept(kServerPort);
  ASSERT_GE(c, 0);
  EXPECT_EQ(state_of(h, static_cast<ConnId>(c)), TcpState::kEstablished);
  EXPECT_EQ(count_in(h, TcpState::kSynReceived), 0u);
  EXPECT_EQ(count_in(h, TcpState::kEstablished), 1u);
  EXPECT_EQ(h.tcp().stats().passive_opens, 1u);
  EXPECT_EQ(h.tcp().stats().established, 1u);
}

TEST(StateMachine, ActiveOpenSynSentEstablished) {
  TcpHarness h;
  const std::int64_t c = start_connect(h);
  ASSERT_GE(c, 0);
  const Sent syn = h.sent_one();
  EXPECT_SEGMENT(syn, Match().flags(kSyn).rseq(0).len(0));
  EXPECT_TRUE(syn.opts.has_mss);
  EXPECT_EQ(state_of(h, static_cast<ConnId>(c)), TcpState::kSynSent);

  Seg synack = seg(kSyn | kAck, 0, 1);
  synack.opts = no_ts_options();
  h.inject(synack);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(1).rack(1).len(0));
  const auto ev = h.events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, TcpEventType::kConnected);
  EXPECT_EQ(ev[0].conn, static_cast<ConnId>(c));
  EXPECT_EQ(state_of(h, static_cast<ConnId>(c)), TcpState::kEstablished);
  EXPECT_EQ(h.tcp().stats().active_opens, 1u);
}

// An idle connection keeps only its hot record, whichever side opened it. The SYN-ACK's
// window is never scaled (RFC 7323 2.2), so after an active open the peer's window is no
// multiple of its scale until the peer sends again; the record keeps it rounded down to the
// scale (a little less than allowed), never down to a closed window.
TEST(StateMachine, IdleConnectionsKeepOnlyTheirHotRecordAfterEitherOpen) {
  TcpHarness passive;
  passive.establish_passive();
  passive.advance(seconds(1));
  EXPECT_EQ(passive.tcp().busy_connections(), 0u);

  TcpHarness active;
  const ConnId c = active.establish_active(TcpHarness::linux_syn_options(), 64240);  // Linux's SYN-ACK window
  active.advance(seconds(1));
  EXPECT_EQ(active.tcp().busy_connections(), 0u) << "the unscaled SYN-ACK window kept it busy";
  ConnInfo info{};
  ASSERT_EQ(active.tcp().info(c, &info), 0);
  EXPECT_EQ(info.snd_wnd, 64240u >> 7 << 7) << "rounded down to the peer's scale (7)";
  // It sends from the hot record alone.
  ASSERT_EQ(active.tcp().send(c, bytes_of("hello")), 5);
  EXPECT_SEGMENT(active.sent_one(), Match().flags(kAck | kPsh).rseq(1).rack(1).len(5));

  // A window below one unit of the scale would pack as closed: that connection stays busy.
  TcpHarness tiny;
  tiny.establish_active(TcpHarness::linux_syn_options(), 100);
  tiny.advance(seconds(1));
  EXPECT_EQ(tiny.tcp().busy_connections(), 1u);
}

// RFC 9293 figure 8: both sides send SYN at once.
TEST(StateMachine, SimultaneousOpenBareSynThenAck) {
  TcpHarness h;
  const std::int64_t c = start_connect(h);
  ASSERT_GE(c, 0);
  const Sent syn = h.sent_one();
  ASSERT_EQ(syn.flags, kSyn);

  h.inject(syn_at(0));
  const Sent synack = h.sent_one();
  EXPECT_SEGMENT(synack, Match().flags(kSyn | kAck).rseq(0).rack(1).len(0));
  EXPECT_EQ(synack.seq, syn.seq) << "SYN-ACK repeats the ISS of our SYN";
  EXPECT_EQ(state_of(h, static_cast<ConnId>(c)), TcpState::kSynReceived);
  EXPECT_TRUE(h.events().empty());

  h.inject(seg(kAck, 1, 1));
  h.expect_silence();
  EXPECT_EQ(state_of(h, static_cast<ConnId>(c)), TcpState::kEstablished);
  const auto ev = h.events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, TcpEventType::kConnected);
  Flow f = save_flow(h, static_cast<ConnId>(c));
  expect_flow_works(h, f);
}

// RFC 9293 figure 8 line 6: the peer, also in SYN-RECEIVED, answers our SYN with its
// SYN-ACK; that SYN-ACK acknowledges our SYN and completes the open (Linux does the same).
TEST(StateMachine, SimultaneousOpenPeerSynAckCompletes) {
  TcpHarness h;
  const std::int64_t c = start_connect(h);
  ASSERT_GE(c, 0);
  h.sent_one();
  h.inject(syn_at(0));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kSyn | kAck).rseq(0).rack(1));
  Seg synack = seg(kSyn | kAck, 0, 1);
  synack.opts = no_ts_options();
  h.inject(synack);
  h.expect_silence();
  EXPECT_EQ(state_of(h, static_cast<ConnId>(c)), TcpState::kEstablished);
  const auto ev = h.events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, TcpEventType::kConnected);
  Flow f = save_flow(h, static_cast<ConnId>(c));
  expect_flow_works(h, f);
}

TEST(StateMachine, RetransmittedSynInSynReceivedGetsSynAckAgain) {
  TcpHarness h;
  ASSERT_EQ(h.tcp().listen(kServerPort), 0);
  h.inject(syn_at(0));
  const Sent first = h.sent_one();
  EXPECT_SEGMENT(first, Match().flags(kSyn | kAck).rseq(0).rack(1));
  h.advance(ms(300));
  h.expect_silence();
  h.inject(syn_at(0));
  const Sent again = h.sent_one();
  EXPECT_SEGMENT(again, Match().flags(kSyn | kAck).rseq(0).rack(1));
  EXPECT_EQ(again.seq, first.seq);
  EXPECT_EQ(count_in(h, TcpState::kSynReceived), 1u) << "no second connection";
  h.inject(seg(kAck, 1, 1));
  h.expect_silence();
  EXPECT_GE(h.tcp().accept(kServerPort), 0);
  EXPECT_EQ(count_in(h, TcpState::kEstablished), 1u);
}

TEST(StateMachine, SynAckRetransmittedThenGivesUp) {
  TcpHarness h;
  ASSERT_EQ(h.tcp().listen(kServerPort), 0);
  h.inject(syn_at(0));
  h.sent_one();
  const int limit = h.tcp().config().max_synack_retransmits;
  TimeNs rto = h.tcp().config().initial_rto;
  for (int i = 0; i < limit; ++i) {
    h.advance(rto - ms(1));
    h.expect_silence();
    h.advance(ms(1));
    EXPECT_SEGMENT(h.sent_one(), Match().flags(kSyn | kAck).rseq(0).rack(1)) << "retry " << i;
    rto = std::min(rto * 2, h.tcp().config().max_rto);
  }
  h.advance(rto);
  // The half-open connection is dropped with a RST; it was never handed to the application.
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kRst | kAck).rseq(1).rack(1).len(0));
  EXPECT_EQ(count_in(h, TcpState::kSynReceived), 0u);
  EXPECT_EQ(h.tcp().connection_count(), 0u);
  EXPECT_TRUE(h.events().empty());
}

// ---- closing ------------------------------------------------------------------------------

TEST(StateMachine, ActiveCloseThroughTimeWait) {
  TcpHarness h;
  const ConnId c = h.establish_active(no_ts_options());
  ASSERT_EQ(h.tcp().close(c), 0);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kFin | kAck).rseq(1).rack(1).len(0));
  EXPECT_EQ(count_in(h, TcpState::kFinWait1), 1u);

  h.inject(seg(kAck, 1, 2));
  h.expect_silence();
  EXPECT_EQ(count_in(h, TcpState::kFinWait1), 0u);
  EXPECT_EQ(count_in(h, TcpState::kFinWait2), 1u);

  h.inject(seg(kFin | kAck, 1, 2));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(2).rack(2).len(0));
  EXPECT_EQ(count_in(h, TcpState::kFinWait2), 0u);
  EXPECT_EQ(count_in(h, TcpState::kTimeWait), 1u);
  EXPECT_EQ(h.tcp().connection_count(), 0u) << "the control block is released in TIME-WAIT";
  EXPECT_EQ(h.tcp().stats().time_wait_entered, 1u);

  // A retransmitted FIN (our ACK was lost) is ACKed again and restarts 2*MSL.
  const TimeNs tw = h.tcp().config().time_wait;
  h.advance(tw / 2);
  h.expect_silence();
  h.inject(seg(kFin | kAck, 1, 2));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(2).rack(2).len(0));
  h.advance(tw - ms(1));
  EXPECT_EQ(count_in(h, TcpState::kTimeWait), 1u) << "2*MSL restarted by the FIN";
  h.advance(ms(1));
  EXPECT_EQ(count_in(h, TcpState::kTimeWait), 0u);
  h.expect_silence();

  // After expiry nothing knows the 4-tuple: RFC 9293 3.10.7.1 answers with RST.
  h.inject(seg(kAck, 2, 2));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kRst).rseq(2).len(0));
}

TEST(StateMachine, FinWait1FinAndAckTogetherGoesToTimeWait) {
  TcpHarness h;
  const ConnId c = h.establish_active(no_ts_options());
  ASSERT_EQ(h.tcp().shutdown(c), 0);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kFin | kAck).rseq(1).rack(1));
  EXPECT_EQ(state_of(h, c), TcpState::kFinWait1);
  h.inject(seg(kFin | kAck, 1, 2));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(2).rack(2).len(0));
  EXPECT_EQ(count_in(h, TcpState::kTimeWait), 1u);
  EXPECT_EQ(state_of(h, c), TcpState::kClosed);
  const auto ev = h.events();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].type, TcpEventType::kPeerClosed);
  EXPECT_EQ(ev[1].type, TcpEventType::kClosed);
  EXPECT_EQ(ev[1].error, 0);
  EXPECT_EQ(h.tcp().close(c), 0);
}

// Our FIN is retransmitted on the RTO like data, in FIN-WAIT-1 and in LAST-ACK.
TEST(StateMachine, FinRetransmittedOnRto) {
  TcpHarness h;
  const ConnId c = h.establish_active(no_ts_options());
  ConnInfo info{};
  ASSERT_EQ(h.tcp().info(c, &info), 0);
  const TimeNs rto = static_cast<TimeNs>(info.rto_us) * kNsPerUs;
  ASSERT_EQ(h.tcp().shutdown(c), 0);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kFin | kAck).rseq(1).rack(1));
  h.advance(rto - ms(1));
  h.expect_silence();
  h.advance(ms(1));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kFin | kAck).rseq(1).rack(1).len(0));
  h.advance(2 * rto - ms(1));
  h.expect_silence();
  h.advance(ms(1));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kFin | kAck).rseq(1).rack(1).len(0));
  EXPECT_EQ(h.tcp().stats().retransmits, 2u);
  EXPECT_EQ(state_of(h, c), TcpState::kFinWait1);
  h.inject(seg(kAck, 1, 2));
  h.expect_silence();
  EXPECT_EQ(state_of(h, c), TcpState::kFinWait2);
  h.advance(seconds(10));
  h.expect_silence();
}

TEST(StateMachine, FinRetransmittedInLastAckThenGivesUp) {
  HarnessOptions o;
  o.tcp.max_retransmits = 2;
  TcpHarness h(o);
  const ConnId c = h.establish_passive(no_ts_options());
  h.inject(seg(kFin | kAck, 1, 1));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(1).rack(2));
  ASSERT_EQ(h.tcp().close(c), 0);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kFin | kAck).rseq(1).rack(2));
  for (int i = 0; i < 2; ++i) {
    h.advance_to_next_deadline();
    EXPECT_SEGMENT(h.sent_one(), Match().flags(kFin | kAck).rseq(1).rack(2)) << i;
    EXPECT_EQ(count_in(h, TcpState::kLastAck), 1u);
  }
  h.advance_to_next_deadline();
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kRst | kAck).rseq(2).rack(2));
  EXPECT_EQ(count_in(h, TcpState::kLastAck), 0u);
  EXPECT_EQ(h.tcp().connection_count(), 0u);
  EXPECT_EQ(h.tcp().stats().conn_timeouts, 1u);
}

TEST(StateMachine, SimultaneousCloseThroughClosing) {
  TcpHarness h;
  const ConnId c = h.establish_active(no_ts_options());
  ASSERT_EQ(h.tcp().shutdown(c), 0);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kFin | kAck).rseq(1).rack(1));
  // The peer's FIN crosses ours: it does not acknowledge our FIN yet.
  h.inject(seg(kFin | kAck, 1, 1));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(2).rack(2).len(0));
  EXPECT_EQ(state_of(h, c), TcpState::kClosing);
  h.inject(seg(kAck, 2, 2));
  h.expect_silence();
  EXPECT_EQ(count_in(h, TcpState::kTimeWait), 1u);
  EXPECT_EQ(count_in(h, TcpState::kClosing), 0u);
  const auto ev = h.events();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].type, TcpEventType::kPeerClosed);
  EXPECT_EQ(ev[1].type, TcpEventType::kClosed);
  EXPECT_EQ(ev[1].error, 0);
}

TEST(StateMachine, PassiveCloseCloseWaitLastAckClosed) {
  TcpHarness h;
  const ConnId c = h.establish_passive(no_ts_options());
  h.inject(seg(kFin | kAck, 1, 1));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(1).rack(2).len(0));
  EXPECT_EQ(state_of(h, c), TcpState::kCloseWait);
  auto ev = h.events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, TcpEventType::kPeerClosed);
  EXPECT_EQ(h.read_all(c), "");

  // Half-closed by the peer: we may still send.
  ASSERT_EQ(h.tcp().send(c, bytes_of("last")), 4);
  EXPECT_SEGMENT(h.sent_one(),
                 Match().flags(kAck | kPsh).rseq(1).rack(2).payload(bytes_of("last")));
  ASSERT_EQ(h.tcp().shutdown(c), 0);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kFin | kAck).rseq(5).rack(2).len(0));
  EXPECT_EQ(state_of(h, c), TcpState::kLastAck);

  h.inject(seg(kAck, 2, 6));
  h.expect_silence();
  EXPECT_EQ(state_of(h, c), TcpState::kClosed);
  ev = h.events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, TcpEventType::kClosed);
  EXPECT_EQ(ev[0].error, 0);
  EXPECT_EQ(count_in(h, TcpState::kTimeWait), 0u) << "the passive closer skips TIME-WAIT";
  EXPECT_EQ(h.tcp().close(c), 0);
  ConnInfo info{};
  EXPECT_EQ(h.tcp().info(c, &info), -EBADF);
  EXPECT_EQ(h.tcp().connection_count(), 0u);
}

TEST(StateMachine, PassiveCloseWithCloseReleasesSilently) {
  TcpHarness h;
  const ConnId c = h.establish_passive(no_ts_options());
  h.inject(seg(kFin | kAck, 1, 1));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(1).rack(2));
  h.events();
  ASSERT_EQ(h.tcp().close(c), 0);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kFin | kAck).rseq(1).rack(2));
  EXPECT_EQ(count_in(h, TcpState::kLastAck), 1u);
  h.inject(seg(kAck, 2, 2));
  h.expect_silence();
  EXPECT_EQ(count_in(h, TcpState::kLastAck), 0u);
  EXPECT_EQ(h.tcp().connection_count(), 0u);
  EXPECT_TRUE(h.events().empty()) << "the handle was released: no events";
}

// RFC 2525 2.17 / RFC 9293 3.10.4: closing with unread data resets the connection.
TEST(StateMachine, CloseWithUnreadDataSendsRst) {
  TcpHarness h;
  const ConnId c = h.establish_passive(no_ts_options());
  Seg data = seg(kAck | kPsh, 1, 1);
  data.payload = bytes_of("unread");
  h.inject(data);
  h.expect_silence();  // delayed ACK pending
  ASSERT_EQ(h.tcp().close(c), 0);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kRst | kAck).rseq(1).rack(7).len(0));
  EXPECT_EQ(h.tcp().stats().rst_out, 1u);
  EXPECT_EQ(h.tcp().connection_count(), 0u);
  h.advance(seconds(1));
  h.expect_silence();  // no delayed ACK or FIN after the reset
  EXPECT_EQ(count_in(h, TcpState::kTimeWait), 0u);
}

TEST(StateMachine, AbortSendsRst) {
  TcpHarness h;
  const ConnId c = h.establish_active(no_ts_options());
  ASSERT_EQ(h.tcp().send(c, bytes_of("inflight")), 8);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck | kPsh).rseq(1).rack(1).len(8));
  ASSERT_EQ(h.tcp().abort(c), 0);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kRst | kAck).rseq(9).rack(1).len(0));
  ConnInfo info{};
  EXPECT_EQ(h.tcp().info(c, &info), -EBADF);
  EXPECT_EQ(h.tcp().connection_count(), 0u);
  EXPECT_TRUE(h.events().empty());
  h.advance(seconds(5));
  h.expect_silence();  // no retransmission of the aborted data
}

TEST(StateMachine, ShutdownHalfCloseStillReceivesInFinWait2) {
  TcpHarness h;
  const ConnId c = h.establish_passive(no_ts_options());
  ASSERT_EQ(h.tcp().shutdown(c), 0);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kFin | kAck).rseq(1).rack(1));
  EXPECT_EQ(h.tcp().send(c, bytes_of("x")), -EPIPE);
  h.inject(seg(kAck, 1, 2));
  h.expect_silence();
  EXPECT_EQ(state_of(h, c), TcpState::kFinWait2);

  Seg data = seg(kAck | kPsh, 1, 2);
  data.payload = bytes_of("after-fin");
  h.inject(data);
  auto ev = h.events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, TcpEventType::kReadable);
  EXPECT_EQ(h.read_all(c), "after-fin");
  h.expect_silence();
  h.advance(h.tcp().config().delayed_ack_timeout);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(2).rack(10).len(0));
  EXPECT_EQ(state_of(h, c), TcpState::kFinWait2);

  // A half-closed connection the application still holds has no FIN-WAIT-2 timeout.
  h.advance(h.tcp().config().fin_wait2_timeout * 2);
  h.expect_silence();
  EXPECT_EQ(state_of(h, c), TcpState::kFinWait2);

  h.inject(seg(kFin | kAck, 10, 2));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(2).rack(11).len(0));
  ev = h.events();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].type, TcpEventType::kPeerClosed);
  EXPECT_EQ(ev[1].type, TcpEventType::kClosed);
  EXPECT_EQ(ev[1].error, 0);
  EXPECT_EQ(count_in(h, TcpState::kTimeWait), 1u);
}

TEST(StateMachine, OrphanedFinWait2TimesOut) {
  TcpHarness h;
  const ConnId c = h.establish_active(no_ts_options());
  ASSERT_EQ(h.tcp().close(c), 0);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kFin | kAck).rseq(1).rack(1));
  h.inject(seg(kAck, 1, 2));
  h.expect_silence();
  EXPECT_EQ(count_in(h, TcpState::kFinWait2), 1u);
  const TimeNs timeout = h.tcp().config().fin_wait2_timeout;
  h.advance(timeout - ms(1));
  EXPECT_EQ(count_in(h, TcpState::kFinWait2), 1u);
  h.advance(ms(1));
  h.expect_silence();  // like Linux: dropped without a segment
  EXPECT_EQ(count_in(h, TcpState::kFinWait2), 0u);
  EXPECT_EQ(h.tcp().connection_count(), 0u);
  // The peer's late FIN finds no connection.
  h.inject(seg(kFin | kAck, 1, 2));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kRst).rseq(2).len(0));
}

// RFC 1122 4.2.2.13: data that arrives after CLOSE can never be read; the peer learns it
// was lost from a RST, and the connection is gone at once (no bytes parked in the shared
// buffer for the FIN-WAIT-2 timeout). A retransmission of what was already received, and
// the peer's FIN alone, are still the normal close.
TEST(StateMachine, NewDataAfterCloseIsAnsweredWithRst) {
  for (const bool fin_acked : {false, true}) {
    SCOPED_TRACE(fin_acked ? "FIN-WAIT-2" : "FIN-WAIT-1");
    TcpHarness h;
    const ConnId c = h.establish_passive(no_ts_options());
    Seg first = seg(kAck | kPsh, 1, 1);
    first.payload = bytes_of("read");
    h.inject(first);
    EXPECT_EQ(h.read_all(c), "read");
    h.advance(h.tcp().config().delayed_ack_timeout);
    EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rack(5).len(0));
    ASSERT_EQ(h.tcp().close(c), 0);
    EXPECT_SEGMENT(h.sent_one(), Match().flags(kFin | kAck).rseq(1).rack(5));
    if (fin_acked) {
      h.inject(seg(kAck, 5, 2));
      h.expect_silence();
      ASSERT_EQ(count_in(h, TcpState::kFinWait2), 1u);
    }
    // A retransmission of the bytes already read: nothing new, no reset.
    Seg again = seg(kAck | kPsh, 1, fin_acked ? 2 : 1);
    again.payload = bytes_of("read");
    h.inject(again);
    EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rack(5).len(0));
    EXPECT_EQ(h.tcp().stats().aborts_on_data, 0u);
    h.events();  // drop the events of the reads above

    Seg late = seg(kAck | kPsh, 5, fin_acked ? 2 : 1);
    late.payload = bytes_of("too late");
    h.inject(late);
    EXPECT_SEGMENT(h.sent_one(), Match().flags(kRst | kAck).rseq(2).rack(5).len(0));
    EXPECT_EQ(h.tcp().stats().aborts_on_data, 1u);
    EXPECT_EQ(h.tcp().connection_count(), 0u);
    EXPECT_EQ(count_in(h, TcpState::kFinWait1) + count_in(h, TcpState::kFinWait2), 0u);
    EXPECT_TRUE(h.events().empty()) << "the application closed it: no event";
    h.advance(seconds(5));
    h.expect_silence();  // no FIN retransmission after the reset
  }
}

// ---- failed opens ---------------------------------------------------------------------------

TEST(StateMachine, ConnectToClosedPortIsRefused) {
  TcpHarness h;
  const std::int64_t c = start_connect(h);
  ASSERT_GE(c, 0);
  h.sent_one();
  Seg rst = seg(kRst | kAck, 0, 1);
  rst.absolute_seq = true;  // RFC 9293 3.10.7.1 answer to a SYN: <SEQ=0><ACK=ISS+1>
  h.inject(rst);
  h.expect_silence();
  const auto ev = h.events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, TcpEventType::kClosed);
  EXPECT_EQ(ev[0].error, ECONNREFUSED);
  ConnInfo info{};
  ASSERT_EQ(h.tcp().info(static_cast<ConnId>(c), &info), 0);
  EXPECT_EQ(info.state, TcpState::kClosed);
  EXPECT_EQ(info.error, ECONNREFUSED);
  EXPECT_EQ(h.tcp().send(static_cast<ConnId>(c), bytes_of("x")), -ECONNREFUSED);
  EXPECT_EQ(h.tcp().stats().rst_in, 1u);
  EXPECT_EQ(h.tcp().close(static_cast<ConnId>(c)), 0);
  h.advance(seconds(10));
  h.expect_silence();  // no SYN retransmission after the refusal
}

TEST(StateMachine, SynRetransmissionBackoffThenTimeout) {
  TcpHarness h;
  const std::int64_t c = start_connect(h);
  ASSERT_GE(c, 0);
  const Sent first = h.sent_one();
  const TcpConfig& cfg = h.tcp().config();
  TimeNs rto = cfg.initial_rto;
  for (int i = 0; i < cfg.max_syn_retransmits; ++i) {
    h.advance(rto - ms(1));
    h.expect_silence();
    h.advance(ms(1));
    const Sent again = h.sent_one();
    EXPECT_SEGMENT(again, Match().flags(kSyn).rseq(0).len(0)) << "retry " << i;
    EXPECT_EQ(again.seq, first.seq);
    rto = std::min(rto * 2, cfg.max_rto);
  }
  EXPECT_EQ(h.tcp().stats().retransmits, static_cast<std::uint64_t>(cfg.max_syn_retransmits));
  EXPECT_TRUE(h.events().empty());
  h.advance(rto - ms(1));
  EXPECT_TRUE(h.events().empty());
  h.advance(ms(1));
  h.expect_silence();  // nothing to reset: the peer never answered
  const auto ev = h.events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, TcpEventType::kClosed);
  EXPECT_EQ(ev[0].error, ETIMEDOUT);
  EXPECT_EQ(h.tcp().stats().conn_timeouts, 1u);
  EXPECT_EQ(state_of(h, static_cast<ConnId>(c)), TcpState::kClosed);
}

// ---- TIME-WAIT --------------------------------------------------------------------------------

// Closes the established passive connection actively: the stack ends in TIME-WAIT.
void close_into_time_wait(TcpHarness& h, ConnId c) {
  ASSERT_EQ(h.tcp().close(c), 0);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kFin | kAck).rseq(1).rack(1));
  h.inject(seg(kFin | kAck, 1, 2));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(2).rack(2));
  ASSERT_EQ(count_in(h, TcpState::kTimeWait), 1u);
}

// RFC 6191 / RFC 1122 4.2.2.13: a SYN above the old connection's sequence space reopens the
// 4-tuple; the new ISS must lie above everything the old connection sent.
TEST(StateMachine, TimeWaitReusedByNewerSyn) {
  TcpHarness h;
  const ConnId c = h.establish_passive(no_ts_options());
  const std::uint32_t old_iss = h.iss;
  close_into_time_wait(h, c);

  h.inject(syn_at(100000));
  const Sent synack = h.sent_one();
  EXPECT_SEGMENT(synack, Match().flags(kSyn | kAck).rack(100001).len(0));
  EXPECT_GT(static_cast<std::int32_t>(synack.seq - (old_iss + 2)), 0)
      << "new ISS above the old connection's SND.NXT";
  EXPECT_EQ(h.tcp().stats().time_wait_reused, 1u);
  EXPECT_EQ(count_in(h, TcpState::kTimeWait), 0u);
  EXPECT_EQ(count_in(h, TcpState::kSynReceived), 1u);

  h.inject(seg(kAck, 100001, 1));
  h.expect_silence();
  const std::int64_t c2 = h.tcp().accept(kServerPort);
  ASSERT_GE(c2, 0);
  h.events();
  Flow f = save_flow(h, static_cast<ConnId>(c2));
  f.peer_next = 100001;
  expect_flow_works(h, f);
}

// RFC 6191: with timestamps on both sides the SYN's TSval decides, not its sequence number.
TEST(StateMachine, TimeWaitReuseDecidedByTimestamps) {
  TcpHarness h;
  const ConnId c = h.establish_passive();  // Linux options, timestamps on
  ASSERT_EQ(h.tcp().close(c), 0);
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kFin | kAck).rseq(1).rack(1));
  h.inject(h.with_ts(seg(kFin | kAck, 1, 2)));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(2).rack(2));
  ASSERT_EQ(count_in(h, TcpState::kTimeWait), 1u);
  const std::uint32_t last_ts = h.peer_ts;

  // Higher sequence number but an older timestamp: an old duplicate, not reused.
  wire::TcpOptions old_opts = TcpHarness::linux_syn_options();
  old_opts.ts_val = last_ts - 100;
  h.inject(syn_at(500000, old_opts));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(2).rack(2).len(0));
  EXPECT_EQ(h.tcp().stats().time_wait_reused, 0u);

  // Lower sequence number (a peer with a fresh random ISN) but a newer timestamp: reused.
  wire::TcpOptions new_opts = TcpHarness::linux_syn_options();
  new_opts.ts_val = last_ts + 100;
  h.peer_ts = new_opts.ts_val;
  h.inject(syn_at(static_cast<std::uint32_t>(-5000), new_opts));
  const Sent synack = h.sent_one();
  EXPECT_SEGMENT(synack, Match().flags(kSyn | kAck).rack(static_cast<std::uint32_t>(-4999)));
  EXPECT_EQ(synack.opts.ts_ecr, new_opts.ts_val);
  EXPECT_EQ(h.tcp().stats().time_wait_reused, 1u);
  h.inject(h.with_ts(seg(kAck, static_cast<std::uint32_t>(-4999), 1)));
  h.expect_silence();
  const std::int64_t c2 = h.tcp().accept(kServerPort);
  ASSERT_GE(c2, 0);
  h.events();
  Flow f = save_flow(h, static_cast<ConnId>(c2));
  f.peer_next = static_cast<std::uint32_t>(-4999);
  expect_flow_works(h, f);
}

TEST(StateMachine, TimeWaitOldSynIsNotReused) {
  TcpHarness h;
  const ConnId c = h.establish_passive(no_ts_options());
  close_into_time_wait(h, c);
  // An old duplicate SYN (below RCV.NXT) must not open anything; TIME-WAIT re-ACKs.
  h.inject(syn_at(0));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(2).rack(2).len(0));
  EXPECT_EQ(h.tcp().stats().time_wait_reused, 0u);
  EXPECT_EQ(count_in(h, TcpState::kTimeWait), 1u);
  EXPECT_EQ(count_in(h, TcpState::kSynReceived), 0u);
}

// RFC 1337: a RST must not cut TIME-WAIT short (TIME-WAIT assassination).
TEST(StateMachine, RstIgnoredInTimeWait) {
  TcpHarness h;
  const ConnId c = h.establish_active(no_ts_options());
  ASSERT_EQ(h.tcp().close(c), 0);
  h.sent_one();
  h.inject(seg(kFin | kAck, 1, 2));
  h.sent_one();
  ASSERT_EQ(count_in(h, TcpState::kTimeWait), 1u);
  const std::uint64_t ignored = h.tcp().stats().rst_ignored;
  h.inject(seg(kRst, 2, 0));
  h.inject(seg(kRst | kAck, 2, 2));
  h.expect_silence();
  EXPECT_EQ(count_in(h, TcpState::kTimeWait), 1u);
  EXPECT_EQ(h.tcp().stats().rst_ignored, ignored + 2);
  // Still the TIME-WAIT entry: a retransmitted FIN is ACKed, not reset.
  h.inject(seg(kFin | kAck, 1, 2));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kAck).rseq(2).rack(2));
}

// ---- SYN cookies (RFC 4987 3.6) ---------------------------------------------------------------

HarnessOptions cookie_options() {
  HarnessOptions o;
  o.tcp.syn_backlog = 1;
  return o;
}

// Listens with a one-slot SYN queue, fills it from port 40000 and has the listener answer
// a SYN from port 40001 with a cookie; peer_port is 40001 afterwards. Returns an ACK from
// there with a wrong cookie (SEG.ACK 12345).
Seg overflow_into_cookie(TcpHarness& h) {
  EXPECT_EQ(h.tcp().listen(kServerPort), 0);
  h.peer_port = 40000;
  h.inject(syn_at(0));
  h.sent_one();
  h.peer_port = 40001;
  h.inject(syn_at(0));
  h.sent_one();  // the cookie SYN-ACK
  Seg forged = seg(kAck, 1, 12345);
  forged.absolute_ack = true;
  return forged;
}

TEST(StateMachine, SynCookieWhenBacklogFullCompletesAndCarriesData) {
  TcpHarness h(cookie_options());
  ASSERT_EQ(h.tcp().listen(kServerPort), 0);
  // The first SYN takes the only SYN queue slot.
  h.peer_port = 40000;
  h.inject(syn_at(0));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kSyn | kAck).rseq(0).rack(1));
  Flow queued = save_flow(h, 0);
  EXPECT_EQ(h.tcp().stats().syn_cookies_sent, 0u);

  // The second one gets a cookie and leaves no state behind.
  h.peer_port = 40001;
  h.inject(syn_at(0));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kSyn | kAck).rseq(0).rack(1).len(0));
  EXPECT_EQ(h.tcp().stats().syn_cookies_sent, 1u);
  EXPECT_EQ(h.tcp().connection_count(), 1u);
  EXPECT_EQ(count_in(h, TcpState::kSynReceived), 1u);

  h.inject(seg(kAck, 1, 1));
  h.expect_silence();
  EXPECT_EQ(h.tcp().stats().syn_cookies_ok, 1u);
  const auto ev = h.events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, TcpEventType::kAcceptable);
  const std::int64_t c = h.tcp().accept(kServerPort);
  ASSERT_GE(c, 0);
  EXPECT_EQ(state_of(h, static_cast<ConnId>(c)), TcpState::kEstablished);
  Flow cookie = save_flow(h, static_cast<ConnId>(c));
  expect_flow_works(h, cookie, "cookie");
  EXPECT_EQ(h.tcp().stats().data_trimmed, 0u);

  // The queued half-open connection still completes normally.
  use_flow(h, queued);
  h.inject(seg(kAck, 1, 1));
  h.expect_silence();
  const std::int64_t c1 = h.tcp().accept(kServerPort);
  ASSERT_GE(c1, 0);
  queued.conn = static_cast<ConnId>(c1);
  expect_flow_works(h, queued, "queued");
}

// Linux accepts data on the ACK that completes a cookie handshake; so must we, within the
// window our cookie SYN-ACK advertised.
TEST(StateMachine, SynCookieAckCarryingData) {
  TcpHarness h(cookie_options());
  ASSERT_EQ(h.tcp().listen(kServerPort), 0);
  h.peer_port = 40000;
  h.inject(syn_at(0));
  h.sent_one();
  h.peer_port = 40001;
  h.inject(syn_at(0));
  h.sent_one();
  ASSERT_EQ(h.tcp().stats().syn_cookies_sent, 1u);
  Seg ack = seg(kAck | kPsh, 1, 1);
  ack.payload = bytes_of("early");
  h.inject(ack);
  EXPECT_EQ(h.tcp().stats().syn_cookies_ok, 1u);
  const std::int64_t c = h.tcp().accept(kServerPort);
  ASSERT_GE(c, 0);
  EXPECT_EQ(h.read_all(static_cast<ConnId>(c)), "early");
  EXPECT_EQ(h.tcp().stats().data_trimmed, 0u);
}

TEST(StateMachine, SynCookieWithTimestampsKeepsOptions) {
  TcpHarness h(cookie_options());
  ASSERT_EQ(h.tcp().listen(kServerPort), 0);
  h.peer_port = 40000;
  h.inject(syn_at(0));
  h.sent_one();
  h.peer_port = 40001;
  h.peer_uses_ts = true;
  h.inject(syn_at(0, TcpHarness::linux_syn_options()));
  const Sent synack = h.sent_one();
  EXPECT_SEGMENT(synack, Match().flags(kSyn | kAck).rseq(0).rack(1));
  EXPECT_TRUE(synack.opts.has_timestamp);
  EXPECT_TRUE(synack.opts.sack_permitted);
  EXPECT_TRUE(synack.opts.has_window_scale);
  h.inject(h.with_ts(seg(kAck, 1, 1)));
  h.expect_silence();
  const std::int64_t c = h.tcp().accept(kServerPort);
  ASSERT_GE(c, 0);
  ConnInfo info{};
  ASSERT_EQ(h.tcp().info(static_cast<ConnId>(c), &info), 0);
  EXPECT_EQ(info.snd_mss, 1460u - 12u);
  EXPECT_EQ(info.snd_wnd, 65535u << 7) << "window scale recovered from the cookie";
  Flow f = save_flow(h, static_cast<ConnId>(c));
  expect_flow_works(h, f);
}

// A listener that has sent no cookie (no recent overflow) does not treat a stray ACK as
// one: RST at once, no hash computed, nothing counted as a bad cookie (Linux does the same).
TEST(StateMachine, StrayAckToAListenerWithoutCookiesGetsRst) {
  TcpHarness h(cookie_options());
  ASSERT_EQ(h.tcp().listen(kServerPort), 0);
  h.peer_port = 40001;
  Seg stray = seg(kAck, 1, 12345);
  stray.absolute_ack = true;
  h.inject(stray);
  const Sent rst = h.sent_one();
  EXPECT_EQ(rst.flags, kRst);
  EXPECT_EQ(rst.seq, 12345u);
  EXPECT_EQ(h.tcp().stats().syn_cookies_bad, 0u);
  EXPECT_EQ(h.tcp().connection_count(), 0u);
}

// Cookies are checked only while they can be valid: two 64-second periods after the last.
TEST(StateMachine, CookiesAreCheckedOnlyWhileOutstanding) {
  TcpHarness h(cookie_options());
  const Seg forged = overflow_into_cookie(h);
  h.inject(forged);
  EXPECT_EQ(h.sent_one().flags, kRst);
  EXPECT_EQ(h.tcp().stats().syn_cookies_bad, 1u) << "checked: a cookie was sent just now";
  h.advance(seconds(129));
  h.sent();  // retransmitted SYN-ACKs of the queued half-open connection, if any
  h.inject(forged);
  EXPECT_EQ(h.sent_one().flags, kRst);
  EXPECT_EQ(h.tcp().stats().syn_cookies_bad, 1u) << "no cookie of this listener is still valid";
}

TEST(StateMachine, BadCookieAckGetsRst) {
  TcpHarness h(cookie_options());
  const Seg forged = overflow_into_cookie(h);  // right 4-tuple, wrong cookie
  h.inject(forged);
  const Sent rst = h.sent_one();
  EXPECT_EQ(rst.flags, kRst);
  EXPECT_EQ(rst.seq, 12345u) << "RFC 9293 3.10.7.2: <SEQ=SEG.ACK><CTL=RST>";
  EXPECT_EQ(h.tcp().stats().syn_cookies_bad, 1u);

  // Right cookie, but the sequence number does not match the SYN it was made for.
  h.inject(seg(kAck, 7, 1));
  EXPECT_SEGMENT(h.sent_one(), Match().flags(kRst).rseq(1));
  EXPECT_EQ(h.tcp().stats().syn_cookies_bad, 2u);
  EXPECT_EQ(h.tcp().stats().syn_cookies_ok, 0u);
  EXPECT_EQ(h.tcp().connection_count(), 1u) << "only the queued half-open connection";
  EXPECT_EQ(h.tcp().accept(kServerPort), -EAGAIN);
}

}  // namespace
}  // namespace xtcp::test
