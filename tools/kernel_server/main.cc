// xtcp-kernel-server: the echo and IM protocols of xtcp-echo and xtcp-im (local mode), served
// on the Linux kernel's TCP by N epoll worker processes, so that benchmarks can put the
// kernel beside xtcp on the same work.
//   xtcp-kernel-server --protocol echo|im --listen ADDR:PORT [--processes N]
//                      [--presence all|watched] [--max-output SIZE] [--max-users N]
//                      [--duration DURATION] [--stats-interval DURATION] [--stats-json]
#include <arpa/inet.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "tools/cli/cli.h"
#include "tools/kernel_server/options.h"
#include "tools/kernel_server/supervisor.h"

namespace {

using namespace xtcp::kserver;
namespace cli = xtcp::cli;

std::string parse_listen(const std::string& v, Options* o) {
  const std::size_t colon = v.rfind(':');
  if (colon == std::string::npos) {
    return "'" + v + "' is not ADDR:PORT (e.g. 198.18.0.1:7000)";
  }
  const std::string host = v.substr(0, colon);
  const std::string port = v.substr(colon + 1);
  if (::inet_pton(AF_INET, host.c_str(), &o->addr) != 1) {
    return "'" + host + "' is not an IPv4 address";
  }
  unsigned long p = 0;
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      (p = std::stoul(port)) < 1 || p > 65535) {
    return "'" + port + "' is not a port number from 1 to 65535";
  }
  o->port = static_cast<std::uint16_t>(p);
  o->listen = v;
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  cli::Flags f(kProgram, "--protocol echo|im --listen ADDR:PORT [OPTION]...",
               "The echo and instant-messaging servers of xtcp-echo and xtcp-im (local mode, "
               "docs/im-protocol.md) on the Linux kernel's TCP: N worker processes, each with its own "
               "epoll loop and its own SO_REUSEPORT listening socket on ADDR:PORT (the kernel spreads the "
               "connections), supervised by a parent that forwards SIGINT/SIGTERM and prints the "
               "counters. IM users of different workers reach each other: a shared-memory directory "
               "of logged-in names and Unix socket links between the workers carry messages and "
               "presence. For benchmarks that put the kernel beside xtcp on the same work.");
  f.custom("--protocol", "NAME", "echo (every byte comes back; closed after the client's FIN) or im", "",
           [&](const std::string& v) -> std::string {
             if (v == "echo") {
               o.protocol = Protocol::kEcho;
             } else if (v == "im") {
               o.protocol = Protocol::kIm;
             } else {
               return "'" + v + "' is neither echo nor im";
             }
             return "";
           })
      .required();
  f.custom("--listen", "ADDR:PORT", "the IPv4 address and port every worker listens on", "",
           [&](const std::string& v) { return parse_listen(v, &o); })
      .required();
  f.number("--processes", "N",
           "worker processes; one holds at most its descriptor limit of connections (ulimit -n)", &o.processes, 1,
           kMaxProcesses);
  f.custom("--presence", "MODE",
           "im: who gets ONLINE/OFFLINE: all (every logged-in user) or watched (only connections that sent "
           "WATCH name)",
           "all", [&](const std::string& v) -> std::string {
             if (v == "all") {
               o.presence = Presence::kAll;
             } else if (v == "watched") {
               o.presence = Presence::kWatched;
             } else {
               return "'" + v + "' is neither all nor watched";
             }
             return "";
           });
  f.size("--max-output",
         "bytes waiting unsent per connection: im closes a client past it as a slow consumer, echo stops "
         "reading the client until half of it is written",
         &o.max_output, 4096, 1ull << 32);
  f.number("--max-users", "N",
           "im with --processes > 1: names the shared directory holds (past it LOGIN gets ERR server-full)",
           &o.max_users, 1, 1ull << 26)
      .default_text("processes x descriptor limit");
  f.duration("--duration", "stop after this long; 0: run until SIGINT/SIGTERM; a plain number is seconds",
             &o.duration, cli::Micros(0), std::chrono::hours(24 * 365), std::chrono::seconds(1));
  cli::add_stats_flags(f, &o.stats,
                       "every counter, summed over the workers (echo.* or im.*, mesh.*), the memory of every "
                       "process (server.*), and per worker its pid, connections and memory (worker<i>.*)");
  f.epilog(cli::server_signals_help());
  f.epilog(cli::exit_codes_help());
  f.parse(argc, argv);
  if (o.protocol != Protocol::kIm && f.given("--presence")) {
    f.fail("--presence is for --protocol im");
  }
  if (f.given("--max-users") && (o.protocol != Protocol::kIm || o.processes < 2)) {
    f.fail("--max-users is for --protocol im with --processes 2 or more");
  }
  return run_server(o);
}
