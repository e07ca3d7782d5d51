// xtcp-echo --io uring (UringTunLink under the runtime, a pcap tap on top) against Linux
// kernel clients in a namespace the test creates: many connections at once, each sending
// lines every round (all connections' lines arrive together, so the server answers them
// in batches), every echo checked byte for byte. Then the counters: every byte echoed, no
// link error. No timing is asserted.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "stack/netif/uring_tun_link.h"
#include "tests/interop/im_clients.h"
#include "tests/interop/program_server.h"

namespace xtcp::test {
namespace {

// Line r of connection i: a prefix no IM push starts with, then printable bytes of a length
// and content that vary with i and r (up to ~1.4 KB: one or two segments).
std::string line_of(int i, int r) {
  char head[32];
  std::snprintf(head, sizeof head, "e%d.%d ", i, r);
  std::string s = head;
  const int len = 1 + (i * 37 + r * 101) % 1400;
  for (int k = 0; k < len; ++k) {
    s += static_cast<char>(33 + (i * 7 + r * 13 + k) % 94);
  }
  return s;
}

TEST(UringEcho, KernelClientsGetEveryEchoByteForByte) {
  std::string why;
  if (!UringTunLink::available(&why)) {
    GTEST_SKIP() << "io_uring unavailable: " << why;
  }
  const std::string pcap = ::testing::TempDir() + "xtcp_uring_echo.pcap";
  START_PROGRAM(server, XTCP_ECHO_BIN, "--port 7 --io uring --pcap " + pcap, "xtcp-echo: ");
  EXPECT_NE(server->output_so_far().find("(io_uring)"), std::string::npos) << server->output_so_far();
  constexpr int kConns = 300;
  constexpr int kRounds = 8;
  std::uint64_t bytes = 0;
  server->in_namespace([&] {
    ImClients c;
    std::string err;
    ASSERT_TRUE(c.connect(kProgramStackIp, 7, kConns, &err)) << err;
    for (int r = 0; r < kRounds; ++r) {
      for (int i = 0; i < kConns; ++i) {
        const std::string line = line_of(i, r);
        c.send(i, line);
        bytes += line.size() + 1;
      }
      ASSERT_TRUE(c.pump_until_answers(static_cast<std::size_t>(r + 1), std::chrono::seconds(20)))
          << "round " << r << ": " << c.answers_received() << " echoes of " << (r + 1) * kConns;
    }
    for (int i = 0; i < kConns; ++i) {
      ASSERT_EQ(c.at(i).answers.size(), static_cast<std::size_t>(kRounds)) << "connection " << i;
      for (int r = 0; r < kRounds; ++r) {
        ASSERT_EQ(c.at(i).answers[r], line_of(i, r)) << "connection " << i << " round " << r;
      }
      c.shutdown_write(i);
    }
    ASSERT_TRUE(c.pump_until([&] { return c.eofs() == kConns; }, std::chrono::seconds(20)))
        << "the server did not close after the clients' FIN";
  });
  const CommandResult r = server->stop();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(counter_value(r.output, "echo.accepted"), static_cast<std::uint64_t>(kConns)) << r.output;
  EXPECT_EQ(counter_value(r.output, "echo.bytes_echoed"), bytes) << r.output;
  // The tap on top of the io_uring link saw the traffic (both directions recorded).
  std::FILE* f = std::fopen(pcap.c_str(), "rb");
  ASSERT_NE(f, nullptr);
  std::fseek(f, 0, SEEK_END);
  EXPECT_GT(std::ftell(f), static_cast<long>(2 * bytes));
  std::fclose(f);
  std::remove(pcap.c_str());
}

}  // namespace
}  // namespace xtcp::test
