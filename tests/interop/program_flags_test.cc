// The programs' command line and what they print, as a user sees them: --help and
// --version, both flag spellings and value suffixes, one-line errors with exit 2, failures
// explained with the library's reason (xtcp_last_error), every counter as JSON lines every
// --stats-interval and at once on SIGUSR1, and bench_tun_bulk deleting its network
// namespaces when a signal stops it.
#include <gtest/gtest.h>
#include <unistd.h>
#include <xtcp/xtcp.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/interop/im_chat.h"
#include "tests/interop/im_clients.h"
#include "tests/interop/program_server.h"

namespace xtcp::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

std::string base_name(const std::string& path) { return path.substr(path.rfind('/') + 1); }

// The help text's row of flag (its line, where the flag is one of the names before the
// description, up to the next flag's line) with runs of blanks and line ends made one
// space; "" when no row names it.
std::string help_row(const std::string& help, const std::string& flag) {
  std::istringstream in(help);
  std::string line;
  std::string row;
  bool inside = false;
  while (std::getline(in, line)) {
    const bool flag_line = line.rfind("  -", 0) == 0;
    if (flag_line) {
      if (inside) {
        break;
      }
      // The names: up to the first run of two blanks after the indentation.
      const std::string names = line.substr(0, line.find("  ", 2));
      std::istringstream words(names);
      std::string w;
      while (words >> w) {
        if (w == flag || w == flag + ",") {
          inside = true;
        }
      }
    } else if (inside && line.rfind("  ", 0) != 0) {
      break;  // the end of the flag list
    }
    if (inside) {
      row += line + " ";
    }
  }
  std::string squeezed;
  for (const char c : row) {
    if (c != ' ' || (!squeezed.empty() && squeezed.back() != ' ')) {
      squeezed += c;
    }
  }
  return squeezed;
}

struct ProgramHelp {
  std::string binary;
  std::vector<std::string> flags;
};

std::vector<ProgramHelp> programs() {
  const std::vector<std::string> server = {"--tun", "--shm", "--ip", "--kernel-ip", "--port", "--pcap", "--io", "--duration",
                                           "--pool-size", "--rx-buffer", "--tx-cache", "--tx-buffer",
                                           "--shards", "--stats-interval", "--stats-json"};
  std::vector<std::string> im = server;
  im.insert(im.end(), {"--backend", "--backend-data"});
  std::vector<ProgramHelp> p = {
      {XTCP_ECHO_BIN, server},
      {XTCP_IM_BIN, im},
      {XTCP_BACKEND_BIN,
       {"--listen", "--unix", "--max-pdu", "--max-tlpdus", "--latency-us", "--flush-bytes", "--max-queue",
        "--quiet", "--stats-interval", "--stats-json"}},
  };
#ifdef XTCP_BENCH_TUN_BULK_BIN
  p.push_back({XTCP_BENCH_TUN_BULK_BIN,
               {"--size", "--repeat", "--xtcp-buf", "--only", "--no-warmup", "--stats", "--txqueuelen"}});
#endif
  return p;
}

TEST(ProgramFlags, HelpListsEveryFlagWithItsDefaultOnStdout) {
  for (const ProgramHelp& p : programs()) {
    const std::string name = base_name(p.binary);
    for (const char* spelling : {"--help", "-h"}) {
      const SplitResult r = run_split({p.binary, spelling});
      EXPECT_EQ(r.exit_code, 0) << name << " " << spelling << "\n" << r.err;
      EXPECT_EQ(r.err, "") << name;
      EXPECT_EQ(r.out.rfind("usage: " + name + " ", 0), 0u) << r.out;
      for (const std::string& flag : p.flags) {
        const std::string row = help_row(r.out, flag);
        ASSERT_NE(row, "") << name << " --help does not list " << flag << ":\n" << r.out;
        EXPECT_TRUE(row.find("(default: ") != std::string::npos || row.find("(required)") != std::string::npos)
            << name << ": no default for " << flag << ":\n" << row;
      }
      EXPECT_NE(help_row(r.out, "--version"), "") << r.out;
      EXPECT_NE(r.out.find("Exit status: 0"), std::string::npos) << r.out;
    }
    // --help wins over a bad flag before it.
    const SplitResult bad_then_help = run_split({p.binary, "--bogus=1", "--help"});
    EXPECT_EQ(bad_then_help.exit_code, 0) << name << "\n" << bad_then_help.err;
    EXPECT_EQ(bad_then_help.out.rfind("usage: " + name + " ", 0), 0u) << bad_then_help.out;
  }
}

TEST(ProgramFlags, VersionNamesTheProjectAndTheLibrary) {
  for (const ProgramHelp& p : programs()) {
    const std::string name = base_name(p.binary);
    const SplitResult r = run_split({p.binary, "--version"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.rfind(name + " (xtcp) ", 0), 0u) << r.out;
  }
  const SplitResult echo = run_split({XTCP_ECHO_BIN, "--version"});
  EXPECT_NE(echo.out.find(std::string("libxtcp ") + xtcp_version()), std::string::npos) << echo.out;
}

// Every program answers a bad value, an unknown flag and a missing value the same way, and
// the message names the flag.
TEST(ProgramFlags, BadFlagsSayWhichAndExitTwo) {
  const std::string echo = XTCP_ECHO_BIN;
  const std::string im = XTCP_IM_BIN;
  const std::string backend = XTCP_BACKEND_BIN;
  const std::vector<std::string> base = {"--tun", "x0", "--ip", "198.18.0.2"};
  auto with = [&](const std::string& bin, std::vector<std::string> more) {
    std::vector<std::string> argv = {bin};
    argv.insert(argv.end(), base.begin(), base.end());
    if (bin == im) {
      argv.insert(argv.end(), {"--port", "5222"});
    }
    argv.insert(argv.end(), more.begin(), more.end());
    return argv;
  };
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{echo, "--port=x"}, "--port: 'x' is not a port number"},
      {with(echo, {"--port", "x"}), "--port: 'x' is not a port number"},
      {with(echo, {"--pool-size", "4X"}), "--pool-size: '4X' is not a size"},
      {with(echo, {"--rx-buffer=1K"}), "--rx-buffer: '1K' is outside 4K to 16G"},
      {with(echo, {"--duration=5parsecs"}), "--duration: '5parsecs' is not a duration"},
      {with(echo, {"--stats-interval", "1ms"}), "--stats-interval: '1ms' is outside 10ms to 24h"},
      {with(echo, {"--stats-json=yes"}), "--stats-json takes no value"},
      {with(echo, {"--tx-cache"}), "--tx-cache needs a value"},
      {with(echo, {"--bogus=1"}), "unknown flag --bogus"},
      {with(echo, {"stray"}), "unexpected argument 'stray'"},
      {{echo, "--ip", "198.18.0.2"}, "--tun NAME is required"},
      {with(echo, {"--shm", "s0"}), "--tun and --shm exclude each other"},
      {with(im, {"--shm", "s0"}), "--tun and --shm exclude each other"},
      {{echo, "--shm", "a/b", "--ip", "198.18.0.2"}, "--shm: a shared-memory link name"},
      {{echo, "--shm", "s0", "--ip", "198.18.0.2", "--kernel-ip", "198.18.0.1/24"}, "--kernel-ip: a shared-memory"},
      {with(echo, {"--io", "epoll"}), "--io: expected rw or uring, got 'epoll'"},
      {with(im, {"--io=aio"}), "--io: expected rw or uring, got 'aio'"},
      {{echo, "--shm", "s0", "--ip", "198.18.0.2", "--io", "uring"}, "--io uring: a shared-memory link"},
      {{im, "--tun", "x0", "--ip", "198.18.0.2"}, "--port N is required"},
      {with(im, {"--backend-data", "2"}), "--backend-data needs --backend"},
      {with(im, {"--backend", "nowhere:1"}), "--backend: "},
      {with(echo, {"--shards", "0"}), "--shards: '0' is not a whole number from 1 to 64"},
      {with(im, {"--shards", "65"}), "--shards: '65' is not a whole number from 1 to 64"},
      {{echo, "--shm", "s0", "--ip", "198.18.0.2", "--shards", "2"}, "--shards: a shared-memory link has one queue"},
      {{im, "--shm", "s0", "--ip", "198.18.0.2", "--port", "5222", "--shards", "1"}, "--shards: a shared-memory"},
      {with(im, {"--shards", "2", "--presence", "watched"}), "--presence: with --shards"},
      {{backend, "--unix", "/tmp/x", "--max-queue", "1K"}, "--max-queue: '1K' is outside 64K to 16G"},
      {{backend, "--unix", "/tmp/x", "--latency-us=1d"}, "--latency-us: '1d' is not a duration"},
  };
  for (const auto& [argv, want] : cases) {
    const SplitResult r = run_split(argv);
    std::string line;
    for (const auto& a : argv) {
      line += a + " ";
    }
    EXPECT_EQ(r.exit_code, 2) << line;
    EXPECT_NE(r.err.substr(0, r.err.find('\n')).find(want), std::string::npos) << line << "\n" << r.err;
  }
  std::vector<std::vector<std::string>> all;
  for (const auto& c : cases) {
    all.push_back(c.first);
  }
  expect_usage_errors(all);
}

// --flag=value and --flag value, sizes with K/M and a duration with ms, in one real run
// that ends by itself.
TEST(ProgramFlags, BothSpellingsAndSuffixesWork) {
  if (auto why = netns_unavailable_reason()) {
    GTEST_SKIP() << "needs root and /dev/net/tun: " << *why;
  }
  std::string error;
  auto ns = NetNs::create(&error);
  ASSERT_TRUE(ns) << error;
  const auto start = Clock::now();
  const CommandResult r = ns->run(std::string("exec ") + XTCP_ECHO_BIN +
                                      " --tun=xtcp0 --ip 198.18.0.2 --kernel-ip=198.18.0.1/24 --pool-size=64K"
                                      " --tx-cache 8M --duration=1500ms",
                                  seconds(20));
  const auto took = Clock::now() - start;
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_GE(took, milliseconds(1400));
  EXPECT_LT(took, seconds(10));
  EXPECT_EQ(counter_value(r.output, "pool.rx_buffer_size"), 64u * 1024) << r.output;
  EXPECT_EQ(counter_value(r.output, "pool.tx_cache_size"), 8u << 20) << r.output;
}

// A failed xtcp call is reported with the library's explanation, not only an errno.
TEST(ProgramErrors, FailuresCarryTheLibrarysReason) {
  if (auto why = netns_unavailable_reason()) {
    GTEST_SKIP() << "needs root and /dev/net/tun: " << *why;
  }
  std::string error;
  auto ns = NetNs::create(&error);
  ASSERT_TRUE(ns) << error;
  const std::string echo = std::string("exec ") + XTCP_ECHO_BIN;
  const CommandResult pcap = ns->run(echo + " --tun xtcp0 --ip 198.18.0.2 --kernel-ip 198.18.0.1/24"
                                            " --pcap /nonexistent-dir/x.pcap",
                                     seconds(20));
  EXPECT_EQ(pcap.exit_code, 1) << pcap.output;
  EXPECT_NE(pcap.output.find("xtcp-echo: "), std::string::npos) << pcap.output;
  EXPECT_NE(pcap.output.find("/nonexistent-dir/x.pcap"), std::string::npos) << pcap.output;
  EXPECT_NE(pcap.output.find("No such file or directory"), std::string::npos) << pcap.output;
  EXPECT_EQ(pcap.output.find("Input/output error"), std::string::npos) << pcap.output;

  const CommandResult lo = ns->run(echo + " --tun lo --ip 198.18.0.2", seconds(20));
  EXPECT_EQ(lo.exit_code, 1) << lo.output;
  EXPECT_NE(lo.output.find("xtcp-echo: "), std::string::npos) << lo.output;
  EXPECT_NE(lo.output.find("\"lo\""), std::string::npos) << lo.output;
  EXPECT_NE(lo.output.find("not a TUN"), std::string::npos) << "the reason, not just the errno: " << lo.output;
}

std::vector<std::string> json_lines(const std::string& output) {
  std::vector<std::string> lines;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '{') {
      lines.push_back(line);
    }
  }
  return lines;
}

// Parses every line with Python's json module; per line "<tcp.passive_opens> <im.online>
// <echo.accepted> <number of counters>" (-1 for a counter that is absent), or nullopt with
// a failure recorded.
std::optional<std::vector<std::vector<long long>>> parse_json_lines(const std::vector<std::string>& lines,
                                                                    const std::string& program) {
  if (!find_executable("python3")) {
    ADD_FAILURE() << "python3 is needed to check the JSON lines";
    return std::nullopt;
  }
  const std::string path = "/tmp/xtcp-stats-" + std::to_string(::getpid()) + ".jsonl";
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    ADD_FAILURE() << "cannot write " << path;
    return std::nullopt;
  }
  for (const std::string& l : lines) {
    std::fprintf(f, "%s\n", l.c_str());
  }
  std::fclose(f);
  const char* script =
      "import json, sys\n"
      "for line in open(sys.argv[1]):\n"
      "    o = json.loads(line)\n"
      "    assert set(o) == {'time', 'program', 'counters'}, o.keys()\n"
      "    assert o['program'] == sys.argv[2], o['program']\n"
      "    assert isinstance(o['time'], (int, float)) and o['time'] > 1.6e9, o['time']\n"
      "    c = o['counters']\n"
      "    assert all(isinstance(v, int) and v >= 0 for v in c.values())\n"
      "    print(c.get('tcp.passive_opens', -1), c.get('im.online', -1), c.get('echo.accepted', -1), len(c))\n";
  const CommandResult r = run_command({"python3", "-c", script, path, program}, seconds(30));
  std::remove(path.c_str());
  if (r.exit_code != 0) {
    ADD_FAILURE() << "the JSON lines do not parse: " << r.output;
    return std::nullopt;
  }
  std::vector<std::vector<long long>> rows;
  std::istringstream in(r.output);
  long long a = 0, b = 0, c = 0, d = 0;
  while (in >> a >> b >> c >> d) {
    rows.push_back({a, b, c, d});
  }
  return rows;
}

TEST(ProgramStats, ImPrintsEveryCounterAsJsonLinesEveryInterval) {
  START_PROGRAM(server, XTCP_IM_BIN, "--port 5222 --stats-interval 200ms --stats-json", "xtcp-im: ");
  std::vector<std::string> lines;
  server->in_namespace([&] {
    ImClients c;
    std::string err;
    ASSERT_TRUE(c.connect(kProgramStackIp, kImPort, 1, &err)) << err;
    c.send(0, "LOGIN alice");
    ASSERT_TRUE(c.pump_until([&] { return !c.at(0).answers.empty(); }, seconds(10)));
    EXPECT_EQ(c.at(0).answers.front(), "OK");
    // Two prints after the login, while alice stays connected (bounded: 5 s for 400 ms).
    const std::size_t before = json_lines(server->output_so_far()).size();
    c.pump_until([&] { return json_lines(server->output_so_far()).size() >= before + 2; }, seconds(5));
    lines = json_lines(server->output_so_far());
    EXPECT_GE(lines.size(), before + 2) << server->output_so_far();
  });
  const CommandResult r = server->stop();
  EXPECT_EQ(r.exit_code, 0) << r.output;
  ASSERT_GE(lines.size(), 2u);
  const auto rows = parse_json_lines(lines, "xtcp-im");
  ASSERT_TRUE(rows.has_value());
  ASSERT_EQ(rows->size(), lines.size());
  const auto& last = rows->back();
  EXPECT_GE(last[0], 1) << "tcp.passive_opens: " << lines.back();
  EXPECT_EQ(last[1], 1) << "im.online: " << lines.back();
  EXPECT_GT(last[3], 50) << "every engine, API and memory counter: " << lines.back();
  // The final print at exit is JSON too, and the text counters are not printed.
  EXPECT_GT(json_lines(r.output).size(), lines.size()) << r.output;
  EXPECT_FALSE(counter_value(r.output, "im.logins").has_value()) << r.output;
}

TEST(ProgramStats, Sigusr1PrintsAtOnce) {
  START_PROGRAM(server, XTCP_IM_BIN, "--port 5222 --stats-json", "xtcp-im: ");
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(json_lines(server->output_so_far()).size(), 0u) << "no interval: no periodic print";
  const auto sent = Clock::now();
  ASSERT_EQ(server->signal(SIGUSR1), 0);
  while (json_lines(server->output_so_far()).empty() && Clock::now() - sent < seconds(5)) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  const auto took = Clock::now() - sent;
  ASSERT_EQ(json_lines(server->output_so_far()).size(), 1u) << server->output_so_far();
  EXPECT_LT(took, milliseconds(500)) << "SIGUSR1 must not wait for a timer";
  EXPECT_TRUE(server->running());
  const CommandResult r = server->stop();
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const auto rows = parse_json_lines(json_lines(r.output), "xtcp-im");
  ASSERT_TRUE(rows.has_value());
  EXPECT_EQ(rows->size(), 2u) << "SIGUSR1's and the final one";
}

// With --stats-json stdout carries nothing but the JSON lines (the other messages go to
// stderr), so it can be piped into a JSON tool as it is.
TEST(ProgramStats, EchoStdoutIsOnlyJsonLines) {
  if (auto why = netns_unavailable_reason()) {
    GTEST_SKIP() << "needs root and /dev/net/tun: " << *why;
  }
  std::string error;
  auto ns = NetNs::create(&error);
  ASSERT_TRUE(ns) << error;
  const CommandResult r = ns->run(std::string("exec ") + XTCP_ECHO_BIN +
                                      " --tun xtcp0 --ip 198.18.0.2 --kernel-ip 198.18.0.1/24 --duration 1s"
                                      " --stats-interval 100ms --stats-json 2>/dev/null",
                                  seconds(20));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const std::vector<std::string> lines = json_lines(r.output);
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), static_cast<long>(lines.size())) << r.output;
  EXPECT_GE(lines.size(), 5u) << r.output;
  const auto rows = parse_json_lines(lines, "xtcp-echo");
  ASSERT_TRUE(rows.has_value());
  for (const auto& row : *rows) {
    EXPECT_EQ(row[2], 0) << "echo.accepted is in every line";
  }
}

// bench_tun_bulk makes network namespaces; a signal must not leave them behind. Started
// with a transfer far too long to finish, stopped by SIGHUP once its namespace exists.
TEST(BenchTunBulk, SighupDeletesItsNamespaces) {
#ifndef XTCP_BENCH_TUN_BULK_BIN
  GTEST_SKIP() << "bench_tun_bulk is not built (XTCP_BENCH=OFF)";
#else
  if (auto why = netns_unavailable_reason()) {
    GTEST_SKIP() << "needs root and /dev/net/tun: " << *why;
  }
  std::string error;
  auto bench = start_command(
      {XTCP_BENCH_TUN_BULK_BIN, "--only", "xtcp", "--size", "16G", "--no-warmup", "--repeat", "1"}, &error);
  ASSERT_TRUE(bench) << error;
  const std::string prefix = "xtcp-test-" + std::to_string(bench->pid()) + "-";
  const std::string ip = find_executable("ip").value_or("ip");
  auto namespaces = [&] {
    const CommandResult l = run_command({ip, "netns", "list"}, seconds(10));
    return l.output.find(prefix) != std::string::npos;
  };
  // The namespace exists and the transfer has begun (the header is printed just before).
  bool seen = false;
  for (int i = 0; i < 200 && !seen && bench->running(); ++i) {  // bounded: 10 s
    seen = bench->output_so_far().find("load average at start") != std::string::npos && namespaces();
    if (!seen) {
      std::this_thread::sleep_for(milliseconds(50));
    }
  }
  ASSERT_TRUE(seen) << "no namespace " << prefix << "* or no transfer: " << bench->output_so_far();
  ASSERT_EQ(bench->signal(SIGHUP), 0);
  const CommandResult r = bench->wait(seconds(20));
  EXPECT_FALSE(r.timed_out) << r.output;
  EXPECT_EQ(r.exit_code, 128 + SIGHUP) << r.output;
  EXPECT_FALSE(namespaces()) << "namespaces left behind: " << r.output;
#endif
}

}  // namespace
}  // namespace xtcp::test
