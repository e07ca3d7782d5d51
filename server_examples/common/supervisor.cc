// The supervisor of a sharded example server: fork, ready pipes, signal forwarding, the
// counter sums (see supervisor.h).
#include "server_examples/common/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <map>
#include <optional>
#include <sstream>

namespace xtcp_examples {
namespace {

namespace cli = xtcp::cli;
using Clock = std::chrono::steady_clock;

constexpr auto kReadyTimeout = std::chrono::seconds(30);    // one worker's start-up
constexpr auto kCountersTimeout = std::chrono::seconds(5);  // the shards' answer to SIGUSR1
constexpr auto kStopTimeout = std::chrono::seconds(30);     // then SIGKILL

std::string format_counters(const char* kind, const std::vector<Counter>& counters) {
  std::string text = std::string(kind) + "\n";
  for (const Counter& c : counters) {
    text += c.name + " " + std::to_string(c.value) + "\n";
  }
  return text + "end\n";
}

// One forked worker, as the supervisor sees it.
struct Child {
  Worker spec;
  int index = -1;  // shard number, -1 for a helper
  pid_t pid = -1;
  int fd = -1;     // read end of its pipe; -1 after EOF
  std::string buf;
  bool ready = false;
  bool reaped = false;
  int status = 0;
  std::uint64_t blocks = 0;  // "counters" blocks received
  std::vector<Counter> last;
  std::optional<std::vector<Counter>> final;
  // The block being received.
  enum class Block { kNone, kCounters, kFinal } block = Block::kNone;
  std::vector<Counter> pending;

  bool open() const { return fd >= 0; }

  void take_line(const std::string& line) {
    if (block == Block::kNone) {
      if (line == "ready") {
        ready = true;
      } else if (line == "counters") {
        block = Block::kCounters;
      } else if (line == "final") {
        block = Block::kFinal;
      }
      return;
    }
    if (line == "end") {
      if (block == Block::kCounters) {
        last = std::move(pending);
        ++blocks;
      } else {
        final = std::move(pending);
      }
      pending.clear();
      block = Block::kNone;
      return;
    }
    const auto space = line.rfind(' ');
    if (space != std::string::npos && space > 0) {
      pending.push_back(Counter{line.substr(0, space), std::strtoull(line.c_str() + space + 1, nullptr, 10)});
    }
  }

  // Reads what the pipe holds; closes it at EOF.
  void read_some() {
    char chunk[16384];
    for (;;) {
      const ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n > 0) {
        buf.append(chunk, static_cast<std::size_t>(n));
        std::size_t start = 0;
        for (std::size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1) {
          take_line(buf.substr(start, nl - start));
        }
        buf.erase(0, start);
        continue;
      }
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0 && errno == EAGAIN) {
        return;
      }
      ::close(fd);  // EOF (or an error): the worker is gone or going
      fd = -1;
      return;
    }
  }

  void reap(bool block_until_gone) {
    if (reaped || pid <= 0) {
      return;
    }
    const pid_t r = ::waitpid(pid, &status, block_until_gone ? 0 : WNOHANG);
    if (r == pid) {
      reaped = true;
    }
  }

  bool failed() const { return reaped && !(WIFEXITED(status) && WEXITSTATUS(status) == 0); }
};

class Supervisor {
 public:
  explicit Supervisor(const SupervisorSpec& spec) : spec_(spec), flags_(*spec.flags) {}

  int run(std::vector<Worker> workers) {
    int shard = 0;
    for (auto& w : workers) {
      Child c;
      c.index = w.shard ? shard++ : -1;
      c.spec = std::move(w);
      children_.push_back(std::move(c));
    }
    shards_ = shard;
    cli::on_stop_signals({SIGINT, SIGTERM});
    cli::on_stats_signal(SIGUSR1);
    cli::ignore_signal(SIGPIPE);
    // SIGUSR2 toggles --capture in a single process; shards take no --capture, and the
    // signal must not end the supervisor (its default action) and with it every shard.
    cli::ignore_signal(SIGUSR2);
    bool ok = start_all();
    std::FILE* msg = message_stream(flags_);
    const bool served = ok && !cli::stop_requested();
    if (served) {
      std::fprintf(msg, "%s, %d shards\n", spec_.ready_line.c_str(), shards_);
      std::fflush(msg);
      ok = supervise();
    }
    const bool stopped_cleanly = stop_all();
    if (served) {  // a program that never served prints no counters, as a single process
      print_final();
    }
    return ok && stopped_cleanly ? cli::kExitOk : cli::kExitFailure;
  }

 private:
  // Forks each worker and waits for its "ready" before the next.
  bool start_all() {
    for (Child& c : children_) {
      if (cli::stop_requested()) {
        return true;
      }
      if (!fork_worker(c)) {
        return false;
      }
      const auto deadline = Clock::now() + kReadyTimeout;
      while (!c.ready && c.open() && !cli::stop_requested() && Clock::now() < deadline) {
        pump(100);
      }
      if (c.ready) {
        continue;
      }
      if (cli::stop_requested()) {
        return true;
      }
      if (c.open()) {
        report(who(c) + " is not ready after " + std::to_string(kReadyTimeout.count()) + " s; stopping");
        ::kill(c.pid, SIGKILL);
      } else {
        c.reap(true);
        report(who(c) + " " + describe_exit(c.status) + " at start-up; stopping");
      }
      return false;
    }
    return true;
  }

  bool fork_worker(Child& c) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0) {
      report("pipe for " + c.spec.name + ": " + std::strerror(errno));
      return false;
    }
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
      report("fork for " + c.spec.name + ": " + std::strerror(errno));
      ::close(fds[0]);
      ::close(fds[1]);
      return false;
    }
    if (pid == 0) {
      // The worker: none of the others' pipes, and it dies with the supervisor.
      for (const Child& other : children_) {
        if (other.fd >= 0) {
          ::close(other.fd);
        }
      }
      ::close(fds[0]);
      if (c.index < 0) {
        // A helper leaves the process group: a signal to the whole group (Ctrl-C, or kill
        // -INT -PGID) stops the shards and the supervisor, and the helper they still use
        // must stay until the supervisor stops it after them.
        ::setpgid(0, 0);
      }
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) {
        ::_exit(cli::kExitFailure);
      }
      ShardChannel channel(c.index, fds[1]);
      const int rc = c.spec.run(channel);
      std::fflush(stdout);
      std::fflush(stderr);
      ::_exit(rc);
    }
    ::close(fds[1]);
    ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    c.pid = pid;
    c.fd = fds[0];
    return true;
  }

  // Waits up to timeout_ms for input on the open pipes and takes it.
  void pump(int timeout_ms) {
    std::vector<pollfd> pfds;
    std::vector<Child*> who;
    for (Child& c : children_) {
      if (c.open()) {
        pfds.push_back({c.fd, POLLIN, 0});
        who.push_back(&c);
      }
    }
    if (pfds.empty()) {
      if (timeout_ms > 0) {
        ::poll(nullptr, 0, timeout_ms);
      }
      return;
    }
    if (::poll(pfds.data(), pfds.size(), timeout_ms) <= 0) {
      return;
    }
    for (std::size_t i = 0; i < pfds.size(); ++i) {
      if (pfds[i].revents != 0) {
        who[i]->read_some();
      }
    }
  }

  // A worker whose pipe closed while nobody asked it to stop.
  Child* lost_worker() {
    for (Child& c : children_) {
      if (!c.open() && c.pid > 0) {
        return &c;
      }
    }
    return nullptr;
  }

  // Until a stop signal, the duration, or a lost worker (false).
  bool supervise() {
    cli::StatsPrinter stats(spec_.program, flags_.stats, [this](std::vector<Counter>* out) {
      ask_counters();
      *out = sums([](const Child& c) -> const std::vector<Counter>* { return &c.last; });
    });
    const auto start = Clock::now();
    const bool limited = flags_.duration.count() != 0;
    while (!cli::stop_requested()) {
      int timeout = std::min(stats.ms_until_due(), 100);
      if (limited) {
        const auto left = flags_.duration - (Clock::now() - start);
        if (left <= Clock::duration::zero()) {
          break;
        }
        timeout = std::min<int>(timeout, static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count()));
      }
      pump(timeout);
      if (Child* c = lost_worker()) {
        if (cli::stop_requested()) {
          break;  // a stop signal to the whole process group reached the worker first
        }
        c->reap(true);
        report(who(*c) + " " + describe_exit(c->status) + "; stopping the others");
        return false;
      }
      stats.poll();
    }
    return true;
  }

  // SIGUSR1 to every shard, then waits (bounded) until each answered with a block.
  void ask_counters() {
    std::vector<std::uint64_t> before;
    for (Child& c : children_) {
      before.push_back(c.blocks);
      if (c.index >= 0 && c.open()) {
        ::kill(c.pid, SIGUSR1);
      }
    }
    const auto deadline = Clock::now() + kCountersTimeout;
    for (;;) {
      bool waiting = false;
      for (std::size_t i = 0; i < children_.size(); ++i) {
        const Child& c = children_[i];
        waiting = waiting || (c.index >= 0 && c.open() && c.blocks == before[i]);
      }
      if (!waiting || Clock::now() >= deadline || cli::stop_requested()) {
        return;
      }
      pump(50);
    }
  }

  // The sums over the shards of the blocks pick() chooses, in the first shard's order.
  std::vector<Counter> sums(const std::function<const std::vector<Counter>*(const Child&)>& pick) const {
    std::vector<Counter> out;
    std::map<std::string, std::size_t> at;
    for (const Child& c : children_) {
      const std::vector<Counter>* block = c.index >= 0 ? pick(c) : nullptr;
      if (block == nullptr) {
        continue;
      }
      for (const Counter& k : *block) {
        const auto [it, fresh] = at.emplace(k.name, out.size());
        if (fresh) {
          out.push_back(k);
        } else {
          out[it->second].value += k.value;
        }
      }
    }
    return out;
  }

  // Stops the shards (with the signal the supervisor got, else SIGTERM), then the helpers.
  // False when one of them ended badly.
  bool stop_all() {
    const int sig = cli::stop_signal() != 0 ? cli::stop_signal() : SIGTERM;
    bool clean = true;
    for (const bool shards : {true, false}) {
      for (Child& c : children_) {
        if ((c.index >= 0) == shards && c.pid > 0 && !c.reaped) {
          ::kill(c.pid, shards ? sig : SIGTERM);
        }
      }
      const auto deadline = Clock::now() + kStopTimeout;
      for (;;) {
        bool open = false;
        for (const Child& c : children_) {
          open = open || ((c.index >= 0) == shards && c.open());
        }
        if (!open) {
          break;
        }
        if (Clock::now() >= deadline) {
          for (Child& c : children_) {
            if ((c.index >= 0) == shards && c.open()) {
              report(who(c) + " did not stop within " + std::to_string(kStopTimeout.count()) + " s; killing it");
              ::kill(c.pid, SIGKILL);
              ::close(c.fd);
              c.fd = -1;
            }
          }
          break;
        }
        pump(100);
      }
      for (Child& c : children_) {
        if ((c.index >= 0) != shards || c.pid <= 0) {
          continue;
        }
        const bool seen_before = c.reaped;
        c.reap(true);
        if (c.failed()) {
          clean = false;
          if (!seen_before) {
            report(who(c) + " " + describe_exit(c.status));
          }
        }
      }
    }
    return clean;
  }

  void print_final() {
    const std::vector<Counter> sum =
        sums([](const Child& c) { return c.final ? &*c.final : static_cast<const std::vector<Counter>*>(nullptr); });
    std::FILE* msg = message_stream(flags_);
    std::fprintf(msg, "%s\n", spec_.stopping_line(sum).c_str());
    std::fflush(msg);
    auto shown = [&](const std::string& name) {
      return flags_.stats.json || std::any_of(spec_.final_prefixes.begin(), spec_.final_prefixes.end(),
                                              [&](const std::string& p) { return name.rfind(p, 0) == 0; });
    };
    std::vector<Counter> rows;
    for (const Counter& k : sum) {
      if (shown(k.name)) {
        rows.push_back(k);
      }
    }
    for (const Child& c : children_) {
      if (c.index >= 0 && c.final) {
        for (const Counter& k : *c.final) {
          if (shown(k.name)) {
            rows.push_back(Counter{"shard" + std::to_string(c.index) + "." + k.name, k.value});
          }
        }
      }
    }
    for (const Child& c : children_) {
      if (c.index < 0 && c.final) {
        rows.insert(rows.end(), c.final->begin(), c.final->end());
      }
    }
    if (flags_.stats.json) {
      cli::print_counters_json(stdout, spec_.program, rows);
    } else {
      cli::print_counters_text(stdout, rows);
    }
    std::fflush(stdout);
  }

  void report(const std::string& what) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: %s\n", spec_.program, what.c_str());
  }

  static std::string who(const Child& c) { return c.spec.name + " (pid " + std::to_string(c.pid) + ")"; }

  const SupervisorSpec& spec_;
  const ServerFlags& flags_;
  std::vector<Child> children_;
  int shards_ = 0;
};

}  // namespace

void ShardChannel::ready() { send("ready\n"); }

void ShardChannel::counters(const std::vector<Counter>& counters) { send(format_counters("counters", counters)); }

void ShardChannel::final_counters(const std::vector<Counter>& counters) { send(format_counters("final", counters)); }

void ShardChannel::attach(cli::StatsPrinter& stats) {
  stats.redirect([this](const std::vector<Counter>& c) { counters(c); });
}

void ShardChannel::send(const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return;  // the supervisor is gone (SIGPIPE is ignored); PR_SET_PDEATHSIG stops us
    }
    done += static_cast<std::size_t>(n);
  }
}

ServerFlags shard_flags(const ServerFlags& flags, int index) {
  ServerFlags f = flags;
  f.duration = cli::Micros(0);
  f.stats = cli::StatsOptions{};
  if (!f.pcap.empty()) {
    f.pcap += '.';
    f.pcap += std::to_string(index);
  }
  return f;
}

int run_supervisor(const SupervisorSpec& spec, std::vector<Worker> workers) {
  Supervisor s(spec);
  return s.run(std::move(workers));
}

std::string describe_exit(int wait_status) {
  if (WIFEXITED(wait_status)) {
    return "exited with status " + std::to_string(WEXITSTATUS(wait_status));
  }
  if (WIFSIGNALED(wait_status)) {
    const int sig = WTERMSIG(wait_status);
    return "was killed by signal " + std::to_string(sig) + " (" + ::strsignal(sig) + ")";
  }
  return "ended with wait status " + std::to_string(wait_status);
}

}  // namespace xtcp_examples
