// Round trips at scale: a million or so TLPDUs across thousands of sessions, sizes 0..64 KiB
// (most small, a few large), over variant 1 and variant 2, on socketpairs, a named Unix
// socket and loopback TCP (127.0.0.1, handshaken). The far side checks every byte and each
// session's order, then echoes each TLPDU back by reference (the received buffer itself),
// and the near side checks the echo: both directions, backpressure and buffer lifetime.
#include <gtest/gtest.h>

#include <future>
#include <unordered_map>
#include <vector>

#include "netpdu/endpoint.h"
#include "netpdu/handshake.h"
#include "netpdu/net.h"
#include "tests/netpdu/test_util.h"

namespace xtcp::netpdu {
namespace {

struct Transports {
  Transport near;
  Transport far;
};

Transport single_of(int fd) {
  Transport t;
  t.negotiated.role = Role::kSingle;
  t.negotiated.max_pdu_bytes = 256 * 1024;
  t.negotiated.max_tlpdus = 8192;
  t.fd = fd;
  return t;
}

Transports socketpair_v1() {
  auto [a, b] = test::socket_pair();
  return {single_of(a), single_of(b)};
}

Transports socketpair_v2(int lanes) {
  Transports t{single_of(-1), single_of(-1)};
  for (Transport* x : {&t.near, &t.far}) {
    x->negotiated.role = Role::kControl;
    x->negotiated.data_count = static_cast<std::uint16_t>(lanes);
  }
  auto [c0, c1] = test::socket_pair();
  t.near.fd = c0;
  t.far.fd = c1;
  for (int i = 0; i < lanes; ++i) {
    auto [d0, d1] = test::socket_pair();
    t.near.data_fds.push_back(d0);
    t.far.data_fds.push_back(d1);
  }
  return t;
}

// Listens on `a`, connects with a real handshake (variant 1 or a bundle), and returns both
// ends. The acceptor runs here while the initiator blocks on another thread.
Transports connected(const Address& a, int lanes) {
  std::string err;
  const int lfd = listen_on(a, &err);
  EXPECT_GE(lfd, 0) << err;
  Address target = a;
  if (!a.is_unix) {
    target.in.sin_port = htons(bound_port(lfd));
  }
  HandshakeLimits limits;
  auto f = std::async(std::launch::async, [target, limits, lanes] {
    std::string e;
    auto t = open_transport(target, limits, lanes, 5000, &e);
    EXPECT_TRUE(t) << e;
    return t;
  });
  ManualClock clock;
  Acceptor acceptor(limits, clock, 5'000'000'000);
  std::vector<Transport> ready;
  for (int i = 0; i < 10000 && ready.empty(); ++i) {
    std::vector<pollfd> p{{lfd, POLLIN, 0}};
    for (int fd : acceptor.waiting_fds()) {
      p.push_back({fd, POLLIN, 0});
    }
    if (::poll(p.data(), p.size(), 10) <= 0) {
      continue;
    }
    if (p[0].revents != 0) {
      const int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        acceptor.add(c);
      }
    }
    for (std::size_t k = 1; k < p.size(); ++k) {
      if (p[k].revents != 0) {
        acceptor.on_readable(p[k].fd);
      }
    }
    ready = acceptor.take_ready();
  }
  ::close(lfd);
  auto near = f.get();
  EXPECT_EQ(ready.size(), 1u);
  EXPECT_TRUE(near.has_value());
  return {near ? *near : Transport{}, ready.empty() ? Transport{} : ready[0]};
}

struct RoundTripResult {
  std::uint64_t sent = 0;
  std::uint64_t far_checked = 0;
  std::uint64_t echoes_checked = 0;
  std::uint64_t bad = 0;
  std::uint64_t near_would_block = 0;
  std::uint64_t far_retries = 0;
  std::uint64_t payload_bytes = 0;
  std::uint64_t syscalls = 0;
};

RoundTripResult round_trip(const Transports& t, std::uint64_t count, std::size_t sessions,
                           const test::Pattern& pattern, std::uint32_t latency_us = 200) {
  SteadyClock clock;
  RoundTripResult r;
  std::vector<std::uint64_t> ids(sessions);
  std::unordered_map<std::uint64_t, std::size_t> index;
  for (std::size_t i = 0; i < sessions; ++i) {
    ids[i] = test::Pattern::mix(i, 0, 77) | 1;  // spread over all 64 bits
    index[ids[i]] = i;
  }
  std::vector<std::uint32_t> tx_seq(sessions), far_seq(sessions), echo_seq(sessions);
  EndpointConfig base;
  base.tx.latency_us = latency_us;
  std::unique_ptr<Endpoint> far;
  bool resume_far = false;
  auto check = [&](std::vector<std::uint32_t>& expect, const Tlpdu& x) {
    auto it = index.find(x.meta.session);
    if (it == index.end() || x.meta.seq != expect[it->second] || !pattern.check(x.meta.session, x.meta.seq, x.payload.bytes)) {
      ++r.bad;
      return false;
    }
    ++expect[it->second];
    return true;
  };
  far = Endpoint::open(t.far, base, clock, [&](const Tlpdu& x) {
    // Echo first: a refused echo is retried with the same TLPDU, so check after success.
    const int rc = far->submit(x.meta, x.payload);
    if (rc == -EAGAIN) {
      ++r.far_retries;
      return Verdict::kRetryLater;
    }
    if (rc != 0 || !check(far_seq, x)) {
      ++r.bad;
      return Verdict::kReject;
    }
    ++r.far_checked;
    return Verdict::kAccept;
  });
  far->set_on_space([&] { resume_far = true; });
  auto near = Endpoint::open(t.near, base, clock, [&](const Tlpdu& x) {
    if (!check(echo_seq, x)) {
      return Verdict::kReject;
    }
    ++r.echoes_checked;
    return Verdict::kAccept;
  });
  bool near_blocked = false;
  near->set_on_space([&] { near_blocked = false; });

  const IoCounters before = io_counters();
  std::mt19937_64 rng(99);
  const TimeNs end = clock.now() + 20'000'000'000;  // bounded: 20 s at worst
  std::vector<pollfd> pfds;
  std::vector<Endpoint*> owner;
  while (r.echoes_checked < count && r.bad == 0 && clock.now() < end) {
    if (near->state() != Endpoint::State::kOpen || far->state() != Endpoint::State::kOpen) {
      ADD_FAILURE() << "endpoint down: " << near->error_message() << " / " << far->error_message();
      break;
    }
    for (int k = 0; k < 2000 && r.sent < count && !near_blocked; ++k) {
      const std::size_t i = rng() % sessions;
      TlpduMeta m;
      m.session = ids[i];
      m.seq = tx_seq[i];
      const int rc = near->submit(m, pattern.payload(m.session, m.seq));
      if (rc == -EAGAIN) {
        near_blocked = true;
        ++r.near_would_block;
        break;
      }
      if (rc != 0) {
        ADD_FAILURE() << "submit: " << rc;
        ++r.bad;
        break;
      }
      r.payload_bytes += pattern.size_for(m.session, m.seq);
      ++tx_seq[i];
      ++r.sent;
    }
    if (r.sent == count) {
      near->flush();
    }
    near->poll_timers();
    far->poll_timers();
    pfds.clear();
    owner.clear();
    for (Endpoint* e : {near.get(), far.get()}) {
      const std::size_t before_size = pfds.size();
      e->pollfds(&pfds);
      owner.resize(pfds.size(), e);
      (void)before_size;
    }
    const bool more = r.sent < count && !near_blocked;
    const int rc = ::poll(pfds.data(), pfds.size(), more ? 0 : 5);
    for (std::size_t k = 0; rc > 0 && k < pfds.size(); ++k) {
      if (pfds[k].revents != 0) {
        owner[k]->handle(pfds[k].fd, pfds[k].revents);
      }
    }
    if (resume_far) {
      resume_far = false;
      far->resume();
    }
  }
  r.syscalls = (io_counters() - before).calls();
  if (r.echoes_checked < count) {
    // Say where it stopped: what each side waits for.
    std::vector<pollfd> w;
    near->pollfds(&w);
    far->pollfds(&w);
    std::string ev;
    for (const auto& p : w) {
      ev += " fd" + std::to_string(p.fd) + ":" + std::to_string(p.events);
    }
    ADD_FAILURE() << "stalled: sent " << r.sent << " far " << r.far_checked << " echoes " << r.echoes_checked
                  << "; near queued " << near->queued_bytes() << " blocked " << near_blocked << " rx-blocked "
                  << near->delivery_blocked() << "; far queued " << far->queued_bytes() << " rx-blocked "
                  << far->delivery_blocked() << "; polled" << ev;
  }
  EXPECT_EQ(near->state(), Endpoint::State::kOpen) << near->error_message();
  EXPECT_EQ(far->state(), Endpoint::State::kOpen) << far->error_message();
  return r;
}

void expect_complete(const RoundTripResult& r, std::uint64_t count, bool check_syscalls = true) {
  EXPECT_EQ(r.bad, 0u);
  EXPECT_EQ(r.sent, count);
  EXPECT_EQ(r.far_checked, count);
  EXPECT_EQ(r.echoes_checked, count);
  // Aggregation: far fewer system calls than messages (2 directions, 2 sides).
  EXPECT_TRUE(!check_syscalls || r.syscalls < count / 4) << r.syscalls << " system calls for " << count << " round trips";
}

TEST(NetpduRoundTrip, Variant1SocketpairMillion) {
  const test::Pattern pattern(2000, 128);
  const std::uint64_t n = 1'000'000;
  const auto r = round_trip(socketpair_v1(), n, 4096, pattern);
  expect_complete(r, n);
}

TEST(NetpduRoundTrip, Variant1SmallBuffersBackpressure) {
  // Tiny kernel buffers and a small aggregator queue: partial writes and -EAGAIN all along.
  const test::Pattern pattern(50, 512, 65536);
  auto [a, b] = test::socket_pair(4096);
  const auto r = round_trip({single_of(a), single_of(b)}, 60'000, 1000, pattern);
  expect_complete(r, 60'000, false);
  EXPECT_GT(r.near_would_block + r.far_retries, 0u) << "backpressure was exercised";
}

TEST(NetpduRoundTrip, Variant1NamedUnixSocketHandshaken) {
  const std::string path = "/tmp/xtcp_netpdu_rt_" + std::to_string(::getpid()) + ".sock";
  const Transports t = connected(unix_address(path), 0);
  ::unlink(path.c_str());
  ASSERT_GE(t.near.fd, 0);
  const test::Pattern pattern(1000, 256);
  const auto r = round_trip(t, 300'000, 2000, pattern);
  expect_complete(r, 300'000);
}

TEST(NetpduRoundTrip, Variant1LoopbackTcp) {
  std::string err;
  const auto a = parse_host_port("127.0.0.1:0", &err);
  const Transports t = connected(*a, 0);
  ASSERT_GE(t.near.fd, 0);
  const test::Pattern pattern(1000, 256);
  const auto r = round_trip(t, 400'000, 3000, pattern);
  expect_complete(r, 400'000);
}

TEST(NetpduRoundTrip, Variant2SocketpairsMillion) {
  const test::Pattern pattern(2000, 128);
  const std::uint64_t n = 1'000'000;
  const auto r = round_trip(socketpair_v2(3), n, 4096, pattern);
  expect_complete(r, n);
}

TEST(NetpduRoundTrip, Variant2SmallBuffersBackpressure) {
  const test::Pattern pattern(50, 512, 65536);
  Transports t = socketpair_v2(2);
  const int small = 4096;
  for (Transport* x : {&t.near, &t.far}) {
    for (int fd : x->data_fds) {
      ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    }
  }
  const auto r = round_trip(t, 40'000, 500, pattern);
  expect_complete(r, 40'000, false);
}

TEST(NetpduRoundTrip, Variant2LoopbackTcpBundle) {
  std::string err;
  const auto a = parse_host_port("127.0.0.1:0", &err);
  const Transports t = connected(*a, 4);
  ASSERT_GE(t.near.fd, 0);
  ASSERT_EQ(t.far.data_fds.size(), 4u);
  const test::Pattern pattern(1000, 256);
  const auto r = round_trip(t, 300'000, 3000, pattern);
  expect_complete(r, 300'000);
}

}  // namespace
}  // namespace xtcp::netpdu
