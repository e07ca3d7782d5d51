// The C API over a real TUN device: a request/answer server written against xtcp.h alone
// (xtcp_configure, xtcp_select, accept/recv/send/close) runs on a thread inside a network
// namespace the test creates (198.18.0.0/24); Linux kernel clients talk to it. The capture
// the runtime writes must show every request's ACK riding on its answer and no pure ACK from
// the server apart from the handshake and the ACK of a client's FIN.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "stack/wire/ipv4.h"
#include "stack/wire/tcp.h"
#include "tests/api/api_server_thread.h"
#include "tests/support/netns.h"
#include "xtcp/xtcp.h"

namespace xtcp::test {
namespace {

using namespace wire::tcp_flags;  // NOLINT

constexpr std::uint32_t kServer = 0xC6120002;  // 198.18.0.2
constexpr std::uint16_t kPort = 7000;

// Records of a LINKTYPE_RAW pcap (what PcapTap writes): bare IPv4 packets.
std::vector<std::vector<std::byte>> read_pcap(const std::string& path) {
  std::vector<std::vector<std::byte>> out;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return out;
  }
  unsigned char gh[24];
  if (std::fread(gh, 1, sizeof gh, f) == sizeof gh) {
    for (int guard = 0; guard < 1'000'000; ++guard) {
      unsigned char rh[16];
      if (std::fread(rh, 1, sizeof rh, f) != sizeof rh) {
        break;
      }
      const std::uint32_t incl = rh[8] | (rh[9] << 8) | (rh[10] << 16) | (static_cast<std::uint32_t>(rh[11]) << 24);
      if (incl > 65536) {
        break;
      }
      std::vector<std::byte> p(incl);
      if (std::fread(p.data(), 1, incl, f) != incl) {
        break;
      }
      out.push_back(std::move(p));
    }
  }
  std::fclose(f);
  return out;
}

struct Audit {
  int requests = 0;
  int acked_by_answer = 0;
  int pure_acks = 0;       // server segments without payload, SYN, FIN or RST...
  int fin_acks = 0;        // ...that acknowledge a client FIN (allowed)
  std::vector<std::string> problems;
};

Audit audit(const std::vector<std::vector<std::byte>>& packets) {
  struct Flow {
    std::vector<std::uint32_t> pending_request_ends;  // client requests not yet ACKed
    std::uint32_t fin_end = 0;
    bool fin = false;
  };
  std::map<std::uint32_t, Flow> flows;  // by client addr << 16 | port (one address here)
  Audit a;
  for (const auto& p : packets) {
    const auto ip = wire::Ipv4View::parse(p);
    if (!ip || ip->protocol() != wire::kProtoTcp) {
      continue;
    }
    wire::TcpError e;
    const auto t = wire::TcpView::parse(ip->payload(), &e);
    if (!t.ok()) {
      continue;
    }
    const bool from_client = ip->dst() == kServer && t.dst_port() == kPort;
    const bool from_server = ip->src() == kServer && t.src_port() == kPort;
    if (!from_client && !from_server) {
      continue;
    }
    const std::uint16_t client_port = from_client ? t.src_port() : t.dst_port();
    Flow& fl = flows[client_port];
    const std::uint32_t seq = t.seq().raw();
    const auto len = static_cast<std::uint32_t>(t.payload().size());
    if (from_client) {
      if (len > 0) {
        ++a.requests;
        fl.pending_request_ends.push_back(seq + len);
      }
      if ((t.flags() & kFin) != 0) {
        fl.fin = true;
        fl.fin_end = seq + len + 1;
      }
      continue;
    }
    const std::uint32_t ack = t.ack().raw();
    std::vector<std::uint32_t> still;
    for (const std::uint32_t end : fl.pending_request_ends) {
      if (static_cast<std::int32_t>(ack - end) >= 0) {
        if (len > 0) {
          ++a.acked_by_answer;
        } else if (a.problems.size() < 5) {
          a.problems.push_back("request ending at " + std::to_string(end) + " ACKed by a pure ACK");
        }
      } else {
        still.push_back(end);
      }
    }
    fl.pending_request_ends = still;
    if (len == 0 && (t.flags() & (kSyn | kFin | kRst)) == 0) {
      if (fl.fin && ack == fl.fin_end) {
        ++a.fin_acks;
      } else {
        ++a.pure_acks;
      }
    }
  }
  return a;
}

TEST(ApiTun, KernelClientsGetAnswersThatCarryTheAcks) {
  if (auto why = netns_unavailable_reason()) {
    GTEST_SKIP() << *why;
  }
  if (!find_executable("python3")) {
    GTEST_SKIP() << "no python3 for the kernel clients";
  }
  std::string err;
  auto ns = NetNs::create(&err);
  ASSERT_TRUE(ns) << err;
  const std::string pcap = ::testing::TempDir() + "xtcp_api_tun.pcap";
  int answers = 0;
  ApiServerThread::Setup setup;
  setup.config.tun_name = "xtapi0";
  setup.config.local_addr = "198.18.0.2";
  setup.config.kernel_addr = "198.18.0.1/24";
  setup.config.pcap_path = pcap.c_str();
  setup.port = kPort;
  setup.configure_group = [](int gd) { return xtcp_setopt(gd, XTCP_OPT_FRAMING, XTCP_FRAME_DELIMITER); };
  // The server's application loop: wait in xtcp_select, accept what is pending, answer
  // each request, acknowledging it with the answer.
  auto serve = [&answers](int gd, const std::atomic<bool>& stop) {
    while (!stop.load()) {
      xtcp_set r;
      xtcp_set a;
      XTCP_ZERO(&r);
      XTCP_ZERO(&a);
      XTCP_SET(gd, &r);
      XTCP_SET(gd, &a);
      timeval tv{0, 20'000};
      if (xtcp_select(gd + 1, &r, &a, &tv) <= 0) {
        continue;
      }
      for (int cd = xtcp_accept(gd); cd > 0; cd = xtcp_accept(gd)) {
      }
      char buf[4096];
      int cd = 0;
      for (int n = xtcp_recv(gd, &cd, buf, sizeof buf); n != -EAGAIN; n = xtcp_recv(gd, &cd, buf, sizeof buf)) {
        if (n <= 0) {
          xtcp_close(gd, cd);
          continue;
        }
        std::string answer;
        for (std::size_t start = 0; start < static_cast<std::size_t>(n);) {
          const std::size_t end = std::string_view(buf, static_cast<std::size_t>(n)).find('\n', start);
          answer += "ECHO " + std::string(buf + start, end + 1 - start);
          start = end + 1;
        }
        if (xtcp_send(gd, cd, static_cast<std::size_t>(n), answer.data(), answer.size()) > 0) {
          ++answers;
        }
      }
    }
  };
  ApiServerThread server;
  ASSERT_TRUE(server.start(*ns, setup, serve, &err)) << err;
  const std::string client = R"PY(
import socket
for i in range(20):
    s = socket.create_connection(("198.18.0.2", 7000), timeout=10)
    f = s.makefile("rb")
    for j in range(5):
        req = b"req %d %d\n" % (i, j)
        s.sendall(req)
        line = f.readline()
        assert line == b"ECHO " + req, line
    s.close()
print("clients ok")
)PY";
  const CommandResult res = ns->run("python3 -c '" + client + "'", std::chrono::seconds(60));
  server.stop();
  EXPECT_EQ(res.exit_code, 0) << res.output;
  EXPECT_NE(res.output.find("clients ok"), std::string::npos) << res.output;
  EXPECT_EQ(answers, 100);
  const Audit a = audit(read_pcap(pcap));
  EXPECT_EQ(a.requests, 100);
  EXPECT_EQ(a.acked_by_answer, a.requests) << (a.problems.empty() ? "" : a.problems.front());
  EXPECT_EQ(a.pure_acks, 0) << "no ACK segment of its own from the server";
  if (!::testing::Test::HasFailure()) {
    std::remove(pcap.c_str());
  } else {
    std::fprintf(stderr, "capture kept: %s\n", pcap.c_str());
  }
}

}  // namespace
}  // namespace xtcp::test
