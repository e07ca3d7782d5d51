// Smoke test of bench/side_by_side.py (docs/benchmarks.md, "side by side"): at 500
// connections it runs every workload against xtcp and the kernel, writes a well-formed
// section between the markers of a scratch markdown file (the rest of the file untouched),
// and leaves no namespace behind, also when SIGTERM stops it in the middle of a run.
// Nothing timing-related is checked: a run that failed on a busy machine is still a
// well-formed table row.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/netns.h"

namespace xtcp::test {
namespace {

#if defined(XTCP_SIDE_BY_SIDE_PY) && defined(XTCP_SIDE_BY_SIDE_BIN_DIR)

constexpr const char* kBegin = "<!-- side-by-side:begin -->";
constexpr const char* kEnd = "<!-- side-by-side:end -->";

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::set<std::string> namespaces_named(const std::string& prefix) {
  std::set<std::string> out;
  const CommandResult r = run_command({"ip", "netns", "list"}, std::chrono::seconds(10));
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) {
    const std::string name = line.substr(0, line.find(' '));
    if (name.rfind(prefix, 0) == 0) {
      out.insert(name);
    }
  }
  return out;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) {
    ++n;
  }
  return n;
}

// Every markdown table in text: each row has as many cells as its header, and the second
// line is the separator. Returns what is wrong, or "".
std::string check_tables(const std::string& text) {
  std::istringstream lines(text);
  std::vector<std::string> table;
  std::string problem;
  auto finish = [&] {
    if (table.empty()) {
      return;
    }
    const std::size_t cells = count(table[0], "|");
    if (table.size() < 3 || table[1].rfind("|---", 0) != 0) {
      problem += "table without separator or rows: " + table[0] + "\n";
    }
    for (const std::string& row : table) {
      if (count(row, "|") != cells) {
        problem += "row with " + std::to_string(count(row, "|")) + " bars, header " + std::to_string(cells) +
                   ": " + row + "\n";
      }
    }
    table.clear();
  };
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("|", 0) == 0) {
      table.push_back(line);
    } else {
      finish();
    }
  }
  finish();
  return problem;
}

std::string scratch_dir() {
  char dir[] = "/tmp/xtcp-sbs-test-XXXXXX";
  return ::mkdtemp(dir) != nullptr ? std::string(dir) : std::string();
}

std::vector<std::string> script_argv(const std::string& dir, std::vector<std::string> extra) {
  std::vector<std::string> argv = {"python3", XTCP_SIDE_BY_SIDE_PY, "--sizes", "500", "--no-plots",
                                   "--bin-dir", XTCP_SIDE_BY_SIDE_BIN_DIR, "--out", dir + "/out",
                                   "--doc", dir + "/doc.md", "--img-dir", dir + "/img",
                                   "--floor-duration", "0.5", "--drain", "5", "--bursts", "2",
                                   "--burst-interval", "0.5"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

#define SKIP_WITHOUT_NAMESPACES()                                              \
  if (auto why = netns_unavailable_reason()) {                                 \
    GTEST_SKIP() << "needs root, /dev/net/tun and namespaces: " << *why;       \
  }                                                                            \
  if (!find_executable("python3")) {                                           \
    GTEST_SKIP() << "python3 not found";                                       \
  }

TEST(SideBySide, FiveHundredConnectionsWriteAWellFormedSection) {
  SKIP_WITHOUT_NAMESPACES();
  const std::string dir = scratch_dir();
  ASSERT_FALSE(dir.empty());
  const std::string doc = dir + "/doc.md";
  {
    std::ofstream out(doc);
    out << "# Benchmarks\n\nAbove.\n\n" << kBegin << "\nold section\n" << kEnd << "\n\nBelow.\n";
  }
  const auto before = namespaces_named("xtcp-sbs-");
  const CommandResult r = run_command(script_argv(dir, {"--min-duration", "2"}), std::chrono::seconds(150));
  EXPECT_EQ(r.exit_code, 0) << r.output.substr(r.output.size() > 4000 ? r.output.size() - 4000 : 0);
  EXPECT_FALSE(r.timed_out);

  const std::string text = read_file(doc);
  EXPECT_EQ(text.rfind("# Benchmarks\n\nAbove.\n\n", 0), 0u) << "what comes before the markers stays";
  EXPECT_NE(text.find(std::string(kEnd) + "\n\nBelow.\n"), std::string::npos) << "and what comes after";
  EXPECT_EQ(count(text, kBegin), 1u);
  EXPECT_EQ(count(text, kEnd), 1u);
  EXPECT_EQ(text.find("old section"), std::string::npos);
  const auto b = text.find(kBegin);
  const auto e = text.find(kEnd);
  ASSERT_TRUE(b != std::string::npos && e != std::string::npos && b < e) << text;
  const std::string section = text.substr(b, e - b);
  EXPECT_NE(section.find("--sizes 500"), std::string::npos) << "the exact command line";
  EXPECT_NE(section.find("#### IM"), std::string::npos) << section;
  EXPECT_NE(section.find("#### Burst"), std::string::npos) << section;
  EXPECT_NE(section.find("TUN floor"), std::string::npos) << section;
  // One row per server in the IM and burst tables, one per server and workload in the
  // memory table (when its run got that far), each ok or FAILED with a reason.
  EXPECT_GE(count(section, "| 500 | xtcp | "), 2u) << section;
  EXPECT_GE(count(section, "| 500 | kernel (1 proc) | "), 2u) << section;
  EXPECT_EQ(count(section, "| 500 | xtcp | ok |") + count(section, "| 500 | xtcp | **FAILED**") +
                count(section, "| 500 | kernel (1 proc) | ok |") +
                count(section, "| 500 | kernel (1 proc) | **FAILED**"),
            4u)
      << section;
  EXPECT_EQ(check_tables(section), "");
  const std::string summary = read_file(dir + "/out/summary.json");
  for (const char* tag : {"N500-xtcp-im", "N500-kernel-im", "N500-xtcp-burst", "N500-kernel-burst"}) {
    EXPECT_NE(summary.find(tag), std::string::npos) << tag;
    EXPECT_FALSE(read_file(dir + "/out/" + tag + ".run.json").empty()) << tag;
  }
  EXPECT_EQ(namespaces_named("xtcp-sbs-"), before) << "every namespace of the script is gone";
  run_command({"rm", "-rf", dir});
}

// SIGTERM in the middle of a run: the script removes the run's namespace (and what runs in
// it) and exits 128 + 15.
TEST(SideBySide, SigtermRemovesTheNamespace) {
  SKIP_WITHOUT_NAMESPACES();
  const std::string dir = scratch_dir();
  ASSERT_FALSE(dir.empty());
  std::string error;
  auto cmd = start_command(script_argv(dir, {"--servers", "xtcp", "--workloads", "im", "--min-duration", "60",
                                             "--no-doc"}),
                           &error);
  ASSERT_TRUE(cmd) << error;
  const std::string mine = "xtcp-sbs-" + std::to_string(cmd->pid()) + "-";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(40);
  while (namespaces_named(mine).empty() && cmd->running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_FALSE(namespaces_named(mine).empty()) << cmd->output_so_far();
  std::this_thread::sleep_for(std::chrono::seconds(3));  // the server and the load generator run
  ASSERT_EQ(cmd->signal(SIGTERM), 0);
  const CommandResult r = cmd->wait(std::chrono::seconds(45));
  EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.output;
  EXPECT_TRUE(namespaces_named(mine).empty()) << r.output;
  run_command({"rm", "-rf", dir});
}

#else

TEST(SideBySide, NotBuilt) { GTEST_SKIP() << "bench/ is not built (XTCP_BENCH=OFF): no side_by_side.py smoke test"; }

#endif

}  // namespace
}  // namespace xtcp::test
