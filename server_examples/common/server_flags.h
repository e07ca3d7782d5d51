// What the example servers on the xtcp API (xtcp-echo, xtcp-im) share around their own
// work: the command line (tools/cli flags: --tun NAME | --shm NAME, --ip ADDR [--kernel-ip ADDR/PREFIX]
// [--port N] [--pcap FILE] [--io rw|uring] [--duration DURATION] [--pool-size SIZE] [--tx-cache SIZE]
// [--shards N] [--stats-interval DURATION] [--stats-json] [--capture FILTER]... [--capture-file PATH]
// [--capture-snaplen N] [--capture-rotate SIZE[,FILES]], and for xtcp-im --backend and --backend-data),
// the xtcp_config they make, failure reports with xtcp_last_error(), the signals, the main
// loop with its counter prints and packet captures (xtcp_capture_*: started with the loop,
// SIGUSR2 stops and starts them), and the counters themselves.
#pragma once

#include <xtcp/xtcp.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "tools/cli/cli.h"

namespace xtcp_examples {

using xtcp::cli::Counter;

// One --capture FILTER: which connections (0 / empty: any) and where they go.
struct CaptureFlag {
  std::string filter;       // as given, for messages
  std::string remote_addr;  // remote=ADDR[:PORT]
  std::uint16_t remote_port = 0;
  std::uint16_t local_port = 0;
  std::string file;         // file=PATH, or the name made from --capture-file
};

struct ServerFlags {
  std::string program;      // "xtcp-echo": for messages
  std::string tun;          // --tun NAME, or empty with --shm
  std::string shm;          // --shm NAME: a shared-memory link instead of the TUN device
  std::string ip;          // dotted quad, validated
  std::string kernel_ip;   // "ADDR/PREFIX" or empty, validated
  std::uint16_t port = 0;
  std::string pcap;
  std::uint32_t link_io = XTCP_IO_RW;     // --io rw|uring
  xtcp::cli::Micros duration{0};          // 0: until SIGINT/SIGTERM
  std::uint64_t pool_size = 4u << 20;     // the pool's shared receive buffer (--pool-size)
  std::uint64_t tx_cache_size = 0;        // the shared transmit cache; 0: the API's default
  std::uint64_t tun_queue_len = 0;        // the TUN device's queue toward the stack; 0: the API's
  std::uint64_t max_connections = 0;      // 0: the API's default
  int shards = 1;                         // --shards N: N processes, one queue each of a
                                          // multi-queue TUN device (server_examples/common/supervisor.h)
  // --zero-window-abort MS: XTCP_OPT_ZERO_WINDOW_ABORT_MS of the program's group; UINT64_MAX:
  // the API's default (60 s).
  std::uint64_t zero_window_abort_ms = UINT64_MAX;
  // Only for xtcp-im (ServerProgram::backend_flags), checked further by the program.
  std::string backend;                    // --backend ADDR:PORT or a Unix socket path
  int backend_data = 0;                   // --backend-data N: variant 2 with N data transports
  xtcp::cli::StatsOptions stats;
  // --capture FILTER (repeatable) with --capture-file, --capture-snaplen, --capture-rotate.
  std::vector<CaptureFlag> captures;
  std::string capture_file;
  std::uint64_t capture_snaplen = 0;        // 0: the library's (65535)
  std::uint64_t capture_rotate_bytes = 0;   // 0: one file per capture
  std::uint32_t capture_rotate_files = 0;   // with rotation; 0: the library's (8)
};

// Parses a --capture FILTER: comma-separated remote=ADDR[:PORT], remote-port=N,
// local-port=N, file=PATH, or "all" (every packet; with file= only). False with *why.
bool parse_capture_filter(const std::string& text, CaptureFlag* out, std::string* why);
// The file of the index-th (0-based) of count captures that have no file= of their own:
// --capture-file itself for one, else NAME-1.pcap, NAME-2.pcap, ... (NAME.pcap given) or
// PATH-1, PATH-2, ...
std::string capture_file_name(const std::string& capture_file, std::size_t index, std::size_t count);

// What differs between the programs' command lines.
struct ServerProgram {
  const char* name;      // "xtcp-echo"
  const char* synopsis;  // after "usage: <name> "
  const char* about;     // the paragraph under it in --help
  std::uint16_t default_port = 0;
  bool port_required = false;
  std::uint64_t default_pool_size = 4u << 20;
  bool backend_flags = false;  // --backend, --backend-data
  bool zero_window_flag = false;  // --zero-window-abort (the program applies it to its group)
  // The help of --max-connections when the program gives it a meaning of its own (nullptr:
  // the stack's limit of connections).
  const char* max_connections_help = nullptr;
  // Its default as --help shows it (nullptr: the library's).
  const char* max_connections_default = nullptr;
};

// The parsed command line; cli.fail() reports a check the program makes itself (exit 2).
struct ServerCommandLine {
  explicit ServerCommandLine(const ServerProgram& program);
  // The flags write into values through its address: neither copied nor moved.
  ServerCommandLine(const ServerCommandLine&) = delete;
  ServerCommandLine& operator=(const ServerCommandLine&) = delete;
  // Exits 0 after --help/--version, 2 after a bad or missing flag.
  void parse(int argc, char** argv);

  ServerFlags values;
  xtcp::cli::Flags cli;

 private:
  // --capture and its companions agree; names each capture's file (exit 2 when not).
  void check_captures();
};

// Where the stack serves, for messages: "TUN device NAME" or "shared-memory link NAME".
std::string link_description(const ServerFlags& flags);
// The same, short, for the start-up line: the TUN device's name (with " (io_uring)" after
// --io uring), or "shm:NAME".
std::string link_name(const ServerFlags& flags);

// The xtcp_config for these flags (pointers into flags; keep flags alive).
xtcp_config make_config(const ServerFlags& flags);

// "<program>: <context>: <xtcp_last_error()>" on stderr: the library's explanation of the
// failed call rc came from (strerror(-rc) when it has none).
void print_xtcp_error(const char* program, const std::string& context, int rc);

// xtcp_configure(config) then xtcp_initialize(--pool-size): true, or false after printing
// what failed (print_xtcp_error), the link being left closed.
bool start_stack(const char* program, const xtcp_config& config, const ServerFlags& flags);

// SIGINT/SIGTERM stop (xtcp::cli::stop_requested()), SIGUSR1 asks for the counters,
// SIGUSR2 stops the --capture captures when they run and starts them when stopped,
// SIGPIPE is ignored (a closed stdout or backend socket is an error, not a death).
void install_server_signals();

// Where a program's messages go: stdout, or stderr with --stats-json (stdout then carries
// only the JSON lines).
std::FILE* message_stream(const ServerFlags& flags);

// Starts the --capture captures (a line each on the message stream; one that cannot start
// is reported on stderr): call it before the start line, so that a client that connects
// once the line is out is captured from its SYN. run_until_stopped calls it if the
// program did not.
void start_captures(const ServerFlags& flags);

// Runs step(timeout_ms) rounds until a stop signal, the --duration, or a step that returns
// a negative errno other than -EINTR (returned). Prints the counters as --stats-interval
// and SIGUSR1 ask. Starts the --capture captures unless start_captures did, stops or
// restarts them on SIGUSR2, reports one that a write error ended, and stops them at the
// end. 0 when stopped.
int run_until_stopped(const ServerFlags& flags, xtcp::cli::StatsPrinter& stats, const std::function<int(int)>& step);

// Every counter of the stack and the API (xtcp_counters) and the pool's ("pool.*").
void collect_engine_counters(std::vector<Counter>* out);
// The pool's counters as "pool.<name>".
void collect_pool_counters(std::vector<Counter>* out);
// Prints the pool's counters as "pool.<name> <value>" lines.
void print_pool_stats(const char* program, std::FILE* out);

// A group on port whose xtcp_recv returns whole lines (delimiter '\n', at most max_message
// bytes); ack_deadline_ms > 0 also sets XTCP_OPT_ACK_DEADLINE_MS; send_all sets
// XTCP_OPT_SEND_ALL and asks for writable connections (xtcp_writable). The group
// descriptor, or a negative errno with *what naming the call that failed (nothing stays
// open then).
int open_line_group(std::uint16_t port, std::size_t max_message, std::int64_t ack_deadline_ms, bool send_all,
                    std::string* what);

}  // namespace xtcp_examples
