// Variant 2 (control transport) tests: the exact header bytes on the control transport and
// raw payloads on the data transports, headers sent only after their payloads, many
// headers per control read with payloads scattered per TLPDU, reads split anywhere, and
// every bad input of the split format failing clearly.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "netpdu/split_aggregator.h"
#include "netpdu/endpoint.h"
#include "netpdu/split_deaggregator.h"
#include "tests/netpdu/test_util.h"

namespace xtcp::netpdu {
namespace {

using test::ChunkedSource;
using test::FrameBuilder;
using test::ScriptedSink;

AggregatorConfig cfg() {
  AggregatorConfig c;
  c.max_pdu_bytes = 8192;
  c.max_tlpdus = 64;
  c.flush_bytes = 8192;
  c.max_queued_bytes = 65536;
  c.low_watermark = 16384;
  return c;
}

ReceiverConfig rx_cfg() {
  ReceiverConfig c;
  c.limits.max_pdu_bytes = 8192;
  c.limits.max_tlpdus = 64;
  return c;
}

TlpduMeta data(std::uint64_t session, std::uint32_t seq) {
  TlpduMeta m;
  m.session = session;
  m.seq = seq;
  return m;
}

Payload text(const std::string& s) { return copy_payload(ByteSpan(test::bytes_of(s))); }

// A session id that lane_of() puts on the wanted lane.
std::uint64_t session_on(std::size_t lane, std::size_t lanes, std::uint64_t from = 1) {
  for (std::uint64_t s = from;; ++s) {
    if (lane_of(s, lanes) == lane) {
      return s;
    }
  }
}

TEST(NetpduSplit, LaneIsStablePerSession) {
  std::vector<int> per_lane(4);
  for (std::uint64_t s = 0; s < 4000; ++s) {
    const auto l = lane_of(s, 4);
    EXPECT_EQ(l, lane_of(s, 4));
    ++per_lane[l];
  }
  for (int n : per_lane) {
    EXPECT_GT(n, 800) << "sessions spread over the lanes";
  }
}

TEST(NetpduSplit, GoldenControlAndDataBytes) {
  ManualClock clock;
  ScriptedSink control;
  ScriptedSink d0;
  ScriptedSink d1;
  SplitAggregator agg(control, {&d0, &d1}, cfg(), clock);
  const std::uint64_t s = session_on(1, 2);
  ASSERT_EQ(agg.submit(data(s, 0), text("hello")), 0);
  ASSERT_EQ(agg.submit(data(s, 1), Payload{}), 0);
  ASSERT_EQ(agg.submit(data(s, 2), text("xy")), 0);
  agg.flush();
  FrameBuilder want;
  want.pdu_header(20 + 60 + 7, 3, 0x01, 1, 80);
  want.tlpdu_header(2, s, 0, 5);
  want.tlpdu_header(2, s, 1, 0);
  want.tlpdu_header(2, s, 2, 2);
  EXPECT_EQ(control.bytes_, want.out);
  EXPECT_EQ(test::text_of(ByteSpan(d1.bytes_)), "helloxy");
  EXPECT_TRUE(d0.bytes_.empty());
  EXPECT_EQ(control.calls_, 1u);
  EXPECT_EQ(d1.calls_, 1u);
  EXPECT_TRUE(agg.idle());
}

TEST(NetpduSplit, HeaderFollowsItsPayloadGatherCall) {
  // Payloads before headers: the payloads' gather call, then the header. The header does
  // not wait for the payloads to be completely written (that would deadlock once a NetPDU is
  // larger than the socket buffer; see NetpduRoundTrip.Variant2SmallBuffersBackpressure).
  ManualClock clock;
  std::vector<std::string> log;
  ScriptedSink control;
  ScriptedSink d0;
  control.log_ = &log;
  control.name_ = "control";
  d0.log_ = &log;
  d0.name_ = "data0";
  d0.blocked_ = true;
  SplitAggregator agg(control, {&d0}, cfg(), clock);
  ASSERT_EQ(agg.submit(data(1, 0), text("payload")), 0);
  agg.flush();
  EXPECT_EQ(log, (std::vector<std::string>{"data0", "control"}));
  EXPECT_EQ(control.bytes_.size(), 40u);
  EXPECT_TRUE(agg.wants_write_data(0));
  EXPECT_FALSE(agg.idle());
  d0.blocked_ = false;
  d0.per_call_ = 3;
  agg.on_writable_data(0);
  agg.on_writable_data(0);
  agg.on_writable_data(0);
  EXPECT_EQ(test::text_of(ByteSpan(d0.bytes_)), "payload");
  EXPECT_TRUE(agg.idle());
  EXPECT_EQ(control.calls_, 1u) << "no extra control writes while the data trickles out";
}

TEST(NetpduSplit, HeadersLeaveInCloseOrder) {
  ManualClock clock;
  ScriptedSink control;
  ScriptedSink d0;
  d0.blocked_ = true;
  SplitAggregator agg(control, {&d0}, cfg(), clock);
  ASSERT_EQ(agg.submit(data(1, 0), text("abc")), 0);
  agg.flush();
  ASSERT_EQ(agg.submit(data(1, 1), Payload{}), 0);
  agg.flush();
  ASSERT_EQ(control.bytes_.size(), 80u);
  EXPECT_EQ(load_be32(control.bytes_.data() + 20 + 12), 0u) << "first header carries seq 0";
  EXPECT_EQ(load_be32(control.bytes_.data() + 40 + 20 + 12), 1u) << "second header carries seq 1";
}

TEST(NetpduSplit, LatencyBoundPerLane) {
  ManualClock clock;
  ScriptedSink control;
  ScriptedSink d0;
  ScriptedSink d1;
  SplitAggregator agg(control, {&d0, &d1}, cfg(), clock);
  const TimeNs t0 = clock.now();
  ASSERT_EQ(agg.submit(data(session_on(0, 2), 0), text("a")), 0);
  clock.advance(100 * kNsPerUs);
  ASSERT_EQ(agg.submit(data(session_on(1, 2), 0), text("b")), 0);
  EXPECT_EQ(agg.next_deadline(), t0 + 200 * kNsPerUs);
  clock.advance(100 * kNsPerUs);
  agg.poll();
  EXPECT_EQ(d0.bytes_.size(), 1u);
  EXPECT_TRUE(d1.bytes_.empty());
  EXPECT_EQ(agg.next_deadline(), t0 + 300 * kNsPerUs);
  clock.advance(100 * kNsPerUs);
  agg.poll();
  EXPECT_EQ(d1.bytes_.size(), 1u);
  EXPECT_EQ(control.bytes_.size(), 80u);
}

struct Stream {
  std::vector<std::byte> control;
  std::vector<std::vector<std::byte>> data;
};

Stream aggregate(const std::vector<std::tuple<std::uint64_t, std::uint32_t, std::string>>& tl, std::size_t lanes,
                 std::uint32_t flush_bytes = 8192) {
  ManualClock clock;
  ScriptedSink control;
  std::vector<ScriptedSink> sinks(lanes);
  std::vector<ByteSink*> ptrs;
  for (auto& s : sinks) {
    ptrs.push_back(&s);
  }
  AggregatorConfig c = cfg();
  c.flush_bytes = flush_bytes;
  SplitAggregator agg(control, ptrs, c, clock);
  for (const auto& [s, q, t] : tl) {
    EXPECT_EQ(agg.submit(data(s, q), text(t)), 0);
  }
  agg.flush();
  Stream out;
  out.control = control.bytes_;
  for (auto& s : sinks) {
    out.data.push_back(s.bytes_);
  }
  return out;
}

TEST(NetpduSplit, ManyHeadersPerControlReadAndScatter) {
  std::vector<std::tuple<std::uint64_t, std::uint32_t, std::string>> tl;
  std::map<std::uint64_t, std::uint32_t> seq;
  for (int i = 0; i < 400; ++i) {
    const std::uint64_t s = 100 + i % 13;
    tl.emplace_back(s, seq[s]++, std::string(static_cast<std::size_t>(i % 50), static_cast<char>('a' + i % 26)));
  }
  const Stream st = aggregate(tl, 3, 300);  // ~100-byte NetPDUs: many headers
  ChunkedSource ctl(st.control, {1 << 20}, true);
  std::vector<std::unique_ptr<ChunkedSource>> ds;
  std::vector<ByteSource*> dp;
  for (const auto& d : st.data) {
    ds.push_back(std::make_unique<ChunkedSource>(d, std::vector<std::size_t>{1 << 20}, true));
    dp.push_back(ds.back().get());
  }
  std::vector<std::tuple<std::uint64_t, std::uint32_t, std::string>> got;
  ReceiverConfig rc = rx_cfg();
  rc.max_pdus_per_call = 100000;
  SplitDeaggregator rx(ctl, dp, rc, [&](const Tlpdu& t) {
    got.emplace_back(t.meta.session, t.meta.seq, test::text_of(t.payload.bytes));
    return Verdict::kAccept;
  });
  for (int i = 0; i < 1000 && rx.on_readable() == RxState::kOpen; ++i) {
  }
  EXPECT_EQ(rx.state(), RxState::kClosed) << rx.error_message();
  std::map<std::uint64_t, std::vector<std::tuple<std::uint64_t, std::uint32_t, std::string>>> want_by, got_by;
  for (const auto& x : tl) {
    want_by[std::get<0>(x)].push_back(x);
  }
  for (const auto& x : got) {
    got_by[std::get<0>(x)].push_back(x);
  }
  EXPECT_EQ(got_by, want_by) << "every byte, per-session order";
  EXPECT_GT(rx.stats().pdus, 20u);
  EXPECT_LE(ctl.calls(), 3u) << "all headers came with one control read (+ EAGAIN + EOF)";
}

TEST(NetpduSplit, ReadsSplitAnywhere) {
  std::vector<std::tuple<std::uint64_t, std::uint32_t, std::string>> tl;
  for (std::uint32_t i = 0; i < 60; ++i) {
    tl.emplace_back(7 + i % 3, i / 3, std::string(i * 3, static_cast<char>('A' + i % 26)));
  }
  const Stream st = aggregate(tl, 2, 200);
  for (std::size_t chunk : {1, 2, 5, 19, 64}) {
    ChunkedSource ctl(st.control, {chunk, chunk * 3}, true);
    ChunkedSource d0(st.data[0], {chunk * 2 + 1}, true);
    ChunkedSource d1(st.data[1], {chunk + 2, 1}, true);
    std::vector<std::string> got;
    SplitDeaggregator rx(ctl, {&d0, &d1}, rx_cfg(), [&](const Tlpdu& t) {
      got.push_back(test::text_of(t.payload.bytes));
      return Verdict::kAccept;
    });
    for (int i = 0; i < 100000 && rx.on_readable() == RxState::kOpen; ++i) {
    }
    EXPECT_EQ(rx.state(), RxState::kClosed) << chunk << ": " << rx.error_message();
    EXPECT_EQ(got.size(), 60u) << chunk;
  }
}

TEST(NetpduSplit, LargePayloadsGetTheirOwnBuffers) {
  const std::string big(5000, 'B');
  const Stream st = aggregate({{1, 0, "small"}, {1, 1, big}, {1, 2, "tiny"}}, 1);
  ChunkedSource ctl(st.control, {1 << 20}, true);
  ChunkedSource d0(st.data[0], {1 << 20}, true);
  std::vector<Payload> got;
  SplitDeaggregator rx(ctl, {&d0}, rx_cfg(), [&](const Tlpdu& t) {
    got.push_back(t.payload);
    return Verdict::kAccept;
  });
  rx.on_readable();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].owner, got[2].owner) << "small payloads share one block";
  EXPECT_NE(got[0].owner, got[1].owner) << "a large payload has its own buffer";
  EXPECT_EQ(test::text_of(got[1].bytes), big);
}

struct SplitBad {
  const char* name;
  std::vector<std::byte> control;
  std::vector<std::byte> data;
  RxError error;
  const char* part;
};

TEST(NetpduSplit, EveryBadInputFailsClearly) {
  std::vector<SplitBad> cases;
  auto add = [&](const char* name, auto fn, std::vector<std::byte> dbytes, RxError e, const char* part) {
    FrameBuilder f;
    f.pdu_header(20 + 20 + 2, 1, 0x01, 0, 40);  // a good first NetPDU
    f.tlpdu_header(2, 5, 0, 2);
    fn(f);
    std::vector<std::byte> d = test::bytes_of("ok");
    d.insert(d.end(), dbytes.begin(), dbytes.end());
    cases.push_back({name, f.out, d, e, part});
  };
  add("transport", [](FrameBuilder& f) { f.pdu_header(40, 1, 0x01, 2, 40), f.tlpdu_header(2, 5, 1, 0); }, {},
      RxError::kWire, "no such data transport");
  add("header length", [](FrameBuilder& f) { f.pdu_header(60, 1, 0x01, 0, 60); }, {}, RxError::kWire,
      "bad header length");
  add("inline header on control", [](FrameBuilder& f) { f.pdu_header(40, 1, 0x00, 0, 20); }, {}, RxError::kWire,
      "bad flags");
  add("magic", [](FrameBuilder& f) { f.pdu_header(40, 1, 0x01, 0, 40, 0x12345678); }, {}, RxError::kWire,
      "bad magic");
  add("sizes vs total",
      [](FrameBuilder& f) {
        f.pdu_header(40 + 10, 1, 0x01, 0, 40);
        f.tlpdu_header(2, 5, 1, 9);
      },
      test::bytes_of("123456789"), RxError::kWire, "sizes sum to 9");
  add("tlpdu type",
      [](FrameBuilder& f) {
        f.pdu_header(40, 1, 0x01, 0, 40);
        f.tlpdu_header(0, 5, 1, 0);
      },
      {}, RxError::kWire, "unknown TLPDU type");
  add("eof on control in header", [](FrameBuilder& f) { f.pdu_header(40, 1, 0x01, 0, 40); }, {},
      RxError::kTruncated, "end of control stream");
  add("eof on data in payload",
      [](FrameBuilder& f) {
        f.pdu_header(40 + 10, 1, 0x01, 0, 40);
        f.tlpdu_header(2, 5, 1, 10);
      },
      test::bytes_of("1234"), RxError::kTruncated, "4 of 10 bytes");
  for (const auto& c : cases) {
    for (std::size_t chunk : {std::size_t{1}, std::size_t{1} << 20}) {
      ChunkedSource ctl(c.control, {chunk}, true);
      ChunkedSource d0(c.data, {chunk}, true);
      ChunkedSource d1({}, {chunk}, true);
      std::vector<std::string> got;
      SplitDeaggregator rx(ctl, {&d0, &d1}, rx_cfg(), [&](const Tlpdu& t) {
        got.push_back(test::text_of(t.payload.bytes));
        return Verdict::kAccept;
      });
      for (int i = 0; i < 10000 && rx.on_readable() == RxState::kOpen; ++i) {
      }
      EXPECT_EQ(rx.state(), RxState::kFailed) << c.name;
      EXPECT_EQ(rx.error(), c.error) << c.name << ": " << rx.error_message();
      EXPECT_NE(rx.error_message().find(c.part), std::string::npos) << c.name << ": " << rx.error_message();
      EXPECT_NE(rx.error_message().find("NetPDU #2"), std::string::npos) << c.name << ": " << rx.error_message();
      EXPECT_EQ(got, std::vector<std::string>{"ok"}) << c.name;
    }
  }
}

TEST(NetpduSplit, UnknownSessionFromSink) {
  const Stream st = aggregate({{1, 0, "a"}, {2, 0, "b"}}, 1);
  ChunkedSource ctl(st.control, {1 << 20}, true);
  ChunkedSource d0(st.data[0], {1 << 20}, true);
  SplitDeaggregator rx(ctl, {&d0}, rx_cfg(),
                       [](const Tlpdu& t) { return t.meta.session == 2 ? Verdict::kUnknownSession : Verdict::kAccept; });
  EXPECT_EQ(rx.on_readable(), RxState::kFailed);
  EXPECT_EQ(rx.error(), RxError::kUnknownSession);
  EXPECT_NE(rx.error_message().find("session 0x2"), std::string::npos) << rx.error_message();
}

}  // namespace
}  // namespace xtcp::netpdu

namespace xtcp::netpdu {
namespace {

// Many NetPDUs of empty payloads arrive with one control read; the fairness cap stops the
// receiver after a few, and nothing is left to read on any descriptor: the endpoint must
// still finish them (it asks to run again at once instead of waiting for input).
TEST(NetpduSplit, WorkLeftByTheFairnessCapIsFinishedWithoutNewInput) {
  SteadyClock clock;
  auto [c0, c1] = test::socket_pair();
  auto [d0, d1] = test::socket_pair();
  Negotiated n;
  n.role = Role::kControl;
  n.max_pdu_bytes = 256 * 1024;
  n.max_tlpdus = 8192;
  n.data_count = 1;
  EndpointConfig base;
  base.rx.max_pdus_per_call = 3;
  std::size_t got = 0;
  auto tx = Endpoint::open(Transport{n, c0, {d0}}, base, clock, [](const Tlpdu&) { return Verdict::kAccept; });
  auto rx = Endpoint::open(Transport{n, c1, {d1}}, base, clock, [&](const Tlpdu&) {
    ++got;
    return Verdict::kAccept;
  });
  for (std::uint32_t i = 0; i < 100; ++i) {
    TlpduMeta m;
    m.type = TlpduType::kOpen;
    m.session = i + 1;
    ASSERT_EQ(tx->submit(m, Payload{}), 0);
    tx->flush();  // one NetPDU each, all written before the receiver runs
  }
  ASSERT_TRUE(test::pump({test::node_of(*tx), test::node_of(*rx)}, [&] { return got == 100; }, 5000)) << got;
  EXPECT_EQ(rx->rx_stats().pdus, 100u);
}

}  // namespace
}  // namespace xtcp::netpdu
