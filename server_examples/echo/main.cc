// xtcp-echo: an echo server on the xtcp C API.
//   xtcp-echo (--tun NAME | --shm NAME) --ip ADDR [--kernel-ip ADDR/PREFIX] [--port N] [--pcap FILE]
//             [--rx-buffer SIZE] [--tx-buffer SIZE] [--duration DURATION]
//             [--shards N] [--stats-interval DURATION] [--stats-json]
// The serving loop is EchoServer (echo_server.h); this is the command line around it.
#include <xtcp/xtcp.h>

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "server_examples/common/server_flags.h"
#include "server_examples/common/supervisor.h"
#include "server_examples/echo/echo_server.h"

namespace {

using namespace xtcp_examples;
namespace cli = xtcp::cli;

constexpr const char* kProgram = "xtcp-echo";

const ServerProgram kEcho{
    kProgram,
    "(--tun NAME | --shm NAME) --ip ADDR [OPTION]...",
    "An echo server on the xtcp API: every byte a client sends on port N of ADDR, behind the TUN "
    "device NAME (or the shared-memory link NAME), comes back to it; the TCP acknowledgement of the bytes rides on their echo. "
    "After the client closes its side, the server closes behind the last echoed byte.",
    7,
    false,
    256 * 1024,  // the engine echo's receive buffer
    false,
    true,  // --zero-window-abort
};

// "xtcp-echo: ADDR:PORT on NAME[, pcap FILE]": the start-up line the tests and scripts wait for.
std::string startup_line(const ServerFlags& flags) {
  return std::string(kProgram) + ": " + flags.ip + ":" + std::to_string(flags.port) + " on " + link_name(flags) +
         (flags.pcap.empty() ? "" : ", pcap " + flags.pcap);
}

// Serves until stopped: the whole program, or one shard of it (shard != nullptr: the start-up
// and the counters go to the supervisor instead of stdout).
int serve(const ServerFlags& flags, ShardChannel* shard) {
  install_server_signals();
  const xtcp_config config = make_config(flags);
  if (!start_stack(kProgram, config, flags)) {
    return cli::kExitFailure;
  }
  int rc = 0;
  std::string what;
  const int gd = open_echo_group(flags.port, &what);
  if (gd < 0) {
    print_xtcp_error(kProgram, what, gd);
    xtcp_finalize();
    return cli::kExitFailure;
  }
  if (flags.zero_window_abort_ms != UINT64_MAX) {
    rc = xtcp_setopt(gd, XTCP_OPT_ZERO_WINDOW_ABORT_MS, static_cast<std::int64_t>(flags.zero_window_abort_ms));
    if (rc < 0) {
      print_xtcp_error(kProgram, "cannot set XTCP_OPT_ZERO_WINDOW_ABORT_MS", rc);
      xtcp_close_group(gd);
      xtcp_finalize();
      return cli::kExitFailure;
    }
  }
  std::FILE* msg = message_stream(flags);
  if (shard != nullptr) {
    shard->ready();
  } else {
    start_captures(flags);  // before the start line: a client that waits for it is captured whole
    std::fprintf(msg, "%s\n", startup_line(flags).c_str());
    std::fflush(msg);
  }

  EchoServer echo(gd, echo_piece());
  auto collect = [&](std::vector<Counter>* out) {
    collect_engine_counters(out);
    echo.counters(out);
  };
  cli::StatsPrinter stats(kProgram, flags.stats, collect);
  if (shard != nullptr) {
    shard->attach(stats);
  }
  int exit_code = cli::kExitOk;
  rc = run_until_stopped(flags, stats, [&](int timeout_ms) { return echo.run_once(timeout_ms); });
  if (rc < 0) {
    print_xtcp_error(kProgram, "waiting for work", rc);
    exit_code = cli::kExitFailure;
  }
  if (shard != nullptr) {
    std::vector<Counter> all;  // in the order of the single process's end-of-run print
    echo.counters(&all);
    collect_engine_counters(&all);
    shard->final_counters(all);
  } else if (flags.stats.json) {
    std::fprintf(msg, "%s: stopping\n", kProgram);
    stats.print();
  } else {
    std::fprintf(stdout, "%s: stopping: %llu connections accepted, %llu bytes echoed, 0 closing\n", kProgram,
                 static_cast<unsigned long long>(echo.accepted()), static_cast<unsigned long long>(echo.bytes_echoed()));
    std::vector<Counter> rows;
    echo.counters(&rows);
    cli::print_counters_text(stdout, rows);
    print_pool_stats(kProgram, stdout);
  }
  xtcp_close_group(gd);
  xtcp_finalize();
  return exit_code;
}

// --shards N: N processes on one multi-queue TUN device under a supervisor.
int serve_sharded(const ServerFlags& flags) {
  SupervisorSpec spec;
  spec.program = kProgram;
  spec.flags = &flags;
  spec.ready_line = startup_line(flags);
  spec.final_prefixes = {"echo.", "pool."};
  spec.stopping_line = [](const std::vector<Counter>& sums) {
    auto sum = [&](const char* name) {
      const auto it = std::find_if(sums.begin(), sums.end(), [&](const Counter& c) { return c.name == name; });
      return static_cast<unsigned long long>(it == sums.end() ? 0 : it->value);
    };
    return std::string(kProgram) + ": stopping: " + std::to_string(sum("echo.accepted")) +
           " connections accepted, " + std::to_string(sum("echo.bytes_echoed")) + " bytes echoed, 0 closing";
  };
  std::vector<Worker> workers;
  for (int i = 0; i < flags.shards; ++i) {
    workers.push_back(Worker{"shard " + std::to_string(i), true, [&flags, i](ShardChannel& channel) {
                               const ServerFlags mine = shard_flags(flags, i);
                               return serve(mine, &channel);
                             }});
  }
  return run_supervisor(spec, std::move(workers));
}

}  // namespace

int main(int argc, char** argv) {
  ServerCommandLine cl(kEcho);
  cl.parse(argc, argv);
  const ServerFlags& flags = cl.values;
  return flags.shards > 1 ? serve_sharded(flags) : serve(flags, nullptr);
}
