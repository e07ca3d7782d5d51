// Interop fixture for the server PROGRAMS (build/bin/xtcp-im, xtcp-echo): the program runs
// in a network namespace the test creates (198.18.0.0/24) on TUN xtcp0, kernel sockets of
// that namespace are its clients; stop() sends SIGINT and returns what it printed.
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/netns.h"

namespace xtcp::test {

inline constexpr const char* kProgramStackIp = "198.18.0.2";
inline constexpr const char* kProgramKernelCidr = "198.18.0.1/24";

// A second program the server needs (xtcp-im's backend), started first in the same
// namespace: `command` is a shell command line, ready_prefix its start-up line.
struct Companion {
  std::string command;
  std::string ready_prefix;
};

class ProgramServer {
 public:
  // Runs `binary --tun xtcp0 --ip 198.18.0.2 --kernel-ip 198.18.0.1/24 <args>` in a new
  // namespace and waits (up to 10 s) for a line starting with ready_prefix; the companion,
  // if any, is started and waited for before it. nullptr with *skip_reason when the machine
  // cannot run namespace tests, else with *error.
  static std::unique_ptr<ProgramServer> start(const std::string& binary, const std::string& args,
                                              const std::string& ready_prefix,
                                              std::string* skip_reason, std::string* error,
                                              const std::optional<Companion>& companion = std::nullopt);
  ~ProgramServer();

  const NetNs& ns() const { return *ns_; }
  // Runs fn on a thread inside the namespace (client sockets must be made there).
  void in_namespace(const std::function<void()>& fn) const;
  bool running() const { return cmd_ && cmd_->running(); }
  // The program's process id (-1 when it was not started).
  pid_t pid() const { return cmd_ ? cmd_->pid() : -1; }
  // Sends sig to the program (SIGUSR1: print the counters); 0 or a negative errno.
  int signal(int sig) const { return cmd_ ? cmd_->signal(sig) : -ESRCH; }
  std::string output_so_far() const { return cmd_ ? cmd_->output_so_far() : std::string(); }
  // SIGINT, then waits up to timeout for the exit; exit code and all output.
  CommandResult stop(std::chrono::milliseconds timeout = std::chrono::seconds(15));
  // The same for the companion (stop the server first).
  CommandResult stop_companion(std::chrono::milliseconds timeout = std::chrono::seconds(15));
  bool companion_running() const { return companion_ && companion_->running(); }
  std::string companion_output_so_far() const { return companion_ ? companion_->output_so_far() : std::string(); }
  // Sends sig to the companion (SIGSTOP/SIGCONT to pause it); 0 or a negative errno.
  int signal_companion(int sig) const { return companion_ ? companion_->signal(sig) : -ESRCH; }

 private:
  ProgramServer() = default;
  std::unique_ptr<NetNs> ns_;  // declared first: destroyed after the programs are gone
  std::unique_ptr<BackgroundCommand> companion_;
  std::unique_ptr<BackgroundCommand> cmd_;
};

// Starts a ProgramServer as `var` (optionally with a Companion), skipping the test with the
// reason when the machine cannot run namespace tests.
#define START_PROGRAM_WITH(var, binary, args, ready, companion)                               \
  std::string skip_reason, start_error;                                                        \
  auto var = ProgramServer::start(binary, args, ready, &skip_reason, &start_error, companion); \
  if (!var && !skip_reason.empty()) {                                                          \
    GTEST_SKIP() << "interop test needs root and /dev/net/tun: " << skip_reason;              \
  }                                                                                            \
  ASSERT_TRUE(var) << start_error
#define START_PROGRAM(var, binary, args, ready) START_PROGRAM_WITH(var, binary, args, ready, std::nullopt)

// What a program wrote to stdout and to stderr, apart.
struct SplitResult {
  int exit_code = -1;  // as CommandResult::exit_code
  std::string out;
  std::string err;
};
// Runs argv (no namespace) with stderr in a file of its own; bounded by timeout.
SplitResult run_split(const std::vector<std::string>& argv,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Runs each command line (no namespace needed: flags are checked first) and expects what
// every program does with a bad, unknown or missing flag: exit status 2, nothing on stdout,
// and on stderr one line "<program>: <what is wrong>" and a hint to --help. A bad flag must
// be explained, not acted upon.
void expect_usage_errors(const std::vector<std::vector<std::string>>& command_lines);

// The value of a "name value" counter line in a program's output, or nullopt.
std::optional<std::uint64_t> counter_value(const std::string& output, const std::string& name);

// The parts of s between sep characters (tshark's field lines, a line's fields).
std::vector<std::string> split_text(const std::string& s, char sep);

}  // namespace xtcp::test
