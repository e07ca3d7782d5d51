// xtcp-im in forwarding mode (--backend): kernel clients in a namespace talk to xtcp-im over
// TUN; xtcp-im forwards their request lines in NetPDUs to xtcp-backend (in the same
// namespace, on its loopback or a Unix socket) and returns the answers with the clients'
// ACKs on them. Both NetPDU variants, the protocol's error answers, a paused backend
// (backpressure: nothing lost, nothing unbounded), a lost backend, and bad flags.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/interop/im_chat.h"
#include "tests/interop/im_clients.h"
#include "tests/interop/program_server.h"

namespace xtcp::test {
namespace {

constexpr const char* kBackendTcp = "127.0.0.1:7400";  // the namespace's own loopback

std::string unix_socket_path(const char* name) {
  return "/tmp/xtcp-forward-" + std::to_string(::getpid()) + "-" + name + ".sock";
}

Companion backend_on(const std::string& where, const std::string& extra = "") {
  const bool is_unix = where.find('/') != std::string::npos;
  return Companion{std::string(XTCP_BACKEND_BIN) + (is_unix ? " --unix " : " --listen ") + where + " " + extra,
                   "xtcp-backend: listening"};
}

std::uint64_t counter(const std::string& output, const std::string& name) {
  const auto v = counter_value(output, name);
  EXPECT_TRUE(v.has_value()) << "no counter " << name << " in:\n" << output;
  return v.value_or(~0ull);
}

// Stops both programs and checks what a clean chat of `plan` must leave in their counters.
// Stops xtcp-im, then the backend once it has seen the front end's transport end (bounded):
// users still logged in are logged out then, and counted.
std::pair<CommandResult, CommandResult> stop_both(ProgramServer& server) {
  CommandResult im = server.stop();
  auto transport_ended = [&] {
    const std::string out = server.companion_output_so_far();
    return out.find(" closed, ") != std::string::npos || out.find(" failed: ") != std::string::npos;
  };
  for (int i = 0; i < 500 && !transport_ended(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return {std::move(im), server.stop_companion()};
}

void expect_clean_chat(ProgramServer& server, const ChatPlan& plan) {
  const auto [im, be] = stop_both(server);
  ASSERT_EQ(im.exit_code, 0) << im.output;
  ASSERT_EQ(be.exit_code, 0) << be.output;
  const auto n = static_cast<std::uint64_t>(plan.clients);
  const auto messages = n * static_cast<std::uint64_t>(plan.messages);
  // The backend did the work...
  EXPECT_EQ(counter(be.output, "backend.logins"), n);
  EXPECT_EQ(counter(be.output, "backend.logouts"), n);
  EXPECT_EQ(counter(be.output, "backend.messages"), messages);
  EXPECT_EQ(counter(be.output, "backend.errors"), 0u);
  // ... every forwarded line got its answer, and every answer carried the client's ACK.
  const std::uint64_t lines = counter(im.output, "im.forwarded_lines");
  EXPECT_EQ(lines, n + 2 + messages) << "LOGIN, LIST x2, MSG";
  EXPECT_EQ(counter(im.output, "im.answers"), lines);
  EXPECT_EQ(counter(im.output, "im.resets"), 0u);
  EXPECT_EQ(counter(im.output, "im.slow_consumers"), 0u);
  EXPECT_EQ(counter(im.output, "im.orphans"), 0u);
  EXPECT_EQ(counter(im.output, "im.client_closes"), n);
  EXPECT_EQ(counter(im.output, "pool.acks_alone"), 0u) << im.output;
  EXPECT_GE(counter(im.output, "pool.acks_on_answers"), 2 * n);
  // Aggregation happened.
  const std::uint64_t tlpdus = counter(im.output, "netpdu.tx_tlpdus");
  const std::uint64_t writes = counter(im.output, "netpdu.tx_writev_calls");
  // OPEN and CLOSE per client, and DATA per xtcp_recv (which may hold several lines).
  EXPECT_GE(tlpdus, 3 * n);
  EXPECT_LE(tlpdus, lines + 2 * n);
  // How many per NetPDU depends on how requests arrive per loop turn (bench_netpdu measures
  // it); that several share NetPDUs and gather writes does not.
  EXPECT_LT(counter(im.output, "netpdu.tx_pdus") * 2, tlpdus);
  EXPECT_LT(writes, tlpdus);
  if (::testing::Test::HasFailure()) {  // show both sides' counters
    std::printf("xtcp-im:\n%s\nxtcp-backend:\n%s\n", im.output.c_str(), be.output.c_str());
  }
  std::printf("[ forward  ] %llu TLPDUs in %llu NetPDUs, %llu writev calls; %llu answers, %llu ACKs on answers\n",
              static_cast<unsigned long long>(tlpdus),
              static_cast<unsigned long long>(counter(im.output, "netpdu.tx_pdus")),
              static_cast<unsigned long long>(writes), static_cast<unsigned long long>(lines),
              static_cast<unsigned long long>(counter(im.output, "pool.acks_on_answers")));
}

TEST(ImForward, ThousandKernelClientsChatThroughTheBackend) {
  START_PROGRAM_WITH(server, XTCP_IM_BIN, std::string("--port 5222 --backend ") + kBackendTcp,
                     "xtcp-im: ", backend_on(kBackendTcp));
  EXPECT_NE(server->output_so_far().find("(variant 1)"), std::string::npos) << server->output_so_far();
  const ChatPlan plan;
  server->in_namespace([&] { chat(plan); });
  expect_clean_chat(*server, plan);
}

TEST(ImForward, ChatThroughVariantTwoOverUnixSockets) {
  const std::string path = unix_socket_path("v2");
  START_PROGRAM_WITH(server, XTCP_IM_BIN, "--port 5222 --backend-data 3 --backend " + path, "xtcp-im: ",
                     backend_on(path));
  EXPECT_NE(server->output_so_far().find("(variant 2)"), std::string::npos) << server->output_so_far();
  ChatPlan plan;
  plan.clients = 300;
  server->in_namespace([&] { chat(plan); });
  expect_clean_chat(*server, plan);
}

TEST(ImForward, ErrorsLimitsAndQuit) {
  START_PROGRAM_WITH(server, XTCP_IM_BIN, std::string("--port 5222 --backend ") + kBackendTcp, "xtcp-im: ",
                     backend_on(kBackendTcp));
  server->in_namespace([&] { errors_limits_and_quit(); });
  const auto [im, be] = stop_both(*server);
  EXPECT_EQ(im.exit_code, 0) << im.output;
  EXPECT_EQ(counter(im.output, "im.backend_closes"), 1u) << "QUIT: the backend ends the session";
  EXPECT_EQ(counter(im.output, "im.resets"), 1u) << "the unframeable line";
  EXPECT_EQ(counter(be.output, "backend.logins"), 2u) << be.output;
}

// The backend stops (SIGSTOP) while 200 clients send 40,000 requests. xtcp-im's link to it
// fills, xtcp-im stops reading clients (their bytes wait unacknowledged in the pool, the
// ACK deadline keeps them from being resent) instead of queueing without bound; once the
// backend continues, every message arrives exactly once and in order.
TEST(ImForward, PausedBackendThrottlesClientsAndLosesNothing) {
  const std::string path = unix_socket_path("paused");
  START_PROGRAM_WITH(server, XTCP_IM_BIN, "--port 5222 --pool-size 67108864 --backend " + path, "xtcp-im: ",
                     backend_on(path));
  constexpr int kClients = 200;
  constexpr int kMessages = 200;
  const std::string filler(120, 'z');
  server->in_namespace([&] {
    ImClients c;
    std::string err;
    ASSERT_TRUE(c.connect(kProgramStackIp, kImPort, kClients, &err)) << err;
    for (int i = 0; i < kClients; ++i) {
      c.send(i, "LOGIN " + im_user(i));
    }
    ASSERT_TRUE(c.pump_until([&] { return c.answers_received() >= kClients; }, std::chrono::seconds(60)));
    ASSERT_TRUE(c.pump_until([&] { return c.online_received() >= kClients * (kClients - 1) / 2; },
                             std::chrono::seconds(60)));
    const std::uint64_t answers_before = c.answers_received();
    ASSERT_EQ(server->signal_companion(SIGSTOP), 0);
    for (int k = 0; k < kMessages; ++k) {
      for (int i = 0; i < kClients; ++i) {
        c.send(i, "MSG " + im_user((i + 1) % kClients) + " " + std::to_string(k) + " " + filler);
      }
    }
    c.pump_until([] { return false; }, std::chrono::milliseconds(2500));
    EXPECT_EQ(c.answers_received(), answers_before) << "answers while the backend was stopped";
    ASSERT_EQ(server->signal_companion(SIGCONT), 0);
    const std::uint64_t total = static_cast<std::uint64_t>(kClients) * kMessages;
    ASSERT_TRUE(c.pump_until(
        [&] { return c.answers_received() >= answers_before + total && c.from_received() >= total; },
        std::chrono::seconds(120)))
        << (c.answers_received() - answers_before) << " of " << total << " answers, " << c.from_received()
        << " of " << total << " messages";
    for (int i = 0; i < kClients; ++i) {
      const ImClient& ci = c.at(i);
      ASSERT_EQ(ci.from.size(), static_cast<std::size_t>(kMessages)) << "client " << i;
      for (int k = 0; k < kMessages; ++k) {
        ASSERT_EQ(ci.from[k].first, im_user((i + kClients - 1) % kClients));
        ASSERT_EQ(ci.from[k].second, std::to_string(k) + " " + filler) << "client " << i << " message " << k;
      }
    }
    c.pump_until([] { return false; }, std::chrono::milliseconds(200));
    EXPECT_EQ(c.from_received(), total) << "duplicates";
  });
  const CommandResult im = server->stop();
  ASSERT_EQ(im.exit_code, 0) << im.output;
  if (::testing::Test::HasFailure()) {
    std::printf("%s\n", im.output.c_str());
  }
  EXPECT_GT(counter(im.output, "im.stalls"), 0u) << "the backend link never refused: no backpressure tested";
  EXPECT_EQ(counter(im.output, "pool.rx_dropped_full"), 0u) << "the pool overflowed: the backend link should have throttled reading first";
  EXPECT_EQ(counter(im.output, "im.resets"), 0u);
  EXPECT_EQ(counter(im.output, "im.slow_consumers"), 0u);
  const CommandResult be = server->stop_companion();
  EXPECT_EQ(counter(be.output, "backend.messages"), static_cast<std::uint64_t>(kClients) * kMessages);
}

// Fifty clients log in, then pipeline 20 messages each and reset at once (SO_LINGER 0) while
// their requests and answers are in flight between xtcp-im and the backend. Every session ends at
// the backend (their users are logged out), answers for the gone clients are dropped, and
// what the watcher received is, per sender, an in-order prefix of what was sent.
TEST(ImForward, ClientsResettingMidConversationLeaveNothingBehind) {
  START_PROGRAM_WITH(server, XTCP_IM_BIN, std::string("--port 5222 --backend ") + kBackendTcp, "xtcp-im: ",
                     backend_on(kBackendTcp));
  constexpr int kSenders = 50;
  constexpr int kMessages = 20;
  server->in_namespace([&] {
    ImClients c;
    std::string err;
    ASSERT_TRUE(c.connect(kProgramStackIp, kImPort, kSenders + 1, &err)) << err;
    c.send(0, "LOGIN watcher");
    ASSERT_TRUE(c.pump_until([&] { return !c.at(0).answers.empty(); }, std::chrono::seconds(10)));
    c.at(0).answers.clear();
    for (int i = 1; i <= kSenders; ++i) {
      c.send(i, "LOGIN " + im_user(i));
    }
    ASSERT_TRUE(c.pump_until([&] { return c.answers_received() >= kSenders + 1; }, std::chrono::seconds(10)));
    for (int i = 1; i <= kSenders; ++i) {
      for (int k = 0; k < kMessages; ++k) {
        c.send(i, "MSG watcher " + std::to_string(k));
      }
    }
    ASSERT_TRUE(c.pump_until(
        [&] {
          for (int i = 1; i <= kSenders; ++i) {
            if (!c.at(i).out.empty()) {
              return false;
            }
          }
          return true;
        },
        std::chrono::seconds(10)));
    for (int i = 1; i <= kSenders; ++i) {
      const linger abort_on_close{1, 0};
      ASSERT_EQ(::setsockopt(c.at(i).fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close), 0);
      ::close(c.at(i).fd);
      c.at(i).fd = -1;
      c.at(i).eof = true;
    }
    // Bounded: ask LIST until only the watcher is left.
    std::string users;
    for (int attempt = 0; attempt < 100 && users != "USERS watcher"; ++attempt) {
      c.send(0, "LIST");
      ASSERT_TRUE(c.pump_until([&] { return !c.at(0).answers.empty(); }, std::chrono::seconds(10)));
      users = c.at(0).answers.front();
      c.at(0).answers.pop_front();
      if (users != "USERS watcher") {
        c.pump_until([] { return false; }, std::chrono::milliseconds(100));
      }
    }
    EXPECT_EQ(users, "USERS watcher");
    std::map<std::string, int> next;  // sender -> the message number expected next
    for (const auto& [from, text] : c.at(0).from) {
      EXPECT_EQ(text, std::to_string(next[from])) << "from " << from;
      ++next[from];
    }
    c.shutdown_write(0);
    ASSERT_TRUE(c.pump_until([&] { return c.at(0).eof; }, std::chrono::seconds(10)));
  });
  const auto [im, be] = stop_both(*server);
  EXPECT_EQ(im.exit_code, 0) << im.output;
  EXPECT_EQ(counter(im.output, "im.open"), 0u) << im.output;
  EXPECT_EQ(counter(im.output, "im.resets") + counter(im.output, "im.client_closes"),
            static_cast<std::uint64_t>(kSenders) + 1);
  EXPECT_EQ(counter(be.output, "backend.logins"), static_cast<std::uint64_t>(kSenders) + 1) << be.output;
  EXPECT_EQ(counter(be.output, "backend.logouts"), static_cast<std::uint64_t>(kSenders) + 1) << be.output;
}

// The backend dies: its sessions are gone, so xtcp-im closes every client and exits 1
// saying why (a supervisor restarts the pair).
TEST(ImForward, LostBackendClosesClientsAndExits) {
  START_PROGRAM_WITH(server, XTCP_IM_BIN, std::string("--port 5222 --backend ") + kBackendTcp, "xtcp-im: ",
                     backend_on(kBackendTcp));
  server->in_namespace([&] {
    ImClients c;
    std::string err;
    ASSERT_TRUE(c.connect(kProgramStackIp, kImPort, 5, &err)) << err;
    for (int i = 0; i < 5; ++i) {
      c.send(i, "LOGIN " + im_user(i));
    }
    ASSERT_TRUE(c.pump_until([&] { return c.answers_received() >= 5; }, std::chrono::seconds(10)));
    ASSERT_EQ(server->signal_companion(SIGKILL), 0);
    EXPECT_TRUE(c.pump_until([&] { return c.eofs() >= 5; }, std::chrono::seconds(10)))
        << c.eofs() << " of 5 clients closed";
  });
  // The program ends by itself; bounded wait.
  for (int i = 0; i < 250 && server->running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(server->running());
  const CommandResult im = server->stop();
  EXPECT_EQ(im.exit_code, 1) << im.output;
  EXPECT_NE(im.output.find("xtcp-im: backend lost"), std::string::npos) << im.output;
}

TEST(ImForward, UnreachableBackendExitsOne) {
  if (auto why = netns_unavailable_reason()) {
    GTEST_SKIP() << "interop test needs root and /dev/net/tun: " << *why;
  }
  std::string error;
  auto ns = NetNs::create(&error);
  ASSERT_TRUE(ns) << error;
  const CommandResult r = ns->run(std::string("exec ") + XTCP_IM_BIN + " --tun xtcp0 --ip " + kProgramStackIp +
                                  " --kernel-ip " + kProgramKernelCidr + " --port 5222 --backend " + kBackendTcp,
                                  std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("xtcp-im: backend 127.0.0.1:7400: "), std::string::npos) << r.output;
}

TEST(ImForward, BadBackendFlagsExitTwo) {
  const char* bin = XTCP_IM_BIN;
  const std::vector<std::vector<std::string>> cases = {
      {bin, "--tun", "x0", "--ip", "198.18.0.2", "--port", "1", "--backend", "127.0.0.1"},
      {bin, "--tun", "x0", "--ip", "198.18.0.2", "--port", "1", "--backend", "127.0.0.300:7400"},
      {bin, "--tun", "x0", "--ip", "198.18.0.2", "--port", "1", "--backend", "127.0.0.1:70000"},
      {bin, "--tun", "x0", "--ip", "198.18.0.2", "--port", "1", "--backend", ""},
      {bin, "--tun", "x0", "--ip", "198.18.0.2", "--port", "1", "--backend-data", "2"},
      {bin, "--tun", "x0", "--ip", "198.18.0.2", "--port", "1", "--backend", "/tmp/s", "--backend-data", "65"},
      {bin, "--tun", "x0", "--ip", "198.18.0.2", "--port", "1", "--backend", "/" + std::string(120, 'p')},
      {XTCP_ECHO_BIN, "--tun", "x0", "--ip", "198.18.0.2", "--backend", "127.0.0.1:7400"},
  };
  expect_usage_errors(cases);
}

}  // namespace
}  // namespace xtcp::test
