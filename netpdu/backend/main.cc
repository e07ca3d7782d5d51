// xtcp-backend: the IM backend served over NetPDU transports. Front ends connect (TCP or a
// Unix socket), handshake (variant 1 or a variant 2 bundle) and send their client
// sessions' requests aggregated; one poll(2) loop serves the listener, the handshakes and
// every transport. The command line is tools/cli's: a bad flag says which and exits 2;
// SIGINT/SIGTERM stop it, SIGUSR1 and --stats-interval print its counters.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "netpdu/backend/backend_server.h"
#include "netpdu/handshake.h"
#include "netpdu/net.h"
#include "tools/cli/cli.h"

namespace {

using namespace xtcp::netpdu;
namespace cli = xtcp::cli;

constexpr const char* kProgram = "xtcp-backend";

void collect(const BackendServer& server, std::vector<cli::Counter>* out) {
  for (const auto& [name, value] : server.counters()) {
    out->push_back(cli::Counter{name, value});
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<Address> addr;
  int addresses = 0;
  HandshakeLimits limits;
  ImBackendConfig config;
  bool quiet = false;
  cli::StatsOptions stats_options;
  std::uint64_t max_pdu = limits.max_pdu_bytes;
  std::uint64_t max_tlpdus = limits.max_tlpdus;
  cli::Micros latency(config.endpoint.tx.latency_us);
  std::uint64_t flush_bytes = config.endpoint.tx.flush_bytes;
  std::uint64_t max_queue = config.endpoint.tx.max_queued_bytes;

  cli::Flags flags(kProgram, "(--listen ADDR:PORT | --unix PATH) [OPTION]...",
                   "The instant-messaging backend behind xtcp-im --backend: front ends connect over TCP or a "
                   "Unix stream socket, agree on NetPDU limits in a handshake (variant 1: one transport; "
                   "variant 2: a control transport and data transports), and send their clients' request "
                   "lines as sessions aggregated in NetPDUs; the answers and the pushes to other users "
                   "go back the same way. Users are known across all front ends.");
  flags.custom("--listen", "ADDR:PORT", "the TCP/IPv4 address to listen on, e.g. 127.0.0.1:7400 (port 0: any)",
               "", [&](const std::string& v) {
                 std::string err;
                 addr = parse_host_port(v, &err);
                 ++addresses;
                 return addr ? std::string() : err;
               })
      .default_text("none: give --listen or --unix");
  flags.custom("--unix", "PATH", "the Unix stream socket to listen on (removed at exit)", "",
               [&](const std::string& v) {
                 if (v.empty() || v.size() >= 108) {
                   return std::string("a socket path has 1 to 107 bytes");
                 }
                 addr = unix_address(v);
                 ++addresses;
                 return std::string();
               })
      .default_text("none: give --listen or --unix");
  flags.size("--max-pdu", "the largest NetPDU this side accepts in the handshake", &max_pdu, kMinMaxPduBytes,
             kMaxMaxPduBytes);
  flags.number("--max-tlpdus", "N", "TLPDUs per NetPDU this side accepts in the handshake", &max_tlpdus, 1,
               kMaxMaxTlpdus);
  flags.duration("--latency-us", "how long an answer NetPDU may wait for more answers before it is sent; "
                 "a plain number is microseconds",
                 &latency, cli::Micros(0), std::chrono::seconds(10), cli::Micros(1));
  flags.size("--flush-bytes", "send an answer NetPDU once it holds this many bytes (at most --max-pdu)",
             &flush_bytes, 1, kMaxMaxPduBytes);
  flags.size("--max-queue", "answer bytes queued per transport before the backend stops reading its requests",
             &max_queue, 64 * 1024, std::uint64_t{1} << 34);
  flags.toggle("--quiet", "do not log transport events (handshakes, closes, failures) on stderr", &quiet);
  cli::add_stats_flags(flags, &stats_options, "the backend's counters");
  flags.epilog("Signals: SIGINT and SIGTERM stop the backend (it prints its counters and exits 0); SIGUSR1 "
               "prints its counters at once.\n");
  flags.epilog(cli::exit_codes_help());
  flags.parse(argc, argv);
  if (addresses != 1) {
    flags.fail(addresses == 0 ? "give --listen ADDR:PORT or --unix PATH" : "give exactly one of --listen and --unix");
  }
  limits.max_pdu_bytes = static_cast<std::uint32_t>(max_pdu);
  limits.max_tlpdus = static_cast<std::uint32_t>(max_tlpdus);
  config.endpoint.tx.latency_us = static_cast<std::uint32_t>(latency.count());
  config.endpoint.tx.flush_bytes = static_cast<std::uint32_t>(std::min(flush_bytes, max_pdu));
  config.endpoint.tx.max_queued_bytes = max_queue;
  config.endpoint.tx.low_watermark = max_queue / 2;

  cli::on_stop_signals({SIGINT, SIGTERM});
  cli::on_stats_signal(SIGUSR1);
  cli::ignore_signal(SIGPIPE);
  std::FILE* msg = stats_options.json ? stderr : stdout;

  std::string err;
  const int lfd = listen_on(*addr, &err);
  if (lfd < 0) {
    std::fprintf(stderr, "%s: %s\n", kProgram, err.c_str());
    return cli::kExitFailure;
  }
  Address shown = *addr;
  if (!shown.is_unix) {
    shown.in.sin_port = htons(bound_port(lfd));
  }
  std::fprintf(msg, "%s: listening on %s\n", kProgram, shown.text().c_str());
  std::fflush(msg);

  SteadyClock clock;
  BackendServer server(lfd, limits, config, clock);
  cli::StatsPrinter stats(kProgram, stats_options, [&](std::vector<cli::Counter>* out) { collect(server, out); });

  int exit_code = cli::kExitOk;
  while (!cli::stop_requested()) {
    const int due = stats.ms_until_due();
    const int rc = server.run_once(due == INT32_MAX ? -1 : due);
    if (!quiet) {
      for (const auto& l : server.take_log()) {
        std::fprintf(stderr, "%s: %s\n", kProgram, l.c_str());
      }
    } else {
      server.take_log();
    }
    if (rc < 0) {
      std::fprintf(stderr, "%s: poll: %s\n", kProgram, std::strerror(-rc));
      exit_code = cli::kExitFailure;
      break;
    }
    stats.poll();
  }
  ::close(lfd);
  if (addr->is_unix) {
    ::unlink(addr->path.c_str());
  }
  std::fprintf(msg, "%s: stopped (%llu requests)\n", kProgram,
               static_cast<unsigned long long>(server.backend().stats().requests));
  std::fflush(msg);
  if (stats_options.json) {
    stats.print();
  } else {
    std::vector<cli::Counter> rows;
    collect(server, &rows);
    cli::print_counters_text(stdout, rows);
  }
  return exit_code;
}
