// Test harness for tests that need real kernel networking: a throwaway network namespace
// (NetNs) that tests create, run commands in, enter from a thread (to open a TUN device or
// kernel sockets inside it), and that is deleted when the object dies. Nothing leaves it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace xtcp {

struct CommandResult {
  // The exit status, 128 + signal number when killed by a signal, or -1 when the command
  // could not be started (output then holds the reason).
  int exit_code = -1;
  std::string output;  // stdout and stderr, interleaved as written
  bool timed_out = false;  // the process group was killed at the deadline
};

// Why namespace tests cannot run here (not root, no /dev/net/tun, no `ip`, namespaces
// refused), or nullopt when they can. Computed once. Tests: GTEST_SKIP() << *reason.
std::optional<std::string> netns_unavailable_reason();

// Absolute path of an executable found in PATH or the sbin directories, or nullopt.
std::optional<std::string> find_executable(const std::string& name);

// Runs argv (argv[0] looked up in PATH) in its own process group with stdin from
// /dev/null, capturing stdout+stderr. On timeout the whole group gets SIGKILL.
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30));

// A command running in the background in its own process group, output going to a file.
// The destructor kills the group (SIGKILL) and reaps it if it is still running.
class BackgroundCommand {
 public:
  ~BackgroundCommand();
  BackgroundCommand(const BackgroundCommand&) = delete;
  BackgroundCommand& operator=(const BackgroundCommand&) = delete;

  pid_t pid() const { return pid_; }
  // Sends sig to the whole process group. Returns 0 or a negative errno.
  int signal(int sig) const;
  // True while the process has not exited (does not reap it).
  bool running() const;
  // Waits for exit up to timeout (then SIGKILLs the group and reports timed_out) and
  // returns the exit code and everything the command wrote.
  CommandResult wait(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // What the command wrote so far.
  std::string output_so_far() const;

 private:
  friend class NetNs;
  friend std::unique_ptr<BackgroundCommand> start_command(const std::vector<std::string>& argv,
                                                          std::string* error);
  BackgroundCommand(pid_t pid, int pidfd, std::string log_path);

  pid_t pid_;
  int pidfd_;
  std::string log_path_;
  bool reaped_ = false;
  CommandResult result_;
};

// Starts argv in the background (see BackgroundCommand). nullptr with *error on failure.
std::unique_ptr<BackgroundCommand> start_command(const std::vector<std::string>& argv,
                                                 std::string* error);

struct NetNsOptions {
  // IPv4-only tests: no IPv6 router solicitations or MLD reports on new interfaces.
  bool disable_ipv6 = true;
};

// A network namespace named xtcp-test-<pid>-<n>, created by `ip netns add`, with its
// loopback up. Deleted (`ip netns del`) by the destructor. Destroy every TUN fd and socket
// opened inside it first: they keep the namespace alive after its name is gone.
class NetNs {
 public:
  // Also removes namespaces left by earlier test processes that died (name prefix
  // xtcp-test-<pid>- with that pid no longer alive). nullptr with *error on failure.
  static std::unique_ptr<NetNs> create(std::string* error, const NetNsOptions& options = {});
  ~NetNs();
  NetNs(const NetNs&) = delete;
  NetNs& operator=(const NetNs&) = delete;

  const std::string& name() const { return name_; }

  // `ip netns exec NAME sh -c shell_command`, waiting for it to finish.
  CommandResult run(const std::string& shell_command,
                    std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;
  // The same, in the background (servers, long-running clients).
  std::unique_ptr<BackgroundCommand> start(const std::string& shell_command,
                                           std::string* error) const;

  // Moves the calling thread into the namespace (setns CLONE_NEWNET); sockets and TUN
  // devices it opens afterwards live there. Only for threads the test owns: never call it
  // on gtest's main thread. Returns 0 or a negative errno with *error set.
  int enter_on_this_thread(std::string* error) const;

  // Runs fn on a new thread that first enters the namespace, and joins it. Returns 0, or
  // a negative errno (with *error) if entering failed, in which case fn did not run.
  // gtest EXPECT_*/ADD_FAILURE inside fn are recorded normally.
  int run_in_thread(const std::function<void()>& fn, std::string* error = nullptr) const;

 private:
  explicit NetNs(std::string name) : name_(std::move(name)) {}
  int setup(const NetNsOptions& options, std::string* error) const;

  std::string name_;
};

}  // namespace xtcp
