#include "tools/kernel_clients/burst_clients.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "tools/cli/cli.h"

namespace xtcp::kclients {
namespace {

constexpr std::uint32_t kNoAnswer = UINT32_MAX;
constexpr std::size_t kErrorText = 200;

std::int64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// What one worker tells the parent, in the shared mapping; written before its 'U' or 'D'.
struct WorkerReport {
  std::uint32_t connected;
  std::uint32_t failed;
  std::uint32_t answered;
  std::uint32_t errors;
  std::int64_t first_send_ns;
  std::int64_t last_answer_ns;
  char error[kErrorText];
};

// The shared mapping: the workers' reports, then per connection its answer latency of the
// last burst (microseconds, kNoAnswer) and its retransmissions during that burst.
struct SharedArea {
  WorkerReport* workers = nullptr;
  std::uint32_t* latency_us = nullptr;
  std::uint32_t* retrans = nullptr;
  void* base = nullptr;
  std::size_t bytes = 0;
};

bool map_shared(int workers, std::uint32_t connections, SharedArea* area) {
  area->bytes = sizeof(WorkerReport) * static_cast<std::size_t>(workers) +
                2 * sizeof(std::uint32_t) * static_cast<std::size_t>(connections);
  void* p = ::mmap(nullptr, area->bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return false;
  }
  area->base = p;
  area->workers = static_cast<WorkerReport*>(p);
  area->latency_us = reinterpret_cast<std::uint32_t*>(area->workers + workers);
  area->retrans = area->latency_us + connections;
  return true;
}

// The message of connection index in burst k: "k<k> c<index> " then letters, ending '\n'.
// Each byte is reproducible from (k, index, offset), so an echo is checked without keeping
// what was sent.
char message_byte(int k, std::uint32_t index, std::size_t offset, std::size_t size, const std::string& head) {
  if (offset + 1 == size) {
    return '\n';
  }
  if (offset < head.size()) {
    return head[offset];
  }
  return static_cast<char>('a' + (index + offset + static_cast<std::size_t>(k)) % 26);
}

std::string message_head(int k, std::uint32_t index) {
  char head[32];
  std::snprintf(head, sizeof head, "k%d c%u ", k, index);
  return head;
}

// ---- a worker ------------------------------------------------------------------------------

struct Conn {
  int fd = -1;
  std::uint32_t sent = 0;
  std::uint32_t got = 0;
  std::uint32_t last_total_retrans = 0;
  std::int64_t send_ns = 0;
  bool up = false;  // the handshake completed
  bool failed = false;
  bool answered = false;
};

class Worker {
 public:
  Worker(const Options& o, int id, std::uint32_t first, std::uint32_t count, SharedArea area)
      : o_(o), id_(id), first_(first), count_(count), area_(area), conns_(count) {}

  int run(int cmd_fd, int result_fd) {
    report().first_send_ns = 0;
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) {
      fail_text("epoll_create1: " + std::string(std::strerror(errno)));
      return 1;
    }
    connect_all();
    if (!tell(result_fd, 'U')) {
      return 1;
    }
    for (;;) {
      char cmd = 0;
      const ssize_t n = ::read(cmd_fd, &cmd, 1);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n != 1 || cmd == 'Q') {
        return 0;
      }
      if (cmd == 'B') {
        ++burst_;
        run_burst();
        if (!tell(result_fd, 'D')) {
          return 1;
        }
      }
    }
  }

 private:
  WorkerReport& report() { return area_.workers[id_]; }

  void fail_text(const std::string& what) {
    if (report().error[0] == '\0') {
      std::snprintf(report().error, kErrorText, "worker %d: %s", id_, what.c_str());
    }
  }

  static bool tell(int fd, char c) { return ::write(fd, &c, 1) == 1; }

  sockaddr_in source_of(std::uint32_t index) const {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(o_.src_base + index / kPortsPerAddress);
    a.sin_port = htons(static_cast<std::uint16_t>(1024 + index % kPortsPerAddress));
    return a;
  }

  // Opens connection i (non-blocking connect); false when the socket could not be made.
  bool open_one(std::uint32_t i) {
    Conn& c = conns_[i];
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) {
      fail_text("socket: " + std::string(std::strerror(errno)));
      return false;
    }
    const int one = 1;
    ::setsockopt(c.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const sockaddr_in src = source_of(first_ + i);
    if (::bind(c.fd, reinterpret_cast<const sockaddr*>(&src), sizeof src) != 0) {
      char text[INET_ADDRSTRLEN] = {};
      ::inet_ntop(AF_INET, &src.sin_addr, text, sizeof text);
      fail_text(std::string("bind ") + text + ":" + std::to_string(ntohs(src.sin_port)) + ": " +
                std::strerror(errno) +
                (errno == EADDRNOTAVAIL ? " (the --src range must be local: ip route add local RANGE dev lo)" : ""));
      return false;
    }
    if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&o_.target), sizeof o_.target) != 0 &&
        errno != EINPROGRESS) {
      fail_text("connect: " + std::string(std::strerror(errno)));
      return false;
    }
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u32 = i;
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev);
    return true;
  }

  void drop(std::uint32_t i) {
    Conn& c = conns_[i];
    if (c.fd >= 0) {
      ::close(c.fd);
      c.fd = -1;
    }
    c.failed = true;
  }

  // Opens every connection at this worker's share of --ramp and waits for each to complete.
  void connect_all() {
    const double rate = static_cast<double>(o_.ramp) / static_cast<double>(std::max(1, o_.processes));
    const std::int64_t start = now_ns();
    const std::int64_t deadline = start + o_.timeout.count() * 1000;
    std::uint32_t opened = 0, resolved = 0, up = 0;
    std::vector<epoll_event> events(1024);
    while (resolved < count_ && now_ns() < deadline && !cli::stop_requested()) {
      const double elapsed = static_cast<double>(now_ns() - start) / 1e9;
      const auto allowed = std::min<std::uint64_t>(count_, static_cast<std::uint64_t>(rate * elapsed) + 1);
      while (opened < allowed) {
        if (!open_one(opened)) {
          drop(opened);
          ++resolved;
        }
        ++opened;
      }
      const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 1);
      for (int e = 0; e < n; ++e) {
        const std::uint32_t i = events[e].data.u32;
        Conn& c = conns_[i];
        if (c.up || c.fd < 0) {
          continue;  // a set-up connection's later event: seen at the next burst
        }
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        ++resolved;
        if (err != 0 || (events[e].events & (EPOLLERR | EPOLLHUP)) != 0) {
          fail_text("connect: " + std::string(std::strerror(err != 0 ? err : ECONNRESET)));
          drop(i);
          continue;
        }
        ++up;
        c.up = true;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u32 = i;
        ::epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
        c.last_total_retrans = total_retrans(c.fd);
      }
    }
    for (std::uint32_t i = 0; i < count_; ++i) {
      if (!conns_[i].up) {
        drop(i);  // never opened, failed, or still connecting at the deadline
      }
    }
    report().connected = up;
    report().failed = count_ - up;
    if (up < count_ && report().error[0] == '\0') {
      fail_text(std::to_string(count_ - up) + " connections not up within --timeout");
    }
  }

  bool is_up(std::uint32_t i) const { return conns_[i].up && !conns_[i].failed && conns_[i].fd >= 0; }

  static std::uint32_t total_retrans(int fd) {
    tcp_info info{};
    socklen_t len = sizeof info;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) {
      return 0;
    }
    return info.tcpi_total_retrans;
  }

  // Sends what is left of connection i's message; false when the connection failed.
  bool push(std::uint32_t i, const std::string& head) {
    Conn& c = conns_[i];
    char buf[4096];
    while (c.sent < o_.message_size) {
      const std::size_t piece = std::min<std::size_t>(sizeof buf, o_.message_size - c.sent);
      for (std::size_t k = 0; k < piece; ++k) {
        buf[k] = message_byte(burst_, first_ + i, c.sent + k, o_.message_size, head);
      }
      const ssize_t n = ::send(c.fd, buf, piece, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          epoll_event ev{};
          ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
          ev.data.u32 = i;
          ::epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
          return true;
        }
        fail_text("send: " + std::string(std::strerror(errno)));
        return false;
      }
      c.sent += static_cast<std::uint32_t>(n);
    }
    return true;
  }

  // Reads connection i's echo; false when it failed (closed, reset, wrong bytes).
  bool pull(std::uint32_t i) {
    Conn& c = conns_[i];
    char buf[4096];
    const std::string head = message_head(burst_, first_ + i);
    for (;;) {
      const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          return true;
        }
        fail_text("recv: " + std::string(std::strerror(errno)));
        return false;
      }
      if (n == 0) {
        fail_text(std::string("the server closed connection ") + std::to_string(first_ + i));
        return false;
      }
      for (ssize_t k = 0; k < n; ++k) {
        if (c.got >= o_.message_size ||
            buf[k] != message_byte(burst_, first_ + i, c.got, o_.message_size, head)) {
          fail_text(std::string("connection ") + std::to_string(first_ + i) + ": wrong echo byte at offset " +
                    std::to_string(c.got));
          return false;
        }
        ++c.got;
      }
      if (c.got == o_.message_size) {
        c.answered = true;
        return true;
      }
    }
  }

  void run_burst() {
    WorkerReport& r = report();
    r.answered = 0;
    r.errors = 0;
    r.last_answer_ns = 0;
    std::uint32_t pending = 0;
    r.first_send_ns = now_ns();
    for (std::uint32_t i = 0; i < count_; ++i) {
      Conn& c = conns_[i];
      area_.latency_us[first_ + i] = kNoAnswer;
      area_.retrans[first_ + i] = 0;
      c.sent = c.got = 0;
      c.answered = false;
      if (!is_up(i)) {
        continue;
      }
      c.send_ns = now_ns();
      if (push(i, message_head(burst_, first_ + i))) {
        ++pending;
      } else {
        drop(i);
        ++r.errors;
      }
    }
    const std::int64_t deadline = now_ns() + o_.timeout.count() * 1000;
    std::vector<epoll_event> events(1024);
    while (pending > 0 && now_ns() < deadline && !cli::stop_requested()) {
      const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 100);
      const std::int64_t t = now_ns();
      for (int e = 0; e < n; ++e) {
        const std::uint32_t i = events[e].data.u32;
        Conn& c = conns_[i];
        if (c.fd < 0 || c.answered) {
          continue;
        }
        bool ok = true;
        if ((events[e].events & EPOLLOUT) != 0 && c.sent < o_.message_size) {
          ok = push(i, message_head(burst_, first_ + i));
          if (ok && c.sent == o_.message_size) {
            epoll_event ev{};
            ev.events = EPOLLIN | EPOLLRDHUP;
            ev.data.u32 = i;
            ::epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
          }
        }
        if (ok && (events[e].events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) != 0) {
          ok = pull(i);
        }
        if (!ok) {
          drop(i);
          ++r.errors;
          --pending;
        } else if (c.answered) {
          area_.latency_us[first_ + i] = static_cast<std::uint32_t>(std::min<std::int64_t>((t - c.send_ns) / 1000, kNoAnswer - 1));
          r.last_answer_ns = t;
          ++r.answered;
          --pending;
        }
      }
    }
    if (pending > 0) {
      fail_text(std::to_string(pending) + " echoes of burst " + std::to_string(burst_) +
                " not back within --timeout");
    }
    for (std::uint32_t i = 0; i < count_; ++i) {
      Conn& c = conns_[i];
      if (c.fd >= 0) {
        const std::uint32_t total = total_retrans(c.fd);
        area_.retrans[first_ + i] = total - c.last_total_retrans;
        c.last_total_retrans = total;
      }
    }
  }

  const Options& o_;
  int id_;
  std::uint32_t first_;
  std::uint32_t count_;
  SharedArea area_;
  std::vector<Conn> conns_;
  int epoll_ = -1;
  int burst_ = 0;
};

// ---- the parent ----------------------------------------------------------------------------

// A counter of /proc/net/snmp or /proc/net/netstat: the line pair that starts with prefix
// ("Tcp:", "TcpExt:"), the column named name. 0 when absent.
std::uint64_t proc_counter(const char* path, const std::string& prefix, const std::string& name) {
  std::ifstream in(path);
  std::string names, values;
  while (std::getline(in, names) && std::getline(in, values)) {
    if (names.rfind(prefix, 0) != 0) {
      continue;
    }
    std::istringstream ns(names), vs(values);
    std::string n, v;
    while (ns >> n && vs >> v) {
      if (n == name) {
        return std::strtoull(v.c_str(), nullptr, 10);
      }
    }
  }
  return 0;
}

std::int64_t tun_drops(const std::string& dev) {
  if (dev.empty()) {
    return -1;
  }
  std::ifstream in("/sys/class/net/" + dev + "/statistics/tx_dropped");
  std::int64_t v = -1;
  in >> v;
  return v;
}

struct Counters {
  std::uint64_t retrans_segs = 0;
  std::uint64_t timeouts = 0;
  std::int64_t drops = -1;
};

Counters read_counters(const Options& o) {
  return {proc_counter("/proc/net/snmp", "Tcp:", "RetransSegs"),
          proc_counter("/proc/net/netstat", "TcpExt:", "TCPTimeouts"), tun_drops(o.tun_dev)};
}

// Waits for one byte from every worker's result pipe; false on timeout, a dead worker or a
// stop signal.
bool gather(const std::vector<int>& fds, char expect, std::int64_t timeout_ns) {
  std::vector<bool> seen(fds.size(), false);
  std::size_t left = fds.size();
  const std::int64_t deadline = now_ns() + timeout_ns;
  while (left > 0) {
    if (cli::stop_requested() || now_ns() >= deadline) {
      return false;
    }
    std::vector<pollfd> p;
    std::vector<std::size_t> who;
    for (std::size_t w = 0; w < fds.size(); ++w) {
      if (!seen[w]) {
        p.push_back({fds[w], POLLIN, 0});
        who.push_back(w);
      }
    }
    const int n = ::poll(p.data(), p.size(), 200);
    if (n <= 0) {
      continue;
    }
    for (std::size_t k = 0; k < p.size(); ++k) {
      if (p[k].revents == 0) {
        continue;
      }
      char c = 0;
      if (::read(p[k].fd, &c, 1) != 1 || c != expect) {
        return false;  // the worker died (EOF) or is out of step
      }
      seen[who[k]] = true;
      --left;
    }
  }
  return true;
}

double percentile_ms(std::vector<std::uint32_t>& v, double q) {
  if (v.empty()) {
    return 0;
  }
  const std::size_t k = std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k] / 1000.0;
}

}  // namespace

bool RunResult::ok() const {
  if (connect_failures > 0 || connected == 0) {
    return false;
  }
  for (const BurstResult& b : bursts) {
    if (b.errors > 0 || b.answered != connected) {
      return false;
    }
  }
  return !bursts.empty();
}

bool run(const Options& o_in, RunResult* result, std::string* error) {
  Options o = o_in;
  if (o.processes == 0) {
    o.processes = static_cast<int>((o.connections + kMaxPerProcess - 1) / kMaxPerProcess);
  }
  SharedArea area;
  if (!map_shared(o.processes, o.connections, &area)) {
    *error = "cannot map the shared results: " + std::string(std::strerror(errno));
    return false;
  }
  std::vector<pid_t> pids;
  std::vector<int> cmd_fds, result_fds;
  const std::uint32_t per = (o.connections + static_cast<std::uint32_t>(o.processes) - 1) /
                            static_cast<std::uint32_t>(o.processes);
  const std::int64_t t0 = now_ns();
  for (int w = 0; w < o.processes; ++w) {
    const std::uint32_t first = per * static_cast<std::uint32_t>(w);
    const std::uint32_t count = first >= o.connections ? 0 : std::min(per, o.connections - first);
    int cmd[2], res[2];
    if (::pipe2(cmd, O_CLOEXEC) != 0 || ::pipe2(res, O_CLOEXEC) != 0) {
      *error = "pipe: " + std::string(std::strerror(errno));
      return false;
    }
    const pid_t pid = ::fork();
    if (pid < 0) {
      *error = "fork: " + std::string(std::strerror(errno));
      return false;
    }
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::close(cmd[1]);
      ::close(res[0]);
      for (const int fd : cmd_fds) {
        ::close(fd);
      }
      for (const int fd : result_fds) {
        ::close(fd);
      }
      Worker worker(o, w, first, count, area);
      ::_exit(worker.run(cmd[0], res[1]));
    }
    ::close(cmd[0]);
    ::close(res[1]);
    pids.push_back(pid);
    cmd_fds.push_back(cmd[1]);
    result_fds.push_back(res[0]);
  }
  auto stop_workers = [&] {
    for (const int fd : cmd_fds) {
      const char q = 'Q';
      (void)!::write(fd, &q, 1);
      ::close(fd);
    }
    for (const pid_t pid : pids) {
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
    for (const int fd : result_fds) {
      ::close(fd);
    }
  };
  auto first_error = [&] {
    for (int w = 0; w < o.processes; ++w) {
      if (area.workers[w].error[0] != '\0') {
        return std::string(area.workers[w].error);
      }
    }
    return std::string();
  };
  const std::int64_t margin = 10'000'000'000;
  const bool started = gather(result_fds, 'U', o.timeout.count() * 1000 + margin);
  for (int w = 0; w < o.processes; ++w) {
    result->connected += area.workers[w].connected;
    result->connect_failures += area.workers[w].failed;
  }
  result->setup_seconds = static_cast<double>(now_ns() - t0) / 1e9;
  std::printf("%s: %u of %u connections up in %.2f s (%d processes)\n", kProgram, result->connected,
              o.connections, result->setup_seconds, o.processes);
  std::fflush(stdout);
  if (!started) {
    result->first_error = first_error();
    if (result->first_error.empty()) {
      result->first_error = cli::stop_requested() ? "stopped by a signal" : "a worker died during set-up";
    }
    stop_workers();
    return true;
  }
  for (int k = 1; k <= o.bursts && !cli::stop_requested(); ++k) {
    // Let the previous burst's ACKs and delayed ACKs settle before measuring the next.
    const std::int64_t wake = now_ns() + o.interval.count() * 1000;
    while (now_ns() < wake && !cli::stop_requested()) {
      ::usleep(20'000);
    }
    const Counters before = read_counters(o);
    for (const int fd : cmd_fds) {
      const char b = 'B';
      (void)!::write(fd, &b, 1);
    }
    const bool done = gather(result_fds, 'D', o.timeout.count() * 1000 + margin);
    const Counters after = read_counters(o);
    BurstResult b;
    b.index = k;
    std::int64_t first = INT64_MAX, last = 0;
    for (int w = 0; w < o.processes; ++w) {
      const WorkerReport& r = area.workers[w];
      b.answered += r.answered;
      b.errors += r.errors;
      if (r.first_send_ns != 0) {
        first = std::min(first, r.first_send_ns);
      }
      last = std::max(last, r.last_answer_ns);
    }
    b.burst_seconds = last > first ? static_cast<double>(last - first) / 1e9 : 0;
    std::vector<std::uint32_t> lat;
    lat.reserve(o.connections);
    for (std::uint32_t i = 0; i < o.connections; ++i) {
      if (area.latency_us[i] != kNoAnswer) {
        lat.push_back(area.latency_us[i]);
      }
      if (area.retrans[i] > 0) {
        ++b.clients_retransmitting;
        b.socket_retransmissions += area.retrans[i];
        if (area.retrans[i] >= 2) {
          ++b.clients_backed_off;
        }
      }
    }
    b.p50_ms = percentile_ms(lat, 0.50);
    b.p99_ms = percentile_ms(lat, 0.99);
    b.max_ms = lat.empty() ? 0 : *std::max_element(lat.begin(), lat.end()) / 1000.0;
    b.retrans_segs = after.retrans_segs - before.retrans_segs;
    b.rto_timeouts = after.timeouts - before.timeouts;
    if (before.drops >= 0 && after.drops >= 0) {
      b.tun_queue_drops = after.drops - before.drops;
    }
    std::printf("%s: burst %d: %u of %u answered in %.3f s (latency p50 %.1f ms, p99 %.1f ms, max %.1f ms), "
                "%u errors, %u clients retransmitted (%u more than once), retransmitted segments %llu, "
                "RTO timeouts %llu, TUN queue drops %lld\n",
                kProgram, k, b.answered, result->connected, b.burst_seconds, b.p50_ms, b.p99_ms, b.max_ms, b.errors,
                b.clients_retransmitting, b.clients_backed_off, static_cast<unsigned long long>(b.retrans_segs),
                static_cast<unsigned long long>(b.rto_timeouts), static_cast<long long>(b.tun_queue_drops));
    std::fflush(stdout);
    result->bursts.push_back(b);
    if (!done) {
      break;
    }
  }
  result->first_error = first_error();
  if (result->first_error.empty() && cli::stop_requested()) {
    result->first_error = "stopped by a signal";
  }
  stop_workers();
  ::munmap(area.base, area.bytes);
  return true;
}

std::string to_json(const Options& o, const RunResult& r) {
  std::ostringstream j;
  j << "{\"program\":\"" << kProgram << "\",\"target\":\"" << o.target_text << "\",\"connections\":"
    << o.connections << ",\"message_size\":" << o.message_size << ",\"connected\":" << r.connected
    << ",\"connect_failures\":" << r.connect_failures << ",\"setup_seconds\":" << r.setup_seconds
    << ",\"ok\":" << (r.ok() ? "true" : "false") << ",\"first_error\":\"";
  for (const char c : r.first_error) {
    if (c == '"' || c == '\\') {
      j << '\\';
    }
    j << (static_cast<unsigned char>(c) < 0x20 ? ' ' : c);
  }
  j << "\",\"bursts\":[";
  for (std::size_t k = 0; k < r.bursts.size(); ++k) {
    const BurstResult& b = r.bursts[k];
    j << (k ? "," : "") << "{\"burst\":" << b.index << ",\"answered\":" << b.answered << ",\"errors\":" << b.errors
      << ",\"seconds\":" << b.burst_seconds << ",\"p50_ms\":" << b.p50_ms << ",\"p99_ms\":" << b.p99_ms
      << ",\"max_ms\":" << b.max_ms << ",\"clients_retransmitting\":" << b.clients_retransmitting
      << ",\"clients_backed_off\":" << b.clients_backed_off
      << ",\"socket_retransmissions\":" << b.socket_retransmissions << ",\"retrans_segs\":" << b.retrans_segs
      << ",\"rto_timeouts\":" << b.rto_timeouts << ",\"tun_queue_drops\":" << b.tun_queue_drops << "}";
  }
  j << "]}\n";
  return j.str();
}

}  // namespace xtcp::kclients
