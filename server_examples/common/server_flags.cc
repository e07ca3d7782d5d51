// Flag parsing for the example servers: strings from argv -> validated ServerFlags ->
// xtcp_config. Addresses are checked with inet_pton here so a typo exits 2 before the
// stack is touched.
#include "server_examples/common/server_flags.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace xtcp_examples {
namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

bool parse_uint(const char* s, unsigned long long max, unsigned long long* out) {
  if (s == nullptr || *s < '0' || *s > '9') {
    return false;
  }
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v > max) {
    return false;
  }
  *out = v;
  return true;
}

bool is_ipv4(const std::string& s, in_addr* out) { return inet_pton(AF_INET, s.c_str(), out) == 1; }

}  // namespace

void usage_error(const char* program, const char* usage, const std::string& msg) {
  std::fprintf(stderr, "%s: %s\n%s", program, msg.c_str(), usage);
  std::exit(2);
}

ServerFlags parse_server_flags(int argc, char** argv, const char* program, const char* usage,
                               std::uint16_t default_port, bool port_required, bool backend_flags) {
  ServerFlags f;
  f.port = default_port;
  bool port_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(usage, stdout);
      std::exit(0);
    }
    if (flag.rfind("--", 0) != 0) {
      usage_error(program, usage, "unexpected argument " + flag);
    }
    if (i + 1 >= argc) {
      usage_error(program, usage, "missing value for " + flag);
    }
    const std::string v = argv[++i];
    unsigned long long n = 0;
    if (flag == "--tun") {
      if (v.empty() || v.size() >= 16) {
        usage_error(program, usage, "--tun: interface names have 1 to 15 characters, got \"" + v + "\"");
      }
      f.tun = v;
    } else if (flag == "--ip") {
      in_addr a{};
      if (!is_ipv4(v, &a)) {
        usage_error(program, usage, "--ip: not an IPv4 address: " + v);
      }
      f.ip = v;
    } else if (flag == "--kernel-ip") {
      const auto slash = v.find('/');
      in_addr a{};
      if (slash == std::string::npos || !is_ipv4(v.substr(0, slash), &a) ||
          !parse_uint(v.c_str() + slash + 1, 32, &n) || n < 1 || n > 30) {
        usage_error(program, usage, "--kernel-ip: expected ADDR/PREFIX with prefix 1..30, got " + v);
      }
      f.kernel_ip = v;
    } else if (flag == "--port") {
      if (!parse_uint(v.c_str(), 65535, &n) || n == 0) {
        usage_error(program, usage, "--port: expected 1..65535, got " + v);
      }
      f.port = static_cast<std::uint16_t>(n);
      port_given = true;
    } else if (flag == "--pcap") {
      if (v.empty()) {
        usage_error(program, usage, "--pcap: empty file name");
      }
      f.pcap = v;
    } else if (flag == "--duration") {
      if (!parse_uint(v.c_str(), 86400ull * 365, &n)) {
        usage_error(program, usage, "--duration: expected whole seconds, got " + v);
      }
      f.duration_s = n;
    } else if (flag == "--pool-size" || flag == "--rx-buffer") {
      if (!parse_uint(v.c_str(), 1ull << 34, &n) || n < 4096) {
        usage_error(program, usage, flag + ": expected 4096..17179869184 bytes, got " + v);
      }
      f.pool_size = static_cast<std::size_t>(n);
    } else if (flag == "--tx-cache" || flag == "--tx-buffer") {
      if (!parse_uint(v.c_str(), 1ull << 34, &n) || n < 4096) {
        usage_error(program, usage, flag + ": expected 4096..17179869184 bytes, got " + v);
      }
      f.tx_cache_size = static_cast<std::size_t>(n);
    } else if (backend_flags && flag == "--backend") {
      if (v.empty()) {
        usage_error(program, usage, "--backend: expected ADDR:PORT or a socket path");
      }
      f.backend = v;
    } else if (backend_flags && flag == "--backend-data") {
      if (!parse_uint(v.c_str(), 64, &n)) {
        usage_error(program, usage, "--backend-data: expected 0..64 data transports, got " + v);
      }
      f.backend_data = static_cast<int>(n);
    } else {
      usage_error(program, usage, "unknown flag " + flag);
    }
  }
  if (f.tun.empty()) {
    usage_error(program, usage, "--tun is required");
  }
  if (f.ip.empty()) {
    usage_error(program, usage, "--ip is required");
  }
  if (port_required && !port_given) {
    usage_error(program, usage, "--port is required");
  }
  if (!f.kernel_ip.empty() && f.kernel_ip.substr(0, f.kernel_ip.find('/')) == f.ip) {
    usage_error(program, usage, "--kernel-ip must differ from --ip");
  }
  return f;
}

xtcp_config make_config(const ServerFlags& flags) {
  xtcp_config c{};
  c.tun_name = flags.tun.c_str();
  c.local_addr = flags.ip.c_str();
  c.kernel_addr = flags.kernel_ip.empty() ? nullptr : flags.kernel_ip.c_str();
  c.pcap_path = flags.pcap.empty() ? nullptr : flags.pcap.c_str();
  c.tx_cache_size = flags.tx_cache_size;
  return c;
}

volatile std::sig_atomic_t* install_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  return &g_stop;
}

void print_counter_rows(std::FILE* out, const char* prefix, const CounterRow* rows, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    std::fprintf(out, "%s%s %llu\n", prefix, rows[i].name, static_cast<unsigned long long>(rows[i].value));
  }
}

int open_line_group(std::uint16_t port, std::size_t max_message, std::int64_t ack_deadline_ms, std::string* what) {
  const int gd = xtcp_open_group(PF_INET, SOCK_STREAM, 0, port);
  if (gd < 0) {
    *what = "xtcp_open_group";
    return gd;
  }
  const struct {
    int option;
    std::int64_t value;
    const char* name;
  } opts[] = {
      {XTCP_OPT_FRAMING, XTCP_FRAME_DELIMITER, "xtcp_setopt(XTCP_OPT_FRAMING)"},
      {XTCP_OPT_DELIMITER, '\n', "xtcp_setopt(XTCP_OPT_DELIMITER)"},
      {XTCP_OPT_MAX_MESSAGE, static_cast<std::int64_t>(max_message), "xtcp_setopt(XTCP_OPT_MAX_MESSAGE)"},
      {XTCP_OPT_ACK_DEADLINE_MS, ack_deadline_ms, "xtcp_setopt(XTCP_OPT_ACK_DEADLINE_MS)"},
  };
  for (const auto& o : opts) {
    if (o.option == XTCP_OPT_ACK_DEADLINE_MS && ack_deadline_ms <= 0) {
      continue;
    }
    const int rc = xtcp_setopt(gd, o.option, o.value);
    if (rc < 0) {
      *what = o.name;
      xtcp_close_group(gd);
      return rc;
    }
  }
  return gd;
}

void print_pool_stats(const char* program, std::FILE* out) {
  struct xtcp_pool_stats st {};
  const int rc = xtcp_pool_stats(xtcp_default_pool(), &st);
  if (rc < 0) {
    std::fprintf(out, "%s: no pool statistics: %s\n", program, std::strerror(-rc));
    return;
  }
  const CounterRow rows[] = {
      {"connections", st.connections},       {"groups", st.groups},
      {"rx_buffer_size", st.rx_buffer_size}, {"rx_buffer_used", st.rx_buffer_used},
      {"rx_bytes", st.rx_bytes},             {"rx_dropped_full", st.rx_dropped_full},
      {"tx_cache_size", st.tx_cache_size},   {"tx_cache_used", st.tx_cache_used},
      {"acks_on_answers", st.acks_on_answers}, {"acks_alone", st.acks_alone},
      {"answers_from_cache", st.answers_from_cache}, {"accept_timeouts", st.accept_timeouts},
  };
  print_counter_rows(out, "pool.", rows);
}

}  // namespace xtcp_examples
