// Fair shared buffers with real Linux clients through TUN: xtcp-echo (a 256 KiB receive pool,
// a 4 MiB transmit cache, hoarders never reset: --zero-window-abort 0) serves 64 hoarders, kernel sockets that send inside the window but never read their echoes (their
// receive windows go to 0, their echoes are throttled and their requests wait in the pool),
// and beside them a well-behaved client that sends 64 KiB and reads: it must get the whole
// echo back, byte for byte. Completeness is asserted, not speed; the time bound
// only keeps a broken build from hanging. The program runs in a namespace the test creates
// (198.18.0.0/24); without root or /dev/net/tun the test is skipped with the reason.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tests/interop/kernel_peer.h"
#include "tests/interop/program_server.h"

#ifndef XTCP_FB_WAIT
#define XTCP_FB_WAIT 60
#endif

namespace xtcp::test {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::seconds;

std::string pattern(std::size_t n, std::size_t seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>('a' + (i * 7 + i / 1000 + seed) % 26);
  }
  return s;
}

TEST(FairBuffersInterop, WellBehavedClientGetsItsEchoBesideSixtyFourHoarders) {
  START_PROGRAM(server, XTCP_ECHO_BIN, "--port 7 --pool-size 256K --tx-cache 4M --zero-window-abort 0", "xtcp-echo: ");
  constexpr int kHoarders = 64;
  constexpr std::size_t kEcho = 64 * 1024;
  server->in_namespace([&] {
    std::vector<std::unique_ptr<KernelPeer>> hoarders;
    std::vector<KernelPeer*> all;
    std::string err;
    for (int i = 0; i < kHoarders; ++i) {
      hoarders.push_back(std::make_unique<KernelPeer>());
      ASSERT_TRUE(open_kernel_peer(hoarders.back().get(), 7, &err)) << "hoarder " << i << ": " << err;
      hoarders.back()->reading = false;
      hoarders.back()->out = pattern(256 * 1024, static_cast<std::size_t>(i));
      all.push_back(hoarders.back().get());
    }
    // The hoarders send what the windows allow and read nothing, until their echoes have
    // filled their receive buffers and the server's buffers have what they can hold.
    pump_peers(all, [] { return false; }, seconds(3));
    std::size_t hoarded = 0;
    for (const auto& h : hoarders) {
      hoarded += 256 * 1024 - h->out.size();
    }
    EXPECT_GT(hoarded, 256u * 1024) << "the hoarders sent more than the receive pool holds";
    // A well-behaved client: 64 KiB, read as it comes back.
    KernelPeer good;
    ASSERT_TRUE(open_kernel_peer(&good, 7, &err)) << err;
    const std::string sent = pattern(kEcho, 99);
    good.out = sent;
    all.push_back(&good);
    const bool done = pump_peers(all, [&] { return good.in.size() >= kEcho || good.eof; }, seconds(XTCP_FB_WAIT));
    if (!done) {
      sockaddr_in me{};
      socklen_t ml = sizeof me;
      ::getsockname(good.fd, reinterpret_cast<sockaddr*>(&me), &ml);
      const std::string cmd = "ss -tnie sport = :" + std::to_string(ntohs(me.sin_port)) + " >&2";
      if (std::system(cmd.c_str()) != 0) {
        std::fprintf(stderr, "ss failed\n");
      }
      server->signal(SIGUSR1);  // the program's counters, for the failure report
      ::usleep(500'000);
    }
    EXPECT_TRUE(done) << good.in.size() << " of " << kEcho << " bytes echoed in the time bound";
    ASSERT_EQ(good.in.size(), kEcho) << (good.eof ? "the connection ended" : "incomplete");
    EXPECT_TRUE(good.in == sent) << "the echo differs from what was sent";
  });
  const CommandResult r = server->stop();
  if (::testing::Test::HasFailure()) {
    std::fprintf(stderr, "%s\n", r.output.c_str());
  }
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto echoed = counter_value(r.output, "echo.bytes_echoed");
  ASSERT_TRUE(echoed.has_value()) << r.output;
  EXPECT_GE(*echoed, kEcho);
}

}  // namespace
}  // namespace xtcp::test
