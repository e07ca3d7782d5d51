// The capture check of issue 3: xtcp-echo and xtcp-im write a pcap (--pcap) while kernel
// clients exchange requests and answers; the audit (ack_audit.h) then asserts that every
// request's ACK rode on its answer and that the server sent no separate pure ACK.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "stack/wire/ipv4.h"
#include "tests/interop/ack_audit.h"
#include "tests/interop/im_clients.h"
#include "tests/interop/program_server.h"

namespace xtcp::test {
namespace {

std::string temp_pcap(const char* name) {
  return "/tmp/xtcp-ack-capture-" + std::to_string(::getpid()) + "-" + name + ".pcap";
}

// Audits the pcap; keeps it (and says where) when the test has failed.
void expect_acks_on_answers(const std::string& pcap, std::uint16_t port, std::uint64_t min_requests) {
  std::uint32_t server_ip = 0;
  ASSERT_TRUE(wire::parse_ipv4(kProgramStackIp, &server_ip));
  AckAudit a;
  std::string err;
  ASSERT_TRUE(audit_acks(pcap, server_ip, port, &a, &err)) << err;
  std::printf("[ capture  ] %s: %s\n", pcap.c_str(), describe(a).c_str());
  EXPECT_GE(a.requests, min_requests) << describe(a);
  EXPECT_TRUE(a.clean()) << "capture kept at " << pcap << ": " << describe(a);
  if (::testing::Test::HasFailure()) {
    std::printf("[ capture  ] kept %s\n", pcap.c_str());
  } else {
    std::remove(pcap.c_str());
  }
}

TEST(AckCapture, EchoAnswersCarryTheAcks) {
  const std::string pcap = temp_pcap("echo");
  START_PROGRAM(server, XTCP_ECHO_BIN, "--port 7 --pcap " + pcap, "xtcp-echo: ");
  constexpr int kConns = 4;
  constexpr int kRounds = 50;
  server->in_namespace([&] {
    ImClients c;  // a line client is all an echo needs
    std::string err;
    ASSERT_TRUE(c.connect(kProgramStackIp, 7, kConns, &err)) << err;
    for (int r = 0; r < kRounds; ++r) {
      for (int i = 0; i < kConns; ++i) {
        c.send(i, "request " + std::to_string(r) + " on connection " + std::to_string(i));
      }
      ASSERT_TRUE(c.pump_until_answers(static_cast<std::size_t>(r + 1), std::chrono::seconds(10)))
          << "round " << r;
    }
    for (int i = 0; i < kConns; ++i) {
      ASSERT_EQ(c.at(i).answers.size(), static_cast<std::size_t>(kRounds));
      for (int r = 0; r < kRounds; ++r) {
        EXPECT_EQ(c.at(i).answers[r], "request " + std::to_string(r) + " on connection " + std::to_string(i));
      }
      c.shutdown_write(i);
    }
    ASSERT_TRUE(c.pump_until([&] { return c.eofs() == kConns; }, std::chrono::seconds(10)))
        << "the server did not close after the clients' FIN";
    // Let the last ACKs of our FIN-ACKs reach the server before it stops (bounded).
    c.pump_until([] { return false; }, std::chrono::milliseconds(200));
  });
  const CommandResult r = server->stop();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(counter_value(r.output, "echo.accepted"), static_cast<std::uint64_t>(kConns)) << r.output;
  expect_acks_on_answers(pcap, 7, kConns * kRounds);
}

// Two users ping-pong messages, LIST, QUIT and a half-close, against a running xtcp-im.
void im_ack_conversation(const ProgramServer& server, int rounds) {
  server.in_namespace([&] {
    ImClients c;
    std::string err;
    ASSERT_TRUE(c.connect(kProgramStackIp, 5222, 2, &err)) << err;
    auto ask = [&](int i, const std::string& line, const std::string& want) {
      const std::size_t before = c.at(i).answers.size();
      c.send(i, line);
      ASSERT_TRUE(c.pump_until([&] { return c.at(i).answers.size() > before; }, std::chrono::seconds(10)))
          << line;
      EXPECT_EQ(c.at(i).answers.back(), want) << line;
    };
    ask(0, "LOGIN alice", "OK");
    ask(1, "LOGIN bob", "OK");
    for (int r = 0; r < rounds; ++r) {
      ask(0, "MSG bob ping " + std::to_string(r), "OK");
      ask(1, "MSG alice pong " + std::to_string(r), "OK");
    }
    ask(0, "LIST", "USERS alice bob");
    ask(1, "QUIT", "BYE");
    c.shutdown_write(0);
    ASSERT_TRUE(c.pump_until([&] { return c.eofs() == 2; }, std::chrono::seconds(10)));
    EXPECT_EQ(c.at(1).from.size(), static_cast<std::size_t>(rounds));
    EXPECT_EQ(c.at(0).from.size(), static_cast<std::size_t>(rounds));
    c.pump_until([] { return false; }, std::chrono::milliseconds(200));
  });
}

TEST(AckCapture, ImAnswersCarryTheAcks) {
  const std::string pcap = temp_pcap("im");
  START_PROGRAM(server, XTCP_IM_BIN, "--port 5222 --pcap " + pcap, "xtcp-im: ");
  constexpr int kRounds = 30;
  im_ack_conversation(*server, kRounds);
  const CommandResult r = server->stop();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_acks_on_answers(pcap, 5222, 2 * kRounds + 4);
}

// Forwarding mode: the answers come from xtcp-backend through NetPDU, and still carry the
// clients' ACKs (ackd = the request bytes each backend answer covers).
TEST(AckCapture, ImForwardedAnswersCarryTheAcks) {
  const std::string pcap = temp_pcap("im-forward");
  const Companion backend{std::string(XTCP_BACKEND_BIN) + " --listen 127.0.0.1:7400", "xtcp-backend: listening"};
  START_PROGRAM_WITH(server, XTCP_IM_BIN, "--port 5222 --backend 127.0.0.1:7400 --pcap " + pcap, "xtcp-im: ",
                     backend);
  constexpr int kRounds = 30;
  im_ack_conversation(*server, kRounds);
  const CommandResult r = server->stop();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(counter_value(r.output, "im.answers"), static_cast<std::uint64_t>(2 * kRounds + 4)) << r.output;
  expect_acks_on_answers(pcap, 5222, 2 * kRounds + 4);
}

}  // namespace
}  // namespace xtcp::test
