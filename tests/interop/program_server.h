// Interop fixture for the server PROGRAMS (build/bin/xtcp-im, xtcp-echo): the program runs
// in a network namespace the test creates (198.18.0.0/24) on TUN xtcp0, kernel sockets of
// that namespace are its clients; stop() sends SIGINT and returns what it printed.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "tests/support/netns.h"

namespace xtcp::test {

inline constexpr const char* kProgramStackIp = "198.18.0.2";
inline constexpr const char* kProgramKernelCidr = "198.18.0.1/24";

class ProgramServer {
 public:
  // Runs `binary --tun xtcp0 --ip 198.18.0.2 --kernel-ip 198.18.0.1/24 <args>` in a new
  // namespace and waits (up to 10 s) for a line starting with ready_prefix. nullptr with
  // *skip_reason when the machine cannot run namespace tests, else with *error.
  static std::unique_ptr<ProgramServer> start(const std::string& binary, const std::string& args,
                                              const std::string& ready_prefix,
                                              std::string* skip_reason, std::string* error);
  ~ProgramServer();

  const NetNs& ns() const { return *ns_; }
  // Runs fn on a thread inside the namespace (client sockets must be made there).
  void in_namespace(const std::function<void()>& fn) const;
  bool running() const { return cmd_ && cmd_->running(); }
  std::string output_so_far() const { return cmd_ ? cmd_->output_so_far() : std::string(); }
  // SIGINT, then waits up to timeout for the exit; exit code and all output.
  CommandResult stop(std::chrono::milliseconds timeout = std::chrono::seconds(15));

 private:
  ProgramServer() = default;
  std::unique_ptr<NetNs> ns_;  // declared first: destroyed after the program is gone
  std::unique_ptr<BackgroundCommand> cmd_;
};

// The value of a "name value" counter line in a program's output, or nullopt.
std::optional<std::uint64_t> counter_value(const std::string& output, const std::string& name);

}  // namespace xtcp::test
