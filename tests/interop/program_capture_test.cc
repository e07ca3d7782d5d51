// A per-connection capture taken from a running xtcp-im: --capture picks one kernel
// client by address and port, SIGUSR2 stops (and restarts) it, and tshark reads the file
// with no error or warning: exactly that connection's 4-tuple, from its SYN to its FIN.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/interop/program_server.h"

namespace xtcp::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::uint16_t kImPort = 5222;
constexpr std::uint16_t kCapturedPort = 41001;
constexpr std::uint16_t kOtherPort = 41002;

// Waits (bounded) until the program printed a line containing text.
bool wait_for_output(const ProgramServer& server, const std::string& text, seconds limit = seconds(10)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (server.output_so_far().find(text) == std::string::npos) {
    if (std::chrono::steady_clock::now() > until) {
      return false;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  return true;
}

// One kernel client from local port `port`: LOGIN, its OK, QUIT, BYE, then both ends close
// (the server closes after BYE; the client reads the end and closes). "" or what failed.
std::string login_and_quit(std::uint16_t port, const std::string& user) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    return "socket failed";
  }
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_port = htons(port);
  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_port = htons(kImPort);
  ::inet_pton(AF_INET, kProgramStackIp, &server.sin_addr);
  std::string error;
  std::string got;
  const std::string request = "LOGIN " + user + "\nQUIT\n";
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    error = std::string("bind to port ") + std::to_string(port) + " failed";
  } else if (::connect(fd, reinterpret_cast<sockaddr*>(&server), sizeof server) != 0) {
    error = "connect failed";
  } else if (::send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
    error = "send failed";
  } else {
    char buf[256];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        if (n < 0) {
          error = "no end of the connection from the server";
        }
        break;
      }
      got.append(buf, static_cast<std::size_t>(n));
    }
    if (error.empty() && got != "OK\nBYE\n") {
      error = "answers '" + got + "', expected OK and BYE";
    }
  }
  ::close(fd);
  return error;
}

// tshark's stderr without its note about running as root (about how it runs, not the file).
std::string tshark_complaints(const std::string& err) {
  std::istringstream lines(err);
  std::string out;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("Running as user \"root\"", 0) != 0 && !line.empty()) {
      out += line + "\n";
    }
  }
  return out;
}

TEST(ProgramCapture, ImCapturesOneConnectionThatTsharkReadsCleanly) {
  const auto tshark = find_executable("tshark");
  if (!tshark) {
    GTEST_SKIP() << "tshark not installed (apt-get install tshark)";
  }
  const std::string path = std::string("/tmp/xtcp-program-capture-") + std::to_string(::getpid()) + ".pcap";
  std::remove(path.c_str());
  const std::string filter = std::string("remote=198.18.0.1:") + std::to_string(kCapturedPort);
  START_PROGRAM(server, XTCP_IM_BIN,
                "--port 5222 --capture " + filter + " --capture-file " + path, "xtcp-im: ");
  ASSERT_TRUE(wait_for_output(*server, "capture 1 started: " + filter + " -> " + path)) << server->output_so_far();
  std::string err_captured;
  std::string err_other;
  server->in_namespace([&] {
    err_other = login_and_quit(kOtherPort, "bob");
    err_captured = login_and_quit(kCapturedPort, "alice");
  });
  ASSERT_EQ(err_captured, "");
  ASSERT_EQ(err_other, "");
  // The client's last ACK leaves as its close() returns; let the server take it in.
  std::this_thread::sleep_for(milliseconds(200));
  ASSERT_EQ(server->signal(SIGUSR2), 0);
  ASSERT_TRUE(wait_for_output(*server, "capture 1 stopped: ")) << server->output_so_far();

  // tshark opens it: exit 0, nothing on stderr.
  const SplitResult plain = run_split({*tshark, "-r", path}, seconds(60));
  EXPECT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(tshark_complaints(plain.err), "") << "tshark -r " << path;
  // No malformed packet, no warning or error in the expert analysis.
  const SplitResult expert = run_split({*tshark, "-r", path, "-q", "-z", "expert"}, seconds(60));
  EXPECT_EQ(expert.exit_code, 0) << expert.err;
  EXPECT_EQ(tshark_complaints(expert.err), "");
  EXPECT_EQ(expert.out.find("Malformed"), std::string::npos) << expert.out;
  EXPECT_EQ(expert.out.find("Errors ("), std::string::npos) << expert.out;
  EXPECT_EQ(expert.out.find("Warns ("), std::string::npos) << expert.out;
  // Every packet is the captured client's 4-tuple; its SYN, SYN-ACK and both FINs are there.
  const SplitResult fields = run_split({*tshark, "-r", path, "-T", "fields", "-E", "separator=,", "-e", "ip.src",
                                        "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport", "-e",
                                        "tcp.flags.syn", "-e", "tcp.flags.ack", "-e", "tcp.flags.fin", "-e",
                                        "tcp.flags.reset", "-e", "tcp.len"},
                                       seconds(60));
  ASSERT_EQ(fields.exit_code, 0) << fields.err;
  const std::string client = std::string("198.18.0.1,") + std::to_string(kCapturedPort);
  const std::string stack = std::string(kProgramStackIp) + "," + std::to_string(kImPort);
  int packets = 0, syn = 0, syn_ack = 0, fin_in = 0, fin_out = 0, resets = 0, bytes_in = 0, bytes_out = 0;
  for (const std::string& line : split_text(fields.out, '\n')) {
    const auto f = split_text(line, ',');
    ASSERT_EQ(f.size(), 9u) << line;
    const std::string src = f[0] + "," + f[1];
    const std::string dst = f[2] + "," + f[3];
    const bool in = src == client && dst == stack;
    const bool out = src == stack && dst == client;
    ASSERT_TRUE(in || out) << "a packet of another flow: " << line;
    ++packets;
    const bool is_syn = f[4] == "1", is_ack = f[5] == "1", is_fin = f[6] == "1";
    syn += in && is_syn && !is_ack ? 1 : 0;
    syn_ack += out && is_syn && is_ack ? 1 : 0;
    fin_in += in && is_fin ? 1 : 0;
    fin_out += out && is_fin ? 1 : 0;
    resets += f[7] == "1" ? 1 : 0;
    (in ? bytes_in : bytes_out) += std::stoi(f[8]);
  }
  EXPECT_EQ(syn, 1);
  EXPECT_EQ(syn_ack, 1);
  EXPECT_EQ(fin_in, 1);
  EXPECT_EQ(fin_out, 1);
  EXPECT_EQ(resets, 0);
  EXPECT_EQ(bytes_in, static_cast<int>(std::string("LOGIN alice\nQUIT\n").size()));
  EXPECT_EQ(bytes_out, static_cast<int>(std::string("OK\nBYE\n").size()));
  EXPECT_GE(packets, 8) << fields.out;  // handshake 3, data both ways, FIN + ACK both ways

  // SIGUSR2 again starts the capture anew; the program's exit stops it.
  ASSERT_EQ(server->signal(SIGUSR2), 0);
  ASSERT_TRUE(wait_for_output(*server, "capture 2 started: " + filter)) << server->output_so_far();
  const CommandResult r = server->stop();
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("capture 2 stopped: 0 packets, 0 bytes -> " + path), std::string::npos) << r.output;
  std::remove(path.c_str());
}

// A capture whose file cannot be opened is reported and the program serves on.
TEST(ProgramCapture, UnwritableFileIsReportedAndTheServerRuns) {
  START_PROGRAM(server, XTCP_IM_BIN, "--port 5222 --capture all --capture-file /nonexistent-dir/c.pcap",
                "xtcp-im: ");
  ASSERT_TRUE(wait_for_output(*server, "cannot start capture all")) << server->output_so_far();
  std::string err;
  server->in_namespace([&] { err = login_and_quit(kOtherPort, "carol"); });
  EXPECT_EQ(err, "");
  const CommandResult r = server->stop();
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("No such file or directory"), std::string::npos) << r.output;
}

// Bad --capture flags are explained, exit 2, for every program on ServerCommandLine.
TEST(ProgramCapture, BadCaptureFlagsExitTwo) {
  const std::vector<std::string> base = {"--tun", "x0", "--ip", "198.18.0.2", "--port", "5222"};
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--capture", "remote=198.18.0.300", "--capture-file", "/tmp/c.pcap"}, "is not an IPv4 address"},
      {{"--capture", "remote=198.18.0.5:0", "--capture-file", "/tmp/c.pcap"}, "is not a port number"},
      {{"--capture", "local-port=7000"}, "needs --capture-file PATH"},
      {{"--capture", "", "--capture-file", "/tmp/c.pcap"}, "expected comma-separated"},
      {{"--capture", "all,local-port=1", "--capture-file", "/tmp/c.pcap"}, "'all' takes every packet"},
      {{"--capture", "colour=red", "--capture-file", "/tmp/c.pcap"}, "'colour=red'"},
      {{"--capture", "local-port=1,local-port=2", "--capture-file", "/tmp/c.pcap"}, "given twice"},
      {{"--capture-file", "/tmp/c.pcap"}, "--capture-file needs --capture FILTER"},
      {{"--capture", "all", "--capture-file", "/tmp/c.pcap", "--capture-rotate", "1K"}, "at least 4K"},
      {{"--capture", "all", "--capture-file", "/tmp/c.pcap", "--capture-rotate", "1M,0"}, "1 to 10000"},
      {{"--capture", "all", "--capture-file", "/tmp/c.pcap", "--capture-snaplen", "0"}, "--capture-snaplen"},
      {{"--capture", "all,file=/tmp/a", "--capture", "local-port=9,file=/tmp/a"}, "two captures write to /tmp/a"},
      {{"--capture", "all", "--capture-file", "/tmp/c.pcap", "--shards", "2"}, "with --shards"},
  };
  std::vector<std::vector<std::string>> all;
  for (const char* bin : {XTCP_ECHO_BIN, XTCP_IM_BIN}) {
    for (const auto& [more, want] : cases) {
      std::vector<std::string> argv = {bin};
      argv.insert(argv.end(), base.begin(), base.end());
      argv.insert(argv.end(), more.begin(), more.end());
      const SplitResult r = run_split(argv);
      EXPECT_EQ(r.exit_code, 2) << more[0] << " " << more[1];
      EXPECT_NE(r.err.find(want), std::string::npos) << r.err;
      all.push_back(argv);
    }
  }
  expect_usage_errors(all);
}

}  // namespace
}  // namespace xtcp::test
