// xtcp-replay-craft: writes the crafted adversarial suite (pcaps/adversarial/). Each capture
// is a scripted client, in this process, talking to xtcp-echo's logic over the in-memory
// link in virtual time (the in-process target of xtcp-replay) and feeding it one class of
// malformed or hostile input the engine must drop, count, or answer with a challenge ACK
// (RFC 5961), between well-formed requests that show the connection still works. The
// server's answers in the files are what xtcp did when they were made: replaying them
// checks that it still does. docs/replay.md.
#include <xtcp/xtcp.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "stack/netif/pcap_writer.h"
#include "stack/wire/ipv4.h"
#include "stack/wire/tcp.h"
#include "tools/cli/cli.h"
#include "tools/replay/target.h"

namespace {

namespace cli = xtcp::cli;
namespace tf = xtcp::wire::tcp_flags;
using namespace xtcp::replay;  // NOLINT
using xtcp::TimeNs;

constexpr std::uint32_t kServerAddr = 0xC6120002;  // 198.18.0.2
constexpr std::uint32_t kClientAddr = 0xC6120001;  // 198.18.0.1
constexpr std::uint16_t kEchoPort = 7;
// Capture timestamps start here (2026-01-01 00:00:00 UTC) so the files are the same on
// every run.
constexpr TimeNs kEpoch = 1'767'225'600LL * xtcp::kNsPerSec;

// One scripted client connection: builds segments, sends them, reads the server's answers
// and keeps its own view of both sequence spaces (snd_nxt, rcv_nxt) as a TCP would.
class Client {
 public:
  Client(Target& target, xtcp::PcapWriter& writer, std::uint16_t port, std::uint32_t isn)
      : t_(target), w_(writer), port_(port), isn_(isn), snd_nxt_(isn) {}

  // The three-way handshake with timestamps, SACK and window scaling (as Linux offers).
  void connect() {
    xtcp::wire::TcpOptions o;
    o.has_mss = true;
    o.mss = 1460;
    o.sack_permitted = true;
    o.has_timestamp = true;
    o.ts_val = tsval_;
    o.has_window_scale = true;
    o.window_scale = 7;
    send(build(tf::kSyn, snd_nxt_, 0, {}, &o));
    snd_nxt_ += 1;
    settle(xtcp::ms(1));
    send(build(tf::kAck, snd_nxt_, rcv_nxt_, {}));
  }

  // Data at snd_nxt (well-formed), then waits for the echo.
  void request(const std::string& text) {
    send(build(tf::kAck | tf::kPsh, snd_nxt_, rcv_nxt_, bytes(text)));
    snd_nxt_ += static_cast<std::uint32_t>(text.size());
    settle(xtcp::ms(50));
    send(build(tf::kAck, snd_nxt_, rcv_nxt_, {}));
  }

  // Moves snd_nxt (after data sent with send_mangled) and closes.
  void close_at(std::uint32_t snd_nxt) {
    snd_nxt_ = snd_nxt;
    close();
  }

  void close() {
    send(build(tf::kAck | tf::kFin, snd_nxt_, rcv_nxt_, {}));
    snd_nxt_ += 1;
    settle(xtcp::ms(50));
    send(build(tf::kAck, snd_nxt_, rcv_nxt_, {}));
    settle(xtcp::ms(10));
  }

  // A segment built from the client's state, handed to `mangle` before it leaves.
  void send_mangled(std::uint8_t flags, std::uint32_t seq, std::uint32_t ack, const std::string& data,
                    const std::function<void(std::vector<std::byte>&)>& mangle, bool fix_checksums = true) {
    std::vector<std::byte> p = build(flags, seq, ack, bytes(data));
    mangle(p);
    if (fix_checksums) {
      const TcpFacts f = read_tcp_facts(p);
      set_checksums(p, f, true, true);
    }
    send(p);
    settle(xtcp::ms(20));
  }

  std::vector<std::byte> build(std::uint8_t flags, std::uint32_t seq, std::uint32_t ack,
                               const std::vector<std::byte>& payload,
                               const xtcp::wire::TcpOptions* syn_options = nullptr) {
    xtcp::wire::TcpOptions o;
    if (syn_options != nullptr) {
      o = *syn_options;
    } else {
      o.has_timestamp = true;
      o.ts_val = tsval_;
      o.ts_ecr = ts_recent_;
    }
    tsval_ += 1;
    xtcp::wire::TcpFields f;
    f.src_port = port_;
    f.dst_port = kEchoPort;
    f.seq = xtcp::wire::SeqNum(seq);
    f.ack = xtcp::wire::SeqNum((flags & tf::kAck) != 0 ? ack : 0);
    f.flags = flags;
    f.window = 512;  // << 7 = 64 KiB
    const std::size_t hl = xtcp::wire::tcp_header_length(o);
    std::vector<std::byte> p(xtcp::wire::kIpv4HeaderMin + hl + payload.size());
    xtcp::wire::emit_tcp_header(p.data() + xtcp::wire::kIpv4HeaderMin, f, o);
    std::copy(payload.begin(), payload.end(), p.begin() + static_cast<std::ptrdiff_t>(xtcp::wire::kIpv4HeaderMin + hl));
    xtcp::wire::Ipv4Fields ip;
    ip.total_length = static_cast<std::uint16_t>(p.size());
    ip.id = ++ip_id_;
    ip.protocol = xtcp::wire::kProtoTcp;
    ip.src = kClientAddr;
    ip.dst = kServerAddr;
    xtcp::wire::emit_ipv4_header(p.data(), ip);
    const TcpFacts facts = read_tcp_facts(p);
    set_checksums(p, facts, true, true);
    return p;
  }

  std::uint32_t snd_nxt() const { return snd_nxt_; }
  std::uint32_t rcv_nxt() const { return rcv_nxt_; }
  std::uint32_t iss() const { return iss_; }
  std::uint32_t server_high() const { return server_high_; }

  void settle(TimeNs d) {
    const TimeNs until = t_.now() + d;
    while (t_.now() < until) {
      t_.run(until, [&](std::span<const std::byte> p) { take(p); });
    }
  }

 private:
  static std::vector<std::byte> bytes(const std::string& s) {
    std::vector<std::byte> b;
    for (const char ch : s) {
      b.push_back(static_cast<std::byte>(ch));
    }
    return b;
  }

  void send(std::span<const std::byte> p) {
    record(p);
    t_.send(p);
    t_.poll([&](std::span<const std::byte> a) { take(a); });
  }

  void take(std::span<const std::byte> p) {
    record(p);
    const TcpFacts f = read_tcp_facts(p);
    if (!f.valid || f.dst.port != port_) {
      return;
    }
    if (f.has(tf::kSyn)) {
      iss_ = f.seq;
      rcv_nxt_ = f.seq + 1;
    }
    if (f.has_tsval) {
      ts_recent_ = f.tsval;
    }
    const std::uint32_t end = f.seq + f.seq_length();
    if (static_cast<std::int32_t>(end - server_high_) > 0 || server_high_ == 0) {
      server_high_ = end;
    }
    // In-order data and FIN advance what the client acknowledges next.
    if (!f.has(tf::kSyn) && f.seq == rcv_nxt_) {
      rcv_nxt_ += static_cast<std::uint32_t>(f.payload_length) + (f.has(tf::kFin) ? 1 : 0);
    }
  }

  void record(std::span<const std::byte> p) {
    w_.write(static_cast<std::uint64_t>((kEpoch + t_.now()) / xtcp::kNsPerUs), p);
  }

  Target& t_;
  xtcp::PcapWriter& w_;
  std::uint16_t port_;
  std::uint32_t isn_;
  std::uint32_t snd_nxt_;
  std::uint32_t rcv_nxt_ = 0;
  std::uint32_t iss_ = 0;
  std::uint32_t server_high_ = 0;
  std::uint32_t tsval_ = 1000;
  std::uint32_t ts_recent_ = 0;
  std::uint16_t ip_id_ = 0;
};

constexpr std::size_t kIp = xtcp::wire::kIpv4HeaderMin;

void set_u8(std::vector<std::byte>& p, std::size_t at, std::uint8_t v) { p[at] = std::byte{v}; }

// Bad TCP and IPv4 checksums: dropped and counted (tcp.drop_bad_checksum, ip.drop_bad_checksum).
void bad_checksums(Target& t, xtcp::PcapWriter& w) {
  Client c(t, w, 40001, 100'000);
  c.connect();
  c.request("before\n");
  c.send_mangled(tf::kAck | tf::kPsh, c.snd_nxt(), c.rcv_nxt(), "bad tcp checksum\n",
                 [](std::vector<std::byte>& p) { p[kIp + 16] ^= std::byte{0x5a}; }, false);
  c.send_mangled(tf::kAck | tf::kPsh, c.snd_nxt(), c.rcv_nxt(), "bad ip checksum\n",
                 [](std::vector<std::byte>& p) { p[10] ^= std::byte{0x5a}; }, false);
  c.request("after\n");
  c.close();
}

// Bad header lengths: TCP data offset under 5 or past the segment, a segment shorter than
// a TCP header, IPv4 IHL under 5 and a total length past the packet. Dropped and counted.
void bad_headers(Target& t, xtcp::PcapWriter& w) {
  Client c(t, w, 40002, 200'000);
  c.connect();
  c.request("before\n");
  c.send_mangled(tf::kAck | tf::kPsh, c.snd_nxt(), c.rcv_nxt(), "offset 4\n",
                 [](std::vector<std::byte>& p) { set_u8(p, kIp + 12, 4 << 4); });
  c.send_mangled(tf::kAck | tf::kPsh, c.snd_nxt(), c.rcv_nxt(), "x",
                 [](std::vector<std::byte>& p) { set_u8(p, kIp + 12, 15 << 4); });
  c.send_mangled(tf::kAck, c.snd_nxt(), c.rcv_nxt(), "", [](std::vector<std::byte>& p) {
    p.resize(kIp + 16);  // a TCP header cut after the window field
    xtcp::wire::store_be16(p.data() + 2, static_cast<std::uint16_t>(p.size()));
  });
  c.send_mangled(tf::kAck | tf::kPsh, c.snd_nxt(), c.rcv_nxt(), "ihl 4\n",
                 [](std::vector<std::byte>& p) { set_u8(p, 0, 0x44); });
  c.send_mangled(tf::kAck | tf::kPsh, c.snd_nxt(), c.rcv_nxt(), "long total\n", [](std::vector<std::byte>& p) {
    xtcp::wire::store_be16(p.data() + 2, static_cast<std::uint16_t>(p.size() + 100));
  });
  c.request("after\n");
  c.close();
}

// Bad TCP options (RFC 9293 3.1): a zero option length, an MSS of the wrong size, an option
// running past the header. Dropped and counted (tcp.drop_bad_options).
void bad_options(Target& t, xtcp::PcapWriter& w) {
  Client c(t, w, 40003, 300'000);
  c.connect();
  c.request("before\n");
  // The 12 option bytes are NOP NOP TS(10); rewrite them.
  auto options = [](std::initializer_list<std::uint8_t> bytes) {
    return [bytes](std::vector<std::byte>& p) {
      std::size_t i = kIp + 20;
      for (const std::uint8_t b : bytes) {
        p[i++] = std::byte{b};
      }
    };
  };
  c.send_mangled(tf::kAck | tf::kPsh, c.snd_nxt(), c.rcv_nxt(), "zero length\n",
                 options({1, 1, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
  c.send_mangled(tf::kAck | tf::kPsh, c.snd_nxt(), c.rcv_nxt(), "mss of 3\n",
                 options({2, 3, 5, 1, 1, 1, 1, 1, 1, 1, 1, 1}));
  c.send_mangled(tf::kAck | tf::kPsh, c.snd_nxt(), c.rcv_nxt(), "past the end\n",
                 options({1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 8, 10}));
  c.request("after\n");
  c.close();
}

// Sequence and acknowledgement numbers outside the window (RFC 9293 3.10.7.4, RFC 5961 5):
// data far past the window and data wholly before it are not taken (an ACK answers), an
// ACK of bytes never sent is dropped with an ACK; and a bare ACK for no connection gets a RST.
void outside_window(Target& t, xtcp::PcapWriter& w) {
  Client c(t, w, 40004, 400'000);
  c.connect();
  c.request("before\n");
  c.send_mangled(tf::kAck | tf::kPsh, c.snd_nxt() + 1'000'000, c.rcv_nxt(), "far ahead\n",
                 [](std::vector<std::byte>&) {});
  c.send_mangled(tf::kAck | tf::kPsh, c.snd_nxt() - 200, c.rcv_nxt(), "long ago\n", [](std::vector<std::byte>&) {});
  c.send_mangled(tf::kAck | tf::kPsh, c.snd_nxt(), c.server_high() + 5000, "acks the future\n",
                 [](std::vector<std::byte>&) {});
  c.request("after\n");
  c.close();
  Client stray(t, w, 40005, 500'000);
  stray.send_mangled(tf::kAck, 500'001, 12345, "", [](std::vector<std::byte>&) {});
}

// RST and SYN attacks (RFC 5961 3 and 4): a RST inside the window but not at rcv_nxt and a
// SYN on an established connection get a challenge ACK and change nothing; a RST outside
// the window is ignored; the connection goes on, and a RST exactly at rcv_nxt ends it.
void rst_syn_attacks(Target& t, xtcp::PcapWriter& w) {
  Client c(t, w, 40006, 600'000);
  c.connect();
  c.request("before\n");
  c.send_mangled(tf::kRst, c.snd_nxt() + 100, 0, "", [](std::vector<std::byte>&) {});
  c.send_mangled(tf::kRst, c.snd_nxt() + 5'000'000, 0, "", [](std::vector<std::byte>&) {});
  c.send_mangled(tf::kSyn, c.snd_nxt() + 7, 0, "", [](std::vector<std::byte>&) {});
  c.request("still here\n");
  c.send_mangled(tf::kRst | tf::kAck, c.snd_nxt(), c.rcv_nxt(), "", [](std::vector<std::byte>&) {});
  c.settle(xtcp::ms(100));
}

// Out of order, duplicated and overlapping data (RFC 9293 3.10.7.4, RFC 2018): the later
// half of a request first (queued, SACKed), then the first half; a segment again; one that
// overlaps what came and carries new bytes past it. The echo is the bytes once, in order.
void reordered(Target& t, xtcp::PcapWriter& w) {
  Client c(t, w, 40007, 700'000);
  c.connect();
  const std::uint32_t base = c.snd_nxt();
  const std::uint32_t ack = c.rcv_nxt();
  auto plain = [](std::vector<std::byte>&) {};
  c.send_mangled(tf::kAck | tf::kPsh, base + 8, ack, "second half\n", plain);
  c.send_mangled(tf::kAck, base, ack, "first h\n", plain);
  c.send_mangled(tf::kAck, base, c.rcv_nxt(), "first h\n", plain);
  c.send_mangled(tf::kAck | tf::kPsh, base + 8, c.rcv_nxt(), "second half\nand more\n", plain);
  c.send_mangled(tf::kAck, base + 29, c.rcv_nxt(), "", plain);
  c.close_at(base + 29);
}

struct Suite {
  const char* name;
  void (*script)(Target&, xtcp::PcapWriter&);
};

}  // namespace

int main(int argc, char** argv) {
  std::string out_dir;
  cli::Flags flags("xtcp-replay-craft", "--out DIR",
                   "Writes the crafted adversarial captures of pcaps/adversarial/ (each a scripted client "
                   "sending one class of malformed or hostile input to xtcp-echo's logic, in process, in "
                   "virtual time) into DIR.");
  flags.library_version(xtcp_version());
  flags.text("--out", "DIR", "the folder to write the .pcap files to", &out_dir).required();
  flags.parse(argc, argv);
  const Suite suites[] = {
      {"bad-checksums", bad_checksums}, {"bad-headers", bad_headers},         {"bad-options", bad_options},
      {"outside-window", outside_window}, {"rst-syn-attacks", rst_syn_attacks}, {"reordered", reordered},
  };
  for (const Suite& s : suites) {
    const std::string path = out_dir + "/" + s.name + ".pcap";
    std::string error;
    auto writer = xtcp::PcapWriter::open(path, xtcp::kPcapLinkTypeRaw, xtcp::kPcapSnapLen, &error);
    if (!writer) {
      std::fprintf(stderr, "xtcp-replay-craft: %s\n", error.c_str());
      return cli::kExitFailure;
    }
    InProcessOptions o;
    o.service = Service::kEcho;
    o.server = Endpoint{kServerAddr, kEchoPort};
    auto target = make_in_process_target(o, &error);
    if (!target) {
      std::fprintf(stderr, "xtcp-replay-craft: %s\n", error.c_str());
      return cli::kExitFailure;
    }
    s.script(*target, *writer);
    const std::string counters = target->server_counters();
    target.reset();
    writer.reset();
    std::printf("%s:\n%s", path.c_str(), counters.c_str());
  }
  return cli::kExitOk;
}
