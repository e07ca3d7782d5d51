// xtcp_config.link_io: the checks of xtcp_configure, and XTCP_IO_URING over a real TUN
// device. The server is an application of xtcp.h alone following the header's epoll
// recipe (xtcp_link_fd in an epoll set, epoll_wait with xtcp_next_timeout, xtcp_poll, then
// accept/recv/send): with io_uring its answers are queued in the ring and must leave before
// it sleeps. It runs on a thread inside a network namespace the test creates
// (198.18.0.0/24); Linux kernel clients hold many connections at once and check every
// answer byte for byte. A pcap tap sits on top of the io_uring link and must see it all.
#include <gtest/gtest.h>

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>

#include "stack/netif/uring_tun_link.h"
#include "tests/api/api_server_thread.h"
#include "tests/support/netns.h"
#include "xtcp/xtcp.h"

namespace xtcp::test {
namespace {

constexpr std::uint16_t kPort = 7001;

TEST(ApiUring, ConfigureChecksLinkIo) {
  xtcp_config cfg{};
  cfg.local_addr = "198.18.0.2";
  cfg.link_io = 7;
  EXPECT_EQ(xtcp_configure(&cfg), -EINVAL);
  EXPECT_NE(std::strstr(xtcp_last_error(), "link_io 7"), nullptr) << xtcp_last_error();

  cfg.link_io = XTCP_IO_URING;
  cfg.shm_name = "uring-test";
  EXPECT_EQ(xtcp_configure(&cfg), -EINVAL);
  EXPECT_NE(std::strstr(xtcp_last_error(), "shm_name"), nullptr) << xtcp_last_error();

  cfg.shm_name = nullptr;
  cfg.link_io = XTCP_IO_RW;
  cfg.reserved_u32b = 1;
  EXPECT_EQ(xtcp_configure(&cfg), -EINVAL);
  EXPECT_NE(std::strstr(xtcp_last_error(), "reserved"), nullptr) << xtcp_last_error();

  // io_uring itself: accepted where this build and kernel have it, else -ENOTSUP naming why.
  cfg.reserved_u32b = 0;
  cfg.link_io = XTCP_IO_URING;
  std::string why;
  if (UringTunLink::available(&why)) {
    EXPECT_EQ(xtcp_configure(&cfg), 0) << xtcp_last_error();
  } else {
    EXPECT_EQ(xtcp_configure(&cfg), -ENOTSUP);
    EXPECT_NE(std::strstr(xtcp_last_error(), "XTCP_IO_URING"), nullptr) << xtcp_last_error();
  }
}

std::size_t pcap_records(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return 0;
  }
  std::size_t n = 0;
  unsigned char gh[24];
  if (std::fread(gh, 1, sizeof gh, f) == sizeof gh) {
    for (;;) {
      unsigned char rh[16];
      if (std::fread(rh, 1, sizeof rh, f) != sizeof rh) {
        break;
      }
      const std::uint32_t incl = rh[8] | (rh[9] << 8) | (rh[10] << 16) | (static_cast<std::uint32_t>(rh[11]) << 24);
      if (incl > 65536 || std::fseek(f, incl, SEEK_CUR) != 0) {
        break;
      }
      ++n;
    }
  }
  std::fclose(f);
  return n;
}

TEST(ApiUring, KernelClientsAreServedOverIoUringWithTheEpollRecipe) {
  if (auto why = netns_unavailable_reason()) {
    GTEST_SKIP() << *why;
  }
  std::string why;
  if (!UringTunLink::available(&why)) {
    GTEST_SKIP() << "io_uring unavailable: " << why;
  }
  if (!find_executable("python3")) {
    GTEST_SKIP() << "no python3 for the kernel clients";
  }
  std::string err;
  auto ns = NetNs::create(&err);
  ASSERT_TRUE(ns) << err;
  const std::string pcap = ::testing::TempDir() + "xtcp_api_uring.pcap";
  long answered_bytes = 0;
  ApiServerThread::Setup setup;
  setup.config.tun_name = "xturing0";
  setup.config.local_addr = "198.18.0.2";
  setup.config.kernel_addr = "198.18.0.1/24";
  setup.config.pcap_path = pcap.c_str();
  setup.config.link_io = XTCP_IO_URING;
  setup.pool_size = 4u << 20;
  setup.port = kPort;
  auto serve = [&answered_bytes](int gd, const std::atomic<bool>& stop) {
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = xtcp_link_fd();
    if (ep < 0 || ev.data.fd < 0 || ::epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0) {
      ADD_FAILURE() << "epoll set-up failed";
      return;
    }
    ev.data.fd = xtcp_group_fd(gd);
    ::epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev);
    // The recipe of xtcp.h: sleep in epoll_wait for at most xtcp_next_timeout(), drive
    // with xtcp_poll, then serve the group. The answers sent at the end of a turn are still
    // queued in the ring when the next turn starts: xtcp_next_timeout() must flush them.
    epoll_event events[4];
    while (!stop.load()) {
      const int timeout = std::min(xtcp_next_timeout(), 20);
      ::epoll_wait(ep, events, 4, timeout);
      xtcp_poll();
      for (int cd = xtcp_accept(gd); cd > 0; cd = xtcp_accept(gd)) {
      }
      char buf[4096];
      int cd = 0;
      for (int n = xtcp_recv(gd, &cd, buf, sizeof buf); n != -EAGAIN; n = xtcp_recv(gd, &cd, buf, sizeof buf)) {
        if (n <= 0) {
          xtcp_close(gd, cd);
          continue;
        }
        if (xtcp_send(gd, cd, static_cast<std::size_t>(n), buf, static_cast<std::size_t>(n)) > 0) {
          answered_bytes += n;
        }
      }
    }
    ::close(ep);
  };
  ApiServerThread server;
  ASSERT_TRUE(server.start(*ns, setup, serve, &err)) << err;
  // 200 connections open at once; each round every connection sends a message of its own
  // (lengths vary up to 3 KB, more than one segment) and reads its echo back, byte for byte.
  const std::string client = R"PY(
import socket
conns = [socket.create_connection(("198.18.0.2", 7001), timeout=20) for _ in range(200)]
total = 0
for r in range(5):
    msgs = []
    for i, s in enumerate(conns):
        m = bytes(((i * 7 + r * 13 + k) % 251 for k in range(1 + (i * 37 + r * 101) % 3000)))
        s.sendall(m)
        msgs.append(m)
    for s, m in zip(conns, msgs):
        got = b""
        while len(got) < len(m):
            chunk = s.recv(len(m) - len(got))
            assert chunk, "connection closed early"
            got += chunk
        assert got == m, "echo differs"
        total += len(m)
for s in conns:
    s.close()
print("clients ok", total)
)PY";
  const CommandResult res = ns->run("python3 -c '" + client + "'", std::chrono::seconds(120));
  server.stop();
  EXPECT_EQ(res.exit_code, 0) << res.output;
  EXPECT_NE(res.output.find("clients ok"), std::string::npos) << res.output;
  const auto pos = res.output.find("clients ok ");
  if (pos != std::string::npos) {
    EXPECT_EQ(std::to_string(answered_bytes), res.output.substr(pos + 11, res.output.find('\n', pos) - pos - 11));
  }
  // The tap sat on the io_uring link: at least the 200 handshakes and the requests.
  EXPECT_GT(pcap_records(pcap), 200u * 3 + 1000u);
  if (!::testing::Test::HasFailure()) {
    std::remove(pcap.c_str());
  } else {
    std::fprintf(stderr, "capture kept: %s\n", pcap.c_str());
  }
}

}  // namespace
}  // namespace xtcp::test
