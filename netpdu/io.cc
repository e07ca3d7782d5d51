// Counted system-call wrappers and the descriptor helpers behind FdIo.
#include "netpdu/io.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace xtcp::netpdu {

IoCounters& io_counters() {
  thread_local IoCounters counters;
  return counters;
}

namespace {
ssize_t result(ssize_t n) { return n < 0 ? -errno : n; }
}  // namespace

ssize_t counted_write(int fd, const void* data, std::size_t len, bool is_socket) {
  auto& c = io_counters();
  ++c.write_calls;
  const ssize_t n = result(is_socket ? ::send(fd, data, len, MSG_NOSIGNAL) : ::write(fd, data, len));
  if (n > 0) {
    c.bytes_written += static_cast<std::uint64_t>(n);
  }
  return n;
}

ssize_t counted_writev(int fd, const iovec* iov, int iovcnt, bool is_socket) {
  auto& c = io_counters();
  ++c.writev_calls;
  ssize_t n;
  if (is_socket) {
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = static_cast<std::size_t>(iovcnt);
    n = result(::sendmsg(fd, &msg, MSG_NOSIGNAL));
  } else {
    n = result(::writev(fd, iov, iovcnt));
  }
  if (n > 0) {
    c.bytes_written += static_cast<std::uint64_t>(n);
  }
  return n;
}

ssize_t counted_read(int fd, void* data, std::size_t len) {
  auto& c = io_counters();
  ++c.read_calls;
  const ssize_t n = result(::read(fd, data, len));
  if (n > 0) {
    c.bytes_read += static_cast<std::uint64_t>(n);
  }
  return n;
}

ssize_t counted_readv(int fd, const iovec* iov, int iovcnt) {
  auto& c = io_counters();
  ++c.readv_calls;
  const ssize_t n = result(::readv(fd, iov, iovcnt));
  if (n > 0) {
    c.bytes_read += static_cast<std::uint64_t>(n);
  }
  return n;
}

bool fd_is_socket(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

int set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    return -errno;
  }
  return 0;
}

}  // namespace xtcp::netpdu
