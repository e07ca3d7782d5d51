// NetNs and command helpers: processes are started with posix_spawn in their own process
// group (so a timeout can kill everything they started), waited for through a pidfd (no
// sleeps), and namespaces are entered per thread with setns(CLONE_NEWNET).
#include "tests/support/netns.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/if.h>
#include <poll.h>
#include <sched.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

extern char** environ;

namespace xtcp {
namespace {

using SteadyTime = std::chrono::steady_clock;

constexpr const char* kNetnsDir = "/var/run/netns";  // where `ip netns` keeps its names
constexpr const char* kPrefix = "xtcp-test-";

std::string errno_text(const std::string& what, int err) {
  return what + ": " + std::strerror(err);
}

int decode_status(int status) {
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  if (WIFSIGNALED(status)) {
    return 128 + WTERMSIG(status);
  }
  return -1;
}

int remaining_ms(SteadyTime::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyTime::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

int open_pidfd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// Spawns argv in a new process group with stdin </dev/null and stdout+stderr to out_fd.
// Returns the pid, or a negative errno.
pid_t spawn(const std::vector<std::string>& argv, int out_fd) {
  if (argv.empty()) {
    return -EINVAL;
  }
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, out_fd, 2);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty;
  sigemptyset(&empty);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGPIPE, SIGCHLD}) {
    sigaddset(&defaults, sig);
  }
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);

  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -rc;
}

// Waits until pid exits or the deadline passes (then kills its group). Reaps it.
// Returns {exit code, timed_out}.
std::pair<int, bool> reap(pid_t pid, int pidfd, SteadyTime::time_point deadline) {
  bool timed_out = false;
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    int n = 0;
    do {
      n = ::poll(&p, 1, remaining_ms(deadline));
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
      timed_out = true;
      ::kill(-pid, SIGKILL);
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return {decode_status(status), timed_out};
}

std::string read_file(const std::string& path) {
  std::string out;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return out;
  }
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  ::close(fd);
  return out;
}

const std::string& ip_path() {
  static const std::string path = find_executable("ip").value_or("ip");
  return path;
}

// Brings an interface up with ioctls, in the calling thread's namespace.
int set_link_up(const char* ifname, std::string* error) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const int err = errno;
    *error = errno_text("socket(AF_INET)", err);
    return -err;
  }
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
  int rc = ::ioctl(fd, SIOCGIFFLAGS, &ifr);
  if (rc == 0) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    rc = ::ioctl(fd, SIOCSIFFLAGS, &ifr);
  }
  const int err = errno;
  ::close(fd);
  if (rc < 0) {
    *error = errno_text(std::string("bringing up ") + ifname, err);
    return -err;
  }
  return 0;
}

// Writes a sysctl of the calling thread's namespace; a missing key (no IPv6) is fine.
int write_sysctl(const std::string& path, const char* value, std::string* error) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      return 0;
    }
    *error = errno_text("open " + path, err);
    return -err;
  }
  const ssize_t n = ::write(fd, value, std::strlen(value));
  const int err = errno;
  ::close(fd);
  if (n < 0) {
    *error = errno_text("write " + path, err);
    return -err;
  }
  return 0;
}

// Deletes xtcp-test-<pid>-* namespaces whose creating process no longer exists: a test
// binary that crashed cannot have run its destructors.
void remove_stale_namespaces() {
  DIR* dir = ::opendir(kNetnsDir);
  if (dir == nullptr) {
    return;
  }
  std::vector<std::string> stale;
  const std::string prefix = kPrefix;
  while (dirent* e = ::readdir(dir)) {
    const std::string name = e->d_name;
    if (name.compare(0, prefix.size(), prefix) != 0) {
      continue;
    }
    char* end = nullptr;
    const long pid = std::strtol(name.c_str() + prefix.size(), &end, 10);
    if (end == nullptr || *end != '-' || pid <= 0 || pid == ::getpid()) {
      continue;
    }
    if (::kill(static_cast<pid_t>(pid), 0) < 0 && errno == ESRCH) {
      stale.push_back(name);
    }
  }
  ::closedir(dir);
  for (const auto& name : stale) {
    run_command({ip_path(), "netns", "del", name}, std::chrono::seconds(10));
  }
}

}  // namespace

std::optional<std::string> find_executable(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    return ::access(name.c_str(), X_OK) == 0 ? std::optional<std::string>(name) : std::nullopt;
  }
  std::string dirs;
  if (const char* path = std::getenv("PATH")) {
    dirs = path;
  }
  dirs += ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t end = dirs.find(':', start);
    if (end == std::string::npos) {
      end = dirs.size();
    }
    const std::string dir = dirs.substr(start, end - start);
    start = end + 1;
    if (dir.empty()) {
      continue;
    }
    const std::string candidate = dir + "/" + name;
    struct stat st{};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return std::nullopt;
}

std::optional<std::string> netns_unavailable_reason() {
  static const std::optional<std::string> reason = []() -> std::optional<std::string> {
    if (::geteuid() != 0) {
      return "network-namespace tests need root (euid " + std::to_string(::geteuid()) + ")";
    }
    const int tun = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (tun < 0) {
      return errno_text("cannot open /dev/net/tun", errno);
    }
    ::close(tun);
    if (!find_executable("ip")) {
      return std::string("`ip` (iproute2) not found");
    }
    // Namespaces can be refused (containers without CAP_SYS_ADMIN): try one on a thread,
    // which alone moves into it and drops it when it ends.
    int unshare_errno = 0;
    std::thread probe([&unshare_errno] {
      if (::unshare(CLONE_NEWNET) < 0) {
        unshare_errno = errno;
      }
    });
    probe.join();
    if (unshare_errno != 0) {
      return errno_text("cannot create a network namespace (unshare)", unshare_errno);
    }
    return std::nullopt;
  }();
  return reason;
}

CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout) {
  CommandResult result;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) {
    result.output = errno_text("pipe2", errno);
    return result;
  }
  const pid_t pid = spawn(argv, fds[1]);
  ::close(fds[1]);
  if (pid < 0) {
    ::close(fds[0]);
    result.output = errno_text("cannot start " + (argv.empty() ? std::string() : argv[0]), -pid);
    return result;
  }
  const int pidfd = open_pidfd(pid);
  const auto deadline = SteadyTime::now() + timeout;

  // Read until EOF (every writer gone) or the deadline.
  char buf[4096];
  for (;;) {
    pollfd p{fds[0], POLLIN, 0};
    const int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;  // deadline: reap() below kills the group
    }
    const ssize_t got = ::read(fds[0], buf, sizeof buf);
    if (got > 0) {
      result.output.append(buf, static_cast<std::size_t>(got));
    } else if (got < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  ::close(fds[0]);
  auto [code, timed_out] = reap(pid, pidfd, deadline);
  if (pidfd >= 0) {
    ::close(pidfd);
  }
  result.exit_code = code;
  result.timed_out = timed_out;
  return result;
}

std::unique_ptr<BackgroundCommand> start_command(const std::vector<std::string>& argv,
                                                 std::string* error) {
  char log_template[] = "/tmp/xtcp-test-cmd-XXXXXX";
  const int log_fd = ::mkostemp(log_template, O_CLOEXEC);
  if (log_fd < 0) {
    if (error != nullptr) {
      *error = errno_text("mkostemp", errno);
    }
    return nullptr;
  }
  const pid_t pid = spawn(argv, log_fd);
  ::close(log_fd);
  if (pid < 0) {
    ::unlink(log_template);
    if (error != nullptr) {
      *error = errno_text("cannot start " + (argv.empty() ? std::string() : argv[0]), -pid);
    }
    return nullptr;
  }
  return std::unique_ptr<BackgroundCommand>(
      new BackgroundCommand(pid, open_pidfd(pid), log_template));
}

BackgroundCommand::BackgroundCommand(pid_t pid, int pidfd, std::string log_path)
    : pid_(pid), pidfd_(pidfd), log_path_(std::move(log_path)) {}

BackgroundCommand::~BackgroundCommand() {
  if (!reaped_) {
    ::kill(-pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (pidfd_ >= 0) {
    ::close(pidfd_);
  }
  ::unlink(log_path_.c_str());
}

int BackgroundCommand::signal(int sig) const {
  if (reaped_) {
    return -ESRCH;
  }
  return ::kill(-pid_, sig) == 0 ? 0 : -errno;
}

bool BackgroundCommand::running() const {
  if (reaped_) {
    return false;
  }
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) < 0) {
    return false;
  }
  return info.si_pid == 0;
}

CommandResult BackgroundCommand::wait(std::chrono::milliseconds timeout) {
  if (!reaped_) {
    auto [code, timed_out] = reap(pid_, pidfd_, SteadyTime::now() + timeout);
    reaped_ = true;
    result_.exit_code = code;
    result_.timed_out = timed_out;
  }
  result_.output = read_file(log_path_);
  return result_;
}

std::string BackgroundCommand::output_so_far() const { return read_file(log_path_); }

std::unique_ptr<NetNs> NetNs::create(std::string* error, const NetNsOptions& options) {
  static std::once_flag cleanup_once;
  std::call_once(cleanup_once, remove_stale_namespaces);

  static std::atomic<int> counter{0};
  std::string name = std::string(kPrefix) + std::to_string(::getpid()) + "-" +
                     std::to_string(counter.fetch_add(1));
  const CommandResult add = run_command({ip_path(), "netns", "add", name});
  if (add.exit_code != 0) {
    if (error != nullptr) {
      *error = "ip netns add " + name + " failed (exit " + std::to_string(add.exit_code) +
               "): " + add.output;
    }
    return nullptr;
  }
  std::unique_ptr<NetNs> ns(new NetNs(std::move(name)));
  std::string setup_error;
  if (ns->setup(options, &setup_error) < 0) {
    if (error != nullptr) {
      *error = "setting up namespace " + ns->name() + ": " + setup_error;
    }
    return nullptr;  // the destructor deletes the namespace
  }
  return ns;
}

int NetNs::setup(const NetNsOptions& options, std::string* error) const {
  int rc = 0;
  const int entered = run_in_thread(
      [&] {
        if (options.disable_ipv6) {
          // "default" first: interfaces created later (the TUN) inherit it.
          rc = write_sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1", error);
          if (rc == 0) {
            rc = write_sysctl("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1", error);
          }
        }
        if (rc == 0) {
          rc = set_link_up("lo", error);
        }
      },
      error);
  return entered < 0 ? entered : rc;
}

NetNs::~NetNs() {
  const CommandResult del = run_command({ip_path(), "netns", "del", name_},
                                        std::chrono::seconds(10));
  if (del.exit_code != 0) {
    std::fprintf(stderr, "warning: ip netns del %s failed: %s\n", name_.c_str(),
                 del.output.c_str());
  }
}

CommandResult NetNs::run(const std::string& shell_command,
                         std::chrono::milliseconds timeout) const {
  return run_command({ip_path(), "netns", "exec", name_, "sh", "-c", shell_command}, timeout);
}

std::unique_ptr<BackgroundCommand> NetNs::start(const std::string& shell_command,
                                                std::string* error) const {
  return start_command({ip_path(), "netns", "exec", name_, "sh", "-c", shell_command}, error);
}

int NetNs::enter_on_this_thread(std::string* error) const {
  const std::string path = std::string(kNetnsDir) + "/" + name_;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (error != nullptr) {
      *error = errno_text("open " + path, err);
    }
    return -err;
  }
  const int rc = ::setns(fd, CLONE_NEWNET);
  const int err = errno;
  ::close(fd);
  if (rc < 0) {
    if (error != nullptr) {
      *error = errno_text("setns(" + path + ", CLONE_NEWNET)", err);
    }
    return -err;
  }
  return 0;
}

int NetNs::run_in_thread(const std::function<void()>& fn, std::string* error) const {
  int rc = 0;
  std::exception_ptr thrown;
  std::thread worker([&] {
    rc = enter_on_this_thread(error);
    if (rc < 0) {
      return;
    }
    try {
      fn();
    } catch (...) {
      thrown = std::current_exception();
    }
  });
  worker.join();
  if (thrown) {
    std::rethrow_exception(thrown);
  }
  return rc;
}

}  // namespace xtcp
