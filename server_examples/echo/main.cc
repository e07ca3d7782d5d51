// xtcp-echo: an echo server on the xtcp C API.
//   xtcp-echo --tun NAME --ip ADDR [--kernel-ip ADDR/PREFIX] [--port N] [--pcap FILE]
//             [--rx-buffer BYTES] [--tx-buffer BYTES] [--duration SECONDS]
// xtcp_recv -> xtcp_send(ackd = bytes echoed, the same bytes): the ACK rides on the echo;
// after the client's FIN the connection is closed behind the last echoed byte.
#include <xtcp/xtcp.h>

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "server_examples/common/answer_queue.h"
#include "server_examples/common/server_flags.h"

namespace {

using xtcp_examples::AnswerQueue;

constexpr const char* kUsage =
    "usage: xtcp-echo --tun NAME --ip ADDR [--kernel-ip ADDR/PREFIX] [--port N] [--pcap FILE]\n"
    "                 [--rx-buffer BYTES] [--tx-buffer BYTES] [--duration SECONDS]\n"
    "  Echoes every byte on port N (default 7) of ADDR behind the TUN device NAME, using the\n"
    "  xtcp API; SIGINT/SIGTERM stop it and print the counters.\n";

constexpr int kMaxAcceptsPerRound = 4096;
constexpr int kMaxRecvsPerRound = 8192;
constexpr std::size_t kMaxBacklog = 4u << 20;

class EchoServer {
 public:
  explicit EchoServer(int gd) : gd_(gd), answers_(gd, kMaxBacklog), buf_(64 * 1024) {}

  // One round of xtcp_select, accepts, echoes. 0 or xtcp_select's error.
  int run_once(int timeout_ms) {
    const bool was_stalled = stalled_;
    xtcp_set readable;
    xtcp_set acceptable;
    XTCP_ZERO(&readable);
    XTCP_ZERO(&acceptable);
    XTCP_SET(gd_, &acceptable);
    if (was_stalled) {
      // Only connections whose echo waits for transmit-cache space have data: let the
      // stack run (ACKs free the cache) instead of reading the same bytes again at once.
      timeout_ms = std::min(timeout_ms, 2);
    } else {
      XTCP_SET(gd_, &readable);
    }
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
    if (answers_.any_pending()) {
      answers_.flush();
    }
    stalled_ = false;
    if (was_stalled || (rc > 0 && XTCP_ISSET(gd_, &readable))) {
      serve();
    }
    finish_closing();
    return 0;
  }

  void print_counters(std::FILE* out) const {
    std::fprintf(out, "xtcp-echo: stopping: %llu connections accepted, %llu bytes echoed, %zu closing\n",
                static_cast<unsigned long long>(accepted_), static_cast<unsigned long long>(echoed_),
                closing_.size());
    std::fprintf(out, "echo.accepted %llu\necho.bytes_echoed %llu\necho.client_closes %llu\n"
                 "echo.resets %llu\necho.deferred_sends %llu\n",
                 static_cast<unsigned long long>(accepted_), static_cast<unsigned long long>(echoed_),
                 static_cast<unsigned long long>(client_closes_),
                 static_cast<unsigned long long>(resets_),
                 static_cast<unsigned long long>(answers_.deferred_sends()));
  }

 private:
  void serve() {
    int only_waiting = 0;
    int calls = 0;
    for (; calls < kMaxRecvsPerRound; ++calls) {
      int cd = -1;
      const int n = xtcp_recv(gd_, &cd, buf_.data(), buf_.size());
      if (n == -EAGAIN) {
        break;
      }
      if (n > 0) {
        if (answers_.pending(cd)) {
          // Its earlier echo still waits: leave these bytes unacknowledged (delivered
          // again later) so the client is slowed by TCP, not by our memory.
          ++only_waiting;
          if (only_waiting > 64) {
            break;
          }
          continue;
        }
        const int s = answers_.send(cd, static_cast<std::size_t>(n),
                                    std::string_view(buf_.data(), static_cast<std::size_t>(n)));
        if (s == 0) {
          echoed_ += static_cast<std::uint64_t>(n);
        } else if (s == -ENOBUFS) {
          close_now(cd);
        }
        continue;
      }
      if (cd > 0 && n == 0) {
        ++client_closes_;
        close_when_flushed(cd);
        continue;
      }
      if (cd > 0) {
        ++resets_;  // -ECONNRESET, -ETIMEDOUT, or a message that cannot be read
        close_now(cd);
        continue;
      }
      break;
    }
    stalled_ = only_waiting > 0 && only_waiting == calls;
  }

  void close_when_flushed(int cd) {
    if (answers_.pending(cd)) {
      closing_.insert(cd);
    } else {
      xtcp_close(gd_, cd);
    }
  }
  void close_now(int cd) {
    answers_.forget(cd);
    closing_.erase(cd);
    xtcp_close(gd_, cd);
  }
  void finish_closing() {
    std::vector<int> ready;
    for (const int cd : closing_) {
      if (!answers_.pending(cd)) {
        ready.push_back(cd);
      }
    }
    for (const int cd : ready) {
      closing_.erase(cd);
      xtcp_close(gd_, cd);
    }
  }

  int gd_;
  AnswerQueue answers_;
  std::vector<char> buf_;
  std::unordered_set<int> closing_;
  bool stalled_ = false;
  std::uint64_t accepted_ = 0;
  std::uint64_t echoed_ = 0;
  std::uint64_t client_closes_ = 0;
  std::uint64_t resets_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace xtcp_examples;
  ServerFlags flags = parse_server_flags(argc, argv, "xtcp-echo", kUsage, 7, false);
  if (flags.pool_size == ServerFlags{}.pool_size) {
    flags.pool_size = 256 * 1024;  // the engine echo's default receive buffer
  }
  const xtcp_config config = make_config(flags);
  int rc = xtcp_configure(&config);
  if (rc < 0) {
    std::fprintf(stderr, "xtcp-echo: xtcp_configure: %s\n", std::strerror(-rc));
    return 1;
  }
  rc = xtcp_initialize(flags.pool_size);
  if (rc < 0) {
    std::fprintf(stderr, "xtcp-echo: xtcp_initialize(%zu) on %s: %s\n", flags.pool_size,
                 flags.tun.c_str(), std::strerror(-rc));
    return 1;
  }
  const int gd = xtcp_open_group(PF_INET, SOCK_STREAM, 0, flags.port);
  if (gd < 0) {
    std::fprintf(stderr, "xtcp-echo: cannot listen on port %u: %s\n", flags.port, std::strerror(-gd));
    xtcp_finalize();
    return 1;
  }
  volatile std::sig_atomic_t* stop = install_stop_signals();
  std::printf("xtcp-echo: %s:%u on %s%s%s\n", flags.ip.c_str(), flags.port, flags.tun.c_str(),
              flags.pcap.empty() ? "" : ", pcap ", flags.pcap.c_str());
  std::fflush(stdout);

  int exit_code = 0;
  EchoServer echo(gd);
  const auto start = std::chrono::steady_clock::now();
  const auto limit = std::chrono::seconds(flags.duration_s);
  while (*stop == 0 && (flags.duration_s == 0 || std::chrono::steady_clock::now() - start < limit)) {
    rc = echo.run_once(100);
    if (rc < 0 && rc != -EINTR) {  // EINTR: a signal; the loop condition looks at it
      std::fprintf(stderr, "xtcp-echo: xtcp_select: %s\n", std::strerror(-rc));
      exit_code = 1;
      break;
    }
  }
  echo.print_counters(stdout);
  print_pool_stats("xtcp-echo", stdout);
  xtcp_close_group(gd);
  xtcp_finalize();
  return exit_code;
}
