// What a program can learn from the library: why a call failed (xtcp_last_error), every
// counter by name (xtcp_counters), one connection's state (xtcp_connection_info), and
// reports of rare events through the log hook (xtcp_set_log), rate limited.
#include <gtest/gtest.h>

#include <cerrno>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "stack/core/log.h"
#include "tests/api/api_test_util.h"
#include "tests/support/netns.h"
#include "xtcp/xtcp.h"

namespace xtcp::test::api_bench {
namespace {

// EXPECT_HAS(text, part): text contains part (printed on failure).
#define EXPECT_HAS(text, part)                                                          \
  do {                                                                                  \
    const std::string text_ = (text);                                                   \
    EXPECT_NE(text_.find(part), std::string::npos) << "\"" << text_ << "\" lacks \"" << (part) << "\""; \
  } while (0)

std::string last_error() { return xtcp_last_error(); }

TEST(ApiVersion, TheLibraryAndTheHeaderAgree) {
  EXPECT_STREQ(xtcp_version(), XTCP_VERSION_STRING);
  EXPECT_EQ(XTCP_VERSION_NUMBER, XTCP_VERSION_MAJOR * 10000 + XTCP_VERSION_MINOR * 100 + XTCP_VERSION_PATCH);
  EXPECT_EQ(std::to_string(XTCP_VERSION_MAJOR) + "." + std::to_string(XTCP_VERSION_MINOR) + "." +
                std::to_string(XTCP_VERSION_PATCH),
            XTCP_VERSION_STRING);
}

TEST(ApiLastError, ExplainsConfigurationFailures) {
  ASSERT_EQ(api::process_runtime(), nullptr);
  EXPECT_EQ(xtcp_initialize(1u << 20), -ENODEV);
  EXPECT_HAS(last_error(), "xtcp_initialize");
  EXPECT_HAS(last_error(), "xtcp_configure");  // says what to do
  xtcp_config c{};
  c.local_addr = "198.18.0.300";
  EXPECT_EQ(xtcp_configure(&c), -EINVAL);
  EXPECT_HAS(last_error(), "local_addr");
  EXPECT_HAS(last_error(), "198.18.0.300");
  c.local_addr = "198.18.0.2";
  c.kernel_addr = "198.18.0.1/33";
  EXPECT_EQ(xtcp_configure(&c), -EINVAL);
  EXPECT_HAS(last_error(), "prefix");
  c.kernel_addr = nullptr;
  c.mtu = 100;
  EXPECT_EQ(xtcp_configure(&c), -EINVAL);
  EXPECT_HAS(last_error(), "mtu 100");
  // A call that fails with -EAGAIN (nothing to do) or succeeds leaves the message alone.
  c.mtu = 0;
  EXPECT_EQ(xtcp_configure(&c), 0);
  EXPECT_HAS(last_error(), "mtu 100");
  // Each thread has its own.
  std::string other;
  std::thread([&] { other = xtcp_last_error(); }).join();
  EXPECT_EQ(other, "");
}

TEST(ApiLastError, ExplainsCallsOnARunningStack) {
  Bench b;
  b.install();
  ASSERT_EQ(xtcp_initialize(1u << 20), 0);
  const int gd = xtcp_open_group(PF_INET, SOCK_STREAM, 0, 7000);
  ASSERT_GT(gd, 0);
  EXPECT_EQ(xtcp_open_group(PF_INET, SOCK_STREAM, 0, 7000), -EADDRINUSE);
  EXPECT_HAS(last_error(), "port 7000 already has a group");
  EXPECT_EQ(xtcp_setopt(gd, XTCP_OPT_FRAMING, 42), -EINVAL);
  EXPECT_HAS(last_error(), "value 42 is out of range for option 3");
  EXPECT_EQ(xtcp_setopt(gd, 999, 0), -EINVAL);
  EXPECT_HAS(last_error(), "unknown option 999");
  int cd = 0;
  char buf[8];
  EXPECT_EQ(xtcp_recv(gd, &cd, buf, sizeof buf), -EAGAIN);
  EXPECT_HAS(last_error(), "unknown option 999");  // -EAGAIN is no failure
  EXPECT_EQ(xtcp_send(gd, 12345, 0, "x", 1), -EBADF);
  EXPECT_EQ(last_error(), std::string("xtcp_send: ") + std::strerror(EBADF));
  ASSERT_EQ(xtcp_finalize(), 0);
}

// Failures of the device and the capture file, with the real TUN driver in a namespace.
TEST(ApiLastError, ExplainsDeviceAndCaptureFailures) {
  if (auto why = netns_unavailable_reason()) {
    GTEST_SKIP() << *why;
  }
  std::string err;
  auto ns = NetNs::create(&err);
  ASSERT_TRUE(ns) << err;
  ASSERT_EQ(ns->run_in_thread([] {
    xtcp_config c{};
    c.local_addr = "198.18.0.2";
    c.tun_name = "lo";  // exists, and is not a TUN device
    ASSERT_EQ(xtcp_configure(&c), 0);
    EXPECT_LT(xtcp_initialize(1u << 20), 0);
    EXPECT_HAS(std::string(xtcp_last_error()), "\"lo\"");
    EXPECT_HAS(std::string(xtcp_last_error()), "is not a TUN device");
    c.tun_name = "xtcp0";
    c.pcap_path = "/nonexistent-xtcp-dir/capture.pcap";
    ASSERT_EQ(xtcp_configure(&c), 0);
    EXPECT_EQ(xtcp_initialize(1u << 20), -EIO);
    EXPECT_HAS(std::string(xtcp_last_error()), "/nonexistent-xtcp-dir/capture.pcap");
    EXPECT_EQ(api::process_runtime(), nullptr);
  }, &err), 0) << err;
}

// The TUN device the library creates queues eight packets per connection the stack may hold
// (a burst in which every client sends at once must wait, not be dropped, and so must the
// clients' retransmissions meanwhile), from 10,000 to the kernel's limit of 524,288, or what
// tun_queue_len asks; reserved fields must be 0.
TEST(ApiConfig, TunQueueLengthIsSetOnTheDevice) {
  if (auto why = netns_unavailable_reason()) {
    GTEST_SKIP() << *why;
  }
  xtcp_config bad{};
  bad.local_addr = "198.18.0.2";
  bad.reserved[2] = 1;
  EXPECT_EQ(xtcp_configure(&bad), -EINVAL);
  EXPECT_HAS(std::string(xtcp_last_error()), "reserved");
  bad.reserved[2] = 0;
  bad.tun_queue_len = 524'289;
  EXPECT_EQ(xtcp_configure(&bad), -EINVAL);
  EXPECT_HAS(std::string(xtcp_last_error()), "524288");
  std::string err;
  auto ns = NetNs::create(&err);
  ASSERT_TRUE(ns) << err;
  struct Case {
    std::uint32_t asked, max_connections;
    const char* qlen;
  };
  for (const Case& k : {Case{0, 0, "qlen 524288"}, Case{0, 50'000, "qlen 400000"}, Case{0, 100, "qlen 10000"},
                        Case{3000, 0, "qlen 3000"}}) {
    ASSERT_EQ(ns->run_in_thread([&] {
      xtcp_config c{};
      c.local_addr = "198.18.0.2";
      c.tun_name = "xtcp0";
      c.tun_queue_len = k.asked;
      c.max_connections = k.max_connections;
      ASSERT_EQ(xtcp_configure(&c), 0);
      ASSERT_EQ(xtcp_initialize(1u << 20), 0) << xtcp_last_error();
    }, &err), 0) << err;
    const CommandResult link = ns->run("ip link show dev xtcp0");
    EXPECT_HAS(link.output, k.qlen);
    // The TUN device's own ring is the queue: no qdisc allocates rings of the same length in
    // front of it (for a multi-queue device, one per possible queue: gigabytes).
    EXPECT_HAS(ns->run("tc qdisc show dev xtcp0").output, "qdisc noqueue");
    EXPECT_EQ(xtcp_finalize(), 0);
  }
}

TEST(ApiCounters, EveryLayerByNameInAFixedOrder) {
  Bench b;
  b.install();
  ASSERT_EQ(xtcp_initialize(1u << 20), 0);
  const int gd = xtcp_open_group(PF_INET, SOCK_STREAM, 0, 7000);
  const int n = xtcp_counters(nullptr, 0);
  ASSERT_GT(n, 100);
  std::vector<xtcp_counter> c(static_cast<std::size_t>(n));
  ASSERT_EQ(xtcp_counters(c.data(), c.size()), n);
  std::map<std::string, std::uint64_t> by_name;
  for (const auto& e : c) {
    EXPECT_TRUE(by_name.emplace(e.name, e.value).second) << "duplicate " << e.name;
  }
  for (const char* name : {"ip.packets_in", "ip.drop_bad_checksum", "tcp.retransmits", "tcp.syn_cookies_sent",
                           "tcp.challenge_acks", "tcp.state.established", "tcp.state.time_wait",
                           "link.errors", "api.connections", "api.tx_cache_used", "api.acks_on_answers",
                           "api.zero_window_aborts", "api.refused_window_updates", "api.rx_committed",
                           "tcp.window_updates", "mem.tcp", "mem.total"}) {
    EXPECT_EQ(by_name.count(name), 1u) << name;
  }
  Client cl;
  b.handshake(cl);
  ASSERT_GT(xtcp_accept(gd), 0);
  std::vector<xtcp_counter> after(static_cast<std::size_t>(n));
  ASSERT_EQ(xtcp_counters(after.data(), after.size()), n);
  std::map<std::string, std::uint64_t> now;
  for (std::size_t i = 0; i < after.size(); ++i) {
    EXPECT_STREQ(after[i].name, c[i].name) << "same order";
    now[after[i].name] = after[i].value;
  }
  EXPECT_EQ(now["tcp.state.established"], by_name["tcp.state.established"] + 1);
  EXPECT_EQ(now["tcp.passive_opens"], 1u);
  EXPECT_EQ(now["api.connections"], 1u);
  EXPECT_GT(now["mem.total"], 0u);
  // The engine's memory by part: the parts add up to mem.tcp, and a connection shows in the
  // control blocks and the flow index.
  EXPECT_EQ(now["mem.tcp"], now["mem.tcp_hot_blocks"] + now["mem.tcp_busy_blocks"] + now["mem.tcp_flow_index"] +
                                now["mem.tcp_time_wait"] + now["mem.tcp_timers"]);
  EXPECT_GT(now["mem.tcp_hot_blocks"], 0u);
  EXPECT_GT(now["mem.tcp_flow_index"], by_name["mem.tcp_flow_index"]);
  EXPECT_EQ(now["mem.total"], now["mem.tcp"] + now["mem.rx_pools"] + now["mem.tx_cache"] + now["mem.api"]);
  // A short array gets the first entries and the total count.
  xtcp_counter two[2];
  EXPECT_EQ(xtcp_counters(two, 2), n);
  EXPECT_STREQ(two[0].name, c[0].name);
  EXPECT_EQ(xtcp_counters(nullptr, 3), -EINVAL);
  ASSERT_EQ(xtcp_finalize(), 0);
  EXPECT_EQ(xtcp_counters(nullptr, 0), -EINVAL);
}

TEST(ApiConnectionInfo, StateWindowsTimersAndBytes) {
  Bench b;
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 7000);
  Client cl;
  const int cd = b.open(cl, gd, 30000);
  ASSERT_EQ(b.rt->set_user_data(gd, cd, 77), 0);
  b.inject(cl, data(1, "REQUEST", 1, 30000));
  xtcp_conn_info i{};
  ASSERT_EQ(b.rt->conn_info(gd, cd, &i), 0);
  EXPECT_EQ(i.state, XTCP_STATE_ESTABLISHED);
  EXPECT_STREQ(i.state_name, "ESTABLISHED");
  EXPECT_EQ(ntohs(i.remote.sin_port), cl.port);
  EXPECT_EQ(ntohl(i.remote.sin_addr.s_addr), cl.addr);
  EXPECT_EQ(ntohs(i.local.sin_port), 7000);
  EXPECT_EQ(i.snd_wnd, 30000u);
  EXPECT_EQ(i.snd_mss, 1460u);
  EXPECT_EQ(i.rx_held, 7u) << "received, not acknowledged by the application";
  EXPECT_GT(i.rcv_wnd, 0u);
  EXPECT_GT(i.rto_us, 0u);
  EXPECT_EQ(i.user_data, 77u);
  const auto r = b.recv(gd);
  ASSERT_EQ(b.send(gd, cd, 7, "ANSWER"), 6);
  ASSERT_EQ(b.rt->conn_info(gd, cd, &i), 0);
  EXPECT_EQ(i.rx_held, 0u);
  EXPECT_EQ(i.tx_cached, 6u);
  EXPECT_EQ(i.bytes_in_flight, 6u);
  b.inject(cl, ack(7, 8));
  ASSERT_EQ(b.rt->conn_info(gd, cd, &i), 0);
  EXPECT_EQ(i.tx_cached, 0u);
  EXPECT_EQ(i.bytes_in_flight, 0u);
  EXPECT_GT(i.srtt_us + 1, 0u);
  // After a reset the record says so until the application closes the descriptor.
  Seg rst;
  rst.flags = kRst;
  rst.seq = 8;
  b.inject(cl, rst);
  ASSERT_EQ(b.rt->conn_info(gd, cd, &i), 0);
  EXPECT_EQ(i.state, XTCP_STATE_CLOSED);
  EXPECT_EQ(i.error, ECONNRESET);
  EXPECT_EQ(b.rt->conn_info(gd, cd, nullptr), -EINVAL);
  EXPECT_EQ(b.rt->conn_info(gd, cd + 1, &i), -EBADF);
}

struct LogLines {
  std::vector<std::pair<int, std::string>> lines;
  static void sink(int level, const char* message, void* arg) {
    static_cast<LogLines*>(arg)->lines.emplace_back(level, message);
  }
};

TEST(ApiLog, TableFullIsReportedOncePerPeriodWithTheCountLeftOut) {
  api::RuntimeConfig config = default_config();
  config.stack.tcp.max_connections = 1;
  Bench b(config);
  b.install();
  LogLines log;
  xtcp_set_log(&LogLines::sink, XTCP_LOG_INFO, &log);
  ASSERT_EQ(xtcp_initialize(1u << 20), 0);
  ASSERT_GT(xtcp_open_group(PF_INET, SOCK_STREAM, 0, 7000), 0);
  Client first;
  b.handshake(first);
  ASSERT_GT(xtcp_accept(1), 0);  // accepted: the accept timeout does not free its slot
  Seg syn;
  syn.flags = kSyn;
  syn.seq = 0;
  for (int i = 0; i < 5; ++i) {
    Client more;
    more.port = static_cast<std::uint16_t>(45000 + i);
    b.inject(more, syn);
  }
  ASSERT_EQ(log.lines.size(), 1u) << "one report for five refusals";
  EXPECT_EQ(log.lines[0].first, XTCP_LOG_WARNING);
  EXPECT_HAS(log.lines[0].second, "connection table full");
  b.advance(seconds(11));
  Client late;
  late.port = 46000;
  b.inject(late, syn);
  ASSERT_EQ(log.lines.size(), 2u);
  EXPECT_HAS(log.lines[1].second, "(4 more like it not reported)");
  // Below the level asked for, nothing; no callback, nothing.
  xtcp_set_log(&LogLines::sink, XTCP_LOG_ERROR, &log);
  b.advance(seconds(11));
  Client quiet;
  quiet.port = 46001;
  b.inject(quiet, syn);
  EXPECT_EQ(log.lines.size(), 2u);
  xtcp_set_log(nullptr, XTCP_LOG_DEBUG, nullptr);
  ASSERT_EQ(xtcp_finalize(), 0);
}

TEST(ApiLog, SynCookiesSwitchingOnIsReported) {
  api::RuntimeConfig config = default_config();
  config.stack.tcp.syn_backlog = 2;
  Bench b(config);
  b.install();
  LogLines log;
  xtcp_set_log(&LogLines::sink, XTCP_LOG_WARNING, &log);
  ASSERT_EQ(xtcp_initialize(1u << 20), 0);
  ASSERT_GT(xtcp_open_group(PF_INET, SOCK_STREAM, 0, 7000), 0);
  Seg syn;
  syn.flags = kSyn;
  syn.seq = 0;
  for (int i = 0; i < 4; ++i) {
    Client c;
    c.port = static_cast<std::uint16_t>(47000 + i);
    b.inject(c, syn);
  }
  ASSERT_EQ(log.lines.size(), 1u);
  EXPECT_HAS(log.lines[0].second, "port 7000: SYN queue full");
  EXPECT_HAS(log.lines[0].second, "SYN cookies");
  xtcp_set_log(nullptr, XTCP_LOG_DEBUG, nullptr);
  ASSERT_EQ(xtcp_finalize(), 0);
}

TEST(CoreLogger, LevelsAndRateLimitPerKind) {
  Logger l;
  LogLines out;
  l.report(LogKind::kLinkSend, LogLevel::kError, 0, "no sink: %d", 1);
  l.set_sink([](LogLevel lv, const char* m, void* a) { LogLines::sink(static_cast<int>(lv), m, a); },
             LogLevel::kWarning, &out);
  l.report(LogKind::kLinkSend, LogLevel::kInfo, seconds(1), "below the level");
  l.report(LogKind::kLinkSend, LogLevel::kWarning, seconds(2), "send %s", "failed");
  l.report(LogKind::kLinkSend, LogLevel::kWarning, seconds(3), "send failed again");
  l.report(LogKind::kLinkReceive, LogLevel::kError, seconds(3), "another kind");
  l.report(LogKind::kLinkSend, LogLevel::kWarning, seconds(12), "send failed later");
  ASSERT_EQ(out.lines.size(), 3u);
  EXPECT_EQ(out.lines[0].second, "send failed");
  EXPECT_EQ(out.lines[1].second, "another kind");
  EXPECT_EQ(out.lines[2].second, "send failed later (1 more like it not reported)");
}

}  // namespace
}  // namespace xtcp::test::api_bench
