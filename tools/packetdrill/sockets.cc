// The BSD socket calls of the packetdrill host over the TCP engine, with Linux's answers:
// its errno values, its option numbers, its blocking rules (a socket blocks unless
// O_NONBLOCK / SOCK_NONBLOCK / MSG_DONTWAIT), its read-after-reset order (bytes first, then
// the error once, then end of file).
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "tools/packetdrill/host.h"

namespace xtcp::packetdrill {

namespace {

struct Endpoint {
  std::uint32_t ip = 0;  // host order
  std::uint16_t port = 0;
};

// 0, or a negative errno for an address that is not a whole sockaddr_in.
int read_sockaddr_in(const sockaddr* addr, socklen_t len, Endpoint* out) {
  if (addr == nullptr || len < static_cast<socklen_t>(sizeof(sockaddr_in))) {
    return -EINVAL;
  }
  sockaddr_in sin{};
  std::memcpy(&sin, addr, sizeof(sin));
  if (sin.sin_family != AF_INET) {
    return -EAFNOSUPPORT;
  }
  out->ip = ntohl(sin.sin_addr.s_addr);
  out->port = ntohs(sin.sin_port);
  return 0;
}

void write_sockaddr_in(std::uint32_t ip, std::uint16_t port, sockaddr* addr, socklen_t* len) {
  if (addr == nullptr || len == nullptr) {
    return;
  }
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(ip);
  sin.sin_port = htons(port);
  std::memcpy(addr, &sin, std::min<std::size_t>(*len, sizeof(sin)));
  *len = sizeof(sin);
}

int int_value(const void* value, socklen_t len, int* out) {
  if (value == nullptr || len < static_cast<socklen_t>(sizeof(int))) {
    return -EINVAL;
  }
  std::memcpy(out, value, sizeof(int));
  return 0;
}

int put_int(int v, void* value, socklen_t* len) {
  if (value == nullptr || len == nullptr || *len < static_cast<socklen_t>(sizeof(int))) {
    return -EINVAL;
  }
  std::memcpy(value, &v, sizeof(int));
  *len = sizeof(int);
  return 0;
}

// Linux's numbering of TCP states (include/net/tcp_states.h), as TCP_INFO reports them.
std::uint8_t linux_state(TcpState s) {
  switch (s) {
    case TcpState::kEstablished: return 1;
    case TcpState::kSynSent: return 2;
    case TcpState::kSynReceived: return 3;
    case TcpState::kFinWait1: return 4;
    case TcpState::kFinWait2: return 5;
    case TcpState::kTimeWait: return 6;
    case TcpState::kClosed: return 7;
    case TcpState::kCloseWait: return 8;
    case TcpState::kLastAck: return 9;
    case TcpState::kListen: return 10;
    case TcpState::kClosing: return 11;
  }
  return 7;
}

constexpr TimeNs kForever = kNever;

}  // namespace

Host::Socket* Host::find(int fd) {
  auto it = sockets_.find(fd);
  return it == sockets_.end() ? nullptr : &it->second;
}

int Host::take_error(Socket& s) {
  const int e = s.so_error;
  s.so_error = 0;
  return -e;
}

Host::ConnState* Host::conn_state(const Socket& s) {
  if (s.conn == kNoConn) {
    return nullptr;
  }
  auto it = conns_.find(s.conn);
  return it == conns_.end() ? nullptr : &it->second;
}

int Host::new_placeholder(ino_t* ino) {
  // A real descriptor, so packetdrill's own bookkeeping (and its final libc close) works.
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -errno;
  }
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return -e;
  }
  *ino = st.st_ino;
  return fd;
}

std::uint16_t Host::free_port() {
  const TcpConfig& tcp = stack_->tcp().config();
  const std::uint32_t span = tcp.ephemeral_port_max - tcp.ephemeral_port_min + 1u;
  for (std::uint32_t i = 0; i < span; ++i) {
    next_port_ = static_cast<std::uint16_t>((next_port_ + 1) % span);
    const auto port = static_cast<std::uint16_t>(tcp.ephemeral_port_min + next_port_);
    const bool used = std::any_of(sockets_.begin(), sockets_.end(),
                                  [port](const auto& kv) { return kv.second.port == port; });
    if (!used) {
      return port;
    }
  }
  return 0;
}

int Host::socket(int domain, int type, int protocol) {
  std::unique_lock lock(mu_);
  if (domain != AF_INET) {
    return -EAFNOSUPPORT;  // IPv4 only
  }
  const int kind = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (kind != SOCK_STREAM || (protocol != 0 && protocol != IPPROTO_TCP)) {
    return -EPROTONOSUPPORT;  // TCP only
  }
  Socket s;
  const int fd = new_placeholder(&s.ino);
  if (fd < 0) {
    return fd;
  }
  s.fd = fd;
  s.nonblocking = (type & SOCK_NONBLOCK) != 0;
  s.cloexec = (type & SOCK_CLOEXEC) != 0;
  sockets_[fd] = std::move(s);
  return fd;
}

int Host::bind(int fd, const sockaddr* addr, socklen_t len) {
  std::unique_lock lock(mu_);
  Socket* s = find(fd);
  if (s == nullptr) {
    return -EBADF;
  }
  Endpoint at;
  if (const int rc = read_sockaddr_in(addr, len, &at); rc < 0) {
    return rc;
  }
  const std::uint32_t ip = at.ip;
  std::uint16_t port = at.port;
  if (s->bound || s->conn != kNoConn) {
    return -EINVAL;
  }
  if (ip != 0 && !stack_->ip().is_local(ip)) {
    return -EADDRNOTAVAIL;
  }
  if (port == 0) {
    port = free_port();
    if (port == 0) {
      return -EADDRINUSE;
    }
  } else {
    for (const auto& [other_fd, o] : sockets_) {
      if (o.port == port && (o.listening || !o.reuseaddr || !s->reuseaddr)) {
        return -EADDRINUSE;
      }
    }
  }
  s->bound = true;
  s->addr = ip;
  s->port = port;
  return 0;
}

int Host::listen(int fd, int backlog) {
  std::unique_lock lock(mu_);
  Socket* s = find(fd);
  if (s == nullptr) {
    return -EBADF;
  }
  if (s->conn != kNoConn) {
    return -EINVAL;
  }
  s->backlog = std::clamp(backlog, 0, 4096);
  if (s->listening) {
    fill_pending(*s);
    return 0;
  }
  if (!s->bound) {
    s->port = free_port();
    if (s->port == 0) {
      return -EADDRINUSE;
    }
    s->bound = true;
  }
  const int rc = stack_->tcp().listen(s->port);
  if (rc < 0) {
    return rc;
  }
  s->listening = true;
  return 0;
}

int Host::accept(int fd, sockaddr* addr, socklen_t* len) {
  std::unique_lock lock(mu_);
  Socket* s = find(fd);
  if (s == nullptr) {
    return -EBADF;
  }
  if (!s->listening) {
    return -EINVAL;
  }
  const bool got = wait_until(
      lock,
      [&] {
        Socket* l = find(fd);
        if (l == nullptr || !l->listening) {
          return true;  // closed meanwhile
        }
        fill_pending(*l);
        return !l->pending.empty() || l->nonblocking;
      },
      kForever);
  s = find(fd);
  if (s == nullptr || !s->listening) {
    return -EBADF;
  }
  if (!got || s->pending.empty()) {
    return -EAGAIN;
  }
  const ConnId conn = s->pending.front();
  s->pending.pop_front();
  fill_pending(*s);
  Socket child;
  const int child_fd = new_placeholder(&child.ino);
  if (child_fd < 0) {
    s->pending.push_front(conn);
    return child_fd;
  }
  child.fd = child_fd;
  ConnInfo info{};
  stack_->tcp().info(conn, &info);
  child.conn = conn;
  child.addr = info.key.local_addr;
  child.port = info.key.local_port;
  child.nodelay = s->nodelay;
  child.keepalive = s->keepalive;
  ConnState& st = conns_[conn];
  st.fd = child_fd;
  if (st.done && st.error != 0) {
    child.so_error = st.error;
  }
  sockets_[child_fd] = std::move(child);
  write_sockaddr_in(info.key.remote_addr, info.key.remote_port, addr, len);
  return child_fd;
}

int Host::connect(int fd, const sockaddr* addr, socklen_t len) {
  std::unique_lock lock(mu_);
  Socket* s = find(fd);
  if (s == nullptr) {
    return -EBADF;
  }
  Endpoint to;
  if (const int rc = read_sockaddr_in(addr, len, &to); rc < 0) {
    return rc;
  }
  if (s->listening) {
    return -EISCONN;
  }
  if (s->conn != kNoConn) {
    const ConnState* c = conn_state(*s);
    if (c != nullptr && c->connected && !c->done) {
      return -EISCONN;
    }
    if (c != nullptr && !c->done) {
      return -EALREADY;
    }
    if (s->so_error != 0) {
      return take_error(*s);  // Linux: the connect() after a failed non-blocking one
    }
    // The last connection is over: this connect() starts a new one, as on Linux.
    stack_->tcp().close(s->conn);
    release_conn(s->conn);
    s->conn = kNoConn;
    s->shut_rd = false;
    s->shut_wr = false;
  }
  const std::int64_t id = stack_->tcp().connect(to.ip, to.port, s->bound ? s->port : 0, s->addr);
  if (id < 0) {
    return static_cast<int>(id);
  }
  const auto conn = static_cast<ConnId>(id);
  ConnState st;
  st.fd = fd;
  conns_[conn] = st;
  s->conn = conn;
  ConnInfo info{};
  stack_->tcp().info(conn, &info);
  s->bound = true;
  s->addr = info.key.local_addr;
  s->port = info.key.local_port;
  if (s->nodelay) {
    stack_->tcp().set_nodelay(conn, true);
  }
  if (s->keepalive) {
    stack_->tcp().set_keepalive(conn, true);
  }
  pump();  // the SYN is on its way
  if (s->nonblocking) {
    return -EINPROGRESS;
  }
  wait_until(
      lock,
      [&] {
        const ConnState* c = conns_.count(conn) != 0 ? &conns_[conn] : nullptr;
        return c == nullptr || c->connected || c->done;
      },
      kForever);
  s = find(fd);
  if (s == nullptr) {
    return -EBADF;
  }
  const ConnState* c = conn_state(*s);
  if (c != nullptr && c->connected && !c->done) {
    return 0;
  }
  if (s->so_error != 0) {
    return take_error(*s);
  }
  return c != nullptr && c->done ? -ECONNREFUSED : -EAGAIN;
}

// >0: bytes to read; 0: end of file; <0: an error to report; kWouldBlock: nothing yet.
namespace {
constexpr int kWouldBlock = 1 << 30;
}

int Host::readable_now(const Socket& s, int flags) const {
  (void)flags;
  if (s.conn == kNoConn) {
    return -ENOTCONN;
  }
  const std::size_t n = stores_.readable(s.conn);
  if (n > 0 && !s.shut_rd) {
    return static_cast<int>(std::min<std::size_t>(n, INT32_MAX / 2));
  }
  if (s.so_error != 0) {
    return -s.so_error;
  }
  auto it = conns_.find(s.conn);
  if (s.shut_rd || it == conns_.end() || it->second.peer_fin || it->second.done) {
    return 0;
  }
  if (!it->second.connected) {
    return -EAGAIN;  // still connecting (a blocking read waits for the connection first)
  }
  return kWouldBlock;
}

ssize_t Host::recv(int fd, void* buf, std::size_t len, int flags) {
  std::unique_lock lock(mu_);
  Socket* s = find(fd);
  if (s == nullptr) {
    return -EBADF;
  }
  if (buf == nullptr && len > 0) {
    return -EFAULT;
  }
  if ((flags & MSG_OOB) != 0) {
    return -EINVAL;  // no urgent data is ever kept (RFC 6093: URG data is delivered inline)
  }
  if (s->listening || s->conn == kNoConn) {
    return -ENOTCONN;
  }
  const bool dont_wait = s->nonblocking || (flags & MSG_DONTWAIT) != 0;
  const bool peek = (flags & MSG_PEEK) != 0;
  const bool wait_all = (flags & MSG_WAITALL) != 0 && !peek;
  auto* out = static_cast<std::byte*>(buf);
  std::size_t done = 0;
  for (;;) {
    s = find(fd);
    if (s == nullptr) {
      return -EBADF;
    }
    const int state = readable_now(*s, flags);
    if (state > 0 && state != kWouldBlock) {
      const std::size_t n =
          stores_.read(s->conn, wire::MutableByteSpan(out + done, len - done), peek);
      done += n;
      if (!peek && n > 0) {
        stack_->tcp().consumed(s->conn);
        pump();
      }
      if (!wait_all || done == len || dont_wait) {
        return static_cast<ssize_t>(done);
      }
      continue;
    }
    if (done > 0) {
      return static_cast<ssize_t>(done);
    }
    if (state < 0 && state != -EAGAIN) {
      s->so_error = 0;  // reported now
      return state;
    }
    if (state == 0 || len == 0) {
      return 0;
    }
    if (dont_wait) {
      return -EAGAIN;
    }
    const bool ready = wait_until(
        lock,
        [&] {
          const Socket* cur = find(fd);
          if (cur == nullptr) {
            return true;
          }
          const int st = readable_now(*cur, flags);
          return st != kWouldBlock && st != -EAGAIN;
        },
        kForever);
    if (!ready) {
      return -EAGAIN;
    }
  }
}

ssize_t Host::send(int fd, const void* buf, std::size_t len, int flags) {
  std::unique_lock lock(mu_);
  Socket* s = find(fd);
  if (s == nullptr) {
    return -EBADF;
  }
  if (buf == nullptr && len > 0) {
    return -EFAULT;
  }
  const bool dont_wait = s->nonblocking || (flags & MSG_DONTWAIT) != 0;
  return send_locked(lock, *s, static_cast<const std::byte*>(buf), len, dont_wait);
}

ssize_t Host::send_locked(std::unique_lock<std::mutex>& lock, Socket& sock, const std::byte* data,
                          std::size_t len, bool dont_wait) {
  const int fd = sock.fd;
  std::size_t done = 0;
  for (;;) {
    Socket* s = find(fd);
    if (s == nullptr) {
      return done > 0 ? static_cast<ssize_t>(done) : -EBADF;
    }
    if (s->so_error != 0) {
      if (done > 0) {
        return static_cast<ssize_t>(done);
      }
      return take_error(*s);
    }
    // Linux: a socket that is not (being) connected answers EPIPE (sk_stream_wait_connect).
    ConnState* c = conn_state(*s);
    if (s->listening || c == nullptr || s->shut_wr || c->done) {
      return done > 0 ? static_cast<ssize_t>(done) : -EPIPE;
    }
    if (!c->connected) {
      if (dont_wait) {
        return -EAGAIN;
      }
      wait_until(
          lock,
          [&] {
            const Socket* cur = find(fd);
            const ConnState* cc = cur != nullptr ? conn_state(*cur) : nullptr;
            return cc == nullptr || cc->connected || cc->done;
          },
          kForever);
      continue;
    }
    if (done == len && len > 0) {
      return static_cast<ssize_t>(done);
    }
    const std::int64_t n = stack_->tcp().send(s->conn, wire::ByteSpan(data + done, len - done));
    if (n < 0) {
      if (done > 0) {
        return static_cast<ssize_t>(done);
      }
      return n == -ENOTCONN ? -EPIPE : static_cast<ssize_t>(n);
    }
    done += static_cast<std::size_t>(n);
    pump();
    if (done == len) {
      return static_cast<ssize_t>(done);
    }
    if (dont_wait) {
      return done > 0 ? static_cast<ssize_t>(done) : -EAGAIN;
    }
    const ConnId conn = s->conn;
    stack_->tcp().want_writable(conn);
    const bool ready = wait_until(
        lock,
        [&] {
          const auto it = conns_.find(conn);
          return it == conns_.end() || it->second.done || stores_.tx_free(conn) > 0;
        },
        kForever);
    if (!ready) {
      return done > 0 ? static_cast<ssize_t>(done) : -EAGAIN;
    }
  }
}

void Host::release_conn(ConnId conn) {
  conns_.erase(conn);
}

int Host::close(int fd) {
  std::unique_lock lock(mu_);
  if (epolls_.erase(fd) != 0) {
    ::close(fd);
    return 0;
  }
  Socket* s = find(fd);
  if (s == nullptr) {
    return -EBADF;
  }
  for (auto& [epfd, ep] : epolls_) {
    ep.items.erase(fd);  // closing a descriptor takes it out of every epoll set
  }
  TcpLayer& tcp = stack_->tcp();
  if (s->listening) {
    // Connections that finished their handshake but were never accepted are reset, as
    // the kernel does when a listener closes.
    for (ConnId c : s->pending) {
      tcp.abort(c);
      release_conn(c);
    }
    tcp.unlisten(s->port);
  } else if (s->conn != kNoConn) {
    if (s->linger_abort) {
      tcp.abort(s->conn);  // SO_LINGER with a zero timeout: RST instead of FIN
    } else {
      tcp.close(s->conn);  // the engine finishes the close (RST if unread bytes remain)
    }
    release_conn(s->conn);
  }
  ::close(fd);
  sockets_.erase(fd);
  pump();
  return 0;
}

int Host::shutdown(int fd, int how) {
  std::unique_lock lock(mu_);
  Socket* s = find(fd);
  if (s == nullptr) {
    return -EBADF;
  }
  if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) {
    return -EINVAL;
  }
  const ConnState* c = conn_state(*s);
  if (c == nullptr || (!c->connected && !c->done)) {
    return -ENOTCONN;
  }
  if (how == SHUT_RD || how == SHUT_RDWR) {
    s->shut_rd = true;
  }
  if ((how == SHUT_WR || how == SHUT_RDWR) && !s->shut_wr) {
    s->shut_wr = true;
    if (!c->done) {
      const int rc = stack_->tcp().shutdown(s->conn);
      pump();
      if (rc < 0 && rc != -ENOTCONN) {
        return rc;
      }
    }
  }
  changed_.notify_all();
  return 0;
}

int Host::fcntl(int fd, int cmd, long arg) {
  std::unique_lock lock(mu_);
  Socket* s = find(fd);
  if (s == nullptr) {
    return -EBADF;
  }
  switch (cmd) {
    case F_GETFL:
      return O_RDWR | (s->nonblocking ? O_NONBLOCK : 0);
    case F_SETFL:
      s->nonblocking = (arg & O_NONBLOCK) != 0;
      return 0;
    case F_GETFD:
      return s->cloexec ? FD_CLOEXEC : 0;
    case F_SETFD:
      s->cloexec = (arg & FD_CLOEXEC) != 0;
      return 0;
    default:
      return -EINVAL;
  }
}

int Host::ioctl(int fd, unsigned long request, void* arg) {
  std::unique_lock lock(mu_);
  Socket* s = find(fd);
  if (s == nullptr) {
    return -EBADF;
  }
  if (request != SIOCINQ && request != SIOCOUTQ && request != FIONBIO) {
    return -ENOTTY;
  }
  if (arg == nullptr) {
    return -EFAULT;
  }
  int value = 0;
  switch (request) {
    case SIOCINQ:  // FIONREAD: bytes waiting to be read
      if (s->listening) {
        return -EINVAL;
      }
      value = s->conn == kNoConn ? 0 : static_cast<int>(stores_.readable(s->conn));
      break;
    case SIOCOUTQ:  // bytes sent but not yet acknowledged, or not yet sent
      if (s->listening) {
        return -EINVAL;
      }
      value = s->conn == kNoConn ? 0 : static_cast<int>(stores_.unacked(s->conn));
      break;
    case FIONBIO:
      std::memcpy(&value, arg, sizeof(int));
      s->nonblocking = value != 0;
      return 0;
    default:
      return -ENOTTY;
  }
  std::memcpy(arg, &value, sizeof(int));
  return 0;
}

int Host::tcp_info(const Socket& s, void* value, socklen_t* len) {
  if (value == nullptr || len == nullptr) {
    return -EFAULT;
  }
  struct tcp_info ti{};
  ConnInfo info{};
  if (s.listening) {
    ti.tcpi_state = linux_state(TcpState::kListen);
  } else if (s.conn == kNoConn || stack_->tcp().info(s.conn, &info) < 0) {
    ti.tcpi_state = linux_state(TcpState::kClosed);
  } else {
    ti.tcpi_state = linux_state(info.state);
    ti.tcpi_backoff = info.backoff;
    ti.tcpi_rto = info.rto_us;
    ti.tcpi_snd_mss = info.snd_mss;
    ti.tcpi_rtt = info.srtt_us;
    ti.tcpi_rttvar = info.rttvar_us;
    ti.tcpi_snd_ssthresh = info.snd_mss > 0 ? info.ssthresh / info.snd_mss : 0;
    ti.tcpi_snd_cwnd = info.snd_mss > 0 ? info.cwnd / info.snd_mss : 0;
    ti.tcpi_unacked = info.snd_mss > 0 ? (info.snd_nxt.raw() - info.snd_una.raw() + info.snd_mss - 1) / info.snd_mss : 0;
  }
  const auto n = std::min<std::size_t>(static_cast<std::size_t>(*len), sizeof(ti));
  std::memcpy(value, &ti, n);
  *len = static_cast<socklen_t>(n);
  return 0;
}

int Host::getsockopt(int fd, int level, int name, void* value, socklen_t* len) {
  std::unique_lock lock(mu_);
  Socket* s = find(fd);
  if (s == nullptr) {
    return -EBADF;
  }
  if (level == SOL_SOCKET) {
    switch (name) {
      case SO_ERROR: {
        const int rc = put_int(s->so_error, value, len);
        if (rc == 0) {
          s->so_error = 0;
        }
        return rc;
      }
      case SO_TYPE: return put_int(SOCK_STREAM, value, len);
      case SO_DOMAIN: return put_int(AF_INET, value, len);
      case SO_PROTOCOL: return put_int(IPPROTO_TCP, value, len);
      case SO_ACCEPTCONN: return put_int(s->listening ? 1 : 0, value, len);
      case SO_REUSEADDR: return put_int(s->reuseaddr ? 1 : 0, value, len);
      case SO_KEEPALIVE: return put_int(s->keepalive ? 1 : 0, value, len);
      case SO_RCVBUF: return put_int(static_cast<int>(stores_.rcvbuf()), value, len);
      case SO_SNDBUF: return put_int(static_cast<int>(stores_.sndbuf()), value, len);
      case SO_LINGER: {
        if (value == nullptr || len == nullptr || *len < static_cast<socklen_t>(sizeof(linger))) {
          return -EINVAL;
        }
        const linger l{s->linger_on ? 1 : 0, s->linger_seconds};
        std::memcpy(value, &l, sizeof(l));
        *len = sizeof(l);
        return 0;
      }
      default: return -ENOPROTOOPT;
    }
  }
  if (level == IPPROTO_TCP) {
    switch (name) {
      case TCP_MAXSEG: {
        // Linux: the current sending MSS once connected (options such as timestamps taken
        // off), 536 (TCP_MSS_DEFAULT) before.
        ConnInfo info{};
        int mss = 536;
        if (s->conn != kNoConn && stack_->tcp().info(s->conn, &info) == 0 && info.snd_mss > 0 &&
            info.state != TcpState::kSynSent) {
          mss = static_cast<int>(info.snd_mss);
        }
        return put_int(mss, value, len);
      }
      case TCP_NODELAY: return put_int(s->nodelay ? 1 : 0, value, len);
      case TCP_INFO: return tcp_info(*s, value, len);
      default: return -ENOPROTOOPT;
    }
  }
  return -ENOPROTOOPT;
}

int Host::setsockopt(int fd, int level, int name, const void* value, socklen_t len) {
  std::unique_lock lock(mu_);
  Socket* s = find(fd);
  if (s == nullptr) {
    return -EBADF;
  }
  if (level == SOL_SOCKET && name == SO_LINGER) {
    if (value == nullptr || len < static_cast<socklen_t>(sizeof(linger))) {
      return -EINVAL;
    }
    linger l{};
    std::memcpy(&l, value, sizeof(l));
    s->linger_on = l.l_onoff != 0;
    s->linger_seconds = l.l_linger;
    s->linger_abort = s->linger_on && l.l_linger == 0;
    return 0;
  }
  int v = 0;
  if (level == SOL_SOCKET) {
    switch (name) {
      case SO_REUSEADDR:
        if (const int rc = int_value(value, len, &v); rc < 0) return rc;
        s->reuseaddr = v != 0;
        return 0;
      case SO_KEEPALIVE:
        if (const int rc = int_value(value, len, &v); rc < 0) return rc;
        s->keepalive = v != 0;
        if (s->conn != kNoConn) {
          stack_->tcp().set_keepalive(s->conn, s->keepalive);
          pump();
        }
        return 0;
      // Accepted and ignored: every connection has the buffers --so_flags sets, and
      // SO_REUSEPORT changes nothing for a single process.
      case SO_REUSEPORT:
      case SO_RCVBUF:
      case SO_SNDBUF:
        return int_value(value, len, &v);
      default:
        return -ENOPROTOOPT;
    }
  }
  if (level == IPPROTO_TCP && name == TCP_NODELAY) {
    if (const int rc = int_value(value, len, &v); rc < 0) return rc;
    s->nodelay = v != 0;
    if (s->conn != kNoConn) {
      stack_->tcp().set_nodelay(s->conn, s->nodelay);
      pump();
    }
    return 0;
  }
  return -ENOPROTOOPT;
}

short Host::revents(int fd, short events) {
  Socket* s = find(fd);
  if (s == nullptr) {
    return POLLNVAL;
  }
  short r = 0;
  if (s->listening) {
    fill_pending(*s);
    if (!s->pending.empty()) {
      r |= POLLIN | POLLRDNORM;
    }
    return static_cast<short>(r & (events | POLLERR | POLLHUP));
  }
  const ConnState* c = conn_state(*s);
  if (c == nullptr) {
    // Linux: a TCP socket neither connected nor listening reports POLLOUT | POLLHUP.
    return static_cast<short>((POLLOUT | POLLWRNORM | POLLHUP) & (events | POLLHUP));
  }
  if (s->so_error != 0) {
    r |= POLLERR;
  }
  const bool eof = c->peer_fin || c->done || s->shut_rd;
  if (stores_.readable(s->conn) > 0 || eof) {
    r |= POLLIN | POLLRDNORM;
  }
  if (c->peer_fin || s->shut_rd) {
    r |= POLLRDHUP;
  }
  if (c->done || (s->shut_wr && (c->peer_fin || s->shut_rd))) {
    r |= POLLHUP;
  }
  if (c->connected && !c->done && !s->shut_wr && stores_.tx_free(s->conn) > 0) {
    r |= POLLOUT | POLLWRNORM;
  }
  if (c->done && !c->connected) {
    r |= POLLOUT | POLLWRNORM;  // a failed connect wakes writers, who then see the error
  }
  return static_cast<short>(r & (events | POLLERR | POLLHUP));
}

int Host::poll(pollfd* fds, nfds_t nfds, int timeout_ms) {
  std::unique_lock lock(mu_);
  if (fds == nullptr && nfds > 0) {
    return -EFAULT;
  }
  if (nfds > 4096) {
    return -EINVAL;
  }
  int ready = 0;
  const auto scan = [&] {
    ready = 0;
    for (nfds_t i = 0; i < nfds; ++i) {
      fds[i].revents = fds[i].fd < 0 ? 0 : revents(fds[i].fd, fds[i].events);
      if (fds[i].revents != 0) {
        ++ready;
      }
    }
    return ready > 0;
  };
  if (scan() || timeout_ms == 0) {
    return ready;
  }
  const TimeNs deadline = timeout_ms < 0 ? kForever : clock_.now() + ms(timeout_ms);
  wait_until(lock, scan, deadline);
  return ready;
}

}  // namespace xtcp::packetdrill
