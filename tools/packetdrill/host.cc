// The host's stack, link, byte stores and virtual time; the socket calls are in sockets.cc.
#include "tools/packetdrill/host.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "stack/wire/ipv4.h"

namespace xtcp::packetdrill {

namespace {

bool parse_size(std::string_view text, std::size_t min, std::size_t max, std::size_t* out) {
  if (text.empty() || text.size() > 12) {
    return false;
  }
  std::size_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return false;
    }
    v = v * 10 + static_cast<std::size_t>(c - '0');
  }
  if (v < min || v > max) {
    return false;
  }
  *out = v;
  return true;
}

}  // namespace

bool parse_host_options(const char* flags, HostOptions* out, std::string* error) {
  HostOptions o;
  bool have_local = false;
  std::string_view rest = flags != nullptr ? flags : "";
  while (!rest.empty()) {
    const std::size_t sep = rest.find_first_of(", ");
    const std::string_view item = rest.substr(0, sep);
    rest = sep == std::string_view::npos ? std::string_view{} : rest.substr(sep + 1);
    if (item.empty()) {
      continue;
    }
    const std::size_t eq = item.find('=');
    const std::string_view key = item.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1);
    std::size_t n = 0;
    if (key == "local") {
      if (!wire::parse_ipv4(value, &o.local_addr) || o.local_addr == 0) {
        *error = "local=" + std::string(value) + ": not an IPv4 address (A.B.C.D)";
        return false;
      }
      have_local = true;
    } else if (key == "rcvbuf" && parse_size(value, 1024, 64u << 20, &n)) {
      o.rcvbuf = n;
    } else if (key == "sndbuf" && parse_size(value, 1024, 64u << 20, &n)) {
      o.sndbuf = n;
    } else if (key == "mtu" && parse_size(value, 576, 65535, &n)) {
      o.mtu = n;
    } else if (key == "max_wait" && parse_size(value, 1, 86400, &n)) {
      o.max_wait = seconds(static_cast<std::int64_t>(n));
    } else if (key == "rcvbuf" || key == "sndbuf" || key == "mtu" || key == "max_wait") {
      *error = std::string(item) +
               ": out of range (rcvbuf, sndbuf: 1024..67108864 bytes; mtu: 576..65535; "
               "max_wait: 1..86400 s)";
      return false;
    } else {
      *error = "unknown setting \"" + std::string(item) +
               "\" (known: local=A.B.C.D, rcvbuf=N, sndbuf=N, mtu=N, max_wait=S)";
      return false;
    }
  }
  if (!have_local) {
    *error = "local=A.B.C.D is required: the stack's address, the same as packetdrill's --local_ip";
    return false;
  }
  *out = o;
  return true;
}

// ---- link ---------------------------------------------------------------------------------

int PacketdrillLink::send(std::span<const std::byte> packet) {
  if (packet.size() > mtu_) {
    return -EMSGSIZE;
  }
  outbound.push_back(Sent{clock_.now(), std::vector<std::byte>(packet.begin(), packet.end())});
  return 0;
}

int PacketdrillLink::receive_batch(int max_packets, PacketHandler on_packet) {
  int n = 0;
  while (n < max_packets && !inbound.empty()) {
    const std::vector<std::byte> p = std::move(inbound.front());
    inbound.pop_front();
    on_packet(p);
    ++n;
  }
  return n;
}

// ---- stores -------------------------------------------------------------------------------

const SocketStores::Rings* SocketStores::find(ConnId conn) const {
  auto it = rings_.find(conn);
  return it == rings_.end() ? nullptr : &it->second;
}

std::size_t SocketStores::readable(ConnId conn) const {
  const Rings* r = find(conn);
  return r != nullptr && r->rx ? r->rx->size() : 0;
}

std::size_t SocketStores::unacked(ConnId conn) const {
  const Rings* r = find(conn);
  return r != nullptr && r->tx ? r->tx->size() : 0;
}

std::size_t SocketStores::read(ConnId conn, wire::MutableByteSpan out, bool peek) {
  auto it = rings_.find(conn);
  if (it == rings_.end() || !it->second.rx) {
    return 0;
  }
  const std::size_t n = it->second.rx->peek(0, out);
  if (!peek) {
    it->second.rx->pop(n);
  }
  return n;
}

void SocketStores::drop(ConnId conn, bool rx) {
  auto it = rings_.find(conn);
  if (it == rings_.end()) {
    return;
  }
  (rx ? it->second.rx : it->second.tx).reset();
  if (!it->second.rx && !it->second.tx) {
    rings_.erase(it);
  }
}

std::size_t SocketStores::RxSide::append(ConnId conn, wire::ByteSpan data) {
  auto& ring = s_.rings_[conn].rx;
  if (!ring) {
    ring = std::make_unique<ByteRing>(s_.rcvbuf_);
  }
  return ring->push(data);
}

std::size_t SocketStores::TxSide::append(ConnId conn, wire::ByteSpan data) {
  auto& ring = s_.rings_[conn].tx;
  if (!ring) {
    ring = std::make_unique<ByteRing>(s_.sndbuf_);
  }
  return ring->push(data);
}

std::size_t SocketStores::TxSide::copy(ConnId conn, std::size_t offset,
                                       wire::MutableByteSpan dst) const {
  const Rings* r = s_.find(conn);
  return r != nullptr && r->tx ? r->tx->peek(offset, dst) : 0;
}

void SocketStores::TxSide::consume(ConnId conn, std::size_t n) {
  auto it = s_.rings_.find(conn);
  if (it != s_.rings_.end() && it->second.tx) {
    it->second.tx->pop(std::min(n, it->second.tx->size()));
  }
}

// ---- host ---------------------------------------------------------------------------------

Host::Host(const HostOptions& options)
    : options_(options),
      main_thread_(std::this_thread::get_id()),
      link_(clock_, options.mtu),
      stores_(options.rcvbuf, options.sndbuf) {
  StackConfig config;
  config.ip.local_addr = options.local_addr;
  // Every timer fires when due: packetdrill's packets never form a backlog.
  config.max_timer_delay = 0;
  stack_ = std::make_unique<Stack>(config, link_, clock_, stores_.rx(), stores_.tx());
}

Host::~Host() {
  // packetdrill closes the placeholders of sockets its script left open with libc close
  // before it frees the host; a descriptor number may since name something else, so only
  // a placeholder that is still the same socket is closed here.
  const auto close_if_ours = [](int fd, ino_t ino) {
    struct stat st{};
    if (::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == ino) {
      ::close(fd);
    }
  };
  for (const auto& [fd, s] : sockets_) {
    close_if_ours(fd, s.ino);
  }
  for (const auto& [fd, e] : epolls_) {
    close_if_ours(fd, e.ino);
  }
}

void Host::pump() {
  stack_->poll();
  handle_events();
  ++generation_;
  changed_.notify_all();
}

void Host::let_waiters_run(std::unique_lock<std::mutex>& lock) {
  if (!on_main_thread()) {
    return;
  }
  const auto stale = [this] {
    for (const auto& [id, sleeper] : sleepers_) {
      if (sleeper.seen != generation_) {
        return true;
      }
    }
    return false;
  };
  while (stale()) {
    looked_.wait(lock);
  }
}

TimeNs Host::next_stop() const {
  TimeNs next = stack_->next_deadline();
  for (const auto& [id, sleeper] : sleepers_) {
    if (sleeper.deadline > clock_.now()) {
      next = std::min(next, sleeper.deadline);
    }
  }
  return next;
}

void Host::advance_to(TimeNs t, std::unique_lock<std::mutex>* lock) {
  // Each timer fires at its own deadline, so what it sends carries that moment; a blocked
  // call with a timeout (poll) returns at its own.
  for (int guard = 0; guard < 1'000'000; ++guard) {
    const TimeNs next = next_stop();
    if (next > t) {
      break;
    }
    if (next > clock_.now()) {
      clock_.set(next);
    }
    pump();
    if (lock != nullptr) {
      let_waiters_run(*lock);
    }
    if (next_stop() == next && next <= clock_.now()) {
      break;  // nothing left to fire at this moment (the wheel reports its slot)
    }
  }
  if (t > clock_.now()) {
    clock_.set(t);
  }
  pump();
  if (lock != nullptr) {
    let_waiters_run(*lock);
  }
}

void Host::gettimeofday(timeval* tv) {
  std::unique_lock lock(mu_);
  advance_to(clock_.now() + options_.gettimeofday_step, &lock);
  const TimeNs now = clock_.now();
  if (tv != nullptr) {
    tv->tv_sec = static_cast<time_t>(now / kNsPerSec);
    tv->tv_usec = static_cast<suseconds_t>((now % kNsPerSec) / kNsPerUs);
  }
}

void Host::usleep(std::uint64_t usec) {
  std::unique_lock lock(mu_);
  advance_to(clock_.now() + static_cast<TimeNs>(usec) * kNsPerUs, &lock);
}

int Host::netdev_send(const void* buf, std::size_t count) {
  if (buf == nullptr || count == 0 || count > 65535) {
    return -EINVAL;
  }
  std::unique_lock lock(mu_);
  const auto* p = static_cast<const std::byte*>(buf);
  link_.inbound.emplace_back(p, p + count);
  pump();
  let_waiters_run(lock);
  return 0;
}

int Host::netdev_receive(void* buf, std::size_t* count, long long* time_usecs) {
  if (buf == nullptr || count == nullptr || time_usecs == nullptr) {
    return -EINVAL;
  }
  std::unique_lock lock(mu_);
  const TimeNs start = clock_.now();
  for (;;) {
    if (!link_.outbound.empty()) {
      PacketdrillLink::Sent sent = std::move(link_.outbound.front());
      link_.outbound.pop_front();
      const std::size_t n = std::min(*count, sent.bytes.size());
      std::memcpy(buf, sent.bytes.data(), n);
      *count = n;
      *time_usecs = static_cast<long long>(sent.at / kNsPerUs);
      return 0;
    }
    // packetdrill waits for the packet it expects without a timeout in this mode: jump to
    // the stack's next deadline (a retransmission, a delayed ACK, a probe) and look again.
    const TimeNs next = next_stop();
    if (next == kNever || next - start > options_.max_wait) {
      std::fprintf(stderr,
                   "xtcp-packetdrill: no packet left the stack, and no timer of it would send "
                   "one within max_wait (%lld s of virtual time)\n",
                   static_cast<long long>(options_.max_wait / kNsPerSec));
      *count = 0;
      *time_usecs = static_cast<long long>(clock_.now() / kNsPerUs);
      return 0;
    }
    // A deadline already due that fired nothing: step on rather than spin.
    advance_to(next > clock_.now() ? next : clock_.now() + ms(1), &lock);
  }
}

bool Host::wait_until(std::unique_lock<std::mutex>& lock, FunctionRef<bool()> ready,
                      TimeNs deadline) {
  const TimeNs start = clock_.now();
  while (!ready()) {
    if (clock_.now() >= deadline) {
      looked_.notify_all();
      return false;
    }
    if (on_main_thread()) {
      // Nobody else moves time or injects packets: only the stack's timers can help.
      const TimeNs next = std::min(next_stop(), deadline);
      if (next == kNever || next - start > options_.max_wait) {
        std::fprintf(stderr,
                     "xtcp-packetdrill: a call would block on packetdrill's main thread and no "
                     "timer of the stack ends it within max_wait: it fails with EAGAIN (a "
                     "script writes a blocking call as 'T1...T2 call(...)')\n");
        return false;
      }
      advance_to(next > clock_.now() ? next : std::min(deadline, clock_.now() + ms(1)), &lock);
    } else {
      const auto self = std::this_thread::get_id();
      sleepers_[self] = Sleeper{generation_, deadline};
      looked_.notify_all();
      changed_.wait(lock);
      sleepers_.erase(self);
    }
  }
  looked_.notify_all();
  return true;
}

void Host::handle_events() {
  TcpLayer& tcp = stack_->tcp();
  while (tcp.has_events()) {
    tcp.poll_events([&](const TcpEvent& e) {
      if (e.type == TcpEventType::kAcceptable) {
        for (auto& [fd, s] : sockets_) {
          if (s.listening && s.port == e.port) {
            fill_pending(s);
          }
        }
        return;
      }
      auto it = conns_.find(e.conn);
      if (it == conns_.end()) {
        return;
      }
      ConnState& c = it->second;
      if (c.fd >= 0) {
        if (Socket* s = find(c.fd)) {
          ++s->wakeups;  // what an edge-triggered epoll reports
        }
      }
      switch (e.type) {
        case TcpEventType::kConnected:
          c.connected = true;
          break;
        case TcpEventType::kPeerClosed:
          c.peer_fin = true;
          break;
        case TcpEventType::kClosed:
          c.done = true;
          c.error = e.error;
          if (e.error != 0 && c.fd >= 0) {
            if (Socket* s = find(c.fd)) {
              s->so_error = e.error;
            }
          }
          break;
        default:
          break;  // readable/writable: read from the stores when asked
      }
    });
  }
}

void Host::fill_pending(Socket& s) {
  // Like Linux's accept queue: at most backlog + 1 connections wait; the rest stay in the
  // engine's own queue until accept() makes room.
  TcpLayer& tcp = stack_->tcp();
  while (s.pending.size() < static_cast<std::size_t>(s.backlog) + 1) {
    const std::int64_t c = tcp.accept(s.port);
    if (c < 0) {
      break;
    }
    const auto conn = static_cast<ConnId>(c);
    ConnState st;
    st.connected = true;
    conns_[conn] = st;
    if (s.nodelay) {
      tcp.set_nodelay(conn, true);
    }
    if (s.keepalive) {
      tcp.set_keepalive(conn, true);
    }
    s.pending.push_back(conn);
    ++s.wakeups;
  }
}

}  // namespace xtcp::packetdrill
