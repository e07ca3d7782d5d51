// De-aggregator tests: frames split at every possible point across reads, several frames
// per read, one readv per frame in steady state, the memory budget pausing the reader, and
// every bad input (magic, version, flags, lengths, count, type, reserved, truncation,
// unknown session, bad sequence) failing only that transport with a clear message.
#include "netpdu/deaggregator.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "netpdu/aggregator.h"
#include "netpdu/endpoint.h"
#include "tests/netpdu/test_util.h"

namespace xtcp::netpdu {
namespace {

using test::ChunkedSource;
using test::FrameBuilder;

struct Collected {
  std::vector<std::tuple<std::uint64_t, std::uint32_t, std::string>> got;
  TlpduSink sink() {
    return [this](const Tlpdu& t) {
      got.emplace_back(t.meta.session, t.meta.seq, test::text_of(t.payload.bytes));
      return Verdict::kAccept;
    };
  }
};

ReceiverConfig small_rx() {
  ReceiverConfig c;
  c.limits.max_pdu_bytes = 4096;
  c.limits.max_tlpdus = 16;
  return c;
}

// Runs the de-aggregator over `bytes` in the given read chunks until it stops.
RxState run(const std::vector<std::byte>& bytes, std::vector<std::size_t> chunks, Deaggregator** out_d,
            Collected* col, ChunkedSource** src_out = nullptr, const ReceiverConfig& rc = small_rx()) {
  static std::unique_ptr<ChunkedSource> src;
  static std::unique_ptr<Deaggregator> d;
  d.reset();
  src = std::make_unique<ChunkedSource>(bytes, std::move(chunks), true);
  d = std::make_unique<Deaggregator>(*src, rc, col->sink());
  for (int i = 0; i < 100000 && d->on_readable() == RxState::kOpen; ++i) {
  }
  *out_d = d.get();
  if (src_out != nullptr) {
    *src_out = src.get();
  }
  return d->state();
}

std::vector<std::byte> three_frames() {
  FrameBuilder f;
  f.inline_pdu({{1, 0, "alpha"}, {2, 0, ""}, {1, 1, "beta"}});
  f.inline_pdu({{3, 0, "gamma"}});
  f.inline_pdu({{2, 1, std::string(300, 'q')}});
  return f.out;
}

TEST(NetpduDeaggregator, SplitAtEveryChunkSize) {
  const auto bytes = three_frames();
  for (std::size_t chunk = 1; chunk <= bytes.size(); ++chunk) {
    Collected col;
    Deaggregator* d = nullptr;
    ASSERT_EQ(run(bytes, {chunk}, &d, &col), RxState::kClosed) << "chunk " << chunk << ": " << d->error_message();
    ASSERT_EQ(col.got.size(), 5u) << chunk;
    EXPECT_EQ(std::get<2>(col.got[0]), "alpha");
    EXPECT_EQ(std::get<2>(col.got[1]), "");
    EXPECT_EQ(std::get<2>(col.got[2]), "beta");
    EXPECT_EQ(std::get<0>(col.got[3]), 3u);
    EXPECT_EQ(std::get<2>(col.got[4]), std::string(300, 'q'));
    EXPECT_EQ(d->stats().pdus, 3u);
  }
}

TEST(NetpduDeaggregator, IrregularChunks) {
  const auto bytes = three_frames();
  Collected col;
  Deaggregator* d = nullptr;
  ASSERT_EQ(run(bytes, {3, 17, 1, 40, 2, 19, 21, 7}, &d, &col), RxState::kClosed) << d->error_message();
  EXPECT_EQ(col.got.size(), 5u);
}

TEST(NetpduDeaggregator, OneReadPerFrameWhenDataIsWaiting) {
  // With everything available, the header of frame k+1 arrives with the body of frame k:
  // 1 read for the first header, then one readv per frame, then the EOF read.
  FrameBuilder f;
  for (int i = 0; i < 50; ++i) {
    f.inline_pdu({{1, static_cast<std::uint32_t>(2 * i), "x"}, {1, static_cast<std::uint32_t>(2 * i + 1), "y"}});
  }
  auto [a, b] = test::socket_pair();
  test::write_all(a, f.out.data(), f.out.size());
  ::close(a);
  FdIo io(b);
  Collected col;
  ReceiverConfig rc = small_rx();
  rc.max_pdus_per_call = 1000;
  Deaggregator d(io, rc, col.sink());
  const IoCounters before = io_counters();
  EXPECT_EQ(d.on_readable(), RxState::kOpen);  // one call handles all 50 frames
  const IoCounters used = io_counters() - before;
  EXPECT_EQ(col.got.size(), 100u);
  EXPECT_EQ(used.read_calls + used.readv_calls, 1u + 50u);
  EXPECT_EQ(d.on_readable(), RxState::kClosed);
  ::close(b);
}

TEST(NetpduDeaggregator, FairnessBoundPerCall) {
  FrameBuilder f;
  for (int i = 0; i < 10; ++i) {
    f.inline_pdu({{1, static_cast<std::uint32_t>(i), "z"}});
  }
  ChunkedSource src(f.out, {1 << 20}, false);
  ReceiverConfig rc = small_rx();
  rc.max_pdus_per_call = 3;
  Collected col;
  Deaggregator d(src, rc, col.sink());
  d.on_readable();
  EXPECT_EQ(d.stats().pdus, 3u);
}

TEST(NetpduDeaggregator, RetryLaterStopsAndResumesInOrder) {
  const auto bytes = three_frames();
  ChunkedSource src(bytes, {1 << 20}, true);
  std::vector<std::string> got;
  int refusals = 2;
  Deaggregator d(src, small_rx(), [&](const Tlpdu& t) {
    if (t.meta.session == 3 && refusals > 0) {
      --refusals;
      return Verdict::kRetryLater;
    }
    got.push_back(test::text_of(t.payload.bytes));
    return Verdict::kAccept;
  });
  d.on_readable();
  EXPECT_TRUE(d.delivery_blocked());
  EXPECT_FALSE(d.wants_read());
  EXPECT_EQ(got.size(), 3u);
  d.on_readable();
  EXPECT_TRUE(d.delivery_blocked());
  for (int i = 0; i < 10 && d.on_readable() == RxState::kOpen; ++i) {
  }
  EXPECT_EQ(d.state(), RxState::kClosed);
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[3], "gamma");
}

TEST(NetpduDeaggregator, BudgetBoundsHeldPayloads) {
  FrameBuilder f;
  for (int i = 0; i < 8; ++i) {
    f.inline_pdu({{1, static_cast<std::uint32_t>(i), std::string(980, 'b')}});  // 1000-byte bodies
  }
  ChunkedSource src(f.out, {1 << 20}, true);
  ReceiverConfig rc = small_rx();
  rc.max_buffered_bytes = 3000;
  std::vector<Payload> held;  // the sink keeps every payload: nothing is released
  Deaggregator d(src, rc, [&](const Tlpdu& t) {
    held.push_back(t.payload);
    return Verdict::kAccept;
  });
  for (int i = 0; i < 20; ++i) {
    d.on_readable();
  }
  EXPECT_EQ(held.size(), 3u) << "a fourth 1000-byte body does not fit a 3000-byte budget";
  EXPECT_FALSE(d.wants_read());
  EXPECT_LE(d.budget()->used(), 3000u);
  held.erase(held.begin(), held.begin() + 2);  // the consumer lets go of two payloads
  EXPECT_TRUE(d.wants_read());
  d.on_readable();
  EXPECT_EQ(held.size(), 3u);
  held.clear();
  for (int i = 0; i < 20 && d.on_readable() == RxState::kOpen; ++i) {
    held.clear();
  }
  EXPECT_EQ(d.state(), RxState::kClosed);
  EXPECT_EQ(d.stats().pdus, 8u);
  EXPECT_EQ(d.budget()->used(), 0u);
}

struct BadCase {
  const char* name;
  std::vector<std::byte> bytes;
  RxError error;
  WireError wire;
  const char* message_part;
};

std::vector<BadCase> bad_cases() {
  std::vector<BadCase> v;
  auto add = [&v](const char* name, auto fn, RxError e, WireError w, const char* part) {
    FrameBuilder f;
    f.inline_pdu({{1, 0, "good"}});  // a good frame first: it must still be delivered
    fn(f);
    v.push_back({name, f.out, e, w, part});
  };
  add("magic", [](FrameBuilder& f) { f.pdu_header(40, 1, 0, 0, 20, 0x47455420); }, RxError::kWire,
      WireError::kBadMagic, "bad magic");
  add("version", [](FrameBuilder& f) { f.pdu_header(40, 1, 0, 0, 20, 0x4E504455, 2); }, RxError::kWire,
      WireError::kBadVersion, "bad version");
  add("flags", [](FrameBuilder& f) { f.pdu_header(40, 1, 0x80); }, RxError::kWire, WireError::kBadFlags, "bad flags");
  add("header length", [](FrameBuilder& f) { f.pdu_header(40, 1, 0, 0, 16); }, RxError::kWire,
      WireError::kBadHeaderLength, "bad header length");
  add("too long", [](FrameBuilder& f) { f.pdu_header(4097, 1); }, RxError::kWire, WireError::kTooLong, "maximum");
  add("huge", [](FrameBuilder& f) { f.pdu_header(0xFFFFFFF0, 1); }, RxError::kWire, WireError::kTooLong, "maximum");
  add("count zero", [](FrameBuilder& f) { f.pdu_header(20, 0); }, RxError::kWire, WireError::kBadCount, "count");
  add("count above max", [](FrameBuilder& f) { f.pdu_header(20 + 20 * 17, 17); }, RxError::kWire,
      WireError::kBadCount, "count");
  add("count does not fit", [](FrameBuilder& f) { f.pdu_header(59, 2); }, RxError::kWire, WireError::kBadLength,
      "bad length");
  add("count larger than TLPDUs",
      [](FrameBuilder& f) {
        f.pdu_header(20 + 40 + 4, 2);
        f.tlpdu_header(2, 1, 1, 24);
        f.text(std::string(24, 'a'));
      },
      RxError::kWire, WireError::kBadLength, "TLPDU #1");
  add("count smaller than TLPDUs",
      [](FrameBuilder& f) {
        f.pdu_header(20 + 40, 1);
        f.tlpdu_header(2, 1, 1, 0);
        f.tlpdu_header(2, 1, 2, 0);
      },
      RxError::kWire, WireError::kLengthMismatch, "do not add up");
  add("size past end",
      [](FrameBuilder& f) {
        f.pdu_header(20 + 20 + 3, 1);
        f.tlpdu_header(2, 1, 1, 4);
        f.text("abc");
      },
      RxError::kWire, WireError::kBadLength, "TLPDU #0");
  add("tlpdu type",
      [](FrameBuilder& f) {
        f.pdu_header(40, 1);
        f.tlpdu_header(0x42, 1, 1, 0);
      },
      RxError::kWire, WireError::kBadType, "unknown TLPDU type");
  add("tlpdu reserved",
      [](FrameBuilder& f) {
        f.pdu_header(40, 1);
        f.tlpdu_header(2, 1, 1, 0, 0, 0x0100);
      },
      RxError::kWire, WireError::kBadReserved, "reserved");
  add("eof in header", [](FrameBuilder& f) { f.u32(0x4E504455); }, RxError::kTruncated, WireError::kNone,
      "4 of 20 bytes");
  add("eof in body",
      [](FrameBuilder& f) {
        f.pdu_header(100, 1);
        f.tlpdu_header(2, 1, 1, 60);
        f.text("only some");
      },
      RxError::kTruncated, WireError::kNone, "49 of 100 bytes");
  return v;
}

TEST(NetpduDeaggregator, EveryBadInputFailsClearly) {
  for (const auto& c : bad_cases()) {
    for (std::size_t chunk : {std::size_t{1}, std::size_t{7}, std::size_t{1} << 20}) {
      Collected col;
      Deaggregator* d = nullptr;
      EXPECT_EQ(run(c.bytes, {chunk}, &d, &col), RxState::kFailed) << c.name;
      EXPECT_EQ(d->error(), c.error) << c.name << ": " << d->error_message();
      EXPECT_EQ(d->wire_error(), c.wire) << c.name;
      EXPECT_NE(d->error_message().find(c.message_part), std::string::npos) << c.name << ": " << d->error_message();
      EXPECT_NE(d->error_message().find("NetPDU #2"), std::string::npos) << c.name << ": " << d->error_message();
      ASSERT_EQ(col.got.size(), 1u) << c.name << ": the good frame before the bad one is delivered";
      EXPECT_EQ(std::get<2>(col.got[0]), "good");
      EXPECT_FALSE(d->wants_read());
      EXPECT_EQ(d->budget()->used(), 0u) << c.name << ": a failed receiver holds no memory";
    }
  }
}

TEST(NetpduDeaggregator, SinkVerdictsFailTheTransport) {
  FrameBuilder f;
  f.inline_pdu({{1, 0, "a"}, {0xBAD, 0, "b"}, {1, 1, "c"}});
  for (auto [verdict, error, part] :
       {std::tuple{Verdict::kUnknownSession, RxError::kUnknownSession, "unknown session: session 0xbad"},
        std::tuple{Verdict::kBadSequence, RxError::kBadSequence, "bad sequence number"},
        std::tuple{Verdict::kReject, RxError::kRejected, "rejected"}}) {
    ChunkedSource src(f.out, {1 << 20}, true);
    std::vector<std::string> got;
    Deaggregator d(src, small_rx(), [&, v = verdict](const Tlpdu& t) {
      if (t.meta.session == 0xBAD) {
        return v;
      }
      got.push_back(test::text_of(t.payload.bytes));
      return Verdict::kAccept;
    });
    EXPECT_EQ(d.on_readable(), RxState::kFailed);
    EXPECT_EQ(d.error(), error);
    EXPECT_NE(d.error_message().find(part), std::string::npos) << d.error_message();
    EXPECT_EQ(got, std::vector<std::string>{"a"});
  }
}

// One transport gets garbage, the other keeps working: nothing else is lost.
TEST(NetpduDeaggregator, BadTransportDoesNotDisturbAnother) {
  ManualClock clock;
  auto [good_a, good_b] = test::socket_pair();
  auto [bad_a, bad_b] = test::socket_pair();
  std::map<std::uint64_t, std::uint32_t> next;
  std::size_t good_count = 0;
  auto good_rx = Endpoint::single(good_b, EndpointConfig{}, clock, [&](const Tlpdu& t) {
    EXPECT_EQ(t.meta.seq, next[t.meta.session]++);
    ++good_count;
    return Verdict::kAccept;
  });
  auto bad_rx = Endpoint::single(bad_b, EndpointConfig{}, clock, [](const Tlpdu&) { return Verdict::kAccept; });
  auto tx = Endpoint::single(good_a, EndpointConfig{}, clock, [](const Tlpdu&) { return Verdict::kAccept; });
  const std::string garbage = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  test::write_all(bad_a, garbage.data(), garbage.size());
  std::uint32_t sent = 0;
  for (; sent < 1000; ++sent) {
    TlpduMeta m;
    m.session = sent % 7;
    m.seq = sent / 7;
    ASSERT_EQ(tx->submit(m, copy_payload(ByteSpan(test::bytes_of("msg")))), 0);
  }
  tx->flush();
  ASSERT_TRUE(test::pump({test::node_of(*tx), test::node_of(*good_rx), test::node_of(*bad_rx)},
                         [&] { return good_count == 1000 && bad_rx->state() != Endpoint::State::kOpen; }));
  EXPECT_EQ(bad_rx->state(), Endpoint::State::kFailed);
  EXPECT_NE(bad_rx->error_message().find("bad magic"), std::string::npos) << bad_rx->error_message();
  EXPECT_EQ(good_rx->state(), Endpoint::State::kOpen);
  ::close(bad_a);
}

}  // namespace
}  // namespace xtcp::netpdu
