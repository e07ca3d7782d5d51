// The conversations of im_chat.h.
#include "tests/interop/im_chat.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <vector>

#include "tests/interop/im_clients.h"
#include "tests/interop/program_server.h"

namespace xtcp::test {

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
    c.send(i, "LOGIN " + im_user(i));
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
    names.push_back(im_user(i));
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
      c.send(i, "MSG " + im_user(to) + " " + std::to_string(i) + ":" + std::to_string(k) + " " + filler);
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
      ASSERT_EQ(from, im_user(sender)) << text;
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
      want.push_back(im_user(i));
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

void errors_limits_and_quit() {
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
}

}  // namespace xtcp::test
