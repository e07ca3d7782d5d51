// xtcp-im: the instant-messaging server of docs/im-protocol.md on the xtcp C API.
//   xtcp-im --tun NAME --ip ADDR [--kernel-ip ADDR/PREFIX] --port N [--pcap FILE] [--duration S]
// Flags -> xtcp_configure/xtcp_initialize -> ImServer rounds until SIGINT/SIGTERM or the
// duration ends -> counters (IM and pool statistics) on stdout.
#include <xtcp/xtcp.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "server_examples/common/server_flags.h"
#include "server_examples/im/im_server.h"

namespace {

constexpr const char* kUsage =
    "usage: xtcp-im --tun NAME --ip ADDR [--kernel-ip ADDR/PREFIX] --port N [--pcap FILE]\n"
    "               [--duration SECONDS] [--pool-size BYTES] [--tx-cache BYTES]\n"
    "  An instant-messaging server (docs/im-protocol.md) on the xtcp API: the stack answers\n"
    "  at ADDR behind the TUN device NAME; --kernel-ip gives the kernel's end of the TUN an\n"
    "  address and brings it up. SIGINT/SIGTERM stop it and print the counters.\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace xtcp_examples;
  const ServerFlags flags = parse_server_flags(argc, argv, "xtcp-im", kUsage, 0, true);
  const xtcp_config config = make_config(flags);
  int rc = xtcp_configure(&config);
  if (rc < 0) {
    std::fprintf(stderr, "xtcp-im: xtcp_configure: %s\n", std::strerror(-rc));
    return 1;
  }
  rc = xtcp_initialize(flags.pool_size);
  if (rc < 0) {
    std::fprintf(stderr, "xtcp-im: xtcp_initialize(%zu) on %s: %s\n", flags.pool_size,
                 flags.tun.c_str(), std::strerror(-rc));
    return 1;
  }
  int exit_code = 0;
  {
    ImServer server;
    std::string what;
    rc = server.open(flags.port, &what);
    if (rc < 0) {
      std::fprintf(stderr, "xtcp-im: %s on port %u: %s\n", what.c_str(), flags.port,
                   std::strerror(-rc));
      xtcp_finalize();
      return 1;
    }
    volatile std::sig_atomic_t* stop = install_stop_signals();
    std::printf("xtcp-im: %s:%u on %s%s%s\n", flags.ip.c_str(), flags.port, flags.tun.c_str(),
                flags.pcap.empty() ? "" : ", pcap ", flags.pcap.c_str());
    std::fflush(stdout);
    const auto start = std::chrono::steady_clock::now();
    const auto limit = std::chrono::seconds(flags.duration_s);
    while (*stop == 0 && (flags.duration_s == 0 || std::chrono::steady_clock::now() - start < limit)) {
      rc = server.run_once(100);
      if (rc < 0 && rc != -EINTR) {  // EINTR: a signal; the loop condition looks at it
        std::fprintf(stderr, "xtcp-im: xtcp_select: %s\n", std::strerror(-rc));
        exit_code = 1;
        break;
      }
    }
    std::printf("xtcp-im: stopping\n");
    server.print_counters(stdout);
    print_pool_stats("xtcp-im", stdout);
    server.close();
  }
  xtcp_finalize();
  return exit_code;
}
