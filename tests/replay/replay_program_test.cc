// The xtcp-replay program: its in-process server broken on purpose (an answer byte changed,
// a FIN turned into a RST) must fail the replay with a per-flow report that names the flow,
// the offset, what was expected and what came; --write keeps a capture that replays the
// same; bad flags exit 2; and over TUN it replays the suites against xtcp-echo and xtcp-im
// running in a network namespace of the test's own.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/netns.h"
#include "tools/replay/capture.h"

namespace xtcp::replay {
namespace {

const std::string kPcaps = XTCP_PCAPS_DIR;
const std::string kHello = kPcaps + "/echo/handshake-default.pcap";

CommandResult replay(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {XTCP_REPLAY_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, std::chrono::seconds(60));
}

// "198.18.0.1:PORT -> 198.18.0.2:7" of the capture's only flow.
std::string flow_name(const std::string& path) {
  std::string error;
  auto packets = read_pcap(path, &error);
  EXPECT_TRUE(packets) << error;
  auto cap = extract_flows(std::move(*packets), std::nullopt, &error);
  EXPECT_TRUE(cap) << error;
  EXPECT_EQ(cap->flows.size(), 1u);
  return format_endpoint(cap->flows[0].client) + std::string(" -> ") + format_endpoint(cap->flows[0].server);
}

TEST(ReplayProgram, TheSuiteCaptureReplaysTheSame) {
  const CommandResult r = replay({"--capture", kHello});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(std::string("flow ") + flow_name(kHello) + ": same (26 bytes from the server, ends FIN)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("result: same (1 flows)"), std::string::npos) << r.output;
}

TEST(ReplayProgram, AChangedAnswerByteIsReportedWithFlowOffsetExpectedAndGot) {
  const CommandResult r = replay({"--capture", kHello, "--inject-fault", "change-byte"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(std::string("flow ") + flow_name(kHello) + ": DIFFERENT"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("bytes from the server differ at offset 0 (expected 26 bytes in all, got 26)"),
            std::string::npos)
      << r.output;
  // 'h' (0x68) with its lowest bit flipped is 'i' (0x69).
  EXPECT_NE(r.output.find("expected: \"hello, xtcp\\na second line\\n\" [68 65 6c"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("got:      \"iello, xtcp\\na second line\\n\" [69 65 6c"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("result: DIFFERENT (1 of 1 flows differ)"), std::string::npos) << r.output;
}

TEST(ReplayProgram, AFinTurnedIntoRstIsReported) {
  const CommandResult r = replay({"--capture", kHello, "--inject-fault", "fin-to-rst"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(std::string("flow ") + flow_name(kHello) + ": DIFFERENT"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("the flow ends differently: expected FIN from the server, got RST"), std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("bytes from the server differ"), std::string::npos) << r.output;
}

TEST(ReplayProgram, JsonSummaryCountsFlowsBytesAndDifferences) {
  const CommandResult same = replay({"--capture", kPcaps + "/echo/interleaved.pcap", "--json"});
  EXPECT_EQ(same.exit_code, 0) << same.output;
  EXPECT_NE(same.output.find("\"flows\": 16, \"flows_different\": 0"), std::string::npos) << same.output;
  EXPECT_NE(same.output.find("\"bytes_expected\": 768, \"bytes_got\": 768, \"differences\": []"), std::string::npos)
      << same.output;
  EXPECT_NE(same.output.find("\"result\": \"same\""), std::string::npos) << same.output;
  const CommandResult broken = replay({"--capture", kHello, "--json", "--inject-fault", "fin-to-rst"});
  EXPECT_EQ(broken.exit_code, 1) << broken.output;
  EXPECT_NE(broken.output.find(std::string("{\"flow\": \"") + flow_name(kHello) + "\", \"kind\": \"end\", \"expected\": \"fin\", "
                                                                      "\"got\": \"rst\"}"),
            std::string::npos)
      << broken.output;
  EXPECT_NE(broken.output.find("\"result\": \"different\""), std::string::npos) << broken.output;
}

TEST(ReplayProgram, TheWrittenLiveExchangeReplaysTheSame) {
  const std::string out = ::testing::TempDir() + "replay_program_written.pcap";
  CommandResult r = replay({"--capture", kPcaps + "/echo/bulk.pcap", "--write", out});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string error;
  auto packets = read_pcap(out, &error);
  ASSERT_TRUE(packets) << error;
  auto cap = extract_flows(std::move(*packets), std::nullopt, &error);
  ASSERT_TRUE(cap) << error;
  ASSERT_EQ(cap->flows.size(), 1u);
  EXPECT_EQ(cap->flows[0].server_bytes.size(), 65536u);
  EXPECT_TRUE(cap->flows[0].end.fin);
  EXPECT_GT(cap->flows[0].client_packets, 0u);
  EXPECT_GT(cap->flows[0].server_packets, 0u);
  r = replay({"--capture", out, "--pace", "capture"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::remove(out.c_str());
}

TEST(ReplayProgram, BadFlagsExit2WithWhatIsWrong) {
  CommandResult r = replay({"--capture", kHello, "--pace", "slow"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--pace: must be one of capture, fast"), std::string::npos) << r.output;
  r = replay({"--capture", kHello, "--target", "tun"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--target tun needs --tun NAME"), std::string::npos) << r.output;
  r = replay({"--capture", kHello, "--server", "198.18.0.2"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--server: not ADDR:PORT"), std::string::npos) << r.output;
  r = replay({});
  EXPECT_EQ(r.exit_code, 2);
  r = replay({"--capture", "/nonexistent.pcap"});
  EXPECT_EQ(r.exit_code, 2) << "trouble, not a difference";
  EXPECT_NE(r.output.find("cannot read pcap file '/nonexistent.pcap'"), std::string::npos) << r.output;
}

// A server program on TUN xrpl0 in a namespace of the test's own (198.18.0.2; the kernel's
// end 198.18.0.1/24); replay runs in the namespace with its clients moved to 198.19.0.x.
class TunServer {
 public:
  bool start(const std::string& program, int port, std::string* why) {
    ns_ = NetNs::create(why);
    if (!ns_) {
      return false;
    }
    cmd_ = ns_->start("exec " + program + std::string(" --tun xrpl0 --ip 198.18.0.2 --kernel-ip 198.18.0.1/24 --port ") +
                          std::to_string(port),
                      why);
    if (!cmd_) {
      return false;
    }
    for (int i = 0; i < 100; ++i) {
      if (cmd_->output_so_far().find(std::string(": 198.18.0.2:") + std::to_string(port) + " on xrpl0") != std::string::npos) {
        return true;
      }
      if (!cmd_->running()) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    *why = "the server did not start: " + cmd_->output_so_far();
    return false;
  }
  CommandResult replay(const std::string& args) const {
    return ns_->run(std::string(XTCP_REPLAY_BIN) + " --target tun --tun xrpl0 " + args, std::chrono::seconds(60));
  }
  ~TunServer() {
    if (cmd_) {
      cmd_->signal(SIGINT);
      cmd_->wait(std::chrono::seconds(10));
    }
  }

 private:
  std::unique_ptr<NetNs> ns_;
  std::unique_ptr<BackgroundCommand> cmd_;
};

TEST(ReplayProgramTun, EchoSuitesReplayTheSameAgainstXtcpEcho) {
  if (auto why = netns_unavailable_reason()) {
    GTEST_SKIP() << "replay over TUN needs root and /dev/net/tun: " << *why;
  }
  TunServer server;
  std::string why;
  ASSERT_TRUE(server.start(XTCP_ECHO_BIN, 7, &why)) << why;
  // The kernel owns 198.18.0.1, the captured clients' address: replay refuses it.
  CommandResult r = server.replay("--capture " + kHello);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("owns the client address 198.18.0.1"), std::string::npos) << r.output;
  int port_shift = 1;
  for (const char* name : {"echo/handshake-default", "echo/handshake-bare", "echo/bulk", "echo/interleaved",
                           "echo/lossy", "echo/closes", "adversarial/bad-checksums", "adversarial/bad-headers",
                           "adversarial/rst-syn-attacks", "adversarial/reordered"}) {
    // Every capture from its own client addresses: a live connection of one never meets the next.
    r = server.replay("--capture " + kPcaps + "/" + name + std::string(".pcap --client-ip 198.19.0.") + std::to_string(port_shift));
    port_shift += 20;
    EXPECT_EQ(r.exit_code, 0) << name << ":\n" << r.output;
    EXPECT_NE(r.output.find("result: same"), std::string::npos) << name << ":\n" << r.output;
  }
}

TEST(ReplayProgramTun, ImSuiteReplaysTheSameAgainstXtcpIm) {
  if (auto why = netns_unavailable_reason()) {
    GTEST_SKIP() << "replay over TUN needs root and /dev/net/tun: " << *why;
  }
  TunServer server;
  std::string why;
  ASSERT_TRUE(server.start(XTCP_IM_BIN, 5222, &why)) << why;
  const CommandResult r = server.replay("--capture " + kPcaps + "/im/chat.pcap --client-ip 198.19.0.1 --json");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"flows\": 2, \"flows_different\": 0"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace xtcp::replay
