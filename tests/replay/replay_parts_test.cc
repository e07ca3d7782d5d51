// xtcp-replay's parts without a server: pcap reading and flow extraction, the server's byte
// stream, sequence rewriting (ACK clamping, SACK and timestamp echo, checksums kept wrong),
// and the report's words and JSON.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "stack/netif/pcap_writer.h"
#include "stack/wire/checksum.h"
#include "stack/wire/ipv4.h"
#include "stack/wire/tcp.h"
#include "tools/replay/capture.h"
#include "tools/replay/report.h"
#include "tools/replay/replayer.h"
#include "tools/replay/rewrite.h"
#include "tools/replay/target.h"

namespace xtcp::replay {
namespace {

namespace tf = wire::tcp_flags;

constexpr std::uint32_t kClient = 0xC6120001;  // 198.18.0.1
constexpr std::uint32_t kServer = 0xC6120002;  // 198.18.0.2

std::vector<std::byte> segment(bool from_client, std::uint8_t flags, std::uint32_t seq, std::uint32_t ack,
                               const std::string& data, const wire::TcpOptions& opts = {}) {
  wire::TcpFields f;
  f.src_port = from_client ? 40000 : 7;
  f.dst_port = from_client ? 7 : 40000;
  f.seq = wire::SeqNum(seq);
  f.ack = wire::SeqNum(ack);
  f.flags = flags;
  f.window = 1000;
  const std::size_t hl = wire::tcp_header_length(opts);
  std::vector<std::byte> p(20 + hl + data.size());
  wire::emit_tcp_header(p.data() + 20, f, opts);
  std::memcpy(p.data() + 20 + hl, data.data(), data.size());
  const std::uint32_t src = from_client ? kClient : kServer;
  const std::uint32_t dst = from_client ? kServer : kClient;
  wire::fill_tcp_checksum(wire::MutableByteSpan(p.data() + 20, p.size() - 20), src, dst);
  wire::Ipv4Fields ip;
  ip.total_length = static_cast<std::uint16_t>(p.size());
  ip.protocol = wire::kProtoTcp;
  ip.src = src;
  ip.dst = dst;
  wire::emit_ipv4_header(p.data(), ip);
  return p;
}

std::string text_of(const std::vector<std::byte>& b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

// A capture: handshake (server ISN 5000), "hello" echoed in two pieces (the second first,
// then the first, then the first again), FIN both ways.
std::vector<CapturedPacket> sample_packets() {
  std::vector<std::vector<std::byte>> ps = {
      segment(true, tf::kSyn, 100, 0, ""),
      segment(false, tf::kSyn | tf::kAck, 5000, 101, ""),
      segment(true, tf::kAck, 101, 5001, ""),
      segment(true, tf::kAck | tf::kPsh, 101, 5001, "hello"),
      segment(false, tf::kAck, 5004, 106, "lo"),
      segment(false, tf::kAck, 5001, 106, "hel"),
      segment(false, tf::kAck, 5001, 106, "hel"),
      segment(true, tf::kAck | tf::kFin, 106, 5006, ""),
      segment(false, tf::kAck | tf::kFin, 5006, 107, ""),
      segment(true, tf::kAck, 107, 5007, ""),
  };
  std::vector<CapturedPacket> out;
  TimeNs t = seconds(1000);
  for (auto& p : ps) {
    CapturedPacket c;
    c.time = t;
    t += ms(1);
    c.ip = p;
    c.facts = read_tcp_facts(c.ip);
    out.push_back(std::move(c));
  }
  return out;
}

TEST(ReplayCapture, FlowsServerStreamAndEndFromPackets) {
  std::string error;
  auto cap = extract_flows(sample_packets(), std::nullopt, &error);
  ASSERT_TRUE(cap) << error;
  EXPECT_EQ(cap->server, (Endpoint{kServer, 7}));
  ASSERT_EQ(cap->flows.size(), 1u);
  const Flow& f = cap->flows[0];
  EXPECT_EQ(format_endpoint(f.client), "198.18.0.1:40000");
  EXPECT_TRUE(f.client_syn);
  EXPECT_EQ(f.client_isn, 100u);
  EXPECT_EQ(f.server_isn, 5000u);
  EXPECT_EQ(text_of(f.server_bytes), "hello");  // reordered and retransmitted pieces, once, in order
  EXPECT_FALSE(f.server_bytes_gap);
  EXPECT_TRUE(f.end.fin);
  EXPECT_FALSE(f.end.rst);
  EXPECT_EQ(f.client_packets, 5u);
  EXPECT_EQ(f.server_packets, 5u);
}

TEST(ReplayCapture, NoSynNeedsTheServerNamed) {
  auto packets = sample_packets();
  packets.erase(packets.begin());
  std::string error;
  EXPECT_FALSE(extract_flows(packets, std::nullopt, &error));
  EXPECT_NE(error.find("--server"), std::string::npos) << error;
  EXPECT_TRUE(extract_flows(sample_packets(), Endpoint{kServer, 7}, &error));
}

TEST(ReplayCapture, ReadsAPcapFileWrittenByPcapWriter) {
  const std::string path = ::testing::TempDir() + "replay_parts_read.pcap";
  std::string error;
  {
    auto w = PcapWriter::open(path, kPcapLinkTypeRaw, kPcapSnapLen, &error);
    ASSERT_TRUE(w) << error;
    for (const auto& p : sample_packets()) {
      w->write(static_cast<std::uint64_t>(p.time / kNsPerUs), p.ip);
    }
  }
  auto packets = read_pcap(path, &error);
  ASSERT_TRUE(packets) << error;
  ASSERT_EQ(packets->size(), 10u);
  EXPECT_EQ((*packets)[1].time, seconds(1000) + ms(1));
  EXPECT_TRUE((*packets)[3].facts.valid);
  EXPECT_EQ((*packets)[3].facts.payload_length, 5u);
  std::remove(path.c_str());
  EXPECT_FALSE(read_pcap(path, &error));
  EXPECT_NE(error.find("cannot read pcap file"), std::string::npos);
}

TEST(ReplayRewrite, AckMovesIntoTheLiveServersSpaceAndNeverPastWhatItSent) {
  std::string error;
  auto cap = extract_flows(sample_packets(), std::nullopt, &error);
  ASSERT_TRUE(cap);
  const Flow& flow = cap->flows[0];
  LiveFlow live;
  const auto synack = segment(false, tf::kSyn | tf::kAck, 900'000, 101, "");
  live.take(synack, read_tcp_facts(synack));
  CapturedServerState cs;
  cs.take(cap->packets[1].ip, cap->packets[1].facts, flow);
  AddressMap addresses;
  // The handshake's ACK: captured 5001 -> live 900001.
  auto out = rewrite_client_packet(cap->packets[2], flow, cs, live, addresses);
  TcpFacts f = read_tcp_facts(out);
  EXPECT_EQ(f.seq, 101u);  // the client's own numbers stay
  EXPECT_EQ(f.ack, 900'001u);
  EXPECT_TRUE(tcp_checksum_ok(out, f));
  // The FIN acknowledges 5 captured bytes; the live server sent only 3 so far.
  for (std::size_t i = 4; i < 7; ++i) {
    cs.take(cap->packets[i].ip, cap->packets[i].facts, flow);
  }
  const auto three = segment(false, tf::kAck, 900'001, 106, "hel");
  live.take(three, read_tcp_facts(three));
  out = rewrite_client_packet(cap->packets[7], flow, cs, live, addresses);
  f = read_tcp_facts(out);
  EXPECT_EQ(f.ack, 900'004u);
  // An ACK past what even the captured server had sent stays that far past the live one.
  auto beyond = cap->packets[7];
  beyond.ip = segment(true, tf::kAck, 106, 5006 + 1000, "");
  beyond.facts = read_tcp_facts(beyond.ip);
  out = rewrite_client_packet(beyond, flow, cs, live, addresses);
  EXPECT_EQ(read_tcp_facts(out).ack, 900'004u + 1000);
}

TEST(ReplayRewrite, SackBlocksTimestampEchoAndAddressesMove) {
  std::string error;
  auto cap = extract_flows(sample_packets(), std::nullopt, &error);
  ASSERT_TRUE(cap);
  const Flow& flow = cap->flows[0];
  CapturedServerState cs;
  for (std::size_t i = 1; i < 7; ++i) {
    if (!cap->from_client[i]) {
      cs.take(cap->packets[i].ip, cap->packets[i].facts, flow);
    }
  }
  LiveFlow live;
  wire::TcpOptions ts;
  ts.has_timestamp = true;
  ts.ts_val = 777;
  const auto synack = segment(false, tf::kSyn | tf::kAck, 10, 101, "", ts);
  live.take(synack, read_tcp_facts(synack));
  const auto data = segment(false, tf::kAck, 11, 106, "hello", ts);
  live.take(data, read_tcp_facts(data));
  wire::TcpOptions o;
  o.has_timestamp = true;
  o.ts_val = 55;
  o.ts_ecr = 123456;  // the captured server's TSval
  o.sack_count = 1;
  o.sack[0] = {wire::SeqNum(5004), wire::SeqNum(5006)};
  CapturedPacket p;
  p.ip = segment(true, tf::kAck, 106, 5001, "", o);
  p.facts = read_tcp_facts(p.ip);
  AddressMap addresses;
  addresses.client_base = 0xC6130001;  // 198.19.0.1
  addresses.server_addr = 0xC6130101;
  auto out = rewrite_client_packet(p, flow, cs, live, addresses);
  const TcpFacts f = read_tcp_facts(out);
  EXPECT_EQ(f.src.addr, 0xC6130001u);
  EXPECT_EQ(f.dst.addr, 0xC6130101u);
  EXPECT_TRUE(ip_checksum_ok(out, f));
  EXPECT_TRUE(tcp_checksum_ok(out, f));
  wire::TcpOptions got;
  ASSERT_EQ(wire::parse_tcp_options(std::span<const std::byte>(out).subspan(40, f.header_length - 20), &got),
            wire::TcpError::kNone);
  EXPECT_EQ(got.ts_val, 55u);
  EXPECT_EQ(got.ts_ecr, 777u);
  ASSERT_EQ(got.sack_count, 1);
  EXPECT_EQ(got.sack[0].left.raw(), 14u);
  EXPECT_EQ(got.sack[0].right.raw(), 16u);
}

TEST(ReplayRewrite, AWrongChecksumStaysWrong) {
  auto cap = sample_packets();
  CapturedPacket p = cap[3];
  p.ip[36] ^= std::byte{0x10};  // the TCP checksum
  p.ip[10] ^= std::byte{0x10};  // the IPv4 checksum
  p.facts = read_tcp_facts(p.ip);
  ASSERT_FALSE(tcp_checksum_ok(p.ip, p.facts));
  std::string error;
  auto c = extract_flows(sample_packets(), std::nullopt, &error);
  ASSERT_TRUE(c);
  LiveFlow live;
  const auto synack = segment(false, tf::kSyn | tf::kAck, 77, 101, "");
  live.take(synack, read_tcp_facts(synack));
  CapturedServerState cs;
  cs.take(c->packets[1].ip, c->packets[1].facts, c->flows[0]);
  AddressMap addresses;
  const auto out = rewrite_client_packet(p, c->flows[0], cs, live, addresses);
  const TcpFacts f = read_tcp_facts(out);
  EXPECT_EQ(f.ack, 78u);
  EXPECT_FALSE(tcp_checksum_ok(out, f));
  EXPECT_FALSE(ip_checksum_ok(out, f));
}

TEST(ReplayReport, NamesTheFlowOffsetExpectedAndGotAndTheEnd) {
  std::string error;
  auto cap = extract_flows(sample_packets(), std::nullopt, &error);
  ASSERT_TRUE(cap);
  ReplayOutcome outcome;
  outcome.flows.resize(1);
  LiveFlow& live = outcome.flows[0].live;
  const auto synack = segment(false, tf::kSyn | tf::kAck, 0, 101, "");
  live.take(synack, read_tcp_facts(synack));
  const auto data = segment(false, tf::kAck, 1, 106, "help\n");
  live.take(data, read_tcp_facts(data));
  const auto rst = segment(false, tf::kRst | tf::kAck, 6, 106, "");
  live.take(rst, read_tcp_facts(rst));
  Report r = compare(*cap, outcome);
  r.capture_path = "sample.pcap";
  r.target = "nothing";
  EXPECT_FALSE(r.same());
  const std::string text = format_text(r);
  EXPECT_NE(text.find("flow 198.18.0.1:40000 -> 198.18.0.2:7: DIFFERENT"), std::string::npos) << text;
  EXPECT_NE(text.find("differ at offset 3"), std::string::npos) << text;
  EXPECT_NE(text.find("expected: \"lo\" [6c 6f]"), std::string::npos) << text;
  EXPECT_NE(text.find("got:      \"p\\n\" [70 0a]"), std::string::npos) << text;
  EXPECT_NE(text.find("expected FIN from the server, got RST"), std::string::npos) << text;
  EXPECT_NE(text.find("result: DIFFERENT (1 of 1 flows differ)"), std::string::npos) << text;
  const std::string json = format_json(r);
  EXPECT_NE(json.find("\"kind\": \"bytes\", \"offset\": 3"), std::string::npos) << json;
  EXPECT_NE(json.find("\"expected\": \"lo\", \"got\": \"p\\\\n\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"kind\": \"end\", \"expected\": \"fin\", \"got\": \"rst\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"result\": \"different\""), std::string::npos) << json;
}

}  // namespace
}  // namespace xtcp::replay

namespace xtcp::replay {
namespace {

// Mutated and truncated packets (seeded) replayed against the in-process echo: every one
// that names the server is sent (none is lost to a parse failure in replay), and the run
// ends with a report of every flow.
TEST(ReplayRobustness, MutatedPacketsAreAllSentAndTheRunEnds) {
  std::uint64_t state = 0x9e3779b97f4a7c15ull;
  auto next = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  std::vector<CapturedPacket> packets;
  TimeNs t = seconds(10);
  for (int i = 0; i < 600; ++i) {
    std::vector<std::byte> p = segment(true, static_cast<std::uint8_t>(next()), static_cast<std::uint32_t>(next()),
                                       static_cast<std::uint32_t>(next()), "payload bytes");
    // Keep the addresses and ports (bytes 12..23) so the packet stays in a flow; mutate the rest.
    for (int m = 0; m < 3; ++m) {
      const std::size_t at = next() % p.size();
      if (at < 12 || at >= 24) {
        p[at] = static_cast<std::byte>(next());
      }
    }
    if (next() % 4 == 0) {
      p.resize(24 + next() % (p.size() - 24));
    }
    CapturedPacket c;
    c.time = t;
    t += us(100);
    c.ip = std::move(p);
    c.facts = read_tcp_facts(c.ip);
    packets.push_back(std::move(c));
  }
  std::string error;
  auto cap = extract_flows(std::move(packets), Endpoint{kServer, 7}, &error);
  ASSERT_TRUE(cap) << error;
  std::uint64_t placed = 0;
  for (std::size_t i = 0; i < cap->packets.size(); ++i) {
    placed += cap->flow_of[i] != SIZE_MAX && cap->from_client[i] ? 1 : 0;
  }
  EXPECT_GT(placed, 300u);
  InProcessOptions o;
  o.server = Endpoint{kServer, 7};
  auto target = make_in_process_target(o, &error);
  ASSERT_TRUE(target) << error;
  ReplayOptions ro;
  ro.answer_wait = ms(10);
  ro.linger = ms(100);
  const ReplayOutcome out = replay(*cap, *target, ro, nullptr);
  EXPECT_EQ(out.error, 0) << out.error_text;
  EXPECT_EQ(out.client_packets_sent, placed);
  const Report r = compare(*cap, out);
  EXPECT_EQ(r.flows.size(), cap->flows.size());
}

}  // namespace
}  // namespace xtcp::replay
