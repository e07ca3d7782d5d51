// ImClients: one poll(2) loop over all client sockets; see im_clients.h.
#include "tests/interop/im_clients.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace xtcp::test {
namespace {

// Starts a non-blocking connect; the socket or -errno.
int start_connect(const char* addr, std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    return -errno;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, addr, &sa.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 && errno != EINPROGRESS) {
    const int err = errno;
    ::close(fd);
    return -err;
  }
  return fd;
}

}  // namespace

ImClients::~ImClients() {
  for (ImClient& c : clients_) {
    if (c.fd >= 0) {
      ::close(c.fd);
    }
  }
}

bool ImClients::connect(const char* addr, std::uint16_t port, int n, std::string* error) {
  // Up to kWindow handshakes in flight at once (the server's accept queue is finite).
  constexpr std::size_t kWindow = 128;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::vector<int> pending;
  int started = 0;
  clients_.reserve(clients_.size() + static_cast<std::size_t>(n));
  // Bounded by the deadline.
  while (started < n || !pending.empty()) {
    while (started < n && pending.size() < kWindow) {
      const int fd = start_connect(addr, port);
      if (fd < 0) {
        *error = "connection " + std::to_string(started) + ": " + std::strerror(-fd);
        for (const int p : pending) {
          ::close(p);
        }
        return false;
      }
      pending.push_back(fd);
      ++started;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      *error = std::to_string(pending.size()) + " connections still pending after 60 s";
      for (const int p : pending) {
        ::close(p);
      }
      return false;
    }
    std::vector<pollfd> fds;
    for (const int fd : pending) {
      fds.push_back(pollfd{fd, POLLOUT, 0});
    }
    ::poll(fds.data(), fds.size(), 100);
    std::vector<int> still;
    int failed = 0;
    for (const pollfd& p : fds) {
      if (p.revents == 0) {
        still.push_back(p.fd);
        continue;
      }
      int soerr = 0;
      socklen_t len = sizeof soerr;
      getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
      if (soerr != 0) {
        failed = soerr;
        ::close(p.fd);
        continue;
      }
      clients_.emplace_back();
      clients_.back().fd = p.fd;
    }
    if (failed != 0) {
      *error = std::string("connect: ") + std::strerror(failed);
      for (const int fd : still) {
        ::close(fd);
      }
      return false;
    }
    pending.swap(still);
  }
  return true;
}

void ImClients::send(std::size_t i, const std::string& line) {
  clients_[i].out.append(line).push_back('\n');
}

void ImClients::shutdown_write(std::size_t i) { clients_[i].shut_wr_wanted = true; }

void ImClients::on_line(ImClient& c, std::string line) {
  auto starts = [&](const char* word) {
    const std::size_t n = std::strlen(word);
    return line.size() > n && line.compare(0, n, word) == 0 && line[n] == ' ';
  };
  if (starts("FROM")) {
    const std::size_t sp = line.find(' ', 5);
    if (sp == std::string::npos) {
      c.from.emplace_back(line.substr(5), "");
    } else {
      c.from.emplace_back(line.substr(5, sp - 5), line.substr(sp + 1));
    }
    ++from_total_;
  } else if (starts("ONLINE")) {
    c.online.push_back(line.substr(7));
    ++online_total_;
  } else if (starts("OFFLINE")) {
    c.offline.push_back(line.substr(8));
    ++offline_total_;
  } else {
    c.answers.push_back(std::move(line));
    ++answers_total_;
  }
}

void ImClients::shutdown_ready() {
  for (ImClient& c : clients_) {
    if (c.shut_wr_wanted && !c.shut_wr_done && c.out.empty() && !c.eof) {
      ::shutdown(c.fd, SHUT_WR);
      c.shut_wr_done = true;
    }
  }
}

void ImClients::pump_once(int timeout_ms) {
  shutdown_ready();
  std::vector<pollfd> fds;
  std::vector<std::size_t> index;
  fds.reserve(clients_.size());
  for (std::size_t i = 0; i < clients_.size(); ++i) {
    ImClient& c = clients_[i];
    if (c.eof) {
      continue;
    }
    short ev = POLLIN;
    if (!c.out.empty()) {
      ev |= POLLOUT;
    }
    fds.push_back(pollfd{c.fd, ev, 0});
    index.push_back(i);
  }
  if (fds.empty()) {
    return;
  }
  if (::poll(fds.data(), fds.size(), timeout_ms) <= 0) {
    return;
  }
  char buf[16384];
  for (std::size_t k = 0; k < fds.size(); ++k) {
    ImClient& c = clients_[index[k]];
    const short re = fds[k].revents;
    if ((re & POLLOUT) != 0 && !c.out.empty()) {
      const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n > 0) {
        c.out.erase(0, static_cast<std::size_t>(n));
        if (c.out.empty() && c.shut_wr_wanted) {
          shutdown_ready();
        }
      } else if (n < 0 && errno != EAGAIN) {
        c.error = errno;
      }
    }
    if ((re & (POLLIN | POLLHUP | POLLERR)) != 0) {
      // Bounded: at most a few reads per client per round, the rest next round.
      for (int r = 0; r < 8; ++r) {
        const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
        if (n > 0) {
          c.in.append(buf, static_cast<std::size_t>(n));
          continue;
        }
        if (n == 0 || errno != EAGAIN) {
          if (n < 0) {
            c.error = errno;
          }
          c.eof = true;
          ++eof_total_;
        }
        break;
      }
      std::size_t start = 0;
      for (std::size_t nl; (nl = c.in.find('\n', start)) != std::string::npos; start = nl + 1) {
        on_line(c, c.in.substr(start, nl - start));
      }
      c.in.erase(0, start);
    }
  }
}

bool ImClients::pump_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // Bounded by the deadline; each round waits at most 20 ms in poll(2).
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return done();
    }
    pump_once(20);
  }
  return true;
}

bool ImClients::pump_until_answers(std::size_t n, std::chrono::milliseconds timeout) {
  return pump_until(
      [&] {
        for (const ImClient& c : clients_) {
          if (c.answers.size() < n) {
            return false;
          }
        }
        return true;
      },
      timeout);
}

}  // namespace xtcp::test
