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
#include "tests/interop/im_clients.h"
#include "tests/interop/program_server.h"

namespace xtcp::test {
namespace {

using xtcp_examples::ImCounters;
using xtcp_examples::ImServer;
using xtcp_examples::ImServerStats;

constexpr std::uint16_t kImPort = 5222;

std::string user(int i) { return "u" + std::to_string(i); }

// What the server counted, from the program's output or the in-process server.
struct ImTotals {
  std::uint64_t logins = 0;
  std::uint64_t logouts = 0;
  std::uint64_t messages = 0;
  std::uint64_t errors = 0;
  std::uint64_t resets = 0;
  std::uint64_t slow_consumers = 0;
};

struct ChatPlan {
  int clients = 1000;
  int messages = 8;        // per client
  int serial_logouts = 10;  // the first ones log out one at a time, the rest at once
  std::chrono::milliseconds phase_timeout{120000};
};

// Whole conversation, run inside the namespace; gtest assertions record what went wrong.
void chat(const ChatPlan& plan) {
  const int n = plan.clients;
  const int m = plan.messages;
  ImClients c;
  std::string err;
  auto t0 = std::chrono::steady_clock::now();
  auto phase = [&](const char* what) {
    const auto now = std::chrono::steady_clock::now();
    std::printf("[ im chat  ] %-10s %6.2f s\n", what, std::chrono::duration<double>(now - t0).count());
    t0 = now;
  };
  ASSERT_TRUE(c.connect(kProgramStackIp, kImPort, n, &err)) << err;
  phase("connect");

  // 1. Everyone logs in at once. Whoever the server logs in later is announced to the
  // earlier one, so of every pair exactly one has heard ONLINE of the other, once.
  for (int i = 0; i < n; ++i) {
    c.send(i, "LOGIN " + user(i));
  }
  ASSERT_TRUE(c.pump_until([&] { return c.answers_received() >= static_cast<std::uint64_t>(n); },
                           plan.phase_timeout))
      << c.answers_received() << " of " << n << " LOGIN answers";
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(c.at(i).answers.size(), 1u) << "client " << i;
    ASSERT_EQ(c.at(i).answers.front(), "OK") << "client " << i;
    c.at(i).answers.pop_front();
  }
  const std::uint64_t online_expected = static_cast<std::uint64_t>(n) * (n - 1) / 2;
  ASSERT_TRUE(c.pump_until([&] { return c.online_received() >= online_expected; }, plan.phase_timeout))
      << c.online_received() << " of " << online_expected << " ONLINE pushes";
  std::vector<bool> heard(static_cast<std::size_t>(n) * n, false);  // heard[i*n+j]: i got ONLINE j
  for (int i = 0; i < n; ++i) {
    for (const std::string& name : c.at(i).online) {
      ASSERT_TRUE(name.size() > 1 && name[0] == 'u') << name;
      const int j = std::stoi(name.substr(1));
      ASSERT_TRUE(j >= 0 && j < n && j != i) << "client " << i << " got ONLINE " << name;
      ASSERT_FALSE(heard[static_cast<std::size_t>(i) * n + j]) << "client " << i << " got ONLINE " << name << " twice";
      heard[static_cast<std::size_t>(i) * n + j] = true;
    }
  }
  for (int i = 0; i < n; ++i) {
    for (int j = i + 1; j < n; ++j) {
      ASSERT_NE(heard[static_cast<std::size_t>(i) * n + j], heard[static_cast<std::size_t>(j) * n + i])
          << "clients " << i << " and " << j << ": exactly one must announce the other";
    }
  }
  phase("logins");

  // 2. LIST from the first and the last.
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) {
    names.push_back(user(i));
  }
  std::sort(names.begin(), names.end());
  std::string users = "USERS";
  for (const std::string& s : names) {
    users += " " + s;
  }
  c.send(0, "LIST");
  c.send(n - 1, "LIST");
  ASSERT_TRUE(c.pump_until([&] { return !c.at(0).answers.empty() && !c.at(n - 1).answers.empty(); },
                           plan.phase_timeout));
  EXPECT_EQ(c.at(0).answers.front(), users);
  EXPECT_EQ(c.at(n - 1).answers.front(), users);
  c.at(0).answers.pop_front();
  c.at(n - 1).answers.pop_front();
  phase("list");

  // 3. Everyone sends m messages to others, all queued at once (pipelined).
  // expected[to][from] = message numbers in sending order.
  std::vector<std::map<int, std::vector<int>>> expected(n);
  const std::string filler = "the quick brown fox jumps over the lazy dog";
  for (int k = 0; k < m; ++k) {
    for (int i = 0; i < n; ++i) {
      const int to = (i + 1 + (k * 7919 + i * 31) % (n - 1)) % n;
      expected[to][i].push_back(k);
      c.send(i, "MSG " + user(to) + " " + std::to_string(i) + ":" + std::to_string(k) + " " + filler);
    }
  }
  const std::uint64_t total = static_cast<std::uint64_t>(n) * m;
  const std::uint64_t answers_before = c.answers_received();
  ASSERT_TRUE(c.pump_until(
      [&] { return c.answers_received() >= answers_before + total && c.from_received() >= total; },
      plan.phase_timeout))
      << (c.answers_received() - answers_before) << " of " << total << " answers, "
      << c.from_received() << " of " << total << " messages";
  for (int i = 0; i < n; ++i) {
    ImClient& ci = c.at(i);
    ASSERT_EQ(ci.answers.size(), static_cast<std::size_t>(m)) << "client " << i;
    for (const std::string& a : ci.answers) {
      ASSERT_EQ(a, "OK") << "client " << i;
    }
    ci.answers.clear();
    std::map<int, std::vector<int>> got;
    for (const auto& [from, text] : ci.from) {
      const std::size_t colon = text.find(':');
      const std::size_t space = text.find(' ');
      ASSERT_TRUE(colon != std::string::npos && space != std::string::npos) << text;
      const int sender = std::stoi(text.substr(0, colon));
      ASSERT_EQ(from, user(sender)) << text;
      ASSERT_EQ(text.substr(space + 1), filler);
      got[sender].push_back(std::stoi(text.substr(colon + 1, space - colon - 1)));
    }
    // Exactly once and in order per sender: the same lists.
    ASSERT_EQ(got, expected[i]) << "messages received by client " << i;
  }
  // Nothing beyond what was expected arrives late (no duplicates after retransmissions).
  c.pump_until([] { return false; }, std::chrono::milliseconds(300));
  EXPECT_EQ(c.from_received(), total);
  phase("messages");

  // 4. Logouts: the first ones one at a time (everyone still online hears each, in order),
  // then all others at once. The server closes each connection after the client's FIN.
  const int serial = std::min(plan.serial_logouts, n);
  std::uint64_t offline_expected = 0;
  for (int i = 0; i < serial; ++i) {
    c.shutdown_write(i);
    offline_expected += static_cast<std::uint64_t>(n - 1 - i);
    ASSERT_TRUE(c.pump_until([&] { return c.at(i).eof && c.offline_received() >= offline_expected; },
                             plan.phase_timeout))
        << "logout of client " << i << ": " << c.offline_received() << " of " << offline_expected
        << " OFFLINE pushes, eof " << c.at(i).eof;
  }
  for (int j = serial; j < n; ++j) {
    std::vector<std::string> want;
    for (int i = 0; i < serial; ++i) {
      want.push_back(user(i));
    }
    ASSERT_EQ(c.at(j).offline, want) << "OFFLINE pushes of client " << j;
  }
  phase("logouts");
  for (int i = serial; i < n; ++i) {
    c.shutdown_write(i);
  }
  ASSERT_TRUE(c.pump_until([&] { return c.eofs() >= static_cast<std::uint64_t>(n); }, plan.phase_timeout))
      << c.eofs() << " of " << n << " connections closed by the server";
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(c.at(i).error, 0) << "client " << i << ": " << std::strerror(c.at(i).error);
  }
  phase("closes");
}

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

#define START_PROGRAM(var, binary, args, ready)                                          \
  std::string skip_reason, start_error;                                                  \
  auto var = ProgramServer::start(binary, args, ready, &skip_reason, &start_error);     \
  if (!var && !skip_reason.empty()) {                                                    \
    GTEST_SKIP() << "interop test needs root and /dev/net/tun: " << skip_reason;        \
  }                                                                                      \
  ASSERT_TRUE(var) << start_error

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
  server->in_namespace([&] {
    ImClients c;
    std::string err;
    ASSERT_TRUE(c.connect(kProgramStackIp, kImPort, 3, &err)) << err;
    auto ask = [&](int i, const std::string& line) {
      c.send(i, line);
      EXPECT_TRUE(c.pump_until([&] { return !c.at(i).answers.empty() || c.at(i).eof; },
                               std::chrono::seconds(10)))
          << line;
      if (c.at(i).answers.empty()) {
        return std::string("<none>");
      }
      std::string a = c.at(i).answers.front();
      c.at(i).answers.pop_front();
      return a;
    };
    EXPECT_EQ(ask(0, "MSG bob hi"), "ERR not-logged-in");
    EXPECT_EQ(ask(0, "LIST"), "ERR not-logged-in");
    EXPECT_EQ(ask(0, "HELLO"), "ERR unknown-command");
    EXPECT_EQ(ask(0, ""), "ERR empty-line");
    EXPECT_EQ(ask(0, "LOGIN bad/name"), "ERR bad-name");
    EXPECT_EQ(ask(0, "LOGIN alice\r"), "OK");
    EXPECT_EQ(ask(1, "LOGIN alice"), "ERR name-taken");
    EXPECT_EQ(ask(0, "LOGIN alice2"), "ERR already-logged-in");
    EXPECT_EQ(ask(1, "LOGIN bob"), "OK");
    EXPECT_EQ(ask(0, "MSG carol hi"), "ERR offline");
    EXPECT_EQ(ask(0, "MSG bob"), "ERR usage MSG to text");
    EXPECT_EQ(ask(0, "LIST"), "USERS alice bob");
    EXPECT_EQ(ask(0, "MSG bob " + std::string(2000, 'x')), "ERR line-too-long");
    EXPECT_EQ(ask(0, "MSG bob after the long line"), "OK");
    ASSERT_TRUE(c.pump_until([&] { return !c.at(1).from.empty(); }, std::chrono::seconds(10)));
    EXPECT_EQ(c.at(1).from.front().second, "after the long line");
    EXPECT_EQ(c.at(1).from.size(), 1u);
    // Several requests in one segment: one answer each, in order.
    c.send(1, "LIST\nMSG alice one\nMSG alice two");
    ASSERT_TRUE(c.pump_until([&] { return c.at(1).answers.size() >= 3 && c.at(0).from.size() >= 2; },
                             std::chrono::seconds(10)));
    EXPECT_EQ(c.at(1).answers[0], "USERS alice bob");
    EXPECT_EQ(c.at(1).answers[1], "OK");
    EXPECT_EQ(c.at(1).answers[2], "OK");
    c.at(1).answers.clear();
    EXPECT_EQ(c.at(0).from[0].second, "one");
    EXPECT_EQ(c.at(0).from[1].second, "two");
    // QUIT: BYE, OFFLINE to the others, the server closes.
    EXPECT_EQ(ask(1, "QUIT"), "BYE");
    ASSERT_TRUE(c.pump_until([&] { return c.at(1).eof && !c.at(0).offline.empty(); }, std::chrono::seconds(10)));
    EXPECT_EQ(c.at(0).offline.front(), "bob");
    // A line longer than the framing limit (8192 bytes) resets the connection.
    c.send(2, std::string(10000, 'y'));
    EXPECT_TRUE(c.pump_until([&] { return c.at(2).eof; }, std::chrono::seconds(10)));
    EXPECT_EQ(ask(0, "LIST"), "USERS alice");
  });
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
  for (const auto& argv : cases) {
    const CommandResult r = run_command(argv, std::chrono::seconds(10));
    std::string line;
    for (const auto& a : argv) {
      line += a + " ";
    }
    EXPECT_EQ(r.exit_code, 2) << line << "\n" << r.output;
    EXPECT_NE(r.output.find("usage:"), std::string::npos) << line << "\n" << r.output;
  }
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
    // Bounded wait for start-up (5 s).
    for (int i = 0; i < 500 && raw->state_.load() == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (raw->state_.load() != 1) {
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
    TunOptions tun_opts;
    tun_opts.name = "xtcp0";
    auto tun = TunLink::open(tun_opts, &error_);
    std::uint32_t kernel_addr = 0;
    std::uint32_t stack_addr = 0;
    wire::parse_ipv4("198.18.0.1", &kernel_addr);
    wire::parse_ipv4(kProgramStackIp, &stack_addr);
    if (!tun || configure_kernel_side("xtcp0", kernel_addr, 24, &error_) < 0) {
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
