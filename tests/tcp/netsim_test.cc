// Whole-stack tests: two Stacks over an in-memory MemLinkPair with seeded faults (loss,
// duplication, reordering, delay and jitter, bit corruption), sharing one ManualClock. The
// server runs EchoService; the client is a small driver on the engine API that connects,
// sends a pattern, reads the echo, half-closes and waits for the server's FIN. A loop polls
// both stacks and moves the clock to the next timer or link delivery: no sleeps, bounded
// virtual time and iterations. Every byte must come back exactly once and in order.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "server_examples/echo/echo_service.h"
#include "stack/buffer/stream_buffers.h"
#include "stack/netif/mem_link.h"
#include "stack/netif/pcap_tap.h"
#include "stack/stack.h"
#include "tests/support/tcp_harness.h"

namespace xtcp::test {
namespace {

constexpr std::uint32_t kClientAddr = 0xC6120001;  // 198.18.0.1 (in-memory link only)
constexpr std::uint32_t kServerAddr = 0xC6120002;  // 198.18.0.2
constexpr std::uint16_t kEchoPort = 7;

struct NetOptions {
  MemLinkFaults to_server;  // client -> server (a -> b)
  MemLinkFaults to_client;  // server -> client
  TcpConfig tcp;            // both stacks
  int connections = 1;
  std::size_t bytes = 100'000;  // per connection
  std::size_t rx_capacity = 256 * 1024;
  std::size_t tx_capacity = 64 * 1024;
  TimeNs time_cap = seconds(900);
  std::uint64_t iteration_cap = 2'000'000;
  std::size_t mtu = 1500;
};

// Client side: one entry per connection.
struct ClientConn {
  std::vector<std::byte> pattern;
  std::size_t sent = 0;
  std::size_t received = 0;
  std::size_t mismatched = 0;
  bool shut = false;
  bool peer_closed = false;
  bool done = false;
  int error = 0;
};

class NetSim {
 public:
  explicit NetSim(const NetOptions& o)
      : opts_(o),
        pair_(clock_, o.to_server, o.to_client, o.mtu),
        cbuf_(o.rx_capacity, o.tx_capacity),
        sbuf_(o.rx_capacity, o.tx_capacity) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    ::mkdir("test-pcaps", 0755);
    std::string name = std::string(info->test_suite_name()) + "." + info->name();
    std::replace(name.begin(), name.end(), '/', '_');
    pcap_path_ = "test-pcaps/" + name;
    std::string err;
    // What each stack saw: sent packets as sent (lost ones included), received as received.
    tap_ = PcapTap::open(pair_.a(), clock_, pcap_path_ + ".client.pcap", &err);
    server_tap_ = PcapTap::open(pair_.b(), clock_, pcap_path_ + ".server.pcap", &err);
    StackConfig cc;
    cc.ip.local_addr = kClientAddr;
    cc.tcp = o.tcp;
    StackConfig sc;
    sc.ip.local_addr = kServerAddr;
    sc.tcp = o.tcp;
    Link& client_link = tap_ ? static_cast<Link&>(*tap_) : static_cast<Link&>(pair_.a());
    client_ = std::make_unique<Stack>(cc, client_link, clock_, cbuf_.rx(), cbuf_.tx());
    Link& server_link = server_tap_ ? static_cast<Link&>(*server_tap_) : static_cast<Link&>(pair_.b());
    server_ = std::make_unique<Stack>(sc, server_link, clock_, sbuf_.rx(), sbuf_.tx());
    echo_ = std::make_unique<EchoService>(*server_, sbuf_, kEchoPort);
  }

  ~NetSim() {
    echo_.reset();
    server_.reset();
    client_.reset();
    tap_.reset();
    server_tap_.reset();
    if (!::testing::Test::HasFailure()) {
      std::remove((pcap_path_ + ".client.pcap").c_str());
      std::remove((pcap_path_ + ".server.pcap").c_str());
    } else {
      std::fprintf(stderr, "traffic of the failed test: %s.{client,server}.pcap\n", pcap_path_.c_str());
    }
  }

  // Opens all connections, runs to completion (or a cap), and checks the outcome.
  void run() {
    ASSERT_EQ(echo_->listen_result(), 0);
    for (int i = 0; i < opts_.connections; ++i) {
      const std::int64_t c = client_->tcp().connect(kServerAddr, kEchoPort);
      ASSERT_GE(c, 0) << "connect " << i;
      ClientConn cc;
      cc.pattern = pattern_bytes(opts_.bytes, static_cast<std::uint32_t>(1000 + i));
      conns_.emplace(static_cast<ConnId>(c), std::move(cc));
    }
    const TimeNs start = clock_.now();
    std::uint64_t iterations = 0;
    for (;;) {
      client_->poll();
      client_events();
      server_->poll();
      echo_->on_events();
      if (finished()) {
        break;
      }
      const TimeNs next = std::min({client_->next_deadline(), server_->next_deadline(),
                                    pair_.next_delivery_time()});
      ASSERT_NE(next, kNever) << "nothing left to happen but not finished\n" << report();
      if (next > clock_.now()) {
        clock_.set(next);
      }
      ASSERT_LE(clock_.now() - start, opts_.time_cap) << "virtual time cap\n" << report();
      ASSERT_LT(++iterations, opts_.iteration_cap) << "iteration cap\n" << report();
    }
    elapsed_ = clock_.now() - start;
    // Let what is still on the wire arrive (final ACKs, duplicates), so counters add up.
    for (int k = 0; k < 100000 && (pair_.in_flight(MemLinkDirection::a_to_b) > 0 ||
                                   pair_.in_flight(MemLinkDirection::b_to_a) > 0);
         ++k) {
      const TimeNs next = pair_.next_delivery_time();
      if (next > clock_.now()) {
        clock_.set(next);
      }
      client_->poll();
      client_events();
      server_->poll();
      echo_->on_events();
    }
    for (const auto& [id, c] : conns_) {
      EXPECT_TRUE(c.done) << "conn " << id;
      EXPECT_EQ(c.received, opts_.bytes) << "conn " << id;
      EXPECT_EQ(c.mismatched, 0u) << "conn " << id;
      EXPECT_EQ(c.error, 0) << "conn " << id;
    }
    EXPECT_EQ(echo_->accepted(), static_cast<std::uint64_t>(opts_.connections));
    EXPECT_EQ(echo_->echoed_bytes(), opts_.bytes * static_cast<std::size_t>(opts_.connections));
    EXPECT_EQ(server_->tcp().stats().bytes_in, opts_.bytes * static_cast<std::size_t>(opts_.connections))
        << "each byte accepted in order exactly once";
    EXPECT_EQ(client_->tcp().stats().bytes_in, opts_.bytes * static_cast<std::size_t>(opts_.connections));
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << report();
    }
  }

  bool finished() const {
    for (const auto& [id, c] : conns_) {
      if (!c.done) {
        return false;
      }
    }
    // The server finished its side too (LAST-ACK acknowledged), and nothing is open on
    // the client but TIME-WAIT entries.
    return echo_->open_connections() == 0 && server_->tcp().connection_count() == 0 &&
           client_->tcp().connection_count() == 0;
  }

  // Packets that a flipped bit made invalid, as both stacks counted them.
  std::uint64_t corruption_drops() const {
    std::uint64_t n = 0;
    for (const Stack* s : {client_.get(), server_.get()}) {
      s->ip().stats().for_each([&](const char* name, std::uint64_t v) {
        if (std::string(name).rfind("drop_", 0) == 0) {
          n += v;
        }
      });
      n += s->tcp().stats().drop_bad_checksum + s->tcp().stats().drop_malformed;
    }
    return n;
  }

  std::string report() const {
    std::ostringstream o;
    o << "virtual time " << (clock_.now() / kNsPerMs) << " ms\n";
    for (const auto& [id, c] : conns_) {
      if (!c.done) {
        o << "conn " << id << ": sent " << c.sent << " received " << c.received << " shut "
          << c.shut << " peer_closed " << c.peer_closed << " error " << c.error << "\n";
      }
    }
    o << "server open " << echo_->open_connections() << " server conns "
      << server_->tcp().connection_count() << " client conns " << client_->tcp().connection_count()
      << "\n";
    auto dump = [&](const char* who, const Stack& s) {
      s.tcp().stats().for_each([&](const char* n, std::uint64_t v) {
        if (v != 0) {
          o << who << ".tcp." << n << "=" << v << " ";
        }
      });
      s.ip().stats().for_each([&](const char* n, std::uint64_t v) {
        if (v != 0 && std::string(n).rfind("drop_", 0) == 0) {
          o << who << ".ip." << n << "=" << v << " ";
        }
      });
      o << "\n";
    };
    dump("client", *client_);
    dump("server", *server_);
    for (const auto dir : {MemLinkDirection::a_to_b, MemLinkDirection::b_to_a}) {
      const MemLinkCounters& k = pair_.counters(dir);
      o << (dir == MemLinkDirection::a_to_b ? "link to server" : "link to client") << ": sent "
        << k.sent << " delivered " << k.delivered << " lost " << k.lost << " duplicated "
        << k.duplicated << " reordered " << k.reordered << " corrupted " << k.corrupted
        << " queue_full " << k.dropped_queue_full << " in flight " << pair_.in_flight(dir) << "\n";
    }
    return o.str();
  }

  MemLinkPair& pair() { return pair_; }
  Stack& client() { return *client_; }
  Stack& server() { return *server_; }
  TimeNs elapsed() const { return elapsed_; }

 private:
  void pump(ConnId id, ClientConn& c) {
    TcpLayer& tcp = client_->tcp();
    while (c.sent < c.pattern.size()) {
      const std::int64_t n =
          tcp.send(id, wire::ByteSpan(c.pattern.data() + c.sent, c.pattern.size() - c.sent));
      if (n <= 0) {
        if (n < 0) {
          c.error = static_cast<int>(-n);
        }
        return;
      }
      c.sent += static_cast<std::size_t>(n);
    }
    if (!c.shut) {
      c.shut = true;
      EXPECT_EQ(tcp.shutdown(id), 0);
    }
  }

  void drain(ConnId id, ClientConn& c) {
    std::byte buf[16384];
    for (;;) {
      const std::size_t n = cbuf_.read(id, wire::MutableByteSpan(buf, sizeof buf));
      if (n == 0) {
        break;
      }
      for (std::size_t i = 0; i < n; ++i) {
        if (c.received + i >= c.pattern.size() || buf[i] != c.pattern[c.received + i]) {
          ++c.mismatched;
        }
      }
      c.received += n;
    }
    client_->tcp().consumed(id);
  }

  void client_events() {
    TcpLayer& tcp = client_->tcp();
    while (tcp.has_events()) {
      tcp.poll_events([&](const TcpEvent& e) {
        auto it = conns_.find(e.conn);
        if (it == conns_.end() || it->second.done) {
          return;
        }
        ClientConn& c = it->second;
        switch (e.type) {
          case TcpEventType::kConnected:
          case TcpEventType::kWritable:
            pump(e.conn, c);
            break;
          case TcpEventType::kReadable:
            drain(e.conn, c);
            break;
          case TcpEventType::kPeerClosed:
            drain(e.conn, c);
            c.peer_closed = true;
            if (c.received == c.pattern.size()) {
              c.done = true;
              EXPECT_EQ(tcp.close(e.conn), 0);
            }
            break;
          case TcpEventType::kClosed:
            c.error = e.error != 0 ? e.error : -1;  // -1: closed before the echo was complete
            break;
          case TcpEventType::kAcceptable:
            break;
        }
      });
    }
  }

  NetOptions opts_;
  ManualClock clock_{seconds(10)};
  MemLinkPair pair_;
  StreamBuffers cbuf_;
  StreamBuffers sbuf_;
  std::unique_ptr<PcapTap> tap_;
  std::unique_ptr<PcapTap> server_tap_;
  std::unique_ptr<Stack> client_;
  std::unique_ptr<Stack> server_;
  std::unique_ptr<EchoService> echo_;
  std::unordered_map<ConnId, ClientConn> conns_;
  std::string pcap_path_;
  TimeNs elapsed_ = 0;
};

MemLinkFaults faults(std::uint64_t seed) {
  MemLinkFaults f;
  f.seed = seed;
  return f;
}

// ---- clean link ------------------------------------------------------------------------

TEST(NetSim, CleanLink) {
  NetOptions o;
  o.bytes = 300'000;
  NetSim n(o);
  n.run();
  EXPECT_EQ(n.client().tcp().stats().retransmits, 0u);
  EXPECT_EQ(n.server().tcp().stats().retransmits, 0u);
  EXPECT_EQ(n.client().tcp().stats().drop_out_of_window, 0u);
  EXPECT_EQ(n.server().tcp().stats().drop_out_of_window, 0u);
  EXPECT_LT(n.elapsed(), seconds(1)) << "no timer should be needed on a clean link";
}

// ---- one fault at a time, several seeds ------------------------------------------------

struct Scenario {
  const char* name;
  double loss = 0;
  double duplicate = 0;
  double reorder = 0;
  double corrupt = 0;
  TimeNs delay = 0;
  TimeNs jitter = 0;
};

struct Case {
  Scenario s;
  std::uint64_t seed;
};

std::string case_name(const ::testing::TestParamInfo<Case>& p) {
  return std::string(p.param.s.name) + "_seed" + std::to_string(p.param.seed);
}

class NetSimFaults : public ::testing::TestWithParam<Case> {};

NetOptions options_for(const Case& c) {
  NetOptions o;
  o.bytes = 60'000;
  o.connections = 2;
  for (MemLinkFaults* f : {&o.to_server, &o.to_client}) {
    f->loss = c.s.loss;
    f->duplicate = c.s.duplicate;
    f->reorder = c.s.reorder;
    f->reorder_gap = 3;
    f->corrupt = c.s.corrupt;
    f->delay = c.s.delay;
    f->jitter = c.s.jitter;
  }
  o.to_server.seed = c.seed * 2 + 1;
  o.to_client.seed = c.seed * 2 + 2;
  return o;
}

TEST_P(NetSimFaults, AllBytesOnceInOrder) {
  const Case& c = GetParam();
  NetSim n(options_for(c));
  n.run();
  const auto& up = n.pair().counters(MemLinkDirection::a_to_b);
  const auto& down = n.pair().counters(MemLinkDirection::b_to_a);
  if (c.s.loss > 0) {
    EXPECT_GT(up.lost + down.lost, 0u) << "the scenario must actually lose packets";
  }
  if (c.s.duplicate > 0) {
    EXPECT_GT(up.duplicated + down.duplicated, 0u);
  }
  if (c.s.reorder > 0) {
    EXPECT_GT(up.reordered + down.reordered, 0u);
  }
  if (c.s.corrupt > 0) {
    const std::uint64_t corrupted = up.corrupted + down.corrupted;
    EXPECT_GT(corrupted, 0u);
    if (c.s.duplicate == 0) {
      // Checksums catch every flipped bit: each corrupted packet is dropped and counted.
      EXPECT_EQ(n.corruption_drops(), corrupted);
    }
  } else {
    EXPECT_EQ(n.corruption_drops(), 0u);
  }
}

const Scenario kScenarios[] = {
    {"loss5", 0.05},
    {"dup5", 0, 0.05},
    {"reorder10", 0, 0, 0.10},
    {"delay20_jitter", 0, 0, 0, 0, ms(20), ms(5)},
    {"corrupt1", 0, 0, 0, 0.01},
    {"combined", 0.03, 0.03, 0.05, 0.01, ms(10), ms(4)},
};

std::vector<Case> all_cases() {
  std::vector<Case> v;
  for (const Scenario& s : kScenarios) {
    for (std::uint64_t seed : {1, 2, 3}) {
      v.push_back(Case{s, seed});
    }
  }
  return v;
}

INSTANTIATE_TEST_SUITE_P(Seeds, NetSimFaults, ::testing::ValuesIn(all_cases()), case_name);

// ---- harsher conditions -------------------------------------------------------------------

TEST(NetSim, HeavyLossAndReorderingWithSmallBuffers) {
  // Small stores make windows close and reopen all the time (persist, SWS avoidance) while
  // 15% of packets are lost and many arrive late.
  for (std::uint64_t seed : {21, 22, 23}) {
    SCOPED_TRACE(seed);
    NetOptions o;
    o.connections = 3;
    o.bytes = 40'000;
    o.rx_capacity = 6000;
    o.tx_capacity = 5000;
    o.to_server = faults(seed);
    o.to_client = faults(seed + 1000);
    for (MemLinkFaults* f : {&o.to_server, &o.to_client}) {
      f->loss = 0.15;
      f->reorder = 0.2;
      f->reorder_gap = 6;
      f->duplicate = 0.05;
      f->delay = ms(3);
      f->jitter = ms(3);
    }
    o.time_cap = seconds(3000);
    NetSim n(o);
    n.run();
  }
}

TEST(NetSim, LongDelayBulkTransfer) {
  // 100 ms each way, 1% loss: the window has to grow well past the initial one.
  NetOptions o;
  o.bytes = 1'000'000;
  o.rx_capacity = 512 * 1024;
  o.tx_capacity = 256 * 1024;
  o.to_server = faults(31);
  o.to_client = faults(32);
  for (MemLinkFaults* f : {&o.to_server, &o.to_client}) {
    f->loss = 0.01;
    f->delay = ms(100);
  }
  NetSim n(o);
  n.run();
  EXPECT_LT(n.elapsed(), seconds(60)) << "throughput collapsed";
}

// ---- randomized conditions --------------------------------------------------------------

// Each seed picks its own mix: loss up to 28%, reordering, duplication, corruption, delay
// and jitter, small or large buffers, and every option and Nagle/delayed-ACK combination.
// Sweeps of many thousand seeds like these found the deadlocks fixed in the engine (data
// segments with SACK blocks over the MTU; a stale window plus ACKs outside a closed window);
// this is a fixed sample. At 28% loss both ways a connection can, rarely, time out by pure
// chance (every retransmission or every ACK lost), so a new failure needs its pcaps read.
TEST(NetSim, RandomizedConditions) {
  for (std::uint64_t seed = 2100; seed < 2230; ++seed) {
    SCOPED_TRACE(seed);
    NetOptions o;
    o.connections = 1 + static_cast<int>(seed % 5);
    o.bytes = 30'000 + (seed % 7) * 10'000;
    o.rx_capacity = seed % 3 == 0 ? 6000 : (seed % 3 == 1 ? 64 * 1024 : 256 * 1024);
    o.tx_capacity = seed % 2 == 0 ? 5000 : 64 * 1024;
    o.tcp.sack = seed % 5 != 0;
    o.tcp.timestamps = seed % 4 != 0;
    o.tcp.window_scaling = seed % 6 != 0;
    o.tcp.delayed_ack = seed % 7 != 0;
    o.tcp.nagle = seed % 8 != 0;
    // At 28% loss both ways six SYN retries can all fail by chance; that is not a bug.
    o.tcp.max_syn_retransmits = 12;
    o.tcp.max_synack_retransmits = 12;
    o.to_server = faults(seed);
    o.to_client = faults(seed + 10000);
    for (MemLinkFaults* f : {&o.to_server, &o.to_client}) {
      f->loss = 0.04 * static_cast<double>(seed % 8);
      f->reorder = 0.05 * static_cast<double>(seed % 5);
      f->reorder_gap = static_cast<std::uint32_t>(1 + seed % 9);
      f->duplicate = 0.02 * static_cast<double>(seed % 4);
      f->corrupt = 0.01 * static_cast<double>(seed % 3);
      f->delay = ms(static_cast<std::int64_t>(seed % 30));
      f->jitter = ms(static_cast<std::int64_t>(seed % 11));
    }
    o.time_cap = seconds(6000);
    NetSim n(o);
    n.run();
    if (::testing::Test::HasFailure()) {
      break;  // keep the failing seed's pcaps
    }
  }
}

TEST(NetSim, TinyWindowsJumboMtuAndDuplicates) {
  // Found by a seed sweep: windows of 3000 bytes, 12.5% loss and 16% duplication with no
  // SACK made both ends find each other's ACKs out of window (a sender that fills the window
  // sends SEQ = the receiver's right edge) and answer them with ACKs: 1M segments of ACK
  // storm and no progress.
  NetOptions o;
  o.connections = 7;
  o.bytes = 80'000;
  o.rx_capacity = 3000;
  o.tx_capacity = 5000;
  o.mtu = 9000;
  o.tcp.sack = false;
  o.tcp.window_scaling = false;
  o.to_server = faults(50370);
  o.to_client = faults(50370 + 10000);
  for (MemLinkFaults* f : {&o.to_server, &o.to_client}) {
    f->loss = 0.125;
    f->duplicate = 0.16;
    f->jitter = ms(1);
  }
  o.iteration_cap = 200'000;
  NetSim n(o);
  n.run();
  EXPECT_LT(n.client().tcp().stats().drop_out_of_window, 1000u);
  EXPECT_LT(n.server().tcp().stats().drop_out_of_window, 1000u);
}

// ---- many connections --------------------------------------------------------------------

TEST(NetSim, FiftyConnectionsWithLoss) {
  for (std::uint64_t seed : {7, 8}) {
    SCOPED_TRACE(seed);
    NetOptions o;
    o.connections = 50;
    o.bytes = 20'000;
    o.to_server = faults(seed);
    o.to_client = faults(seed + 100);
    o.to_server.loss = o.to_client.loss = 0.05;
    o.to_server.delay = o.to_client.delay = ms(5);
    NetSim n(o);
    n.run();
    EXPECT_GT(n.client().tcp().stats().retransmits + n.server().tcp().stats().retransmits, 0u);
  }
}

// ---- option combinations -----------------------------------------------------------------

struct OptionSet {
  const char* name;
  bool sack;
  bool timestamps;
  bool window_scaling;
};

class NetSimOptions : public ::testing::TestWithParam<OptionSet> {};

TEST_P(NetSimOptions, LossyTransfer) {
  const OptionSet& os = GetParam();
  for (std::uint64_t seed : {11, 12}) {
    SCOPED_TRACE(seed);
    NetOptions o;
    o.tcp.sack = os.sack;
    o.tcp.timestamps = os.timestamps;
    o.tcp.window_scaling = os.window_scaling;
    o.bytes = 150'000;
    o.to_server = faults(seed);
    o.to_client = faults(seed + 50);
    for (MemLinkFaults* f : {&o.to_server, &o.to_client}) {
      f->loss = 0.04;
      f->reorder = 0.03;
      f->delay = ms(15);
      f->jitter = ms(2);
    }
    NetSim n(o);
    n.run();
    const auto& st = n.client().tcp().stats();
    if (!os.sack) {
      EXPECT_EQ(st.sack_blocks_in, 0u);
      EXPECT_EQ(n.server().tcp().stats().sack_blocks_in, 0u);
    }
  }
}

const OptionSet kOptionSets[] = {
    {"all", true, true, true},         {"none", false, false, false},
    {"sack_only", true, false, false}, {"ts_only", false, true, false},
    {"ws_only", false, false, true},   {"no_sack", false, true, true},
};

INSTANTIATE_TEST_SUITE_P(Options, NetSimOptions, ::testing::ValuesIn(kOptionSets),
                         [](const ::testing::TestParamInfo<OptionSet>& p) {
                           return std::string(p.param.name);
                         });

}  // namespace
}  // namespace xtcp::test
