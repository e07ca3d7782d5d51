// The parent of xtcp-kernel-server's workers: see supervisor.h.
#include "tools/kernel_server/supervisor.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "tools/kernel_server/counters.h"
#include "tools/kernel_server/im_directory.h"
#include "tools/kernel_server/worker.h"

namespace xtcp::kserver {
namespace {

namespace cli = xtcp::cli;
using Clock = std::chrono::steady_clock;

constexpr auto kStopGrace = std::chrono::seconds(10);  // then SIGKILL

struct Named {
  const char* name;
  Ctr ctr;
};

constexpr Named kEchoCounters[] = {
    {"echo.accepted", kAccepted},         {"echo.open", kOpen},
    {"echo.bytes_in", kBytesIn},          {"echo.bytes_echoed", kBytesOut},
    {"echo.client_closes", kClientCloses}, {"echo.resets", kResets},
    {"echo.read_pauses", kReadPauses},    {"echo.accept_fd_limit", kAcceptFdLimit},
};

constexpr Named kImCounters[] = {
    {"im.accepted", kAccepted},
    {"im.open", kOpen},
    {"im.online", kOnline},
    {"im.client_closes", kClientCloses},
    {"im.quits", kQuits},
    {"im.resets", kResets},
    {"im.slow_consumers", kSlowConsumers},
    {"im.oversized_lines", kOversizedLines},
    {"im.requests", kRequests},
    {"im.logins", kLogins},
    {"im.logouts", kLogouts},
    {"im.messages", kMessages},
    {"im.messages_offline", kMessagesOffline},
    {"im.lists", kLists},
    {"im.watches", kWatches},
    {"im.errors", kErrors},
    {"im.pushes", kPushes},
    {"im.bytes_in", kBytesIn},
    {"im.bytes_out", kBytesOut},
    {"im.accept_fd_limit", kAcceptFdLimit},
};

constexpr Named kMeshCounters[] = {
    {"im.forwarded", kForwarded},
    {"im.forward_received", kForwardReceived},
    {"im.forward_dropped", kForwardDropped},
    {"im.presence_events", kPresenceEvents},
    {"im.presence_received", kPresenceReceived},
    {"im.held_records", kHeldRecords},
    {"mesh.packets_out", kMeshPacketsOut},
    {"mesh.packets_in", kMeshPacketsIn},
    {"mesh.stalls", kMeshStalls},
    {"mesh.queued_bytes", kMeshQueuedBytes},
    {"mesh.read_pauses", kMeshReadPauses},
};

void on_child(int) {}  // only ends ppoll

// The kernel's TCP line of /proc/net/sockstat: sockets in use and in TIME-WAIT (this network
// namespace), orphans and the pages of socket buffers (the whole machine). The kernel's
// memory per connection is not in any process's RSS.
void add_kernel_tcp(std::vector<cli::Counter>* out) {
  std::FILE* f = std::fopen("/proc/net/sockstat", "r");
  if (f == nullptr) {
    return;
  }
  char line[512];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    unsigned long long inuse = 0, orphan = 0, tw = 0, alloc = 0, mem = 0;
    if (std::sscanf(line, "TCP: inuse %llu orphan %llu tw %llu alloc %llu mem %llu", &inuse, &orphan, &tw, &alloc,
                    &mem) == 5) {
      out->push_back(cli::Counter{"kernel.tcp_inuse", inuse});
      out->push_back(cli::Counter{"kernel.tcp_time_wait", tw});
      out->push_back(cli::Counter{"kernel.tcp_orphans", orphan});
      out->push_back(cli::Counter{"kernel.tcp_buffer_bytes", mem * static_cast<unsigned long long>(::sysconf(_SC_PAGESIZE))});
      break;
    }
  }
  std::fclose(f);
}

std::size_t align64(std::size_t n) { return (n + 63) / 64 * 64; }

struct WorkerProc {
  pid_t pid = -1;
  bool exited = false;
  int status = 0;
};

class Supervisor {
 public:
  explicit Supervisor(const Options& o) : o_(o) {}
  ~Supervisor();
  int run();

 private:
  bool open_listeners();
  bool map_shared();
  bool make_mesh();
  void collect(std::vector<cli::Counter>* out);
  void begin_stop(int sig);
  void reap();
  std::string describe(int status) const;

  const Options& o_;
  bool multi_ = false;
  std::vector<int> listeners_;
  std::vector<std::vector<int>> mesh_;  // mesh_[i][j]: worker i's end toward worker j
  void* shared_ = nullptr;
  std::size_t shared_size_ = 0;
  WorkerStats* stats_ = nullptr;
  ImDirectory* dir_ = nullptr;
  std::uint32_t max_users_ = 0;
  std::vector<WorkerProc> workers_;
  bool stopping_ = false;
  bool failed_ = false;
  bool killed_ = false;
  Clock::time_point kill_at_{};
};

Supervisor::~Supervisor() {
  for (const int fd : listeners_) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
  for (auto& row : mesh_) {
    for (const int fd : row) {
      if (fd >= 0) {
        ::close(fd);
      }
    }
  }
  if (shared_ != nullptr) {
    ::munmap(shared_, shared_size_);
  }
}

bool Supervisor::open_listeners() {
  for (int i = 0; i < o_.processes; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      std::fprintf(stderr, "%s: socket: %s\n", kProgram, std::strerror(errno));
      return false;
    }
    listeners_.push_back(fd);
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
      std::fprintf(stderr, "%s: SO_REUSEPORT: %s\n", kProgram, std::strerror(errno));
      return false;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr = o_.addr;
    a.sin_port = htons(o_.port);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) < 0 || ::listen(fd, 65535) < 0) {
      std::fprintf(stderr, "%s: cannot listen on %s: %s\n", kProgram, o_.listen.c_str(), std::strerror(errno));
      return false;
    }
  }
  return true;
}

bool Supervisor::map_shared() {
  const std::size_t stats_bytes = align64(sizeof(WorkerStats) * static_cast<std::size_t>(o_.processes));
  shared_size_ = stats_bytes + (multi_ ? ImDirectory::region_size(max_users_) : 0);
  void* p = ::mmap(nullptr, shared_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    std::fprintf(stderr, "%s: cannot map %zu bytes of shared memory: %s\n", kProgram, shared_size_,
                 std::strerror(errno));
    return false;
  }
  shared_ = p;
  stats_ = static_cast<WorkerStats*>(p);
  for (int i = 0; i < o_.processes; ++i) {
    new (&stats_[i]) WorkerStats();
  }
  if (multi_) {
    dir_ = ImDirectory::create(static_cast<char*>(p) + stats_bytes, max_users_);
  }
  return true;
}

bool Supervisor::make_mesh() {
  const auto n = static_cast<std::size_t>(o_.processes);
  mesh_.assign(n, std::vector<int>(n, -1));
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = i + 1; j < n; ++j) {
      int sv[2];
      if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
        std::fprintf(stderr, "%s: socketpair: %s\n", kProgram, std::strerror(errno));
        return false;
      }
      for (const int fd : sv) {
        const int size = 4 << 20;  // room for bursts; a full queue waits in user space anyway
        if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0) {
          ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        }
      }
      mesh_[i][j] = sv[0];
      mesh_[j][i] = sv[1];
    }
  }
  return true;
}

std::string Supervisor::describe(int status) const {
  if (WIFEXITED(status)) {
    std::string s = "exited with status ";
    s += std::to_string(WEXITSTATUS(status));
    return s;
  }
  if (WIFSIGNALED(status)) {
    std::string s = "killed by signal ";
    s += std::to_string(WTERMSIG(status));
    s += " (";
    s += strsignal(WTERMSIG(status));
    s += ")";
    return s;
  }
  return "ended";
}

void Supervisor::begin_stop(int sig) {
  if (!stopping_) {
    stopping_ = true;
    kill_at_ = Clock::now() + kStopGrace;
  }
  for (const WorkerProc& w : workers_) {
    if (!w.exited && w.pid > 0) {
      ::kill(w.pid, sig);
    }
  }
}

void Supervisor::reap() {
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      return;
    }
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      WorkerProc& w = workers_[i];
      if (w.pid != pid || w.exited) {
        continue;
      }
      w.exited = true;
      w.status = status;
      const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!clean) {
        failed_ = true;
      }
      if (!clean || !stopping_) {
        std::fprintf(stderr, "%s: worker %zu (pid %d) %s%s\n", kProgram, i, static_cast<int>(pid),
                     describe(status).c_str(), stopping_ ? "" : "; stopping the others");
      }
      if (!stopping_) {
        begin_stop(SIGTERM);
      }
    }
  }
}

void Supervisor::collect(std::vector<cli::Counter>* out) {
  const auto n = static_cast<std::size_t>(o_.processes);
  auto sum = [&](Ctr k) {
    std::uint64_t s = 0;
    for (std::size_t i = 0; i < n; ++i) {
      s += stats_[i].c[k].load(std::memory_order_relaxed);
    }
    return s;
  };
  auto add_all = [&](const auto& table) {
    for (const Named& c : table) {
      out->push_back(cli::Counter{c.name, sum(c.ctr)});
    }
  };
  if (o_.protocol == Protocol::kEcho) {
    add_all(kEchoCounters);
  } else {
    add_all(kImCounters);
    if (multi_) {
      add_all(kMeshCounters);
    }
  }
  // Memory: live workers are read now; a worker that stopped wrote its own when stopping.
  std::vector<ProcessMemory> mem(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (!workers_[i].exited && workers_[i].pid > 0 &&
        read_process_memory(std::string("/proc/").append(std::to_string(workers_[i].pid)), &mem[i])) {
      continue;
    }
    mem[i].rss = stats_[i].rss_bytes.load();
    mem[i].pss = stats_[i].pss_bytes.load();
    mem[i].rss_peak = stats_[i].rss_peak_bytes.load();
  }
  ProcessMemory parent;
  read_process_memory("/proc/self", &parent);
  std::uint64_t rss = parent.rss;
  std::uint64_t pss = parent.pss;
  for (const ProcessMemory& m : mem) {
    rss += m.rss;
    pss += m.pss;
  }
  out->push_back(cli::Counter{"server.processes", n});
  out->push_back(cli::Counter{"server.rss_bytes", rss});
  out->push_back(cli::Counter{"server.pss_bytes", pss});
  out->push_back(cli::Counter{"server.parent_rss_bytes", parent.rss});
  out->push_back(cli::Counter{"server.shared_bytes", shared_size_});
  add_kernel_tcp(out);
  const std::string proto = o_.protocol == Protocol::kEcho ? "echo" : "im";
  for (std::size_t i = 0; i < n; ++i) {
    std::string w = "worker";
    w += std::to_string(i);
    w += '.';
    out->push_back(cli::Counter{w + "pid", static_cast<std::uint64_t>(std::max<pid_t>(workers_[i].pid, 0))});
    out->push_back(cli::Counter{w + "accepted", stats_[i].c[kAccepted].load()});
    out->push_back(cli::Counter{w + "open", stats_[i].c[kOpen].load()});
    if (o_.protocol == Protocol::kIm) {
      out->push_back(cli::Counter{w + "online", stats_[i].c[kOnline].load()});
    }
    out->push_back(cli::Counter{w + "rss_bytes", mem[i].rss});
    out->push_back(cli::Counter{w + "pss_bytes", mem[i].pss});
    out->push_back(cli::Counter{w + "rss_peak_bytes", mem[i].rss_peak});
  }
}

int Supervisor::run() {
  multi_ = o_.protocol == Protocol::kIm && o_.processes > 1;
  // Every worker may use the whole hard limit of descriptors.
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &nofile);
  }
  if (multi_) {
    std::uint64_t users = o_.max_users;
    if (users == 0) {
      const std::uint64_t per = nofile.rlim_cur == RLIM_INFINITY ? (1u << 20) : std::max<std::uint64_t>(nofile.rlim_cur, 1024);
      users = per * static_cast<std::uint64_t>(o_.processes);
    }
    max_users_ = static_cast<std::uint32_t>(std::min<std::uint64_t>(users, 1u << 26));
  }
  if (!open_listeners() || !map_shared() || (multi_ && !make_mesh())) {
    return cli::kExitFailure;
  }

  cli::on_stop_signals({SIGINT, SIGTERM});
  cli::on_stats_signal(SIGUSR1);
  cli::ignore_signal(SIGPIPE);
  struct sigaction sa {};
  sa.sa_handler = on_child;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGCHLD, &sa, nullptr);
  sigset_t blocked;
  sigemptyset(&blocked);
  for (const int sig : {SIGINT, SIGTERM, SIGUSR1, SIGCHLD}) {
    sigaddset(&blocked, sig);
  }
  sigset_t before;
  ::sigprocmask(SIG_BLOCK, &blocked, &before);

  std::FILE* msg = o_.stats.json ? stderr : stdout;
  std::fflush(nullptr);  // nothing buffered may be written twice by the children
  const pid_t parent = ::getpid();
  workers_.resize(static_cast<std::size_t>(o_.processes));
  for (int i = 0; i < o_.processes; ++i) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      std::fprintf(stderr, "%s: fork: %s\n", kProgram, std::strerror(errno));
      failed_ = true;
      begin_stop(SIGTERM);
      break;
    }
    if (pid == 0) {
      // The worker: ends with the parent, however the parent ends.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) {
        ::_exit(1);
      }
      cli::ignore_signal(SIGUSR1);  // the parent prints; a signal to the group must not stop a worker
      signal(SIGCHLD, SIG_DFL);
      WorkerSetup s;
      s.options = &o_;
      s.index = i;
      s.listen_fd = listeners_[static_cast<std::size_t>(i)];
      s.stats = &stats_[i];
      s.directory = dir_;
      s.stats->pid.store(::getpid());
      for (int j = 0; j < o_.processes; ++j) {
        if (j != i) {
          ::close(listeners_[static_cast<std::size_t>(j)]);
        }
      }
      if (multi_) {
        s.mesh_fds = mesh_[static_cast<std::size_t>(i)];
        for (int a = 0; a < o_.processes; ++a) {
          for (int b = 0; b < o_.processes; ++b) {
            if (a != i && mesh_[static_cast<std::size_t>(a)][static_cast<std::size_t>(b)] >= 0) {
              ::close(mesh_[static_cast<std::size_t>(a)][static_cast<std::size_t>(b)]);
            }
          }
        }
      }
      const int rc = run_worker(s);
      std::fflush(nullptr);
      ::_exit(rc);
    }
    workers_[static_cast<std::size_t>(i)].pid = pid;
  }
  // The workers own the sockets now.
  for (int& fd : listeners_) {
    ::close(fd);
    fd = -1;
  }
  for (auto& row : mesh_) {
    for (int& fd : row) {
      if (fd >= 0) {
        ::close(fd);
        fd = -1;
      }
    }
  }
  if (!stopping_) {
    std::string pids;
    for (const WorkerProc& w : workers_) {
      if (!pids.empty()) {
        pids += ' ';
      }
      pids += std::to_string(w.pid);  // appended: GCC 12 -O3 misreports "a" + std::string (-Wrestrict)
    }
    std::fprintf(msg, "%s: %s on %s, %d worker process%s (pids %s)%s\n", kProgram,
                 o_.protocol == Protocol::kEcho ? "echo" : "im", o_.listen.c_str(), o_.processes,
                 o_.processes == 1 ? "" : "es", pids.c_str(),
                 o_.protocol == Protocol::kEcho ? ""
                 : o_.presence == Presence::kAll ? ", presence all"
                                                  : ", presence watched");
    std::fflush(msg);
  }

  cli::StatsPrinter stats(kProgram, o_.stats, [this](std::vector<cli::Counter>* out) { collect(out); });
  const auto start = Clock::now();
  sigset_t let_in = before;
  for (const int sig : {SIGINT, SIGTERM, SIGUSR1, SIGCHLD}) {
    sigdelset(&let_in, sig);
  }
  for (;;) {
    // The stop first: after a Ctrl-C the workers got SIGINT too and may be gone already.
    if (cli::stop_requested() && !stopping_) {
      begin_stop(cli::stop_signal());
    }
    reap();
    if (std::all_of(workers_.begin(), workers_.end(), [](const WorkerProc& w) { return w.exited || w.pid < 0; })) {
      break;
    }
    const auto now = Clock::now();
    if (o_.duration.count() != 0 && !stopping_ && now - start >= o_.duration) {
      begin_stop(SIGTERM);
    }
    if (stopping_ && !killed_ && now >= kill_at_) {
      std::fprintf(stderr, "%s: workers still running %lld s after the stop: SIGKILL\n", kProgram,
                   static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(kStopGrace).count()));
      killed_ = true;
      failed_ = true;
      begin_stop(SIGKILL);
    }
    stats.poll();
    std::int64_t wait_ms = std::min<std::int64_t>(stats.ms_until_due(), 1000);
    if (o_.duration.count() != 0 && !stopping_) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(o_.duration - (now - start)).count();
      wait_ms = std::min<std::int64_t>(wait_ms, std::max<std::int64_t>(left, 0));
    }
    if (stopping_ && !killed_) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(kill_at_ - now).count();
      wait_ms = std::min<std::int64_t>(wait_ms, std::max<std::int64_t>(left, 0));
    }
    const timespec ts{static_cast<time_t>(wait_ms / 1000), static_cast<long>(wait_ms % 1000) * 1000000L};
    ::ppoll(nullptr, 0, &ts, &let_in);  // EINTR on a signal: the loop looks at every flag
  }
  ::sigprocmask(SIG_SETMASK, &before, nullptr);

  std::fprintf(msg, "%s: stopping\n", kProgram);
  std::fflush(msg);
  if (o_.stats.json) {
    stats.print();
  } else {
    std::vector<cli::Counter> rows;
    collect(&rows);
    cli::print_counters_text(stdout, rows);
    std::fflush(stdout);
  }
  return failed_ ? cli::kExitFailure : cli::kExitOk;
}

}  // namespace

int run_server(const Options& options) {
  Supervisor s(options);
  return s.run();
}

}  // namespace xtcp::kserver
