// Command-line flags shared by the example servers on the xtcp API (xtcp-echo, xtcp-im):
// --tun NAME --ip ADDR [--kernel-ip ADDR/PREFIX] [--port N] [--pcap FILE] [--duration S]
// [--pool-size BYTES] [--tx-cache BYTES]. Parsed and validated here; a bad flag exits 2 with a clear message.
#pragma once

#include <xtcp/xtcp.h>

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace xtcp_examples {

struct ServerFlags {
  std::string tun;
  std::string ip;          // dotted quad, validated
  std::string kernel_ip;   // "ADDR/PREFIX" or empty, validated
  std::uint16_t port = 0;  // 0: not given
  std::string pcap;
  std::uint64_t duration_s = 0;         // 0: until SIGINT/SIGTERM
  std::size_t pool_size = 4u << 20;     // the pool's shared receive buffer (--pool-size)
  std::size_t tx_cache_size = 0;        // the shared transmit cache; 0: the API's default
  // Only with backend_flags (xtcp-im's forwarding mode); checked by the program.
  std::string backend;                  // --backend ADDR:PORT or a Unix socket path
  int backend_data = 0;                 // --backend-data N: variant 2 with N data transports
};

// Parses argv. Exits 0 after printing usage for --help, 2 with "<program>: <why>" and the
// usage on any bad or missing flag. port_required: --port must be given. backend_flags:
// --backend and --backend-data are accepted.
ServerFlags parse_server_flags(int argc, char** argv, const char* program, const char* usage,
                               std::uint16_t default_port, bool port_required, bool backend_flags = false);

// Exits 2 with "<program>: <msg>" and the usage (for checks a program makes itself).
[[noreturn]] void usage_error(const char* program, const char* usage, const std::string& msg);

// The xtcp_config for these flags (pointers into flags; keep flags alive).
xtcp_config make_config(const ServerFlags& flags);

// Installs SIGINT/SIGTERM handlers that set the returned flag (restores default SIGPIPE).
volatile std::sig_atomic_t* install_stop_signals();

// A named counter, printed as "<prefix><name> <value>".
struct CounterRow {
  const char* name;
  std::uint64_t value;
};
void print_counter_rows(std::FILE* out, const char* prefix, const CounterRow* rows, std::size_t n);
template <std::size_t N>
void print_counter_rows(std::FILE* out, const char* prefix, const CounterRow (&rows)[N]) {
  print_counter_rows(out, prefix, rows, N);
}

// A group on port whose xtcp_recv returns whole lines (delimiter '\n', at most max_message
// bytes); ack_deadline_ms > 0 also sets XTCP_OPT_ACK_DEADLINE_MS. The group descriptor, or
// a negative errno with *what naming the call that failed (nothing stays open then).
int open_line_group(std::uint16_t port, std::size_t max_message, std::int64_t ack_deadline_ms, std::string* what);

// Prints the pool's counters as "pool.<name> <value>" lines.
void print_pool_stats(const char* program, std::FILE* out);

}  // namespace xtcp_examples
