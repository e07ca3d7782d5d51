// xtcp-loadgen through TUN, against the server programs in a namespace: the load
// generator's own TUN device, the kernel routing between it and the server's, every
// connection up and every answer checked (the CI-sized run: 20,000 connections). No
// timing is asserted; the load generator's exit status and JSON summary are the verdict.
#include <gtest/gtest.h>

#include <string>

#include "stack/netif/uring_tun_link.h"
#include "tests/interop/program_server.h"

namespace xtcp::test {
namespace {

// The number after "key": in the summary (the first occurrence).
long long json_number(const std::string& json, const std::string& key) {
  const auto at = json.find("\"" + key + "\": ");
  if (at == std::string::npos) {
    return -1;
  }
  return std::stoll(json.substr(at + key.size() + 4));
}

// Runs the load generator in the server's namespace (forwarding on: the kernel routes
// between the two TUN devices).
CommandResult run_loadgen(const ProgramServer& server, const std::string& args) {
  const auto fwd = server.ns().run("sysctl -qw net.ipv4.ip_forward=1");
  EXPECT_EQ(fwd.exit_code, 0) << fwd.output;
  return server.ns().run(std::string(XTCP_LOADGEN_BIN) + " --tun xtcpl0 " + args + " 2>/dev/null",
                         std::chrono::seconds(240));
}

TEST(LoadgenTun, TwentyThousandEchoConnectionsThroughTun) {
  START_PROGRAM(server, XTCP_ECHO_BIN, "--port 7", "xtcp-echo: ");
  const CommandResult r = run_loadgen(
      *server, "--target 198.18.0.2:7 --connections 20000 --ramp 10000 --interval 2s --duration 3s --drain 30s");
  EXPECT_EQ(r.exit_code, 0) << r.output.substr(0, 4000);
  EXPECT_EQ(json_number(r.output, "established"), 20000) << r.output.substr(0, 4000);
  EXPECT_EQ(json_number(r.output, "errors"), 0);
  EXPECT_GE(json_number(r.output, "answered"), 20000) << "every connection echoed at least once";
  const CommandResult stopped = server->stop();
  EXPECT_EQ(stopped.exit_code, 0) << stopped.output;
}

// Batched output on both sides (--io uring): the server's echoes of a round and the load
// generator's whole burst each go to the kernel in one io_uring_enter; every burst echo
// must still come back.
TEST(LoadgenTun, BurstWithIoUringOnBothSides) {
  std::string why;
  if (!UringTunLink::available(&why)) {
    GTEST_SKIP() << "io_uring unavailable: " << why;
  }
  START_PROGRAM(server, XTCP_ECHO_BIN, "--port 7 --io uring", "xtcp-echo: ");
  const CommandResult r = run_loadgen(*server,
                                      "--io uring --target 198.18.0.2:7 --workload burst --connections 5000 "
                                      "--ramp 5000 --bursts 2 --interval 1s --duration 60s --drain 30s");
  EXPECT_EQ(r.exit_code, 0) << r.output.substr(0, 4000);
  EXPECT_EQ(json_number(r.output, "established"), 5000) << r.output.substr(0, 4000);
  EXPECT_EQ(json_number(r.output, "errors"), 0);
  EXPECT_EQ(json_number(r.output, "lost"), 0);
  EXPECT_GE(json_number(r.output, "answered"), 10000) << "every connection echoed in both bursts";
  const CommandResult stopped = server->stop();
  EXPECT_EQ(stopped.exit_code, 0) << stopped.output;
}

// The IM workload of the CI run: 20,000 users log in through TUN and message each other;
// every message must arrive once, at its target, in its sender's order.
TEST(LoadgenTun, TwentyThousandImUsersThroughTun) {
  START_PROGRAM(server, XTCP_IM_BIN, "--port 7000 --presence watched --pool-size 16M", "xtcp-im: ");
  const CommandResult r = run_loadgen(*server,
                                      "--target 198.18.0.2:7000 --workload im --connections 20000 --ramp 10000 "
                                      "--interval 2s --duration 4s --drain 30s");
  EXPECT_EQ(r.exit_code, 0) << r.output.substr(0, 4000);
  EXPECT_EQ(json_number(r.output, "established"), 20000) << r.output.substr(0, 4000);
  EXPECT_EQ(json_number(r.output, "logins"), 20000);
  EXPECT_EQ(json_number(r.output, "errors"), 0);
  EXPECT_EQ(json_number(r.output, "lost"), 0);
  EXPECT_EQ(json_number(r.output, "duplicated"), 0);
  EXPECT_EQ(json_number(r.output, "reordered"), 0);
  EXPECT_GE(json_number(r.output, "answered"), 20000) << "every user sent at least once";
  const CommandResult stopped = server->stop();
  EXPECT_EQ(stopped.exit_code, 0) << stopped.output;
  EXPECT_NE(stopped.output.find("im.logins 20000"), std::string::npos) << stopped.output.substr(0, 2000);
}

}  // namespace
}  // namespace xtcp::test
