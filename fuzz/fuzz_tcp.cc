// libFuzzer target for the TCP engine while it holds LIVE connections. Each input gets a
// fresh Stack on a scripted in-memory link in virtual time; real handshakes open connections
// in many states, then the input is played as operations against them and invariants are
// checked after every step (abort() on a violation, so libFuzzer keeps the input).
//
//   input --ops--> aimed segments / raw packets / ICMP errors / time / application calls
//   Stack --Link::send--> every packet checked (well formed, MTU, MSS, data = what was queued)
//   Ipv4Layer --tcp_input--> Tap (records what the peer delivered) --> TcpLayer
//
// Input: byte 0 picks a configuration variant (see make_config), byte 1 the listener's
// options (see listen_options), then operations until the bytes run out or kMaxOps. Each starts
// with one selector byte (op % 8):
//   0-2 aimed segment: flow (index, or >= 0xf0 for a new 4-tuple), flags, ctl, seq/ack
//       offsets relative to the connection's real RCV.NXT and SND.UNA/SND.NXT, window,
//       payload length, optional TS/SACK/SYN/raw options; the checksum is always right, so
//       it reaches the state machine
//   3   raw IPv4 packet (arbitrary bytes; ctrl bits can fix addresses, lengths, checksums)
//   4   advance virtual time (bounded), or jump to / just before the next engine deadline
//   5-6 application call: send, read (+consumed), close, abort, shutdown, accept, connect,
//       nodelay, keepalive, listen/unlisten
//   7   ICMP error quoting a segment of a flow (fragmentation needed, unreachable, ...)
// At the end every handle is closed, the listener removed, and virtual time run until the
// engine has no deadline left: then no connection and no TIME-WAIT entry may remain.
//
// Randomness (ISNs, timestamp offsets, SYN cookie and hash keys) comes from getrandom(),
// which this file replaces with a fixed stream while a Stack is built: an input replays
// exactly.
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <span>
#include <vector>

#include "stack/buffer/stream_buffers.h"
#include "stack/core/clock.h"
#include "stack/netif/link.h"
#include "stack/stack.h"
#include "stack/wire/checksum.h"
#include "stack/wire/icmp.h"
#include "stack/wire/ipv4.h"
#include "stack/wire/tcp.h"

namespace {

bool g_fixed_random = false;
std::uint64_t g_random_state = 0;

}  // namespace

// Deterministic while g_fixed_random is set (only while the harness builds a Stack); the
// real system call otherwise, so libFuzzer and the sanitizers are unaffected.
extern "C" ssize_t getrandom(void* buf, size_t len, unsigned int flags) {
  if (!g_fixed_random) {
    return static_cast<ssize_t>(syscall(SYS_getrandom, buf, len, flags));
  }
  auto* out = static_cast<unsigned char*>(buf);
  for (size_t i = 0; i < len; ++i) {
    g_random_state = g_random_state * 6364136223846793005ULL + 1442695040888963407ULL;
    out[i] = static_cast<unsigned char>(g_random_state >> 56);
  }
  return static_cast<ssize_t>(len);
}

namespace {

using namespace xtcp;
using namespace xtcp::wire::tcp_flags;  // NOLINT
using wire::SeqNum;

constexpr std::uint32_t kLocal = wire::ipv4_addr(198, 18, 0, 2);
constexpr std::uint32_t kPeer = wire::ipv4_addr(198, 18, 0, 1);
constexpr std::uint32_t kRouter = wire::ipv4_addr(198, 18, 0, 254);
constexpr std::uint16_t kListenPort = 7;
constexpr std::size_t kMaxOps = 256;
constexpr std::size_t kMaxFlows = 48;
constexpr std::uint32_t kMaxConns = 48;
constexpr std::size_t kTcpMemoryBound = 4u << 20;
constexpr int kDrainSteps = 5000;

// FUZZ_TCP_TRACE=1 prints every operation and every segment sent (to replay a finding).
const bool g_trace = std::getenv("FUZZ_TCP_TRACE") != nullptr;

// The harness's own checks carry no coverage instrumentation: their byte-by-byte loops
// would cost most of the run time and their branches would only add noise to the
// features libFuzzer steers by.
#define XTCP_HARNESS_ONLY __attribute__((no_sanitize("coverage")))

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_tcp invariant violated: %s\n", what);
  std::abort();
}
#define CHECK(cond) \
  do {              \
    if (!(cond)) {  \
      fail(#cond);  \
    }               \
  } while (0)

// What the peer's byte at sequence number s is, and the application's byte at stream
// offset k: no short period, so a segment built from the wrong offset is caught.
std::uint8_t peer_byte(std::uint32_t s) {
  return static_cast<std::uint8_t>((s * 2654435761u) >> 24);
}
std::uint8_t app_byte(std::uint64_t k) {
  const auto x = static_cast<std::uint32_t>(k) + 0x5bd1e995u;
  return static_cast<std::uint8_t>((x * 0x9E3779B1u) >> 23);
}

XTCP_HARNESS_ONLY void fill_peer_bytes(std::byte* out, SeqNum first, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = static_cast<std::byte>(peer_byte((first + static_cast<std::uint32_t>(i)).raw()));
  }
}

XTCP_HARNESS_ONLY void fill_app_bytes(std::uint8_t* out, std::uint64_t first, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = app_byte(first + i);
  }
}

class Reader {
 public:
  Reader(const std::uint8_t* data, std::size_t size) : p_(data), n_(size) {}
  bool empty() const { return n_ == 0; }
  std::size_t left() const { return n_; }
  std::uint8_t u8() {
    if (n_ == 0) {
      return 0;
    }
    --n_;
    return *p_++;
  }
  std::uint16_t u16() {
    const std::uint8_t hi = u8();
    return static_cast<std::uint16_t>((hi << 8) | u8());
  }
  std::int16_t i16() { return static_cast<std::int16_t>(u16()); }
  std::int8_t i8() { return static_cast<std::int8_t>(u8()); }
  std::span<const std::uint8_t> bytes(std::size_t n) {
    n = std::min(n, n_);
    std::span<const std::uint8_t> s(p_, n);
    p_ += n;
    n_ -= n;
    return s;
  }

 private:
  const std::uint8_t* p_;
  std::size_t n_;
};

// One 4-tuple the peer (kPeer) uses, with what the harness learned of both directions.
struct Flow {
  std::uint16_t local_port = 0;
  std::uint16_t peer_port = 0;
  std::uint32_t peer_ts = 5000;   // last TSval the peer sent
  std::uint32_t stack_tsval = 0;  // last TSval the stack sent
  SeqNum stack_seq_hi;            // highest sequence end the stack sent (RST excluded)
  SeqNum stack_ack;               // last ACK the stack sent; starts at the peer's ISN
  SeqNum peer_hi;                 // highest sequence end of aimed segments delivered
  bool peer_hi_known = false;
  bool raw_seen = false;   // a raw (non-aimed) segment reached the TCP layer
  bool content_ok = true;  // every payload delivered matched peer_byte(seq)
  bool syn_seen = false;
  std::uint16_t max_peer_mss = 0;  // largest MSS option of SYNs delivered (536 if none)
};

// A connection the application opened or accepted.
struct App {
  ConnId id = kNoConn;
  FlowKey key{};
  SeqNum data_base;        // sequence number of stream byte 0
  std::uint64_t sent = 0;  // bytes the TxStore took
  bool held = true;        // handle not yet released by close()/abort()
  bool peer_fin = false;
  bool closed_event = false;
  bool have_last = false;
  SeqNum last_una, last_rcv;
};

class ScriptedLink final : public Link {
 public:
  explicit ScriptedLink(std::size_t mtu) : mtu_(mtu) {}
  int send(std::span<const std::byte> packet) override {
    out.emplace_back(packet.begin(), packet.end());
    return 0;
  }
  int receive_batch(int max_packets, PacketHandler on_packet) override {
    int n = 0;
    while (n < max_packets && !in.empty()) {
      std::vector<std::byte> p = std::move(in.front());
      in.pop_front();
      on_packet(p);  // an exact-size copy, so ASan sees any read past the packet
      ++n;
    }
    return n;
  }
  std::size_t mtu() const override { return mtu_; }

  std::deque<std::vector<std::byte>> in;
  std::vector<std::vector<std::byte>> out;

 private:
  std::size_t mtu_;
};

struct Variant {
  TcpConfig tcp;
  std::size_t rx = 0;
  std::size_t tx = 0;
  std::size_t mtu = 0;
};

Variant make_config(std::uint8_t v) {
  Variant c;
  c.rx = (v & 0x01) ? 128 * 1024 : 6 * 1024;  // 128 KiB: our window scale is 1
  c.tx = (v & 0x02) ? 64 * 1024 : 8 * 1024;
  c.mtu = (v & 0x40) ? 576 : 1500;
  TcpConfig& t = c.tcp;
  t.nagle = (v & 0x04) == 0;
  t.delayed_ack = (v & 0x08) == 0;
  if (v & 0x10) {
    t.keepalive = true;
    t.keepalive_idle = seconds(20);
    t.keepalive_interval = seconds(3);
    t.keepalive_probes = 3;
  }
  t.syn_cookies = (v & 0x20) == 0;
  t.syn_backlog = (v & 0x80) ? 2 : 8;
  t.accept_backlog = (v & 0x80) ? 3 : 8;
  // Small limits so the fuzzer reaches them, and short timers so a drain ends soon.
  t.max_retransmits = 6;
  t.max_syn_retransmits = 3;
  t.max_synack_retransmits = 3;
  t.max_rto = seconds(20);
  t.time_wait = seconds(30);
  t.fin_wait2_timeout = seconds(20);
  t.ooo_max_bytes_per_conn = 32 * 1024;
  t.ooo_max_segments_per_conn = 16;
  t.ooo_max_bytes_total = 96 * 1024;
  t.max_connections = kMaxConns;
  t.challenge_acks_per_second = 4;
  return c;
}

// Listener options from 3 bits: bit 0 application-controlled ACKs (XTCP), bits 1-2 their
// deadline (none, 40 ms, 500 ms, 5 s).
ListenOptions listen_options(std::uint8_t b) {
  static constexpr TimeNs kDeadline[4] = {0, ms(40), ms(500), seconds(5)};
  ListenOptions o;
  o.app_ack = (b & 1) != 0;
  o.ack_deadline = kDeadline[(b >> 1) & 3];
  return o;
}

// Delivers TCP segments to the TcpLayer after noting what the peer sent.
class World;
class Tap final : public IpUpperLayer {
 public:
  explicit Tap(World& w) : w_(w) {}
  void tcp_input(std::uint32_t src, std::uint32_t dst, std::uint8_t tos,
                 wire::ByteSpan segment) override;
  void icmp_error_input(const IcmpErrorInfo& info) override;

 private:
  World& w_;
};

struct SegSpec {
  std::uint8_t flags = kAck;
  SeqNum seq;
  SeqNum ack;
  std::uint16_t window = 65535;
  wire::TcpOptions opts;
  std::span<const std::uint8_t> raw_opts;
  std::size_t payload = 0;
  bool twice = false;
};

class World {
 public:
  explicit World(std::uint8_t variant)
      : cfg_(make_config(variant)), link_(cfg_.mtu), buffers_(cfg_.rx, cfg_.tx), tap_(*this) {
    StackConfig sc;
    sc.ip.local_addr = kLocal;
    sc.ip.icmp_burst = 8;
    sc.tcp = cfg_.tcp;
    g_random_state = 0x243F6A8885A308D3ULL;
    g_fixed_random = true;
    stack_ = std::make_unique<Stack>(sc, link_, clock_, buffers_.rx(), buffers_.tx());
    g_fixed_random = false;
    stack_->ip().set_upper(&tap_);
    send_buf_.resize(65536);
    flows_.reserve(kMaxFlows);
  }
  ~World() { stack_->ip().set_upper(&stack_->tcp()); }

  void setup(std::uint8_t listen_bits);
  void run(Reader& in);
  void finish();

  void on_delivered(std::uint32_t src, std::uint32_t dst, wire::ByteSpan seg);
  TcpLayer& tcp() { return stack_->tcp(); }

 private:
  Flow& add_flow(std::uint16_t local_port, std::uint16_t peer_port, std::uint32_t peer_isn);
  Flow* find_flow(std::uint32_t remote, std::uint16_t local_port, std::uint16_t peer_port,
                  bool create);
  bool live_conn(const Flow& f, ConnInfo* out) const;
  App* held_app(ConnId id);
  App* last_app(const FlowKey& key);
  App* add_app(ConnId id, SeqNum data_base);

  void step();
  void check_out(const std::vector<std::byte>& pkt);
  void check_state();
  void inject(std::vector<std::byte> pkt, bool aimed);
  void peer(Flow& f, const SegSpec& s);

  void op_aimed(Reader& in);
  void op_raw(Reader& in);
  void op_time(Reader& in);
  void op_app(Reader& in);
  void op_icmp(Reader& in);
  Flow& pick_flow(Reader& in);

  App* passive(std::uint16_t peer_port, std::uint32_t isn, const wire::TcpOptions& o,
               std::uint16_t ack_window, bool do_accept);
  App* active(std::uint16_t local_port, std::uint16_t peer_port, std::uint32_t isn,
              const wire::TcpOptions& o, std::uint16_t window);
  void app_send(App& a, std::size_t n);
  void app_read(App& a, std::size_t want, bool consume);
  std::int64_t do_accept();
  std::int64_t do_connect(std::uint16_t peer_port, std::uint16_t local_port);

  Variant cfg_;
  ManualClock clock_{seconds(1000)};
  ScriptedLink link_;
  StreamBuffers buffers_;
  Tap tap_;
  std::unique_ptr<Stack> stack_;
  std::vector<Flow> flows_;  // capacity kMaxFlows reserved: references stay valid
  std::deque<App> apps_;     // a deque, so App pointers survive push_back
  bool aimed_ = false;
  bool listening_ = false;
  std::vector<std::uint8_t> send_buf_;
};

void Tap::tcp_input(std::uint32_t src, std::uint32_t dst, std::uint8_t tos, wire::ByteSpan seg) {
  w_.on_delivered(src, dst, seg);
  w_.tcp().tcp_input(src, dst, tos, seg);
}
void Tap::icmp_error_input(const IcmpErrorInfo& info) {
  CHECK(info.quoted_src == kLocal && info.quoted_protocol == wire::kProtoTcp);
  w_.tcp().icmp_error_input(info);
}

// ---- bookkeeping -------------------------------------------------------------------------

Flow& World::add_flow(std::uint16_t local_port, std::uint16_t peer_port, std::uint32_t peer_isn) {
  Flow* f = find_flow(kPeer, local_port, peer_port, true);
  f->stack_ack = SeqNum(peer_isn);
  return *f;
}

Flow* World::find_flow(std::uint32_t remote, std::uint16_t local_port, std::uint16_t peer_port,
                       bool create) {
  if (remote != kPeer) {
    return nullptr;
  }
  for (Flow& f : flows_) {
    if (f.local_port == local_port && f.peer_port == peer_port) {
      return &f;
    }
  }
  if (!create || flows_.size() >= kMaxFlows) {
    return nullptr;
  }
  Flow f;
  f.local_port = local_port;
  f.peer_port = peer_port;
  f.stack_ack = SeqNum(0x40000000u + (static_cast<std::uint32_t>(peer_port) << 12) + local_port);
  flows_.push_back(f);
  return &flows_.back();
}

bool World::live_conn(const Flow& f, ConnInfo* out) const {
  const FlowKey key{kLocal, kPeer, f.local_port, f.peer_port};
  for (ConnId id = 0; id < kMaxConns; ++id) {
    ConnInfo ci{};
    if (stack_->tcp().info(id, &ci) == 0 && ci.key == key && ci.state != TcpState::kClosed) {
      *out = ci;
      return true;
    }
  }
  return false;
}

App* World::held_app(ConnId id) {
  for (App& a : apps_) {
    if (a.held && a.id == id) {
      return &a;
    }
  }
  return nullptr;
}

App* World::last_app(const FlowKey& key) {
  for (auto it = apps_.rbegin(); it != apps_.rend(); ++it) {
    if (it->key == key) {
      return &*it;
    }
  }
  return nullptr;
}

App* World::add_app(ConnId id, SeqNum data_base) {
  CHECK(held_app(id) == nullptr);  // the engine handed out a handle the app still holds
  ConnInfo ci{};
  CHECK(tcp().info(id, &ci) == 0);
  App a;
  a.id = id;
  a.key = ci.key;
  a.data_base = data_base;
  apps_.push_back(a);
  return &apps_.back();
}

// ---- stepping and invariants -----------------------------------------------------------

void World::inject(std::vector<std::byte> pkt, bool aimed) {
  link_.in.push_back(std::move(pkt));
  aimed_ = aimed;
  step();
  aimed_ = false;
}

void World::step() {
  stack_->poll();
  aimed_ = false;
  tcp().poll_events([this](const TcpEvent& e) {
    if (e.type == TcpEventType::kAcceptable) {
      CHECK(e.port == kListenPort);
      return;
    }
    // Every other event is about a handle the application holds (events are drained after
    // each step, so none can predate the release of its handle).
    App* a = held_app(e.conn);
    CHECK(a != nullptr);
    if (e.type == TcpEventType::kPeerClosed) {
      a->peer_fin = true;
    } else if (e.type == TcpEventType::kClosed) {
      CHECK(!a->closed_event);  // one kClosed per connection
      a->closed_event = true;
      ConnInfo ci{};
      CHECK(tcp().info(e.conn, &ci) == 0 && ci.state == TcpState::kClosed);
    }
  });
  std::vector<std::vector<std::byte>> out;
  out.swap(link_.out);
  for (const auto& p : out) {
    check_out(p);
  }
  // Whatever was due has run: a deadline left in the past would make a run loop spin.
  const TimeNs next = stack_->next_deadline();
  CHECK(next == kNever || next > clock_.now());
  check_state();
}

XTCP_HARNESS_ONLY void World::check_out(const std::vector<std::byte>& pkt) {
  CHECK(pkt.size() >= wire::kIpv4HeaderMin && pkt.size() <= cfg_.mtu);
  const auto ip = wire::Ipv4View::parse(pkt);
  CHECK(ip.has_value());
  CHECK(ip->packet().size() == pkt.size());
  CHECK(ip->src() == kLocal && ip->dst() != kLocal && !ip->is_fragment());
  if (ip->protocol() == wire::kProtoIcmp) {
    const auto icmp = wire::IcmpView::parse(ip->payload());
    CHECK(icmp.has_value());
    CHECK(icmp->is_error() ? pkt.size() <= wire::kIcmpErrorMaxLen
                           : icmp->type() == wire::kIcmpEchoReply);
    return;
  }
  CHECK(ip->protocol() == wire::kProtoTcp);
  wire::TcpError err = wire::TcpError::kNone;
  const wire::TcpView t = wire::TcpView::parse(ip->payload(), &err);
  CHECK(t.ok());
  CHECK(t.verify_checksum(ip->src(), ip->dst()));
  wire::TcpOptions o;
  CHECK(wire::parse_tcp_options(t.options(), &o) == wire::TcpError::kNone);
  CHECK(t.src_port() != 0 && t.dst_port() != 0);
  const std::uint8_t fl = t.flags();
  CHECK(!((fl & kSyn) && (fl & (kFin | kRst))));
  CHECK((fl & (kSyn | kAck | kRst)) != 0);
  const std::size_t len = t.payload().size();
  if (g_trace) {
    std::fprintf(stderr, "  out %u->%u flags=%02x seq=%u ack=%u win=%u len=%zu\n", t.src_port(),
                 t.dst_port(), fl, t.seq().raw(), t.ack().raw(), t.window(), len);
  }
  if (fl & kRst) {
    CHECK(len == 0);
    return;  // replies to anything: sequence numbers come from the segment answered
  }
  const FlowKey key{kLocal, ip->dst(), t.src_port(), t.dst_port()};
  Flow* f = find_flow(ip->dst(), t.src_port(), t.dst_port(), true);
  if (len > 0 || (fl & kFin)) {
    // Data and FIN come only from connections the application opened or accepted, and are
    // exactly the bytes it queued, at the right place in the stream.
    App* a = last_app(key);
    CHECK(a != nullptr);
    const auto off = static_cast<std::uint32_t>(t.seq() - a->data_base);
    CHECK(off + static_cast<std::uint64_t>(len) <= a->sent);
    for (std::size_t i = 0; i < len; ++i) {
      CHECK(static_cast<std::uint8_t>(t.payload()[i]) == app_byte(off + i));
    }
    if (fl & kFin) {
      CHECK(off + len == a->sent);  // FIN right after the last queued byte
    }
    // RFC 9293 3.7.1 / RFC 6691: no more payload than the peer's MSS (options not counted);
    // the engine raises tiny MSS values to 64, like Linux.
    if (len > 0) {
      const std::uint16_t mss = f != nullptr && f->syn_seen ? f->max_peer_mss : 536;
      CHECK(len <= std::max<std::uint16_t>(mss, 64));
    }
  }
  if (f == nullptr) {
    return;
  }
  if ((fl & kAck) && !(fl & kSyn) && f->peer_hi_known && !f->raw_seen) {
    CHECK(t.ack() <= f->peer_hi);  // never acknowledges what the peer did not send
  }
  if (fl & kAck) {
    f->stack_ack = t.ack();
  }
  const SeqNum end = t.seq() + t.seq_length();
  if ((fl & kSyn) || end > f->stack_seq_hi) {
    f->stack_seq_hi = end;
  }
  if (o.has_timestamp) {
    f->stack_tsval = o.ts_val;
  }
}

XTCP_HARNESS_ONLY void World::check_state() {
  TcpLayer& l = tcp();
  CHECK(l.memory_bytes() <= kTcpMemoryBound);
  CHECK(buffers_.memory_bytes() <= static_cast<std::size_t>(kMaxConns) * (cfg_.rx + cfg_.tx));
  const TcpStats& s = l.stats();
  CHECK(l.connection_count() <= kMaxConns);
  CHECK(l.connection_count() <= s.active_opens + s.passive_opens);
  const auto by_state = l.connections_by_state();
  std::uint64_t sum = 0;
  for (int i = 0; i < kTcpStateCount; ++i) {
    if (i != static_cast<int>(TcpState::kListen) && i != static_cast<int>(TcpState::kTimeWait)) {
      sum += by_state[i];
    }
  }
  CHECK(sum == l.connection_count());
  CHECK(by_state[static_cast<int>(TcpState::kListen)] == (listening_ ? 1u : 0u));
  CHECK(by_state[static_cast<int>(TcpState::kTimeWait)] <= s.time_wait_entered);

  std::size_t live = 0;
  for (ConnId id = 0; id < kMaxConns + 8; ++id) {
    ConnInfo ci{};
    if (l.info(id, &ci) != 0) {
      continue;
    }
    ++live;
    CHECK(static_cast<int>(ci.state) < kTcpStateCount && ci.state != TcpState::kListen &&
          ci.state != TcpState::kTimeWait);
    if (ci.state != TcpState::kClosed) {
      CHECK(ci.snd_una <= ci.snd_nxt);
      CHECK(ci.key.local_addr == kLocal);
    }
  }
  CHECK(live == l.connection_count());

  for (App& a : apps_) {
    if (!a.held) {
      continue;
    }
    ConnInfo ci{};
    CHECK(l.info(a.id, &ci) == 0);  // a held handle keeps its slot
    CHECK(ci.key == a.key);
    if (ci.state == TcpState::kClosed || ci.state == TcpState::kSynSent) {
      continue;
    }
    // Sequence variables only move forward, and never past what was queued (+ FIN).
    const SeqNum limit = a.data_base + static_cast<std::uint32_t>(a.sent) + 1;
    CHECK(ci.snd_nxt <= limit && ci.snd_una <= limit);
    if (a.have_last) {
      CHECK(ci.snd_una >= a.last_una);
      CHECK(ci.rcv_nxt >= a.last_rcv);
    }
    a.have_last = true;
    a.last_una = ci.snd_una;
    a.last_rcv = ci.rcv_nxt;
    const Flow* f = find_flow(kPeer, a.key.local_port, a.key.remote_port, false);
    if (f != nullptr && f->peer_hi_known && !f->raw_seen) {
      CHECK(ci.rcv_nxt <= f->peer_hi);
    }
  }
}

XTCP_HARNESS_ONLY void World::on_delivered(std::uint32_t src, std::uint32_t dst,
                                           wire::ByteSpan seg) {
  CHECK(dst == kLocal);
  wire::TcpError err = wire::TcpError::kNone;
  const wire::TcpView t = wire::TcpView::parse(seg, &err);
  if (!t.ok() || !t.verify_checksum(src, dst)) {
    return;
  }
  wire::TcpOptions o;
  if (wire::parse_tcp_options(t.options(), &o) != wire::TcpError::kNone) {
    return;
  }
  Flow* f = find_flow(src, t.dst_port(), t.src_port(), true);
  if (f == nullptr) {
    return;
  }
  if (!aimed_) {
    f->raw_seen = true;
  } else {
    const SeqNum end = t.seq() + t.seq_length();
    if (!f->peer_hi_known || end > f->peer_hi) {
      f->peer_hi = end;
    }
    f->peer_hi_known = true;
  }
  const SeqNum first = t.seq() + (t.has(kSyn) ? 1u : 0u);
  const wire::ByteSpan p = t.payload();
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (static_cast<std::uint8_t>(p[i]) !=
        peer_byte((first + static_cast<std::uint32_t>(i)).raw())) {
      f->content_ok = false;
      break;
    }
  }
  if (t.has(kSyn)) {
    f->syn_seen = true;
    f->max_peer_mss = std::max<std::uint16_t>(f->max_peer_mss, o.has_mss ? o.mss : 536);
  }
}

// ---- the peer ----------------------------------------------------------------------------

void World::peer(Flow& f, const SegSpec& s) {
  wire::TcpOptions o = s.opts;
  // Keep the structured options within 40 bytes by dropping SACK blocks.
  while (wire::tcp_header_length(o) > wire::kTcpHeaderMax && o.sack_count > 0) {
    --o.sack_count;
  }
  std::vector<std::byte> pkt(wire::kIpv4HeaderMin + wire::kTcpHeaderMax + s.payload);
  std::byte* th = pkt.data() + wire::kIpv4HeaderMin;
  wire::TcpFields tf;
  tf.src_port = f.peer_port;
  tf.dst_port = f.local_port;
  tf.seq = s.seq;
  tf.ack = s.ack;
  tf.flags = s.flags;
  tf.window = s.window;
  tf.urgent_pointer = (s.flags & kUrg) ? static_cast<std::uint16_t>(s.payload) : 0;
  std::size_t hdr = wire::emit_tcp_header(th, tf, o);
  if (!s.raw_opts.empty() && hdr < wire::kTcpHeaderMax) {
    const std::size_t n = std::min(s.raw_opts.size(), wire::kTcpHeaderMax - hdr);
    const std::size_t padded = (n + 3) & ~std::size_t{3};
    std::memset(th + hdr, 0, padded);
    std::transform(s.raw_opts.begin(), s.raw_opts.begin() + static_cast<std::ptrdiff_t>(n),
                   th + hdr, [](std::uint8_t x) { return std::byte{x}; });
    hdr += padded;
    wire::store_u8(th + 12, static_cast<std::uint8_t>((hdr / 4) << 4));
  }
  fill_peer_bytes(th + hdr, s.seq + ((s.flags & kSyn) ? 1u : 0u), s.payload);
  const std::size_t total = wire::kIpv4HeaderMin + hdr + s.payload;
  pkt.resize(total);
  wire::fill_tcp_checksum(wire::MutableByteSpan(th, hdr + s.payload), kPeer, kLocal);
  wire::Ipv4Fields ipf;
  ipf.total_length = static_cast<std::uint16_t>(total);
  ipf.id = 1;
  ipf.protocol = wire::kProtoTcp;
  ipf.src = kPeer;
  ipf.dst = kLocal;
  wire::emit_ipv4_header(pkt.data(), ipf);
  if (s.twice) {
    inject(pkt, true);
  }
  inject(std::move(pkt), true);
}

// ---- set-up: connections in many states through real handshakes -------------------------

wire::TcpOptions syn_options(bool mss, bool ts, bool sack, int wscale) {
  wire::TcpOptions o;
  o.has_mss = mss;
  o.mss = 1460;
  o.has_timestamp = ts;
  o.ts_val = 5000;
  o.sack_permitted = sack;
  o.has_window_scale = wscale >= 0;
  o.window_scale = static_cast<std::uint8_t>(wscale < 0 ? 0 : wscale);
  return o;
}

wire::TcpOptions ack_options(Flow& f, bool ts) {
  wire::TcpOptions o;
  if (ts) {
    o.has_timestamp = true;
    o.ts_val = ++f.peer_ts;
    o.ts_ecr = f.stack_tsval;
  }
  return o;
}

App* World::passive(std::uint16_t peer_port, std::uint32_t isn, const wire::TcpOptions& o,
                    std::uint16_t ack_window, bool accept_it) {
  Flow& f = add_flow(kListenPort, peer_port, isn);
  f.peer_ts = o.ts_val;
  SegSpec syn;
  syn.flags = kSyn;
  syn.seq = SeqNum(isn);
  syn.opts = o;
  peer(f, syn);
  clock_.advance(ms(7));
  SegSpec ack;
  ack.seq = SeqNum(isn + 1);
  ack.ack = f.stack_seq_hi;
  ack.window = ack_window;
  ack.opts = ack_options(f, o.has_timestamp);
  peer(f, ack);
  if (!accept_it) {
    return nullptr;
  }
  const std::int64_t c = do_accept();
  CHECK(c >= 0);
  return held_app(static_cast<ConnId>(c));
}

App* World::active(std::uint16_t local_port, std::uint16_t peer_port, std::uint32_t isn,
                   const wire::TcpOptions& o, std::uint16_t window) {
  Flow& f = add_flow(local_port, peer_port, isn);
  f.peer_ts = o.ts_val;
  const std::int64_t c = do_connect(peer_port, local_port);
  CHECK(c >= 0);
  step();
  clock_.advance(ms(11));
  SegSpec synack;
  synack.flags = kSyn | kAck;
  synack.seq = SeqNum(isn);
  synack.ack = f.stack_seq_hi;
  synack.window = window;
  synack.opts = o;
  synack.opts.ts_ecr = f.stack_tsval;
  peer(f, synack);
  return held_app(static_cast<ConnId>(c));
}

std::int64_t World::do_accept() {
  const std::int64_t c = tcp().accept(kListenPort);
  if (c >= 0) {
    ConnInfo ci{};
    CHECK(tcp().info(static_cast<ConnId>(c), &ci) == 0);
    CHECK(ci.state != TcpState::kClosed && ci.state != TcpState::kSynSent &&
          ci.state != TcpState::kSynReceived);
    CHECK(ci.snd_una == ci.snd_nxt);  // nothing of ours can be in flight yet
    App* a = add_app(static_cast<ConnId>(c), ci.snd_una);
    a->peer_fin = false;
  }
  return c;
}

std::int64_t World::do_connect(std::uint16_t peer_port, std::uint16_t local_port) {
  const std::int64_t c = tcp().connect(kPeer, peer_port, local_port);
  if (c >= 0) {
    ConnInfo ci{};
    CHECK(tcp().info(static_cast<ConnId>(c), &ci) == 0);
    CHECK(ci.state == TcpState::kSynSent);
    add_app(static_cast<ConnId>(c), ci.snd_una + 1);
  }
  return c;
}

void World::app_send(App& a, std::size_t n) {
  n = std::min(n, send_buf_.size());
  fill_app_bytes(send_buf_.data(), a.sent, n);
  const std::int64_t r = tcp().send(a.id, wire::as_bytes(send_buf_.data(), n));
  if (r > 0) {
    CHECK(static_cast<std::size_t>(r) <= n);
    a.sent += static_cast<std::uint64_t>(r);
  }
}

XTCP_HARNESS_ONLY void World::app_read(App& a, std::size_t want, bool consume) {
  ConnInfo ci{};
  CHECK(tcp().info(a.id, &ci) == 0);
  const std::size_t readable = buffers_.readable(a.id);
  // The RxStore holds exactly the bytes just below RCV.NXT (and the FIN, if it came).
  const SeqNum start = ci.rcv_nxt - static_cast<std::uint32_t>(readable) - (a.peer_fin ? 1u : 0u);
  std::array<std::byte, 2048> buf;
  std::size_t done = 0;
  while (done < want) {
    const std::size_t n =
        buffers_.read(a.id, wire::MutableByteSpan(buf.data(), std::min(buf.size(), want - done)));
    if (n == 0) {
      break;
    }
    const Flow* f = find_flow(kPeer, a.key.local_port, a.key.remote_port, false);
    if (f != nullptr && f->content_ok && ci.state != TcpState::kSynSent) {
      for (std::size_t i = 0; i < n; ++i) {
        CHECK(static_cast<std::uint8_t>(buf[i]) ==
              peer_byte((start + static_cast<std::uint32_t>(done + i)).raw()));
      }
    }
    done += n;
  }
  CHECK(done <= readable);
  if (consume) {
    tcp().consumed(a.id);
  }
}

void World::setup(std::uint8_t listen_bits) {
  CHECK(tcp().listen(kListenPort, listen_options(listen_bits)) == 0);
  listening_ = true;
  // 0: passive, Linux's options (TS, SACK, WS 7), idle.
  App* c0 = passive(40000, 1'000'000, syn_options(true, true, true, 7), 1024, true);
  // 1: passive, no options at all (MSS 536 assumed), data in flight, nothing acknowledged.
  App* c1 = passive(40001, 2'000'000, syn_options(false, false, false, -1), 65535, true);
  app_send(*c1, 3000);
  step();
  // 2: active, TS + SACK + WS 2, peer ISN just below 2^32 (its sequence numbers wrap soon);
  //    out-of-order data queued 1000 bytes above RCV.NXT.
  App* c2 = active(50000, 80, 0xFFFFF000u, syn_options(true, true, true, 2), 65535);
  {
    Flow& f = *find_flow(kPeer, 50000, 80, false);
    clock_.advance(ms(3));
    SegSpec s;
    s.seq = SeqNum(0xFFFFF000u + 1 + 1000);
    s.ack = f.stack_seq_hi;
    s.window = 16384;
    s.opts = ack_options(f, true);
    s.payload = 500;
    peer(f, s);
  }
  // 3: active, SACK only, MSS 1200: 1000 bytes received and unread, 100 sent and ACKed.
  wire::TcpOptions o3 = syn_options(true, false, true, -1);
  o3.mss = 1200;
  App* c3 = active(50001, 81, 3'000'000, o3, 65535);
  {
    Flow& f = *find_flow(kPeer, 50001, 81, false);
    SegSpec s;
    s.seq = SeqNum(3'000'001);
    s.ack = f.stack_seq_hi;
    s.payload = 1000;
    peer(f, s);
    app_send(*c3, 100);
    step();
    clock_.advance(ms(5));
    SegSpec a;
    a.seq = SeqNum(3'001'001);
    a.ack = f.stack_seq_hi;
    peer(f, a);
  }
  // 4: passive, TS only; our FIN acknowledged: FIN-WAIT-2 with the handle still held.
  App* c4 = passive(40002, 4'000'000, syn_options(true, true, false, -1), 65535, true);
  CHECK(tcp().shutdown(c4->id) == 0);
  step();
  {
    Flow& f = *find_flow(kPeer, kListenPort, 40002, false);
    SegSpec a;
    a.seq = SeqNum(4'000'001);
    a.ack = f.stack_seq_hi;
    a.opts = ack_options(f, true);
    peer(f, a);
  }
  // 5: passive, Linux options; closed by us, then the peer's FIN+ACK: TIME-WAIT.
  App* c5 = passive(40003, 5'000'000, syn_options(true, true, true, 7), 1024, true);
  CHECK(tcp().close(c5->id) == 0);
  c5->held = false;
  step();
  {
    Flow& f = *find_flow(kPeer, kListenPort, 40003, false);
    SegSpec a;
    a.flags = kFin | kAck;
    a.seq = SeqNum(5'000'001);
    a.ack = f.stack_seq_hi;
    a.window = 1024;
    a.opts = ack_options(f, true);
    peer(f, a);
  }
  // 6: passive, WS + SACK without TS; 10 bytes and the peer's FIN: CLOSE-WAIT, unread.
  App* c6 = passive(40004, 6'000'000, syn_options(true, false, true, 3), 8192, true);
  {
    Flow& f = *find_flow(kPeer, kListenPort, 40004, false);
    SegSpec s;
    s.flags = kFin | kAck | kPsh;
    s.seq = SeqNum(6'000'001);
    s.ack = f.stack_seq_hi;
    s.window = 8192;
    s.payload = 10;
    peer(f, s);
  }
  // 7: half-open: the peer's SYN only (SYN-RECEIVED).
  {
    Flow& f = add_flow(kListenPort, 40005, 7'000'000);
    SegSpec syn;
    syn.flags = kSyn;
    syn.seq = SeqNum(7'000'000);
    syn.opts = syn_options(true, true, true, 7);
    peer(f, syn);
  }
  // 8: our SYN unanswered (SYN-SENT).
  add_flow(50002, 82, 8'000'000);
  const std::int64_t c8 = do_connect(82, 50002);
  CHECK(c8 >= 0);
  step();
  // 9: established but never accepted (in the accept queue).
  passive(40006, 9'000'000, syn_options(true, false, false, -1), 65535, false);

  // The fixtures are what the fuzzer builds on: check they are what they claim to be.
  auto state = [this](const App* a) {
    ConnInfo ci{};
    CHECK(a != nullptr && tcp().info(a->id, &ci) == 0);
    return ci.state;
  };
  CHECK(state(c0) == TcpState::kEstablished);
  CHECK(state(c1) == TcpState::kEstablished);
  CHECK(state(c2) == TcpState::kEstablished);
  CHECK(state(c3) == TcpState::kEstablished);
  CHECK(state(c4) == TcpState::kFinWait2);
  CHECK(state(c6) == TcpState::kCloseWait);
  const auto by_state = tcp().connections_by_state();
  CHECK(by_state[static_cast<int>(TcpState::kTimeWait)] == 1);
  CHECK(by_state[static_cast<int>(TcpState::kSynReceived)] == 1);
  CHECK(by_state[static_cast<int>(TcpState::kSynSent)] == 1);
  CHECK(by_state[static_cast<int>(TcpState::kEstablished)] == 5);
  ConnInfo ci{};
  CHECK(tcp().info(c1->id, &ci) == 0 && ci.snd_una < ci.snd_nxt);
  CHECK(tcp().info(c2->id, &ci) == 0 && buffers_.readable(c2->id) == 0);
  CHECK(buffers_.readable(c3->id) == 1000 && buffers_.readable(c6->id) == 10);
}

// ---- operations --------------------------------------------------------------------------

Flow& World::pick_flow(Reader& in) {
  const std::uint8_t idx = in.u8();
  if (idx >= 0xf0 && flows_.size() < kMaxFlows) {
    // A 4-tuple nobody used yet: the listener, a closed port, or a port connect() uses.
    const std::uint8_t b = in.u8();
    const std::uint16_t local = (b & 0x80)   ? static_cast<std::uint16_t>(50000 + (b & 7))
                                : (b & 0x40) ? 9
                                             : kListenPort;
    return *find_flow(kPeer, local, static_cast<std::uint16_t>(41000 + (b & 0x3f)), true);
  }
  return flows_[idx % flows_.size()];
}

// ctl: bits 0-1 seq offset scale, 2-3 ack offset scale, 4 ack relative to SND.NXT (else
// SND.UNA), 5 send twice, 6 timestamp option with the flow's next TSval, 7 read ctl2.
// ctl2: 0 timestamp with fuzzed deltas, 1 SACK blocks, 2 SYN options, 3 raw option bytes.
void World::op_aimed(Reader& in) {
  Flow& f = pick_flow(in);
  SegSpec s;
  s.flags = in.u8();
  const std::uint8_t ctl = in.u8();
  const std::uint8_t ctl2 = (ctl & 0x80) ? in.u8() : 0;
  const std::int16_t seq_off = in.i16();
  const std::int16_t ack_off = in.i16();
  s.window = in.u16();
  s.payload = in.u16() % 1461;
  // At most 2^30 away, so sequence comparisons made by the harness stay meaningful.
  static constexpr int kShift[4] = {0, 6, 12, 15};

  ConnInfo ci{};
  const bool live = live_conn(f, &ci);
  const SeqNum rcv = live && ci.state != TcpState::kSynSent ? ci.rcv_nxt : f.stack_ack;
  const SeqNum una = live ? ci.snd_una : f.stack_seq_hi;
  const SeqNum nxt = live ? ci.snd_nxt : f.stack_seq_hi;
  s.seq = rcv + static_cast<std::uint32_t>(static_cast<std::int64_t>(seq_off) << kShift[ctl & 3]);
  s.ack = ((ctl & 0x10) ? nxt : una) +
          static_cast<std::uint32_t>(static_cast<std::int64_t>(ack_off) << kShift[(ctl >> 2) & 3]);
  s.twice = (ctl & 0x20) != 0;
  if (ctl & 0x40) {
    s.opts.has_timestamp = true;
    s.opts.ts_val = ++f.peer_ts;
    s.opts.ts_ecr = f.stack_tsval;
  }
  if (ctl2 & 0x01) {
    s.opts.has_timestamp = true;
    f.peer_ts += static_cast<std::uint32_t>(static_cast<std::int32_t>(in.i8()) * 97);
    s.opts.ts_val = f.peer_ts;
    s.opts.ts_ecr =
        f.stack_tsval + static_cast<std::uint32_t>(static_cast<std::int32_t>(in.i8()) * 13);
  }
  if (ctl2 & 0x02) {
    const std::uint8_t n = static_cast<std::uint8_t>(1 + in.u8() % 4);
    for (std::uint8_t i = 0; i < n; ++i) {
      const SeqNum left = una + static_cast<std::uint32_t>(static_cast<std::int32_t>(in.i16()));
      s.opts.sack[i] = wire::SackBlock{left, left + in.u16()};
    }
    s.opts.sack_count = n;
  }
  if (ctl2 & 0x04) {
    const std::uint8_t m = in.u8();
    s.opts.has_mss = (m & 1) != 0;
    s.opts.mss = (m & 1) ? in.u16() : 0;
    s.opts.has_window_scale = (m & 2) != 0;
    s.opts.window_scale = static_cast<std::uint8_t>((m >> 3) & 0x1f);
    s.opts.sack_permitted = (m & 4) != 0;
  }
  if (ctl2 & 0x08) {
    s.raw_opts = in.bytes(in.u8() % 41);
  }
  if (g_trace) {
    std::fprintf(stderr, "  aimed %u->%u flags=%02x seq=%u ack=%u win=%u len=%zu (rcv %u una %u)\n",
                 f.peer_port, f.local_port, s.flags, s.seq.raw(), s.ack.raw(), s.window, s.payload,
                 rcv.raw(), una.raw());
  }
  peer(f, s);
}

// ctrl: 0x01 addresses peer -> us, 0x02 IP checksum, 0x04 TCP checksum, 0x08 total length.
void World::op_raw(Reader& in) {
  const std::uint8_t ctrl = in.u8();
  const std::size_t len = in.u16() % 1601;
  const auto b = in.bytes(len);
  std::vector<std::byte> pkt(b.size());
  std::transform(b.begin(), b.end(), pkt.begin(), [](std::uint8_t x) { return std::byte{x}; });
  if (pkt.size() >= wire::kIpv4HeaderMin) {
    std::size_t hl = (static_cast<std::size_t>(pkt[0]) & 0xf) * 4;
    if (hl < wire::kIpv4HeaderMin || hl > pkt.size()) {
      hl = wire::kIpv4HeaderMin;
    }
    if (ctrl & 0x01) {
      wire::store_be32(pkt.data() + 12, kPeer);
      wire::store_be32(pkt.data() + 16, kLocal);
    }
    if (ctrl & 0x08) {
      wire::store_be16(pkt.data() + 2, static_cast<std::uint16_t>(pkt.size()));
    }
    if ((ctrl & 0x04) && wire::load_u8(pkt.data() + 9) == wire::kProtoTcp) {
      std::size_t end = wire::load_be16(pkt.data() + 2);
      end = std::clamp(end, hl, pkt.size());
      if (end >= hl + wire::kTcpHeaderMin) {
        wire::fill_tcp_checksum(wire::MutableByteSpan(pkt.data() + hl, end - hl),
                                wire::load_be32(pkt.data() + 12), wire::load_be32(pkt.data() + 16));
      }
    }
    if (ctrl & 0x02) {
      wire::store_be16(pkt.data() + 10, 0);
      wire::store_be16(pkt.data() + 10, wire::internet_checksum(wire::ByteSpan(pkt.data(), hl)));
    }
  }
  inject(std::move(pkt), false);
}

void World::op_time(Reader& in) {
  const std::uint8_t mode = in.u8();
  const std::uint16_t v = in.u16();
  const TimeNs now = clock_.now();
  const TimeNs next = stack_->next_deadline();
  TimeNs dt = 0;
  switch (mode % 4) {
    case 0:
      dt = ms(v & 0x3ff);
      break;
    case 1:
      dt = ms(v);
      break;
    case 2:
      dt = next != kNever && next - now <= seconds(600) ? std::max<TimeNs>(0, next - now) : ms(v);
      break;
    default:
      dt = next != kNever && next - now <= seconds(600) && next - now > ms(1) ? next - now - ms(1)
                                                                              : ms(v & 0xff);
      break;
  }
  clock_.advance(dt);
  step();
}

void World::op_app(Reader& in) {
  const std::uint8_t kind = in.u8();
  const std::uint8_t hsel = in.u8();
  const std::uint16_t arg = in.u16();
  std::vector<App*> held;
  for (App& a : apps_) {
    if (a.held) {
      held.push_back(&a);
    }
  }
  App* a = held.empty() ? nullptr : held[hsel % held.size()];
  TcpLayer& l = tcp();
  if (g_trace) {
    std::fprintf(stderr, "  app %d on conn %d arg %u\n", kind % 11,
                 a != nullptr ? static_cast<int>(a->id) : -1, arg);
  }
  switch (kind % 11) {
    case 0:
      if (a != nullptr) {
        app_send(*a, (kind & 0x80) ? arg : arg % 4096);
      }
      break;
    case 1:
      if (a != nullptr) {
        app_read(*a, arg == 0 ? SIZE_MAX : arg, (kind & 0x80) == 0);
      }
      break;
    case 2:
      if (a != nullptr) {
        CHECK(l.close(a->id) == 0);
        a->held = false;
      }
      break;
    case 3:
      if (a != nullptr) {
        CHECK(l.abort(a->id) == 0);
        a->held = false;
      }
      break;
    case 4:
      if (a != nullptr) {
        l.shutdown(a->id);
      }
      break;
    case 5:
      do_accept();
      break;
    case 6:
      do_connect(static_cast<std::uint16_t>(80 + (arg & 3)),
                 (arg & 4) ? 0 : static_cast<std::uint16_t>(50000 + ((arg >> 3) & 7)));
      break;
    case 7:
      if (a != nullptr) {
        CHECK(l.set_nodelay(a->id, (arg & 1) != 0) == 0);
      }
      break;
    case 8:
      if (a != nullptr) {
        CHECK(l.set_keepalive(a->id, (arg & 1) != 0) == 0);
      }
      break;
    case 9:
      if (arg & 1) {
        if (l.listen(kListenPort, listen_options(static_cast<std::uint8_t>(arg >> 1))) == 0) {
          listening_ = true;
        }
      } else if (l.unlisten(kListenPort) == 0) {
        listening_ = false;
      }
      break;
    default:
      if (a != nullptr) {
        l.consumed(a->id);
      }
      break;
  }
  step();
}

void World::op_icmp(Reader& in) {
  Flow& f = pick_flow(in);
  const std::uint8_t type = in.u8();
  const std::uint16_t mtu = in.u16();
  const std::int16_t seq_off = in.i16();
  ConnInfo ci{};
  const SeqNum una = live_conn(f, &ci) ? ci.snd_una : f.stack_seq_hi;
  static constexpr std::uint8_t kTypes[4][2] = {
      {wire::kIcmpDestUnreachable, wire::kUnreachFragNeeded},
      {wire::kIcmpDestUnreachable, wire::kUnreachPort},
      {wire::kIcmpDestUnreachable, wire::kUnreachProtocol},
      {wire::kIcmpTimeExceeded, wire::kTimeExceededTtl}};
  const auto& tc = kTypes[type % 4];
  constexpr std::size_t kQuote = wire::kIpv4HeaderMin + wire::kTcpHeaderMin;
  constexpr std::size_t kTotal = wire::kIpv4HeaderMin + wire::kIcmpHeaderLen + kQuote;
  std::vector<std::byte> pkt(kTotal);
  std::byte* icmp = pkt.data() + wire::kIpv4HeaderMin;
  std::byte* quote = icmp + wire::kIcmpHeaderLen;
  wire::Ipv4Fields q;
  q.total_length = static_cast<std::uint16_t>(kQuote + 100);
  q.protocol = wire::kProtoTcp;
  q.src = kLocal;
  q.dst = kPeer;
  wire::emit_ipv4_header(quote, q);
  wire::TcpFields tf;
  tf.src_port = f.local_port;
  tf.dst_port = f.peer_port;
  tf.seq = una + static_cast<std::uint32_t>(static_cast<std::int32_t>(seq_off));
  tf.flags = kAck;
  wire::emit_tcp_header(quote + wire::kIpv4HeaderMin, tf, wire::TcpOptions{});
  wire::store_u8(icmp, tc[0]);
  wire::store_u8(icmp + 1, tc[1]);
  wire::store_be16(icmp + 6, mtu);
  wire::store_be16(icmp + 2,
                   wire::internet_checksum(wire::ByteSpan(icmp, kTotal - wire::kIpv4HeaderMin)));
  wire::Ipv4Fields ipf;
  ipf.total_length = static_cast<std::uint16_t>(kTotal);
  ipf.protocol = wire::kProtoIcmp;
  ipf.src = (type & 4) ? kPeer : kRouter;
  ipf.dst = kLocal;
  wire::emit_ipv4_header(pkt.data(), ipf);
  inject(std::move(pkt), false);
}

void World::run(Reader& in) {
  for (std::size_t ops = 0; ops < kMaxOps && !in.empty(); ++ops) {
    const std::uint8_t op = in.u8();
    if (g_trace) {
      std::fprintf(stderr, "op %zu: kind %d at t=%lld ms\n", ops, op % 8,
                   static_cast<long long>(clock_.now() / kNsPerMs));
    }
    switch (op % 8) {
      case 0:
      case 1:
      case 2:
        op_aimed(in);
        break;
      case 3:
        op_raw(in);
        break;
      case 4:
        op_time(in);
        break;
      case 5:
      case 6:
        op_app(in);
        break;
      default:
        op_icmp(in);
        break;
    }
  }
}

// Everything released and time run out: every connection and TIME-WAIT entry must end.
void World::finish() {
  TcpLayer& l = tcp();
  if (listening_) {
    CHECK(l.unlisten(kListenPort) == 0);
    listening_ = false;
  }
  for (App& a : apps_) {
    if (a.held) {
      if (l.close(a.id) != 0) {
        CHECK(l.abort(a.id) == 0);
      }
      a.held = false;
    }
  }
  step();
  for (int i = 0; i < kDrainSteps; ++i) {
    const TimeNs next = stack_->next_deadline();
    if (next == kNever) {
      break;
    }
    clock_.set(std::max(next, clock_.now() + ms(1)));
    step();
  }
  CHECK(stack_->next_deadline() == kNever);
  CHECK(l.connection_count() == 0);
  CHECK(l.connections_by_state()[static_cast<int>(TcpState::kTimeWait)] == 0);
}

}  // namespace

// A smaller ASan quarantine: each input allocates a fresh stack, and a large quarantine
// only makes every allocation touch new pages.
extern "C" const char* __asan_default_options() { return "quarantine_size_mb=32"; }

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Reader in(data, size);
  World w(in.u8());
  w.setup(in.u8());
  w.run(in);
  w.finish();
  return 0;
}
