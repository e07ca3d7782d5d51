// Hello negotiation (pure functions), the blocking initiator and the non-blocking acceptor
// that answers hellos and assembles variant 2 bundles by token.
#include "netpdu/handshake.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "netpdu/io.h"

namespace xtcp::netpdu {

namespace {

std::string range(unsigned lo, unsigned hi) { return std::to_string(lo) + ".." + std::to_string(hi); }

Hello reject(const Hello& in, RejectReason r) {
  Hello h;
  h.kind = HelloKind::kReject;
  h.role = in.role;
  h.reason = r;
  h.version_max = kMaxSupportedVersion;  // tells the initiator what we speak at most
  return h;
}

TimeNs now_ns() { return SteadyClock().now(); }

}  // namespace

Hello make_hello(const HandshakeLimits& mine, Role role, std::uint64_t token, std::uint16_t data_index,
                 std::uint16_t data_count) {
  Hello h;
  h.kind = HelloKind::kHello;
  h.version_min = mine.version_min;
  h.version_max = mine.version_max;
  h.role = role;
  h.max_pdu_bytes = mine.max_pdu_bytes;
  h.max_tlpdus = mine.max_tlpdus;
  h.token = token;
  h.data_index = data_index;
  h.data_count = data_count;
  return h;
}

Hello answer_hello(const Hello& in, const HandshakeLimits& mine, std::string* why) {
  if (in.kind != HelloKind::kHello) {
    *why = "expected a hello, got message kind " + std::to_string(static_cast<int>(in.kind));
    return reject(in, RejectReason::kMalformed);
  }
  const unsigned lo = std::max(in.version_min, mine.version_min);
  const unsigned hi = std::min(in.version_max, mine.version_max);
  if (in.version_min > in.version_max || lo > hi) {
    *why = "version mismatch: peer speaks " + range(in.version_min, in.version_max) + ", we speak " +
           range(mine.version_min, mine.version_max);
    return reject(in, RejectReason::kVersion);
  }
  const std::uint32_t pdu = std::min(in.max_pdu_bytes, mine.max_pdu_bytes);
  const std::uint32_t count = std::min(in.max_tlpdus, mine.max_tlpdus);
  if (pdu < kMinMaxPduBytes || pdu > kMaxMaxPduBytes || count == 0 || count > kMaxMaxTlpdus) {
    *why = "limits out of range: max aggregation " + std::to_string(pdu) + " bytes (allowed " +
           range(kMinMaxPduBytes, kMaxMaxPduBytes) + "), " + std::to_string(count) + " TLPDUs per NetPDU";
    return reject(in, RejectReason::kLimits);
  }
  if (in.role != Role::kSingle) {
    if (in.token == 0 || in.data_count == 0 || in.data_count > mine.max_data_transports ||
        (in.role == Role::kData && in.data_index >= in.data_count)) {
      *why = "bad bundle: token " + std::to_string(in.token) + ", data transport " + std::to_string(in.data_index) +
             " of " + std::to_string(in.data_count) + " (at most " + std::to_string(mine.max_data_transports) + ")";
      return reject(in, RejectReason::kBundle);
    }
  }
  Hello a = in;
  a.kind = HelloKind::kAccept;
  a.version_min = a.version_max = static_cast<std::uint8_t>(hi);
  a.max_pdu_bytes = pdu;
  a.max_tlpdus = count;
  why->clear();
  return a;
}

std::optional<Negotiated> check_answer(const Hello& sent, const Hello& answer, std::string* error) {
  if (answer.kind == HelloKind::kReject) {
    *error = std::string("peer rejected the handshake: ") + to_string(answer.reason) + " (peer speaks versions up to " +
             std::to_string(answer.version_max) + ", we offered " + range(sent.version_min, sent.version_max) + ")";
    return std::nullopt;
  }
  if (answer.kind != HelloKind::kAccept) {
    *error = "peer answered with a hello instead of accept/reject";
    return std::nullopt;
  }
  if (answer.version_min != answer.version_max || answer.version_min < sent.version_min ||
      answer.version_min > sent.version_max) {
    *error = "peer chose version " + std::to_string(answer.version_min) + ", we offered " +
             range(sent.version_min, sent.version_max);
    return std::nullopt;
  }
  if (answer.max_pdu_bytes > sent.max_pdu_bytes || answer.max_pdu_bytes < kMinMaxPduBytes ||
      answer.max_tlpdus > sent.max_tlpdus || answer.max_tlpdus == 0) {
    *error = "peer agreed to limits we did not offer: " + std::to_string(answer.max_pdu_bytes) + " bytes, " +
             std::to_string(answer.max_tlpdus) + " TLPDUs";
    return std::nullopt;
  }
  if (answer.role != sent.role || answer.token != sent.token || answer.data_index != sent.data_index ||
      answer.data_count != sent.data_count) {
    *error = "peer's accept does not match our hello (role/bundle)";
    return std::nullopt;
  }
  Negotiated n;
  n.version = answer.version_min;
  n.max_pdu_bytes = answer.max_pdu_bytes;
  n.max_tlpdus = answer.max_tlpdus;
  n.role = answer.role;
  n.token = answer.token;
  n.data_index = answer.data_index;
  n.data_count = answer.data_count;
  return n;
}

HandshakeResult initiate(int fd, const Hello& hello, int timeout_ms) {
  HandshakeResult r;
  const TimeNs deadline = now_ns() + TimeNs{timeout_ms} * 1'000'000;
  auto wait = [&](short events) -> bool {
    const TimeNs left = deadline - now_ns();
    if (left <= 0) {
      return false;
    }
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(left / 1'000'000) + 1);
    return rc > 0 || (rc < 0 && errno == EINTR);
  };
  std::byte out[kHelloLen];
  hello.emit(out);
  const bool sock = fd_is_socket(fd);
  std::size_t sent = 0;
  while (sent < kHelloLen) {
    const ssize_t n = counted_write(fd, out + sent, kHelloLen - sent, sock);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n == -EAGAIN || n == -EINTR) {
      if (!wait(POLLOUT)) {
        r.error = "handshake: timed out sending the hello";
        return r;
      }
    } else {
      r.error = std::string("handshake: sending the hello: ") + std::strerror(static_cast<int>(-n));
      return r;
    }
  }
  std::byte in[kHelloLen];
  std::size_t got = 0;
  while (got < kHelloLen) {
    const ssize_t n = counted_read(fd, in + got, kHelloLen - got);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
    } else if (n == 0) {
      r.error = "handshake: peer closed the transport after " + std::to_string(got) + " bytes of its answer";
      return r;
    } else if (n == -EAGAIN || n == -EINTR) {
      if (!wait(POLLIN)) {
        r.error = "handshake: no answer within " + std::to_string(timeout_ms) + " ms";
        return r;
      }
    } else {
      r.error = std::string("handshake: reading the answer: ") + std::strerror(static_cast<int>(-n));
      return r;
    }
  }
  WireError e = WireError::kNone;
  const auto answer = Hello::parse(ByteSpan(in, kHelloLen), &e);
  if (!answer) {
    char magic[16];
    std::snprintf(magic, sizeof magic, "%08x", load_be32(in));
    r.error = std::string("handshake: peer's answer is not a NetPDU hello: ") + to_string(e) + " (magic " + magic + ")";
    return r;
  }
  r.negotiated = check_answer(hello, *answer, &r.error);
  return r;
}

// ---- Acceptor ----

Acceptor::Acceptor(const HandshakeLimits& limits, const Clock& clock, TimeNs timeout)
    : limits_(limits), clock_(clock), timeout_(timeout) {}

Acceptor::~Acceptor() {
  for (auto& [fd, w] : waiting_) {
    ::close(fd);
  }
  for (auto& [token, b] : bundles_) {
    if (b.control_fd >= 0) {
      ::close(b.control_fd);
    }
    for (int fd : b.data_fds) {
      if (fd >= 0) {
        ::close(fd);
      }
    }
  }
  for (auto& r : ready_) {
    ::close(r.fd);
    for (int fd : r.data_fds) {
      ::close(fd);
    }
  }
}

void Acceptor::add(int fd) {
  set_nonblocking(fd);
  Waiting w;
  w.since = clock_.now();
  waiting_[fd] = w;
}

std::vector<int> Acceptor::waiting_fds() const {
  std::vector<int> v;
  v.reserve(waiting_.size());
  for (const auto& [fd, w] : waiting_) {
    v.push_back(fd);
  }
  return v;
}

std::vector<Acceptor::Ready> Acceptor::take_ready() { return std::exchange(ready_, {}); }
std::vector<std::string> Acceptor::take_errors() { return std::exchange(errors_, {}); }

TimeNs Acceptor::next_deadline() const {
  TimeNs t = kNever;
  for (const auto& [fd, w] : waiting_) {
    t = std::min(t, w.since + timeout_);
  }
  for (const auto& [token, b] : bundles_) {
    t = std::min(t, b.since + timeout_);
  }
  return t;
}

void Acceptor::refuse(int fd, const std::string& why) {
  errors_.push_back("fd " + std::to_string(fd) + ": " + why);
  ::close(fd);
}

void Acceptor::on_readable(int fd) {
  auto it = waiting_.find(fd);
  if (it == waiting_.end()) {
    return;
  }
  Waiting& w = it->second;
  const ssize_t n = counted_read(fd, w.buf + w.have, kHelloLen - w.have);
  if (n == -EAGAIN || n == -EINTR) {
    return;
  }
  if (n <= 0) {
    waiting_.erase(it);
    refuse(fd, n == 0 ? "closed before completing its hello (" + std::to_string(w.have) + " of 32 bytes)"
                      : std::string("read: ") + std::strerror(static_cast<int>(-n)));
    return;
  }
  w.have += static_cast<std::size_t>(n);
  if (w.have < kHelloLen) {
    return;
  }
  std::byte buf[kHelloLen];
  std::memcpy(buf, w.buf, kHelloLen);
  waiting_.erase(it);

  WireError e = WireError::kNone;
  const auto in = Hello::parse(ByteSpan(buf, kHelloLen), &e);
  Hello answer;
  std::string why;
  if (!in) {
    char magic[16];
    std::snprintf(magic, sizeof magic, "%08x", load_be32(buf));
    why = std::string("not a NetPDU hello: ") + to_string(e) + " (magic " + magic + ")";
    answer = Hello{};
    answer.kind = HelloKind::kReject;
    answer.reason = RejectReason::kMalformed;
    answer.version_max = kMaxSupportedVersion;
  } else {
    answer = answer_hello(*in, limits_, &why);
    if (answer.kind == HelloKind::kAccept && in->role != Role::kSingle) {
      // The bundle's members must agree with each other before anyone is told yes.
      auto b = bundles_.find(in->token);
      if (b != bundles_.end()) {
        const Bundle& bd = b->second;
        const bool dup = in->role == Role::kControl ? bd.control_fd >= 0 : bd.data_fds[in->data_index] >= 0;
        if (bd.data_count != in->data_count || dup) {
          why = dup ? "bad bundle: duplicate member" : "bad bundle: members disagree on the data transport count";
          answer = Hello{};
          answer.kind = HelloKind::kReject;
          answer.role = in->role;
          answer.reason = RejectReason::kBundle;
          answer.version_max = kMaxSupportedVersion;
        }
      } else if (bundles_.size() >= 256) {
        why = "too many incomplete bundles";
        answer.kind = HelloKind::kReject;
        answer.reason = RejectReason::kBundle;
      }
    }
  }
  std::byte out[kHelloLen];
  answer.emit(out);
  const ssize_t wn = counted_write(fd, out, kHelloLen, fd_is_socket(fd));
  if (answer.kind != HelloKind::kAccept) {
    refuse(fd, "handshake refused: " + why);
    return;
  }
  if (wn != static_cast<ssize_t>(kHelloLen)) {
    // A fresh connection's send buffer takes 32 bytes at once; anything else is a dead peer.
    refuse(fd, "could not send the handshake answer");
    return;
  }
  finish(fd, answer);
}

void Acceptor::finish(int fd, const Hello& a) {
  Negotiated n;
  n.version = a.version_min;
  n.max_pdu_bytes = a.max_pdu_bytes;
  n.max_tlpdus = a.max_tlpdus;
  n.role = a.role;
  n.token = a.token;
  n.data_index = a.data_index;
  n.data_count = a.data_count;
  if (a.role == Role::kSingle) {
    ready_.push_back(Ready{n, fd, {}});
    return;
  }
  auto [it, fresh] = bundles_.try_emplace(a.token);
  Bundle& b = it->second;
  if (fresh) {
    b.data_count = a.data_count;
    b.data_fds.assign(a.data_count, -1);
    b.since = clock_.now();
  }
  if (a.role == Role::kControl) {
    b.control = n;
    b.control_fd = fd;
  } else {
    b.data_fds[a.data_index] = fd;
    ++b.arrived;
  }
  if (b.control_fd >= 0 && b.arrived == b.data_count) {
    ready_.push_back(Ready{*b.control, b.control_fd, std::move(b.data_fds)});
    bundles_.erase(it);
  }
}

void Acceptor::close_bundle(std::uint64_t token, const std::string& why) {
  auto it = bundles_.find(token);
  if (it == bundles_.end()) {
    return;
  }
  errors_.push_back("bundle " + std::to_string(token) + ": " + why);
  if (it->second.control_fd >= 0) {
    ::close(it->second.control_fd);
  }
  for (int fd : it->second.data_fds) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
  bundles_.erase(it);
}

void Acceptor::expire() {
  const TimeNs now = clock_.now();
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (now - it->second.since >= timeout_) {
      const int fd = it->first;
      it = waiting_.erase(it);
      refuse(fd, "no hello within the handshake timeout");
    } else {
      ++it;
    }
  }
  std::vector<std::uint64_t> stale;
  for (const auto& [token, b] : bundles_) {
    if (now - b.since >= timeout_) {
      stale.push_back(token);
    }
  }
  for (auto t : stale) {
    close_bundle(t, "incomplete within the handshake timeout");
  }
}

}  // namespace xtcp::netpdu
