// build/bin/xtcp-kernel-server as a user runs it, in a network namespace each test creates
// (root; skipped with the reason otherwise): echo with two worker processes and 200 kernel
// clients, IM users on different workers reaching each other (MSG/FROM in order, LIST,
// ERR name-taken and ERR offline across workers, presence in both modes, a slow consumer),
// xtcp-loadgen (IM and echo, 2000 connections, every answer checked) against it, a worker
// that dies taking the server down, and the command line (bad flags exit 2). Suite names
// start with kernel_server so that `ctest -R kernel_server` picks exactly this folder.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/netns.h"

namespace xtcp {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr const char* kBin = XTCP_KERNEL_SERVER_BIN;
constexpr const char* kLoadgen = XTCP_LOADGEN_BIN;

// "name value" lines -> map (the last block wins: later lines overwrite earlier ones).
std::map<std::string, std::uint64_t> parse_counters(const std::string& text) {
  std::map<std::string, std::uint64_t> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const std::size_t sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || line.find(' ', sp + 1) != std::string::npos) {
      continue;
    }
    const std::string value = line.substr(sp + 1);
    if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    out[line.substr(0, sp)] = std::stoull(value);
  }
  return out;
}

// The server in a namespace of its own. `with_target_address`: 198.18.0.1/32 on lo (for
// the load generator, whose TUN route brings the answers back to it).
class KernelServer {
 public:
  static std::unique_ptr<KernelServer> start(const std::string& args, bool with_target_address,
                                             std::string* skip, std::string* error) {
    if (auto why = netns_unavailable_reason()) {
      *skip = *why;
      return nullptr;
    }
    std::unique_ptr<KernelServer> s(new KernelServer());
    s->ns_ = NetNs::create(error);
    if (!s->ns_) {
      return nullptr;
    }
    if (with_target_address) {
      const CommandResult r = s->ns_->run("ip addr add 198.18.0.1/32 dev lo");
      if (r.exit_code != 0) {
        *error = "ip addr add: " + r.output;
        return nullptr;
      }
    }
    s->cmd_ = s->ns_->start(std::string("exec ") + kBin + " " + args, error);
    if (!s->cmd_) {
      return nullptr;
    }
    for (int i = 0; i < 500; ++i) {  // bounded: 10 s for the start-up line
      if (s->cmd_->output_so_far().find("xtcp-kernel-server: ") != std::string::npos &&
          s->cmd_->output_so_far().find(" worker process") != std::string::npos) {
        return s;
      }
      if (!s->cmd_->running()) {
        *error = "exited at start-up: " + s->cmd_->wait().output;
        return nullptr;
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    *error = "no start-up line: " + s->cmd_->output_so_far();
    return nullptr;
  }

  ~KernelServer() {
    cmd_.reset();
    ns_.reset();
  }

  const NetNs& ns() const { return *ns_; }
  BackgroundCommand& cmd() { return *cmd_; }

  // Runs fn on a thread inside the namespace (clients' sockets must be made there).
  void in_namespace(const std::function<void()>& fn) const {
    std::string err;
    if (ns_->run_in_thread(fn, &err) < 0) {
      ADD_FAILURE() << "cannot enter the namespace: " << err;
    }
  }

  // SIGUSR1, then the block it printed (waits up to 5 s for a complete one).
  std::map<std::string, std::uint64_t> counters(int processes) {
    const std::string header = "xtcp-kernel-server: counters at unix time";
    const std::string last = "worker" + std::to_string(processes - 1) + ".rss_peak_bytes ";
    const std::size_t before = count(cmd_->output_so_far(), header);
    cmd_->signal(SIGUSR1);
    for (int i = 0; i < 250; ++i) {
      const std::string out = cmd_->output_so_far();
      if (count(out, header) > before) {
        const std::string block = out.substr(out.rfind(header));
        if (block.find(last) != std::string::npos && block.back() == '\n') {
          return parse_counters(block);
        }
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    ADD_FAILURE() << "no counters after SIGUSR1: " << cmd_->output_so_far();
    return {};
  }

  // SIGINT; the exit status and everything printed.
  CommandResult stop() {
    cmd_->signal(SIGINT);
    return cmd_->wait(seconds(15));
  }

 private:
  KernelServer() = default;
  static std::size_t count(const std::string& s, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) {
      ++n;
    }
    return n;
  }
  std::unique_ptr<NetNs> ns_;
  std::unique_ptr<BackgroundCommand> cmd_;
};

#define START_SERVER(var, args, with_target)                                              \
  std::string skip_reason, start_error;                                                   \
  auto var = KernelServer::start(args, with_target, &skip_reason, &start_error);          \
  if (!var && !skip_reason.empty()) {                                                     \
    GTEST_SKIP() << "needs root, network namespaces and /dev/net/tun: " << skip_reason; \
  }                                                                                       \
  ASSERT_TRUE(var) << start_error

int connect_to(const char* ip, std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip, &a.sin_addr);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) < 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// ---- echo -------------------------------------------------------------------------------

// The byte at offset i of connection c's stream.
char pattern(std::size_t c, std::size_t i) { return static_cast<char>((c * 131 + i * 7 + i / 251) & 0xff); }

TEST(kernel_server, EchoTwoProcessesTwoHundredConnections) {
  START_SERVER(server, "--protocol echo --listen 127.0.0.1:7000 --processes 2", false);
  constexpr std::size_t kConns = 200;
  constexpr std::size_t kBytes = 64 * 1024;
  server->in_namespace([&] {
    struct C {
      int fd = -1;
      std::size_t sent = 0;
      std::size_t got = 0;
      bool eof = false;
      bool bad = false;
    };
    std::vector<C> cs(kConns);
    for (std::size_t i = 0; i < kConns; ++i) {
      cs[i].fd = connect_to("127.0.0.1", 7000);
      ASSERT_GE(cs[i].fd, 0) << "connection " << i;
      ::fcntl(cs[i].fd, F_SETFL, O_NONBLOCK);
    }
    // Everyone sends, reads back and checks every byte, closes its side after the last byte,
    // and waits for the server's FIN: bounded to 20 s.
    const auto deadline = Clock::now() + seconds(20);
    std::size_t done = 0;
    std::vector<char> buf(16384);
    std::vector<char> out(16384);
    while (done < kConns && Clock::now() < deadline) {
      std::vector<pollfd> pfds;
      for (const C& c : cs) {
        pfds.push_back(pollfd{c.fd, static_cast<short>(c.eof ? 0 : POLLIN | (c.sent < kBytes ? POLLOUT : 0)), 0});
      }
      ::poll(pfds.data(), pfds.size(), 100);
      for (std::size_t i = 0; i < kConns; ++i) {
        C& c = cs[i];
        if (c.eof) {
          continue;
        }
        if ((pfds[i].revents & POLLOUT) != 0 && c.sent < kBytes) {
          const std::size_t n = std::min(out.size(), kBytes - c.sent);
          for (std::size_t k = 0; k < n; ++k) {
            out[k] = pattern(i, c.sent + k);
          }
          const ssize_t w = ::send(c.fd, out.data(), n, MSG_NOSIGNAL);
          if (w > 0) {
            c.sent += static_cast<std::size_t>(w);
            if (c.sent == kBytes) {
              ::shutdown(c.fd, SHUT_WR);
            }
          }
        }
        if ((pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
          const ssize_t r = ::recv(c.fd, buf.data(), buf.size(), 0);
          if (r > 0) {
            for (ssize_t k = 0; k < r; ++k) {
              c.bad = c.bad || buf[static_cast<std::size_t>(k)] != pattern(i, c.got + static_cast<std::size_t>(k));
            }
            c.got += static_cast<std::size_t>(r);
          } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            c.eof = true;
            ++done;
          }
        }
      }
    }
    for (std::size_t i = 0; i < kConns; ++i) {
      EXPECT_TRUE(cs[i].eof) << "connection " << i << ": no FIN from the server (" << cs[i].got << " bytes back)";
      EXPECT_EQ(cs[i].got, kBytes) << "connection " << i;
      EXPECT_FALSE(cs[i].bad) << "connection " << i << ": wrong bytes";
      ::close(cs[i].fd);
    }
  });
  const auto live = server->counters(2);
  EXPECT_EQ(live.at("echo.accepted"), kConns);
  EXPECT_GT(live.at("worker0.accepted"), 0u) << "the kernel spreads 200 connections over both workers";
  EXPECT_GT(live.at("worker1.accepted"), 0u);
  EXPECT_EQ(live.at("worker0.accepted") + live.at("worker1.accepted"), kConns);
  EXPECT_GT(live.at("worker0.rss_bytes"), 0u);
  EXPECT_GT(live.at("worker1.pss_bytes"), 0u);
  const CommandResult r = server->stop();
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const auto end = parse_counters(r.output);
  EXPECT_EQ(end.at("echo.bytes_echoed"), kConns * kBytes);
  EXPECT_EQ(end.at("echo.client_closes"), kConns);
  EXPECT_EQ(end.at("echo.resets"), 0u);
  EXPECT_EQ(end.at("server.processes"), 2u);
  EXPECT_GE(end.at("server.rss_bytes"), end.at("worker0.rss_bytes") + end.at("worker1.rss_bytes"));
}

// ---- IM ---------------------------------------------------------------------------------

// A line client with a 5 s read timeout; pushes (FROM, ONLINE, OFFLINE) are kept apart
// from answers.
class ImClient {
 public:
  explicit ImClient(std::uint16_t port) : fd_(connect_to("127.0.0.1", port)) {
    const timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~ImClient() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  void send(const std::string& line) {
    const std::string l = line + "\n";
    EXPECT_EQ(::send(fd_, l.data(), l.size(), MSG_NOSIGNAL), static_cast<ssize_t>(l.size()));
  }
  // The next answer (pushes before it are kept); "<timeout>" or "<eof>" if none comes.
  std::string answer() {
    for (;;) {
      const std::string l = line();
      if (l.rfind("FROM ", 0) == 0 || l.rfind("ONLINE ", 0) == 0 || l.rfind("OFFLINE ", 0) == 0) {
        pushes_.push_back(l);
        continue;
      }
      return l;
    }
  }
  std::string request(const std::string& l) {
    send(l);
    return answer();
  }
  // The next push (kept or new); an answer here is a failure.
  std::string push() {
    if (!pushes_.empty()) {
      const std::string p = pushes_.front();
      pushes_.pop_front();
      return p;
    }
    return line();
  }
  // Whether anything arrives within ms.
  bool quiet_for(int ms) {
    if (!pushes_.empty() || !buf_.empty()) {
      return false;
    }
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, ms) == 0;
  }

 private:
  std::string line() {
    for (;;) {
      const std::size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        const std::string l = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return l;
      }
      char b[4096];
      const ssize_t n = ::recv(fd_, b, sizeof b, 0);
      if (n == 0) {
        return "<eof>";
      }
      if (n < 0) {
        return "<timeout>";
      }
      buf_.append(b, static_cast<std::size_t>(n));
    }
  }
  int fd_;
  std::string buf_;
  std::deque<std::string> pushes_;
};

// Connects until it has a client on each of the two workers (the per-worker accepted
// counters say where each new connection went). Returns {on worker 0, on worker 1}.
std::pair<std::unique_ptr<ImClient>, std::unique_ptr<ImClient>> one_per_worker(KernelServer& server,
                                                                               std::uint16_t port,
                                                                               std::vector<std::unique_ptr<ImClient>>* spare) {
  std::unique_ptr<ImClient> on[2];
  std::uint64_t before[2] = {0, 0};
  {
    const auto c = server.counters(2);
    before[0] = c.count("worker0.accepted") ? c.at("worker0.accepted") : 0;
    before[1] = c.count("worker1.accepted") ? c.at("worker1.accepted") : 0;
  }
  for (int attempt = 0; attempt < 64 && (!on[0] || !on[1]); ++attempt) {
    auto c = std::make_unique<ImClient>(port);
    EXPECT_TRUE(c->ok());
    int where = -1;
    for (int i = 0; i < 100 && where < 0; ++i) {  // until the accept shows
      const auto k = server.counters(2);
      if (k.at("worker0.accepted") > before[0]) {
        where = 0;
      } else if (k.at("worker1.accepted") > before[1]) {
        where = 1;
      }
    }
    if (where < 0) {
      ADD_FAILURE() << "the connection was not accepted";
      break;
    }
    ++before[where];
    if (!on[where]) {
      on[where] = std::move(c);
    } else {
      spare->push_back(std::move(c));
    }
  }
  return {std::move(on[0]), std::move(on[1])};
}

TEST(kernel_server, ImUsersOnDifferentWorkersReachEachOther) {
  START_SERVER(server, "--protocol im --listen 127.0.0.1:7001 --processes 2", false);
  server->in_namespace([&] {
    std::vector<std::unique_ptr<ImClient>> spare;
    auto [a, b] = one_per_worker(*server, 7001, &spare);
    ASSERT_TRUE(a && b) << "no client on one of the workers";
    EXPECT_EQ(a->request("LOGIN alice"), "OK");
    EXPECT_EQ(b->request("LOGIN bob"), "OK");
    EXPECT_EQ(a->push(), "ONLINE bob") << "presence crosses workers";
    // Both ways, in order.
    for (int i = 0; i < 100; ++i) {
      EXPECT_EQ(a->request("MSG bob hi " + std::to_string(i) + "  two spaces kept"), "OK");
    }
    for (int i = 0; i < 100; ++i) {
      ASSERT_EQ(b->push(), "FROM alice hi " + std::to_string(i) + "  two spaces kept");
    }
    EXPECT_EQ(b->request("MSG alice yes!"), "OK");
    EXPECT_EQ(a->push(), "FROM bob yes!");
    EXPECT_EQ(a->request("LIST"), "USERS alice bob");
    EXPECT_EQ(b->request("LIST x"), "ERR usage LIST");
    // Names are taken whichever worker a client lands on.
    auto [c0, c1] = one_per_worker(*server, 7001, &spare);
    ASSERT_TRUE(c0 && c1);
    EXPECT_EQ(c1->request("LOGIN alice"), "ERR name-taken") << "alice is on worker 0, this client on worker 1";
    EXPECT_EQ(c0->request("LOGIN bob"), "ERR name-taken") << "bob is on worker 1, this client on worker 0";
    EXPECT_EQ(c0->request("LOGIN alice"), "ERR name-taken");
    EXPECT_EQ(c1->request("MSG alice x"), "ERR not-logged-in");
    EXPECT_EQ(a->request("MSG nobody hello"), "ERR offline");
    EXPECT_EQ(a->request("MSG bob"), "ERR usage MSG to text");
    EXPECT_EQ(a->request("LOGIN again"), "ERR already-logged-in");
    EXPECT_EQ(c1->request("LOGIN bad!name"), "ERR bad-name");
    EXPECT_EQ(c1->request("HELLO"), "ERR unknown-command");
    // bob leaves: alice hears it, bob's name is free for a client of the other worker.
    EXPECT_EQ(b->request("QUIT"), "BYE");
    EXPECT_EQ(b->answer(), "<eof>") << "the server closes after BYE";
    EXPECT_EQ(a->push(), "OFFLINE bob");
    EXPECT_EQ(a->request("MSG bob still there?"), "ERR offline");
    EXPECT_EQ(c0->request("LOGIN bob"), "OK");
    EXPECT_EQ(a->push(), "ONLINE bob");
    EXPECT_EQ(c1->request("LOGIN carol"), "OK");
    EXPECT_EQ(a->push(), "ONLINE carol");
    EXPECT_EQ(c0->push(), "ONLINE carol");
    EXPECT_EQ(c1->request("MSG bob from worker 1"), "OK");
    EXPECT_EQ(c0->push(), "FROM carol from worker 1");
    // A client's FIN logs it out too.
    ::shutdown(c1->fd(), SHUT_WR);
    EXPECT_EQ(c1->answer(), "<eof>");
    EXPECT_EQ(a->push(), "OFFLINE carol");
    EXPECT_EQ(c0->push(), "OFFLINE carol");
    EXPECT_EQ(a->request("LIST"), "USERS alice bob");
  });
  const CommandResult r = server->stop();
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const auto k = parse_counters(r.output);
  EXPECT_GE(k.at("im.forwarded"), 102u);
  EXPECT_EQ(k.at("im.forward_dropped"), 0u);
  EXPECT_EQ(k.at("im.logins"), 4u);
  EXPECT_EQ(k.at("im.quits"), 1u);
}

TEST(kernel_server, ImWatchedPresenceCrossesWorkers) {
  START_SERVER(server, "--protocol im --listen 127.0.0.1:7002 --processes 2 --presence watched", false);
  server->in_namespace([&] {
    std::vector<std::unique_ptr<ImClient>> spare;
    auto [a, b] = one_per_worker(*server, 7002, &spare);
    ASSERT_TRUE(a && b);
    auto [a2, b2] = one_per_worker(*server, 7002, &spare);
    ASSERT_TRUE(a2 && b2);
    EXPECT_EQ(a->request("LOGIN alice"), "OK");
    EXPECT_EQ(a->request("WATCH bob"), "OK");
    EXPECT_EQ(a->request("WATCH bob"), "OK") << "twice is once";
    EXPECT_EQ(b2->request("LOGIN dave"), "OK");
    EXPECT_EQ(b2->request("WATCH bob"), "OK");
    EXPECT_EQ(b->request("LOGIN bob"), "OK");
    EXPECT_EQ(a->push(), "ONLINE bob") << "a watcher on the other worker";
    EXPECT_EQ(b2->push(), "ONLINE bob") << "a watcher on the same worker";
    EXPECT_EQ(a2->request("LOGIN carol"), "OK");  // nobody watches carol
    EXPECT_EQ(a2->request("MSG alice hi"), "OK");
    EXPECT_EQ(a->push(), "FROM carol hi") << "no ONLINE carol before it: alice does not watch carol";
    EXPECT_TRUE(b->quiet_for(200)) << "bob watches nobody";
    ::shutdown(b->fd(), SHUT_WR);
    EXPECT_EQ(b->answer(), "<eof>");
    EXPECT_EQ(a->push(), "OFFLINE bob");
    EXPECT_EQ(b2->push(), "OFFLINE bob");
    EXPECT_EQ(a2->request("LOGIN bob"), "ERR already-logged-in");
    auto c = std::make_unique<ImClient>(7002);
    EXPECT_EQ(c->request("LOGIN bob"), "OK");
    EXPECT_EQ(a->push(), "ONLINE bob");
    EXPECT_EQ(b2->push(), "ONLINE bob");
    EXPECT_TRUE(a2->quiet_for(100));
  });
  const CommandResult r = server->stop();
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// One process: no directory, no mesh; ImCore as xtcp-im runs it.
TEST(kernel_server, ImOneProcess) {
  START_SERVER(server, "--protocol im --listen 127.0.0.1:7003", false);
  server->in_namespace([&] {
    ImClient a(7003), b(7003);
    EXPECT_EQ(a.request("LOGIN alice"), "OK");
    EXPECT_EQ(b.request("LOGIN alice"), "ERR name-taken");
    EXPECT_EQ(b.request("LOGIN bob"), "OK");
    EXPECT_EQ(a.push(), "ONLINE bob");
    EXPECT_EQ(b.request("MSG alice hello"), "OK");
    EXPECT_EQ(a.push(), "FROM bob hello");
    EXPECT_EQ(a.request("LIST"), "USERS alice bob");
    EXPECT_EQ(a.request(std::string(2000, 'x')), "ERR line-too-long");
    EXPECT_EQ(a.request("QUIT"), "BYE");
    EXPECT_EQ(b.push(), "OFFLINE alice");
  });
  const CommandResult r = server->stop();
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("mesh."), std::string::npos) << "one process has no mesh";
}

// A client that reads nothing while another worker's user floods it is closed as a slow
// consumer past --max-output, and logged out; the sender goes on.
TEST(kernel_server, ImSlowConsumerAcrossWorkersIsClosed) {
  START_SERVER(server, "--protocol im --listen 127.0.0.1:7004 --processes 2 --max-output 64K", false);
  server->in_namespace([&] {
    std::vector<std::unique_ptr<ImClient>> spare;
    auto [a, b] = one_per_worker(*server, 7004, &spare);
    ASSERT_TRUE(a && b);
    const int small = 4096;
    ::setsockopt(b->fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    EXPECT_EQ(a->request("LOGIN sender"), "OK");
    EXPECT_EQ(b->request("LOGIN sink"), "OK");
    EXPECT_EQ(a->push(), "ONLINE sink");
    const std::string text(1000, 'z');
    int offline_after = -1;
    for (int i = 0; i < 10000 && offline_after < 0; ++i) {  // up to 10 MB: far past 64K + the kernel's buffers
      const std::string ans = a->request("MSG sink " + text);
      if (ans == "ERR offline") {
        offline_after = i;
      } else {
        ASSERT_EQ(ans, "OK") << i;
      }
    }
    EXPECT_GT(offline_after, 0) << "the sink was never closed";
    EXPECT_EQ(a->push(), "OFFLINE sink");
  });
  const CommandResult r = server->stop();
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const auto k = parse_counters(r.output);
  EXPECT_EQ(k.at("im.slow_consumers"), 1u);
}

// A worker that dies takes the server down: the parent stops the other and exits 1.
TEST(kernel_server, AWorkerThatDiesStopsTheServer) {
  START_SERVER(server, "--protocol echo --listen 127.0.0.1:7005 --processes 2", false);
  const auto k = server->counters(2);
  ASSERT_GT(k.at("worker1.pid"), 0u);
  ASSERT_EQ(::kill(static_cast<pid_t>(k.at("worker1.pid")), SIGKILL), 0);
  const CommandResult r = server->cmd().wait(seconds(15));
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("worker 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("killed by signal 9"), std::string::npos) << r.output;
}

// ---- xtcp-loadgen -------------------------------------------------------------------------

long long json_number(const std::string& json, const std::string& key) {
  const auto at = json.find("\"" + key + "\": ");
  return at == std::string::npos ? -1 : std::stoll(json.substr(at + key.size() + 4));
}

CommandResult run_loadgen(const KernelServer& server, const std::string& args) {
  return server.ns().run(std::string(kLoadgen) + " --tun xtcpl0 --target 198.18.0.1:7000 " + args +
                             " 2>/dev/null",
                         seconds(60));
}

TEST(kernel_server, LoadgenImTwoThousandConnectionsTwoProcesses) {
  START_SERVER(server, "--protocol im --listen 198.18.0.1:7000 --processes 2", true);
  const CommandResult r = run_loadgen(
      *server, "--workload im --connections 2000 --ramp 4000 --interval 500ms --duration 3s --drain 10s");
  EXPECT_EQ(r.exit_code, 0) << r.output.substr(0, 4000);
  EXPECT_EQ(json_number(r.output, "established"), 2000) << r.output.substr(0, 4000);
  EXPECT_EQ(json_number(r.output, "logins"), 2000);
  EXPECT_EQ(json_number(r.output, "errors"), 0);
  EXPECT_EQ(json_number(r.output, "lost"), 0);
  EXPECT_EQ(json_number(r.output, "duplicated"), 0);
  EXPECT_EQ(json_number(r.output, "reordered"), 0);
  EXPECT_GE(json_number(r.output, "answered"), 2000);
  const CommandResult s = server->stop();
  EXPECT_EQ(s.exit_code, 0) << s.output;
  const auto k = parse_counters(s.output);
  EXPECT_EQ(k.at("im.logins"), 2000u);
  EXPECT_GT(k.at("im.forwarded"), 0u) << "users of both workers messaged each other";
  EXPECT_GT(k.at("worker0.accepted"), 0u);
  EXPECT_GT(k.at("worker1.accepted"), 0u);
  EXPECT_EQ(k.at("im.slow_consumers"), 0u);
}

TEST(kernel_server, LoadgenEchoTwoThousandConnectionsTwoProcesses) {
  START_SERVER(server, "--protocol echo --listen 198.18.0.1:7000 --processes 2", true);
  const CommandResult r = run_loadgen(
      *server, "--workload echo --connections 2000 --ramp 4000 --interval 500ms --duration 3s --drain 10s");
  EXPECT_EQ(r.exit_code, 0) << r.output.substr(0, 4000);
  EXPECT_EQ(json_number(r.output, "established"), 2000) << r.output.substr(0, 4000);
  EXPECT_EQ(json_number(r.output, "errors"), 0);
  EXPECT_GE(json_number(r.output, "answered"), 2000);
  const CommandResult s = server->stop();
  EXPECT_EQ(s.exit_code, 0) << s.output;
  const auto k = parse_counters(s.output);
  EXPECT_EQ(k.at("echo.accepted"), 2000u);
  EXPECT_GT(k.at("worker0.accepted"), 0u);
  EXPECT_GT(k.at("worker1.accepted"), 0u);
}

// ---- the command line -------------------------------------------------------------------

CommandResult run_bin(const std::string& args) { return run_command({"sh", "-c", std::string(kBin) + " " + args}, seconds(10)); }

TEST(kernel_server_flags, BadFlagsExit2AndHelpExits0) {
  for (const std::string args : {
           "",
           "--listen 127.0.0.1:7000",
           "--protocol echo",
           "--protocol ftp --listen 127.0.0.1:7000",
           "--protocol echo --listen 127.0.0.1",
           "--protocol echo --listen 300.1.1.1:7000",
           "--protocol echo --listen 127.0.0.1:0",
           "--protocol echo --listen 127.0.0.1:70000",
           "--protocol echo --listen 127.0.0.1:7000 --processes 0",
           "--protocol echo --listen 127.0.0.1:7000 --processes 65",
           "--protocol echo --listen 127.0.0.1:7000 --presence all",
           "--protocol im --listen 127.0.0.1:7000 --presence some",
           "--protocol im --listen 127.0.0.1:7000 --max-users 10",
           "--protocol im --listen 127.0.0.1:7000 --max-output 1",
           "--protocol im --listen 127.0.0.1:7000 --no-such-flag",
           "--protocol im --listen 127.0.0.1:7000 stray",
       }) {
    const CommandResult r = run_bin(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    EXPECT_EQ(r.output.rfind("xtcp-kernel-server: ", 0), 0u) << args << "\n" << r.output;
    EXPECT_NE(r.output.find("Try 'xtcp-kernel-server --help'"), std::string::npos) << args << "\n" << r.output;
  }
  const CommandResult help = run_bin("--help");
  EXPECT_EQ(help.exit_code, 0);
  for (const char* flag : {"--protocol", "--listen", "--processes", "--presence", "--max-output", "--max-users",
                           "--duration", "--stats-interval", "--stats-json"}) {
    EXPECT_NE(help.output.find(flag), std::string::npos) << flag;
  }
  const CommandResult version = run_bin("--version");
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.output.rfind("xtcp-kernel-server (xtcp) ", 0), 0u) << version.output;
}

TEST(kernel_server_flags, AnAddressItCannotListenOnExits1) {
  if (auto why = netns_unavailable_reason()) {
    GTEST_SKIP() << "needs root and network namespaces: " << *why;
  }
  std::string err;
  auto ns = NetNs::create(&err);
  ASSERT_TRUE(ns) << err;
  // 192.0.2.1 is not an address of the namespace: bind fails (EADDRNOTAVAIL).
  const CommandResult r = ns->run(std::string(kBin) + " --protocol echo --listen 192.0.2.1:7000", seconds(10));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("cannot listen on 192.0.2.1:7000"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace xtcp
