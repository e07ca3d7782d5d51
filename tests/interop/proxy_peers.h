// Kernel peers for the xtcp-proxy interop tests: servers listening on the kernel's end of
// the TUN (198.18.0.1) and clients connecting to the proxy (198.18.0.2), all made inside
// the test's namespace; SHA-256 of what each side sent and received; the proxy's counters.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/interop/program_server.h"

namespace xtcp::test::proxy {

inline constexpr const char* kServerIp = "198.18.0.1";  // the kernel's end of the TUN
inline constexpr std::uint16_t kProxyPort = 8000;

inline std::string sha256_hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 15]);
  }
  return out;
}

// n bytes of a sequence that differs by seed (no '\n' in it when no_newline).
inline std::string pattern(std::size_t n, std::uint32_t seed, bool no_newline = false) {
  std::string s(n, '\0');
  std::uint32_t x = seed * 2654435761u + 1;
  for (std::size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    char c = static_cast<char>(x >> 24);
    if (no_newline && c == '\n') {
      c = 'n';
    }
    s[i] = c;
  }
  return s;
}

inline void set_timeouts(int fd, int seconds) {
  timeval tv{seconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// A listening socket on kServerIp:port (call inside the namespace); -1 on failure.
inline int listen_on(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, kServerIp, &sa.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 || ::listen(fd, 64) < 0) {
    ADD_FAILURE() << "cannot listen on " << kServerIp << ":" << port << ": " << std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

// A client connected to the proxy (call inside the namespace), timeouts of 10 s; -1 with
// the reason on failure. rcvbuf > 0: SO_RCVBUF before the connect.
inline int connect_to_proxy(std::string* error, int rcvbuf = 0) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (rcvbuf > 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  set_timeouts(fd, 10);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(kProxyPort);
  inet_pton(AF_INET, kProgramStackIp, &sa.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    *error = std::string("connect to the proxy: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

inline bool send_all(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  return true;
}

// Reads until EOF (true), an error or the socket's timeout (false, *err = errno).
inline bool read_to_eof(int fd, std::string* out, int* err = nullptr) {
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) {
      return true;
    }
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (err != nullptr) {
        *err = errno;
      }
      return false;
    }
    out->append(buf, static_cast<std::size_t>(n));
  }
}

// Reads exactly n bytes (false on EOF, error or timeout).
inline bool read_exactly(int fd, std::size_t n, std::string* out) {
  char buf[65536];
  while (n > 0) {
    const ssize_t r = ::recv(fd, buf, std::min(n, sizeof buf), 0);
    if (r <= 0) {
      return false;
    }
    out->append(buf, static_cast<std::size_t>(r));
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// A kernel server: accepts on its listening socket (made in the namespace) and runs
// handler(fd) on a thread per connection; the destructor stops and joins everything.
class KernelServer {
 public:
  KernelServer(int listen_fd, std::function<void(int)> handler) : fd_(listen_fd), handler_(std::move(handler)) {
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~KernelServer() {
    stop_ = true;
    acceptor_.join();
    for (auto& t : workers_) {
      t.join();
    }
    ::close(fd_);
  }
  int accepted() const { return accepted_.load(); }

 private:
  void accept_loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) {
        continue;
      }
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        continue;
      }
      ++accepted_;
      set_timeouts(c, 10);
      std::lock_guard<std::mutex> lock(mu_);
      workers_.emplace_back([this, c] {
        handler_(c);
        ::close(c);
      });
    }
  }
  int fd_;
  std::function<void(int)> handler_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::mutex mu_;
  std::vector<std::thread> workers_;
  std::thread acceptor_;
};

// The last value of a "name value" line (a program prints its counters on SIGUSR1 and at
// exit), or nullopt.
inline std::optional<std::uint64_t> last_counter(const std::string& output, const std::string& name) {
  std::optional<std::uint64_t> v;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > name.size() && line.compare(0, name.size(), name) == 0 && line[name.size()] == ' ') {
      v = std::stoull(line.substr(name.size() + 1));
    }
  }
  return v;
}

inline std::uint64_t counter_of(const std::string& output, const std::string& name) {
  const auto v = last_counter(output, name);
  EXPECT_TRUE(v.has_value()) << "no counter " << name << " in:\n" << output;
  return v.value_or(~0ull);
}

// A client the proxy must reset (no server left, beyond the limit): the RST may come so
// soon that the kernel reports it on connect already, or else on the first read.
inline void expect_client_reset(const std::string& which) {
  std::string err;
  const int fd = connect_to_proxy(&err);
  if (fd < 0) {
    EXPECT_NE(err.find(std::strerror(ECONNRESET)), std::string::npos) << which << ": " << err;
    return;
  }
  std::string got;
  int read_err = 0;
  EXPECT_FALSE(read_to_eof(fd, &got, &read_err)) << which << " got an orderly end, not a reset";
  EXPECT_EQ(read_err, ECONNRESET) << which << ": " << std::strerror(read_err);
  ::close(fd);
}

// Stops the proxy and checks what every run must end with: exit 0 and no pair left
// (proxy.pairs_open 0). Returns its output for the test's own counters.
inline std::string stop_cleanly(ProgramServer& px) {
  const CommandResult r = px.stop();
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(counter_of(r.output, "proxy.pairs_open"), 0u) << "a pair's state was left behind";
  return r.output;
}

// The proxy's command line for a test: its port and the servers.
inline std::string proxy_args(const std::vector<std::uint16_t>& server_ports, const std::string& more = "") {
  std::string a = std::string("--port ") + std::to_string(kProxyPort);
  for (const std::uint16_t p : server_ports) {
    a += std::string(" --server ") + kServerIp + ":" + std::to_string(p);
  }
  return more.empty() ? a : a + " " + more;
}

}  // namespace xtcp::test::proxy
