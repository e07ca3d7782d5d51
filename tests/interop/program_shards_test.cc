// xtcp-echo and xtcp-im with --shards N: a supervisor and N shard processes, each with its
// own stack on its own queue of one multi-queue TUN device, with kernel clients in the
// test's namespace. The kernel spreads the connections over the queues; every echo must come
// back, every shard must have served some, users on different shards must reach each other,
// and a shard that dies must take the program down with exit status 1.
#include <gtest/gtest.h>

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/interop/im_chat.h"
#include "tests/interop/im_clients.h"
#include "tests/interop/program_server.h"

namespace xtcp::test {
namespace {

using std::chrono::seconds;

std::uint64_t counter(const std::string& output, const std::string& name) {
  const auto v = counter_value(output, name);
  EXPECT_TRUE(v.has_value()) << "no counter " << name << " in:\n" << output;
  return v.value_or(0);
}

// The pids of the supervisor's children (its shards and helpers), from /proc/<pid>/stat.
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) {
    return out;
  }
  while (const dirent* e = ::readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) {
      continue;
    }
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto paren = text.rfind(')');
    if (paren == std::string::npos) {
      continue;
    }
    std::istringstream rest(text.substr(paren + 1));
    std::string state;
    pid_t ppid = 0;
    if (rest >> state >> ppid && ppid == parent) {
      out.push_back(pid);
    }
  }
  ::closedir(proc);
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ProgramShards, EchoSpreadsTwoThousandKernelClientsOverTwoShards) {
  START_PROGRAM(server, XTCP_ECHO_BIN, "--shards 2", "xtcp-echo: 198.18.0.2:7 on xtcp0");
  EXPECT_NE(server->output_so_far().find("on xtcp0, 2 shards"), std::string::npos) << server->output_so_far();
  // The device has the two queues the shards attached.
  const CommandResult queues = server->ns().run("ls /sys/class/net/xtcp0/queues");
  EXPECT_NE(queues.output.find("rx-1"), std::string::npos) << queues.output;
  EXPECT_EQ(queues.output.find("rx-2"), std::string::npos) << queues.output;

  constexpr int kConns = 2000;
  server->in_namespace([&] {
    ImClients clients;
    std::string err;
    ASSERT_TRUE(clients.connect(kProgramStackIp, 7, kConns, &err)) << err;
    for (int i = 0; i < kConns; ++i) {
      clients.send(static_cast<std::size_t>(i), "echo " + std::to_string(i) + " " + std::string(static_cast<std::size_t>(i % 500), 'x'));
    }
    ASSERT_TRUE(clients.pump_until([&] { return clients.answers_received() >= kConns; }, std::chrono::seconds(60)))
        << clients.answers_received() << " of " << kConns << " echoes";
    for (int i = 0; i < kConns; ++i) {
      ImClient& c = clients.at(static_cast<std::size_t>(i));
      ASSERT_EQ(c.answers.size(), 1u) << "connection " << i;
      EXPECT_EQ(c.answers.front(), "echo " + std::to_string(i) + " " + std::string(static_cast<std::size_t>(i % 500), 'x'))
          << "connection " << i;
      clients.shutdown_write(static_cast<std::size_t>(i));
    }
    EXPECT_TRUE(clients.pump_until([&] { return clients.eofs() >= kConns; }, std::chrono::seconds(60)))
        << clients.eofs() << " of " << kConns << " connections closed by the server";
  });
  // SIGUSR1 to the supervisor alone: it asks the shards and prints the sums.
  ASSERT_EQ(::kill(server->pid(), SIGUSR1), 0);
  const std::string header = "xtcp-echo: counters at unix time ";
  auto block_done = [&](const std::string& out) {  // the print may reach the file in pieces
    const auto at = out.find(header);
    return at != std::string::npos && counter_value(out.substr(at), "echo.unechoed_at_close").has_value();
  };
  for (int i = 0; i < 500 && !block_done(server->output_so_far()); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const std::string so_far = server->output_so_far();
  ASSERT_NE(so_far.find(header), std::string::npos) << so_far;
  EXPECT_EQ(counter(so_far.substr(so_far.find(header)), "echo.accepted"), kConns) << so_far;
  const CommandResult r = server->stop();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("xtcp-echo: stopping: 2000 connections accepted"), std::string::npos) << r.output;
  EXPECT_EQ(counter(r.output, "echo.accepted"), kConns) << r.output;
  EXPECT_EQ(counter(r.output, "echo.client_closes"), kConns);
  EXPECT_EQ(counter(r.output, "echo.resets"), 0u);
  const std::uint64_t s0 = counter(r.output, "shard0.echo.accepted");
  const std::uint64_t s1 = counter(r.output, "shard1.echo.accepted");
  EXPECT_EQ(s0 + s1, kConns);
  EXPECT_GT(s0, 0u) << "the kernel gave shard 0 no flow";
  EXPECT_GT(s1, 0u) << "the kernel gave shard 1 no flow";
  EXPECT_EQ(counter(r.output, "shard0.echo.bytes_echoed") + counter(r.output, "shard1.echo.bytes_echoed"),
            counter(r.output, "echo.bytes_echoed"));
  std::printf("[ shards   ] shard 0 served %llu connections, shard 1 %llu\n", static_cast<unsigned long long>(s0),
              static_cast<unsigned long long>(s1));
}

// --stats-interval and SIGUSR1: the supervisor prints the sums of the shards' counters.
TEST(ProgramShards, EchoCountersAreSummedAcrossShards) {
  START_PROGRAM(server, XTCP_ECHO_BIN, "--shards 3 --stats-interval 200ms", "xtcp-echo: 198.18.0.2:7 on xtcp0");
  constexpr int kConns = 60;
  server->in_namespace([&] {
    ImClients clients;
    std::string err;
    ASSERT_TRUE(clients.connect(kProgramStackIp, 7, kConns, &err)) << err;
    for (int i = 0; i < kConns; ++i) {
      clients.send(static_cast<std::size_t>(i), "hello");
    }
    ASSERT_TRUE(clients.pump_until([&] { return clients.answers_received() >= kConns; }, std::chrono::seconds(30)));
  });
  // A periodic block after the echoes counts all of them.
  std::string out;
  const std::string header = "xtcp-echo: counters at unix time ";
  for (int i = 0; i < 250; ++i) {
    out = server->output_so_far();
    const auto at = out.rfind(header);
    const auto v = at == std::string::npos ? std::nullopt : counter_value(out.substr(at), "echo.accepted");
    if (v && *v == kConns) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const auto at = out.rfind(header);
  ASSERT_NE(at, std::string::npos) << out;
  EXPECT_EQ(counter(out.substr(at), "echo.accepted"), kConns) << out.substr(at);
  EXPECT_GE(counter(out.substr(at), "tcp.passive_opens"), static_cast<std::uint64_t>(kConns));
  // SIGUSR2 (--capture's toggle in a single process) must not end the supervisor.
  ASSERT_EQ(server->signal(SIGUSR2), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const CommandResult r = server->stop();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(counter(r.output, "echo.accepted"), kConns);
  EXPECT_EQ(counter(r.output, "shard0.echo.accepted") + counter(r.output, "shard1.echo.accepted") +
                counter(r.output, "shard2.echo.accepted"),
            kConns);
}

// Users log in through the shards; each sends to the next user on a ring, and every
// message must arrive; then LIST shows everyone. When two shards both have users, somewhere
// on the ring a user of one shard sends to a user of the other.
template <int kUsers>
void ring_chat(const ProgramServer& server) {
  server.in_namespace([&] {
    ImClients clients;
    std::string err;
    ASSERT_TRUE(clients.connect(kProgramStackIp, kImPort, kUsers, &err)) << err;
    for (int i = 0; i < kUsers; ++i) {
      clients.send(static_cast<std::size_t>(i), "LOGIN " + im_user(i));
    }
    ASSERT_TRUE(clients.pump_until([&] { return clients.answers_received() >= kUsers; }, std::chrono::seconds(60)));
    for (int i = 0; i < kUsers; ++i) {
      ImClient& c = clients.at(static_cast<std::size_t>(i));
      ASSERT_EQ(c.answers.size(), 1u) << im_user(i);
      EXPECT_EQ(c.answers.front(), "OK") << im_user(i);
      c.answers.clear();
    }
    for (int i = 0; i < kUsers; ++i) {
      clients.send(static_cast<std::size_t>(i), "MSG " + im_user((i + 1) % kUsers) + " ring " + std::to_string(i));
    }
    ASSERT_TRUE(clients.pump_until(
        [&] { return clients.answers_received() >= 2 * kUsers && clients.from_received() >= kUsers; },
        std::chrono::seconds(60)))
        << clients.from_received() << " of " << kUsers << " messages arrived";
    for (int i = 0; i < kUsers; ++i) {
      ImClient& c = clients.at(static_cast<std::size_t>(i));
      ASSERT_EQ(c.answers.size(), 1u) << im_user(i);
      EXPECT_EQ(c.answers.front(), "OK") << im_user(i);
      const int from = (i + kUsers - 1) % kUsers;
      ASSERT_EQ(c.from.size(), 1u) << im_user(i);
      EXPECT_EQ(c.from[0].first, im_user(from));
      EXPECT_EQ(c.from[0].second, "ring " + std::to_string(from));
      clients.send(static_cast<std::size_t>(i), "LIST");
    }
    ASSERT_TRUE(clients.pump_until([&] { return clients.answers_received() >= 3 * kUsers; }, std::chrono::seconds(60)));
    // Every shard sees every user: LIST is the backend's.
    const std::string list = clients.at(0).answers.back();
    EXPECT_EQ(list.rfind("USERS ", 0), 0u) << list;
    EXPECT_EQ(std::count(list.begin(), list.end(), ' '), kUsers) << list;
  });
}

// Both shards served some of the users: then the ring crossed shards.
void expect_both_shards_served(const std::string& output, int users) {
  const std::uint64_t s0 = counter(output, "shard0.im.accepted");
  const std::uint64_t s1 = counter(output, "shard1.im.accepted");
  EXPECT_EQ(s0 + s1, static_cast<std::uint64_t>(users));
  EXPECT_GT(s0, 0u) << "the kernel gave shard 0 no user";
  EXPECT_GT(s1, 0u) << "the kernel gave shard 1 no user";
  EXPECT_EQ(counter(output, "im.forwarded_lines"), 3u * static_cast<std::uint64_t>(users));
  EXPECT_EQ(counter(output, "im.answers"), 3u * static_cast<std::uint64_t>(users));
}

// Without --backend the supervisor runs the backend; users on different shards reach each other.
TEST(ProgramShards, ImUsersOnDifferentShardsReachEachOther) {
  START_PROGRAM(server, XTCP_IM_BIN, "--port 5222 --shards 2", "xtcp-im: 198.18.0.2:5222 on xtcp0");
  EXPECT_NE(server->output_so_far().find("users held by the supervisor's backend, 2 shards"), std::string::npos)
      << server->output_so_far();
  constexpr int kUsers = 200;
  ring_chat<kUsers>(*server);
  const CommandResult r = server->stop();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_both_shards_served(r.output, kUsers);
  EXPECT_EQ(counter(r.output, "backend.logins"), kUsers) << r.output;
  EXPECT_EQ(counter(r.output, "backend.messages"), kUsers);
}

// With --backend every shard forwards to that backend (here xtcp-backend on a Unix socket).
TEST(ProgramShards, ImShardsForwardToTheGivenBackend) {
  const std::string path = "/tmp/xtcp-shards-" + std::to_string(::getpid()) + ".sock";
  const Companion backend{std::string(XTCP_BACKEND_BIN) + " --unix " + path, "xtcp-backend: listening"};
  START_PROGRAM_WITH(server, XTCP_IM_BIN, "--port 5222 --shards 2 --backend " + path,
                     "xtcp-im: 198.18.0.2:5222 on xtcp0", backend);
  EXPECT_NE(server->output_so_far().find("forwarding to unix:" + path + " (variant 1), 2 shards"), std::string::npos)
      << server->output_so_far();
  constexpr int kUsers = 100;
  ring_chat<kUsers>(*server);
  const CommandResult r = server->stop();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_both_shards_served(r.output, kUsers);
  EXPECT_EQ(counter_value(r.output, "backend.logins"), std::nullopt) << "no backend of its own";
  const CommandResult be = server->stop_companion();
  EXPECT_EQ(be.exit_code, 0) << be.output;
  EXPECT_EQ(counter(be.output, "backend.logins"), kUsers) << be.output;
  EXPECT_EQ(counter(be.output, "backend.messages"), kUsers);
}

// The whole chat of im_chat.cc (every message exactly once and in order, presence, LIST,
// logouts) with 300 users spread over three shards.
TEST(ProgramShards, ImChatAcrossThreeShards) {
  START_PROGRAM(server, XTCP_IM_BIN, "--port 5222 --shards 3", "xtcp-im: 198.18.0.2:5222 on xtcp0");
  ChatPlan plan;
  plan.clients = 300;
  server->in_namespace([&] { chat(plan); });
  const CommandResult r = server->stop();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(counter(r.output, "backend.logins"), 300u) << r.output;
  EXPECT_EQ(counter(r.output, "backend.messages"), 300u * static_cast<std::uint64_t>(plan.messages));
  EXPECT_EQ(counter(r.output, "im.client_closes"), 300u);
  EXPECT_EQ(counter(r.output, "im.resets"), 0u);
}

// --duration is the supervisor's: it stops the shards and exits 0 with their counters.
TEST(ProgramShards, DurationStopsEveryShard) {
  START_PROGRAM(server, XTCP_ECHO_BIN, "--shards 2 --duration 1s --stats-json", "xtcp-echo: 198.18.0.2:7 on xtcp0");
  for (int i = 0; i < 500 && server->running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(server->running()) << "still running 10 s after a 1 s duration";
  const CommandResult r = server->stop();
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("xtcp-echo: stopping: 0 connections accepted"), std::string::npos) << r.output;
  // The last line is the JSON of the sums and of each shard.
  const std::string last = r.output.substr(r.output.rfind("{\"time\""));
  EXPECT_NE(last.find("\"echo.accepted\": 0"), std::string::npos) << last;
  EXPECT_NE(last.find("\"shard1.tcp.passive_opens\": 0"), std::string::npos) << last;
}

// A shard killed from outside: the supervisor stops the other shards and exits 1, saying which.
TEST(ProgramShards, DeadShardStopsTheProgram) {
  START_PROGRAM(server, XTCP_ECHO_BIN, "--shards 2", "xtcp-echo: 198.18.0.2:7 on xtcp0");
  const pid_t supervisor = server->pid();
  const std::vector<pid_t> shards = children_of(supervisor);
  ASSERT_EQ(shards.size(), 2u) << "pid " << supervisor;
  ASSERT_EQ(::kill(shards[1], SIGKILL), 0);
  for (int i = 0; i < 500 && server->running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(server->running()) << "the supervisor must exit once a shard died";
  const CommandResult r = server->stop();
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(" (pid " + std::to_string(shards[1]) + ") was killed by signal 9"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("xtcp-echo: shard "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("; stopping the others"), std::string::npos) << r.output;
  EXPECT_NE(::kill(shards[0], 0), 0) << "shard 0 must be gone";
}

// --shards with --shm, out of range, or with --presence: exit 2 with a message, nothing runs.
TEST(ProgramShards, BadCombinationsExitTwo) {
  const std::string echo = XTCP_ECHO_BIN;
  const std::string im = XTCP_IM_BIN;
  expect_usage_errors({
      {echo, "--shm", "s0", "--ip", "198.18.0.2", "--shards", "2"},
      {im, "--shm", "s0", "--ip", "198.18.0.2", "--port", "5222", "--shards", "2"},
      {echo, "--tun", "x0", "--ip", "198.18.0.2", "--shards", "65"},
      {im, "--tun", "x0", "--ip", "198.18.0.2", "--port", "5222", "--shards", "2", "--presence", "all"},
  });
  const SplitResult r = run_split({echo, "--shm", "s0", "--ip", "198.18.0.2", "--shards", "2"});
  EXPECT_NE(r.err.find("--shards: a shared-memory link has one queue"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace xtcp::test
