// Address parsing, listen/connect for TCP and Unix stream sockets, and the initiator's
// transport opening (variant 1 or a variant 2 bundle sharing one random token).
#include "netpdu/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <random>

namespace xtcp::netpdu {

std::string Address::text() const {
  if (is_unix) {
    return "unix:" + path;
  }
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &in.sin_addr, buf, sizeof buf);
  return std::string(buf) + ":" + std::to_string(ntohs(in.sin_port));
}

std::optional<Address> parse_host_port(const std::string& s, std::string* error) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) {
    *error = "'" + s + "' is not ADDR:PORT";
    return std::nullopt;
  }
  const std::string host = s.substr(0, colon);
  const std::string port = s.substr(colon + 1);
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    *error = "'" + port + "' is not a port number (0..65535)";
    return std::nullopt;
  }
  Address a;
  a.in.sin_family = AF_INET;
  a.in.sin_port = htons(static_cast<std::uint16_t>(value));
  if (inet_pton(AF_INET, host.c_str(), &a.in.sin_addr) != 1) {
    *error = "'" + host + "' is not an IPv4 address";
    return std::nullopt;
  }
  return a;
}

Address unix_address(const std::string& path) {
  Address a;
  a.is_unix = true;
  a.path = path;
  return a;
}

namespace {

int fail(std::string* error, const std::string& what) {
  const int e = errno;
  *error = what + ": " + std::strerror(e);
  return -e;
}

bool fill_unix(const std::string& path, sockaddr_un* sun, std::string* error) {
  if (path.empty() || path.size() >= sizeof sun->sun_path) {
    *error = "unix socket path must be 1.." + std::to_string(sizeof sun->sun_path - 1) + " bytes";
    return false;
  }
  *sun = {};
  sun->sun_family = AF_UNIX;
  std::memcpy(sun->sun_path, path.c_str(), path.size());
  return true;
}

}  // namespace

int listen_on(const Address& a, std::string* error) {
  const int fd = ::socket(a.is_unix ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    return fail(error, "socket");
  }
  int rc;
  if (a.is_unix) {
    sockaddr_un sun;
    if (!fill_unix(a.path, &sun, error)) {
      ::close(fd);
      return -EINVAL;
    }
    ::unlink(a.path.c_str());
    rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&sun), sizeof sun);
  } else {
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&a.in), sizeof a.in);
  }
  if (rc < 0 || ::listen(fd, 1024) < 0) {
    const int e = fail(error, "bind/listen " + a.text());
    ::close(fd);
    return e;
  }
  return fd;
}

std::uint16_t bound_port(int fd) {
  sockaddr_in sin{};
  socklen_t len = sizeof sin;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len) < 0) {
    return 0;
  }
  return ntohs(sin.sin_port);
}

int connect_to(const Address& a, std::string* error) {
  const int fd = ::socket(a.is_unix ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return fail(error, "socket");
  }
  int rc;
  if (a.is_unix) {
    sockaddr_un sun;
    if (!fill_unix(a.path, &sun, error)) {
      ::close(fd);
      return -EINVAL;
    }
    rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&sun), sizeof sun);
  } else {
    rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&a.in), sizeof a.in);
    if (rc == 0) {
      const int one = 1;
      // Aggregation already batches; Nagle would only add its own delay on top.
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
  }
  if (rc < 0) {
    const int e = fail(error, "connect " + a.text());
    ::close(fd);
    return e;
  }
  return fd;
}

std::optional<Transport> open_transport(const Address& a, const HandshakeLimits& limits, int data_transports,
                                        int timeout_ms, std::string* error) {
  if (data_transports < 0 || data_transports > 65535) {
    *error = "data transport count must be 0..65535";
    return std::nullopt;
  }
  Transport c;
  std::vector<int> opened;
  auto cleanup = [&opened] {
    for (int fd : opened) {
      ::close(fd);
    }
  };
  std::uint64_t token = 0;
  if (data_transports > 0) {
    std::random_device rd;
    while (token == 0) {
      token = (std::uint64_t{rd()} << 32) | rd();
    }
  }
  const auto count = static_cast<std::uint16_t>(data_transports);
  for (int i = -1; i < data_transports; ++i) {
    const int fd = connect_to(a, error);
    if (fd < 0) {
      cleanup();
      return std::nullopt;
    }
    opened.push_back(fd);
    const Role role = data_transports == 0 ? Role::kSingle : (i == -1 ? Role::kControl : Role::kData);
    const Hello h = make_hello(limits, role, token, static_cast<std::uint16_t>(i < 0 ? 0 : i),
                               data_transports == 0 ? 0 : count);
    HandshakeResult r = initiate(fd, h, timeout_ms);
    if (!r.negotiated) {
      *error = r.error;
      cleanup();
      return std::nullopt;
    }
    if (i == -1) {
      c.negotiated = *r.negotiated;
      c.fd = fd;
    } else {
      c.data_fds.push_back(fd);
    }
  }
  return c;
}

}  // namespace xtcp::netpdu
