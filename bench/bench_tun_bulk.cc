// Single-connection bulk transfer through a TUN device: xtcp against the kernel's own TCP,
// side by side in one run. Needs root; everything happens inside network namespaces this
// program creates (198.18.0.0/15) and deletes on every way out: normal end, failure, and
// SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT, SIGUSR1, SIGUSR2 or SIGALRM (their handlers
// only set a flag; the run stops, the namespaces are deleted, and the exit status is 128 +
// the signal's number). Only SIGKILL leaves them; the next run removes those of dead runs.
//
//   (A) xtcp:   kernel client [ns X] -> TUN xtb0 -> this process: xtcp stack (discard :9,
//               source :19 on the engine API, one thread)
//   (B) kernel: kernel client [ns A] -> TUN xta0 -> this process: forwarder thread copying
//               packets between the two TUN fds -> TUN xtb1 -> kernel server [ns B] (:9, :19)
//
// Both paths put one user-space thread of this process between the client and the TCP that
// terminates the connection; in (A) that thread IS the terminating TCP, in (B) it only copies
// and the kernel terminates behind a second TUN device. Upload = client sends N bytes to the
// discard service (which answers the byte count at EOF); download = client asks the source
// service for N bytes and reads to EOF. Reported: MB/s (10^6 bytes/s), CPU per MB of the whole
// process (getrusage) and of each thread (/proc/self/task), retransmissions on both ends.
//
//   bench_tun_bulk [--size SIZE] [--repeat N] [--xtcp-buf SIZE] [--only xtcp|kernel]
//                  [--no-warmup] [--stats] [--txqueuelen N]
//   --size: a plain number is MiB, --xtcp-buf: a plain number is KiB (their units before
//   sizes took suffixes). --txqueuelen N sets the queue of every TUN device (kernel default
//   500); drops there show up as retransmissions. --help lists every flag.
#include <arpa/inet.h>
#include <endian.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "stack/buffer/stream_buffers.h"
#include "stack/netif/tun_link.h"
#include "stack/stack.h"
#include "stack/wire/ipv4.h"
#include "tests/support/netns.h"
#include "tools/cli/cli.h"

namespace xtcp::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint16_t kDiscardPort = 9;
constexpr std::uint16_t kSourcePort = 19;
// (A): kernel 198.18.0.1 <-> xtcp 198.18.0.2. (B): ns A 198.18.1.1 <-> ns B 198.18.1.2, both
// on-link through their own TUN, so the forwarder copies packets unchanged.
constexpr const char* kXtcpKernelIp = "198.18.0.1";
constexpr const char* kXtcpStackIp = "198.18.0.2";
constexpr const char* kClientIpB = "198.18.1.1";
constexpr const char* kServerIpB = "198.18.1.2";

namespace cli = xtcp::cli;

// A stop signal came (SIGINT, SIGTERM, SIGHUP, SIGPIPE): every loop ends, the namespaces go.
bool interrupted() { return cli::stop_requested(); }

std::uint32_t ip_of(const char* s) {
  std::uint32_t v = 0;
  wire::parse_ipv4(s, &v);
  return v;
}

struct Cpu {
  double user = 0;  // seconds
  double sys = 0;
  double total() const { return user + sys; }
  Cpu operator-(const Cpu& o) const { return Cpu{user - o.user, sys - o.sys}; }
};

Cpu process_cpu() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return Cpu{static_cast<double>(ru.ru_utime.tv_sec) + static_cast<double>(ru.ru_utime.tv_usec) * 1e-6,
             static_cast<double>(ru.ru_stime.tv_sec) + static_cast<double>(ru.ru_stime.tv_usec) * 1e-6};
}

Cpu this_thread_cpu() {
  rusage ru{};
  ::getrusage(RUSAGE_THREAD, &ru);
  return Cpu{static_cast<double>(ru.ru_utime.tv_sec) + static_cast<double>(ru.ru_utime.tv_usec) * 1e-6,
             static_cast<double>(ru.ru_stime.tv_sec) + static_cast<double>(ru.ru_stime.tv_usec) * 1e-6};
}

// Precise CPU time of a long-running thread, read by another: the owner calls service() in
// its loop (one atomic load when nobody asks), read() asks and waits up to a second.
class CpuProbe {
 public:
  void service() {
    const int r = request_.load(std::memory_order_acquire);
    if (r != answered_.load(std::memory_order_relaxed)) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        value_ = this_thread_cpu();
      }
      answered_.store(r, std::memory_order_release);
    }
  }
  Cpu read() {
    const int r = request_.fetch_add(1) + 1;
    const auto deadline = Clock::now() + std::chrono::seconds(1);
    while (answered_.load(std::memory_order_acquire) != r && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    std::lock_guard<std::mutex> lock(mu_);
    return value_;
  }

 private:
  std::atomic<int> request_{0};
  std::atomic<int> answered_{0};
  std::mutex mu_;
  Cpu value_;
};

// Packets the kernel dropped on their way out through a TUN device (its queue towards the
// reading process was full): tx_dropped of /proc/net/dev, read inside the device's namespace.
std::uint64_t tun_queue_drops(const NetNs& ns, const std::string& dev) {
  std::uint64_t drops = 0;
  ns.run_in_thread([&] {
    std::FILE* f = std::fopen("/proc/thread-self/net/dev", "r");
    if (f == nullptr) {
      return;
    }
    char line[512];
    const std::string prefix = dev + ":";
    while (std::fgets(line, sizeof line, f) != nullptr) {
      const char* p = line;
      while (*p == ' ') {
        ++p;
      }
      if (std::strncmp(p, prefix.c_str(), prefix.size()) != 0) {
        continue;
      }
      p += prefix.size();
      unsigned long long v[16] = {};
      if (std::sscanf(p, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
                      &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10],
                      &v[11]) == 12) {
        drops = v[11];  // rx: bytes packets errs drop fifo frame compressed multicast; tx: ...
      }
    }
    std::fclose(f);
  });
  return drops;
}

bool set_txqueuelen(const NetNs& ns, const std::string& dev, int qlen, std::string* error) {
  const CommandResult r =
      ns.run("ip link set dev " + dev + " txqueuelen " + std::to_string(qlen), std::chrono::seconds(10));
  if (r.exit_code != 0) {
    *error = "ip link set txqueuelen: " + r.output;
    return false;
  }
  return true;
}

// ---- (A) the xtcp server ------------------------------------------------------------------

// Discard (:9) and source (:19) on the engine API, run with the stack on one thread.
class XtcpServices {
 public:
  XtcpServices(TcpLayer& tcp, StreamBuffers& buffers)
      : tcp_(tcp), buffers_(buffers), sink_(256 * 1024), pattern_(256 * 1024) {
    for (std::size_t i = 0; i < pattern_.size(); ++i) {
      pattern_[i] = static_cast<std::byte>(i * 131 + 7);
    }
    listen_rc_ = tcp_.listen(kDiscardPort) < 0 || tcp_.listen(kSourcePort) < 0 ? -1 : 0;
  }
  int listen_result() const { return listen_rc_; }

  void on_event(const TcpEvent& e) {
    if (e.type == TcpEventType::kAcceptable) {
      for (std::int64_t c; (c = tcp_.accept(e.port)) >= 0;) {
        conns_[static_cast<ConnId>(c)] = Conn{e.port};
      }
      return;
    }
    auto it = conns_.find(e.conn);
    if (it == conns_.end()) {
      return;
    }
    Conn& c = it->second;
    switch (e.type) {
      case TcpEventType::kReadable:
        read_all(e.conn, c);
        if (c.port == kSourcePort) {
          pump(e.conn, c);
        }
        break;
      case TcpEventType::kWritable:
        pump(e.conn, c);
        break;
      case TcpEventType::kPeerClosed:
        read_all(e.conn, c);
        if (c.port == kDiscardPort) {
          // Tell the client how much arrived, then close after it.
          std::uint64_t be = htobe64(c.count);
          tcp_.send(e.conn, wire::as_bytes(&be, sizeof be));
          tcp_.close(e.conn);
          conns_.erase(it);
        }
        break;
      case TcpEventType::kClosed:
        tcp_.close(e.conn);
        conns_.erase(it);
        break;
      default:
        break;
    }
  }

 private:
  struct Conn {
    std::uint16_t port = 0;
    std::uint64_t count = 0;      // discard: bytes received
    std::uint8_t request[8] = {};  // source: big-endian byte count asked for
    std::size_t request_len = 0;
    std::uint64_t remaining = 0;
    std::size_t offset = 0;  // position in the pattern
  };

  void read_all(ConnId conn, Conn& c) {
    for (;;) {
      const std::size_t n = buffers_.read(conn, wire::MutableByteSpan(sink_.data(), sink_.size()));
      if (n == 0) {
        break;
      }
      if (c.port == kDiscardPort) {
        c.count += n;
      } else {
        for (std::size_t i = 0; i < n && c.request_len < sizeof c.request; ++i) {
          c.request[c.request_len++] = static_cast<std::uint8_t>(sink_[i]);
          if (c.request_len == sizeof c.request) {
            std::uint64_t be = 0;
            std::memcpy(&be, c.request, sizeof be);
            c.remaining = be64toh(be);
          }
        }
      }
    }
    tcp_.consumed(conn);
  }

  void pump(ConnId conn, Conn& c) {
    if (c.request_len < sizeof c.request) {
      return;
    }
    while (c.remaining > 0) {
      const std::size_t want =
          static_cast<std::size_t>(std::min<std::uint64_t>(c.remaining, pattern_.size() - c.offset));
      const std::int64_t n = tcp_.send(conn, wire::ByteSpan(pattern_.data() + c.offset, want));
      if (n <= 0) {
        return;  // TxStore full: the writable event brings us back
      }
      c.remaining -= static_cast<std::uint64_t>(n);
      c.offset = (c.offset + static_cast<std::size_t>(n)) % pattern_.size();
    }
    tcp_.close(conn);  // FIN after the last byte
    conns_.erase(conn);
  }

  TcpLayer& tcp_;
  StreamBuffers& buffers_;
  std::vector<std::byte> sink_;
  std::vector<std::byte> pattern_;
  std::unordered_map<ConnId, Conn> conns_;
  int listen_rc_ = 0;
};

class XtcpPath {
 public:
  bool start(std::size_t buffer_bytes, bool print_stats_at_end, std::string* error) {
    print_stats_ = print_stats_at_end;
    ns_ = NetNs::create(error);
    if (!ns_) {
      return false;
    }
    thread_ = std::thread([this, buffer_bytes] { run(buffer_bytes); });
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (state_.load() == 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (state_.load() != 1) {
      *error = "xtcp path did not start: " + error_;
      return false;
    }
    return true;
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
    ns_.reset();  // the TUN fd was closed by the thread
  }
  ~XtcpPath() { stop(); }

  const NetNs& ns() const { return *ns_; }
  Cpu cpu() { return probe_.read(); }
  std::uint64_t retransmits() const { return retransmits_.load(); }
  std::uint64_t tun_drops() const { return tun_drops_.load(); }
  std::uint64_t queue_drops() const { return tun_queue_drops(*ns_, "xtb0"); }
  bool set_qlen(int qlen, std::string* error) const { return set_txqueuelen(*ns_, "xtb0", qlen, error); }

 private:
  void run(std::size_t buffer_bytes) {
    if (ns_->enter_on_this_thread(&error_) < 0) {
      state_ = -1;
      return;
    }
    TunOptions opts;
    opts.name = "xtb0";
    auto tun = TunLink::open(opts, &error_);
    if (!tun || configure_kernel_side("xtb0", ip_of(kXtcpKernelIp), 24, &error_) < 0) {
      state_ = -1;
      return;
    }
    SteadyClock clock;
    StreamBuffers buffers(buffer_bytes, buffer_bytes);
    StackConfig config;
    config.ip.local_addr = ip_of(kXtcpStackIp);
    Stack stack(config, *tun, clock, buffers.rx(), buffers.tx());
    XtcpServices services(stack.tcp(), buffers);
    if (services.listen_result() < 0) {
      error_ = "listen failed";
      state_ = -1;
      return;
    }
    state_ = 1;
    TcpLayer& tcp = stack.tcp();
    while (!stop_.load(std::memory_order_relaxed)) {
      const int n = stack.poll();
      while (tcp.has_events()) {
        tcp.poll_events([&](const TcpEvent& e) { services.on_event(e); });
      }
      probe_.service();
      retransmits_.store(tcp.stats().retransmits, std::memory_order_relaxed);
      tun_drops_.store(tun->counters().send_drops + tun->counters().send_errors,
                       std::memory_order_relaxed);
      if (n == 0) {
        stack.wait(ms(20));
      }
    }
    if (print_stats_) {
      std::printf("\n## xtcp stack counters (whole run, warm-up included)\n\n```\n");
      print_stats(stack, stdout);
      std::printf("```\n");
    }
  }

  std::unique_ptr<NetNs> ns_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> state_{0};
  CpuProbe probe_;
  std::atomic<std::uint64_t> retransmits_{0};
  std::atomic<std::uint64_t> tun_drops_{0};
  std::string error_;
  bool print_stats_ = false;
};

// ---- (B) the kernel path ------------------------------------------------------------------

int make_listener(const char* ip, std::uint16_t port, std::string* error) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, ip, &sa.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 || ::listen(fd, 16) < 0) {
    *error = std::string("bind/listen: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

// Bounded blocking I/O: every call waits at most 200 ms, so stop flags are seen.
void set_io_timeouts(int fd) {
  timeval tv{0, 200 * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

std::uint32_t total_retrans(int fd) {
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0) {
    return 0;
  }
  return ti.tcpi_total_retrans;
}

class KernelPath {
 public:
  bool start(std::string* error) {
    ns_a_ = NetNs::create(error);
    if (!ns_a_) {
      return false;
    }
    ns_b_ = NetNs::create(error);
    if (!ns_b_) {
      return false;
    }
    std::string err;
    auto open_tun = [&](const NetNs& ns, const char* name, const char* ip,
                        std::unique_ptr<TunLink>* out) {
      const int rc = ns.run_in_thread([&] {
        TunOptions opts;
        opts.name = name;
        *out = TunLink::open(opts, &err);
        if (*out && configure_kernel_side(name, ip_of(ip), 24, &err) < 0) {
          out->reset();
        }
      }, &err);
      return rc == 0 && *out != nullptr;
    };
    if (!open_tun(*ns_a_, "xta0", kClientIpB, &tun_a_) ||
        !open_tun(*ns_b_, "xtb1", kServerIpB, &tun_b_)) {
      *error = "kernel path TUN: " + err;
      return false;
    }
    forwarder_ = std::thread([this] { forward(); });
    server_ = std::thread([this] { serve(); });
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (server_state_.load() == 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (server_state_.load() != 1) {
      *error = "kernel server did not start: " + server_error_;
      return false;
    }
    return true;
  }
  void stop() {
    stop_ = true;
    if (forwarder_.joinable()) {
      forwarder_.join();
    }
    if (server_.joinable()) {
      server_.join();
    }
    tun_a_.reset();
    tun_b_.reset();
    ns_a_.reset();
    ns_b_.reset();
  }
  ~KernelPath() { stop(); }

  const NetNs& client_ns() const { return *ns_a_; }
  Cpu forwarder_cpu() { return forwarder_probe_.read(); }
  Cpu server_cpu() { return server_probe_.read(); }
  std::uint64_t server_retrans() const { return server_retrans_.load(); }
  std::uint64_t tun_drops() const { return tun_drops_.load(); }
  std::uint64_t queue_drops() const {
    return tun_queue_drops(*ns_a_, "xta0") + tun_queue_drops(*ns_b_, "xtb1");
  }
  bool set_qlen(int qlen, std::string* error) const {
    return set_txqueuelen(*ns_a_, "xta0", qlen, error) && set_txqueuelen(*ns_b_, "xtb1", qlen, error);
  }

 private:
  // Copies packets both ways: read a batch from one TUN, write each to the other.
  void forward() {
    TunLink& a = *tun_a_;
    TunLink& b = *tun_b_;
    while (!stop_.load(std::memory_order_relaxed)) {
      forwarder_probe_.service();
      const int ab = a.receive_batch(64, [&](std::span<const std::byte> p) { b.send(p); });
      const int ba = b.receive_batch(64, [&](std::span<const std::byte> p) { a.send(p); });
      tun_drops_.store(a.counters().send_drops + a.counters().send_errors +
                           b.counters().send_drops + b.counters().send_errors,
                       std::memory_order_relaxed);
      if (ab <= 0 && ba <= 0) {
        pollfd p[2] = {{a.poll_fd(), POLLIN, 0}, {b.poll_fd(), POLLIN, 0}};
        ::poll(p, 2, 20);
      }
    }
  }

  void serve() {
    if (ns_b_->enter_on_this_thread(&server_error_) < 0) {
      server_state_ = -1;
      return;
    }
    const int discard = make_listener(kServerIpB, kDiscardPort, &server_error_);
    const int source = make_listener(kServerIpB, kSourcePort, &server_error_);
    if (discard < 0 || source < 0) {
      server_state_ = -1;
      return;
    }
    server_state_ = 1;
    std::vector<char> buf(1 << 20);
    for (std::size_t i = 0; i < buf.size(); ++i) {
      buf[i] = static_cast<char>(i * 131 + 7);
    }
    std::vector<char> sink(1 << 20);
    while (!stop_.load()) {
      server_probe_.service();
      pollfd p[2] = {{discard, POLLIN, 0}, {source, POLLIN, 0}};
      if (::poll(p, 2, 100) <= 0) {
        continue;
      }
      const bool is_discard = (p[0].revents & POLLIN) != 0;
      const int fd = ::accept4(is_discard ? discard : source, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        continue;
      }
      set_io_timeouts(fd);
      if (is_discard) {
        std::uint64_t count = 0;
        while (!stop_.load()) {
          server_probe_.service();
          const ssize_t n = ::recv(fd, sink.data(), sink.size(), 0);
          if (n > 0) {
            count += static_cast<std::uint64_t>(n);
          } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            break;
          }
        }
        const std::uint64_t be = htobe64(count);
        ::send(fd, &be, sizeof be, MSG_NOSIGNAL);
      } else {
        std::uint64_t be = 0;
        std::size_t got = 0;
        while (got < sizeof be && !stop_.load()) {
          const ssize_t n = ::recv(fd, reinterpret_cast<char*>(&be) + got, sizeof be - got, 0);
          if (n > 0) {
            got += static_cast<std::size_t>(n);
          } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            break;
          }
        }
        std::uint64_t remaining = got == sizeof be ? be64toh(be) : 0;
        std::size_t offset = 0;
        while (remaining > 0 && !stop_.load()) {
          server_probe_.service();
          const std::size_t want =
              static_cast<std::size_t>(std::min<std::uint64_t>(remaining, buf.size() - offset));
          const ssize_t n = ::send(fd, buf.data() + offset, want, MSG_NOSIGNAL);
          if (n > 0) {
            remaining -= static_cast<std::uint64_t>(n);
            offset = (offset + static_cast<std::size_t>(n)) % buf.size();
          } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            break;
          }
        }
      }
      server_retrans_.fetch_add(total_retrans(fd));
      ::close(fd);
    }
    ::close(discard);
    ::close(source);
  }

  std::unique_ptr<NetNs> ns_a_;
  std::unique_ptr<NetNs> ns_b_;
  std::unique_ptr<TunLink> tun_a_;
  std::unique_ptr<TunLink> tun_b_;
  std::thread forwarder_;
  std::thread server_;
  std::atomic<bool> stop_{false};
  std::atomic<int> server_state_{0};
  std::string server_error_;
  CpuProbe forwarder_probe_;
  CpuProbe server_probe_;
  std::atomic<std::uint64_t> server_retrans_{0};
  std::atomic<std::uint64_t> tun_drops_{0};
};

// ---- the client and one measured transfer -------------------------------------------------

enum class Direction { kUpload, kDownload };
const char* to_string(Direction d) { return d == Direction::kUpload ? "upload" : "download"; }

struct ClientResult {
  bool ok = false;
  std::string error;
  double seconds = 0;
  Cpu cpu;  // the client thread
  std::uint32_t retrans = 0;
};

// Runs on a thread inside the client's namespace. Bounded by `deadline` and the stop flag.
ClientResult run_client(const char* server_ip, Direction dir, std::uint64_t bytes,
                        Clock::time_point deadline) {
  ClientResult r;
  const Cpu cpu0 = this_thread_cpu();
  const auto t0 = Clock::now();
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    r.error = std::string("socket: ") + std::strerror(errno);
    return r;
  }
  set_io_timeouts(fd);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(dir == Direction::kUpload ? kDiscardPort : kSourcePort);
  inet_pton(AF_INET, server_ip, &sa.sin_addr);
  bool connected = false;
  while (!connected && Clock::now() < deadline && !interrupted()) {
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 || errno == EISCONN) {
      connected = true;
    } else if (errno != EINPROGRESS && errno != EALREADY && errno != EINTR && errno != EAGAIN) {
      r.error = std::string("connect: ") + std::strerror(errno);
      ::close(fd);
      return r;
    }
  }
  std::vector<char> buf(1 << 20);
  for (std::size_t i = 0; i < buf.size(); ++i) {
    buf[i] = static_cast<char>(i * 17 + 3);
  }
  std::uint64_t done = 0;
  auto alive = [&] { return Clock::now() < deadline && !interrupted(); };
  if (dir == Direction::kUpload) {
    while (connected && done < bytes && alive()) {
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(bytes - done, buf.size()));
      const ssize_t n = ::send(fd, buf.data(), want, MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<std::uint64_t>(n);
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        r.error = std::string("send: ") + std::strerror(errno);
        break;
      }
    }
    ::shutdown(fd, SHUT_WR);
    std::uint64_t be = 0;
    std::size_t got = 0;
    while (r.error.empty() && got < sizeof be && alive()) {
      const ssize_t n = ::recv(fd, reinterpret_cast<char*>(&be) + got, sizeof be - got, 0);
      if (n > 0) {
        got += static_cast<std::size_t>(n);
      } else if (n == 0) {
        break;
      } else if (errno != EAGAIN && errno != EINTR) {
        r.error = std::string("recv: ") + std::strerror(errno);
      }
    }
    if (r.error.empty() && (got != sizeof be || be64toh(be) != bytes)) {
      r.error = "server counted " + std::to_string(got == sizeof be ? be64toh(be) : 0) + " of " +
                std::to_string(bytes) + " bytes";
    }
  } else {
    const std::uint64_t be = htobe64(bytes);
    if (!connected || ::send(fd, &be, sizeof be, MSG_NOSIGNAL) != sizeof be) {
      r.error = "cannot send the request";
    }
    while (r.error.empty() && alive()) {
      const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n > 0) {
        done += static_cast<std::uint64_t>(n);
      } else if (n == 0) {
        break;
      } else if (errno != EAGAIN && errno != EINTR) {
        r.error = std::string("recv: ") + std::strerror(errno);
      }
    }
    if (r.error.empty() && done != bytes) {
      r.error = "received " + std::to_string(done) + " of " + std::to_string(bytes) + " bytes";
    }
  }
  if (interrupted()) {
    r.error = "interrupted";
  } else if (Clock::now() >= deadline) {
    r.error = "timed out (" + r.error + ")";
  } else if (!connected && r.error.empty()) {
    r.error = "connect failed";
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.retrans = total_retrans(fd);
  ::close(fd);
  r.cpu = this_thread_cpu() - cpu0;
  r.ok = r.error.empty();
  return r;
}

struct Sample {
  double mbps = 0;           // 10^6 bytes per second
  double proc_ms_per_mb = 0;  // whole process CPU
  double mid_user = 0;        // middle thread (xtcp stack / forwarder), ms per MB
  double mid_sys = 0;
  double server_ms = 0;       // kernel server thread (path B only)
  double client_ms = 0;
  std::uint64_t retrans_client = 0;
  std::uint64_t retrans_server = 0;
  std::uint64_t tun_drops = 0;    // user-space writes refused
  std::uint64_t queue_drops = 0;  // kernel -> reader queue overflow, all TUN devices of the path
};

struct Hooks {
  const NetNs* client_ns;
  const char* server_ip;
  std::function<Cpu()> middle_cpu;
  std::function<Cpu()> server_cpu;
  std::function<std::uint64_t()> server_retrans;
  std::function<std::uint64_t()> tun_drops;
  std::function<std::uint64_t()> queue_drops;
};

bool measure(const Hooks& h, Direction dir, std::uint64_t bytes, Sample* out, std::string* error) {
  const double timeout_s = 30.0 + static_cast<double>(bytes) / 5e6;  // >= 5 MB/s or fail
  const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<long>(timeout_s * 1000));
  const Cpu p0 = process_cpu();
  const Cpu m0 = h.middle_cpu();
  const Cpu s0 = h.server_cpu();
  const std::uint64_t sr0 = h.server_retrans();
  const std::uint64_t d0 = h.tun_drops();
  const std::uint64_t q0 = h.queue_drops();
  ClientResult r;
  std::string err;
  if (h.client_ns->run_in_thread([&] { r = run_client(h.server_ip, dir, bytes, deadline); }, &err) < 0) {
    *error = "cannot enter the client namespace: " + err;
    return false;
  }
  if (!r.ok) {
    *error = r.error;
    return false;
  }
  // Let the server side finish its bookkeeping (retransmission counters) for this transfer.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const Cpu p = process_cpu() - p0;
  const Cpu m = h.middle_cpu() - m0;
  const Cpu s = h.server_cpu() - s0;
  const double mb = static_cast<double>(bytes) / 1e6;
  out->mbps = mb / r.seconds;
  out->proc_ms_per_mb = p.total() * 1e3 / mb;
  out->mid_user = m.user * 1e3 / mb;
  out->mid_sys = m.sys * 1e3 / mb;
  out->server_ms = s.total() * 1e3 / mb;
  out->client_ms = r.cpu.total() * 1e3 / mb;
  out->retrans_client = r.retrans;
  out->retrans_server = h.server_retrans() - sr0;
  out->tun_drops = h.tun_drops() - d0;
  out->queue_drops = h.queue_drops() - q0;
  return true;
}

double median(std::vector<double> v) {
  if (v.empty()) {
    return 0;
  }
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct Series {
  std::string path;
  Direction dir;
  std::vector<Sample> samples;
};

template <class F>
double med(const Series& s, F f) {
  std::vector<double> v;
  for (const Sample& x : s.samples) {
    v.push_back(static_cast<double>(f(x)));
  }
  return median(v);
}

void print_table(const std::vector<Series>& all, std::uint64_t bytes, int repeat) {
  std::printf("\n## Bulk transfer over TUN, %s bytes per transfer, median of %d run(s)\n\n",
              cli::format_size(bytes).c_str(), repeat);
  std::printf("| path | direction | MB/s | min-max MB/s | process CPU ms/MB | middle thread user+sys ms/MB | kernel server thread ms/MB | client thread ms/MB | retrans client/server | TUN queue drops |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Series& s : all) {
    if (s.samples.empty()) {
      continue;
    }
    double lo = 1e300;
    double hi = 0;
    for (const Sample& x : s.samples) {
      lo = std::min(lo, x.mbps);
      hi = std::max(hi, x.mbps);
    }
    char server[32] = "(in middle)";
    if (s.path == "kernel") {
      std::snprintf(server, sizeof server, "%.2f", med(s, [](const Sample& x) { return x.server_ms; }));
    }
    std::printf("| %s | %s | %.0f | %.0f-%.0f | %.2f | %.2f+%.2f | %s | %.2f | %.0f/%.0f | %.0f |\n",
                s.path.c_str(), to_string(s.dir), med(s, [](const Sample& x) { return x.mbps; }), lo, hi,
                med(s, [](const Sample& x) { return x.proc_ms_per_mb; }),
                med(s, [](const Sample& x) { return x.mid_user; }),
                med(s, [](const Sample& x) { return x.mid_sys; }),
                server,
                med(s, [](const Sample& x) { return x.client_ms; }),
                med(s, [](const Sample& x) { return x.retrans_client; }),
                med(s, [](const Sample& x) { return x.retrans_server; }),
                med(s, [](const Sample& x) { return x.queue_drops + x.tun_drops; }));
  }
  std::printf("\nmiddle thread = the xtcp stack thread (path xtcp) or the TUN-to-TUN forwarder (path "
              "kernel);\nits sys time includes the kernel TCP receive processing of packets it "
              "writes into a TUN.\n");
}

int run(int argc, char** argv) {
  std::uint64_t bytes = 256ull << 20;
  std::uint64_t repeat = 3;
  std::uint64_t buf_bytes = 2048ull << 10;
  std::string only;
  bool no_warmup = false;
  bool stats = false;
  std::uint64_t qlen = 0;
  cli::Flags flags("bench_tun_bulk", "[OPTION]...",
                   "Bulk transfer over a TUN device, one connection at a time: a kernel client uploads to a "
                   "discard service and downloads from a source service, (A) served by the xtcp stack in "
                   "this process, (B) served by the kernel's own TCP behind a second TUN device, with this "
                   "process copying packets between the two. Reports MB/s, CPU per MB and retransmissions. "
                   "Needs root: it creates its own network namespaces (198.18.0.0/15) and deletes them on "
                   "every way out.");
  flags.size("--size", "bytes per transfer; a plain number is MiB", &bytes, 64 * 1024, 16ull << 30, 1ull << 20);
  flags.number("--repeat", "N", "measured runs of each path and direction (the median is reported)", &repeat, 1, 100);
  flags.size("--xtcp-buf", "the xtcp stack's receive and transmit buffers; a plain number is KiB", &buf_bytes,
             16 * 1024, 64ull << 20, 1024);
  flags.custom("--only", "xtcp|kernel", "measure one path only", "both", [&](const std::string& v) {
    if (v != "xtcp" && v != "kernel") {
      return "'" + v + "' is neither xtcp nor kernel";
    }
    only = v;
    return std::string();
  });
  flags.toggle("--no-warmup", "skip the 16 MiB warm-up transfer of each path and direction", &no_warmup);
  flags.toggle("--stats", "print the xtcp stack's counters at the end", &stats);
  flags.number("--txqueuelen", "N", "the queue length of every TUN device; 0: the kernel's (500)", &qlen, 0, 1000000);
  flags.epilog("Signals: SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT, SIGUSR1, SIGUSR2 and SIGALRM stop the run; "
               "the namespaces are deleted, the results so far printed, and the exit status is 128 + the "
               "signal's number. After a SIGKILL the next run removes the namespaces left behind.\n");
  flags.epilog("Exit status: 0 every transfer completed, 1 a transfer or the set-up failed (or not root), "
               "2 a bad, unknown or missing flag, 128+N stopped by signal N.\n");
  flags.parse(argc, argv);
  const bool warmup = !no_warmup;
  if (::geteuid() != 0) {
    std::fprintf(stderr, "bench_tun_bulk must run as root (it creates network namespaces and TUN devices)\n");
    return cli::kExitFailure;
  }
  if (auto why = netns_unavailable_reason()) {
    std::fprintf(stderr, "bench_tun_bulk cannot run here: %s\n", why->c_str());
    return cli::kExitFailure;
  }
  // Installed before the first namespace exists: from here on every way out deletes them.
  cli::on_stop_signals({SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM});

  const bool want_xtcp = only.empty() || only == "xtcp";
  const bool want_kernel = only.empty() || only == "kernel";
  std::string error;
  XtcpPath xp;
  KernelPath kp;
  if (want_xtcp && !xp.start(buf_bytes, stats, &error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  if (want_kernel && !kp.start(&error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  Hooks hx{want_xtcp ? &xp.ns() : nullptr, kXtcpStackIp, [&] { return xp.cpu(); },
           [] { return Cpu{}; }, [] { return std::uint64_t{0}; },
           [&] { return xp.tun_drops(); }, [&] { return xp.queue_drops(); }};
  // The xtcp server's retransmissions are counted as "server" retransmissions.
  hx.server_retrans = [&] { return xp.retransmits(); };
  Hooks hk{want_kernel ? &kp.client_ns() : nullptr, kServerIpB, [&] { return kp.forwarder_cpu(); },
           [&] { return kp.server_cpu(); }, [&] { return kp.server_retrans(); },
           [&] { return kp.tun_drops(); }, [&] { return kp.queue_drops(); }};
  if (qlen > 0 && ((want_xtcp && !xp.set_qlen(static_cast<int>(qlen), &error)) ||
                   (want_kernel && !kp.set_qlen(static_cast<int>(qlen), &error)))) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }

  std::vector<Series> all;
  for (Direction d : {Direction::kUpload, Direction::kDownload}) {
    if (want_xtcp) {
      all.push_back(Series{"xtcp", d, {}});
    }
    if (want_kernel) {
      all.push_back(Series{"kernel", d, {}});
    }
  }
  std::printf("# bench_tun_bulk: %s bytes per transfer, %d run(s), xtcp buffers %s bytes\n",
              cli::format_size(bytes).c_str(), static_cast<int>(repeat), cli::format_size(buf_bytes).c_str());
  auto loadavg = [] {
    char buf[128] = "?";
    if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
      if (std::fgets(buf, sizeof buf, f) == nullptr) {
        buf[0] = '\0';
      }
      std::fclose(f);
    }
    std::string l = buf;
    while (!l.empty() && l.back() == '\n') {
      l.pop_back();
    }
    return l;
  };
  std::printf("load average at start: %s; TUN txqueuelen: %s\n", loadavg().c_str(),
              qlen > 0 ? std::to_string(qlen).c_str() : "kernel default");
  std::fflush(stdout);
  int rc = 0;
  if (warmup) {
    for (Series& s : all) {
      Sample ignored;
      if (!measure(s.path == "xtcp" ? hx : hk, s.dir, std::min<std::uint64_t>(bytes, 16 << 20),
                   &ignored, &error)) {
        std::fprintf(stderr, "warm-up %s %s failed: %s\n", s.path.c_str(), to_string(s.dir),
                     error.c_str());
        rc = 1;
        break;
      }
    }
  }
  for (int r = 0; r < static_cast<int>(repeat) && rc == 0 && !interrupted(); ++r) {
    for (Series& s : all) {
      Sample x;
      if (!measure(s.path == "xtcp" ? hx : hk, s.dir, bytes, &x, &error)) {
        std::fprintf(stderr, "run %d %s %s failed: %s\n", r + 1, s.path.c_str(), to_string(s.dir),
                     error.c_str());
        rc = 1;
        break;
      }
      std::printf("run %d %-6s %-8s %8.1f MB/s  process %.2f ms/MB  middle %.2f+%.2f ms/MB  retrans %llu/%llu\n",
                  r + 1, s.path.c_str(), to_string(s.dir), x.mbps, x.proc_ms_per_mb, x.mid_user,
                  x.mid_sys, static_cast<unsigned long long>(x.retrans_client),
                  static_cast<unsigned long long>(x.retrans_server));
      std::fflush(stdout);
      s.samples.push_back(x);
      if (interrupted()) {
        break;
      }
    }
  }
  if (interrupted()) {
    std::fprintf(stderr, "bench_tun_bulk: stopped by signal %d: deleting the namespaces\n", cli::stop_signal());
    rc = 128 + cli::stop_signal();
  }
  print_table(all, bytes, static_cast<int>(repeat));
  std::printf("load average at end: %s\n", loadavg().c_str());
  xp.stop();
  kp.stop();
  return rc;
}

}  // namespace
}  // namespace xtcp::bench

int main(int argc, char** argv) { return xtcp::bench::run(argc, argv); }
