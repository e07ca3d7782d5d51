// xtcp-loadgen: drives many TCP connections against a server and checks every answer.
//   xtcp-loadgen --target ADDR:PORT [--workload echo|im|connect-only|burst] [--connections N]
//                [--tun NAME [--io rw|uring] | --shm NAME | --in-process echo|im] [OPTION]...
// Through a TUN device of its own (the kernel routes between it and the server), through a
// shared-memory link an xtcp server created (xtcp-echo/xtcp-im --shm NAME), or in process
// to an xtcp server over an in-memory link. Prints progress, then a JSON summary;
// exits 1 on any error, lost or duplicated message.
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "stack/netif/mem_link.h"
#include "stack/netif/shm_link.h"
#include "stack/netif/tun_link.h"
#include "stack/netif/uring_tun_link.h"
#include "stack/wire/ipv4.h"
#include "tools/cli/cli.h"
#include "tools/loadgen/inprocess.h"
#include "tools/loadgen/loadgen.h"
#include "tools/loadgen/report.h"

namespace {

constexpr std::uint32_t kImMaxText = 1000;

using namespace xtcp;           // NOLINT
using namespace xtcp::loadgen;  // NOLINT

struct Args {
  std::string workload = "echo";
  std::uint64_t connections = 1000;
  std::uint64_t ramp = 10'000;
  std::uint64_t message_size = 64;
  cli::Micros interval{1'000'000};
  cli::Micros duration{10'000'000};
  cli::Micros drain{10'000'000};
  cli::Micros lifetime{0};
  bool server_closes = false;
  std::uint64_t bursts = 1;
  std::uint64_t seed = 1;
  std::string src = "198.18.128.0/17";
  std::string target;
  std::string tun = "xtcpl0";
  bool tun_given = false;
  std::string shm;
  std::uint64_t tx_queue = 20'000;
  bool uring = false;  // --io uring
  std::string in_process;
  std::string json;
  cli::Micros progress{1'000'000};
  std::uint64_t target_pid = 0;
  bool soak = false;
  std::uint64_t rx_pool = 256u << 20;
  std::uint64_t tx_cache = 256u << 20;
};

bool parse_target(const std::string& s, std::uint32_t* addr, std::uint16_t* port) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos) {
    return false;
  }
  char* end = nullptr;
  const unsigned long p = std::strtoul(s.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || p == 0 || p > 65535) {
    return false;
  }
  *port = static_cast<std::uint16_t>(p);
  return wire::parse_ipv4(s.substr(0, colon), addr);
}

bool parse_range(const std::string& s, std::uint32_t* addr, std::uint32_t* count) {
  const auto slash = s.find('/');
  if (slash == std::string::npos) {
    return false;
  }
  char* end = nullptr;
  const unsigned long prefix = std::strtoul(s.c_str() + slash + 1, &end, 10);
  if (*end != '\0' || prefix < 8 || prefix > 30) {
    return false;
  }
  if (!wire::parse_ipv4(s.substr(0, slash), addr)) {
    return false;
  }
  const std::uint32_t mask = ~std::uint32_t{0} << (32 - prefix);
  *addr &= mask;
  *count = ~mask + 1;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  cli::Flags f("xtcp-loadgen", "--target ADDR:PORT [OPTION]...",
               "Opens many TCP connections to a server from a whole range of source addresses, runs a "
               "workload on them and checks every answer: echo (send bytes, check the echo), im (log in as "
               "a user, then message random logged-in users; every message must arrive once and in order), "
               "connect-only (hold the connections), burst (every connection sends at the same instant). "
               "The clients are an xtcp stack in client mode, reaching the server through a TUN device of "
               "their own (the kernel routes between it and the server), with --shm a shared-memory link to an xtcp "
               "server in another process (xtcp-echo or xtcp-im --shm NAME), or, with --in-process, an xtcp "
               "server in this process over an in-memory link.");
  f.text("--target", "ADDR:PORT", "the server", &a.target).required();
  f.custom("--workload", "NAME", "echo, im, connect-only or burst", "echo", [&](const std::string& v) {
    if (v != "echo" && v != "im" && v != "connect-only" && v != "burst") {
      return std::string("expected echo, im, connect-only or burst");
    }
    a.workload = v;
    return std::string();
  });
  f.number("--connections", "N", "connections to open", &a.connections, 1, 16'000'000);
  f.number("--ramp", "RATE", "connections opened per second (0: all at once)", &a.ramp, 0, 10'000'000);
  f.size("--message-size", "bytes per message (echo: the bytes sent; im: the MSG text)", &a.message_size, 1,
         1u << 20);
  f.duration("--interval", "between two messages of one connection (burst: between bursts)", &a.interval,
             cli::Micros(1000), cli::Micros(3'600'000'000LL), cli::Micros(1'000'000));
  f.duration("--duration", "measuring time once every connection is up", &a.duration, cli::Micros(0),
             cli::Micros(30LL * 86'400'000'000LL), cli::Micros(1'000'000));
  f.duration("--drain", "time to wait for late answers at the end", &a.drain, cli::Micros(0),
             cli::Micros(3'600'000'000LL), cli::Micros(1'000'000));
  f.duration("--lifetime", "churn: mean lifetime of a connection (exponential); it then closes and reopens. 0: none",
             &a.lifetime, cli::Micros(0), cli::Micros(30LL * 86'400'000'000LL), cli::Micros(1'000'000));
  f.toggle("--server-closes", "churn: the server closes first (im: QUIT), so TIME-WAIT is the server's",
           &a.server_closes);
  f.number("--bursts", "N", "burst: how many bursts", &a.bursts, 1, 1'000'000);
  f.number("--seed", "N", "random seed (targets, phases, lifetimes)", &a.seed, 0, UINT64_MAX);
  f.text("--src", "ADDR/PREFIX", "the clients' source addresses", &a.src);
  f.custom("--tun", "NAME", "the clients' TUN device (created, brought up, routed)", a.tun, [&](const std::string& v) {
    a.tun = v;
    a.tun_given = true;
    return std::string();
  });
  f.custom("--shm", "NAME", "attach to the shared-memory link /dev/shm/xtcp-NAME an xtcp server created "
           "(xtcp-echo or xtcp-im --shm NAME) instead of using a TUN device", "none", [&](const std::string& v) {
             if (v.empty() || v.size() > ShmLink::kMaxName || v.find('/') != std::string::npos) {
               return "a shared-memory link name has 1 to " + std::to_string(ShmLink::kMaxName) +
                      " characters and no '/', got '" + v + "'";
             }
             a.shm = v;
             return std::string();
           });
  f.number("--tx-queue", "N", "transmit queue of the clients' TUN device, packets", &a.tx_queue, 1, 1'000'000);
  f.custom("--io", "rw|uring",
           "how packets cross the clients' TUN device: rw, one read(2)/write(2) per packet; uring, io_uring, "
           "each turn's packets (a whole burst) handed to the kernel in one system call",
           "rw", [&](const std::string& v) {
             if (v != "rw" && v != "uring") {
               return "expected rw or uring, got '" + v + "'";
             }
             a.uring = v == "uring";
             return std::string();
           });
  f.custom("--in-process", "KIND", "echo or im: run that xtcp server in this process over an in-memory link "
           "instead of a TUN device", "", [&](const std::string& v) {
             if (v != "echo" && v != "im") {
               return std::string("expected echo or im");
             }
             a.in_process = v;
             return std::string();
           });
  f.text("--json", "FILE", "write the JSON summary there ('-': standard output, the default)", &a.json);
  f.duration("--progress", "progress line interval", &a.progress, cli::Micros(10'000), cli::Micros(3'600'000'000LL),
             cli::Micros(1'000'000));
  f.number("--target-pid", "PID", "the server's process: its memory is sampled with the progress", &a.target_pid,
           0, 4'194'304);
  f.toggle("--soak", "fail when the server's memory grows by more than 2% after the ramp (needs --target-pid)",
           &a.soak);
  f.size("--rx-pool", "the clients' shared receive buffer", &a.rx_pool, 1u << 16, 1ull << 40);
  f.size("--tx-cache", "the clients' shared transmit cache", &a.tx_cache, 1u << 16, 1ull << 40);
  f.epilog("Exit status: 0 when every connection came up and every answer was right; 1 on any error, lost, "
           "duplicated or reordered message, or a soak whose memory grew; 2 on a bad flag. The JSON summary is "
           "described in docs/loadgen.md.");
  f.parse(argc, argv);

  Options o;
  o.workload = a.workload == "im" ? Workload::kIm
               : a.workload == "connect-only" ? Workload::kConnectOnly
               : a.workload == "burst" ? Workload::kBurst
                                       : Workload::kEcho;
  o.connections = static_cast<std::uint32_t>(a.connections);
  o.ramp_per_s = static_cast<double>(a.ramp);
  o.message_size = static_cast<std::uint32_t>(a.message_size);
  o.interval = a.interval.count() * kNsPerUs;
  o.duration = a.duration.count() * kNsPerUs;
  o.drain = a.drain.count() * kNsPerUs;
  o.lifetime = a.lifetime.count() * kNsPerUs;
  o.server_closes = a.server_closes;
  o.bursts = static_cast<std::uint32_t>(a.bursts);
  o.seed = a.seed;
  o.rx_pool_size = a.rx_pool;
  o.tx_cache_size = a.tx_cache;
  if (!parse_target(a.target, &o.target_addr, &o.target_port)) {
    f.fail("--target: expected ADDR:PORT with an IPv4 address, got '" + a.target + "'");
  }
  if (!parse_range(a.src, &o.src_addr, &o.src_count)) {
    f.fail("--src: expected ADDR/PREFIX with a prefix of 8 to 30, got '" + a.src + "'");
  }
  if (o.target_addr - o.src_addr < o.src_count) {
    f.fail("--target " + a.target + " lies inside --src " + a.src);
  }
  if (a.soak && a.target_pid == 0) {
    f.fail("--soak: needs --target-pid, the process whose memory is watched");
  }
  // A MSG line is "MSG u<index>.<gen> <text>": the protocol takes lines of at most 1024 bytes.
  if (o.workload == Workload::kIm && o.message_size > kImMaxText) {
    f.fail("--message-size: an IM message text has at most " + std::to_string(kImMaxText) +
           " bytes (the protocol's request line is at most 1024 bytes, the MSG command and the name included)");
  }
  if (static_cast<int>(a.tun_given) + static_cast<int>(!a.shm.empty()) + static_cast<int>(!a.in_process.empty()) > 1) {
    f.fail("--tun, --shm and --in-process exclude each other: the clients reach the server one way");
  }
  if (a.uring && (!a.shm.empty() || !a.in_process.empty())) {
    f.fail("--io uring: only the clients' TUN device makes a system call per packet (not --shm or --in-process)");
  }
  if (o.workload == Workload::kIm && !a.in_process.empty() && a.in_process != "im") {
    f.fail("--workload im needs an IM server: --in-process im");
  }

  cli::on_stop_signals({SIGINT, SIGTERM, SIGHUP});
  cli::ignore_signal(SIGPIPE);

  SteadyClock clock;
  std::unique_ptr<TunLink> tun;
  std::unique_ptr<UringTunLink> uring;
  std::unique_ptr<ShmLink> shm;
  std::unique_ptr<MemLinkPair> pair;
  std::unique_ptr<InProcessTarget> server;
  Link* link = nullptr;
  std::string error;
  if (!a.in_process.empty()) {
    MemLinkFaults none;
    none.max_queue_packets = 1u << 22;
    pair = std::make_unique<MemLinkPair>(clock, none, none, 1500);
    server = InProcessTarget::create(a.in_process == "im" ? InProcessTarget::Kind::kIm : InProcessTarget::Kind::kEcho,
                                     pair->b(), clock, o.target_addr, o.target_port, o.connections, &error);
    if (!server) {
      std::fprintf(stderr, "xtcp-loadgen: in-process %s server: %s\n", a.in_process.c_str(), error.c_str());
      return cli::kExitFailure;
    }
    link = &pair->a();
  } else if (!a.shm.empty()) {
    // A point-to-point link: every packet goes to the server, which answers over the same
    // link whatever the source address, so the --src range needs no route anywhere.
    shm = ShmLink::attach(a.shm, &error);
    if (!shm) {
      std::fprintf(stderr, "xtcp-loadgen: shared-memory link %s: %s\n", a.shm.c_str(), error.c_str());
      return cli::kExitFailure;
    }
    link = shm.get();
  } else {
    TunOptions t;
    t.name = a.tun;
    t.tx_queue_len = static_cast<std::uint32_t>(a.tx_queue);
    const std::string* name = nullptr;
    if (a.uring) {
      UringTunOptions u;
      u.tun = t;
      uring = UringTunLink::open(u, &error);
      name = uring ? &uring->name() : nullptr;
      link = uring.get();
    } else {
      tun = TunLink::open(t, &error);
      name = tun ? &tun->name() : nullptr;
      link = tun.get();
    }
    if (name == nullptr || set_interface_up(*name, &error) < 0 ||
        add_device_route(*name, o.src_addr, 32 - std::countr_zero(o.src_count), &error) < 0) {
      std::fprintf(stderr, "xtcp-loadgen: TUN device %s: %s\n", a.tun.c_str(), error.c_str());
      return cli::kExitFailure;
    }
  }

  Loadgen gen(o, *link, clock);
  if (server) {
    gen.set_pump([&] { server->pump(); });
  }
  SummaryContext ctx;
  ctx.target = a.target;
  ctx.attach = !a.in_process.empty() ? "in-process" : !a.shm.empty() ? "shm" : "tun";
  ctx.options = o;
  ctx.target_pid = static_cast<int>(a.target_pid);
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  ProgressPrinter printer(stderr, tty, ctx.target_pid);
  const TimeNs t0 = clock.now();
  gen.set_progress(a.progress.count() * kNsPerUs, [&](const Progress& p) {
    printer.print(p);
    if (ctx.target_pid > 0) {
      ctx.memory.push_back(MemorySample{static_cast<double>(clock.now() - t0) / 1e9, process_rss(ctx.target_pid),
                                        p.established});
    }
  });
  gen.set_stop([] { return cli::stop_requested(); });
  const Results r = gen.run();
  printer.finish();
  ctx.stopped_early = cli::stop_requested();
  if (a.soak) {
    ctx.soak = judge_soak(ctx.memory, r.ramp_seconds, 0.02);
  }
  const std::string json = summary_json(r, ctx);
  if (a.json.empty() || a.json == "-") {
    std::fputs(json.c_str(), stdout);
  } else {
    std::ofstream out(a.json);
    out << json;
    if (!out) {
      std::fprintf(stderr, "xtcp-loadgen: cannot write %s: %s\n", a.json.c_str(), std::strerror(errno));
      return cli::kExitFailure;
    }
  }
  const bool ok = r.errors() == 0 && ctx.soak.ok && !ctx.stopped_early;
  std::fprintf(stderr, "xtcp-loadgen: %s: %" PRIu64 " of %u connections up, %" PRIu64 " messages answered, %" PRIu64
               " errors%s%s\n",
               ok ? "ok" : "FAILED", r.connects_ok, o.connections, r.messages_answered, r.errors(),
               a.soak ? (ctx.soak.ok ? ", memory flat" : ", memory grew") : "",
               ctx.stopped_early ? ", stopped early by a signal" : "");
  return ok ? cli::kExitOk : cli::kExitFailure;
}
