// The XTCP API under network faults: a Runtime (server: a line-echo application on the API,
// answering each line and acknowledging it through ackd) and an engine Stack playing many
// clients, over a MemLinkPair with seeded loss, duplication, reordering and delay, in
// virtual time. Every request must be answered exactly once and in order, with the server's
// ACKs riding on its answers (lost answers resent from the cache).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "api/src/runtime.h"
#include "stack/buffer/stream_buffers.h"
#include "stack/netif/mem_link.h"
#include "stack/stack.h"

namespace xtcp::test {
namespace {

constexpr std::uint32_t kClientAddr = 0xC6120001;  // 198.18.0.1
constexpr std::uint32_t kServerAddr = 0xC6120002;  // 198.18.0.2
constexpr std::uint16_t kPort = 7000;

struct Options {
  MemLinkFaults to_server;
  MemLinkFaults to_client;
  int clients = 20;
  int requests = 30;          // per client, one outstanding at a time
  std::size_t pool = 256 * 1024;
  int framing = XTCP_FRAME_DELIMITER;
  TimeNs time_cap = seconds(1800);
};

struct ClientConn {
  ConnId id = kNoConn;
  bool connected = false;
  int next = 0;            // next request to send
  int answered = 0;        // answers received, in order
  std::string inbox;       // answer bytes not yet a whole line
  bool bad = false;
  int error = 0;
};

// "REQ <client> <n> <padding>\n" -> "ANS <client> <n>\n"
std::string answer_for(const std::string& line) {
  const std::size_t a = line.find(' ');
  const std::size_t b = line.find(' ', a + 1);
  const std::size_t c = line.find(' ', b + 1);
  return "ANS " + line.substr(a + 1, c - a - 1) + "\n";
}

std::string request(int client, int n) {
  // Varied sizes, some spanning several segments' worth of chunks.
  const std::size_t pad = static_cast<std::size_t>((client * 7 + n * 13) % 300);
  return "REQ " + std::to_string(client) + " " + std::to_string(n) + " " + std::string(pad, 'p') + "\n";
}

struct Result {
  int answered = 0;
  int bad = 0;
  int errors = 0;
  std::uint64_t server_requests = 0;
  std::uint64_t answers_from_cache = 0;
  std::uint64_t retransmits = 0;
  std::uint64_t rx_refused = 0;
  TimeNs elapsed = 0;
};

Result run(const Options& o) {
  ManualClock clock(seconds(10));
  MemLinkPair pair(clock, o.to_client, o.to_server);  // a: server side, b: client side
  api::RuntimeConfig rc;
  rc.stack.ip.local_addr = kServerAddr;
  api::Runtime server(rc, pair.a(), clock);
  const int pool = server.pool_create(o.pool);
  const int gd = server.open_group(pool, PF_INET, SOCK_STREAM, 0, kPort);
  EXPECT_GT(gd, 0);
  EXPECT_EQ(server.setopt(gd, XTCP_OPT_FRAMING, o.framing), 0);
  EXPECT_EQ(server.setopt(gd, XTCP_OPT_ACCEPT_TIMEOUT_MS, 0), 0);

  StreamBuffers cbuf(64 * 1024, 64 * 1024);
  StackConfig cc;
  cc.ip.local_addr = kClientAddr;
  Stack client(cc, pair.b(), clock, cbuf.rx(), cbuf.tx());
  std::vector<ClientConn> conns(static_cast<std::size_t>(o.clients));
  std::map<ConnId, int> by_id;
  for (int i = 0; i < o.clients; ++i) {
    const std::int64_t id = client.tcp().connect(kServerAddr, kPort);
    EXPECT_GE(id, 0);
    conns[static_cast<std::size_t>(i)].id = static_cast<ConnId>(id);
    by_id[static_cast<ConnId>(id)] = i;
  }
  Result res;
  const TimeNs start = clock.now();
  std::uint64_t server_requests = 0;
  char buf[8192];
  for (std::uint64_t iter = 0; iter < 5'000'000; ++iter) {
    // Server application: answer every whole line, acknowledging exactly the lines answered.
    server.drive();
    for (int cd = server.accept(0, gd); cd > 0; cd = server.accept(0, gd)) {
    }
    for (int k = 0; k < 10'000; ++k) {
      int cd = 0;
      const int n = server.recv(0, gd, &cd, buf, sizeof buf);
      if (n == -EAGAIN) {
        break;
      }
      if (n <= 0) {
        server.close(0, gd, cd);
        continue;
      }
      std::string answer;
      std::size_t start_at = 0;
      for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
        if (buf[i] == '\n') {
          answer += answer_for(std::string(buf + start_at, i + 1 - start_at));
          start_at = i + 1;
          ++server_requests;
        }
      }
      EXPECT_EQ(start_at, static_cast<std::size_t>(n)) << "framing returns whole lines only";
      EXPECT_EQ(server.send(0, gd, cd, start_at, answer.data(), answer.size()), static_cast<int>(answer.size()));
    }
    // Client side: engine events, answers, next requests.
    client.poll();
    client.tcp().poll_events([&](const TcpEvent& e) {
      auto it = by_id.find(e.conn);
      if (it == by_id.end()) {
        return;
      }
      ClientConn& c = conns[static_cast<std::size_t>(it->second)];
      if (e.type == TcpEventType::kConnected) {
        c.connected = true;
      } else if (e.type == TcpEventType::kClosed && e.error != 0) {
        c.error = e.error;
      }
    });
    bool all_done = true;
    for (int i = 0; i < o.clients; ++i) {
      ClientConn& c = conns[static_cast<std::size_t>(i)];
      if (!c.connected || c.error != 0) {
        all_done = all_done && c.error != 0;
        continue;
      }
      std::byte rb[4096];
      for (std::size_t got = cbuf.read(c.id, rb); got > 0; got = cbuf.read(c.id, rb)) {
        c.inbox.append(reinterpret_cast<const char*>(rb), got);
      }
      client.tcp().consumed(c.id);
      for (std::size_t nl = c.inbox.find('\n'); nl != std::string::npos; nl = c.inbox.find('\n')) {
        const std::string line = c.inbox.substr(0, nl);
        c.inbox.erase(0, nl + 1);
        const std::string want = "ANS " + std::to_string(i) + " " + std::to_string(c.answered);
        if (line != want) {
          c.bad = true;
        }
        ++c.answered;
      }
      if (c.next == c.answered && c.next < o.requests) {
        const std::string r = request(i, c.next);
        const std::int64_t took = client.tcp().send(c.id, wire::ByteSpan(reinterpret_cast<const std::byte*>(r.data()), r.size()));
        EXPECT_EQ(took, static_cast<std::int64_t>(r.size()));
        ++c.next;
      }
      all_done = all_done && c.answered == o.requests;
    }
    if (all_done || clock.now() - start > o.time_cap) {
      break;
    }
    // Virtual time moves to the next delivery or timer; nothing due now means nothing to do.
    const TimeNs now = clock.now();
    const TimeNs next =
        std::min({pair.next_delivery_time(), server.next_deadline(), client.next_deadline()});
    if (next == kNever) {
      break;
    }
    if (next > now) {
      clock.set(next);
    } else if (pair.next_delivery_time() > now) {
      clock.set(now + kNsPerMs);  // a timer reported due but not fired: do not spin
    }
  }
  for (const ClientConn& c : conns) {
    res.answered += c.answered;
    res.bad += c.bad ? 1 : 0;
    res.errors += c.error != 0 ? 1 : 0;
  }
  res.server_requests = server_requests;
  res.answers_from_cache = server.stack().tcp().stats().answers_from_cache;
  res.retransmits = server.stack().tcp().stats().retransmits;
  res.elapsed = clock.now() - start;
  struct xtcp_pool_stats st{};
  EXPECT_EQ(server.pool_stats(pool, &st), 0);
  res.rx_refused = st.rx_dropped_full;
  EXPECT_EQ(st.rx_buffer_used, 0u);
  return res;
}

TEST(ApiNetsim, CleanNetwork) {
  Options o;
  const Result r = run(o);
  EXPECT_EQ(r.answered, o.clients * o.requests);
  EXPECT_EQ(r.bad, 0);
  EXPECT_EQ(r.errors, 0);
  EXPECT_EQ(r.server_requests, static_cast<std::uint64_t>(o.clients * o.requests))
      << "each request reached the application exactly once";
  EXPECT_EQ(r.retransmits, 0u);
}

TEST(ApiNetsim, LossDuplicationReorderingDelay) {
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    Options o;
    for (MemLinkFaults* f : {&o.to_server, &o.to_client}) {
      f->seed = seed * 100 + (f == &o.to_server ? 1 : 2);
      f->loss = 0.08;
      f->duplicate = 0.03;
      f->reorder = 0.05;
      f->delay = ms(5);
      f->jitter = ms(3);
    }
    const Result r = run(o);
    EXPECT_EQ(r.answered, o.clients * o.requests) << "seed " << seed;
    EXPECT_EQ(r.bad, 0) << "seed " << seed;
    EXPECT_EQ(r.errors, 0) << "seed " << seed;
    EXPECT_EQ(r.server_requests, static_cast<std::uint64_t>(o.clients * o.requests))
        << "seed " << seed << ": the application saw each request once";
    EXPECT_GT(r.retransmits + r.answers_from_cache, 0u) << "seed " << seed << ": faults happened";
  }
}

// A small pool under many clients: throttling and redelivery, still exactly once.
TEST(ApiNetsim, SmallPoolUnderLoad) {
  Options o;
  o.clients = 60;
  o.requests = 10;
  o.pool = 8 * 1024;
  o.to_server.seed = 7;
  o.to_server.loss = 0.02;
  o.to_client.seed = 8;
  o.to_client.loss = 0.02;
  const Result r = run(o);
  EXPECT_EQ(r.answered, o.clients * o.requests);
  EXPECT_EQ(r.bad, 0);
  EXPECT_EQ(r.errors, 0);
  EXPECT_EQ(r.server_requests, static_cast<std::uint64_t>(o.clients * o.requests));
  EXPECT_GT(r.rx_refused, 0u) << "the pool ran full";
}

}  // namespace
}  // namespace xtcp::test
