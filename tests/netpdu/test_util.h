// Helpers for the NetPDU tests: non-blocking socketpairs, a bounded poll loop over any mix
// of endpoints/concentrators/backends, deterministic payload patterns checkable on the far
// side, and scripted in-memory sources/sinks for exact partial-read/-write schedules.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "netpdu/clock.h"
#include "netpdu/endpoint.h"
#include "netpdu/io.h"
#include "netpdu/payload.h"

namespace xtcp::netpdu::test {

// AF_UNIX stream pair, both ends non-blocking; buf > 0 shrinks the kernel buffers so
// partial writes and backpressure happen with little data.
inline std::pair<int, int> socket_pair(int buf = 0) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return {-1, -1};
  }
  for (int fd : sv) {
    set_nonblocking(fd);
    if (buf > 0) {
      ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    }
  }
  return {sv[0], sv[1]};
}

inline void write_all(int fd, const void* data, std::size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    const ssize_t n = ::send(fd, p, len, MSG_NOSIGNAL);
    if (n > 0) {
      p += n;
      len -= static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      pollfd pf{fd, POLLOUT, 0};
      ::poll(&pf, 1, 1000);
    } else {
      return;
    }
  }
}

// Something with descriptors to poll, readiness to take and timers to run.
struct Node {
  std::function<void(std::vector<pollfd>*)> fds;
  std::function<void(int, short)> handle;
  std::function<void()> timers;
  std::function<TimeNs()> deadline;
};

template <typename T>
Node node_of(T& x) {
  return Node{[&x](std::vector<pollfd>* v) { x.pollfds(v); }, [&x](int fd, short ev) { x.handle(fd, ev); },
              [&x] { x.poll_timers(); }, [&x] { return x.next_deadline(); }};
}

// Runs a poll loop over the nodes until done() holds or limit_ms of wall time passed
// (a bounded wait, never a sleep). Returns done().
inline bool pump(const std::vector<Node>& nodes, const std::function<bool()>& done, int limit_ms = 20000) {
  SteadyClock clock;
  const TimeNs end = clock.now() + TimeNs{limit_ms} * 1'000'000;
  std::vector<pollfd> pfds;
  std::vector<std::size_t> owner;
  while (true) {
    for (const auto& n : nodes) {
      n.timers();
    }
    if (done()) {
      return true;
    }
    const TimeNs now = clock.now();
    if (now >= end) {
      return false;
    }
    pfds.clear();
    owner.clear();
    TimeNs deadline = end;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      const std::size_t before = pfds.size();
      nodes[i].fds(&pfds);
      owner.resize(pfds.size(), i);
      (void)before;
      deadline = std::min(deadline, nodes[i].deadline());
    }
    const TimeNs left = std::min<TimeNs>(deadline - now, 50'000'000);
    const int timeout = left <= 0 ? 0 : static_cast<int>((left + 999'999) / 1'000'000);
    const int rc = ::poll(pfds.data(), pfds.size(), timeout);
    if (rc <= 0) {
      continue;
    }
    for (std::size_t k = 0; k < pfds.size(); ++k) {
      if (pfds[k].revents != 0) {
        nodes[owner[k]].handle(pfds[k].fd, pfds[k].revents);
      }
    }
  }
}

// Payload bytes and sizes derived from (session, seq), so the receiver can check every
// byte without the sender telling it anything. Payloads reference one shared random
// buffer (no per-message allocation on the sending side).
class Pattern {
 public:
  // large_one_in: one payload in this many is large (up to 64 KiB); the rest 0..small_max.
  explicit Pattern(std::uint32_t large_one_in = 1000, std::size_t small_max = 256, std::size_t large_max = 65536)
      : large_one_in_(large_one_in), small_max_(small_max), large_max_(large_max) {
    auto buf = std::make_shared<std::vector<std::byte>>((2u << 20) + large_max_);
    std::mt19937_64 rng(12345);
    for (auto& b : *buf) {
      b = static_cast<std::byte>(rng());
    }
    data_ = std::move(buf);
  }

  static std::uint64_t mix(std::uint64_t session, std::uint32_t seq, std::uint64_t salt) {
    std::uint64_t z = session * 0x9E3779B97F4A7C15ull + seq + salt * 0xD1B54A32D192ED03ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  std::size_t size_for(std::uint64_t session, std::uint32_t seq) const {
    const std::uint64_t h = mix(session, seq, 1);
    if (large_one_in_ != 0 && h % large_one_in_ == 0) {
      return (h >> 20) % (large_max_ + 1);
    }
    return (h >> 20) % (small_max_ + 1);
  }
  ByteSpan bytes_for(std::uint64_t session, std::uint32_t seq) const {
    const std::size_t off = mix(session, seq, 2) % (2u << 20);
    return ByteSpan(data_->data() + off, size_for(session, seq));
  }
  Payload payload(std::uint64_t session, std::uint32_t seq) const {
    return Payload{bytes_for(session, seq), data_};
  }
  bool check(std::uint64_t session, std::uint32_t seq, ByteSpan got) const {
    const ByteSpan want = bytes_for(session, seq);
    return got.size() == want.size() && (want.empty() || std::memcmp(got.data(), want.data(), want.size()) == 0);
  }

 private:
  std::uint32_t large_one_in_;
  std::size_t small_max_;
  std::size_t large_max_;
  std::shared_ptr<std::vector<std::byte>> data_;
};

// A source over bytes in memory that arrive in a fixed schedule of chunk sizes (cycled):
// reads take from the chunk that has arrived; once it is used up the next read answers
// -EAGAIN and the next chunk arrives. At the end: EOF, or -EAGAIN forever.
class ChunkedSource final : public ByteSource {
 public:
  ChunkedSource(std::vector<std::byte> data, std::vector<std::size_t> chunks, bool eof_at_end)
      : data_(std::move(data)), chunks_(std::move(chunks)), eof_(eof_at_end) {
    arrive();
  }
  ssize_t readv(const iovec* iov, int iovcnt) override {
    ++calls_;
    if (avail_ == 0) {
      if (pos_ == data_.size()) {
        return eof_ ? 0 : -EAGAIN;
      }
      arrive();
      return -EAGAIN;  // the gap between two arrivals
    }
    std::size_t moved = 0;
    for (int i = 0; i < iovcnt && avail_ > 0; ++i) {
      const std::size_t n = std::min(avail_, iov[i].iov_len);
      std::memcpy(iov[i].iov_base, data_.data() + pos_, n);
      pos_ += n;
      moved += n;
      avail_ -= n;
    }
    return static_cast<ssize_t>(moved);
  }
  std::size_t calls() const { return calls_; }
  bool consumed_all() const { return pos_ == data_.size(); }

 private:
  void arrive() { avail_ = std::min(chunks_[next_++ % chunks_.size()], data_.size() - pos_); }

  std::vector<std::byte> data_;
  std::vector<std::size_t> chunks_;
  bool eof_;
  std::size_t pos_ = 0;
  std::size_t avail_ = 0;
  std::size_t next_ = 0;
  std::size_t calls_ = 0;
};

// A sink that takes at most `per_call` bytes per writev, answers -EAGAIN while blocked,
// records every byte taken and the largest iovec count it was offered.
class ScriptedSink final : public ByteSink {
 public:
  explicit ScriptedSink(std::size_t per_call = SIZE_MAX) : per_call_(per_call) {}
  ssize_t writev(const iovec* iov, int iovcnt) override {
    ++calls_;
    if (log_ != nullptr) {
      log_->push_back(name_);
    }
    max_iovcnt_ = std::max(max_iovcnt_, iovcnt);
    if (blocked_) {
      return -EAGAIN;
    }
    if (error_ != 0) {
      return -error_;
    }
    std::size_t budget = per_call_;
    std::size_t moved = 0;
    for (int i = 0; i < iovcnt && budget > 0; ++i) {
      const std::size_t n = std::min(budget, iov[i].iov_len);
      const auto* p = static_cast<const std::byte*>(iov[i].iov_base);
      bytes_.insert(bytes_.end(), p, p + n);
      moved += n;
      budget -= n;
    }
    return static_cast<ssize_t>(moved);
  }
  std::vector<std::byte> bytes_;
  bool blocked_ = false;
  int error_ = 0;
  std::size_t per_call_;
  std::size_t calls_ = 0;
  int max_iovcnt_ = 0;
  std::vector<std::string>* log_ = nullptr;  // shared call log, to check call order
  std::string name_;
};

inline std::vector<std::byte> bytes_of(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int b : v) {
    out.push_back(static_cast<std::byte>(b));
  }
  return out;
}

inline std::vector<std::byte> bytes_of(const std::string& s) {
  std::vector<std::byte> out(s.size());
  if (!s.empty()) {
    std::memcpy(out.data(), s.data(), s.size());
  }
  return out;
}

inline std::string text_of(ByteSpan b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

// Builds frames by hand (independently of the aggregator) for parser and fault tests.
struct FrameBuilder {
  std::vector<std::byte> out;
  void u8(std::uint8_t v) { out.push_back(static_cast<std::byte>(v)); }
  void u16(std::uint16_t v) {
    u8(static_cast<std::uint8_t>(v >> 8));
    u8(static_cast<std::uint8_t>(v));
  }
  void u32(std::uint32_t v) {
    u16(static_cast<std::uint16_t>(v >> 16));
    u16(static_cast<std::uint16_t>(v));
  }
  void u64(std::uint64_t v) {
    u32(static_cast<std::uint32_t>(v >> 32));
    u32(static_cast<std::uint32_t>(v));
  }
  void pdu_header(std::uint32_t total, std::uint32_t count, std::uint8_t flags = 0, std::uint16_t transport = 0,
                  std::uint32_t header_len = 20, std::uint32_t magic = 0x4E504455, std::uint8_t version = 1) {
    u32(magic);
    u8(version);
    u8(flags);
    u16(transport);
    u32(header_len);
    u32(total);
    u32(count);
  }
  void tlpdu_header(std::uint8_t type, std::uint64_t session, std::uint32_t seq, std::uint32_t size,
                    std::uint8_t flags = 0, std::uint16_t reserved = 0) {
    u8(type);
    u8(flags);
    u16(reserved);
    u64(session);
    u32(seq);
    u32(size);
  }
  void text(const std::string& s) {
    for (char c : s) {
      u8(static_cast<std::uint8_t>(c));
    }
  }
  // A whole inline NetPDU of DATA TLPDUs (session, seq, text).
  void inline_pdu(const std::vector<std::tuple<std::uint64_t, std::uint32_t, std::string>>& tl) {
    std::uint32_t total = 20;
    for (const auto& [s, q, t] : tl) {
      total += 20 + static_cast<std::uint32_t>(t.size());
    }
    pdu_header(total, static_cast<std::uint32_t>(tl.size()));
    for (const auto& [s, q, t] : tl) {
      tlpdu_header(2, s, q, static_cast<std::uint32_t>(t.size()));
      text(t);
    }
  }
};

}  // namespace xtcp::netpdu::test
