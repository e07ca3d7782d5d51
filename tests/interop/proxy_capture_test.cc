// xtcp-proxy has the servers' capture flags: --capture on the server's address and port
// picks the connection the proxy itself opened toward that server (its active open), and
// tshark reads that connection alone, from the proxy's SYN to both FINs, with the bytes the
// client sent through the proxy.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "tests/interop/proxy_peers.h"

namespace xtcp::test::proxy {
namespace {

TEST(ProxyCapture, CapturesTheConnectionTheProxyOpenedToItsServer) {
  const auto tshark = find_executable("tshark");
  if (!tshark) {
    GTEST_SKIP() << "tshark not installed (apt-get install tshark)";
  }
  const std::string path = std::string("/tmp/xtcp-proxy-capture-") + std::to_string(::getpid()) + ".pcap";
  std::remove(path.c_str());
  const std::string filter = std::string("remote=") + kServerIp + ":9000";
  START_PROGRAM(px, XTCP_PROXY_BIN, proxy_args({9000}, "--capture " + filter + " --capture-file " + path),
                "xtcp-proxy: ");
  EXPECT_NE(px->output_so_far().find("capture 1 started: " + filter), std::string::npos) << px->output_so_far();
  const std::string request = "through the proxy\n";
  const std::string answer = "and back\n";
  px->in_namespace([&] {
    const int lfd = listen_on(9000);
    ASSERT_GE(lfd, 0);
    KernelServer server(lfd, [&](int fd) {
      std::string got;
      EXPECT_TRUE(read_to_eof(fd, &got));
      EXPECT_EQ(got, request);
      EXPECT_TRUE(send_all(fd, answer));
    });
    std::string err;
    const int fd = connect_to_proxy(&err);
    ASSERT_GE(fd, 0) << err;
    EXPECT_TRUE(send_all(fd, request));
    ::shutdown(fd, SHUT_WR);
    std::string got;
    EXPECT_TRUE(read_to_eof(fd, &got));
    EXPECT_EQ(got, answer);
    ::close(fd);
  });
  // The last ACKs of the server-side close reach the proxy's stack before it stops.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const std::string out = stop_cleanly(*px);
  EXPECT_NE(out.find("capture 1 stopped: "), std::string::npos) << out;

  const SplitResult fields = run_split({*tshark, "-r", path, "-T", "fields", "-E", "separator=,", "-e", "ip.src",
                                        "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport", "-e",
                                        "tcp.flags.syn", "-e", "tcp.flags.ack", "-e", "tcp.flags.fin", "-e",
                                        "tcp.len"},
                                       std::chrono::seconds(60));
  ASSERT_EQ(fields.exit_code, 0) << fields.err;
  const std::string server = std::string(kServerIp) + ",9000";
  std::string proxy_end;  // the proxy's address and ephemeral port, from its SYN
  int syn = 0, syn_ack = 0, fin_out = 0, fin_in = 0, bytes_out = 0, bytes_in = 0;
  for (const std::string& line : split_text(fields.out, '\n')) {
    const auto f = split_text(line, ',');
    ASSERT_EQ(f.size(), 8u) << line;
    const std::string src = f[0] + "," + f[1];
    const std::string dst = f[2] + "," + f[3];
    const bool out_bound = dst == server;
    ASSERT_TRUE(out_bound || src == server) << "a packet of another flow: " << line;
    const std::string proxy = out_bound ? src : dst;
    if (proxy_end.empty()) {
      proxy_end = proxy;
    }
    ASSERT_EQ(proxy, proxy_end) << "a second connection to the server: " << line;
    const bool is_syn = f[4] == "1", is_ack = f[5] == "1", is_fin = f[6] == "1";
    syn += out_bound && is_syn && !is_ack ? 1 : 0;
    syn_ack += !out_bound && is_syn && is_ack ? 1 : 0;
    fin_out += out_bound && is_fin ? 1 : 0;
    fin_in += !out_bound && is_fin ? 1 : 0;
    (out_bound ? bytes_out : bytes_in) += std::stoi(f[7]);
  }
  EXPECT_EQ(proxy_end.rfind(std::string(kProgramStackIp) + ",", 0), 0u) << proxy_end;
  EXPECT_EQ(syn, 1) << "the proxy's own SYN is captured";
  EXPECT_EQ(syn_ack, 1);
  EXPECT_EQ(fin_out, 1);
  EXPECT_EQ(fin_in, 1);
  EXPECT_EQ(bytes_out, static_cast<int>(request.size()));
  EXPECT_EQ(bytes_in, static_cast<int>(answer.size()));
  if (!::testing::Test::HasFailure()) {
    std::remove(path.c_str());
  } else {
    std::printf("[ capture  ] kept %s\n", path.c_str());
  }
}

}  // namespace
}  // namespace xtcp::test::proxy
