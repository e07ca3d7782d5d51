// Opening handshakes (RFC 9293 3.5) and option negotiation (RFC 7323, RFC 2018, 3.7.1).
#include <gtest/gtest.h>

#include "tests/support/tcp_harness.h"

namespace xtcp::test {
namespace {

using namespace wire::tcp_flags;  // NOLINT

TEST(Handshake, PassiveOpenNegotiatesLinuxOptions) {
  TcpHarness h;
  ASSERT_EQ(h.tcp().listen(kServerPort), 0);
  Seg syn;
  syn.flags = kSyn;
  syn.seq = 0;
  syn.opts = TcpHarness::linux_syn_options();
  h.inject(syn);
  const Sent synack = h.sent_one();
  EXPECT_SEGMENT(synack, Match().flags(kSyn | kAck).rseq(0).rack(1).len(0));
  EXPECT_TRUE(synack.opts.has_mss);
  EXPECT_EQ(synack.opts.mss, 1460);
  EXPECT_TRUE(synack.opts.sack_permitted);
  EXPECT_TRUE(synack.opts.has_timestamp);
  EXPECT_EQ(synack.opts.ts_ecr, 5000u);
  EXPECT_TRUE(synack.opts.has_window_scale);
  EXPECT_EQ(h.tcp().accept(kServerPort), -EAGAIN) << "not established before the final ACK";

  h.inject(h.with_ts(Seg{}));
  h.expect_silence();
  const auto ev = h.events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, TcpEventType::kAcceptable);
  const std::int64_t c = h.tcp().accept(kServerPort);
  ASSERT_GE(c, 0);
  ConnInfo info{};
  ASSERT_EQ(h.tcp().info(static_cast<ConnId>(c), &info), 0);
  EXPECT_EQ(info.state, TcpState::kEstablished);
  EXPECT_EQ(info.snd_mss, 1460u - 12u) << "MSS less the timestamp option";
}

TEST(Handshake, ActiveOpenAndDataBothWays) {
  TcpHarness h;
  const ConnId c = h.establish_active();
  ASSERT_EQ(h.tcp().send(c, bytes_of("ping")), 4);
  const Sent data = h.sent_one();
  EXPECT_SEGMENT(data, Match().flags(kAck | kPsh).rseq(1).rack(1).payload(bytes_of("ping")));
  Seg reply = h.with_ts(Seg{});
  reply.flags = kAck | kPsh;
  reply.ack = 5;
  reply.payload = bytes_of("pong");
  h.inject(reply);
  EXPECT_EQ(h.read_all(c), "pong");
}

TEST(Handshake, ClosedPortAnswersRst) {
  TcpHarness h;
  Seg syn;
  syn.flags = kSyn;
  syn.seq = 0;
  h.inject(syn);
  const Sent rst = h.sent_one();
  // RFC 9293 3.10.7.1: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
  EXPECT_EQ(rst.flags, kRst | kAck);
  EXPECT_EQ(rst.seq, 0u);
  EXPECT_EQ(rst.rack, 1u);
  EXPECT_EQ(h.tcp().stats().rst_out, 1u);
}

}  // namespace
}  // namespace xtcp::test
