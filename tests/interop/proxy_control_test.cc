// xtcp-proxy's control of its pairs, with kernel clients and servers in a namespace:
// fail-over from a server that refuses (RST) or does not answer, a RST for the client
// when no server is left, resets passed on both ways, the PROXY protocol header (v1, v2)
// as a server parses it, the connection limit, the idle timeout, and bad command lines.
#include <chrono>

#include "tests/interop/proxy_peers.h"

namespace xtcp::test::proxy {
namespace {

using Clock = std::chrono::steady_clock;

// One line each way: the server echoes what it reads until the client's end.
void echo_handler(int fd) {
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0 || !send_all(fd, std::string(buf, static_cast<std::size_t>(n)))) {
      return;
    }
  }
}

// Sends msg through the proxy and expects it echoed, then closes orderly.
void expect_echo(const std::string& msg) {
  std::string err;
  const int fd = connect_to_proxy(&err);
  ASSERT_GE(fd, 0) << err;
  ASSERT_TRUE(send_all(fd, msg));
  std::string got;
  EXPECT_TRUE(read_exactly(fd, msg.size(), &got)) << "no echo through the proxy";
  EXPECT_EQ(got, msg);
  ::shutdown(fd, SHUT_WR);
  std::string rest;
  EXPECT_TRUE(read_to_eof(fd, &rest));
  ::close(fd);
}

// What a client sees when the proxy resets it: the errno of its read (0: an orderly end).
int read_error(int fd) {
  std::string got;
  int err = 0;
  if (read_to_eof(fd, &got, &err)) {
    return 0;
  }
  return err;
}

// The first server refuses (no listener: the kernel answers RST), so the first client
// goes on to the second; the refusing server is then down and skipped.
TEST(ProxyFailover, RefusingServerIsMarkedDownAndSkipped) {
  START_PROGRAM(px, XTCP_PROXY_BIN, proxy_args({9001, 9000}, "--down-time 60s"), "xtcp-proxy: ");
  px->in_namespace([&] {
    const int lfd = listen_on(9000);
    ASSERT_GE(lfd, 0);
    KernelServer server(lfd, echo_handler);
    for (int i = 0; i < 4; ++i) {
      expect_echo(std::string("hello ") + std::to_string(i));
    }
    EXPECT_EQ(server.accepted(), 4);
  });
  const std::string out = stop_cleanly(*px);
  EXPECT_EQ(counter_of(out, "proxy.server_connect_failures"), 1u) << "down: not tried again";
  EXPECT_EQ(counter_of(out, "proxy.failovers"), 1u);
  EXPECT_EQ(counter_of(out, "proxy.servers_down"), 1u);
  EXPECT_EQ(counter_of(out, "proxy.clients_reset_no_server"), 0u);
}

// No server answers at all (an address nobody has: the SYNs vanish): after the connect
// timeout the server is down, and with none left the client is reset; a second client is
// reset at once.
TEST(ProxyFailover, UnreachableServersResetTheClient) {
  START_PROGRAM(px, XTCP_PROXY_BIN,
                "--port 8000 --server 198.18.0.77:9000 --connect-timeout 300ms --down-time 60s", "xtcp-proxy: ");
  px->in_namespace([&] {
    for (int i = 0; i < 2; ++i) {
      const auto start = Clock::now();
      expect_client_reset(std::string("client ") + std::to_string(i));
      EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
    }
  });
  const std::string out = stop_cleanly(*px);
  EXPECT_EQ(counter_of(out, "proxy.server_connect_timeouts"), 1u);
  EXPECT_EQ(counter_of(out, "proxy.clients_reset_no_server"), 2u);
}

// A reset on one side resets the other: the client aborts (SO_LINGER 0), then the server
// does.
TEST(ProxyReset, ResetsPassBothWays) {
  START_PROGRAM(px, XTCP_PROXY_BIN, proxy_args({9000}), "xtcp-proxy: ");
  std::atomic<int> server_saw[2] = {{-1}, {-1}};
  px->in_namespace([&] {
    const int lfd = listen_on(9000);
    ASSERT_GE(lfd, 0);
    std::atomic<int> n{0};
    KernelServer server(lfd, [&](int fd) {
      const int i = n++;
      std::string got;
      if (i == 0) {
        EXPECT_TRUE(read_exactly(fd, 5, &got));
        send_all(fd, "ready");
        server_saw[0] = read_error(fd);  // the client's reset, passed on
      } else {
        EXPECT_TRUE(read_exactly(fd, 5, &got));
        linger lg{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        server_saw[1] = 0;
      }  // closed with SO_LINGER 0: a RST
    });
    std::string err;
    int fd = connect_to_proxy(&err);
    ASSERT_GE(fd, 0) << err;
    ASSERT_TRUE(send_all(fd, "first"));
    std::string got;
    ASSERT_TRUE(read_exactly(fd, 5, &got));
    linger lg{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    ::close(fd);  // RST toward the proxy

    fd = connect_to_proxy(&err);
    ASSERT_GE(fd, 0) << err;
    ASSERT_TRUE(send_all(fd, "again"));
    EXPECT_EQ(read_error(fd), ECONNRESET) << "the server's reset reaches the client";
    ::close(fd);
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    while (server_saw[0].load() < 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  EXPECT_EQ(server_saw[0].load(), ECONNRESET) << "the client's reset reaches the server";
  const std::string out = stop_cleanly(*px);
  EXPECT_EQ(counter_of(out, "proxy.resets_from_client"), 1u);
  EXPECT_EQ(counter_of(out, "proxy.resets_from_server"), 1u);
}

// The PROXY header a server receives first, parsed as such a server would, naming the
// client's address and port as the client sees them, then the client's bytes.
struct ParsedHeader {
  std::string client_ip, proxy_ip;
  int client_port = -1, proxy_port = -1;
  std::string rest;  // the bytes after the header
};

bool parse_v1(const std::string& in, ParsedHeader* h) {
  const auto end = in.find("\r\n");
  if (in.compare(0, 11, "PROXY TCP4 ") != 0 || end == std::string::npos || end > 107) {
    return false;
  }
  std::istringstream line(in.substr(11, end - 11));
  if (!(line >> h->client_ip >> h->proxy_ip >> h->client_port >> h->proxy_port)) {
    return false;
  }
  h->rest = in.substr(end + 2);
  return true;
}

bool parse_v2(const std::string& in, ParsedHeader* h) {
  static const char sig[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};
  if (in.size() < 16 || in.compare(0, 12, std::string(sig, 12)) != 0 || in[12] != '\x21' || in[13] != '\x11') {
    return false;
  }
  const auto* u = reinterpret_cast<const unsigned char*>(in.data());
  const std::size_t len = static_cast<std::size_t>(u[14]) << 8 | u[15];
  if (len < 12 || in.size() < 16 + len) {
    return false;
  }
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, u + 16, ip, sizeof ip);
  h->client_ip = ip;
  inet_ntop(AF_INET, u + 20, ip, sizeof ip);
  h->proxy_ip = ip;
  h->client_port = u[24] << 8 | u[25];
  h->proxy_port = u[26] << 8 | u[27];
  h->rest = in.substr(16 + len);
  return true;
}

void check_proxy_header(const char* version, bool (*parse)(const std::string&, ParsedHeader*)) {
  START_PROGRAM(px, XTCP_PROXY_BIN, proxy_args({9000}, std::string("--proxy-protocol ") + version),
                "xtcp-proxy: ");
  std::string server_got;
  int client_port = 0;
  px->in_namespace([&] {
    const int lfd = listen_on(9000);
    ASSERT_GE(lfd, 0);
    KernelServer server(lfd, [&](int fd) {
      EXPECT_TRUE(read_to_eof(fd, &server_got));
      send_all(fd, "ok");
    });
    std::string err;
    const int fd = connect_to_proxy(&err);
    ASSERT_GE(fd, 0) << err;
    sockaddr_in me{};
    socklen_t len = sizeof me;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&me), &len);
    client_port = ntohs(me.sin_port);
    ASSERT_TRUE(send_all(fd, "payload after the header"));
    ::shutdown(fd, SHUT_WR);
    std::string got;
    EXPECT_TRUE(read_to_eof(fd, &got));
    EXPECT_EQ(got, "ok");
    ::close(fd);
  });
  ParsedHeader h;
  ASSERT_TRUE(parse(server_got, &h)) << "no PROXY " << version << " header in what the server got";
  EXPECT_EQ(h.client_ip, kServerIp) << "the client's address (the namespace's end of the TUN)";
  EXPECT_EQ(h.client_port, client_port);
  EXPECT_EQ(h.proxy_ip, kProgramStackIp);
  EXPECT_EQ(h.proxy_port, kProxyPort);
  EXPECT_EQ(h.rest, "payload after the header");
  const std::string out = stop_cleanly(*px);
}

TEST(ProxyProtocol, V1HeaderIsParsedByTheServer) { check_proxy_header("v1", parse_v1); }
TEST(ProxyProtocol, V2HeaderIsParsedByTheServer) { check_proxy_header("v2", parse_v2); }

// --max-connections 1: a second client while the first is open is refused with a RST.
TEST(ProxyLimits, ClientsBeyondTheLimitAreReset) {
  START_PROGRAM(px, XTCP_PROXY_BIN, proxy_args({9000}, "--max-connections 1"), "xtcp-proxy: ");
  px->in_namespace([&] {
    const int lfd = listen_on(9000);
    ASSERT_GE(lfd, 0);
    KernelServer server(lfd, echo_handler);
    std::string err;
    const int first = connect_to_proxy(&err);
    ASSERT_GE(first, 0) << err;
    ASSERT_TRUE(send_all(first, "one"));
    std::string got;
    ASSERT_TRUE(read_exactly(first, 3, &got));
    expect_client_reset("the client beyond the limit");
    ::shutdown(first, SHUT_WR);
    EXPECT_TRUE(read_to_eof(first, &got));
    ::close(first);
  });
  const std::string out = stop_cleanly(*px);
  EXPECT_EQ(counter_of(out, "proxy.clients_refused_limit"), 1u);
  EXPECT_EQ(counter_of(out, "proxy.pairs_total"), 1u);
}

// --idle-timeout: a pair that moves nothing is reset on both sides.
TEST(ProxyLimits, IdlePairsAreReset) {
  START_PROGRAM(px, XTCP_PROXY_BIN, proxy_args({9000}, "--idle-timeout 300ms"), "xtcp-proxy: ");
  std::atomic<int> server_saw{-1};
  px->in_namespace([&] {
    const int lfd = listen_on(9000);
    ASSERT_GE(lfd, 0);
    KernelServer server(lfd, [&](int fd) {
      std::string got;
      EXPECT_TRUE(read_exactly(fd, 4, &got));
      send_all(fd, got);
      server_saw = read_error(fd);
    });
    std::string err;
    const int fd = connect_to_proxy(&err);
    ASSERT_GE(fd, 0) << err;
    ASSERT_TRUE(send_all(fd, "ping"));
    std::string got;
    ASSERT_TRUE(read_exactly(fd, 4, &got));
    const auto start = Clock::now();
    EXPECT_EQ(read_error(fd), ECONNRESET) << "the idle pair is reset";
    EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(200));
    ::close(fd);
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    while (server_saw.load() < 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  EXPECT_EQ(server_saw.load(), ECONNRESET) << "and its server side too";
  const std::string out = stop_cleanly(*px);
  EXPECT_EQ(counter_of(out, "proxy.idle_timeouts"), 1u);
}

TEST(ProxyFlags, BadCommandLinesExitTwoWithAReason) {
  const std::string bin = XTCP_PROXY_BIN;
  const std::vector<std::string> base = {bin, "--tun", "pxflags0", "--ip", "198.18.0.2", "--port", "8000"};
  auto with = [&](std::vector<std::string> more) {
    std::vector<std::string> v = base;
    v.insert(v.end(), more.begin(), more.end());
    return v;
  };
  expect_usage_errors({
      base,  // no --server
      with({"--server", "198.18.0.1"}),
      with({"--server", "198.18.0:80"}),
      with({"--server", "198.18.0.1:0"}),
      with({"--server", "198.18.0.1:70000"}),
      with({"--server", "198.18.0.2:80"}),  // the proxy itself
      with({"--server", "198.18.0.1:80", "--balance", "random"}),
      with({"--server", "198.18.0.1:80", "--proxy-protocol", "v3"}),
      with({"--server", "198.18.0.1:80", "--pair-buffer", "100"}),
      with({"--server", "198.18.0.1:80", "--connect-timeout", "1ms"}),
      with({"--server", "198.18.0.1:80", "--shards", "2"}),
      {bin, "--shm", "px", "--ip", "198.18.0.2", "--port", "8000", "--server", "198.18.0.1:80"},
  });
  const SplitResult r = run_split({bin, "--tun", "pxflags0", "--ip", "198.18.0.2", "--port", "8000"});
  EXPECT_NE(r.err.find("--server"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace xtcp::test::proxy
