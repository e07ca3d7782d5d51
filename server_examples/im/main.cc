// xtcp-im: the instant-messaging server of docs/im-protocol.md on the xtcp C API.
//   xtcp-im (--tun NAME | --shm NAME) --ip ADDR --port N [--kernel-ip ADDR/PREFIX] [--pcap FILE]
//           [--duration DURATION] [--pool-size SIZE] [--tx-cache SIZE]
//           [--backend ADDR:PORT|PATH [--backend-data N]] [--shards N] [--stats-interval DURATION]
//           [--stats-json]
// Flags -> xtcp_configure/xtcp_initialize -> ImServer (local mode) or ImForwarder (requests
// forwarded to xtcp-backend through NetPDU) rounds until SIGINT/SIGTERM or the duration
// ends -> counters (IM, NetPDU and pool statistics) on stdout; every counter also every
// --stats-interval and on SIGUSR1.
#include <xtcp/xtcp.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "netpdu/net.h"
#include "server_examples/common/server_flags.h"
#include "server_examples/common/supervisor.h"
#include "server_examples/im/im_forwarder.h"
#include "server_examples/im/im_server.h"
#include "server_examples/im/im_shards.h"

namespace {

using namespace xtcp_examples;
namespace cli = xtcp::cli;

constexpr const char* kProgram = "xtcp-im";

const ServerProgram kIm{
    kProgram,
    "(--tun NAME | --shm NAME) --ip ADDR --port N [OPTION]...",
    "An instant-messaging server on the xtcp API. Clients are ordinary TCP clients that send one "
    "request per line: LOGIN name, MSG name text, LIST, WATCH name, QUIT; every request gets one answer line "
    "(OK, ERR reason, USERS a b c, BYE), and logged-in users get FROM, ONLINE and OFFLINE lines "
    "pushed. The stack answers at ADDR:N behind the TUN device NAME (or the shared-memory link NAME). "
    "With --backend the server "
    "keeps no users itself: it forwards every request line to xtcp-backend, aggregated in "
    "NetPDUs, and returns the answers. With --shards N, N processes serve on one multi-queue TUN "
    "device and forward to one backend: --backend, or one the supervisor runs itself, so that users "
    "on different shards reach each other. Each answer carries the TCP acknowledgement of its "
    "request.",
    0,
    true,
    4u << 20,
    true,
};

// "xtcp-im: ADDR:PORT on NAME[, pcap FILE]": the start-up line the tests and scripts wait for
// (the mode follows it).
std::string startup_line(const ServerFlags& flags) {
  return std::string(kProgram) + ": " + flags.ip + ":" + std::to_string(flags.port) + " on " + link_name(flags) +
         (flags.pcap.empty() ? "" : ", pcap " + flags.pcap);
}

// Where requests go: answered here (local mode) or forwarded to a backend.
struct ImPlan {
  ImCore::Presence presence = ImCore::Presence::kAll;
  bool forwarding = false;
  ImForwarderConfig forward;
};

std::string forwarding_mode(const ImForwarderConfig& forward) {
  return ", forwarding to " + forward.backend.text() + (forward.data_transports == 0 ? " (variant 1)" : " (variant 2)");
}

// Runs server rounds until a stop signal or the duration; prints the counters.
template <typename Server>
int serve(Server& server, const ServerFlags& flags, const std::string& mode, ShardChannel* shard) {
  constexpr bool kForwarding = requires { server.backend_error(); };
  std::FILE* msg = message_stream(flags);
  if (shard != nullptr) {
    shard->ready();
  } else {
    start_captures(flags);  // before the start line: a client that waits for it is captured whole
    std::fprintf(msg, "%s%s\n", startup_line(flags).c_str(), mode.c_str());
    std::fflush(msg);
  }
  auto collect = [&](std::vector<Counter>* out) {
    collect_engine_counters(out);
    server.counters(out);
  };
  cli::StatsPrinter stats(kProgram, flags.stats, collect);
  if (shard != nullptr) {
    shard->attach(stats);
  }
  const int rc = run_until_stopped(flags, stats, [&](int timeout_ms) { return server.run_once(timeout_ms); });
  int exit_code = cli::kExitOk;
  if (kForwarding && rc == -EPIPE) {
    if constexpr (kForwarding) {
      std::fprintf(stderr, "%s: backend lost: %s\n", kProgram, server.backend_error().c_str());
    }
    exit_code = cli::kExitFailure;
  } else if (rc < 0) {
    if constexpr (kForwarding) {
      std::fprintf(stderr, "%s: waiting for work: %s\n", kProgram, std::strerror(-rc));
    } else {
      print_xtcp_error(kProgram, "waiting for work", rc);
    }
    exit_code = cli::kExitFailure;
  }
  if (shard != nullptr) {
    std::vector<Counter> all;  // in the order of the single process's end-of-run print
    server.counters(&all);
    collect_engine_counters(&all);
    shard->final_counters(all);
    server.close();
    return exit_code;
  }
  std::fprintf(msg, "%s: stopping\n", kProgram);
  std::fflush(msg);
  if (flags.stats.json) {
    stats.print();
  } else {
    server.print_counters(stdout);
    print_pool_stats(kProgram, stdout);
  }
  server.close();
  return exit_code;
}

// The whole program, or one shard of it (shard != nullptr).
int serve_process(const ServerFlags& flags, const ImPlan& plan, ShardChannel* shard) {
  install_server_signals();
  const xtcp_config config = make_config(flags);
  if (!start_stack(kProgram, config, flags)) {
    return cli::kExitFailure;
  }
  int rc = 0;
  int exit_code = cli::kExitOk;
  std::string what;
  if (!plan.forwarding) {
    ImServer server;
    server.set_presence(plan.presence);
    rc = server.open(flags.port, &what);
    if (rc == 0) {
      exit_code = serve(server, flags, "", shard);
    }
  } else {
    ImForwarder server;
    rc = server.open(flags.port, plan.forward, &what);
    if (rc == 0) {
      exit_code = serve(server, flags, forwarding_mode(plan.forward), shard);
    }
  }
  if (rc < 0) {
    if (what.rfind("xtcp_", 0) == 0) {  // an xtcp call failed: the library says why
      print_xtcp_error(kProgram, "cannot listen on port " + std::to_string(flags.port), rc);
    } else {
      std::fprintf(stderr, "%s: %s\n", kProgram, what.c_str());  // the backend link
    }
    exit_code = cli::kExitFailure;
  }
  xtcp_finalize();
  return exit_code;
}

// --shards N: N processes on one multi-queue TUN device under a supervisor; they forward to
// --backend, or to the backend the supervisor runs in a helper process.
int serve_sharded(const ServerFlags& flags, ImPlan plan) {
  PrivateSocketDir dir;
  std::string mode;
  std::vector<Worker> workers;
  if (!plan.forwarding) {
    std::string err;
    if (!dir.create(&err)) {
      std::fprintf(stderr, "%s: %s\n", kProgram, err.c_str());
      return cli::kExitFailure;
    }
    plan.forwarding = true;
    plan.forward.backend = xtcp::netpdu::unix_address(dir.socket_path());
    mode = ", users held by the supervisor's backend";
    workers.push_back(Worker{"backend", false, [&dir](ShardChannel& channel) {
                               return run_im_backend(kProgram, dir.socket_path(), channel);
                             }});
  } else {
    mode = forwarding_mode(plan.forward);
  }
  for (int i = 0; i < flags.shards; ++i) {
    workers.push_back(Worker{"shard " + std::to_string(i), true, [&flags, &plan, i](ShardChannel& channel) {
                               const ServerFlags mine = shard_flags(flags, i);
                               return serve_process(mine, plan, &channel);
                             }});
  }
  SupervisorSpec spec;
  spec.program = kProgram;
  spec.flags = &flags;
  spec.ready_line = startup_line(flags) + mode;
  spec.final_prefixes = {"im.", "netpdu.", "pool."};
  spec.stopping_line = [](const std::vector<Counter>&) { return std::string(kProgram) + ": stopping"; };
  return run_supervisor(spec, std::move(workers));
}

}  // namespace

int main(int argc, char** argv) {
  ServerCommandLine cl(kIm);
  ImPlan plan;
  cl.cli.custom("--presence", "MODE",
                "who hears of logins and logouts (ONLINE/OFFLINE): all (every logged-in user) or watched "
                "(only connections that sent WATCH name; for many users). Local mode only",
                "all", [&](const std::string& v) {
                  if (v == "all") {
                    plan.presence = ImCore::Presence::kAll;
                  } else if (v == "watched") {
                    plan.presence = ImCore::Presence::kWatched;
                  } else {
                    return std::string("expected all or watched");
                  }
                  return std::string();
                });
  cl.parse(argc, argv);
  const ServerFlags& flags = cl.values;
  ImForwarderConfig& forward = plan.forward;
  if (!flags.backend.empty()) {
    std::string err;
    if (flags.backend.find('/') != std::string::npos) {
      if (flags.backend.size() >= 108) {
        cl.cli.fail("--backend: a socket path has at most 107 bytes");
      }
      forward.backend = xtcp::netpdu::unix_address(flags.backend);
    } else if (auto a = xtcp::netpdu::parse_host_port(flags.backend, &err)) {
      forward.backend = *a;
    } else {
      cl.cli.fail("--backend: " + err);
    }
    forward.data_transports = flags.backend_data;
  } else if (cl.cli.given("--backend-data")) {
    cl.cli.fail("--backend-data needs --backend");
  }
  if (!flags.backend.empty() && cl.cli.given("--presence")) {
    cl.cli.fail("--presence: with --backend, presence is the backend's");
  }
  if (flags.shards > 1 && cl.cli.given("--presence")) {
    cl.cli.fail("--presence: with --shards, the users are the backend's, which tells every user of every login");
  }
  plan.forwarding = !flags.backend.empty();
  return flags.shards > 1 ? serve_sharded(flags, plan) : serve_process(flags, plan, nullptr);
}
