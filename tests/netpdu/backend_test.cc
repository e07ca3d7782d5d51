// IM backend tests, end to end through NetPDU transports: a test front end (BackendClient,
// the helper the IM server will use) talks to ImBackend over socketpairs, both variants;
// the real xtcp-backend program is run over a Unix socket and loopback TCP, and its flag
// errors are checked (exit 2). Answers, presence, routing across front ends, line
// splitting, the answered-bytes count for ACKs, errors, bad input and backpressure.
#include "netpdu/backend/im_backend.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "netpdu/backend_client.h"
#include "tests/netpdu/test_util.h"

namespace xtcp::netpdu {
namespace {

Transport v1(int fd) {
  Transport t;
  t.negotiated.role = Role::kSingle;
  t.negotiated.max_pdu_bytes = 256 * 1024;
  t.negotiated.max_tlpdus = 8192;
  t.fd = fd;
  return t;
}

std::pair<Transport, Transport> link(int lanes, int buf = 0) {
  auto [a, b] = test::socket_pair(buf);
  std::pair<Transport, Transport> p{v1(a), v1(b)};
  if (lanes > 0) {
    for (Transport* t : {&p.first, &p.second}) {
      t->negotiated.role = Role::kControl;
      t->negotiated.data_count = static_cast<std::uint16_t>(lanes);
    }
    for (int i = 0; i < lanes; ++i) {
      auto [c, d] = test::socket_pair(buf);
      p.first.data_fds.push_back(c);
      p.second.data_fds.push_back(d);
    }
  }
  return p;
}

// What the IM server does with the backend: one session per client, bytes in and out.
struct FrontEnd {
  std::unique_ptr<BackendClient> client;
  std::map<std::uint64_t, std::string> out;       // bytes for each client
  std::map<std::uint64_t, std::size_t> answered;  // request bytes answered (to ACK)
  std::map<std::uint64_t, int> answers;           // TLPDUs flagged as answers
  std::set<std::uint64_t> closed_by_backend;
  bool reading = true;

  FrontEnd(const Transport& t, const Clock& clock, EndpointConfig base = {}) {
    BackendClientCallbacks cb;
    cb.on_data = [this](std::uint64_t s, const Payload& p, std::size_t a) {
      out[s] += test::text_of(p.bytes);
      answered[s] += a;
      answers[s] += a > 0 ? 1 : 0;
    };
    cb.on_close = [this](std::uint64_t s) { closed_by_backend.insert(s); };
    client = std::make_unique<BackendClient>(t, base, clock, cb);
  }
  std::uint64_t open() {
    std::uint64_t id = 0;
    EXPECT_EQ(client->open_session(&id), 0);
    return id;
  }
  void send(std::uint64_t s, const std::string& text) {
    EXPECT_EQ(client->send(s, copy_payload(ByteSpan(test::bytes_of(text)))), 0);
  }
  std::string take(std::uint64_t s) { return std::exchange(out[s], {}); }
  test::Node node() {
    return test::Node{[this](std::vector<pollfd>* v) {
                        if (!reading) {
                          return;  // a front end that stopped reading the backend
                        }
                        client->endpoint().pollfds(v);
                      },
                      [this](int fd, short e) { client->endpoint().handle(fd, e); },
                      [this] { client->poll_timers(); }, [this] { return client->endpoint().next_deadline(); }};
  }
};

struct World {
  SteadyClock clock;
  ImBackend backend{ImBackendConfig{}, clock};
  std::vector<std::unique_ptr<FrontEnd>> fes;

  FrontEnd& add_front_end(int lanes = 0, EndpointConfig base = {}) {
    auto l = link(lanes);
    backend.add_transport(l.second);
    fes.push_back(std::make_unique<FrontEnd>(l.first, clock, base));
    return *fes.back();
  }
  std::vector<test::Node> nodes() {
    std::vector<test::Node> n{test::node_of(backend)};
    for (auto& f : fes) {
      n.push_back(f->node());
    }
    return n;
  }
  // Runs until `cond` holds (bounded).
  bool until(const std::function<bool()>& cond, int ms = 5000) { return test::pump(nodes(), cond, ms); }
};

TEST(NetpduImBackend, LoginPresenceListMessageQuit) {
  World w;
  FrontEnd& fe = w.add_front_end();
  const auto alice = fe.open();
  const auto bob = fe.open();
  fe.send(alice, "LOGIN alice\n");
  ASSERT_TRUE(w.until([&] { return fe.out[alice] == "OK\n"; }));
  EXPECT_EQ(fe.answered[alice], 12u) << "the answer acknowledges the whole request line";
  fe.take(alice);
  fe.send(bob, "LOGIN bob\n");
  ASSERT_TRUE(w.until([&] { return fe.out[bob] == "OK\n" && fe.out[alice] == "ONLINE bob\n"; }))
      << fe.out[bob] << "|" << fe.out[alice];
  EXPECT_EQ(fe.answers[alice], 1) << "a presence notification is not an answer";
  fe.take(alice);
  fe.take(bob);
  fe.send(alice, "LIST\n");
  ASSERT_TRUE(w.until([&] { return fe.out[alice] == "USERS alice bob\n"; })) << fe.out[alice];
  fe.take(alice);
  fe.send(alice, "MSG bob hello there, bob\n");
  ASSERT_TRUE(w.until([&] { return fe.out[alice] == "OK\n" && fe.out[bob] == "FROM alice hello there, bob\n"; }))
      << fe.out[alice] << "|" << fe.out[bob];
  fe.take(alice);
  fe.take(bob);
  fe.send(alice, "MSG carol hi\n");
  ASSERT_TRUE(w.until([&] { return fe.out[alice] == "ERR offline\n"; })) << fe.out[alice];
  fe.take(alice);
  // QUIT: BYE, the others see OFFLINE, and the backend ends the session after BYE.
  fe.send(bob, "QUIT\n");
  ASSERT_TRUE(w.until([&] {
    return fe.out[bob] == "BYE\n" && fe.out[alice] == "OFFLINE bob\n" && fe.closed_by_backend.count(bob) == 1;
  }));
  EXPECT_EQ(w.backend.logged_in(), 1u);
  EXPECT_EQ(fe.client->send(bob, copy_payload(ByteSpan(test::bytes_of("LIST\n")))), -ENOENT);
  fe.take(alice);
  const auto bob2 = fe.open();
  fe.send(bob2, "LOGIN bob\n");
  ASSERT_TRUE(w.until([&] { return fe.out[alice] == "ONLINE bob\n"; }));
  // The client disconnects: CLOSE, and the others see it go.
  fe.take(alice);
  ASSERT_EQ(fe.client->close_session(bob2), 0);
  ASSERT_TRUE(w.until([&] { return fe.out[alice] == "OFFLINE bob\n" && fe.client->sessions() == 1; }));
  EXPECT_EQ(w.backend.logged_in(), 1u);
}

TEST(NetpduImBackend, ErrorAnswers) {
  World w;
  FrontEnd& fe = w.add_front_end();
  const auto s = fe.open();
  const auto t = fe.open();
  const std::vector<std::pair<std::string, std::string>> script = {
      {"MSG bob hi\n", "ERR not-logged-in\n"},
      {"LIST\n", "ERR not-logged-in\n"},
      {"LOGIN\n", "ERR bad-name\n"},
      {"LOGIN has space\n", "ERR bad-name\n"},
      {"LOGIN " + std::string(33, 'n') + "\n", "ERR bad-name\n"},
      {"LOGIN caf\xC3\xA9\n", "ERR bad-name\n"},
      {"FROB\n", "ERR unknown-command\n"},
      {"login alice\n", "ERR unknown-command\n"},
      {"\n", "ERR empty-line\n"},
      {"   \r\n", "ERR empty-line\n"},
      {std::string(1025, 'x') + "\n", "ERR line-too-long\n"},
      {"LOGIN  alice\r\n", "OK\n"},
      {"LOGIN alice2\n", "ERR already-logged-in\n"},
      {"LIST extra\n", "ERR usage LIST\n"},
      {"MSG\n", "ERR usage MSG to text\n"},
      {"MSG alice\n", "ERR usage MSG to text\n"},
      {"MSG alice \n", "ERR usage MSG to text\n"},
      {"MSG alice   \n", "FROM alice   \nOK\n"},
      {"MSG nobody hi\n", "ERR offline\n"},
      {"  LIST  \n", "USERS alice\n"},
      {"MSG  alice  hi  there \n", "FROM alice  hi  there \nOK\n"},
  };
  for (const auto& [req, want] : script) {
    fe.send(s, req);
    ASSERT_TRUE(w.until([&] { return fe.out[s].size() >= want.size(); })) << req;
    EXPECT_EQ(fe.take(s), want) << req;
  }
  fe.send(t, "LOGIN alice\n");
  ASSERT_TRUE(w.until([&] { return fe.out[t] == "ERR name-taken\n"; })) << fe.out[t];
  EXPECT_EQ(fe.answers[s], static_cast<int>(script.size()));
}

TEST(NetpduImBackend, LinesSplitAcrossTlpdus) {
  World w;
  FrontEnd& fe = w.add_front_end();
  const auto s = fe.open();
  for (const char* part : {"LOG", "IN al", "ice\nLI", "ST\n\n", "\r\n"}) {
    fe.send(s, part);
  }
  ASSERT_TRUE(w.until([&] { return fe.answers[s] == 4; }));
  EXPECT_EQ(fe.out[s], "OK\nUSERS alice\nERR empty-line\nERR empty-line\n");
  EXPECT_EQ(fe.answered[s], 12u + 5u + 1u + 2u) << "every request byte answered, line by line";
}

TEST(NetpduImBackend, LineThatCannotBeFramedEndsTheSession) {
  World w;
  FrontEnd& fe = w.add_front_end();
  const auto s = fe.open();
  const auto other = fe.open();
  fe.send(other, "LOGIN watcher\n");
  fe.send(s, "LOGIN victim\n");
  ASSERT_TRUE(w.until([&] { return fe.out[other].find("ONLINE victim") != std::string::npos; }));
  fe.send(s, std::string(2000, 'y') + "\n");  // too long, but framed: answered, session goes on
  ASSERT_TRUE(w.until([&] { return fe.out[s] == "OK\nERR line-too-long\n"; })) << fe.out[s];
  fe.send(s, std::string(9000, 'x'));  // more than 8192 bytes without a newline
  ASSERT_TRUE(w.until([&] { return fe.closed_by_backend.count(s) == 1; }));
  ASSERT_TRUE(w.until([&] { return fe.out[other].find("OFFLINE victim") != std::string::npos; }));
  EXPECT_EQ(w.backend.logged_in(), 1u);
  EXPECT_EQ(fe.client->send(s, copy_payload(ByteSpan(test::bytes_of("more\n")))), -ENOENT);
  // The session is gone on both sides; the transport itself is fine.
  fe.send(other, "LIST\n");
  ASSERT_TRUE(w.until([&] { return fe.out[other].find("USERS watcher\n") != std::string::npos; }));
}

TEST(NetpduImBackend, TwoFrontEndsBothVariantsRouteMessages) {
  World w;
  FrontEnd& fe1 = w.add_front_end(0);
  FrontEnd& fe2 = w.add_front_end(3);
  const auto a = fe1.open();
  const auto b = fe2.open();
  fe1.send(a, "LOGIN ann\n");
  ASSERT_TRUE(w.until([&] { return fe1.out[a] == "OK\n"; }));
  fe2.send(b, "LOGIN ben\n");
  ASSERT_TRUE(w.until([&] { return fe2.out[b] == "OK\n" && fe1.out[a] == "OK\nONLINE ben\n"; }));
  fe1.take(a);
  fe2.take(b);
  for (int i = 0; i < 200; ++i) {
    fe1.send(a, "MSG ben n" + std::to_string(i) + "\n");
    fe2.send(b, "MSG ann m" + std::to_string(i) + "\n");
  }
  ASSERT_TRUE(w.until([&] { return fe1.answers[a] == 201 && fe2.answers[b] == 201; }));
  std::string want_b, want_a;
  for (int i = 0; i < 200; ++i) {
    want_b += "FROM ann n" + std::to_string(i) + "\n";
    want_a += "FROM ben m" + std::to_string(i) + "\n";
  }
  // Keep only the FROM lines: they must arrive complete and in order.
  auto froms = [](const std::string& s) {
    std::string r;
    std::size_t at = 0;
    while (at < s.size()) {
      const std::size_t nl = s.find('\n', at);
      if (s.compare(at, 5, "FROM ") == 0) {
        r += s.substr(at, nl - at + 1);
      }
      at = nl + 1;
    }
    return r;
  };
  EXPECT_EQ(froms(fe2.out[b]), want_b);
  EXPECT_EQ(froms(fe1.out[a]), want_a);
  // Front end 2 goes away: its users log out, front end 1 is told.
  fe1.take(a);
  w.fes.pop_back();
  ASSERT_TRUE(w.until([&] { return fe1.out[a] == "OFFLINE ben\n"; })) << fe1.out[a];
  EXPECT_EQ(w.backend.transports(), 1u);
  EXPECT_EQ(w.backend.logged_in(), 1u);
}

TEST(NetpduImBackend, BadInputClosesOnlyThatTransport) {
  World w;
  FrontEnd& good = w.add_front_end();
  const auto g = good.open();
  good.send(g, "LOGIN good\n");
  ASSERT_TRUE(w.until([&] { return good.out[g] == "OK\n"; }));
  // A raw front end that sends DATA for a session it never opened.
  auto l = link(0);
  w.backend.add_transport(l.second);
  auto raw = Endpoint::open(l.first, EndpointConfig{}, w.clock, [](const Tlpdu&) { return Verdict::kAccept; });
  TlpduMeta m;
  m.session = 42;
  ASSERT_EQ(raw->submit(m, copy_payload(ByteSpan(test::bytes_of("LIST\n")))), 0);
  raw->flush();
  std::vector<std::string> log;
  auto nodes = w.nodes();
  nodes.push_back(test::node_of(*raw));
  ASSERT_TRUE(test::pump(nodes, [&] {
    for (auto& x : w.backend.take_log()) {
      log.push_back(x);
    }
    return w.backend.transports() == 1;
  }, 5000));
  bool found = false;
  for (const auto& x : log) {
    found |= x.find("failed: unknown session: session 0x2a") != std::string::npos;
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(w.backend.stats().transports_failed, 1u);
  good.send(g, "LIST\n");
  ASSERT_TRUE(w.until([&] { return good.out[g] == "OK\nUSERS good\n"; })) << good.out[g];
}

TEST(NetpduImBackend, SlowFrontEndIsBackpressuredNotBuffered) {
  World w;
  ImBackendConfig small;
  small.endpoint.tx.max_pdu_bytes = 64 * 1024;
  small.endpoint.tx.flush_bytes = 16 * 1024;
  small.endpoint.tx.max_queued_bytes = 256 * 1024;
  small.endpoint.tx.low_watermark = 64 * 1024;
  ImBackend backend(small, w.clock);
  auto l1 = link(0);
  auto l2 = link(0);
  backend.add_transport(l1.second);
  backend.add_transport(l2.second);
  FrontEnd slow(l1.first, w.clock);
  FrontEnd fast(l2.first, w.clock);
  const auto s = slow.open();
  const auto f = fast.open();
  std::vector<test::Node> nodes{test::node_of(backend), slow.node(), fast.node()};
  slow.send(s, "LOGIN slowpoke\n");
  fast.send(f, "LOGIN speedy\n");
  ASSERT_TRUE(test::pump(nodes, [&] { return slow.answers[s] == 1 && fast.answers[f] == 1; }));
  slow.reading = false;  // from now on it never reads the backend's answers
  // ~30 users so every LIST answer is a few hundred bytes.
  for (int i = 0; i < 30; ++i) {
    const auto x = fast.open();
    fast.send(x, "LOGIN user" + std::to_string(i) + "\n");
  }
  ASSERT_TRUE(test::pump(nodes, [&] { return backend.logged_in() == 32; }));
  std::size_t requests = 0;
  for (int round = 0; round < 400; ++round) {
    std::string burst;
    for (int i = 0; i < 50; ++i) {
      burst += "LIST\n";
    }
    if (slow.client->send(s, copy_payload(ByteSpan(test::bytes_of(burst)))) == 0) {
      requests += 50;
    }
    test::pump(nodes, [] { return false; }, 2);
  }
  // The backend stopped reading the slow front end: far fewer answered than asked, and the
  // backend's queue toward it stayed within its bound.
  EXPECT_LT(backend.stats().requests, requests);
  // Meanwhile the other front end is served.
  fast.send(f, "LIST\n");
  ASSERT_TRUE(test::pump(nodes, [&] { return fast.answers[f] == 2; }, 5000));
  // The slow one starts reading again: everything it asked for is answered, in order.
  slow.reading = true;
  ASSERT_TRUE(test::pump(nodes, [&] { return slow.answers[s] == static_cast<int>(requests) + 1; }, 20000))
      << slow.answers[s] << " of " << requests;
  EXPECT_EQ(slow.answered[s], 15 + requests * 5);
}

TEST(NetpduImBackend, MessagesToASlowFrontEndWaitInsteadOfBeingDropped) {
  SteadyClock clock;
  ImBackendConfig small;
  small.endpoint.tx.flush_bytes = 16 * 1024;
  small.endpoint.tx.max_queued_bytes = 128 * 1024;
  small.endpoint.tx.low_watermark = 32 * 1024;
  ImBackend backend(small, clock);
  auto l1 = link(0);
  auto l2 = link(2, 16 * 1024);  // small kernel buffers: the backend's bound is what holds
  for (Transport* t : {&l2.first, &l2.second}) {
    t->negotiated.max_pdu_bytes = 64 * 1024;  // so the 128 KiB queue bound is kept as is
  }
  backend.add_transport(l1.second);
  backend.add_transport(l2.second);
  FrontEnd sender(l1.first, clock);
  FrontEnd receiver(l2.first, clock);
  const auto a = sender.open();
  const auto b = receiver.open();
  std::vector<test::Node> nodes{test::node_of(backend), sender.node(), receiver.node()};
  receiver.send(b, "LOGIN rita\n");
  ASSERT_TRUE(test::pump(nodes, [&] { return receiver.answers[b] == 1; }));
  sender.send(a, "LOGIN sam\n");
  ASSERT_TRUE(test::pump(nodes, [&] { return sender.answers[a] == 1 && receiver.out[b] == "OK\nONLINE sam\n"; }));
  receiver.take(b);
  receiver.reading = false;
  const std::string filler(900, 'f');
  const int n = 1000;  // ~900 KiB of FROM lines: far more than the 128 KiB bound
  for (int i = 0; i < n; ++i) {
    sender.send(a, "MSG rita " + std::to_string(i) + " " + filler + "\n");
  }
  test::pump(nodes, [] { return false; }, 300);
  EXPECT_LT(sender.answers[a], n / 2) << "the sender is held back while rita's front end is full";
  EXPECT_GT(backend.stats().stalls, 0u);
  receiver.reading = true;
  ASSERT_TRUE(test::pump(nodes, [&] { return sender.answers[a] == n + 1; }, 20000)) << sender.answers[a];
  std::string want;
  for (int i = 0; i < n; ++i) {
    want += "FROM sam " + std::to_string(i) + " " + filler + "\n";
  }
  ASSERT_TRUE(test::pump(nodes, [&] { return receiver.out[b].size() >= want.size(); }, 20000))
      << receiver.out[b].size() << " of " << want.size() << " bytes";
  EXPECT_TRUE(receiver.out[b] == want) << "every message delivered once, in order";
  EXPECT_EQ(backend.stats().messages, static_cast<std::uint64_t>(n));
}

// ---- the real program ----

struct Program {
  pid_t pid = -1;
  int out = -1;
  std::string first_line;
  ~Program() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (out >= 0) {
      ::close(out);
    }
  }
};

// Starts xtcp-backend with the arguments; returns after its first stdout line (bounded).
std::unique_ptr<Program> start(const std::vector<std::string>& args, std::string* err_out = nullptr, int* status = nullptr) {
  int outp[2], errp[2];
  EXPECT_EQ(::pipe2(outp, O_CLOEXEC), 0);
  EXPECT_EQ(::pipe2(errp, O_CLOEXEC), 0);
  auto p = std::make_unique<Program>();
  p->pid = ::fork();
  if (p->pid == 0) {
    ::dup2(outp[1], 1);
    ::dup2(errp[1], 2);
    std::vector<char*> argv{const_cast<char*>(XTCP_BACKEND_BIN)};
    for (const auto& a : args) {
      argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(outp[1]);
  ::close(errp[1]);
  p->out = outp[0];
  std::string line;
  for (int i = 0; i < 500; ++i) {
    pollfd pf{p->out, POLLIN, 0};
    if (::poll(&pf, 1, 10) <= 0) {
      continue;
    }
    char c;
    if (::read(p->out, &c, 1) != 1 || c == '\n') {
      break;
    }
    line += c;
  }
  p->first_line = line;
  if (err_out != nullptr) {
    // For the exit-code checks: the program ends at once; collect stderr and the status.
    int st = 0;
    ::waitpid(p->pid, &st, 0);
    p->pid = -1;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(errp[0], buf, sizeof buf)) > 0) {
      err_out->append(buf, static_cast<std::size_t>(n));
    }
    *status = st;
  }
  ::close(errp[0]);
  return p;
}

TEST(NetpduBackendProgram, BadFlagsExitTwoWithAReason) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{}, "give --listen ADDR:PORT or --unix PATH"},
      {{"--listen"}, "--listen needs a value"},
      {{"--listen", "127.0.0.1"}, "is not ADDR:PORT"},
      {{"--listen", "nowhere:80"}, "is not an IPv4 address"},
      {{"--listen", "127.0.0.1:99999"}, "is not a port number"},
      {{"--unix", "/tmp/a", "--listen", "127.0.0.1:1"}, "exactly one of"},
      {{"--unix", "/tmp/a", "--max-pdu", "10"}, "--max-pdu: '10' is outside 1K to 64M bytes"},
      {{"--unix", "/tmp/a", "--max-pdu=1G"}, "--max-pdu: '1G' is outside 1K to 64M bytes"},
      {{"--unix", "/tmp/a", "--latency-us", "-5"}, "--latency-us: '-5' is not a duration"},
      {{"--unix", "/tmp/a", "--bogus"}, "unknown flag --bogus"},
      {{"--unix", "/tmp/a", "--quiet=yes"}, "--quiet takes no value"},
  };
  for (const auto& [args, want] : cases) {
    std::string err;
    int status = 0;
    start(args, &err, &status);
    ASSERT_TRUE(WIFEXITED(status)) << want;
    EXPECT_EQ(WEXITSTATUS(status), 2) << want;
    // One line naming the flag and what is wrong, then a hint to --help.
    EXPECT_EQ(err.rfind("xtcp-backend: ", 0), 0u) << err;
    EXPECT_NE(err.substr(0, err.find('\n')).find(want), std::string::npos) << err;
    EXPECT_EQ(err.substr(err.find('\n') + 1), "Try 'xtcp-backend --help' for the list of flags.\n") << err;
  }
}

// --flag=value, sizes and durations with suffixes; with --stats-interval and --stats-json
// stdout carries one JSON object per line with every counter (the "listening" line goes to
// stderr), and SIGTERM still ends it with 0 after a final JSON line.
TEST(NetpduBackendProgram, StatsAsJsonLinesWithSuffixedFlags) {
  const std::string path = "/tmp/xtcp_backend_stats_" + std::to_string(::getpid()) + ".sock";
  auto prog = start({"--unix=" + path, "--quiet", "--max-queue", "8M", "--max-pdu=128K", "--latency-us", "1ms",
                     "--stats-interval=100ms", "--stats-json"});
  EXPECT_EQ(prog->first_line.rfind("{\"time\": ", 0), 0u) << prog->first_line;
  EXPECT_NE(prog->first_line.find("\"program\": \"xtcp-backend\", \"counters\": {\"backend.requests\": 0, "),
            std::string::npos)
      << prog->first_line;
  EXPECT_NE(prog->first_line.find("\"backend.online\": 0}}"), std::string::npos) << prog->first_line;
  ASSERT_EQ(::kill(prog->pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(prog->pid, &status, 0), prog->pid);
  prog->pid = -1;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::string rest;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(prog->out, buf, sizeof buf)) > 0) {
    rest.append(buf, static_cast<std::size_t>(n));
  }
  ASSERT_FALSE(rest.empty());
  std::size_t at = 0;
  while (at < rest.size()) {
    const std::size_t nl = rest.find('\n', at);
    ASSERT_NE(nl, std::string::npos) << rest;
    EXPECT_EQ(rest.compare(at, 9, "{\"time\": "), 0) << "only JSON lines on stdout: " << rest;
    at = nl + 1;
  }
}

void program_end_to_end(const std::vector<std::string>& args, const std::function<Address(const std::string&)>& addr) {
  auto prog = start(args);
  ASSERT_NE(prog->first_line.find("listening on "), std::string::npos) << prog->first_line;
  const Address a = addr(prog->first_line.substr(prog->first_line.find("listening on ") + 13));
  SteadyClock clock;
  std::string err;
  std::vector<std::unique_ptr<FrontEnd>> fes;
  for (int lanes : {0, 2}) {
    auto t = open_transport(a, HandshakeLimits{}, lanes, 5000, &err);
    ASSERT_TRUE(t) << err;
    fes.push_back(std::make_unique<FrontEnd>(*t, clock));
  }
  const auto x = fes[0]->open();
  const auto y = fes[1]->open();
  std::vector<test::Node> nodes{fes[0]->node(), fes[1]->node()};
  fes[0]->send(x, "LOGIN xavier\n");
  ASSERT_TRUE(test::pump(nodes, [&] { return fes[0]->out[x] == "OK\n"; }, 5000)) << fes[0]->out[x];
  fes[1]->send(y, "LOGIN yolanda\nMSG xavier hi from the other front end\n");
  ASSERT_TRUE(test::pump(nodes, [&] {
    return fes[0]->out[x] == "OK\nONLINE yolanda\nFROM yolanda hi from the other front end\n" &&
           fes[1]->answers[y] == 2;
  }, 5000)) << fes[0]->out[x];
  EXPECT_EQ(fes[1]->out[y], "OK\nOK\n");
  ASSERT_EQ(::kill(prog->pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(prog->pid, &status, 0), prog->pid);
  prog->pid = -1;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(NetpduBackendProgram, EndToEndOverUnixSocket) {
  const std::string path = "/tmp/xtcp_backend_test_" + std::to_string(::getpid()) + ".sock";
  program_end_to_end({"--unix", path, "--quiet"}, [&](const std::string&) { return unix_address(path); });
}

TEST(NetpduBackendProgram, EndToEndOverLoopbackTcp) {
  program_end_to_end({"--listen", "127.0.0.1:0", "--quiet"}, [](const std::string& shown) {
    std::string err;
    auto a = parse_host_port(shown, &err);
    EXPECT_TRUE(a) << err;
    return *a;
  });
}

}  // namespace
}  // namespace xtcp::netpdu
