// The only place netpdu/ makes data system calls. Aggregators write through a ByteSink and
// receivers read through a ByteSource; the fd versions count every call they make (per
// thread), which is how the benchmark reports system calls per message.
//
//   Aggregator --writev--> ByteSink (FdSink: sendmsg/writev, counted) --> kernel
//   kernel --> ByteSource (FdSource: readv/read, counted) --readv--> Deaggregator
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

namespace xtcp::netpdu {

// Linux's IOV_MAX; a gather/scatter call never gets more entries than this.
inline constexpr int kIovMax = 1024;

struct IoCounters {
  std::uint64_t write_calls = 0;   // write/send
  std::uint64_t writev_calls = 0;  // writev/sendmsg
  std::uint64_t read_calls = 0;    // read/recv
  std::uint64_t readv_calls = 0;   // readv
  std::uint64_t bytes_written = 0;
  std::uint64_t bytes_read = 0;

  std::uint64_t calls() const { return write_calls + writev_calls + read_calls + readv_calls; }
  IoCounters operator-(const IoCounters& o) const {
    return {write_calls - o.write_calls, writev_calls - o.writev_calls, read_calls - o.read_calls,
            readv_calls - o.readv_calls, bytes_written - o.bytes_written, bytes_read - o.bytes_read};
  }
};

// This thread's counters (every call, including those answered with EAGAIN).
IoCounters& io_counters();

// Counted wrappers. Return bytes moved, 0 at EOF (reads), or -errno. On sockets the write
// side uses send/sendmsg with MSG_NOSIGNAL, so a vanished peer is EPIPE, not SIGPIPE.
ssize_t counted_write(int fd, const void* data, std::size_t len, bool is_socket);
ssize_t counted_writev(int fd, const iovec* iov, int iovcnt, bool is_socket);
ssize_t counted_read(int fd, void* data, std::size_t len);
ssize_t counted_readv(int fd, const iovec* iov, int iovcnt);

bool fd_is_socket(int fd);
// Returns 0 or -errno.
int set_nonblocking(int fd);

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  // Bytes accepted (possibly fewer than offered), or -errno (-EAGAIN when full).
  virtual ssize_t writev(const iovec* iov, int iovcnt) = 0;
};

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Bytes read, 0 at end of stream, or -errno (-EAGAIN when nothing is there).
  virtual ssize_t readv(const iovec* iov, int iovcnt) = 0;
};

// A non-owning view of a descriptor as sink and source.
class FdIo final : public ByteSink, public ByteSource {
 public:
  explicit FdIo(int fd) : fd_(fd), is_socket_(fd_is_socket(fd)) {}
  int fd() const { return fd_; }
  ssize_t writev(const iovec* iov, int iovcnt) override { return counted_writev(fd_, iov, iovcnt, is_socket_); }
  ssize_t readv(const iovec* iov, int iovcnt) override {
    return iovcnt == 1 ? counted_read(fd_, iov[0].iov_base, iov[0].iov_len) : counted_readv(fd_, iov, iovcnt);
  }

 private:
  int fd_;
  bool is_socket_;
};

}  // namespace xtcp::netpdu
