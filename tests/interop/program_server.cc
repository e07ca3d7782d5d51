// ProgramServer: NetNs::start of the program, a bounded wait for its start-up line, and
// SIGINT at the end; see program_server.h.
#include "tests/interop/program_server.h"

#include <gtest/gtest.h>

#include <csignal>
#include <sstream>
#include <thread>

namespace xtcp::test {

namespace {

// Polls the program's output for its start-up line: bounded to 10 s.
bool wait_ready(BackgroundCommand& cmd, const std::string& ready_prefix, std::string* error) {
  for (int i = 0; i < 500; ++i) {
    const std::string out = cmd.output_so_far();
    if (out.rfind(ready_prefix, 0) == 0 || out.find("\n" + ready_prefix) != std::string::npos) {
      return true;
    }
    if (!cmd.running()) {
      *error = "the program exited at start-up: " + cmd.wait().output;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  *error = "no start-up line \"" + ready_prefix + "\" within 10 s: " + cmd.output_so_far();
  return false;
}

}  // namespace

std::unique_ptr<ProgramServer> ProgramServer::start(const std::string& binary, const std::string& args,
                                                    const std::string& ready_prefix,
                                                    std::string* skip_reason, std::string* error,
                                                    const std::optional<Companion>& companion) {
  if (auto why = netns_unavailable_reason()) {
    *skip_reason = *why;
    return nullptr;
  }
  std::unique_ptr<ProgramServer> s(new ProgramServer());
  s->ns_ = NetNs::create(error);
  if (!s->ns_) {
    return nullptr;
  }
  if (companion) {
    s->companion_ = s->ns_->start("exec " + companion->command, error);
    if (!s->companion_ || !wait_ready(*s->companion_, companion->ready_prefix, error)) {
      return nullptr;
    }
  }
  const std::string command = "exec " + binary + " --tun xtcp0 --ip " + kProgramStackIp +
                              " --kernel-ip " + kProgramKernelCidr + " " + args;
  s->cmd_ = s->ns_->start(command, error);
  if (!s->cmd_ || !wait_ready(*s->cmd_, ready_prefix, error)) {
    return nullptr;
  }
  return s;
}

ProgramServer::~ProgramServer() {
  cmd_.reset();  // kills the programs if they still run
  companion_.reset();
  ns_.reset();
}

void ProgramServer::in_namespace(const std::function<void()>& fn) const {
  std::string err;
  if (ns_->run_in_thread(fn, &err) < 0) {
    ADD_FAILURE() << "cannot enter namespace: " << err;
  }
}

CommandResult ProgramServer::stop(std::chrono::milliseconds timeout) {
  if (!cmd_) {
    return {};
  }
  cmd_->signal(SIGINT);
  return cmd_->wait(timeout);
}

CommandResult ProgramServer::stop_companion(std::chrono::milliseconds timeout) {
  if (!companion_) {
    return {};
  }
  companion_->signal(SIGINT);
  return companion_->wait(timeout);
}

void expect_usage_errors(const std::vector<std::vector<std::string>>& command_lines) {
  for (const auto& argv : command_lines) {
    const CommandResult r = run_command(argv, std::chrono::seconds(10));
    std::string line;
    for (const auto& a : argv) {
      line += a + " ";
    }
    EXPECT_EQ(r.exit_code, 2) << line << "\n" << r.output;
    EXPECT_NE(r.output.find("usage:"), std::string::npos) << line << "\n" << r.output;
  }
}

std::optional<std::uint64_t> counter_value(const std::string& output, const std::string& name) {
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > name.size() && line.compare(0, name.size(), name) == 0 &&
        line[name.size()] == ' ') {
      try {
        return std::stoull(line.substr(name.size() + 1));
      } catch (...) {
        return std::nullopt;
      }
    }
  }
  return std::nullopt;
}

}  // namespace xtcp::test
