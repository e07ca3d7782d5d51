// xtcp-echo: an echo server on the xtcp C API.
//   xtcp-echo (--tun NAME | --shm NAME) --ip ADDR [--kernel-ip ADDR/PREFIX] [--port N] [--pcap FILE]
//             [--rx-buffer SIZE] [--tx-buffer SIZE] [--duration DURATION]
//             [--shards N] [--stats-interval DURATION] [--stats-json]
// xtcp_recv -> xtcp_send(ackd = bytes echoed, the same bytes): the ACK rides on the echo.
// The group sends whole echoes or nothing (XTCP_OPT_SEND_ALL): an echo the transmit cache
// cannot take leaves its bytes unacknowledged in the pool, and the stack offers them again
// from xtcp_recv once the room is there, so the server keeps no queue of its own. After
// the client's FIN the connection is closed behind the last echoed byte.
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

constexpr int kMaxAcceptsPerRound = 4096;
constexpr int kMaxRecvsPerRound = 8192;
constexpr std::size_t kMaxEcho = 64 * 1024;

class EchoServer {
 public:
  // piece: the largest echo sent at once (a quarter of the transmit cache at most, so that
  // a refused echo always fits once the cache drains).
  EchoServer(int gd, std::size_t piece) : gd_(gd), buf_(piece) {}

  // One round of xtcp_select, accepts, echoes. 0 or xtcp_select's error.
  int run_once(int timeout_ms) {
    xtcp_set readable;
    xtcp_set acceptable;
    XTCP_ZERO(&readable);
    XTCP_ZERO(&acceptable);
    XTCP_SET(gd_, &readable);
    XTCP_SET(gd_, &acceptable);
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    const int rc = xtcp_select(gd_ + 1, &readable, &acceptable, &tv);
    if (rc < 0) {
      return rc;
    }
    if (rc > 0 && XTCP_ISSET(gd_, &acceptable)) {
      for (int i = 0; i < kMaxAcceptsPerRound && xtcp_accept(gd_) > 0; ++i) {
        ++accepted_;
      }
    }
    if (rc > 0 && XTCP_ISSET(gd_, &readable)) {
      serve();
    }
    return 0;
  }

  void counters(std::vector<Counter>* out) const {
    const Counter rows[] = {
        {"echo.accepted", accepted_},           {"echo.bytes_echoed", echoed_},
        {"echo.client_closes", client_closes_}, {"echo.resets", resets_},
        {"echo.deferred_sends", deferred_},     {"echo.unechoed_at_close", unechoed_},
    };
    out->insert(out->end(), std::begin(rows), std::end(rows));
  }

  void print_counters(std::FILE* out) const {
    std::fprintf(out, "%s: stopping: %llu connections accepted, %llu bytes echoed, 0 closing\n", kProgram,
                 static_cast<unsigned long long>(accepted_), static_cast<unsigned long long>(echoed_));
    std::vector<Counter> rows;
    counters(&rows);
    cli::print_counters_text(out, rows);
  }

 private:
  void serve() {
    for (int calls = 0; calls < kMaxRecvsPerRound; ++calls) {
      int cd = -1;
      const int n = xtcp_recv(gd_, &cd, buf_.data(), buf_.size());
      if (n == -EAGAIN) {
        break;
      }
      if (n > 0) {
        echo(cd, static_cast<std::size_t>(n));
        continue;
      }
      if (cd > 0 && n == 0) {
        ++client_closes_;
        // Bytes still unacknowledged here were refused an echo and have not come again:
        // the stack reports the client's FIN once every byte was shown, and offers none
        // after it. Count them rather than lose them silently.
        xtcp_conn_info info{};
        if (xtcp_connection_info(gd_, cd, &info) == 0) {
          unechoed_ += info.rx_held;
        }
        xtcp_close(gd_, cd);  // our FIN follows the last echo
        continue;
      }
      if (cd > 0) {
        ++resets_;  // -ECONNRESET, -ETIMEDOUT, or a message that cannot be read
        xtcp_close(gd_, cd);
        continue;
      }
      break;
    }
  }

  void echo(int cd, std::size_t n) {
    const int rc = xtcp_send(gd_, cd, n, buf_.data(), n);
    if (rc == static_cast<int>(n)) {
      echoed_ += n;
    } else if (rc == -EAGAIN) {
      ++deferred_;  // not acknowledged: the bytes come again once the echo fits
    }
    // Other failures (-EPIPE, -ECONNRESET, ...): xtcp_recv reports the connection's end.
  }

  int gd_;
  std::vector<char> buf_;
  std::uint64_t accepted_ = 0;
  std::uint64_t echoed_ = 0;
  std::uint64_t client_closes_ = 0;
  std::uint64_t resets_ = 0;
  std::uint64_t deferred_ = 0;
  std::uint64_t unechoed_ = 0;
};

// The largest echo sent at once: kMaxEcho, or a quarter of the transmit cache.
std::size_t echo_piece() {
  struct xtcp_pool_stats st {};
  if (xtcp_pool_stats(xtcp_default_pool(), &st) < 0 || st.tx_cache_size == 0) {
    return kMaxEcho;
  }
  return std::clamp<std::size_t>(static_cast<std::size_t>(st.tx_cache_size / 4), 256, kMaxEcho);
}

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
  const int gd = xtcp_open_group(PF_INET, SOCK_STREAM, 0, flags.port);
  if (gd < 0) {
    print_xtcp_error(kProgram, "cannot listen on port " + std::to_string(flags.port), gd);
    xtcp_finalize();
    return cli::kExitFailure;
  }
  rc = xtcp_setopt(gd, XTCP_OPT_SEND_ALL, 1);
  if (rc < 0) {
    print_xtcp_error(kProgram, "cannot set XTCP_OPT_SEND_ALL", rc);
    xtcp_close_group(gd);
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
    echo.print_counters(stdout);
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
