// A burst from 20,000 connections of the kernel's own TCP (xtcp-kernel-clients, two worker
// processes) against xtcp-echo through its TUN device: every echo comes back right, the
// device's queue (sized for the stack's connections) drops nothing, and the stack resends
// no answer on its retransmission timer (the clients' ACKs that wait in its own input are
// read before its timers fire), so no client waits on a backoff for a lost packet.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <regex>
#include <string>
#include <thread>

#include "tests/interop/program_server.h"

namespace xtcp::test {
namespace {

// Every value of "key": N in the JSON text.
std::vector<long long> json_values(const std::string& json, const std::string& key) {
  std::vector<long long> out;
  const std::regex re("\"" + key + "\":(-?[0-9]+)");
  for (auto it = std::sregex_iterator(json.begin(), json.end(), re); it != std::sregex_iterator(); ++it) {
    out.push_back(std::stoll((*it)[1].str()));
  }
  return out;
}

TEST(KernelBurst, TwentyThousandKernelClientsAllAnsweredWithoutDropsOrResends) {
  constexpr int kClients = 20'000;
  START_PROGRAM(server, XTCP_ECHO_BIN, "--port 7 --max-connections 30000", "xtcp-echo: ");
  const CommandResult qlen = server->ns().run("cat /sys/class/net/xtcp0/tx_queue_len");
  EXPECT_EQ(qlen.output, "240000\n") << "the queue is sized for --max-connections";
  const CommandResult clients = server->ns().run(
      "ip route add local 198.18.64.0/18 dev lo && " + std::string(XTCP_KERNEL_CLIENTS_BIN) +
          " --target 198.18.0.2:7 --src 198.18.64.1/18 --connections " + std::to_string(kClients) +
          " --ramp 10000 --bursts 2 --interval 1s --timeout 120s --tun-dev xtcp0 --json -",
      std::chrono::seconds(400));
  ASSERT_EQ(clients.exit_code, 0) << clients.output;
  EXPECT_NE(clients.output.find("\"ok\":true"), std::string::npos) << clients.output;
  const auto answered = json_values(clients.output, "answered");
  ASSERT_EQ(answered.size(), 2u) << clients.output;
  for (const long long a : answered) {
    EXPECT_EQ(a, kClients) << clients.output;
  }
  for (const long long d : json_values(clients.output, "tun_queue_drops")) {
    EXPECT_EQ(d, 0) << "the TUN queue dropped packets:\n" << clients.output;
  }
  ASSERT_EQ(server->signal(SIGUSR1), 0);
  std::string counters;
  for (int i = 0; i < 100 && !counter_value(counters, "tcp.rto_expirations"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    counters = server->output_so_far();
  }
  ASSERT_TRUE(counter_value(counters, "tcp.rto_expirations")) << counters;
  EXPECT_EQ(counter_value(counters, "tcp.rto_expirations").value_or(~0ull), 0u)
      << "answers were resent on the retransmission timer:\n" << clients.output << counters;
  EXPECT_EQ(counter_value(counters, "tcp.passive_opens").value_or(0), static_cast<std::uint64_t>(kClients));
  const CommandResult r = server->stop();
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace
}  // namespace xtcp::test
