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
#include <memory>

namespace xtcp_examples {
namespace {

namespace cli = xtcp::cli;

bool is_ipv4(const std::string& s) {
  in_addr a{};
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

// A number of at most five decimal digits, or 0 for anything else.
unsigned long five_digits(const std::string& v) {
  const bool digits = !v.empty() && v.size() <= 5 && v.find_first_not_of("0123456789") == std::string::npos;
  return digits ? std::stoul(v) : 0;
}

// A port number 1 to 65535 written in decimal, or 0.
std::uint16_t port_of(const std::string& v) {
  const unsigned long n = five_digits(v);
  return n <= 65535 ? static_cast<std::uint16_t>(n) : 0;
}

// NAME<separator><number>.pcap for NAME.pcap, else PATH<separator><number>.
std::string with_tag(const std::string& path, char separator, std::uint64_t number) {
  constexpr std::string_view kExt = ".pcap";
  const bool pcap = path.size() > kExt.size() && path.compare(path.size() - kExt.size(), kExt.size(), kExt) == 0;
  std::string out(path, 0, pcap ? path.size() - kExt.size() : path.size());
  out += separator;
  out += std::to_string(number);
  if (pcap) {
    out += kExt;
  }
  return out;
}

// SIGUSR2: the main loop toggles the captures (a flag only: async-signal-safe).
volatile std::sig_atomic_t g_capture_toggle = 0;
void on_capture_signal(int) { g_capture_toggle = 1; }

// The --capture captures of a running program: started by start_captures, stopped and
// started again by SIGUSR2, each start and stop (and a capture a write error ended)
// reported in one line on the program's message stream.
class ProgramCaptures {
 public:
  ProgramCaptures(const ServerFlags& flags, std::FILE* out)
      : flags_(flags), out_(out), ids_(flags.captures.size(), 0) {}
  ProgramCaptures(const ProgramCaptures&) = delete;
  ProgramCaptures& operator=(const ProgramCaptures&) = delete;

  void toggle() {
    if (flags_.captures.empty()) {
      say("SIGUSR2: no --capture to start or stop");
    } else if (running_) {
      stop();
    } else {
      start();
    }
  }

  // "xtcp-im: capture 1 started: remote=198.18.0.5:40001 -> /tmp/a.pcap"; a capture that
  // cannot start is reported on stderr and the program serves on without it.
  void start() {
    for (std::size_t i = 0; i < flags_.captures.size(); ++i) {
      const CaptureFlag& c = flags_.captures[i];
      xtcp_capture_spec spec{};
      spec.path = c.file.c_str();
      spec.remote_addr = c.remote_addr.empty() ? nullptr : c.remote_addr.c_str();
      spec.remote_port = c.remote_port;
      spec.local_port = c.local_port;
      spec.snaplen = static_cast<std::uint32_t>(flags_.capture_snaplen);
      spec.rotate_bytes = flags_.capture_rotate_bytes;
      spec.rotate_files = flags_.capture_rotate_files;
      const int id = xtcp_capture_start(&spec);
      if (id < 0) {
        print_xtcp_error(flags_.program.c_str(), "cannot start capture " + c.filter, id);
        continue;
      }
      ids_[i] = id;
      say(std::string("capture ") + std::to_string(id) + " started: " + c.filter + " -> " + c.file);
    }
    running_ = std::any_of(ids_.begin(), ids_.end(), [](int id) { return id != 0; });
  }

  // "xtcp-im: capture 1 stopped: 12 packets, 1480 bytes -> /tmp/a.pcap"
  void stop() {
    for (std::size_t i = 0; i < ids_.size(); ++i) {
      if (ids_[i] == 0) {
        continue;
      }
      xtcp_capture_stats st{};
      xtcp_capture_query(ids_[i], &st);
      const int rc = xtcp_capture_stop(ids_[i]);
      const std::string what = std::string("capture ") + std::to_string(ids_[i]);
      ids_[i] = 0;
      if (rc < 0) {
        print_xtcp_error(flags_.program.c_str(), what + " (" + flags_.captures[i].file + ")", rc);
      }
      say(what + " stopped: " + std::to_string(st.packets) + " packets, " + std::to_string(st.bytes) + " bytes -> " +
          file_written(i, st.file_index));
    }
    running_ = false;
  }

  // A capture that a write error ended is reported and its place given back.
  void check() {
    for (std::size_t i = 0; i < ids_.size(); ++i) {
      xtcp_capture_stats st{};
      if (ids_[i] == 0 || xtcp_capture_query(ids_[i], &st) < 0 || st.running != 0) {
        continue;
      }
      const std::string what = std::string("capture ") + std::to_string(ids_[i]);
      xtcp_capture_stop(ids_[i]);
      ids_[i] = 0;
      std::fflush(out_);
      std::fprintf(stderr, "%s: %s (%s) failed after %llu packets: %s; stopped\n", flags_.program.c_str(),
                   what.c_str(), file_written(i, st.file_index).c_str(), static_cast<unsigned long long>(st.packets),
                   std::strerror(st.error));
    }
    running_ = std::any_of(ids_.begin(), ids_.end(), [](int id) { return id != 0; });
  }

 private:
  void say(const std::string& line) {
    std::fprintf(out_, "%s: %s\n", flags_.program.c_str(), line.c_str());
    std::fflush(out_);
  }
  // The file the capture wrote last (rotation: PATH, NAME.1.pcap, NAME.2.pcap, ...).
  std::string file_written(std::size_t i, std::uint64_t file_index) const {
    const std::string& path = flags_.captures[i].file;
    return file_index == 0 ? path : with_tag(path, '.', file_index);
  }

  const ServerFlags& flags_;
  std::FILE* out_;
  std::vector<int> ids_;  // 0: not running
  bool running_ = false;
};

// The captures of this process, from start_captures to the end of run_until_stopped.
std::unique_ptr<ProgramCaptures> g_captures;

}  // namespace

void start_captures(const ServerFlags& flags) {
  if (g_captures) {
    return;
  }
  g_captures = std::make_unique<ProgramCaptures>(flags, message_stream(flags));
  g_capture_toggle = 0;
  g_captures->start();
}

bool parse_capture_filter(const std::string& text, CaptureFlag* out, std::string* why) {
  constexpr const char* kExpected =
      "expected comma-separated remote=ADDR[:PORT], remote-port=N, local-port=N, file=PATH, or all";
  *out = CaptureFlag{};
  out->filter = text;
  bool all = false;
  bool remote_with_port = false;
  std::vector<std::string> seen;
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    const std::string item = text.substr(at, comma - at);
    at = comma + 1;
    const std::size_t eq = item.find('=');
    const std::string key = item.substr(0, eq);
    const std::string value = eq == std::string::npos ? std::string() : item.substr(eq + 1);
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
      *why = "'" + key + "' given twice in '" + text + "'";
      return false;
    }
    seen.push_back(key);
    if (item == "all") {
      all = true;
    } else if (key == "remote" && eq != std::string::npos) {
      const std::size_t colon = value.find(':');
      out->remote_addr = value.substr(0, colon);
      if (!is_ipv4(out->remote_addr)) {
        *why = "remote=" + value + ": '" + out->remote_addr + "' is not an IPv4 address";
        return false;
      }
      remote_with_port = colon != std::string::npos;
      if (remote_with_port && (out->remote_port = port_of(value.substr(colon + 1))) == 0) {
        *why = "remote=" + value + ": '" + value.substr(colon + 1) + "' is not a port number from 1 to 65535";
        return false;
      }
    } else if ((key == "remote-port" || key == "local-port") && eq != std::string::npos) {
      const std::uint16_t port = port_of(value);
      if (port == 0) {
        *why = key + "=" + value + ": '" + value + "' is not a port number from 1 to 65535";
        return false;
      }
      (key == "remote-port" ? out->remote_port : out->local_port) = port;
    } else if (key == "file" && eq != std::string::npos && !value.empty()) {
      out->file = value;
    } else {
      *why = "'" + item + "' in '" + text + "': " + kExpected;
      return false;
    }
  }
  const bool fields = !out->remote_addr.empty() || out->remote_port != 0 || out->local_port != 0;
  if (all == fields) {
    *why = all ? "'all' takes every packet: it excludes remote=, remote-port= and local-port= ('" + text + "')"
               : "'" + text + "' names no connection: " + kExpected;
    return false;
  }
  if (remote_with_port && std::find(seen.begin(), seen.end(), "remote-port") != seen.end()) {
    *why = "'" + text + "' gives the remote port twice (remote=ADDR:PORT and remote-port=N)";
    return false;
  }
  return true;
}

std::string capture_file_name(const std::string& capture_file, std::size_t index, std::size_t count) {
  return count <= 1 ? capture_file : with_tag(capture_file, '-', index + 1);
}

ServerCommandLine::ServerCommandLine(const ServerProgram& p) : cli(p.name, p.synopsis, p.about) {
  ServerFlags& f = values;
  f.program = p.name;
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
      .default_text(p.max_connections_default != nullptr ? p.max_connections_default : "1048576, the library's");
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
  cli.custom("--capture", "FILTER",
             "write the packets of the connections FILTER picks, both directions, to a pcap file while the "
             "program runs (repeatable, up to 16): comma-separated remote=ADDR[:PORT], remote-port=N, "
             "local-port=N (all given must match), file=PATH (else --capture-file), or all (every packet). "
             "The captures start with the program; SIGUSR2 stops them, and sent again starts them with new files",
             "none", [&f](const std::string& v) {
               CaptureFlag c;
               std::string why;
               if (!parse_capture_filter(v, &c, &why)) {
                 return why;
               }
               if (f.captures.size() >= XTCP_MAX_CAPTURES) {
                 return std::string("at most ") + std::to_string(XTCP_MAX_CAPTURES) + " captures";
               }
               f.captures.push_back(c);
               return std::string();
             });
  cli.text("--capture-file", "PATH",
           "the pcap file of the --capture captures without file=: PATH for one; for several NAME-1.pcap, "
           "NAME-2.pcap, ... (PATH being NAME.pcap, else PATH-1, PATH-2, ...); created or truncated when a "
           "capture starts",
           &f.capture_file)
      .default_text("none");
  cli.number("--capture-snaplen", "N", "bytes kept of each captured packet (1 to 65535)", &f.capture_snaplen, 1,
             65535)
      .default_text("65535");
  cli.custom("--capture-rotate", "SIZE[,FILES]",
             "start a capture's next file when the current one reaches SIZE (at least 4K): PATH, then "
             "NAME.1.pcap, NAME.2.pcap, ...; keep the newest FILES (1 to 10000, default 8), removing older ones",
             "none: one file", [&f](const std::string& v) {
               const std::size_t comma = v.find(',');
               std::string why;
               const auto bytes = cli::parse_size(v.substr(0, comma), 1, &why);
               if (!bytes) {
                 return "'" + v.substr(0, comma) + "': " + why;
               }
               if (*bytes < 4096) {
                 return "'" + v.substr(0, comma) + "': a capture file holds at least 4K before the next begins";
               }
               f.capture_rotate_bytes = *bytes;
               if (comma != std::string::npos) {
                 const std::string n = v.substr(comma + 1);
                 const unsigned long files = five_digits(n);
                 if (files < 1 || files > 10000) {
                   return "'" + n + "': the files kept are 1 to 10000";
                 }
                 f.capture_rotate_files = static_cast<std::uint32_t>(files);
               }
               return std::string();
             });
  cli::add_stats_flags(cli, &f.stats,
                       "every counter (the stack's IP, TCP and per-state counters, the API's, memory, the "
                       "pool's and the program's own)");
  cli.epilog(cli::server_signals_help());
  cli.epilog("SIGUSR2 stops the --capture captures when they run (closing their files) and starts them again "
             "when stopped (the files begin anew); each start and stop prints a line.\n");
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
  check_captures();
}

void ServerCommandLine::check_captures() {
  ServerFlags& f = values;
  if (f.captures.empty()) {
    for (const char* flag : {"--capture-file", "--capture-snaplen", "--capture-rotate"}) {
      if (cli.given(flag)) {
        cli.fail(std::string(flag) + " needs --capture FILTER");
      }
    }
    return;
  }
  if (f.shards > 1) {
    cli.fail("--capture: with --shards every shard is a process of its own; capture with a single process");
  }
  const auto unnamed = static_cast<std::size_t>(
      std::count_if(f.captures.begin(), f.captures.end(), [](const CaptureFlag& c) { return c.file.empty(); }));
  if (unnamed > 0 && f.capture_file.empty()) {
    cli.fail("--capture: a capture without file=PATH needs --capture-file PATH");
  }
  if (unnamed == 0 && !f.capture_file.empty()) {
    cli.fail("--capture-file: every --capture names its own file=");
  }
  std::size_t index = 0;
  for (CaptureFlag& c : f.captures) {
    if (c.file.empty()) {
      c.file = capture_file_name(f.capture_file, index++, unnamed);
    }
  }
  for (std::size_t i = 0; i < f.captures.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (f.captures[i].file == f.captures[j].file) {
        cli.fail("--capture: two captures write to " + f.captures[i].file);
      }
    }
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

bool start_stack(const char* program, const xtcp_config& config, const ServerFlags& flags) {
  int rc = xtcp_configure(&config);
  if (rc < 0) {
    print_xtcp_error(program, "cannot configure the link", rc);
    return false;
  }
  rc = xtcp_initialize(static_cast<std::size_t>(flags.pool_size));
  if (rc < 0) {
    print_xtcp_error(program, "cannot start on " + link_description(flags), rc);
    return false;
  }
  return true;
}

void install_server_signals() {
  cli::on_stop_signals({SIGINT, SIGTERM});
  cli::on_stats_signal(SIGUSR1);
  cli::ignore_signal(SIGPIPE);
  struct sigaction sa {};
  sa.sa_handler = on_capture_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: the loop's wait ends with EINTR and sees the toggle at once
  sigaction(SIGUSR2, &sa, nullptr);
}

std::FILE* message_stream(const ServerFlags& flags) { return flags.stats.json ? stderr : stdout; }

int run_until_stopped(const ServerFlags& flags, cli::StatsPrinter& stats, const std::function<int(int)>& step) {
  constexpr int kRoundMs = 100;
  const auto start = std::chrono::steady_clock::now();
  const bool limited = flags.duration.count() != 0;
  start_captures(flags);
  ProgramCaptures& captures = *g_captures;
  int rc = 0;
  while (!cli::stop_requested() && (!limited || std::chrono::steady_clock::now() - start < flags.duration)) {
    rc = step(std::min(kRoundMs, stats.ms_until_due()));
    stats.poll();
    if (g_capture_toggle != 0) {
      g_capture_toggle = 0;
      captures.toggle();
    }
    captures.check();
    if (rc < 0 && rc != -EINTR) {  // EINTR: a signal; the loop condition or poll() looks at it
      break;
    }
    rc = 0;
  }
  captures.stop();
  g_captures.reset();
  return rc;
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
