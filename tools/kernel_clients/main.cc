// xtcp-kernel-clients: bursts from many connections of the Linux kernel's own TCP.
//   xtcp-kernel-clients --target ADDR:PORT --src ADDR/PREFIX [--connections N] [--processes N]
//                       [--ramp RATE] [--message-size SIZE] [--bursts N] [--interval DURATION]
//                       [--timeout DURATION] [--tun-dev NAME] [--json FILE]
#include <arpa/inet.h>
#include <signal.h>

#include <cstdio>
#include <string>

#include "tools/cli/cli.h"
#include "tools/kernel_clients/burst_clients.h"

namespace {

using namespace xtcp::kclients;
namespace cli = xtcp::cli;

std::string parse_target(const std::string& v, Options* o) {
  const std::size_t colon = v.rfind(':');
  if (colon == std::string::npos) {
    return "'" + v + "' is not ADDR:PORT (e.g. 198.18.0.2:7)";
  }
  const std::string host = v.substr(0, colon);
  const std::string port = v.substr(colon + 1);
  o->target.sin_family = AF_INET;
  if (::inet_pton(AF_INET, host.c_str(), &o->target.sin_addr) != 1) {
    return "'" + host + "' is not an IPv4 address";
  }
  unsigned long p = 0;
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      (p = std::stoul(port)) < 1 || p > 65535) {
    return "'" + port + "' is not a port number from 1 to 65535";
  }
  o->target.sin_port = htons(static_cast<std::uint16_t>(p));
  o->target_text = v;
  return "";
}

std::string parse_src(const std::string& v, Options* o) {
  const std::size_t slash = v.find('/');
  const std::string host = v.substr(0, slash);
  in_addr a{};
  if (::inet_pton(AF_INET, host.c_str(), &a) != 1) {
    return "'" + host + "' is not an IPv4 address";
  }
  int prefix = 32;
  if (slash != std::string::npos) {
    const std::string p = v.substr(slash + 1);
    if (p.empty() || p.size() > 2 || p.find_first_not_of("0123456789") != std::string::npos ||
        (prefix = std::stoi(p)) < 16 || prefix > 32) {
      return "'" + p + "' is not a prefix length from 16 to 32";
    }
  }
  const std::uint32_t size = prefix == 32 ? 1u : (1u << (32 - prefix));
  o->src_base = ntohl(a.s_addr);
  // From the given address to the end of the range.
  o->src_count = size - (o->src_base & (size - 1));
  o->src_text = v;
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::uint64_t connections = o.connections;
  std::uint64_t bursts = static_cast<std::uint64_t>(o.bursts);
  cli::Flags f(kProgram, "--target ADDR:PORT --src ADDR/PREFIX [OPTION]...",
               "Many connections of the Linux kernel's own TCP to an echo server, spread over worker "
               "processes of at most 18,000 connections each; every connection sends one message at the "
               "same instant (a burst) and checks its echo byte for byte. Reports per burst the time from "
               "the first send to the last answer, answer latencies, the clients' retransmissions (per "
               "socket from TCP_INFO, and this namespace's RetransSegs and TCPTimeouts) and the drops of the "
               "server's TUN queue (--tun-dev). Connection i binds source address ADDR + i / 64512, port "
               "1024 + i % 64512: the range must be local (ip route add local ADDR/PREFIX dev lo). Run it in "
               "a network namespace you created.");
  f.custom("--target", "ADDR:PORT", "the echo server", "", [&](const std::string& v) { return parse_target(v, &o); })
      .required();
  f.custom("--src", "ADDR/PREFIX", "the source addresses, from ADDR to the end of the prefix (16 to 32)", "",
           [&](const std::string& v) { return parse_src(v, &o); })
      .required();
  f.number("--connections", "N", "connections", &connections, 1, 4'000'000);
  f.number("--processes", "N", "worker processes", &o.processes, 0, 512).default_text("one per 18,000 connections");
  f.number("--ramp", "RATE", "connections opened per second, over all workers", &o.ramp, 1, 10'000'000);
  f.size("--message-size", "bytes each connection sends per burst (16 to 64K, ends with a newline)", &o.message_size,
         16, 65536);
  f.number("--bursts", "N", "bursts", &bursts, 1, 1000);
  f.duration("--interval", "pause before each burst (lets the ACKs of the last one settle)", &o.interval,
             cli::Micros(0), cli::Micros(3'600'000'000LL), cli::Micros(1'000'000));
  f.duration("--timeout", "the longest the set-up, and each burst, may take", &o.timeout,
             cli::Micros(1'000'000), cli::Micros(3'600'000'000LL), cli::Micros(1'000'000));
  f.text("--tun-dev", "NAME", "the server's TUN device in this namespace, whose queue drops are counted",
         &o.tun_dev);
  f.text("--json", "FILE", "write the summary as one JSON object to FILE ('-': stdout)", &o.json_path);
  f.epilog(
      "Exit status: 0 when every connection came up and every echo of every burst came back right; 1 "
      "otherwise (the first error is printed); 2 for a bad flag. SIGINT and SIGTERM stop the run "
      "(results so far are printed).");
  f.parse(argc, argv);
  o.connections = static_cast<std::uint32_t>(connections);
  o.bursts = static_cast<int>(bursts);
  if (static_cast<std::uint64_t>(o.src_count) * kPortsPerAddress < o.connections) {
    f.fail("--src: " + o.src_text + " holds " + std::to_string(o.src_count) + " addresses, " +
           std::to_string(static_cast<std::uint64_t>(o.src_count) * kPortsPerAddress) + " source ports: fewer than " +
           std::to_string(o.connections) + " connections");
  }
  if (o.processes > 0 && static_cast<std::uint64_t>(o.processes) * kMaxPerProcess < o.connections) {
    f.fail(std::string("--processes: ") + std::to_string(o.processes) + " processes hold at most " +
           std::to_string(static_cast<std::uint64_t>(o.processes) * kMaxPerProcess) + " connections");
  }
  cli::on_stop_signals({SIGINT, SIGTERM});
  cli::ignore_signal(SIGPIPE);
  RunResult result;
  std::string error;
  if (!run(o, &result, &error)) {
    std::fprintf(stderr, "%s: %s\n", kProgram, error.c_str());
    return cli::kExitFailure;
  }
  if (!o.json_path.empty()) {
    const std::string json = to_json(o, result);
    if (o.json_path == "-") {
      std::fputs(json.c_str(), stdout);
    } else if (std::FILE* out = std::fopen(o.json_path.c_str(), "w")) {
      std::fputs(json.c_str(), out);
      std::fclose(out);
    } else {
      std::fprintf(stderr, "%s: cannot write %s\n", kProgram, o.json_path.c_str());
      return cli::kExitFailure;
    }
  }
  if (!result.ok()) {
    std::fprintf(stderr, "%s: not ok: %s\n", kProgram,
                 result.first_error.empty() ? "not every echo came back" : result.first_error.c_str());
    return cli::kExitFailure;
  }
  std::printf("%s: ok\n", kProgram);
  return cli::kExitOk;
}
