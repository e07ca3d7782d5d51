// The namespace harness itself (tests/support/netns.h): namespaces are isolated, have their
// loopback up, vanish with the object; commands report exit codes, output and timeouts;
// a thread that enters the namespace sees its interfaces. Skipped without root/netns.
#include "tests/support/netns.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

namespace xtcp {
namespace {

bool netns_exists(const std::string& name) {
  struct stat st{};
  return ::stat(("/var/run/netns/" + name).c_str(), &st) == 0;
}

TEST(RunCommand, ReportsExitCodeAndOutput) {
  const CommandResult ok = run_command({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(ok.exit_code, 3);
  EXPECT_FALSE(ok.timed_out);
  EXPECT_NE(ok.output.find("out\n"), std::string::npos) << ok.output;
  EXPECT_NE(ok.output.find("err\n"), std::string::npos) << ok.output;

  const CommandResult missing = run_command({"/nonexistent/program"});
  EXPECT_NE(missing.exit_code, 0);
}

TEST(RunCommand, TimeoutKillsTheWholeProcessGroup) {
  // The child shell and its background sleep both belong to the group that is killed.
  const CommandResult r =
      run_command({"sh", "-c", "sleep 30 & sleep 30; echo never"}, std::chrono::milliseconds(300));
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.exit_code, 128 + SIGKILL);
  EXPECT_EQ(r.output.find("never"), std::string::npos);
}

TEST(FindExecutable, FindsShAndNotNonsense) {
  EXPECT_TRUE(find_executable("sh").has_value());
  EXPECT_FALSE(find_executable("no-such-program-xtcp").has_value());
}

class NetNsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto reason = netns_unavailable_reason()) {
      GTEST_SKIP() << *reason;
    }
  }
};

TEST_F(NetNsTest, CreatedWithLoopbackUpAndDeletedByDestructor) {
  std::string error;
  std::string name;
  {
    auto ns = NetNs::create(&error);
    ASSERT_NE(ns, nullptr) << error;
    name = ns->name();
    EXPECT_EQ(name.rfind("xtcp-test-" + std::to_string(::getpid()) + "-", 0), 0u) << name;
    EXPECT_TRUE(netns_exists(name));

    // Only the loopback exists, and it is up: a ping to 127.0.0.1 inside works.
    const CommandResult links = ns->run("ip -o link show");
    EXPECT_EQ(links.exit_code, 0) << links.output;
    EXPECT_NE(links.output.find("lo:"), std::string::npos) << links.output;
    EXPECT_NE(links.output.find("UP"), std::string::npos) << links.output;
    EXPECT_EQ(links.output.find("2:"), std::string::npos) << "unexpected interface\n"
                                                          << links.output;
    const CommandResult lo = ns->run("ip -4 addr show dev lo");
    EXPECT_NE(lo.output.find("inet 127.0.0.1/8"), std::string::npos) << lo.output;

    const CommandResult exit7 = ns->run("exit 7");
    EXPECT_EQ(exit7.exit_code, 7);
    const CommandResult v6 = ns->run("cat /proc/sys/net/ipv6/conf/default/disable_ipv6");
    if (v6.exit_code == 0) {
      EXPECT_EQ(v6.output, "1\n");
    }
  }
  EXPECT_FALSE(netns_exists(name)) << name << " still exists";
}

TEST_F(NetNsTest, TwoNamespacesGetDistinctNames) {
  std::string error;
  auto a = NetNs::create(&error);
  ASSERT_NE(a, nullptr) << error;
  auto b = NetNs::create(&error);
  ASSERT_NE(b, nullptr) << error;
  EXPECT_NE(a->name(), b->name());
}

TEST_F(NetNsTest, ThreadInsideSeesTheNamespaceAndKernelSocketsWork) {
  std::string error;
  auto ns = NetNs::create(&error);
  ASSERT_NE(ns, nullptr) << error;
  // Give the namespace an interface from outside (a persistent TUN, the one device type
  // this harness requires); the thread inside must see it and the test's thread must not.
  const CommandResult add = ns->run("ip tuntap add dev xtcpdummy0 mode tun");
  ASSERT_EQ(add.exit_code, 0) << add.output;
  EXPECT_EQ(::if_nametoindex("xtcpdummy0"), 0u) << "the test thread left the host namespace";

  bool ran = false;
  const int rc = ns->run_in_thread(
      [&] {
        ran = true;
        EXPECT_NE(::if_nametoindex("xtcpdummy0"), 0u);
        // A kernel UDP socket on the namespace's loopback talks to itself.
        const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ASSERT_GE(fd, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        socklen_t len = sizeof addr;
        ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
        ASSERT_EQ(::sendto(fd, "ping", 4, 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 4);
        char buf[8] = {};
        EXPECT_EQ(::recv(fd, buf, sizeof buf, 0), 4);
        EXPECT_EQ(std::string(buf, 4), "ping");
        ::close(fd);
      },
      &error);
  EXPECT_EQ(rc, 0) << error;
  EXPECT_TRUE(ran);
  EXPECT_EQ(::if_nametoindex("xtcpdummy0"), 0u);
  const CommandResult del = ns->run("ip link del xtcpdummy0");
  EXPECT_EQ(del.exit_code, 0) << del.output;
}

TEST_F(NetNsTest, BackgroundCommandIsSignalledAndWaitedFor) {
  std::string error;
  auto ns = NetNs::create(&error);
  ASSERT_NE(ns, nullptr) << error;
  // The command announces itself through a FIFO once its trap is installed; the test
  // waits for that with poll() (a FIFO that never had a writer does not report POLLHUP).
  const std::string fifo = ::testing::TempDir() + "xtcp_netns_fifo_" + std::to_string(::getpid());
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  const int fifo_fd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(fifo_fd, 0) << std::strerror(errno);
  // The shell reports SIGINT through its trap, proving the signal reached it.
  auto cmd = ns->start("trap 'echo got-int; exit 5' INT; echo started > " + fifo +
                           "; while :; do sleep 1; done",
                       &error);
  ASSERT_NE(cmd, nullptr) << error;
  EXPECT_TRUE(cmd->running());
  pollfd p{fifo_fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1) << cmd->output_so_far();
  char buf[16] = {};
  EXPECT_EQ(::read(fifo_fd, buf, sizeof buf), 8);
  EXPECT_EQ(std::string(buf), "started\n");
  ::close(fifo_fd);
  ::unlink(fifo.c_str());
  EXPECT_EQ(cmd->signal(SIGINT), 0);
  const CommandResult r = cmd->wait(std::chrono::seconds(10));
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 5) << r.output;
  EXPECT_NE(r.output.find("got-int"), std::string::npos) << r.output;
  EXPECT_FALSE(cmd->running());
  EXPECT_EQ(cmd->signal(SIGINT), -ESRCH);
}

TEST(NetNsReason, ReasonIsStableAndExplainsItself) {
  const auto first = netns_unavailable_reason();
  const auto second = netns_unavailable_reason();
  EXPECT_EQ(first, second);
  if (first) {
    EXPECT_FALSE(first->empty());
  } else {
    EXPECT_EQ(::geteuid(), 0u);
  }
}

}  // namespace
}  // namespace xtcp
