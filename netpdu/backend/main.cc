// xtcp-backend: the IM backend served over NetPDU transports. Front ends connect (TCP or a
// Unix socket), handshake (variant 1 or a variant 2 bundle) and send their client
// sessions' requests aggregated; one poll(2) loop serves the listener, the handshakes and
// every transport. Bad flags: message and exit 2.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "netpdu/backend/im_backend.h"
#include "netpdu/handshake.h"
#include "netpdu/net.h"

namespace {

using namespace xtcp::netpdu;

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

constexpr const char* kUsage =
    "usage: xtcp-backend (--listen ADDR:PORT | --unix PATH) [options]\n"
    "  --listen ADDR:PORT   TCP/IPv4 address to listen on (e.g. 127.0.0.1:7400)\n"
    "  --unix PATH          Unix stream socket to listen on\n"
    "  --max-pdu BYTES      largest NetPDU accepted in the handshake (default 262144)\n"
    "  --max-tlpdus N       TLPDUs per NetPDU accepted (default 8192)\n"
    "  --latency-us N       latency bound of the answer aggregators (default 200)\n"
    "  --flush-bytes N      size threshold of the answer aggregators (default 65536)\n"
    "  --max-queue BYTES    answer bytes queued per transport before backpressure (default 4194304)\n"
    "  --quiet              do not log transport events\n";

int usage_error(const std::string& what) {
  std::fprintf(stderr, "xtcp-backend: %s\n%s", what.c_str(), kUsage);
  return 2;
}

bool parse_u64(const char* s, std::uint64_t lo, std::uint64_t hi, std::uint64_t* out) {
  const char* end = s + std::strlen(s);
  const auto [p, ec] = std::from_chars(s, end, *out);
  return ec == std::errc() && p == end && *out >= lo && *out <= hi;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<Address> addr;
  HandshakeLimits limits;
  ImBackendConfig config;
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        return nullptr;
      }
      (void)name;
      return argv[++i];
    };
    std::uint64_t v = 0;
    if (a == "--help" || a == "-h") {
      std::printf("%s", kUsage);
      return 0;
    } else if (a == "--listen" || a == "--unix") {
      const char* s = value(a.c_str());
      if (s == nullptr) {
        return usage_error(a + " needs a value");
      }
      if (addr) {
        return usage_error("give exactly one of --listen and --unix");
      }
      if (a == "--unix") {
        if (std::strlen(s) == 0 || std::strlen(s) >= 108) {
          return usage_error("--unix: path must be 1..107 bytes");
        }
        addr = unix_address(s);
      } else {
        std::string err;
        addr = parse_host_port(s, &err);
        if (!addr) {
          return usage_error("--listen: " + err);
        }
      }
    } else if (a == "--max-pdu" || a == "--max-tlpdus" || a == "--latency-us" || a == "--flush-bytes" ||
               a == "--max-queue") {
      const char* s = value(a.c_str());
      if (s == nullptr) {
        return usage_error(a + " needs a value");
      }
      if (a == "--max-pdu") {
        if (!parse_u64(s, kMinMaxPduBytes, kMaxMaxPduBytes, &v)) {
          return usage_error("--max-pdu: '" + std::string(s) + "' is not a number in [" +
                             std::to_string(kMinMaxPduBytes) + ", " + std::to_string(kMaxMaxPduBytes) + "]");
        }
        limits.max_pdu_bytes = static_cast<std::uint32_t>(v);
      } else if (a == "--max-tlpdus") {
        if (!parse_u64(s, 1, kMaxMaxTlpdus, &v)) {
          return usage_error("--max-tlpdus: '" + std::string(s) + "' is not a number in [1, " +
                             std::to_string(kMaxMaxTlpdus) + "]");
        }
        limits.max_tlpdus = static_cast<std::uint32_t>(v);
      } else if (a == "--latency-us") {
        if (!parse_u64(s, 0, 10'000'000, &v)) {
          return usage_error("--latency-us: '" + std::string(s) + "' is not a number in [0, 10000000]");
        }
        config.endpoint.tx.latency_us = static_cast<std::uint32_t>(v);
      } else if (a == "--flush-bytes") {
        if (!parse_u64(s, 1, kMaxMaxPduBytes, &v)) {
          return usage_error("--flush-bytes: '" + std::string(s) + "' is not a positive number");
        }
        config.endpoint.tx.flush_bytes = static_cast<std::uint32_t>(v);
      } else {
        if (!parse_u64(s, 64 * 1024, std::uint64_t{1} << 34, &v)) {
          return usage_error("--max-queue: '" + std::string(s) + "' is not a number in [65536, 2^34]");
        }
        config.endpoint.tx.max_queued_bytes = v;
        config.endpoint.tx.low_watermark = v / 2;
      }
    } else if (a == "--quiet") {
      quiet = true;
    } else {
      return usage_error("unknown argument '" + a + "'");
    }
  }
  if (!addr) {
    return usage_error("give --listen ADDR:PORT or --unix PATH");
  }
  if (config.endpoint.tx.flush_bytes > limits.max_pdu_bytes) {
    config.endpoint.tx.flush_bytes = limits.max_pdu_bytes;
  }

  std::signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_signal;  // no SA_RESTART: poll returns EINTR and the loop ends
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  std::string err;
  const int lfd = listen_on(*addr, &err);
  if (lfd < 0) {
    std::fprintf(stderr, "xtcp-backend: %s\n", err.c_str());
    return 1;
  }
  Address shown = *addr;
  if (!shown.is_unix) {
    shown.in.sin_port = htons(bound_port(lfd));
  }
  std::printf("xtcp-backend: listening on %s\n", shown.text().c_str());
  std::fflush(stdout);

  SteadyClock clock;
  Acceptor acceptor(limits, clock, 5'000'000'000);
  ImBackend backend(config, clock);
  auto log = [quiet](const std::vector<std::string>& lines) {
    if (!quiet) {
      for (const auto& l : lines) {
        std::fprintf(stderr, "xtcp-backend: %s\n", l.c_str());
      }
    }
  };

  std::vector<pollfd> pfds;
  while (g_stop == 0) {
    pfds.clear();
    pfds.push_back({lfd, POLLIN, 0});
    const std::size_t first_waiting = pfds.size();
    for (int fd : acceptor.waiting_fds()) {
      pfds.push_back({fd, POLLIN, 0});
    }
    const std::size_t first_backend = pfds.size();
    backend.pollfds(&pfds);
    const TimeNs deadline = std::min(backend.next_deadline(), acceptor.next_deadline());
    int timeout = -1;
    if (deadline != kNever) {
      const TimeNs left = deadline - clock.now();
      timeout = left <= 0 ? 0 : static_cast<int>(left / 1'000'000) + 1;
    }
    const int n = ::poll(pfds.data(), pfds.size(), timeout);
    if (n < 0 && errno != EINTR) {
      std::perror("xtcp-backend: poll");
      break;
    }
    if (n > 0) {
      if ((pfds[0].revents & POLLIN) != 0) {
        for (int k = 0; k < 64; ++k) {
          const int cfd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
          if (cfd < 0) {
            break;
          }
          acceptor.add(cfd);
        }
      }
      for (std::size_t i = first_waiting; i < first_backend; ++i) {
        if (pfds[i].revents != 0) {
          acceptor.on_readable(pfds[i].fd);
        }
      }
      for (std::size_t i = first_backend; i < pfds.size(); ++i) {
        if (pfds[i].revents != 0) {
          backend.handle(pfds[i].fd, pfds[i].revents);
        }
      }
    }
    acceptor.expire();
    for (auto& t : acceptor.take_ready()) {
      backend.add_transport(t);
    }
    log(acceptor.take_errors());
    backend.poll_timers();
    log(backend.take_log());
  }
  ::close(lfd);
  if (addr->is_unix) {
    ::unlink(addr->path.c_str());
  }
  std::printf("xtcp-backend: stopped (%llu requests)\n", static_cast<unsigned long long>(backend.stats().requests));
  const ImBackendStats& st = backend.stats();
  const struct {
    const char* name;
    std::uint64_t value;
  } rows[] = {
      {"requests", st.requests},         {"logins", st.logins},
      {"logouts", st.logouts},           {"errors", st.errors},
      {"messages", st.messages},         {"presence_sent", st.presence_sent},
      {"presence_waits", st.presence_waits}, {"stalls", st.stalls},
      {"sessions_ended", st.sessions_ended}, {"transports_failed", st.transports_failed},
  };
  for (const auto& r : rows) {
    std::printf("backend.%s %llu\n", r.name, static_cast<unsigned long long>(r.value));
  }
  return 0;
}
