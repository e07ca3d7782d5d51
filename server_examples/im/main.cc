// xtcp-im: the instant-messaging server of docs/im-protocol.md on the xtcp C API.
//   xtcp-im --tun NAME --ip ADDR [--kernel-ip ADDR/PREFIX] --port N [--pcap FILE] [--duration S]
//           [--backend ADDR:PORT|PATH [--backend-data N]]
// Flags -> xtcp_configure/xtcp_initialize -> ImServer (local mode) or ImForwarder (requests
// forwarded to xtcp-backend through NetPDU) rounds until SIGINT/SIGTERM or the duration
// ends -> counters (IM, NetPDU and pool statistics) on stdout.
#include <xtcp/xtcp.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "netpdu/net.h"
#include "server_examples/common/server_flags.h"
#include "server_examples/im/im_forwarder.h"
#include "server_examples/im/im_server.h"

namespace {

using namespace xtcp_examples;

constexpr const char* kUsage =
    "usage: xtcp-im --tun NAME --ip ADDR [--kernel-ip ADDR/PREFIX] --port N [--pcap FILE]\n"
    "               [--duration SECONDS] [--pool-size BYTES] [--tx-cache BYTES]\n"
    "               [--backend ADDR:PORT|SOCKET_PATH [--backend-data N]]\n"
    "  An instant-messaging server (docs/im-protocol.md) on the xtcp API: the stack answers\n"
    "  at ADDR behind the TUN device NAME; --kernel-ip gives the kernel's end of the TUN an\n"
    "  address and brings it up. SIGINT/SIGTERM stop it and print the counters.\n"
    "  --backend: forwarding mode. Requests go to xtcp-backend at that TCP address or Unix\n"
    "  socket path, aggregated in NetPDUs (docs/netpdu.md); --backend-data N uses variant 2\n"
    "  (a control transport and N data transports) instead of one transport.\n";

// Runs server rounds until a stop signal or the duration; prints the counters.
template <typename Server>
int serve(Server& server, const ServerFlags& flags, const char* mode) {
  volatile std::sig_atomic_t* stop = install_stop_signals();
  std::printf("xtcp-im: %s:%u on %s%s%s%s\n", flags.ip.c_str(), flags.port, flags.tun.c_str(),
              flags.pcap.empty() ? "" : ", pcap ", flags.pcap.c_str(), mode);
  std::fflush(stdout);
  int exit_code = 0;
  const auto start = std::chrono::steady_clock::now();
  const auto limit = std::chrono::seconds(flags.duration_s);
  while (*stop == 0 && (flags.duration_s == 0 || std::chrono::steady_clock::now() - start < limit)) {
    const int rc = server.run_once(100);
    if constexpr (requires { server.backend_error(); }) {
      if (rc == -EPIPE) {
        std::fprintf(stderr, "xtcp-im: backend lost: %s\n", server.backend_error().c_str());
        exit_code = 1;
        break;
      }
    }
    if (rc < 0 && rc != -EINTR) {  // EINTR: a signal; the loop condition looks at it
      std::fprintf(stderr, "xtcp-im: waiting for work: %s\n", std::strerror(-rc));
      exit_code = 1;
      break;
    }
  }
  std::printf("xtcp-im: stopping\n");
  server.print_counters(stdout);
  print_pool_stats("xtcp-im", stdout);
  server.close();
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  const ServerFlags flags = parse_server_flags(argc, argv, "xtcp-im", kUsage, 0, true, true);
  ImForwarderConfig forward;
  if (!flags.backend.empty()) {
    std::string err;
    if (flags.backend.find('/') != std::string::npos) {
      if (flags.backend.size() >= 108) {
        usage_error("xtcp-im", kUsage, "--backend: a socket path has at most 107 bytes");
      }
      forward.backend = xtcp::netpdu::unix_address(flags.backend);
    } else if (auto a = xtcp::netpdu::parse_host_port(flags.backend, &err)) {
      forward.backend = *a;
    } else {
      usage_error("xtcp-im", kUsage, "--backend: " + err);
    }
    forward.data_transports = flags.backend_data;
  } else if (flags.backend_data != 0) {
    usage_error("xtcp-im", kUsage, "--backend-data needs --backend");
  }
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
  std::string what;
  if (flags.backend.empty()) {
    ImServer server;
    rc = server.open(flags.port, &what);
    if (rc == 0) {
      exit_code = serve(server, flags, "");
    }
  } else {
    ImForwarder server;
    rc = server.open(flags.port, forward, &what);
    if (rc == 0) {
      const std::string mode = ", forwarding to " + forward.backend.text() +
                               (forward.data_transports == 0 ? " (variant 1)" : " (variant 2)");
      exit_code = serve(server, flags, mode.c_str());
    }
  }
  if (rc < 0) {
    std::fprintf(stderr, "xtcp-im: %s on port %u: %s\n", what.c_str(), flags.port, std::strerror(-rc));
    exit_code = 1;
  }
  xtcp_finalize();
  return exit_code;
}
