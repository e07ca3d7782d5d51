// xtcp-echo and xtcp-im when answers do not fit: a small transmit cache (--tx-cache 16K)
// and a kernel client that stops reading for a while. The servers send whole answers or
// nothing (XTCP_OPT_SEND_ALL): xtcp-echo leaves a refused echo's bytes unacknowledged and
// gets them again from xtcp_recv once there is room; xtcp-im keeps lines it cannot make
// again (pushes, answers to requests already carried out) in a bounded per-connection
// queue flushed when xtcp_writable names the connection. Nothing may be lost, duplicated
// or reordered, and the program's counters must show the path was taken.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "tests/interop/im_chat.h"
#include "tests/interop/kernel_peer.h"
#include "tests/interop/program_server.h"

namespace xtcp::test {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::uint64_t counter(const std::string& output, const std::string& name) {
  const auto v = counter_value(output, name);
  EXPECT_TRUE(v.has_value()) << "no counter " << name << " in:\n" << output;
  return v.value_or(~0ull);
}

TEST(EchoBackpressure, RefusedEchoesComeAgainAndNothingIsLost) {
  START_PROGRAM(server, XTCP_ECHO_BIN, "--port 7 --tx-cache 16K", "xtcp-echo: ");
  constexpr std::size_t kTotal = 1u << 20;
  server->in_namespace([&] {
    KernelPeer c;
    std::string err;
    ASSERT_TRUE(open_kernel_peer(&c, 7, &err)) << err;
    std::string sent(kTotal, '\0');
    for (std::size_t i = 0; i < kTotal; ++i) {
      sent[i] = static_cast<char>('a' + (i * 7 + i / 1000) % 26);
    }
    c.out = sent;
    // One second of writing without reading: the echoes fill the small cache and the
    // client's window, the server's sends are refused.
    c.reading = false;
    pump_peers({&c}, [] { return false; }, seconds(1));
    c.reading = true;
    ASSERT_TRUE(pump_peers({&c}, [&] { return c.in.size() >= kTotal || c.eof; }, seconds(60)))
        << c.in.size() << " of " << kTotal << " bytes back";
    ASSERT_EQ(c.in.size(), kTotal);
    EXPECT_TRUE(c.in == sent) << "the echo differs from what was sent";
    ::shutdown(c.fd, SHUT_WR);
    EXPECT_TRUE(pump_peers({&c}, [&] { return c.eof; }, seconds(10))) << "no FIN after ours";
  });
  const CommandResult r = server->stop();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(counter(r.output, "echo.bytes_echoed"), kTotal) << r.output;
  EXPECT_GT(counter(r.output, "echo.deferred_sends"), 0u) << "the cache never refused: nothing tested";
  EXPECT_EQ(counter(r.output, "echo.unechoed_at_close"), 0u) << r.output;
  EXPECT_EQ(counter(r.output, "echo.client_closes"), 1u) << r.output;
}

TEST(ImBackpressure, SlowReaderGetsEveryMessageInOrder) {
  START_PROGRAM(server, XTCP_IM_BIN, "--port 5222 --tx-cache 16K", "xtcp-im: ");
  constexpr int kMessages = 400;
  const std::string filler(400, 'z');
  server->in_namespace([&] {
    KernelPeer alice, bob;
    std::string err;
    ASSERT_TRUE(open_kernel_peer(&alice, kImPort, &err)) << err;
    ASSERT_TRUE(open_kernel_peer(&bob, kImPort, &err)) << err;
    alice.out = "LOGIN alice\n";
    ASSERT_TRUE(pump_peers({&alice, &bob}, [&] { return alice.in == "OK\n"; }, seconds(10))) << alice.in;
    bob.out = "LOGIN bob\n";
    ASSERT_TRUE(pump_peers({&alice, &bob}, [&] { return bob.in == "OK\n" && alice.in == "OK\nONLINE bob\n"; },
                     seconds(10)))
        << alice.in << bob.in;
    alice.in.clear();
    bob.in.clear();
    std::string want_bob;
    std::string want_alice;
    for (int k = 0; k < kMessages; ++k) {
      alice.out += "MSG bob " + std::to_string(k) + " " + filler + "\n";
      want_bob += "FROM alice " + std::to_string(k) + " " + filler + "\n";
      want_alice += "OK\n";
    }
    bob.reading = false;  // bob stops reading: his pushes pile up on the server
    pump_peers({&alice, &bob}, [] { return false; }, seconds(1));
    bob.reading = true;
    ASSERT_TRUE(pump_peers({&alice, &bob},
                     [&] { return bob.in.size() >= want_bob.size() && alice.in.size() >= want_alice.size(); },
                     seconds(60)))
        << bob.in.size() << " of " << want_bob.size() << " bytes to bob, " << alice.in.size() << " of "
        << want_alice.size() << " to alice";
    EXPECT_TRUE(bob.in == want_bob) << "bob's messages are lost, doubled or out of order";
    EXPECT_EQ(alice.in, want_alice);
    ::shutdown(alice.fd, SHUT_WR);
    ::shutdown(bob.fd, SHUT_WR);
    EXPECT_TRUE(pump_peers({&alice, &bob}, [&] { return alice.eof && bob.eof; }, seconds(10)));
  });
  const CommandResult r = server->stop();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(counter(r.output, "im.messages"), static_cast<std::uint64_t>(kMessages));
  EXPECT_GT(counter(r.output, "im.deferred_sends"), 0u) << "the cache never refused: nothing tested";
  EXPECT_GT(counter(r.output, "im.writable_wakeups"), 0u) << r.output;
  EXPECT_EQ(counter(r.output, "im.slow_consumers"), 0u);
  EXPECT_EQ(counter(r.output, "im.resets"), 0u);
  EXPECT_EQ(counter(r.output, "im.queued_bytes"), 0u);
}

}  // namespace
}  // namespace xtcp::test
