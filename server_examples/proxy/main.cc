// xtcp-proxy: a TCP proxy on the xtcp C API with push-based buffer management.
//   xtcp-proxy --tun NAME --ip ADDR [--kernel-ip ADDR/PREFIX] --port N --server ADDR:PORT
//              [--server ADDR:PORT ...] [--balance round-robin|least-conn|source-hash]
//              [--proxy-protocol none|v1|v2] [--max-connections N] [--connect-timeout DURATION]
//              [--idle-timeout DURATION] [--down-time DURATION] [--pair-buffer SIZE]
//              [--pool-size SIZE] [--tx-cache SIZE] [--duration DURATION]
//              [--stats-interval DURATION] [--stats-json] [--pcap FILE] [--io rw|uring]
// Clients reach port N of ADDR behind the TUN device; for each, the same stack opens a
// connection through the same device to one of the servers, and the bytes move between the
// two halves without a buffer of the proxy's own (server_examples/proxy/pairs.h).
#include <arpa/inet.h>
#include <sys/socket.h>
#include <xtcp/xtcp.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server_examples/common/server_flags.h"
#include "server_examples/proxy/balancer.h"
#include "server_examples/proxy/pairs.h"
#include "server_examples/proxy/proxy_protocol.h"

namespace {

using namespace xtcp_examples;
using namespace xtcp_proxy;
namespace cli = xtcp::cli;

constexpr const char* kProgram = "xtcp-proxy";
// A client's bytes are acknowledged when the server's half has queued them (the ACK
// follows the push). Bytes held longer, because the server's side is full, are ACKed
// anyway after this long, with the window they leave closed: the client then waits in
// zero-window probes, which never time out, instead of retransmitting into a growing
// backoff until it gives up (RFC 9293 3.8.6.1).
constexpr std::int64_t kClientAckDeadlineMs = 100;
// The stack's connections: two per pair, and room for closes the stack still finishes.
constexpr std::uint64_t kMaxStackConnections = 16'777'214;

const ServerProgram kProxy{
    kProgram,
    "--tun NAME --ip ADDR --port N --server ADDR:PORT [--server ADDR:PORT]... [OPTION]...",
    "A TCP proxy on the xtcp API: every client connection to port N of ADDR, behind the TUN device NAME, "
    "is carried to one of the servers, over a connection the same stack opens through the same device. "
    "Bytes move between the two connections as the receiving side can take them: what a slow client "
    "cannot take stays unacknowledged at the server's side, whose window closes, so the proxy holds at "
    "most --pair-buffer bytes per direction of a pair. Half-closes and resets pass through both ways.",
    0,
    true,      // --port is required
    16u << 20,  // the receive pool: held bytes of both halves of every pair
    false,
    true,  // --zero-window-abort
    "the most client connections proxied at once; more are refused with a RST",
    "as many as the stack holds, two connections per pair: 524288",
};

struct ProxyFlags {
  std::vector<ServerAddress> servers;
  BalancePolicy balance = BalancePolicy::kRoundRobin;
  ProxyHeader header = ProxyHeader::kNone;
  cli::Micros connect_timeout = std::chrono::seconds(3);
  cli::Micros idle_timeout{0};
  cli::Micros down_time = std::chrono::seconds(10);
  std::uint64_t pair_buffer = 256 * 1024;
};

// A flag whose value is one of a few words; the first is the default.
template <class T>
void choice_flag(cli::Flags& f, std::string_view name, std::string help,
                 std::vector<std::pair<std::string, T>> choices, T* out) {
  std::string words;
  for (const auto& c : choices) {
    words += words.empty() ? "" : "|";
    words += c.first;
  }
  const std::string first = choices.front().first;
  f.custom(name, words, std::move(help), first, [choices, words, out](const std::string& v) {
    for (const auto& c : choices) {
      if (c.first == v) {
        *out = c.second;
        return std::string();
      }
    }
    return std::string("expected one of ") + words + ", got '" + v + "'";
  });
}

void add_proxy_flags(cli::Flags& f, ProxyFlags* p) {
  f.custom("--server", "ADDR:PORT",
           "a server to carry clients to; give it once per server (1 to 64), in the order round-robin "
           "goes",
           "", [p](const std::string& v) {
             if (p->servers.size() >= Balancer::kMaxServers) {
               return std::string("at most 64 servers");
             }
             ServerAddress a;
             std::string why;
             if (!parse_server_address(v, &a, &why)) {
               return why;
             }
             p->servers.push_back(a);
             return std::string();
           })
      .required();
  choice_flag(f, "--balance",
              "which server a new client goes to: the next in turn, the one with the fewest open pairs, or "
              "one chosen by a hash of the client's address (the same client, the same server while it is up)",
              {{"round-robin", BalancePolicy::kRoundRobin},
               {"least-conn", BalancePolicy::kLeastConn},
               {"source-hash", BalancePolicy::kSourceHash}},
              &p->balance);
  choice_flag(f, "--proxy-protocol",
              "send a PROXY protocol header (v1 text, v2 binary) first toward the server, naming the client's "
              "address and port",
              {{"none", ProxyHeader::kNone}, {"v1", ProxyHeader::kV1}, {"v2", ProxyHeader::kV2}}, &p->header);
  f.duration("--connect-timeout",
             "a server that has not completed the handshake in this time is marked down and the client goes "
             "on to the next one; a plain number is seconds",
             &p->connect_timeout, std::chrono::milliseconds(10), std::chrono::minutes(10), std::chrono::seconds(1));
  f.duration("--idle-timeout",
             "reset both halves of a pair that moved no byte either way for this long; 0: never; a plain "
             "number is seconds",
             &p->idle_timeout, cli::Micros(0), std::chrono::hours(24 * 7), std::chrono::seconds(1));
  f.duration("--down-time",
             "how long a server that refused or timed out is left out; a plain number is seconds",
             &p->down_time, cli::Micros(0), std::chrono::hours(24), std::chrono::seconds(1));
  f.size("--pair-buffer",
         "the most bytes one pair may hold in the transmit cache in each direction (sent, not yet "
         "acknowledged by the receiving peer); beyond it the sender's bytes wait unacknowledged at its own "
         "side, and its window closes",
         &p->pair_buffer, 1024, (1ull << 31) - 1);
}

std::string startup_line(const ServerFlags& flags, const ProxyFlags& p) {
  std::string servers;
  for (const ServerAddress& s : p.servers) {
    servers += servers.empty() ? "" : ", ";
    servers += s.text;
  }
  return std::string(kProgram) + ": " + flags.ip + ":" + std::to_string(flags.port) + " on " + link_name(flags) +
         " -> " + servers + (flags.pcap.empty() ? "" : std::string(", pcap ") + flags.pcap);
}

// A group with every connection limited to pair_buffer bytes in the transmit cache, that
// reports writable connections; port 0: no listener (the servers' side). The group
// descriptor, or a negative errno with *what naming the failed call.
int open_proxy_group(std::uint16_t port, std::uint64_t pair_buffer, std::uint64_t zero_window_abort_ms,
                     std::string* what) {
  const int gd = xtcp_open_group(PF_INET, SOCK_STREAM, 0, port);
  if (gd < 0) {
    *what = port != 0 ? std::string("cannot listen on port ") + std::to_string(port) : std::string("xtcp_open_group");
    return gd;
  }
  int rc = xtcp_setopt(gd, XTCP_OPT_TX_LIMIT, static_cast<std::int64_t>(pair_buffer));
  if (rc < 0) {
    *what = "xtcp_setopt(XTCP_OPT_TX_LIMIT)";
  } else if (zero_window_abort_ms != UINT64_MAX &&
             (rc = xtcp_setopt(gd, XTCP_OPT_ZERO_WINDOW_ABORT_MS, static_cast<std::int64_t>(zero_window_abort_ms))) <
                 0) {
    *what = "xtcp_setopt(XTCP_OPT_ZERO_WINDOW_ABORT_MS)";
  } else if (port != 0 && (rc = xtcp_setopt(gd, XTCP_OPT_ACK_DEADLINE_MS, kClientAckDeadlineMs)) < 0) {
    *what = "xtcp_setopt(XTCP_OPT_ACK_DEADLINE_MS)";
  } else if ((rc = xtcp_writable(gd)) < 0 && rc != -EAGAIN) {
    *what = "xtcp_writable";  // from now on the group reports writable connections
  } else {
    return gd;
  }
  xtcp_close_group(gd);
  return rc;
}

int run(const ServerFlags& flags, const ProxyFlags& p) {
  install_server_signals();
  xtcp_config config = make_config(flags);
  if (flags.max_connections != 0) {
    config.max_connections =
        static_cast<std::uint32_t>(std::min<std::uint64_t>(2 * flags.max_connections + 1024, kMaxStackConnections));
  }
  if (!start_stack(kProgram, config, flags)) {
    return cli::kExitFailure;
  }
  int rc = 0;
  std::string what;
  const int client_gd = open_proxy_group(flags.port, p.pair_buffer, flags.zero_window_abort_ms, &what);
  if (client_gd < 0) {
    print_xtcp_error(kProgram, what, client_gd);
    xtcp_finalize();
    return cli::kExitFailure;
  }
  const int server_gd = open_proxy_group(0, p.pair_buffer, flags.zero_window_abort_ms, &what);
  if (server_gd < 0) {
    print_xtcp_error(kProgram, what, server_gd);
    xtcp_close_group(client_gd);
    xtcp_finalize();
    return cli::kExitFailure;
  }
  in_addr ip{};
  inet_pton(AF_INET, flags.ip.c_str(), &ip);
  ProxyOptions options;
  options.listen_addr = ntohl(ip.s_addr);
  options.listen_port = flags.port;
  options.header = p.header;
  options.max_pairs = flags.max_connections;
  options.connect_timeout = p.connect_timeout;
  options.idle_timeout = p.idle_timeout;
  Balancer balancer(p.servers, p.balance, p.down_time);
  PairTable pairs(client_gd, server_gd, &balancer, options);

  std::FILE* msg = message_stream(flags);
  start_captures(flags);  // before the start line: a client that waits for it is captured whole
  std::fprintf(msg, "%s\n", startup_line(flags, p).c_str());
  std::fflush(msg);
  auto collect = [&](std::vector<Counter>* out) {
    pairs.counters(out);
    collect_engine_counters(out);
  };
  cli::StatsPrinter stats(kProgram, flags.stats, collect);
  int exit_code = cli::kExitOk;
  rc = run_until_stopped(flags, stats, [&](int timeout_ms) { return pairs.run_once(timeout_ms); });
  if (rc < 0) {
    print_xtcp_error(kProgram, "waiting for work", rc);
    exit_code = cli::kExitFailure;
  }
  if (flags.stats.json) {
    std::fprintf(msg, "%s: stopping\n", kProgram);
    stats.print();
  } else {
    std::fprintf(stdout, "%s: stopping: %llu pairs open, %llu in all\n", kProgram,
                 static_cast<unsigned long long>(pairs.pairs_open()),
                 static_cast<unsigned long long>(pairs.pairs_total()));
    std::vector<Counter> rows;
    pairs.counters(&rows);
    cli::print_counters_text(stdout, rows);
    print_pool_stats(kProgram, stdout);
  }
  xtcp_close_group(server_gd);
  xtcp_close_group(client_gd);
  xtcp_finalize();
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  ServerCommandLine cl(kProxy);
  ProxyFlags proxy;
  add_proxy_flags(cl.cli, &proxy);
  cl.parse(argc, argv);
  const ServerFlags& flags = cl.values;
  if (!flags.shm.empty()) {
    cl.cli.fail("--shm: the proxy reaches its servers through the TUN device; it needs --tun");
  }
  if (flags.shards > 1) {
    cl.cli.fail("--shards: the proxy runs as one process (both halves of a pair live in one stack)");
  }
  if (proxy.servers.empty()) {
    cl.cli.fail("--server ADDR:PORT is required (at least one server)");
  }
  in_addr ip{};
  inet_pton(AF_INET, flags.ip.c_str(), &ip);
  for (const ServerAddress& s : proxy.servers) {
    if (s.addr == ntohl(ip.s_addr)) {
      cl.cli.fail(std::string("--server ") + s.text + ": that is the proxy's own address (--ip)");
    }
  }
  return run(flags, proxy);
}
