// Engine test harness; see tcp_harness.h.
#include "tests/support/tcp_harness.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <sstream>

#include "stack/wire/checksum.h"
#include "stack/wire/ipv4.h"

namespace xtcp::test {

using namespace wire::tcp_flags;  // NOLINT

int ScriptLink::send(std::span<const std::byte> packet) {
  if (send_result < 0) {
    return send_result;
  }
  outbound_.emplace_back(packet.begin(), packet.end());
  return 0;
}

int ScriptLink::receive_batch(int max_packets, PacketHandler on_packet) {
  int n = 0;
  while (n < max_packets && !inbound_.empty()) {
    std::vector<std::byte> p = std::move(inbound_.front());
    inbound_.pop_front();
    on_packet(p);
    ++n;
  }
  return n;
}

std::vector<std::vector<std::byte>> ScriptLink::take_outbound() {
  std::vector<std::vector<std::byte>> out;
  out.swap(outbound_);
  return out;
}

std::vector<std::byte> bytes_of(std::string_view s) {
  std::vector<std::byte> v(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    v[i] = static_cast<std::byte>(s[i]);
  }
  return v;
}

std::vector<std::byte> pattern_bytes(std::size_t n, std::uint32_t seed) {
  std::vector<std::byte> v(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<std::byte>(x);
  }
  return v;
}

std::string Sent::describe() const {
  std::ostringstream o;
  o << "[";
  const char* names = "FSRPAUEC";
  for (int i = 0; i < 8; ++i) {
    if ((flags >> i) & 1) {
      o << names[i];
    }
  }
  o << " rseq=" << rseq << " rack=" << rack << " win=" << window << " len=" << payload.size();
  if (opts.sack_count > 0) {
    o << " sacks=" << static_cast<int>(opts.sack_count);
  }
  o << "]";
  return o.str();
}

::testing::AssertionResult Match::check(const Sent& s) const {
  std::ostringstream why;
  if (flags_ && *flags_ != s.flags) {
    why << " flags=" << static_cast<int>(s.flags) << " want " << static_cast<int>(*flags_);
  }
  if (rseq_ && *rseq_ != s.rseq) {
    why << " rseq=" << s.rseq << " want " << *rseq_;
  }
  if (rack_ && *rack_ != s.rack) {
    why << " rack=" << s.rack << " want " << *rack_;
  }
  if (len_ && *len_ != s.payload.size()) {
    why << " len=" << s.payload.size() << " want " << *len_;
  }
  if (window_ && *window_ != s.window) {
    why << " window=" << s.window << " want " << *window_;
  }
  if (sacks_ && *sacks_ != s.opts.sack_count) {
    why << " sack blocks=" << static_cast<int>(s.opts.sack_count) << " want " << *sacks_;
  }
  if (payload_ && *payload_ != s.payload) {
    why << " payload differs";
  }
  if (why.str().empty()) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << s.describe() << ":" << why.str();
}

TcpHarness::TcpHarness(const HarnessOptions& options)
    : buffers(options.rx_capacity, options.tx_capacity) {
  link.set_mtu(options.mtu);
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  ::mkdir("test-pcaps", 0755);
  std::string name = info != nullptr ? std::string(info->test_suite_name()) + "." + info->name()
                                     : std::string("harness");
  for (char& c : name) {
    if (c == '/') {
      c = '_';
    }
  }
  pcap_path_ = "test-pcaps/" + name + ".pcap";
  std::string err;
  tap = PcapTap::open(link, clock, pcap_path_, &err);
  StackConfig config;
  config.ip.local_addr = kStackAddr;
  config.ip.default_ttl = options.ttl;
  config.tcp = options.tcp;
  config.rx_batch = options.rx_batch;
  config.max_timer_delay = options.max_timer_delay;
  Link& l = tap ? static_cast<Link&>(*tap) : static_cast<Link&>(link);
  stack = std::make_unique<Stack>(config, l, clock, buffers.rx(), buffers.tx());
}

TcpHarness::~TcpHarness() {
  stack.reset();
  tap.reset();
  if (!::testing::Test::HasFailure()) {
    std::remove(pcap_path_.c_str());
  } else {
    std::fprintf(stderr, "traffic of the failed test: %s\n", pcap_path_.c_str());
  }
}

std::vector<std::byte> TcpHarness::build(const Seg& s) const {
  const std::uint32_t seq = s.absolute_seq ? s.seq : kPeerIsn + s.seq;
  const std::uint32_t ack = s.absolute_ack ? s.ack : iss + s.ack;
  wire::TcpFields f;
  f.src_port = s.src_port != 0 ? s.src_port : peer_port;
  f.dst_port = s.dst_port != 0 ? s.dst_port : stack_port;
  f.seq = wire::SeqNum(seq);
  f.ack = wire::SeqNum((s.flags & kAck) != 0 ? ack : 0);
  f.flags = s.flags;
  f.window = s.window;
  f.urgent_pointer = s.urgent;
  const std::size_t hdr = wire::tcp_header_length(s.opts);
  std::vector<std::byte> p(wire::kIpv4HeaderMin + hdr + s.payload.size());
  wire::emit_tcp_header(p.data() + wire::kIpv4HeaderMin, f, s.opts);
  std::copy(s.payload.begin(), s.payload.end(), p.begin() + static_cast<std::ptrdiff_t>(wire::kIpv4HeaderMin + hdr));
  wire::fill_tcp_checksum(wire::MutableByteSpan(p.data() + wire::kIpv4HeaderMin, hdr + s.payload.size()),
                          kPeerAddr, kStackAddr);
  if (s.bad_checksum) {
    p[wire::kIpv4HeaderMin + 16] ^= std::byte{0x5a};
  }
  wire::Ipv4Fields ipf;
  ipf.total_length = static_cast<std::uint16_t>(p.size());
  ipf.id = 1;
  ipf.protocol = wire::kProtoTcp;
  ipf.src = kPeerAddr;
  ipf.dst = kStackAddr;
  wire::emit_ipv4_header(p.data(), ipf);
  return p;
}

void TcpHarness::inject(const Seg& seg) { inject_raw(build(seg)); }

void TcpHarness::inject_raw(std::vector<std::byte> ip_packet) {
  link.queue_inbound(std::move(ip_packet));
  stack->poll();
}

std::vector<Sent> TcpHarness::sent() {
  std::vector<Sent> out;
  for (const auto& p : link.take_outbound()) {
    const auto ip = wire::Ipv4View::parse(p);
    if (!ip || ip->protocol() != wire::kProtoTcp) {
      continue;
    }
    wire::TcpError terr;
    const auto t = wire::TcpView::parse(ip->payload(), &terr);
    EXPECT_TRUE(t.ok()) << "stack sent a malformed TCP segment";
    if (!t.ok()) {
      continue;
    }
    EXPECT_TRUE(t.verify_checksum(ip->src(), ip->dst())) << "stack sent a bad TCP checksum";
    Sent s;
    s.flags = t.flags();
    s.seq = t.seq().raw();
    s.ack = t.ack().raw();
    s.window = t.window();
    s.src_port = t.src_port();
    s.dst_port = t.dst_port();
    EXPECT_EQ(wire::parse_tcp_options(t.options(), &s.opts), wire::TcpError::kNone);
    s.payload.assign(t.payload().begin(), t.payload().end());
    if (s.has(kSyn)) {
      iss = s.seq;
    }
    s.rseq = s.seq - iss;
    s.rack = s.ack - kPeerIsn;
    if (s.opts.has_timestamp) {
      last_stack_tsval = s.opts.ts_val;
    }
    out.push_back(std::move(s));
  }
  return out;
}

Sent TcpHarness::sent_one() {
  auto v = sent();
  EXPECT_EQ(v.size(), 1u) << "expected exactly one segment";
  if (v.empty()) {
    return Sent{};
  }
  return v.front();
}

void TcpHarness::expect_silence() {
  auto v = sent();
  for (const auto& s : v) {
    ADD_FAILURE() << "unexpected segment " << s.describe();
  }
}

void TcpHarness::advance(TimeNs dt) {
  clock.advance(dt);
  stack->poll();
}

TimeNs TcpHarness::advance_to_next_deadline(TimeNs max) {
  const TimeNs next = stack->next_deadline();
  const TimeNs now = clock.now();
  TimeNs step = next == kNever ? max : std::min(max, std::max<TimeNs>(0, next - now));
  advance(step);
  return step;
}

std::vector<TcpEvent> TcpHarness::events() {
  std::vector<TcpEvent> out;
  tcp().poll_events([&](const TcpEvent& e) { out.push_back(e); });
  return out;
}

std::string TcpHarness::read_all(ConnId conn) {
  std::string out;
  std::byte buf[4096];
  for (;;) {
    const std::size_t n = buffers.read(conn, wire::MutableByteSpan(buf, sizeof buf));
    if (n == 0) {
      break;
    }
    out.append(reinterpret_cast<const char*>(buf), n);
  }
  tcp().consumed(conn);
  return out;
}

wire::TcpOptions TcpHarness::linux_syn_options() {
  wire::TcpOptions o;
  o.has_mss = true;
  o.mss = 1460;
  o.sack_permitted = true;
  o.has_timestamp = true;
  o.ts_val = 5000;
  o.ts_ecr = 0;
  o.has_window_scale = true;
  o.window_scale = 7;
  return o;
}

Seg TcpHarness::with_ts(Seg s) {
  if (peer_uses_ts) {
    s.opts.has_timestamp = true;
    s.opts.ts_val = ++peer_ts;
    s.opts.ts_ecr = last_stack_tsval;
  }
  return s;
}

ConnId TcpHarness::establish_passive(const wire::TcpOptions& peer_opts, std::uint16_t peer_window) {
  EXPECT_EQ(tcp().listen(kServerPort, listen_options), 0);
  peer_uses_ts = peer_opts.has_timestamp;
  peer_ts = peer_opts.ts_val;
  Seg syn;
  syn.flags = kSyn;
  syn.seq = 0;
  syn.window = peer_window;
  syn.opts = peer_opts;
  inject(syn);
  const Sent synack = sent_one();
  EXPECT_EQ(synack.flags, kSyn | kAck);
  EXPECT_EQ(synack.rack, 1u);
  Seg ack = with_ts(Seg{});
  ack.window = peer_window;
  inject(ack);
  expect_silence();
  const std::int64_t c = tcp().accept(kServerPort);
  EXPECT_GE(c, 0);
  events();  // drop the acceptable event
  return static_cast<ConnId>(c);
}

ConnId TcpHarness::establish_active(const wire::TcpOptions& peer_opts, std::uint16_t peer_window) {
  peer_uses_ts = peer_opts.has_timestamp;
  peer_ts = peer_opts.ts_val;
  stack_port = 50000;
  peer_port = 80;
  const std::int64_t c = tcp().connect(kPeerAddr, peer_port, stack_port);
  EXPECT_GE(c, 0);
  const Sent syn = sent_one();
  EXPECT_EQ(syn.flags, kSyn);
  Seg synack;
  synack.flags = kSyn | kAck;
  synack.seq = 0;
  synack.ack = 1;
  synack.window = peer_window;
  synack.opts = peer_opts;
  if (peer_opts.has_timestamp) {
    synack.opts.ts_ecr = syn.opts.ts_val;
  }
  inject(synack);
  const Sent ack = sent_one();
  EXPECT_SEGMENT(ack, Match().flags(kAck).rseq(1).rack(1));
  events();
  return static_cast<ConnId>(c);
}

}  // namespace xtcp::test
