// xtcp-im with Linux kernel clients in a network namespace: 1,000 clients log in, see each
// other's presence, chat (every message delivered exactly once, in order per sender) and
// log out -- against the real program, and in-process behind a lossy FaultLink. Also the
// protocol's error answers over the network, and the program's flag handling.
#include <gtest/gtest.h>
#include <xtcp/xtcp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/src/runtime.h"
#include "server_examples/im/im_server.h"
#include "stack/netif/fault_link.h"
#include "stack/netif/tun_link.h"
#include "stack/wire/ipv4.h"
#include "tests/interop/im_chat.h"
#include "tests/interop/im_clients.h"
#include "tests/interop/program_server.h"
#include "tests/interop/tun_server.h"

namespace xtcp::test {
namespace {

using xtcp_examples::ImCounters;
using xtcp_examples::ImServer;
using xtcp_examples::ImServerStats;

// What the server counted, from the program's output or the in-process server.
struct ImTotals {
  std::uint64_t logins = 0;
  std::uint64_t logouts = 0;
  std::uint64_t messages = 0;
  std::uint64_t errors = 0;
  std::uint64_t resets = 0;
  std::uint64_t slow_consumers = 0;
};

void expect_totals(const ImTotals& t, const ChatPlan& plan) {
  const auto n = static_cast<std::uint64_t>(plan.clients);
  EXPECT_EQ(t.logins, n);
  EXPECT_EQ(t.logouts, n);
  EXPECT_EQ(t.messages, n * static_cast<std::uint64_t>(plan.messages));
  EXPECT_EQ(t.errors, 0u);
  EXPECT_EQ(t.resets, 0u);
  EXPECT_EQ(t.slow_consumers, 0u);
}

ImTotals totals_from_output(const std::string& out) {
  ImTotals t;
  auto get = [&](const char* name) {
    const auto v = counter_value(out, name);
    EXPECT_TRUE(v.has_value()) << "no counter " << name << " in:\n" << out;
    return v.value_or(~0ull);
  };
  t.logins = get("im.logins");
  t.logouts = get("im.logouts");
  t.messages = get("im.messages");
  t.errors = get("im.errors");
  t.resets = get("im.resets");
  t.slow_consumers = get("im.slow_consumers");
  return t;
}

TEST(ImProgram, ThousandKernelClientsChat) {
  START_PROGRAM(server, XTCP_IM_BIN, "--port 5222", "xtcp-im: ");
  const ChatPlan plan;
  server->in_namespace([&] { chat(plan); });
  const CommandResult r = server->stop();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_totals(totals_from_output(r.output), plan);
  // Pool statistics are printed; requests were acknowledged by answers (one answer may
  // acknowledge several pipelined requests), never by an ACK alone.
  const auto on_answers = counter_value(r.output, "pool.acks_on_answers");
  const auto alone = counter_value(r.output, "pool.acks_alone");
  ASSERT_TRUE(on_answers.has_value() && alone.has_value()) << r.output;
  EXPECT_GE(*on_answers, static_cast<std::uint64_t>(plan.clients) * 2);
  EXPECT_EQ(*alone, 0u) << r.output;
  std::printf("[ im chat  ] %llu ACKs on answers, %llu ACKs alone\n",
              static_cast<unsigned long long>(*on_answers), static_cast<unsigned long long>(*alone));
}

// The server's error answers over real TCP, and its limits.
TEST(ImProgram, ErrorsLimitsAndQuit) {
  START_PROGRAM(server, XTCP_IM_BIN, "--port 5222", "xtcp-im: ");
  server->in_namespace([&] { errors_limits_and_quit(); });
  const CommandResult r = server->stop();
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(counter_value(r.output, "im.quits"), 1u) << r.output;
}

TEST(ImProgram, BadFlagsExitTwo) {
  const char* bin = XTCP_IM_BIN;
  const std::vector<std::vector<std::string>> cases = {
      {bin},
      {bin, "--tun", "x0", "--ip", "198.18.0.2"},                    // no --port
      {bin, "--tun", "x0", "--ip", "198.18.0.300", "--port", "1"},   // bad address
      {bin, "--tun", "x0", "--ip", "198.18.0.2", "--port", "0"},
      {bin, "--tun", "x0", "--ip", "198.18.0.2", "--port", "70000"},
      {bin, "--tun", "x0", "--ip", "198.18.0.2", "--port", "1", "--kernel-ip", "198.18.0.1"},
      {bin, "--tun", "x0", "--ip", "198.18.0.2", "--port", "1", "--duration", "-1"},
      {bin, "--tun", "x0", "--ip", "198.18.0.2", "--port", "1", "--bogus", "1"},
      {bin, "--tun", "x0", "--ip", "198.18.0.2", "--port"},
      {XTCP_ECHO_BIN, "--tun", "x0"},
      {XTCP_ECHO_BIN, "--tun", "x0", "--ip", "198.18.0.2", "--port", "abc"},
  };
  expect_usage_errors(cases);
}

// xtcp-im's server loop in this process behind a FaultLink (user-space netem: this kernel
// has none): the same chat with packets lost in both directions.
class InProcessIm {
 public:
  static std::unique_ptr<InProcessIm> start(const MemLinkFaults& faults, std::string* skip_reason,
                                            std::string* error) {
    if (auto why = netns_unavailable_reason()) {
      *skip_reason = *why;
      return nullptr;
    }
    std::unique_ptr<InProcessIm> s(new InProcessIm());
    s->ns_ = NetNs::create(error);
    if (!s->ns_) {
      return nullptr;
    }
    InProcessIm* raw = s.get();
    s->thread_ = std::thread([raw, faults] { raw->run(faults); });
    if (!wait_until_started(raw->state_)) {
      *error = "server did not start: " + raw->error_;
      return nullptr;
    }
    return s;
  }
  ~InProcessIm() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  void in_namespace(const std::function<void()>& fn) const {
    std::string err;
    if (ns_->run_in_thread(fn, &err) < 0) {
      ADD_FAILURE() << "cannot enter namespace: " << err;
    }
  }
  struct Snapshot {
    ImCounters core;
    ImServerStats server;
    struct xtcp_pool_stats pool {};
    std::uint64_t lost = 0;
    std::uint64_t retransmits = 0;
  };
  Snapshot snapshot() {
    std::lock_guard<std::mutex> lock(mu_);
    return snap_;
  }

 private:
  InProcessIm() = default;
  void run(const MemLinkFaults& faults) {
    if (ns_->enter_on_this_thread(&error_) < 0) {
      state_ = -1;
      return;
    }
    std::uint32_t stack_addr = 0;
    auto tun = open_test_tun(&stack_addr, &error_);
    if (!tun) {
      state_ = -1;
      return;
    }
    SteadyClock clock;
    MemLinkFaults back = faults;
    back.seed = faults.seed + 1000;
    FaultLink lossy(*tun, clock, faults, back);
    api::RuntimeConfig config;
    config.stack.ip.local_addr = stack_addr;
    api::set_process_runtime(std::make_unique<api::Runtime>(config, lossy, clock));
    int rc = xtcp_initialize(8u << 20);
    ImServer server;
    std::string what = "xtcp_initialize";
    if (rc == 0) {
      rc = server.open(kImPort, &what);
    }
    if (rc < 0) {
      error_ = what + ": " + std::strerror(-rc);
      xtcp_finalize();
      state_ = -1;
      return;
    }
    state_ = 1;
    // Bounded by the test: the destructor sets stop_.
    while (!stop_.load()) {
      if (server.run_once(5) < 0) {
        break;
      }
      std::lock_guard<std::mutex> lock(mu_);
      snap_.core = server.core().counters();
      snap_.server = server.stats();
      xtcp_pool_stats(xtcp_default_pool(), &snap_.pool);
      snap_.lost = lossy.counters_to_inner().lost + lossy.counters_from_inner().lost;
      snap_.retransmits = api::process_runtime()->stack().tcp().stats().retransmits;
    }
    server.close();
    xtcp_finalize();
  }

  std::unique_ptr<NetNs> ns_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> state_{0};
  std::string error_;
  std::mutex mu_;
  Snapshot snap_;
};

TEST(ImInProcess, ThousandKernelClientsChatThroughLoss) {
  MemLinkFaults faults;
  faults.seed = 21;
  faults.loss = 0.02;
  std::string skip_reason, start_error;
  auto server = InProcessIm::start(faults, &skip_reason, &start_error);
  if (!server && !skip_reason.empty()) {
    GTEST_SKIP() << "interop test needs root and /dev/net/tun: " << skip_reason;
  }
  ASSERT_TRUE(server) << start_error;
  ChatPlan plan;
  plan.messages = 5;
  // 2% loss with 1,000 clients keeps the stack behind its input while it recovers lost
  // segments by timer (held up to 2 s while a backlog drains): a phase takes 20-45 s in an
  // optimized build and several times that under ASan. The bound only stops a hung run.
  plan.phase_timeout = std::chrono::seconds(400);
  server->in_namespace([&] { chat(plan); });
  // The server logs the last user out when it sees that client's FIN: poll (bounded).
  InProcessIm::Snapshot s = server->snapshot();
  for (int i = 0; i < 500 && s.core.logouts < static_cast<std::uint64_t>(plan.clients); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    s = server->snapshot();
  }
  ImTotals t;
  t.logins = s.core.logins;
  t.logouts = s.core.logouts;
  t.messages = s.core.messages;
  t.errors = s.core.errors;
  t.resets = s.server.resets;
  t.slow_consumers = s.server.slow_consumers;
  expect_totals(t, plan);
  EXPECT_GT(s.lost, 100u) << "the path was not lossy";
  EXPECT_GT(s.retransmits, 0u);
  std::printf("[ lossy im ] %llu packets lost, %llu retransmits, %llu answers from cache, "
              "%llu ACKs on answers, %llu ACKs alone\n",
              static_cast<unsigned long long>(s.lost), static_cast<unsigned long long>(s.retransmits),
              static_cast<unsigned long long>(s.pool.answers_from_cache),
              static_cast<unsigned long long>(s.pool.acks_on_answers),
              static_cast<unsigned long long>(s.pool.acks_alone));
}

}  // namespace
}  // namespace xtcp::test
