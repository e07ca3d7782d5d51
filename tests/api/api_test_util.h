// Test bench for the XTCP API in virtual time: a Runtime on a scripted link (the test plays
// any number of clients, each with its own address and port) and a ManualClock. Segments
// are written with sequence numbers relative to each side's ISN (as in tcp_harness.h), and
// what the stack sent comes back decoded and matched to its client. A failing test keeps the
// pcap of its traffic in test-pcaps/.
#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "api/src/runtime.h"
#include "stack/netif/pcap_tap.h"
#include "stack/wire/checksum.h"
#include "stack/wire/ipv4.h"
#include "tests/support/tcp_harness.h"

namespace xtcp::test::api_bench {

using namespace wire::tcp_flags;  // NOLINT

// One client connection the test plays. seq numbers of its Seg are relative to `isn`, acks
// relative to the server's ISS learned from the SYN-ACK.
struct Client {
  std::uint32_t addr = 0xC6120001;  // 198.18.0.1
  std::uint16_t port = 40000;
  std::uint16_t server_port = 7000;
  std::uint32_t isn = 1'000'000;
  std::uint32_t iss = 0;       // the server's ISN (from its SYN-ACK)
  bool have_iss = false;
};

struct Out {
  std::uint32_t dst = 0;
  std::uint16_t dst_port = 0;
  Sent seg;  // rseq/rack relative to the matching client (absolute if none matched)
};

// An IPv4 packet from client c to the stack.
inline std::vector<std::byte> build_segment(const Client& c, const Seg& s) {
  const std::uint32_t seq = s.absolute_seq ? s.seq : c.isn + s.seq;
  const std::uint32_t ack = s.absolute_ack ? s.ack : c.iss + s.ack;
  wire::TcpFields f;
  f.src_port = c.port;
  f.dst_port = c.server_port;
  f.seq = wire::SeqNum(seq);
  f.ack = wire::SeqNum((s.flags & kAck) != 0 ? ack : 0);
  f.flags = s.flags;
  f.window = s.window;
  const std::size_t hdr = wire::tcp_header_length(s.opts);
  std::vector<std::byte> p(wire::kIpv4HeaderMin + hdr + s.payload.size());
  wire::emit_tcp_header(p.data() + wire::kIpv4HeaderMin, f, s.opts);
  std::copy(s.payload.begin(), s.payload.end(),
            p.begin() + static_cast<std::ptrdiff_t>(wire::kIpv4HeaderMin + hdr));
  wire::fill_tcp_checksum(wire::MutableByteSpan(p.data() + wire::kIpv4HeaderMin, hdr + s.payload.size()),
                          c.addr, kStackAddr);
  wire::Ipv4Fields ipf;
  ipf.total_length = static_cast<std::uint16_t>(p.size());
  ipf.id = 1;
  ipf.protocol = wire::kProtoTcp;
  ipf.src = c.addr;
  ipf.dst = kStackAddr;
  wire::emit_ipv4_header(p.data(), ipf);
  return p;
}

inline api::RuntimeConfig default_config() {
  api::RuntimeConfig c;
  c.stack.ip.local_addr = kStackAddr;  // 198.18.0.2
  c.tx_cache_size = 1u << 20;
  return c;
}

class Bench {
 public:
  // capture: mirror the traffic into a pcap (kept only when the test fails).
  explicit Bench(const api::RuntimeConfig& config = default_config(), std::size_t pool_size = 1u << 20,
                 bool capture = true) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    ::mkdir("test-pcaps", 0755);
    std::string name = info != nullptr ? std::string(info->test_suite_name()) + "." + info->name() : "api";
    for (char& ch : name) {
      if (ch == '/') {
        ch = '_';
      }
    }
    pcap_path_ = "test-pcaps/" + name + ".pcap";
    std::string err;
    if (capture) {
      tap_ = PcapTap::open(link, clock, pcap_path_, &err);
    } else {
      pcap_path_.clear();
    }
    Link& l = tap_ ? static_cast<Link&>(*tap_) : static_cast<Link&>(link);
    owned_ = std::make_unique<api::Runtime>(config, l, clock);
    rt = owned_.get();
    pool = rt->pool_create(pool_size);
    EXPECT_GT(pool, 0);
  }
  ~Bench() {
    if (!owned_ && api::process_runtime() == rt) {
      api::set_process_runtime(nullptr);
    }
    owned_.reset();
    tap_.reset();
    if (pcap_path_.empty()) {
      return;
    }
    if (!::testing::Test::HasFailure()) {
      std::remove(pcap_path_.c_str());
    } else {
      std::fprintf(stderr, "traffic of the failed test: %s\n", pcap_path_.c_str());
    }
  }

  ManualClock clock{seconds(100)};
  ScriptLink link;
  api::Runtime* rt = nullptr;  // owned by the bench, or by the process after install()
  int pool = 0;

  // Makes this runtime the one the C functions use (xtcp_finalize then destroys it).
  void install() { api::set_process_runtime(std::move(owned_)); }

  std::vector<std::byte> build(const Client& c, const Seg& s) const { return build_segment(c, s); }

  // Queues a segment from client c (nothing is processed until drive()).
  void queue(const Client& c, const Seg& s) { link.queue_inbound(build(c, s)); }
  // Queues it and drives the stack once.
  void inject(const Client& c, const Seg& s) {
    queue(c, s);
    rt->drive();
  }
  void advance(TimeNs dt) {
    clock.advance(dt);
    rt->drive();
  }
  TimeNs advance_to_next_deadline(TimeNs max = seconds(3600)) {
    const TimeNs next = rt->next_deadline();
    const TimeNs step = next == kNever ? max : std::min(max, std::max<TimeNs>(0, next - clock.now()));
    advance(step);
    return step;
  }

  // Everything the stack sent since the last call. Clients listed get their server ISS
  // learned from SYN-ACKs and relative numbers filled in.
  std::vector<Out> sent(std::vector<Client*> clients = {}) {
    std::vector<Out> out;
    for (const auto& p : link.take_outbound()) {
      const auto ip = wire::Ipv4View::parse(p);
      if (!ip || ip->protocol() != wire::kProtoTcp) {
        continue;
      }
      wire::TcpError terr;
      const auto t = wire::TcpView::parse(ip->payload(), &terr);
      EXPECT_TRUE(t.ok());
      if (!t.ok()) {
        continue;
      }
      EXPECT_TRUE(t.verify_checksum(ip->src(), ip->dst()));
      Out o;
      o.dst = ip->dst();
      o.dst_port = t.dst_port();
      Sent& s = o.seg;
      s.flags = t.flags();
      s.seq = t.seq().raw();
      s.ack = t.ack().raw();
      s.window = t.window();
      s.src_port = t.src_port();
      s.dst_port = t.dst_port();
      EXPECT_EQ(wire::parse_tcp_options(t.options(), &s.opts), wire::TcpError::kNone);
      s.payload.assign(t.payload().begin(), t.payload().end());
      s.rseq = s.seq;
      s.rack = s.ack;
      for (Client* c : clients) {
        if (c->addr == o.dst && c->port == o.dst_port) {
          if ((s.flags & kSyn) != 0) {
            c->iss = s.seq;
            c->have_iss = true;
          }
          s.rseq = s.seq - c->iss;
          s.rack = s.ack - c->isn;
        }
      }
      out.push_back(std::move(o));
    }
    return out;
  }
  // Exactly one segment, to client c.
  Sent sent_one(Client& c) {
    auto v = sent({&c});
    EXPECT_EQ(v.size(), 1u) << "expected exactly one segment";
    if (v.empty()) {
      return Sent{};
    }
    EXPECT_EQ(v[0].dst, c.addr);
    EXPECT_EQ(v[0].dst_port, c.port);
    return v[0].seg;
  }
  void expect_silence() {
    for (const auto& o : sent()) {
      ADD_FAILURE() << "unexpected segment " << o.seg.describe();
    }
  }

  // The client's handshake (MSS 1460 and SACK, no timestamps or window scaling, so the
  // asserted windows are plain byte counts). The connection then waits for xtcp_accept.
  void handshake(Client& c, std::uint16_t window = 65535) {
    Seg syn;
    syn.flags = kSyn;
    syn.seq = 0;
    syn.window = window;
    syn.opts.has_mss = true;
    syn.opts.mss = 1460;
    syn.opts.sack_permitted = true;
    inject(c, syn);
    const Sent synack = sent_one(c);
    EXPECT_EQ(synack.flags, kSyn | kAck) << synack.describe();
    EXPECT_EQ(synack.rack, 1u);
    Seg ack;
    ack.window = window;
    inject(c, ack);
    expect_silence();
  }
  // Handshake and xtcp_accept: the connection descriptor.
  int open(Client& c, int gd, std::uint16_t window = 65535) {
    handshake(c, window);
    const int cd = rt->accept(0, gd);
    EXPECT_GT(cd, 0);
    return cd;
  }

  struct Recv {
    int rc = 0;
    int cd = 0;
    std::string data;
  };
  Recv recv(int gd, std::size_t len = 4096) {
    Recv r;
    std::string buf(len, '\0');
    r.rc = rt->recv(0, gd, &r.cd, buf.data(), len);
    if (r.rc > 0) {
      r.data = buf.substr(0, static_cast<std::size_t>(r.rc));
    }
    return r;
  }
  int send(int gd, int cd, std::size_t ackd, std::string_view answer) {
    return rt->send(0, gd, cd, ackd, answer.data(), answer.size());
  }

 private:
  std::string pcap_path_;
  std::unique_ptr<PcapTap> tap_;
  std::unique_ptr<api::Runtime> owned_;
};

inline Seg data(std::uint32_t rel_seq, std::string_view payload, std::uint32_t rel_ack = 1,
                std::uint16_t window = 65535) {
  Seg s;
  s.flags = kAck | kPsh;
  s.seq = rel_seq;
  s.ack = rel_ack;
  s.window = window;
  s.payload = bytes_of(payload);
  return s;
}

inline Seg ack(std::uint32_t rel_ack, std::uint32_t rel_seq = 1, std::uint16_t window = 65535) {
  Seg s;
  s.flags = kAck;
  s.seq = rel_seq;
  s.ack = rel_ack;
  s.window = window;
  return s;
}

inline std::string str(const std::vector<std::byte>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size());
}

// A link over a SOCK_SEQPACKET socket pair: a real descriptor to block on, and the test
// writes and reads IPv4 packets at the other end.
class SocketLink final : public Link {
 public:
  SocketLink() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, fds_), 0); }
  ~SocketLink() override {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  int send(std::span<const std::byte> p) override {
    return ::send(fds_[0], p.data(), p.size(), 0) < 0 ? -errno : 0;
  }
  int receive_batch(int max_packets, PacketHandler on_packet) override {
    int n = 0;
    std::byte buf[2048];
    while (n < max_packets) {
      const ssize_t r = ::recv(fds_[0], buf, sizeof buf, 0);
      if (r <= 0) {
        break;
      }
      on_packet(std::span<const std::byte>(buf, static_cast<std::size_t>(r)));
      ++n;
    }
    return n;
  }
  int poll_fd() const override { return fds_[0]; }
  std::size_t mtu() const override { return 1500; }
  // The test's end.
  void inject(const std::vector<std::byte>& p) { ASSERT_GT(::send(fds_[1], p.data(), p.size(), 0), 0); }
  std::vector<std::vector<std::byte>> take() {
    std::vector<std::vector<std::byte>> out;
    std::byte buf[2048];
    for (;;) {
      const ssize_t r = ::recv(fds_[1], buf, sizeof buf, MSG_DONTWAIT);
      if (r <= 0) {
        break;
      }
      out.emplace_back(buf, buf + r);
    }
    return out;
  }

 private:
  int fds_[2] = {-1, -1};
};

inline std::uint8_t tcp_flags_of(const std::vector<std::byte>& p, std::uint32_t* seq = nullptr) {
  const auto ip = wire::Ipv4View::parse(p);
  if (!ip) {
    return 0;
  }
  wire::TcpError e;
  const auto t = wire::TcpView::parse(ip->payload(), &e);
  if (!t.ok()) {
    return 0;
  }
  if (seq != nullptr) {
    *seq = t.seq().raw();
  }
  return t.flags();
}

}  // namespace xtcp::test::api_bench
