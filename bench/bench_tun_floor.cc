// The raw TUN floor: how many packets per second the device path itself carries on this
// machine, with no TCP at either end. The path is the one xtcp-loadgen and an xtcp server
// use in a namespace: a packet written into one TUN device, routed by the kernel (IPv4
// forwarding), read from a second TUN device.
//
//   writer thread --write--> TUN xtf0 [kernel 198.18.4.1/24] --forward--> TUN xtf1
//   [kernel 198.18.5.1/24] --read--> reader thread          (one namespace of its own)
//
// Packets are small IPv4/UDP datagrams 198.18.4.2 -> 198.18.5.2 (UDP checksum 0, a magic
// and a sequence number in the payload). Two measurements, each bounded by --duration:
//   one way:   one thread writes into xtf0 as fast as it can (at most --window packets
//              written and not yet read), another reads from xtf1; packets/s = packets read
//              / time from the first write to the last read;
//   ping-pong: one thread writes a packet into xtf0, waits for it on xtf1, writes the
//              answer (the other way) into xtf1 and waits for it on xtf0: round trips/s.
// --io picks how the two devices are driven: rw (TunLink: one read(2) or write(2) per packet)
// or uring (UringTunLink: reads kept armed in an io_uring, one multishot read or queued
// reads as --uring-recv says, writes submitted in batches;
// ping-pong answers from inside the receive handler, as the engine does, so with uring the
// answer rides on the io_uring_enter that re-arms the reads). Both modes count the system
// calls of their loops: the link's own (read/write, or io_uring_enter) and the poll(2) and
// sched_yield(2) calls of the benchmark loops around it.
// Needs root; the namespace (198.18.0.0/15 addresses only) is deleted on every way out:
// normal end, failure, SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT (their handlers set a flag,
// the loops end, exit status 128 + the signal's number). After a SIGKILL the next run (or
// any namespace test) removes the namespace left behind.
//
//   bench_tun_floor [--duration DURATION] [--payload SIZE] [--window N] [--txqueuelen N]
//                   [--mode both|oneway|pingpong] [--io rw|uring] [--uring-rx N] [--uring-tx N]
//                   [--uring-batch N] [--uring-recv multishot|queued] [--json FILE]
#include <arpa/inet.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "stack/netif/tun_link.h"
#include "stack/netif/uring_tun_link.h"
#include "tests/support/netns.h"
#include "tools/cli/cli.h"

namespace xtcp::bench {
namespace {

namespace cli = xtcp::cli;
using Clock = std::chrono::steady_clock;

constexpr const char* kDevIn = "xtf0";   // the writer's side
constexpr const char* kDevOut = "xtf1";  // the reader's side
constexpr std::uint32_t kKernelIn = 0xC6120401;   // 198.18.4.1/24 on xtf0
constexpr std::uint32_t kKernelOut = 0xC6120501;  // 198.18.5.1/24 on xtf1
constexpr std::uint32_t kHostIn = 0xC6120402;     // 198.18.4.2: "behind" xtf0
constexpr std::uint32_t kHostOut = 0xC6120502;    // 198.18.5.2: "behind" xtf1
constexpr std::uint16_t kPort = 9;                // discard: nobody answers UDP here anyway
constexpr std::uint32_t kMagic = 0x78746670;      // "xtfp"
constexpr std::size_t kHeaders = 28;              // IPv4 (20) + UDP (8)

bool stopping() { return cli::stop_requested(); }

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double thread_cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_THREAD, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string l;
  std::getline(in, l);
  return l;
}

void put16(std::byte* p, std::uint16_t v) {
  p[0] = static_cast<std::byte>(v >> 8);
  p[1] = static_cast<std::byte>(v & 0xff);
}
void put32(std::byte* p, std::uint32_t v) {
  put16(p, static_cast<std::uint16_t>(v >> 16));
  put16(p + 2, static_cast<std::uint16_t>(v & 0xffff));
}
std::uint32_t get32(const std::byte* p) {
  return (std::to_integer<std::uint32_t>(p[0]) << 24) | (std::to_integer<std::uint32_t>(p[1]) << 16) |
         (std::to_integer<std::uint32_t>(p[2]) << 8) | std::to_integer<std::uint32_t>(p[3]);
}

// An IPv4/UDP datagram src -> dst with payload bytes (at least 8: magic, sequence number).
class Packet {
 public:
  Packet(std::uint32_t src, std::uint32_t dst, std::size_t payload) : bytes_(kHeaders + payload) {
    std::byte* ip = bytes_.data();
    ip[0] = std::byte{0x45};
    put16(ip + 2, static_cast<std::uint16_t>(bytes_.size()));
    put16(ip + 6, 0x4000);  // DF
    ip[8] = std::byte{64};  // TTL
    ip[9] = std::byte{17};  // UDP
    put32(ip + 12, src);
    put32(ip + 16, dst);
    std::byte* udp = ip + 20;
    put16(udp, kPort);
    put16(udp + 2, kPort);
    put16(udp + 4, static_cast<std::uint16_t>(8 + payload));
    // UDP checksum 0: none (allowed over IPv4); the forwarding kernel does not look at it.
    put32(udp + 8, kMagic);
    for (std::size_t i = 16; i < payload + 8; ++i) {
      udp[i] = static_cast<std::byte>(i);
    }
    set_sequence(0);
  }
  // The sequence number sits in the payload and in the IPv4 identification field, so the
  // header checksum changes with it (recomputed: the kernel checks it).
  void set_sequence(std::uint32_t seq) {
    std::byte* ip = bytes_.data();
    put16(ip + 4, static_cast<std::uint16_t>(seq));
    put32(ip + 32, seq);
    put16(ip + 10, 0);
    std::uint32_t sum = 0;
    for (int i = 0; i < 20; i += 2) {
      sum += (std::to_integer<std::uint32_t>(ip[i]) << 8) | std::to_integer<std::uint32_t>(ip[i + 1]);
    }
    while (sum >> 16) {
      sum = (sum & 0xffff) + (sum >> 16);
    }
    put16(ip + 10, static_cast<std::uint16_t>(~sum & 0xffff));
  }
  std::span<const std::byte> bytes() const { return bytes_; }

 private:
  std::vector<std::byte> bytes_;
};

// Ours, and its sequence number; false for anything else the kernel may route to us.
bool parse_ours(std::span<const std::byte> p, std::uint32_t dst, std::uint32_t* seq) {
  if (p.size() < kHeaders + 8 || p[0] != std::byte{0x45} || p[9] != std::byte{17} || get32(p.data() + 16) != dst ||
      get32(p.data() + 28) != kMagic) {
    return false;
  }
  *seq = get32(p.data() + 32);
  return true;
}

// tx_dropped of a device (/proc/net/dev of the calling thread's namespace): packets the
// kernel could not queue toward the reading process.
std::uint64_t tx_dropped(const NetNs& ns, const std::string& dev) {
  std::uint64_t drops = 0;
  ns.run_in_thread([&] {
    std::ifstream in("/proc/thread-self/net/dev");
    std::string line;
    while (std::getline(in, line)) {
      const auto colon = line.find(':');
      if (colon == std::string::npos) {
        continue;
      }
      std::string name = line.substr(0, colon);
      name.erase(0, name.find_first_not_of(' '));
      if (name != dev) {
        continue;
      }
      unsigned long long v[12] = {};
      if (std::sscanf(line.c_str() + colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
                      &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10],
                      &v[11]) == 12) {
        drops = v[11];
      }
    }
  });
  return drops;
}

struct IoConfig {
  bool uring = false;
  UringTunOptions uring_options;
};

// One device, driven by either link, with the system calls its loops made.
class Dev {
 public:
  explicit Dev(std::unique_ptr<TunLink> l) : rw_(std::move(l)), link_(rw_.get()) {}
  explicit Dev(std::unique_ptr<UringTunLink> l) : uring_(std::move(l)), link_(uring_.get()) {}

  int send(std::span<const std::byte> p) { return link_->send(p); }
  // Submits queued sends (uring); nothing to do for read/write.
  void flush() {
    if (uring_) {
      uring_->flush();
    }
  }
  int receive_batch(int max, PacketHandler h) {
    const int n = link_->receive_batch(max, h);
    if (!uring_) {
      // TunLink reads until max packets or one read(2) that finds nothing (EAGAIN).
      reads_ += static_cast<std::uint64_t>(std::max(n, 0)) + (n < max ? 1 : 0);
    }
    return n;
  }
  // poll(2) on the link's descriptor, unless the link has something due already.
  void wait(int timeout_ms) {
    if (link_->next_event_time() != kNever) {
      return;
    }
    pollfd pfd{link_->poll_fd(), POLLIN, 0};
    ++polls_;
    ::poll(&pfd, 1, timeout_ms);
  }
  void yield() {
    ++yields_;
    std::this_thread::yield();
  }
  // System calls of the link itself: read(2)/write(2), or io_uring_enter.
  std::uint64_t io_syscalls() const {
    if (uring_) {
      return uring_->counters().syscalls;
    }
    const TunCounters& c = rw_->counters();
    return reads_ + c.packets_out + c.send_drops + c.send_errors;
  }
  std::uint64_t loop_syscalls() const { return polls_ + yields_; }
  std::uint64_t polls() const { return polls_; }
  std::uint64_t yields() const { return yields_; }
  const UringTunLink* uring() const { return uring_.get(); }

 private:
  std::unique_ptr<TunLink> rw_;
  std::unique_ptr<UringTunLink> uring_;
  Link* link_;
  std::uint64_t reads_ = 0;
  std::uint64_t polls_ = 0;
  std::uint64_t yields_ = 0;
};

struct Devices {
  std::unique_ptr<Dev> in;   // the writer's device (xtf0)
  std::unique_ptr<Dev> out;  // the reader's device (xtf1)
};

// System calls made by the links and the loops, and the io_uring batches, so far.
struct SyscallCount {
  std::uint64_t io = 0, loop = 0, polls = 0, yields = 0, rx_batches = 0, tx_batches = 0;
};
SyscallCount count_syscalls(const Devices& d) {
  SyscallCount c;
  for (const Dev* dev : {d.in.get(), d.out.get()}) {
    c.io += dev->io_syscalls();
    c.loop += dev->loop_syscalls();
    c.polls += dev->polls();
    c.yields += dev->yields();
    if (dev->uring() != nullptr) {
      c.rx_batches += dev->uring()->counters().rx_batches;
      c.tx_batches += dev->uring()->counters().tx_batches;
    }
  }
  return c;
}
SyscallCount operator-(const SyscallCount& a, const SyscallCount& b) {
  return {a.io - b.io, a.loop - b.loop, a.polls - b.polls, a.yields - b.yields, a.rx_batches - b.rx_batches,
          a.tx_batches - b.tx_batches};
}

bool open_devices(const NetNs& ns, std::uint32_t qlen, const IoConfig& io, Devices* d, std::string* error) {
  const CommandResult fwd = ns.run("sysctl -qw net.ipv4.ip_forward=1");
  if (fwd.exit_code != 0) {
    *error = "sysctl net.ipv4.ip_forward=1: " + fwd.output;
    return false;
  }
  std::string err;
  const int rc = ns.run_in_thread(
      [&] {
        auto open = [&](const char* name, std::uint32_t addr, std::unique_ptr<Dev>* out) {
          TunOptions o;
          o.name = name;
          o.tx_queue_len = qlen;
          if (io.uring) {
            UringTunOptions u = io.uring_options;
            u.tun = o;
            if (auto l = UringTunLink::open(u, &err)) {
              *out = std::make_unique<Dev>(std::move(l));
            }
          } else if (auto l = TunLink::open(o, &err)) {
            *out = std::make_unique<Dev>(std::move(l));
          }
          return *out && configure_kernel_side(name, addr, 24, &err) == 0;
        };
        if (!open(kDevIn, kKernelIn, &d->in) || !open(kDevOut, kKernelOut, &d->out)) {
          d->in.reset();
          d->out.reset();
        }
      },
      &err);
  if (rc < 0 || !d->in || !d->out) {
    *error = "TUN devices: " + err;
    return false;
  }
  return true;
}

// Waits up to timeout_ms for one of our packets on dev; its sequence number, or -1. When
// answer is given, it runs inside the receive handler with the sequence number (and may
// send: the engine answers from inside receive_batch too).
long long wait_packet(Dev& dev, std::uint32_t dst, int timeout_ms,
                      const std::function<void(std::uint32_t)>& answer = {}) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  long long got = -1;
  while (got < 0 && !stopping()) {
    dev.receive_batch(1, [&](std::span<const std::byte> p) {
      std::uint32_t seq = 0;
      if (parse_ours(p, dst, &seq)) {
        got = seq;
        if (answer) {
          answer(seq);
        }
      }
    });
    if (got >= 0) {
      break;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      break;
    }
    dev.wait(static_cast<int>(std::min<long long>(left, 100)));
  }
  return got;
}

struct OneWay {
  std::uint64_t sent = 0, received = 0, write_refused = 0, queue_drops = 0;
  double seconds = 0, pps = 0, writer_cpu_us = 0, reader_cpu_us = 0;  // CPU per packet
  SyscallCount calls;
};

OneWay one_way(const NetNs& ns, Devices& d, std::size_t payload, std::uint64_t window, double duration_s) {
  OneWay r;
  const std::uint64_t drops0 = tx_dropped(ns, kDevOut);
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> sent{0};
  std::atomic<bool> writer_done{false};
  Clock::time_point last_read{};
  double reader_cpu = 0;
  const SyscallCount calls0 = count_syscalls(d);
  std::thread reader([&] {
    const double cpu0 = thread_cpu_seconds();
    Clock::time_point done_at{};
    for (;;) {
      const int n = d.out->receive_batch(256, [&](std::span<const std::byte> p) {
        std::uint32_t seq = 0;
        if (parse_ours(p, kHostOut, &seq)) {
          received.fetch_add(1, std::memory_order_release);
          last_read = Clock::now();
        }
      });
      if (writer_done.load(std::memory_order_acquire)) {
        if (received.load() >= sent.load()) {
          break;
        }
        if (done_at == Clock::time_point{}) {
          done_at = Clock::now();
        } else if (Clock::now() - done_at > std::chrono::milliseconds(500)) {
          break;  // the rest was dropped on the way
        }
      }
      if (n <= 0) {
        d.out->wait(10);
      }
    }
    reader_cpu = thread_cpu_seconds() - cpu0;
  });
  Packet pkt(kHostIn, kHostOut, payload);
  const double cpu0 = thread_cpu_seconds();
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration_s));
  std::uint64_t seq = 0;
  // Bounded by the deadline (checked every 64 packets) and by the stop signals.
  while (!stopping()) {
    if ((seq & 63) == 0 && Clock::now() >= deadline) {
      break;
    }
    if (window > 0 && seq - received.load(std::memory_order_acquire) >= window) {
      d.in->flush();  // uring: what is queued must go before we wait for the reader
      d.in->yield();
      if (Clock::now() >= deadline) {
        break;
      }
      continue;
    }
    pkt.set_sequence(static_cast<std::uint32_t>(seq));
    if (d.in->send(pkt.bytes()) < 0) {
      ++r.write_refused;
    }
    ++seq;
    sent.store(seq, std::memory_order_release);
  }
  d.in->flush();
  const double writer_cpu = thread_cpu_seconds() - cpu0;
  writer_done.store(true, std::memory_order_release);
  reader.join();
  r.calls = count_syscalls(d) - calls0;
  r.sent = seq;
  r.received = received.load();
  r.queue_drops = tx_dropped(ns, kDevOut) - drops0;
  r.seconds = r.received > 0 ? seconds_between(start, last_read) : 0;
  r.pps = r.seconds > 0 ? static_cast<double>(r.received) / r.seconds : 0;
  r.writer_cpu_us = r.sent > 0 ? writer_cpu * 1e6 / static_cast<double>(r.sent) : 0;
  r.reader_cpu_us = r.received > 0 ? reader_cpu * 1e6 / static_cast<double>(r.received) : 0;
  return r;
}

struct PingPong {
  std::uint64_t round_trips = 0, lost = 0;
  double seconds = 0, per_s = 0, mean_rtt_us = 0, cpu_us = 0;  // CPU per round trip
  SyscallCount calls;
};

PingPong ping_pong(Devices& d, std::size_t payload, double duration_s) {
  PingPong r;
  Packet there(kHostIn, kHostOut, payload);
  Packet back(kHostOut, kHostIn, payload);
  const double cpu0 = thread_cpu_seconds();
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration_s));
  const SyscallCount calls0 = count_syscalls(d);
  std::uint32_t seq = 1;
  // One packet in flight at a time; bounded by the deadline and the stop signals. Each
  // packet is answered from inside the handler that received it (the answer back from
  // xtf1's handler, the next packet there from xtf0's). A packet that does not come back
  // within a second counts as lost and the next one goes from outside a handler.
  bool need_kick = true;
  auto send_there = [&](std::uint32_t s) {
    there.set_sequence(s);
    d.in->send(there.bytes());
  };
  while (!stopping() && Clock::now() < deadline) {
    if (need_kick) {
      send_there(seq);
      d.in->flush();
      need_kick = false;
    }
    if (wait_packet(*d.out, kHostOut, 1000, [&](std::uint32_t s) {
          back.set_sequence(s);
          d.out->send(back.bytes());
        }) != seq) {
      ++r.lost;
      ++seq;
      need_kick = true;
      continue;
    }
    const bool last = stopping() || Clock::now() >= deadline;
    if (wait_packet(*d.in, kHostIn, 1000, [&](std::uint32_t) {
          if (!last) {
            send_there(seq + 1);
          }
        }) != seq) {
      ++r.lost;
      ++seq;
      need_kick = true;
      continue;
    }
    ++r.round_trips;
    ++seq;
    need_kick = last;
  }
  r.calls = count_syscalls(d) - calls0;
  r.seconds = seconds_between(start, Clock::now());
  const double cpu = thread_cpu_seconds() - cpu0;
  r.per_s = r.seconds > 0 ? static_cast<double>(r.round_trips) / r.seconds : 0;
  r.mean_rtt_us = r.round_trips > 0 ? r.seconds * 1e6 / static_cast<double>(r.round_trips) : 0;
  r.cpu_us = r.round_trips > 0 ? cpu * 1e6 / static_cast<double>(r.round_trips) : 0;
  return r;
}

int run(int argc, char** argv) {
  cli::Micros duration{3'000'000};
  std::uint64_t payload = 32;
  std::uint64_t window = 1024;
  std::uint64_t qlen = 10'000;
  std::string mode = "both";
  std::string json;
  IoConfig io;
  std::uint64_t uring_rx = io.uring_options.rx_slots;
  std::uint64_t uring_tx = io.uring_options.tx_slots;
  std::uint64_t uring_batch = io.uring_options.tx_batch;
  cli::Flags flags("bench_tun_floor", "[OPTION]...",
                   "The raw TUN floor: packets per second through the device path alone, no TCP at either end. "
                   "In a network namespace of its own (198.18.4.0/24 and 198.18.5.0/24), one thread writes small "
                   "IPv4/UDP packets into TUN device xtf0, the kernel forwards them to TUN device xtf1, another "
                   "thread reads them there (one way); then one thread bounces one packet at a time through both "
                   "directions (ping-pong). This is the path xtcp-loadgen's packets take to an xtcp server behind "
                   "its own TUN device. Needs root; the namespace is deleted on every way out.");
  flags.duration("--duration", "how long each measurement sends; a plain number is seconds", &duration,
                 cli::Micros(100'000), cli::Micros(60'000'000), cli::Micros(1'000'000));
  flags.size("--payload", "UDP payload bytes per packet (28 bytes of IPv4 and UDP headers come on top)", &payload, 8,
             1400);
  flags.number("--window", "N", "one way: packets written and not yet read at most (0: no limit; the writer then "
               "outruns the reader and the kernel drops at xtf1's queue)", &window, 0, 1'000'000);
  flags.number("--txqueuelen", "N", "transmit queue of both TUN devices, packets (xtcp servers use 10000)", &qlen,
               1, 1'000'000);
  flags.custom("--mode", "MODE", "both, oneway or pingpong", "both", [&](const std::string& v) {
    if (v != "both" && v != "oneway" && v != "pingpong") {
      return "'" + v + "' is not both, oneway or pingpong";
    }
    mode = v;
    return std::string();
  });
  flags.custom("--io", "IO", "how the devices are driven: rw (one read(2)/write(2) per packet) or uring "
               "(io_uring: reads kept armed, batched writes)", "rw", [&](const std::string& v) {
    if (v != "rw" && v != "uring") {
      return "'" + v + "' is not rw or uring";
    }
    io.uring = v == "uring";
    return std::string();
  });
  flags.number("--uring-rx", "N", "uring: receive buffers per device (queued reads: one read request each)", &uring_rx, 1, 4096);
  flags.number("--uring-tx", "N", "uring: send buffers per device", &uring_tx, 1, 4096);
  flags.number("--uring-batch", "N", "uring: queued sends that submit themselves (0: only at flush and receive)",
               &uring_batch, 0, 4096);
  flags.custom("--uring-recv", "HOW", "uring: receive with one multishot read over --uring-rx provided buffers "
               "(Linux 6.7+, else queued reads) or with --uring-rx queued reads", "multishot",
               [&](const std::string& v) {
                 if (v != "multishot" && v != "queued") {
                   return "'" + v + "' is not multishot or queued";
                 }
                 io.uring_options.rx_multishot = v == "multishot";
                 return std::string();
               });
  flags.text("--json", "FILE", "also write the results as one JSON object there ('-': standard output, instead of "
             "the text)", &json);
  flags.epilog("Signals: SIGINT, SIGTERM, SIGHUP, SIGPIPE and SIGQUIT stop the run: the namespace is deleted, the "
               "results so far printed, and the exit status is 128 + the signal's number. After a SIGKILL the next "
               "run removes the namespace left behind.\n");
  flags.epilog("Exit status: 0 done, 1 the set-up failed (not root, no TUN, no namespaces) or no packet came "
               "through, 2 a bad, unknown or missing flag, 128+N stopped by signal N.\n");
  flags.parse(argc, argv);
  io.uring_options.rx_slots = static_cast<std::uint32_t>(uring_rx);
  io.uring_options.tx_slots = static_cast<std::uint32_t>(uring_tx);
  io.uring_options.tx_batch = static_cast<std::uint32_t>(std::min(uring_batch, uring_tx));
  if (io.uring) {
    std::string why;
    if (!UringTunLink::available(&why)) {
      std::fprintf(stderr, "bench_tun_floor: --io uring: %s\n", why.c_str());
      return cli::kExitFailure;
    }
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "bench_tun_floor must run as root (it creates a network namespace and TUN devices)\n");
    return cli::kExitFailure;
  }
  if (auto why = netns_unavailable_reason()) {
    std::fprintf(stderr, "bench_tun_floor cannot run here: %s\n", why->c_str());
    return cli::kExitFailure;
  }
  // Installed before the namespace exists: from here on every way out deletes it.
  cli::on_stop_signals({SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT});
  const std::string load_start = loadavg();
  std::string error;
  auto ns = NetNs::create(&error);
  if (!ns) {
    std::fprintf(stderr, "bench_tun_floor: namespace: %s\n", error.c_str());
    return cli::kExitFailure;
  }
  OneWay ow;
  PingPong pp;
  int rc = 0;
  bool multishot_used = false;
  {
    Devices d;
    if (!open_devices(*ns, static_cast<std::uint32_t>(qlen), io, &d, &error)) {
      std::fprintf(stderr, "bench_tun_floor: %s\n", error.c_str());
      return cli::kExitFailure;
    }
    // Does the path work at all? One packet through, within two seconds (routes settle).
    Packet probe(kHostIn, kHostOut, payload);
    probe.set_sequence(0xfffffff0u);
    d.in->send(probe.bytes());
    d.in->flush();
    if (wait_packet(*d.out, kHostOut, 2000) < 0 && !stopping()) {
      std::fprintf(stderr, "bench_tun_floor: a packet written into %s did not come out of %s (forwarding?)\n",
                   kDevIn, kDevOut);
      return cli::kExitFailure;
    }
    multishot_used = d.in->uring() != nullptr && d.in->uring()->multishot();
    const double secs = static_cast<double>(duration.count()) / 1e6;
    if ((mode == "both" || mode == "oneway") && !stopping()) {
      ow = one_way(*ns, d, payload, window, secs);
    }
    if ((mode == "both" || mode == "pingpong") && !stopping()) {
      pp = ping_pong(d, payload, secs);
    }
  }  // the TUN devices close before the namespace goes
  ns.reset();
  const std::string load_end = loadavg();
  if (stopping()) {
    std::fprintf(stderr, "bench_tun_floor: stopped by signal %d: namespace deleted\n", cli::stop_signal());
    rc = 128 + cli::stop_signal();
  } else if ((mode != "pingpong" && ow.received == 0) || (mode != "oneway" && pp.round_trips == 0)) {
    rc = cli::kExitFailure;
  }
  const std::size_t bytes = payload + kHeaders;
  auto per = [](std::uint64_t n, std::uint64_t d) { return d > 0 ? static_cast<double>(n) / static_cast<double>(d) : 0.0; };
  const double ow_io = per(ow.calls.io, ow.received), ow_poll = per(ow.calls.polls, ow.received),
               ow_yield = per(ow.calls.yields, ow.received);
  const double pp_io = per(pp.calls.io, pp.round_trips), pp_poll = per(pp.calls.polls, pp.round_trips);
  const std::string io_name = !io.uring ? "rw" : multishot_used ? "uring-multishot" : "uring-queued";
  char j[4096];
  std::snprintf(j, sizeof j,
                "{\"tool\": \"bench_tun_floor\", \"io\": \"%s\", \"uring_rx_slots\": %u, \"uring_tx_slots\": %u, "
                "\"uring_tx_batch\": %u, \"packet_bytes\": %zu, \"duration_s\": %.3f, \"window\": %llu, "
                "\"txqueuelen\": %llu, \"oneway\": {\"packets_per_s\": %.0f, \"sent\": %llu, \"received\": %llu, "
                "\"seconds\": %.3f, \"write_refused\": %llu, \"queue_drops\": %llu, \"writer_cpu_us_per_packet\": %.3f, "
                "\"reader_cpu_us_per_packet\": %.3f, \"io_syscalls_per_packet\": %.3f, \"poll_per_packet\": %.3f, "
                "\"yield_per_packet\": %.3f, \"uring_rx_batches\": %llu, \"uring_tx_batches\": %llu}, "
                "\"pingpong\": {\"round_trips_per_s\": %.0f, \"packets_per_s\": "
                "%.0f, \"round_trips\": %llu, \"lost\": %llu, \"mean_rtt_us\": %.2f, \"cpu_us_per_round_trip\": %.3f, "
                "\"io_syscalls_per_round_trip\": %.3f, \"poll_per_round_trip\": %.3f}, "
                "\"loadavg_start\": \"%s\", \"loadavg_end\": \"%s\", \"ok\": %s}\n",
                io_name.c_str(), io.uring_options.rx_slots, io.uring_options.tx_slots, io.uring_options.tx_batch,
                bytes, static_cast<double>(duration.count()) / 1e6, static_cast<unsigned long long>(window),
                static_cast<unsigned long long>(qlen), ow.pps, static_cast<unsigned long long>(ow.sent),
                static_cast<unsigned long long>(ow.received), ow.seconds,
                static_cast<unsigned long long>(ow.write_refused), static_cast<unsigned long long>(ow.queue_drops),
                ow.writer_cpu_us, ow.reader_cpu_us, ow_io, ow_poll, ow_yield,
                static_cast<unsigned long long>(ow.calls.rx_batches), static_cast<unsigned long long>(ow.calls.tx_batches),
                pp.per_s, 2 * pp.per_s,
                static_cast<unsigned long long>(pp.round_trips), static_cast<unsigned long long>(pp.lost),
                pp.mean_rtt_us, pp.cpu_us, pp_io, pp_poll, load_start.c_str(), load_end.c_str(), rc == 0 ? "true" : "false");
  if (json == "-") {
    std::fputs(j, stdout);
    return rc;
  }
  if (!json.empty()) {
    std::ofstream out(json);
    out << j;
    if (!out) {
      std::fprintf(stderr, "bench_tun_floor: cannot write %s\n", json.c_str());
      rc = rc == 0 ? cli::kExitFailure : rc;
    }
  }
  std::printf("# bench_tun_floor: TUN %s -> kernel IPv4 forwarding -> TUN %s, one namespace, %zu-byte IPv4/UDP "
              "packets, %.1f s per measurement, txqueuelen %llu\n",
              kDevIn, kDevOut, bytes, static_cast<double>(duration.count()) / 1e6,
              static_cast<unsigned long long>(qlen));
  if (io.uring) {
    std::printf("io: uring (io_uring: %s over %u receive buffers per device, %u send buffers, sends submitted %u at "
                "a time or at flush/receive)\n",
                multishot_used ? "one multishot read" : "queued reads", io.uring_options.rx_slots,
                io.uring_options.tx_slots, io.uring_options.tx_batch);
  } else {
    std::printf("io: rw (one read(2) or write(2) per packet)\n");
  }
  std::printf("load average at start: %s\n", load_start.c_str());
  if (mode != "pingpong") {
    std::printf("one way:   %.0f packets/s (window %llu: sent %llu, read %llu in %.2f s; %llu dropped at %s's "
                "queue, %llu writes refused); CPU per packet: writer %.2f us (includes the kernel's forwarding), "
                "reader %.2f us\n",
                ow.pps, static_cast<unsigned long long>(window), static_cast<unsigned long long>(ow.sent),
                static_cast<unsigned long long>(ow.received), ow.seconds,
                static_cast<unsigned long long>(ow.queue_drops), kDevOut,
                static_cast<unsigned long long>(ow.write_refused), ow.writer_cpu_us, ow.reader_cpu_us);
    std::printf("           system calls per packet: %.3f link I/O (%s), %.3f poll, %.3f sched_yield",
                ow_io, io.uring ? "io_uring_enter" : "read+write", ow_poll, ow_yield);
    if (io.uring) {
      std::printf("; %.1f packets per receive batch, %.1f per submitted write batch",
                  per(ow.received, ow.calls.rx_batches), per(ow.sent, ow.calls.tx_batches));
    }
    std::printf("\n");
  }
  if (mode != "oneway") {
    std::printf("ping-pong: %.0f round trips/s (%.0f packets/s, one in flight), mean round trip %.1f us, CPU %.2f us "
                "per round trip, %llu lost\n",
                pp.per_s, 2 * pp.per_s, pp.mean_rtt_us, pp.cpu_us, static_cast<unsigned long long>(pp.lost));
    std::printf("           system calls per round trip: %.3f link I/O (%s), %.3f poll\n", pp_io,
                io.uring ? "io_uring_enter" : "read+write", pp_poll);
  }
  std::printf("load average at end: %s\n", load_end.c_str());
  return rc;
}

}  // namespace
}  // namespace xtcp::bench

int main(int argc, char** argv) { return xtcp::bench::run(argc, argv); }
