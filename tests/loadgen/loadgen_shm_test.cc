// The built programs over a shared-memory link: xtcp-echo / xtcp-im --shm NAME serve, and
// xtcp-loadgen --shm NAME attaches from another process. Nothing touches a network device,
// so neither root nor a namespace is needed. Correctness only: no timing is asserted (the
// waits below are generous limits on a hang, not measurements).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "stack/netif/shm_link.h"

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Starts argv with stdout and stderr into out_path; returns the pid (or -1).
pid_t spawn(const std::vector<std::string>& args, const std::string& out_path) {
  const pid_t pid = ::fork();
  if (pid != 0) {
    return pid;
  }
  const int fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || ::dup2(fd, STDOUT_FILENO) < 0 || ::dup2(fd, STDERR_FILENO) < 0) {
    ::_exit(127);
  }
  std::vector<char*> argv;
  for (const auto& a : args) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  ::execv(argv[0], argv.data());
  ::_exit(127);
}

// Waits for a child with a limit; -1 if it did not end (it is then killed).
int wait_exit(pid_t pid, std::chrono::seconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (true) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (r < 0 || std::chrono::steady_clock::now() > until) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// The number after "key": in the loadgen's JSON summary (the first occurrence after `after`).
long long json_number(const std::string& json, const std::string& after, const std::string& key) {
  std::size_t at = json.find("\"" + after + "\"");
  if (at == std::string::npos) {
    return -1;
  }
  at = json.find("\"" + key + "\":", at);
  if (at == std::string::npos) {
    return -1;
  }
  return std::stoll(json.substr(at + key.size() + 3));
}

struct PairRun {
  std::string server_out;
  std::string loadgen_out;
  std::string json;
  int loadgen_exit = -1;
  int server_exit = -1;
};

// The server on shm link `name` with `server_args`, then the load generator against it.
PairRun run_pair(const std::string& server_bin, std::vector<std::string> server_args, const std::string& name,
             const std::vector<std::string>& loadgen_args) {
  PairRun run;
  const std::string dir = ::testing::TempDir();
  const std::string server_log = dir + "/" + name + "-server.log";
  const std::string loadgen_log = dir + "/" + name + "-loadgen.log";
  const std::string json_path = dir + "/" + name + ".json";
  server_args.insert(server_args.begin(), server_bin);
  const pid_t server = spawn(server_args, server_log);
  if (server < 0) {
    return run;
  }
  // Ready once its start-up line is out: the link is created and the port listens.
  const std::string ready = " on shm:" + name;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (read_file(server_log).find(ready) == std::string::npos && std::chrono::steady_clock::now() < until) {
    int status = 0;
    if (::waitpid(server, &status, WNOHANG) == server) {
      run.server_out = read_file(server_log);
      return run;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::vector<std::string> args = {XTCP_LOADGEN_BIN, "--shm", name, "--json", json_path, "--progress", "10s"};
  args.insert(args.end(), loadgen_args.begin(), loadgen_args.end());
  const pid_t loadgen = spawn(args, loadgen_log);
  run.loadgen_exit = loadgen < 0 ? -1 : wait_exit(loadgen, std::chrono::seconds(300));
  ::kill(server, SIGTERM);
  run.server_exit = wait_exit(server, std::chrono::seconds(60));
  run.server_out = read_file(server_log);
  run.loadgen_out = read_file(loadgen_log);
  run.json = read_file(json_path);
  std::remove(server_log.c_str());
  std::remove(loadgen_log.c_str());
  std::remove(json_path.c_str());
  return run;
}

void expect_clean(const PairRun& r, const std::string& name) {
  EXPECT_EQ(r.loadgen_exit, 0) << r.loadgen_out << "\nserver:\n" << r.server_out;
  EXPECT_NE(r.json.find("\"attach\": \"shm\""), std::string::npos) << r.json;
  EXPECT_EQ(json_number(r.json, "connections", "established"), 2000) << r.json;
  EXPECT_EQ(json_number(r.json, "connections", "failed"), 0) << r.json;
  EXPECT_EQ(json_number(r.json, "messages", "lost"), 0) << r.json;
  EXPECT_EQ(json_number(r.json, "stopped_early", "errors"), 0) << r.json;
  EXPECT_GT(json_number(r.json, "messages", "answered"), 0) << r.json;
  EXPECT_EQ(r.server_exit, 0) << r.server_out;
  // The server removed its region and FIFOs when it stopped.
  struct stat st {};
  EXPECT_NE(::stat(xtcp::ShmLink::region_path(name).c_str(), &st), 0);
  EXPECT_NE(::stat(xtcp::ShmLink::fifo_path(name, 0).c_str(), &st), 0);
}

std::string unique_name(const char* what) { return std::string("lg") + std::to_string(::getpid()) + what; }

TEST(LoadgenShm, EchoServerOverSharedMemory) {
  const std::string name = unique_name("echo");
  const PairRun r = run_pair(XTCP_ECHO_BIN, {"--shm", name, "--ip", "198.18.0.2"}, name,
                         {"--target", "198.18.0.2:7", "--workload", "echo", "--connections", "2000", "--duration",
                          "5s"});
  expect_clean(r, name);
}

TEST(LoadgenShm, ImServerOverSharedMemory) {
  const std::string name = unique_name("im");
  const PairRun r = run_pair(XTCP_IM_BIN, {"--shm", name, "--ip", "198.18.0.2", "--port", "7000", "--presence", "watched"}, name,
                         {"--target", "198.18.0.2:7000", "--workload", "im", "--connections", "2000", "--duration",
                          "5s"});
  expect_clean(r, name);
  EXPECT_EQ(json_number(r.json, "messages", "duplicated"), 0) << r.json;
  EXPECT_EQ(json_number(r.json, "messages", "reordered"), 0) << r.json;
}

TEST(LoadgenShm, AttachWithoutServerFails) {
  const std::string dir = ::testing::TempDir();
  const std::string log = dir + "/lg-noserver.log";
  const pid_t pid = spawn({XTCP_LOADGEN_BIN, "--shm", unique_name("none"), "--target", "198.18.0.2:7"}, log);
  EXPECT_EQ(wait_exit(pid, std::chrono::seconds(60)), 1);
  const std::string out = read_file(log);
  EXPECT_NE(out.find("no shared-memory link"), std::string::npos) << out;
  std::remove(log.c_str());
}

TEST(LoadgenShm, TunAndShmTogetherIsAUsageError) {
  const std::string dir = ::testing::TempDir();
  const std::string log = dir + "/lg-both.log";
  const pid_t pid = spawn({XTCP_LOADGEN_BIN, "--shm", "x", "--tun", "t0", "--target", "198.18.0.2:7"}, log);
  EXPECT_EQ(wait_exit(pid, std::chrono::seconds(60)), 2);
  std::remove(log.c_str());
}

}  // namespace
