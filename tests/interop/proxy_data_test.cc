// xtcp-proxy carrying kernel clients to kernel servers through one TUN device, in a
// namespace: every byte intact both ways (SHA-256), bulk and request/answer; a slow client
// behind a fast server (the proxy holds at most --pair-buffer for the pair; the server's
// window closes and its own send queue backs up); half-closes both ways; and no pair left
// behind (proxy.pairs_open back to 0).
#include <sys/ioctl.h>
#include <linux/sockios.h>

#include <chrono>
#include <csignal>

#include "tests/interop/proxy_peers.h"

namespace xtcp::test::proxy {
namespace {

using Clock = std::chrono::steady_clock;

// Both directions at once: the client and the server each send their own bytes and half-
// close; each reads the other's to the end. The pair ends by two half-closes.
TEST(ProxyData, BulkBothWaysArrivesIntact) {
  START_PROGRAM(px, XTCP_PROXY_BIN, proxy_args({9000}), "xtcp-proxy: ");
  constexpr std::size_t kToServer = 3u << 20;
  constexpr std::size_t kToClient = 2u << 20;
  const std::string up = pattern(kToServer, 1);
  const std::string down = pattern(kToClient, 2);
  std::string server_got;
  px->in_namespace([&] {
    const int lfd = listen_on(9000);
    ASSERT_GE(lfd, 0);
    KernelServer server(lfd, [&](int fd) {
      std::thread writer([&] {
        EXPECT_TRUE(send_all(fd, down));
        ::shutdown(fd, SHUT_WR);
      });
      EXPECT_TRUE(read_to_eof(fd, &server_got));
      writer.join();
    });
    std::string err;
    const int fd = connect_to_proxy(&err);
    ASSERT_GE(fd, 0) << err;
    std::thread writer([&] {
      EXPECT_TRUE(send_all(fd, up));
      ::shutdown(fd, SHUT_WR);
    });
    std::string client_got;
    EXPECT_TRUE(read_to_eof(fd, &client_got));
    writer.join();
    ::close(fd);
    EXPECT_EQ(client_got.size(), down.size());
    EXPECT_EQ(sha256_hex(client_got), sha256_hex(down)) << "server -> client bytes differ";
  });
  EXPECT_EQ(server_got.size(), up.size());
  EXPECT_EQ(sha256_hex(server_got), sha256_hex(up)) << "client -> server bytes differ";
  const std::string out = stop_cleanly(*px);
  EXPECT_EQ(counter_of(out, "proxy.bytes_to_server"), kToServer);
  EXPECT_EQ(counter_of(out, "proxy.bytes_to_client"), kToClient);
  EXPECT_EQ(counter_of(out, "proxy.half_closes_from_client"), 1u);
  EXPECT_EQ(counter_of(out, "proxy.half_closes_from_server"), 1u);
  EXPECT_EQ(counter_of(out, "proxy.pairs_total"), 1u);
}

// Request/answer over several connections at once, spread by round-robin over two
// servers: each request is a line of its own length, each answer the SHA-256 of it.
TEST(ProxyData, RequestAnswerOverTwoServers) {
  START_PROGRAM(px, XTCP_PROXY_BIN, proxy_args({9000, 9001}), "xtcp-proxy: ");
  constexpr int kClients = 4;
  constexpr int kRequests = 60;
  std::atomic<int> answered{0};
  int accepted[2] = {0, 0};
  px->in_namespace([&] {
    auto answer_lines = [](int fd) {
      std::string in;
      char buf[8192];
      for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
          return;
        }
        in.append(buf, static_cast<std::size_t>(n));
        std::size_t nl;
        while ((nl = in.find('\n')) != std::string::npos) {
          if (!send_all(fd, sha256_hex(in.substr(0, nl)) + "\n")) {
            return;
          }
          in.erase(0, nl + 1);
        }
      }
    };
    const int l0 = listen_on(9000);
    const int l1 = listen_on(9001);
    ASSERT_GE(l0, 0);
    ASSERT_GE(l1, 0);
    {
      KernelServer s0(l0, answer_lines);
      KernelServer s1(l1, answer_lines);
      std::vector<std::thread> clients;
      for (int c = 0; c < kClients; ++c) {
        clients.emplace_back([&, c] {
          std::string err;
          const int fd = connect_to_proxy(&err);
          if (fd < 0) {
            ADD_FAILURE() << err;
            return;
          }
          for (int i = 0; i < kRequests; ++i) {
            const std::string req = pattern(1 + static_cast<std::size_t>((i * 977 + c * 131) % 5000),
                                            static_cast<std::uint32_t>(c * 1000 + i), true);
            if (!send_all(fd, req + "\n")) {
              ADD_FAILURE() << "send failed";
              break;
            }
            std::string ans;
            if (!read_exactly(fd, 65, &ans)) {
              ADD_FAILURE() << "no answer to request " << i << " of client " << c;
              break;
            }
            EXPECT_EQ(ans, sha256_hex(req) + "\n");
            ++answered;
          }
          ::shutdown(fd, SHUT_WR);
          std::string rest;
          EXPECT_TRUE(read_to_eof(fd, &rest));
          EXPECT_EQ(rest, "");
          ::close(fd);
        });
      }
      for (auto& t : clients) {
        t.join();
      }
      accepted[0] = s0.accepted();
      accepted[1] = s1.accepted();
    }
  });
  EXPECT_EQ(answered.load(), kClients * kRequests);
  EXPECT_EQ(accepted[0], kClients / 2) << "round-robin: half the clients on each server";
  EXPECT_EQ(accepted[1], kClients / 2);
  const std::string out = stop_cleanly(*px);
  EXPECT_EQ(counter_of(out, "proxy.pairs_total"), static_cast<std::uint64_t>(kClients));
}

// A slow client behind a fast server: the client does not read for a while. The proxy
// holds at most --pair-buffer for the pair toward the client and one receive window from
// the server; the rest stays at the server, whose send queue fills and whose send blocks.
// Then the client reads everything, intact.
TEST(ProxyData, SlowClientBacksUpAtTheServerNotInTheProxy) {
  START_PROGRAM(px, XTCP_PROXY_BIN, proxy_args({9000}, "--pair-buffer 64K"), "xtcp-proxy: ");
  constexpr std::size_t kTotal = 6u << 20;
  const std::string down = pattern(kTotal, 3);
  std::atomic<std::size_t> server_sent{0};
  std::atomic<bool> server_blocked{false};
  std::atomic<int> server_outq{0};
  std::atomic<bool> client_reads{false};
  std::string mid_output;
  std::size_t stalled_sent = 0;
  px->in_namespace([&] {
    const int lfd = listen_on(9000);
    ASSERT_GE(lfd, 0);
    KernelServer server(lfd, [&](int fd) {
      const int sndbuf = 256 * 1024;
      ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
      std::size_t off = 0;
      while (off < down.size()) {
        const ssize_t n = ::send(fd, down.data() + off, std::min<std::size_t>(65536, down.size() - off),
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          off += static_cast<std::size_t>(n);
          server_sent = off;
          continue;
        }
        if (n < 0 && errno != EAGAIN) {
          ADD_FAILURE() << "server send: " << std::strerror(errno);
          return;
        }
        if (!client_reads) {
          // Blocked while the client does not read: what is still queued at the server.
          int outq = 0;
          ::ioctl(fd, SIOCOUTQ, &outq);
          server_outq = outq;
          server_blocked = true;
        }
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, 50);
      }
      ::shutdown(fd, SHUT_WR);
      std::string rest;
      read_to_eof(fd, &rest);
    });
    std::string err;
    const int fd = connect_to_proxy(&err, 8192);
    ASSERT_GE(fd, 0) << err;
    // Wait until the server cannot send any more and what it sent stopped growing.
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    std::size_t last = 0;
    int stable = 0;
    while (Clock::now() < deadline && stable < 5) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const std::size_t now_sent = server_sent.load();
      stable = server_blocked && now_sent == last ? stable + 1 : 0;
      last = now_sent;
    }
    EXPECT_TRUE(server_blocked.load()) << "the server's send never blocked";
    EXPECT_LT(server_sent.load(), kTotal) << "everything left the server although the client read nothing";
    EXPECT_GT(server_outq.load(), 64 * 1024) << "the server's own queue should hold the backlog";
    // The proxy's view while stalled.
    stalled_sent = server_sent.load();
    px->signal(SIGUSR1);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    mid_output = px->output_so_far();
    client_reads = true;
    std::string got;
    EXPECT_TRUE(read_to_eof(fd, &got));
    ::close(fd);
    EXPECT_EQ(got.size(), kTotal);
    EXPECT_EQ(sha256_hex(got), sha256_hex(down));
  });
  const std::uint64_t held_for_client = counter_of(mid_output, "proxy.pair_buffer_bytes");
  EXPECT_LE(held_for_client, 64u * 1024) << mid_output;
  EXPECT_GE(held_for_client, 32u * 1024) << "the stalled pair fills its buffer toward the client";
  std::printf("stalled: server sent %zu of %zu, its queue %d, proxy holds %llu toward the client\n",
              stalled_sent, kTotal, server_outq.load(), static_cast<unsigned long long>(held_for_client));
  EXPECT_LE(counter_of(mid_output, "pool.rx_buffer_used"), 128u * 1024)
      << "the proxy holds about one receive window from the server, no more";
  EXPECT_EQ(counter_of(mid_output, "proxy.pairs_open"), 1u);
  const std::string out = stop_cleanly(*px);
  EXPECT_LE(counter_of(out, "proxy.pair_buffer_peak"), 64u * 1024);
  EXPECT_GT(counter_of(out, "proxy.waits_for_client_room"), 0u);
  EXPECT_EQ(counter_of(out, "proxy.bytes_to_client"), kTotal);
}

// The other way round: a fast client uploading to a server that does not read for a
// while. The client's bytes stay in the proxy's pool unreleased, the window the proxy
// advertises to the client closes, and the client's own send queue backs up. Held past
// 100 ms they are acknowledged with the window closed, so the client waits in zero-window
// probes rather than retransmitting. Then the server reads everything, intact.
TEST(ProxyData, SlowServerBacksUpAtTheClientNotInTheProxy) {
  START_PROGRAM(px, XTCP_PROXY_BIN, proxy_args({9000}, "--pair-buffer 64K"), "xtcp-proxy: ");
  constexpr std::size_t kTotal = 6u << 20;
  const std::string up = pattern(kTotal, 4);
  std::atomic<bool> server_reads{false};
  std::string server_got;
  std::string mid_output;
  std::size_t stalled_sent = 0;
  int client_outq = 0;
  px->in_namespace([&] {
    const int lfd = listen_on(9000);
    ASSERT_GE(lfd, 0);
    KernelServer server(lfd, [&](int fd) {
      const int small = 8192;
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
      while (!server_reads) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      EXPECT_TRUE(read_to_eof(fd, &server_got));
    });
    std::string err;
    const int fd = connect_to_proxy(&err);
    ASSERT_GE(fd, 0) << err;
    const int sndbuf = 256 * 1024;
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    std::size_t off = 0;
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    auto blocked_since = Clock::time_point::max();
    // Send without blocking until the client has been unable to send for half a second.
    while (Clock::now() < deadline) {
      const ssize_t n = ::send(fd, up.data() + off, std::min<std::size_t>(65536, up.size() - off),
                               MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        off += static_cast<std::size_t>(n);
        blocked_since = Clock::time_point::max();
        continue;
      }
      ASSERT_TRUE(n < 0 && errno == EAGAIN) << std::strerror(errno);
      blocked_since = std::min(blocked_since, Clock::now());
      if (Clock::now() - blocked_since > std::chrono::milliseconds(500)) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    stalled_sent = off;
    ::ioctl(fd, SIOCOUTQ, &client_outq);
    px->signal(SIGUSR1);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    mid_output = px->output_so_far();
    server_reads = true;
    EXPECT_TRUE(send_all(fd, up.substr(off)));
    ::shutdown(fd, SHUT_WR);
    std::string rest;
    EXPECT_TRUE(read_to_eof(fd, &rest));
    ::close(fd);
  });
  EXPECT_LT(stalled_sent, kTotal) << "everything left the client although the server read nothing";
  EXPECT_GT(client_outq, 64 * 1024) << "the client's own queue should hold the backlog";
  EXPECT_LE(counter_of(mid_output, "proxy.pair_buffer_bytes"), 64u * 1024) << mid_output;
  EXPECT_LE(counter_of(mid_output, "pool.rx_buffer_used"), 128u * 1024)
      << "the proxy holds about one receive window from the client, no more";
  EXPECT_EQ(server_got.size(), kTotal);
  EXPECT_EQ(sha256_hex(server_got), sha256_hex(up));
  const std::string out = stop_cleanly(*px);
  EXPECT_LE(counter_of(out, "proxy.pair_buffer_peak"), 64u * 1024);
  EXPECT_GT(counter_of(out, "proxy.waits_for_server_room"), 0u);
  EXPECT_EQ(counter_of(out, "proxy.bytes_to_server"), kTotal);
}

// Half-close both ways: after the client's FIN the server still answers (the proxy sends
// in CLOSE-WAIT toward the client); after the server's FIN the client still sends.
TEST(ProxyData, HalfCloseBothWays) {
  START_PROGRAM(px, XTCP_PROXY_BIN, proxy_args({9000}), "xtcp-proxy: ");
  px->in_namespace([&] {
    const int lfd = listen_on(9000);
    ASSERT_GE(lfd, 0);
    std::atomic<int> conn{0};
    KernelServer server(lfd, [&](int fd) {
      if (conn++ == 0) {
        // Client closes first: read to its end, then answer, then close.
        std::string got;
        EXPECT_TRUE(read_to_eof(fd, &got));
        EXPECT_EQ(got, "question");
        EXPECT_TRUE(send_all(fd, "answer after your FIN"));
      } else {
        // Server closes first, then reads what the client still sends.
        EXPECT_TRUE(send_all(fd, "bye"));
        ::shutdown(fd, SHUT_WR);
        std::string got;
        EXPECT_TRUE(read_to_eof(fd, &got));
        EXPECT_EQ(got, "still talking");
      }
    });
    std::string err;
    int fd = connect_to_proxy(&err);
    ASSERT_GE(fd, 0) << err;
    ASSERT_TRUE(send_all(fd, "question"));
    ::shutdown(fd, SHUT_WR);
    std::string got;
    EXPECT_TRUE(read_to_eof(fd, &got));
    EXPECT_EQ(got, "answer after your FIN");
    ::close(fd);

    fd = connect_to_proxy(&err);
    ASSERT_GE(fd, 0) << err;
    got.clear();
    EXPECT_TRUE(read_to_eof(fd, &got)) << "the server's FIN reaches the client";
    EXPECT_EQ(got, "bye");
    EXPECT_TRUE(send_all(fd, "still talking"));
    ::shutdown(fd, SHUT_WR);
    char c;
    EXPECT_EQ(::recv(fd, &c, 1, 0), 0);
    ::close(fd);
    // Let the server thread finish before the listener goes.
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    while (conn.load() < 2 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  const std::string out = stop_cleanly(*px);
  EXPECT_EQ(counter_of(out, "proxy.half_closes_from_client"), 2u);
  EXPECT_EQ(counter_of(out, "proxy.half_closes_from_server"), 2u);
  EXPECT_EQ(counter_of(out, "proxy.resets_from_client"), 0u);
  EXPECT_EQ(counter_of(out, "proxy.resets_from_server"), 0u);
}

}  // namespace
}  // namespace xtcp::test::proxy
