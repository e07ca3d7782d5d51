// ProgramServer: NetNs::start of the program, a bounded wait for its start-up line, and
// SIGINT at the end; see program_server.h.
#include "tests/interop/program_server.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
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

SplitResult run_split(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  SplitResult r;
  char err_path[] = "/tmp/xtcp-stderr-XXXXXX";
  const int fd = ::mkstemp(err_path);
  if (fd < 0) {
    r.err = "mkstemp failed";
    return r;
  }
  ::close(fd);
  std::vector<std::string> sh = {"sh", "-c", "exec \"$0\" \"$@\" 2>" + std::string(err_path)};
  sh.insert(sh.end(), argv.begin(), argv.end());
  const CommandResult c = run_command(sh, timeout);
  r.exit_code = c.exit_code;
  r.out = c.output;
  if (std::FILE* f = std::fopen(err_path, "r")) {
    char buf[4096];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
      r.err.append(buf, n);
    }
    std::fclose(f);
  }
  std::remove(err_path);
  return r;
}

void expect_usage_errors(const std::vector<std::vector<std::string>>& command_lines) {
  for (const auto& argv : command_lines) {
    const SplitResult r = run_split(argv);
    std::string line;
    for (const auto& a : argv) {
      line += a + " ";
    }
    const std::string program = argv[0].substr(argv[0].rfind('/') + 1);
    EXPECT_EQ(r.exit_code, 2) << line << "\n" << r.out << r.err;
    EXPECT_EQ(r.out, "") << line << ": stdout must stay empty";
    // Exactly two lines: what is wrong, then the hint.
    const std::size_t first_end = r.err.find('\n');
    ASSERT_NE(first_end, std::string::npos) << line << "\n" << r.err;
    EXPECT_EQ(r.err.rfind(program + ": ", 0), 0u) << line << "\n" << r.err;
    const std::string hint = r.err.substr(first_end + 1);
    EXPECT_NE(hint.find(program + " --help"), std::string::npos) << line << "\n" << r.err;
    EXPECT_EQ(std::count(hint.begin(), hint.end(), '\n'), 1) << line << "\n" << r.err;
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

std::vector<std::string> split_text(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string part; std::getline(in, part, sep);) {
    out.push_back(part);
  }
  return out;
}

}  // namespace xtcp::test
