// The example servers' command line (tools/cli), checked here so that a typo exits 2 before
// the stack is touched; their xtcp_config, failure reports, signals, main loop and counters.
#include "server_examples/common/server_flags.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>

namespace xtcp_examples {
namespace {

namespace cli = xtcp::cli;

bool is_ipv4(const std::string& s) {
  in_addr a{};
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

}  // namespace

ServerCommandLine::ServerCommandLine(const ServerProgram& p) : cli(p.name, p.synopsis, p.about) {
  ServerFlags& f = values;
  f.pool_size = p.default_pool_size;
  f.port = p.default_port;
  // Exactly one of --tun and --shm: checked in parse(), since the flag library knows only
  // flags that are required on their own.
  cli.custom("--tun", "NAME", "the TUN device to create or attach (1 to 15 characters); this or --shm is required",
             "none", [&f](const std::string& v) {
               if (v.empty() || v.size() >= 16) {
                 return "interface names have 1 to 15 characters, got '" + v + "'";
               }
               f.tun = v;
               return std::string();
             });
  cli.custom("--shm", "NAME",
             "serve on a shared-memory link instead of a TUN device: create /dev/shm/xtcp-NAME (1 to 32 "
             "characters, no '/') for one client process to attach to (xtcp-loadgen --shm NAME)",
             "none", [&f](const std::string& v) {
               if (v.empty() || v.size() > 32 || v.find('/') != std::string::npos) {
                 return "a shared-memory link name has 1 to 32 characters and no '/', got '" + v + "'";
               }
               f.shm = v;
               return std::string();
             });
  cli.custom("--ip", "ADDR", "the stack's own IPv4 address, behind the TUN device", "", [&f](const std::string& v) {
       if (!is_ipv4(v)) {
         return "'" + v + "' is not an IPv4 address";
       }
       f.ip = v;
       return std::string();
     })
      .required();
  cli.custom("--kernel-ip", "ADDR/PREFIX",
             "give the kernel's end of the TUN this address and bring the device up (prefix 1 to 30); "
             "without it the device is used as it is",
             "none", [&f](const std::string& v) {
               const auto slash = v.find('/');
               std::uint64_t prefix = 0;
               std::string why;
               const bool ok = slash != std::string::npos && is_ipv4(v.substr(0, slash)) &&
                               v.find_first_not_of("0123456789", slash + 1) == std::string::npos &&
                               slash + 1 < v.size() && v.size() - slash <= 3 &&
                               (prefix = std::stoull(v.substr(slash + 1))) >= 1 && prefix <= 30;
               if (!ok) {
                 return "expected ADDR/PREFIX with prefix 1 to 30, got '" + v + "'";
               }
               f.kernel_ip = v;
               return std::string();
             });
  auto& port = cli.custom("--port", "N", "the TCP port to listen on (1 to 65535)",
                          p.default_port != 0 ? std::to_string(p.default_port) : std::string(),
                          [&f](const std::string& v) {
                            const bool digits = !v.empty() && v.size() <= 5 &&
                                                v.find_first_not_of("0123456789") == std::string::npos;
                            const unsigned long n = digits ? std::stoul(v) : 0;
                            if (n < 1 || n > 65535) {
                              return "'" + v + "' is not a port number from 1 to 65535";
                            }
                            f.port = static_cast<std::uint16_t>(n);
                            return std::string();
                          });
  if (p.port_required) {
    port.required();
  }
  cli.text("--pcap", "FILE", "mirror all traffic of the TUN device to this pcap file", &f.pcap)
      .default_text("none");
  cli.custom("--io", "rw|uring",
             "how packets cross the TUN device: rw, one read(2)/write(2) per packet; uring, io_uring, "
             "the answers to each batch of packets handed to the kernel in one system call (more "
             "packets per second, a little more latency per exchange)",
             "rw", [&f](const std::string& v) {
               if (v == "rw") {
                 f.link_io = XTCP_IO_RW;
               } else if (v == "uring") {
                 f.link_io = XTCP_IO_URING;
               } else {
                 return "expected rw or uring, got '" + v + "'";
               }
               return std::string();
             });
  cli.duration("--duration", "stop after this long; 0: run until SIGINT/SIGTERM; a plain number is seconds",
               &f.duration, cli::Micros(0), std::chrono::hours(24 * 365), std::chrono::seconds(1));
  cli.size("--pool-size,--rx-buffer", "the pool's shared receive buffer", &f.pool_size, 4096, 1ull << 34);
  cli.size("--tx-cache,--tx-buffer", "the transmit cache all connections share (answers wait there for "
           "their client's ACK)", &f.tx_cache_size, 4096, 1ull << 34)
      .default_text("64M, the library's");
  cli.number("--tun-queue", "N",
             "packets the kernel may queue toward the stack on the TUN device before it drops (a burst "
             "from many clients needs room); with --shm, the packets each ring of the link holds",
             &f.tun_queue_len, 1, 524'288)
      .default_text("the library's: on TUN 8 packets per connection of --max-connections, 10000 to 524288 "
                    "(the kernel's most per queue); with --shm 10000");
  if (p.zero_window_flag) {
    cli.number("--zero-window-abort", "MS",
               "reset a connection whose client keeps window 0 this long while its answers hold "
               "transmit cache space under pressure (0: never)",
               &f.zero_window_abort_ms, 0, 86'400'000)
        .default_text("60000, the library's");
  }
  cli.number("--max-connections", "N",
             p.max_connections_help != nullptr ? p.max_connections_help : "the most connections the stack holds at once",
             &f.max_connections, 1,
             16'777'214)
      .default_text("1048576, the library's");
  cli.number("--shards", "N",
             "serve with N processes (1 to 64), each with its own stack on its own queue of the multi-queue "
             "TUN device NAME; the kernel keeps each flow on one queue; a supervisor starts them, forwards "
             "signals and prints the sum of their counters (only with --tun)",
             &f.shards, 1, 64);
  if (p.backend_flags) {
    cli.text("--backend", "ADDR:PORT|PATH",
             "forwarding mode: send the clients' requests in NetPDUs to xtcp-backend at this TCP "
             "address or Unix socket path (a path contains '/') and return its answers",
             &f.backend)
        .default_text("none: answer by itself");
    cli.number("--backend-data", "N",
               "with --backend: NetPDU variant 2, a control transport and N data transports (0: variant 1, "
               "one transport)",
               &f.backend_data, 0, 64);
  }
  cli::add_stats_flags(cli, &f.stats,
                       "every counter (the stack's IP, TCP and per-state counters, the API's, memory, the "
                       "pool's and the program's own)");
  cli.epilog(cli::server_signals_help());
  cli.epilog(cli::exit_codes_help());
}

void ServerCommandLine::parse(int argc, char** argv) {
  cli.library_version(xtcp_version());
  cli.parse(argc, argv);
  if (values.tun.empty() == values.shm.empty()) {
    cli.fail(values.tun.empty() ? "--tun NAME is required (or --shm NAME, a shared-memory link)"
                                : "--tun and --shm exclude each other: the stack serves on one link");
  }
  if (!values.shm.empty() && cli.given("--shards")) {
    cli.fail("--shards: a shared-memory link has one queue and one client process; shards need --tun");
  }
  if (!values.shm.empty() && !values.kernel_ip.empty()) {
    cli.fail("--kernel-ip: a shared-memory link has no kernel side (it is for --tun)");
  }
  if (!values.shm.empty() && values.link_io == XTCP_IO_URING) {
    cli.fail("--io uring: a shared-memory link makes no system call per packet (it is for --tun)");
  }
  if (!values.kernel_ip.empty() && values.kernel_ip.substr(0, values.kernel_ip.find('/')) == values.ip) {
    cli.fail("--kernel-ip: the kernel's end of the TUN needs an address other than --ip " + values.ip);
  }
}

std::string link_description(const ServerFlags& flags) {
  return flags.shm.empty() ? "TUN device " + flags.tun : "shared-memory link " + flags.shm;
}

std::string link_name(const ServerFlags& flags) {
  if (!flags.shm.empty()) {
    return "shm:" + flags.shm;
  }
  return flags.link_io == XTCP_IO_URING ? flags.tun + " (io_uring)" : flags.tun;
}

xtcp_config make_config(const ServerFlags& flags) {
  xtcp_config c{};
  c.tun_name = flags.tun.empty() ? nullptr : flags.tun.c_str();
  c.shm_name = flags.shm.empty() ? nullptr : flags.shm.c_str();
  c.local_addr = flags.ip.c_str();
  c.kernel_addr = flags.kernel_ip.empty() ? nullptr : flags.kernel_ip.c_str();
  c.pcap_path = flags.pcap.empty() ? nullptr : flags.pcap.c_str();
  c.tx_cache_size = static_cast<std::size_t>(flags.tx_cache_size);
  c.tun_queue_len = static_cast<std::uint32_t>(flags.tun_queue_len);
  c.max_connections = static_cast<std::uint32_t>(flags.max_connections);
  // Every shard adds its queue to the one device; a single process keeps the plain device.
  c.tun_multi_queue = flags.shards > 1 ? 1 : 0;
  c.link_io = flags.link_io;
  return c;
}

void print_xtcp_error(const char* program, const std::string& context, int rc) {
  const char* why = xtcp_last_error();
  std::fflush(stdout);
  std::fprintf(stderr, "%s: %s: %s\n", program, context.c_str(),
               why != nullptr && *why != '\0' ? why : std::strerror(-rc));
}

void install_server_signals() {
  cli::on_stop_signals({SIGINT, SIGTERM});
  cli::on_stats_signal(SIGUSR1);
  cli::ignore_signal(SIGPIPE);
}

std::FILE* message_stream(const ServerFlags& flags) { return flags.stats.json ? stderr : stdout; }

int run_until_stopped(const ServerFlags& flags, cli::StatsPrinter& stats, const std::function<int(int)>& step) {
  constexpr int kRoundMs = 100;
  const auto start = std::chrono::steady_clock::now();
  const bool limited = flags.duration.count() != 0;
  while (!cli::stop_requested() && (!limited || std::chrono::steady_clock::now() - start < flags.duration)) {
    const int rc = step(std::min(kRoundMs, stats.ms_until_due()));
    stats.poll();
    if (rc < 0 && rc != -EINTR) {  // EINTR: a signal; the loop condition or poll() looks at it
      return rc;
    }
  }
  return 0;
}

void collect_engine_counters(std::vector<Counter>* out) {
  const int n = xtcp_counters(nullptr, 0);
  if (n > 0) {
    std::vector<xtcp_counter> c(static_cast<std::size_t>(n));
    const int got = std::min(xtcp_counters(c.data(), c.size()), n);
    for (int i = 0; i < got; ++i) {
      out->push_back(Counter{c[static_cast<std::size_t>(i)].name, c[static_cast<std::size_t>(i)].value});
    }
  }
  collect_pool_counters(out);
}

void collect_pool_counters(std::vector<Counter>* out) {
  struct xtcp_pool_stats st {};
  if (xtcp_pool_stats(xtcp_default_pool(), &st) < 0) {
    return;
  }
  const Counter rows[] = {
      {"pool.connections", st.connections},       {"pool.groups", st.groups},
      {"pool.rx_buffer_size", st.rx_buffer_size}, {"pool.rx_buffer_used", st.rx_buffer_used},
      {"pool.rx_bytes", st.rx_bytes},             {"pool.rx_dropped_full", st.rx_dropped_full},
      {"pool.tx_cache_size", st.tx_cache_size},   {"pool.tx_cache_used", st.tx_cache_used},
      {"pool.acks_on_answers", st.acks_on_answers}, {"pool.acks_alone", st.acks_alone},
      {"pool.answers_from_cache", st.answers_from_cache}, {"pool.accept_timeouts", st.accept_timeouts},
  };
  out->insert(out->end(), std::begin(rows), std::end(rows));
}

void print_pool_stats(const char* program, std::FILE* out) {
  struct xtcp_pool_stats st {};
  const int rc = xtcp_pool_stats(xtcp_default_pool(), &st);
  if (rc < 0) {
    std::fprintf(out, "%s: no pool statistics: %s\n", program, xtcp_last_error());
    return;
  }
  std::vector<Counter> rows;
  collect_pool_counters(&rows);
  cli::print_counters_text(out, rows);
}

int open_line_group(std::uint16_t port, std::size_t max_message, std::int64_t ack_deadline_ms, bool send_all,
                    std::string* what) {
  const int gd = xtcp_open_group(PF_INET, SOCK_STREAM, 0, port);
  if (gd < 0) {
    *what = "xtcp_open_group";
    return gd;
  }
  const struct {
    int option;
    std::int64_t value;
    const char* name;
    bool wanted;
  } opts[] = {
      {XTCP_OPT_FRAMING, XTCP_FRAME_DELIMITER, "xtcp_setopt(XTCP_OPT_FRAMING)", true},
      {XTCP_OPT_DELIMITER, '\n', "xtcp_setopt(XTCP_OPT_DELIMITER)", true},
      {XTCP_OPT_MAX_MESSAGE, static_cast<std::int64_t>(max_message), "xtcp_setopt(XTCP_OPT_MAX_MESSAGE)", true},
      {XTCP_OPT_ACK_DEADLINE_MS, ack_deadline_ms, "xtcp_setopt(XTCP_OPT_ACK_DEADLINE_MS)", ack_deadline_ms > 0},
      {XTCP_OPT_SEND_ALL, 1, "xtcp_setopt(XTCP_OPT_SEND_ALL)", send_all},
  };
  for (const auto& o : opts) {
    if (!o.wanted) {
      continue;
    }
    const int rc = xtcp_setopt(gd, o.option, o.value);
    if (rc < 0) {
      *what = o.name;
      xtcp_close_group(gd);
      return rc;
    }
  }
  if (send_all) {
    // From the first call on, the group reports connections whose refused answer now fits.
    const int rc = xtcp_writable(gd);
    if (rc < 0 && rc != -EAGAIN) {
      *what = "xtcp_writable";
      xtcp_close_group(gd);
      return rc;
    }
  }
  return gd;
}

}  // namespace xtcp_examples
