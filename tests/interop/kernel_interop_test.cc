// Interop with the Linux kernel's own TCP: kernel sockets in a namespace talk to xtcp on a
// TUN device. Transfers are checked by SHA-256; every close variant is exercised.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "tests/interop/tun_server.h"

namespace xtcp::test {
namespace {

#define START_SERVER(var, opts)                                       \
  std::string skip_reason, start_error;                               \
  auto var = TunServer::start(opts, &skip_reason, &start_error);     \
  if (!var && !skip_reason.empty()) {                                 \
    GTEST_SKIP() << "interop test needs root and /dev/net/tun: " << skip_reason; \
  }                                                                   \
  ASSERT_TRUE(var) << start_error

// Waits (bounded) until the server's counters satisfy pred.
template <class Pred>
ServerReport wait_for(TunServer& s, Pred pred, int timeout_ms = 10000) {
  ServerReport r = s.report();
  for (int waited = 0; !pred(r) && waited < timeout_ms; waited += 20) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    r = s.report();
  }
  return r;
}

void expect_echo(TunServer& s, std::size_t size, std::uint64_t seed, int timeout_ms) {
  const auto data = random_bytes(size, seed);
  s.in_namespace([&] {
    const int fd = connect_tcp(kEchoPort);
    ASSERT_GE(fd, 0) << std::strerror(-fd);
    std::string err;
    const auto back = echo_exchange(fd, data, timeout_ms, &err);
    ::close(fd);
    ASSERT_TRUE(err.empty()) << err;
    ASSERT_EQ(back.size(), data.size());
    EXPECT_EQ(sha256_hex(back), sha256_hex(data));
  });
}

TEST(KernelInterop, HandshakeAndSmallEcho) {
  START_SERVER(server, ServerOptions{});
  expect_echo(*server, 13, 1, 5000);
  const ServerReport r = wait_for(*server, [](const ServerReport& x) { return x.echoed >= 13; });
  EXPECT_EQ(r.accepted, 1u);
  EXPECT_EQ(r.echoed, 13u);
}

TEST(KernelInterop, OneMebibyteEchoSha256) {
  START_SERVER(server, ServerOptions{});
  expect_echo(*server, 1 << 20, 2, 20000);
}

TEST(KernelInterop, SixtyFourMebibyteEchoSha256) {
  START_SERVER(server, ServerOptions{});
  expect_echo(*server, 64u << 20, 3, 120000);
}

TEST(KernelInterop, ThousandConcurrentConnections) {
  START_SERVER(server, ServerOptions{});
  constexpr int kConns = 1000;
  server->in_namespace([&] {
    std::vector<int> fds;
    for (int i = 0; i < kConns; ++i) {
      const int fd = connect_tcp(kEchoPort, 10000);
      ASSERT_GE(fd, 0) << "connection " << i << ": " << std::strerror(-fd);
      fds.push_back(fd);
    }
    // All 1,000 are open at once; each sends its own line and must get exactly it back.
    for (int i = 0; i < kConns; ++i) {
      const std::string msg = "connection " + std::to_string(i) + "\n";
      ASSERT_EQ(::send(fds[i], msg.data(), msg.size(), MSG_NOSIGNAL), static_cast<ssize_t>(msg.size()));
    }
    for (int i = 0; i < kConns; ++i) {
      const std::string want = "connection " + std::to_string(i) + "\n";
      std::string got;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (got.size() < want.size() && std::chrono::steady_clock::now() < deadline) {
        pollfd p{fds[i], POLLIN, 0};
        ::poll(&p, 1, 100);
        char buf[256];
        const ssize_t n = ::recv(fds[i], buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
          got.append(buf, static_cast<std::size_t>(n));
        }
      }
      EXPECT_EQ(got, want) << "connection " << i;
    }
    for (int fd : fds) {
      ::close(fd);
    }
  });
  const ServerReport r = wait_for(*server, [](const ServerReport& x) {
    return x.accepted >= kConns && x.live_connections == 0;
  });
  EXPECT_EQ(r.accepted, static_cast<std::uint64_t>(kConns));
  EXPECT_EQ(r.live_connections, 0u) << "every connection closed by the client must be gone";
}

TEST(KernelInterop, ServerClosesFirstAndHoldsTimeWait) {
  START_SERVER(server, ServerOptions{});
  server->in_namespace([&] {
    const int fd = connect_tcp(kGreetClosePort);
    ASSERT_GE(fd, 0);
    // Read to the server's FIN before closing: a client FIN sent earlier could cross the
    // server's, and then the client would be the one left in TIME-WAIT.
    std::string got;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no FIN from the server";
      pollfd p{fd, POLLIN, 0};
      ::poll(&p, 1, 200);
      char buf[256];
      const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0) {
        break;
      }
      if (n > 0) {
        got.append(buf, static_cast<std::size_t>(n));
      }
    }
    ::close(fd);
    EXPECT_EQ(got, kGreeting);
  });
  // We closed first, so after the client's FIN the stack holds the compact TIME-WAIT entry.
  const ServerReport r = wait_for(*server, [](const ServerReport& x) { return x.time_wait >= 1; });
  EXPECT_EQ(r.time_wait, 1u);
  EXPECT_EQ(r.live_connections, 0u);
}

TEST(KernelInterop, ServerAbortResetsClient) {
  START_SERVER(server, ServerOptions{});
  server->in_namespace([&] {
    const int fd = connect_tcp(kGreetAbortPort);
    if (fd == -ECONNRESET) {
      return;  // the RST arrived before connect() returned: the reset was seen
    }
    ASSERT_GE(fd, 0) << std::strerror(-fd);
    int err = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (err == 0 && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      ::poll(&p, 1, 100);
      char buf[256];
      const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0 && errno != EAGAIN) {
        err = errno;
      } else if (n == 0) {
        err = -1;  // orderly EOF would be wrong
      }
    }
    ::close(fd);
    EXPECT_EQ(err, ECONNRESET);
  });
}

TEST(KernelInterop, ClientAbortResetsServerConnection) {
  START_SERVER(server, ServerOptions{});
  server->in_namespace([&] {
    const int fd = connect_tcp(kEchoPort);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::send(fd, "x", 1, MSG_NOSIGNAL), 1);
    char c;
    pollfd p{fd, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1);
    ASSERT_EQ(::recv(fd, &c, 1, 0), 1);
    linger l{1, 0};  // close() now sends RST instead of FIN
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd);
  });
  const ServerReport r = wait_for(*server, [](const ServerReport& x) { return x.closed_with_reset >= 1; });
  EXPECT_EQ(r.closed_with_reset, 1u);
  EXPECT_EQ(r.live_connections, 0u);
}

TEST(KernelInterop, ClientClosesWithoutSending) {
  START_SERVER(server, ServerOptions{});
  server->in_namespace([&] {
    const int fd = connect_tcp(kEchoPort);
    ASSERT_GE(fd, 0);
    std::string err;
    const auto got = echo_exchange(fd, {}, 5000, &err);
    ::close(fd);
    EXPECT_TRUE(err.empty()) << err;
    EXPECT_TRUE(got.empty());
  });
  const ServerReport r = wait_for(*server, [](const ServerReport& x) { return x.accepted == 1 && x.live_connections == 0; });
  EXPECT_EQ(r.live_connections, 0u);
}

TEST(KernelInterop, ClosedPortIsRefused) {
  START_SERVER(server, ServerOptions{});
  server->in_namespace([&] { EXPECT_EQ(connect_tcp(4321), -ECONNREFUSED); });
}

TEST(KernelInterop, PingIsAnswered) {
  START_SERVER(server, ServerOptions{});
  const CommandResult r = server->ns().run("ping -c 3 -i 0.2 -W 2 198.18.0.2", std::chrono::seconds(15));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("3 received"), std::string::npos) << r.output;
}

// The same transfers with the path impaired in both directions.
struct ImpairedCase {
  const char* name;
  MemLinkFaults faults;
  std::size_t bytes;
};

class ImpairedPath : public ::testing::TestWithParam<ImpairedCase> {};

TEST_P(ImpairedPath, EchoArrivesExactlyOnce) {
  ServerOptions opts;
  opts.faults = true;
  opts.to_kernel = GetParam().faults;
  opts.from_kernel = GetParam().faults;
  opts.from_kernel.seed = GetParam().faults.seed + 1000;
  if (const char* dir = std::getenv("XTCP_INTEROP_PCAP_DIR")) {
    opts.pcap = std::string(dir) + "/" + GetParam().name + ".pcap";
  }
  START_SERVER(server, opts);
  expect_echo(*server, GetParam().bytes, 7, 120000);
  const ServerReport r = server->report();
  std::printf("[ impaired ] %s: lost %llu dup %llu reordered %llu corrupted %llu, retransmits %llu (rto %llu, fast %llu), "
              "tail loss probes %llu\n",
              GetParam().name, static_cast<unsigned long long>(r.fault_lost),
              static_cast<unsigned long long>(r.fault_duplicated),
              static_cast<unsigned long long>(r.fault_reordered),
              static_cast<unsigned long long>(r.fault_corrupted),
              static_cast<unsigned long long>(r.retransmits),
              static_cast<unsigned long long>(r.rto_expirations),
              static_cast<unsigned long long>(r.fast_retransmits),
              static_cast<unsigned long long>(r.tlp_probes));
}

MemLinkFaults loss(double p) {
  MemLinkFaults f;
  f.seed = 11;
  f.loss = p;
  return f;
}
MemLinkFaults reorder(double p) {
  MemLinkFaults f;
  f.seed = 12;
  f.reorder = p;
  f.reorder_gap = 3;
  return f;
}
MemLinkFaults duplicate(double p) {
  MemLinkFaults f;
  f.seed = 13;
  f.duplicate = p;
  return f;
}
MemLinkFaults delay(TimeNs d, TimeNs jitter) {
  MemLinkFaults f;
  f.seed = 14;
  f.delay = d;
  f.jitter = jitter;
  return f;
}
MemLinkFaults all_together() {
  MemLinkFaults f;
  f.seed = 15;
  f.loss = 0.05;
  f.reorder = 0.05;
  f.duplicate = 0.05;
  f.corrupt = 0.01;
  f.delay = ms(5);
  f.jitter = ms(2);
  return f;
}

INSTANTIATE_TEST_SUITE_P(
    Kernel, ImpairedPath,
    ::testing::Values(ImpairedCase{"loss5_1MiB", loss(0.05), 1u << 20},
                      ImpairedCase{"loss5_16MiB", loss(0.05), 16u << 20},
                      ImpairedCase{"reorder10_4MiB", reorder(0.10), 4u << 20},
                      ImpairedCase{"dup10_4MiB", duplicate(0.10), 4u << 20},
                      ImpairedCase{"delay20ms_4MiB", delay(ms(20), ms(5)), 4u << 20},
                      ImpairedCase{"all_4MiB", all_together(), 4u << 20}),
    [](const ::testing::TestParamInfo<ImpairedCase>& i) { return std::string(i.param.name); });

}  // namespace
}  // namespace xtcp::test
