#include "tests/interop/kernel_peer.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tests/interop/program_server.h"

namespace xtcp::test {

KernelPeer::~KernelPeer() {
  if (fd >= 0) {
    ::close(fd);
  }
}

bool open_kernel_peer(KernelPeer* p, std::uint16_t port, std::string* error) {
  p->fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (p->fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  const int small = 4096;
  ::setsockopt(p->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  const int one = 1;
  ::setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{10, 0};
  ::setsockopt(p->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // bounds the connect
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, kProgramStackIp, &sa.sin_addr);
  if (::connect(p->fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    *error = std::string("connect: ") + std::strerror(errno);
    return false;
  }
  ::fcntl(p->fd, F_SETFL, ::fcntl(p->fd, F_GETFL) | O_NONBLOCK);
  return true;
}

bool pump_peers(const std::vector<KernelPeer*>& peers, const std::function<bool()>& done,
                std::chrono::steady_clock::duration timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<char> buf(65536);
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::vector<pollfd> fds;
    for (const KernelPeer* p : peers) {
      const short ev = static_cast<short>((p->out.empty() ? 0 : POLLOUT) | (p->reading && !p->eof ? POLLIN : 0));
      fds.push_back(pollfd{p->fd, ev, 0});
    }
    ::poll(fds.data(), fds.size(), 20);
    for (std::size_t i = 0; i < peers.size(); ++i) {
      KernelPeer& p = *peers[i];
      if ((fds[i].revents & POLLOUT) != 0 && !p.out.empty()) {
        const ssize_t n = ::send(p.fd, p.out.data(), p.out.size(), MSG_NOSIGNAL);
        if (n > 0) {
          p.out.erase(0, static_cast<std::size_t>(n));
        }
      }
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0 && p.reading) {
        const ssize_t n = ::recv(p.fd, buf.data(), buf.size(), 0);
        if (n > 0) {
          p.in.append(buf.data(), static_cast<std::size_t>(n));
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          p.eof = true;
        }
      }
    }
  }
  return true;
}

}  // namespace xtcp::test
