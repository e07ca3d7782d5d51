// xtcp-echo: the echo service on a TUN device.
//   xtcp-echo --tun NAME --ip ADDR [--kernel-ip ADDR/PREFIX] [--port N] [--pcap FILE]
// With --kernel-ip the kernel side of the TUN gets that address and the link comes up, so
// clients in the same network namespace reach the stack at --ip. SIGINT/SIGTERM stop it
// cleanly and print the counters.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "server_examples/echo/echo_service.h"
#include "stack/netif/pcap_tap.h"
#include "stack/netif/tun_link.h"
#include "stack/wire/ipv4.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

constexpr const char* kUsage =
    "usage: xtcp-echo --tun NAME --ip ADDR [--kernel-ip ADDR/PREFIX] [--port N] [--pcap FILE]\n"
    "                 [--rx-buffer BYTES] [--tx-buffer BYTES] [--duration SECONDS]\n";

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "xtcp-echo: %s\n%s", msg.c_str(), kUsage);
  std::exit(2);
}

bool parse_uint(const char* s, unsigned long long max, unsigned long long* out) {
  if (s == nullptr || *s == '\0') {
    return false;
  }
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v > max || s[0] == '-') {
    return false;
  }
  *out = v;
  return true;
}

struct Options {
  std::string tun;
  std::uint32_t ip = 0;
  bool has_kernel_ip = false;
  std::uint32_t kernel_ip = 0;
  int kernel_prefix = 24;
  std::uint16_t port = 7;
  std::string pcap;
  std::size_t rx_buffer = 256 * 1024;
  std::size_t tx_buffer = 256 * 1024;
  unsigned long long duration = 0;  // 0 = until a signal
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) {
      usage_error("missing value for " + flag);
    }
    const char* v = argv[++i];
    unsigned long long n = 0;
    if (flag == "--tun") {
      o.tun = v;
      if (o.tun.empty() || o.tun.size() >= 16) {
        usage_error("--tun: interface names have 1 to 15 characters");
      }
    } else if (flag == "--ip") {
      if (!xtcp::wire::parse_ipv4(v, &o.ip)) {
        usage_error(std::string("--ip: not an IPv4 address: ") + v);
      }
    } else if (flag == "--kernel-ip") {
      std::string s = v;
      const auto slash = s.find('/');
      if (slash == std::string::npos || !xtcp::wire::parse_ipv4(s.substr(0, slash), &o.kernel_ip) ||
          !parse_uint(s.c_str() + slash + 1, 32, &n) || n < 1 || n > 30) {
        usage_error("--kernel-ip: expected ADDR/PREFIX with prefix 1..30, got " + s);
      }
      o.kernel_prefix = static_cast<int>(n);
      o.has_kernel_ip = true;
    } else if (flag == "--port") {
      if (!parse_uint(v, 65535, &n) || n == 0) {
        usage_error(std::string("--port: expected 1..65535, got ") + v);
      }
      o.port = static_cast<std::uint16_t>(n);
    } else if (flag == "--pcap") {
      o.pcap = v;
      if (o.pcap.empty()) {
        usage_error("--pcap: empty file name");
      }
    } else if (flag == "--rx-buffer" || flag == "--tx-buffer") {
      if (!parse_uint(v, 1ull << 30, &n) || n < 4096) {
        usage_error(flag + ": expected 4096..1073741824 bytes, got " + v);
      }
      (flag == "--rx-buffer" ? o.rx_buffer : o.tx_buffer) = n;
    } else if (flag == "--duration") {
      if (!parse_uint(v, 86400ull * 365, &n)) {
        usage_error(std::string("--duration: expected seconds, got ") + v);
      }
      o.duration = n;
    } else {
      usage_error("unknown flag " + flag);
    }
  }
  if (o.tun.empty()) {
    usage_error("--tun is required");
  }
  if (o.ip == 0) {
    usage_error("--ip is required");
  }
  if (o.has_kernel_ip && o.kernel_ip == o.ip) {
    usage_error("--kernel-ip must differ from --ip");
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace xtcp;
  const Options opt = parse(argc, argv);

  std::string err;
  TunOptions tun_opts;
  tun_opts.name = opt.tun;
  auto tun = TunLink::open(tun_opts, &err);
  if (!tun) {
    std::fprintf(stderr, "xtcp-echo: cannot open TUN %s: %s\n", opt.tun.c_str(), err.c_str());
    return 1;
  }
  if (opt.has_kernel_ip &&
      configure_kernel_side(opt.tun, opt.kernel_ip, opt.kernel_prefix, &err) < 0) {
    std::fprintf(stderr, "xtcp-echo: cannot configure %s: %s\n", opt.tun.c_str(), err.c_str());
    return 1;
  }
  SteadyClock clock;
  std::unique_ptr<PcapTap> tap;
  Link* link = tun.get();
  if (!opt.pcap.empty()) {
    tap = PcapTap::open(*tun, clock, opt.pcap, &err);
    if (!tap) {
      std::fprintf(stderr, "xtcp-echo: cannot write %s: %s\n", opt.pcap.c_str(), err.c_str());
      return 1;
    }
    link = tap.get();
  }

  StreamBuffers buffers(opt.rx_buffer, opt.tx_buffer);
  StackConfig config;
  config.ip.local_addr = opt.ip;
  Stack stack(config, *link, clock, buffers.rx(), buffers.tx());
  EchoService echo(stack, buffers, opt.port);
  if (echo.listen_result() < 0) {
    std::fprintf(stderr, "xtcp-echo: cannot listen on port %u: %s\n", opt.port,
                 std::strerror(-echo.listen_result()));
    return 1;
  }

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  std::printf("xtcp-echo: %s:%u on %s%s%s\n", wire::format_ipv4(opt.ip).c_str(), opt.port,
              opt.tun.c_str(), opt.pcap.empty() ? "" : ", pcap ", opt.pcap.c_str());
  std::fflush(stdout);
  const TimeNs stop_at = opt.duration > 0 ? clock.now() + seconds(static_cast<std::int64_t>(opt.duration)) : kNever;
  while (g_stop == 0 && clock.now() < stop_at) {
    stack.poll();
    echo.on_events();
    stack.wait(ms(100));
  }

  std::printf("xtcp-echo: stopping: %llu connections accepted, %llu bytes echoed, %zu open\n",
              static_cast<unsigned long long>(echo.accepted()),
              static_cast<unsigned long long>(echo.echoed_bytes()), echo.open_connections());
  print_stats(stack, stdout);
  const TunCounters& tc = tun->counters();
  std::printf("tun.packets_in %llu\ntun.packets_out %llu\ntun.send_drops %llu\n",
              static_cast<unsigned long long>(tc.packets_in),
              static_cast<unsigned long long>(tc.packets_out),
              static_cast<unsigned long long>(tc.send_drops));
  return 0;
}
