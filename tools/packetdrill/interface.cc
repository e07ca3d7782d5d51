// packetdrill_interface_init, the one symbol libxtcp-packetdrill.so exports, and the C slots
// it fills: each forwards to the Host and turns a negative errno into -1 with errno set.
// Slots for what the adapter does not model (pipe, splice) fail with ENOSYS.
#include <cerrno>
#include <fcntl.h>
#include <limits.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "tools/packetdrill/host.h"
#include "tools/packetdrill/packetdrill_interface.h"

namespace xtcp::packetdrill {
namespace {

Host& host(void* userdata) { return *static_cast<Host*>(userdata); }

template <class T>
T result(T rc) {
  if (rc < 0) {
    errno = static_cast<int>(-rc);
    return -1;
  }
  return rc;
}

// Gathers an iovec into one buffer (readv/writev/recvmsg/sendmsg go through recv/send).
std::size_t iov_total(const iovec* iov, int iovcnt) {
  std::size_t n = 0;
  for (int i = 0; i < iovcnt; ++i) {
    n += iov[i].iov_len;
  }
  return n;
}

// Every part with bytes has a buffer (the kernel answers EFAULT otherwise).
bool iov_readable(const iovec* iov, int iovcnt) {
  for (int i = 0; i < iovcnt; ++i) {
    if (iov[i].iov_base == nullptr && iov[i].iov_len > 0) {
      return false;
    }
  }
  return true;
}

ssize_t send_iov(Host& h, int fd, const iovec* iov, int iovcnt, int flags) {
  if (iovcnt < 0 || iovcnt > IOV_MAX || (iov == nullptr && iovcnt > 0)) {
    return -EINVAL;
  }
  if (!iov_readable(iov, iovcnt)) {
    return -EFAULT;
  }
  std::vector<std::byte> buf(iov_total(iov, iovcnt));
  std::size_t at = 0;
  for (int i = 0; i < iovcnt; ++i) {
    if (iov[i].iov_len > 0) {
      std::memcpy(buf.data() + at, iov[i].iov_base, iov[i].iov_len);
      at += iov[i].iov_len;
    }
  }
  return h.send(fd, buf.data(), buf.size(), flags);
}

ssize_t recv_iov(Host& h, int fd, const iovec* iov, int iovcnt, int flags) {
  if (iovcnt < 0 || iovcnt > IOV_MAX || (iov == nullptr && iovcnt > 0)) {
    return -EINVAL;
  }
  if (!iov_readable(iov, iovcnt)) {
    return -EFAULT;
  }
  std::vector<std::byte> buf(iov_total(iov, iovcnt));
  const ssize_t n = h.recv(fd, buf.data(), buf.size(), flags);
  if (n <= 0) {
    return n;
  }
  std::size_t at = 0;
  for (int i = 0; i < iovcnt && at < static_cast<std::size_t>(n); ++i) {
    const std::size_t part = std::min(iov[i].iov_len, static_cast<std::size_t>(n) - at);
    if (part > 0) {
      std::memcpy(iov[i].iov_base, buf.data() + at, part);
    }
    at += part;
  }
  return n;
}

void pd_free(void* u) { delete static_cast<Host*>(u); }
int pd_socket(void* u, int domain, int type, int protocol) {
  return result(host(u).socket(domain, type, protocol));
}
int pd_bind(void* u, int fd, const sockaddr* addr, socklen_t len) {
  return result(host(u).bind(fd, addr, len));
}
int pd_listen(void* u, int fd, int backlog) { return result(host(u).listen(fd, backlog)); }
int pd_accept(void* u, int fd, sockaddr* addr, socklen_t* len) {
  return result(host(u).accept(fd, addr, len));
}
int pd_connect(void* u, int fd, const sockaddr* addr, socklen_t len) {
  return result(host(u).connect(fd, addr, len));
}
ssize_t pd_read(void* u, int fd, void* buf, size_t count) {
  return result(host(u).recv(fd, buf, count, 0));
}
ssize_t pd_readv(void* u, int fd, const iovec* iov, int iovcnt) {
  return result(recv_iov(host(u), fd, iov, iovcnt, 0));
}
ssize_t pd_recv(void* u, int fd, void* buf, size_t len, int flags) {
  return result(host(u).recv(fd, buf, len, flags));
}
ssize_t pd_recvfrom(void* u, int fd, void* buf, size_t len, int flags, sockaddr* /*src*/,
                    socklen_t* addrlen) {
  // A connected TCP socket reports no source address (Linux leaves msg_namelen 0).
  if (addrlen != nullptr) {
    *addrlen = 0;
  }
  return result(host(u).recv(fd, buf, len, flags));
}
ssize_t pd_recvmsg(void* u, int fd, msghdr* msg, int flags) {
  if (msg == nullptr) {
    return result<ssize_t>(-EFAULT);
  }
  msg->msg_namelen = 0;
  msg->msg_controllen = 0;
  msg->msg_flags = 0;
  return result(recv_iov(host(u), fd, msg->msg_iov, static_cast<int>(msg->msg_iovlen), flags));
}
ssize_t pd_write(void* u, int fd, const void* buf, size_t count) {
  return result(host(u).send(fd, buf, count, 0));
}
ssize_t pd_writev(void* u, int fd, const iovec* iov, int iovcnt) {
  return result(send_iov(host(u), fd, iov, iovcnt, 0));
}
ssize_t pd_send(void* u, int fd, const void* buf, size_t len, int flags) {
  return result(host(u).send(fd, buf, len, flags));
}
ssize_t pd_sendto(void* u, int fd, const void* buf, size_t len, int flags,
                  const sockaddr* /*dest*/, socklen_t /*addrlen*/) {
  // On a connected TCP socket the address is ignored, as Linux does (no fast open).
  return result(host(u).send(fd, buf, len, flags));
}
ssize_t pd_sendmsg(void* u, int fd, const msghdr* msg, int flags) {
  if (msg == nullptr) {
    return result<ssize_t>(-EFAULT);
  }
  return result(send_iov(host(u), fd, msg->msg_iov, static_cast<int>(msg->msg_iovlen), flags));
}
int pd_fcntl(void* u, int fd, int cmd, ...) {
  long arg = 0;
  if (cmd == F_SETFL || cmd == F_SETFD) {
    va_list ap;
    va_start(ap, cmd);
    arg = va_arg(ap, int);
    va_end(ap);
  }
  return result(host(u).fcntl(fd, cmd, arg));
}
int pd_ioctl(void* u, int fd, unsigned long request, ...) {
  va_list ap;
  va_start(ap, request);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return result(host(u).ioctl(fd, request, arg));
}
int pd_close(void* u, int fd) { return result(host(u).close(fd)); }
int pd_shutdown(void* u, int fd, int how) { return result(host(u).shutdown(fd, how)); }
int pd_getsockopt(void* u, int fd, int level, int name, void* value, socklen_t* len) {
  return result(host(u).getsockopt(fd, level, name, value, len));
}
int pd_setsockopt(void* u, int fd, int level, int name, const void* value, socklen_t len) {
  return result(host(u).setsockopt(fd, level, name, value, len));
}
int pd_poll(void* u, pollfd* fds, nfds_t nfds, int timeout) {
  return result(host(u).poll(fds, nfds, timeout));
}
int pd_netdev_send(void* u, const void* buf, size_t count) {
  return result(host(u).netdev_send(buf, count));
}
int pd_netdev_receive(void* u, void* buf, size_t* count, long long* time_usecs) {
  return result(host(u).netdev_receive(buf, count, time_usecs));
}
int pd_usleep(void* u, useconds_t usec) {
  host(u).usleep(usec);
  return 0;
}
int pd_gettimeofday(void* u, timeval* tv, struct timezone* /*tz*/) {
  host(u).gettimeofday(tv);
  return 0;
}
int pd_epoll_create(void* u, int size) { return result(host(u).epoll_create(size)); }
int pd_epoll_ctl(void* u, int epfd, int op, int fd, epoll_event* event) {
  return result(host(u).epoll_ctl(epfd, op, fd, event));
}
int pd_epoll_wait(void* u, int epfd, epoll_event* events, int maxevents, int timeout) {
  return result(host(u).epoll_wait(epfd, events, maxevents, timeout));
}
int pd_pipe(void*, int*) { return result(-ENOSYS); }
int pd_splice(void*, int, loff_t*, int, loff_t*, size_t, unsigned int) { return result(-ENOSYS); }

}  // namespace
}  // namespace xtcp::packetdrill

extern "C" __attribute__((visibility("default"))) void packetdrill_interface_init(
    const char* flags, struct packetdrill_interface* ifc) {
  using namespace xtcp::packetdrill;  // NOLINT
  HostOptions options;
  std::string error;
  if (!parse_host_options(flags, &options, &error)) {
    // packetdrill has no way to hear of a failed init: say what is wrong and stop, as a
    // program does for a bad command-line flag.
    std::fprintf(stderr, "xtcp-packetdrill: bad --so_flags \"%s\": %s\n",
                 flags != nullptr ? flags : "", error.c_str());
    std::exit(2);
  }
  *ifc = packetdrill_interface{};
  ifc->userdata = new Host(options);
  ifc->free = pd_free;
  ifc->socket = pd_socket;
  ifc->bind = pd_bind;
  ifc->listen = pd_listen;
  ifc->accept = pd_accept;
  ifc->connect = pd_connect;
  ifc->read = pd_read;
  ifc->readv = pd_readv;
  ifc->recv = pd_recv;
  ifc->recvfrom = pd_recvfrom;
  ifc->recvmsg = pd_recvmsg;
  ifc->write = pd_write;
  ifc->writev = pd_writev;
  ifc->send = pd_send;
  ifc->sendto = pd_sendto;
  ifc->sendmsg = pd_sendmsg;
  ifc->fcntl = pd_fcntl;
  ifc->ioctl = pd_ioctl;
  ifc->close = pd_close;
  ifc->shutdown = pd_shutdown;
  ifc->getsockopt = pd_getsockopt;
  ifc->setsockopt = pd_setsockopt;
  ifc->poll = pd_poll;
  ifc->netdev_send = pd_netdev_send;
  ifc->netdev_receive = pd_netdev_receive;
  ifc->usleep = pd_usleep;
  ifc->gettimeofday = pd_gettimeofday;
  ifc->epoll_create = pd_epoll_create;
  ifc->epoll_ctl = pd_epoll_ctl;
  ifc->epoll_wait = pd_epoll_wait;
  ifc->pipe = pd_pipe;
  ifc->splice = pd_splice;
}
