// Aggregator tests: the exact bytes of an aggregated stream, each flush trigger (size,
// latency bound in virtual time, explicit), several NetPDUs per gather call, IOV_MAX,
// partial writes with payload release only after their last byte, backpressure with the
// on_space signal, and failure (EPIPE without SIGPIPE) releasing everything.
#include "netpdu/aggregator.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "netpdu/deaggregator.h"
#include "tests/netpdu/test_util.h"

namespace xtcp::netpdu {
namespace {

using test::bytes_of;
using test::ScriptedSink;

AggregatorConfig small_config() {
  AggregatorConfig c;
  c.max_pdu_bytes = 4096;
  c.max_tlpdus = 64;
  c.flush_bytes = 4096;
  c.latency_us = 200;
  c.max_queued_bytes = 16384;
  c.low_watermark = 4096;
  return c;
}

Payload text_payload(const std::string& s) { return copy_payload(ByteSpan(bytes_of(s))); }

TlpduMeta data(std::uint64_t session, std::uint32_t seq) {
  TlpduMeta m;
  m.type = TlpduType::kData;
  m.session = session;
  m.seq = seq;
  return m;
}

TEST(NetpduAggregator, GoldenStream) {
  ManualClock clock;
  ScriptedSink sink;
  Aggregator agg(sink, small_config(), clock);
  TlpduMeta open;
  open.type = TlpduType::kOpen;
  open.session = 0x0102;
  ASSERT_EQ(agg.submit(open, Payload{}), 0);
  TlpduMeta m = data(0x0102, 1);
  m.flags = 0x01;
  ASSERT_EQ(agg.submit(m, text_payload("hi")), 0);
  agg.flush();
  test::FrameBuilder want;
  want.pdu_header(20 + 20 + 22, 2);
  want.tlpdu_header(1, 0x0102, 0, 0);
  want.tlpdu_header(2, 0x0102, 1, 2, 0x01);
  want.text("hi");
  EXPECT_EQ(sink.bytes_, want.out);
  EXPECT_EQ(sink.calls_, 1u);
  EXPECT_TRUE(agg.idle());
  EXPECT_EQ(agg.stats().header_bytes, 60u);
  EXPECT_EQ(agg.stats().payload_bytes, 2u);
}

TEST(NetpduAggregator, SizeThresholdClosesNetPdu) {
  ManualClock clock;
  ScriptedSink sink;
  AggregatorConfig c = small_config();
  c.flush_bytes = 100;
  Aggregator agg(sink, c, clock);
  // 20 (NetPDU) + 2 * (20 + 10) = 80: still open.
  ASSERT_EQ(agg.submit(data(1, 0), text_payload("0123456789")), 0);
  ASSERT_EQ(agg.submit(data(1, 1), text_payload("0123456789")), 0);
  agg.poll();
  EXPECT_TRUE(sink.bytes_.empty()) << "an open NetPDU below every threshold is not written";
  // + 30 = 110 >= 100: closed, and written by the next poll.
  ASSERT_EQ(agg.submit(data(1, 2), text_payload("0123456789")), 0);
  EXPECT_EQ(agg.stats().flush_size, 1u);
  EXPECT_TRUE(sink.bytes_.empty()) << "submit itself does no I/O";
  agg.poll();
  EXPECT_EQ(sink.bytes_.size(), 110u);
  EXPECT_EQ(agg.next_deadline(), kNever);
}

TEST(NetpduAggregator, MaxPduStartsANewNetPdu) {
  ManualClock clock;
  ScriptedSink sink;
  AggregatorConfig c = small_config();
  c.max_pdu_bytes = 1024;
  c.flush_bytes = 1024;
  Aggregator agg(sink, c, clock);
  const std::string big(600, 'x');
  ASSERT_EQ(agg.submit(data(1, 0), text_payload(big)), 0);
  ASSERT_EQ(agg.submit(data(1, 1), text_payload(big)), 0);  // 20+620+620 > 1024
  agg.flush();
  EXPECT_EQ(agg.stats().pdus, 2u);
  EXPECT_EQ(sink.bytes_.size(), 2u * (20 + 620));
  EXPECT_EQ(load_be32(sink.bytes_.data() + 12), 640u);
}

TEST(NetpduAggregator, MaxTlpdusStartsANewNetPdu) {
  ManualClock clock;
  ScriptedSink sink;
  AggregatorConfig c = small_config();
  c.max_tlpdus = 3;
  Aggregator agg(sink, c, clock);
  for (std::uint32_t i = 0; i < 7; ++i) {
    ASSERT_EQ(agg.submit(data(1, i), Payload{}), 0);
  }
  agg.flush();
  EXPECT_EQ(agg.stats().pdus, 3u);
  EXPECT_EQ(load_be32(sink.bytes_.data() + 16), 3u);
}

TEST(NetpduAggregator, LatencyBoundInVirtualTime) {
  ManualClock clock;
  ScriptedSink sink;
  Aggregator agg(sink, small_config(), clock);
  EXPECT_EQ(agg.next_deadline(), kNever);
  const TimeNs t0 = clock.now();
  ASSERT_EQ(agg.submit(data(5, 0), text_payload("a")), 0);
  EXPECT_EQ(agg.next_deadline(), t0 + 200 * kNsPerUs);
  clock.advance(150 * kNsPerUs);
  ASSERT_EQ(agg.submit(data(5, 1), text_payload("b")), 0);
  EXPECT_EQ(agg.next_deadline(), t0 + 200 * kNsPerUs) << "the bound counts from the first TLPDU";
  clock.advance(49 * kNsPerUs);
  agg.poll();
  EXPECT_TRUE(sink.bytes_.empty());
  clock.advance(1 * kNsPerUs);
  agg.poll();
  EXPECT_EQ(sink.bytes_.size(), 20u + 2 * 21);
  EXPECT_EQ(agg.stats().flush_timer, 1u);
  EXPECT_EQ(agg.next_deadline(), kNever);
}

TEST(NetpduAggregator, SeveralNetPdusInOneGatherCall) {
  ManualClock clock;
  ScriptedSink sink;
  AggregatorConfig c = small_config();
  c.flush_bytes = 50;
  Aggregator agg(sink, c, clock);
  for (std::uint32_t i = 0; i < 10; ++i) {
    ASSERT_EQ(agg.submit(data(i, 0), text_payload("0123456789")), 0);  // each closes its own
  }
  EXPECT_EQ(agg.stats().pdus, 10u);
  agg.poll();
  EXPECT_EQ(sink.calls_, 1u);
  EXPECT_EQ(agg.stats().gather_calls, 1u);
  EXPECT_EQ(sink.bytes_.size(), 10u * 50);
}

TEST(NetpduAggregator, RespectsIovMax) {
  ManualClock clock;
  ScriptedSink sink;
  AggregatorConfig c;
  c.max_pdu_bytes = 1 << 20;
  c.max_tlpdus = 1 << 16;
  c.flush_bytes = 1 << 20;
  Aggregator agg(sink, c, clock);
  for (std::uint32_t i = 0; i < 3000; ++i) {
    ASSERT_EQ(agg.submit(data(1, i), text_payload("x")), 0);  // 2 iovecs each
  }
  agg.flush();
  EXPECT_LE(sink.max_iovcnt_, kIovMax);
  EXPECT_EQ(sink.calls_, 6u) << "6001 iovecs in calls of at most 1024";
  EXPECT_EQ(sink.bytes_.size(), 20u + 3000 * 21);
  EXPECT_TRUE(agg.idle());
}

TEST(NetpduAggregator, PartialWritesReleasePayloadsOnlyWhenWritten) {
  ManualClock clock;
  ScriptedSink sink(7);  // 7 bytes per call
  Aggregator agg(sink, small_config(), clock);
  std::vector<std::size_t> released_at;  // sink size when each payload was released
  for (std::uint32_t i = 0; i < 3; ++i) {
    auto owned = std::make_shared<std::string>("payload-" + std::to_string(i));
    Payload p = payload_with_release(ByteSpan(reinterpret_cast<const std::byte*>(owned->data()), owned->size()),
                                     [&released_at, &sink, owned] { released_at.push_back(sink.bytes_.size()); });
    ASSERT_EQ(agg.submit(data(9, i), std::move(p)), 0);
  }
  agg.flush();
  int turns = 0;
  while (!agg.idle() && turns++ < 1000) {
    EXPECT_TRUE(agg.wants_write());
    agg.on_writable();
  }
  ASSERT_TRUE(agg.idle());
  // Stream: 20 + (20 + 9) * 3 = 107 bytes; payload i ends at 20 + 29 * (i + 1).
  ASSERT_EQ(sink.bytes_.size(), 107u);
  ASSERT_EQ(released_at.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_GE(released_at[i], 20 + 29 * (i + 1)) << "released before its last byte was written";
    EXPECT_LT(released_at[i], 20 + 29 * (i + 1) + 7);
  }
  // And the stream parses back.
  test::ChunkedSource src(sink.bytes_, {1000}, true);
  std::vector<std::string> got;
  Deaggregator d(src, ReceiverConfig{}, [&](const Tlpdu& t) {
    got.push_back(test::text_of(t.payload.bytes));
    return Verdict::kAccept;
  });
  while (d.on_readable() == RxState::kOpen) {
  }
  EXPECT_EQ(d.state(), RxState::kClosed);
  EXPECT_EQ(got, (std::vector<std::string>{"payload-0", "payload-1", "payload-2"}));
}

TEST(NetpduAggregator, BackpressureRefusesThenSignalsSpace) {
  ManualClock clock;
  ScriptedSink sink;
  sink.blocked_ = true;
  AggregatorConfig c = small_config();  // 16 KiB queue, low watermark 4 KiB
  Aggregator agg(sink, c, clock);
  int spaces = 0;
  agg.set_on_space([&] { ++spaces; });
  const std::string kb(1000, 'k');
  int accepted = 0;
  int rc = 0;
  for (int i = 0; i < 100 && (rc = agg.submit(data(3, static_cast<std::uint32_t>(i)), text_payload(kb))) == 0; ++i) {
    ++accepted;
    agg.poll();
  }
  EXPECT_EQ(rc, -EAGAIN);
  EXPECT_GT(accepted, 10);
  EXPECT_LE(agg.queued_bytes(), c.max_queued_bytes);
  EXPECT_EQ(agg.stats().would_block, 1u);
  EXPECT_TRUE(agg.would_block(1000));
  EXPECT_EQ(spaces, 0);
  sink.blocked_ = false;
  agg.on_writable();
  agg.flush();
  EXPECT_EQ(spaces, 1);
  EXPECT_EQ(agg.submit(data(3, 99), text_payload(kb)), 0);
}

TEST(NetpduAggregator, OversizeAndBadTypeRefused) {
  ManualClock clock;
  ScriptedSink sink;
  Aggregator agg(sink, small_config(), clock);
  const std::string too_big(4096 - 40 + 1, 'z');
  EXPECT_EQ(agg.submit(data(1, 0), text_payload(too_big)), -EMSGSIZE);
  const std::string fits(4096 - 40, 'z');
  EXPECT_EQ(agg.submit(data(1, 0), text_payload(fits)), 0);
  TlpduMeta bad = data(1, 1);
  bad.type = static_cast<TlpduType>(7);
  EXPECT_EQ(agg.submit(bad, Payload{}), -EMSGSIZE);
}

TEST(NetpduAggregator, PeerGoneFailsWithEpipeAndReleases) {
  auto [a, b] = test::socket_pair();
  ::close(b);
  ManualClock clock;
  FdIo io(a);
  Aggregator agg(io, small_config(), clock);
  bool released = false;
  static const char kText[] = "lost";
  Payload p = payload_with_release(ByteSpan(reinterpret_cast<const std::byte*>(kText), 4), [&] { released = true; });
  ASSERT_EQ(agg.submit(data(1, 0), std::move(p)), 0);
  agg.flush();  // would raise SIGPIPE (and kill this test) without MSG_NOSIGNAL
  EXPECT_TRUE(agg.failed());
  EXPECT_EQ(agg.error(), EPIPE);
  EXPECT_NE(agg.error_message().find("Broken pipe"), std::string::npos) << agg.error_message();
  EXPECT_TRUE(released);
  EXPECT_EQ(agg.submit(data(1, 1), Payload{}), -EPIPE);
  ::close(a);
}

TEST(NetpduAggregator, ConfigValidation) {
  AggregatorConfig c;
  EXPECT_EQ(validate(c), "");
  c.flush_bytes = c.max_pdu_bytes + 1;
  EXPECT_NE(validate(c), "");
  c = AggregatorConfig{};
  c.max_queued_bytes = c.max_pdu_bytes;
  EXPECT_NE(validate(c), "");
  c = AggregatorConfig{};
  c.max_pdu_bytes = 100;
  EXPECT_NE(validate(c), "");
}

}  // namespace
}  // namespace xtcp::netpdu
