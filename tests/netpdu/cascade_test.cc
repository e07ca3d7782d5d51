// Cascade tests (an inverted tree): four sources -> two concentrators -> one concentrator ->
// a target that echoes. Mixed variants on every level. The target checks that ids stay
// unambiguous (each decodes to exactly one source), every byte and per-session order; the
// sources check the echoes. Faults: a bad upstream is closed alone and its sessions are
// closed downstream; bad ids; a bad answer index; index exhaustion; losing the downstream.
#include "netpdu/concentrator.h"

#include <gtest/gtest.h>

#include <map>
#include <unordered_map>
#include <vector>

#include "tests/netpdu/test_util.h"

namespace xtcp::netpdu {
namespace {

constexpr unsigned kBits = 8;

Transport v1(int fd) {
  Transport t;
  t.negotiated.role = Role::kSingle;
  t.negotiated.max_pdu_bytes = 256 * 1024;
  t.negotiated.max_tlpdus = 8192;
  t.fd = fd;
  return t;
}

// Both ends of a link of the given variant (lanes == 0: variant 1).
std::pair<Transport, Transport> link(int lanes) {
  auto [a, b] = test::socket_pair();
  std::pair<Transport, Transport> p{v1(a), v1(b)};
  if (lanes > 0) {
    for (Transport* t : {&p.first, &p.second}) {
      t->negotiated.role = Role::kControl;
      t->negotiated.data_count = static_cast<std::uint16_t>(lanes);
    }
    for (int i = 0; i < lanes; ++i) {
      auto [c, d] = test::socket_pair();
      p.first.data_fds.push_back(c);
      p.second.data_fds.push_back(d);
    }
  }
  return p;
}

ConcentratorConfig cc() {
  ConcentratorConfig c;
  c.index_bits = kBits;
  return c;
}

// A leaf front end: opens its sessions, sends DATA, checks the echoes.
struct Source {
  int number = 0;
  std::unique_ptr<Endpoint> ep;
  std::vector<std::uint64_t> ids;
  std::vector<std::uint32_t> tx_seq;
  std::vector<std::uint32_t> echo_seq;
  std::unordered_map<std::uint64_t, std::size_t> index;
  std::uint64_t to_send = 0;
  std::uint64_t sent = 0;
  std::uint64_t echoes = 0;
  std::uint64_t bad = 0;
  bool blocked = false;
  bool close_at_end = false;
  std::mt19937_64 rng;
  const test::Pattern* pattern = nullptr;

  Source(int n, const Transport& t, std::size_t sessions, std::uint64_t count, const test::Pattern& p,
         const Clock& clock)
      : number(n), to_send(count), rng(static_cast<unsigned>(n)), pattern(&p) {
    for (std::size_t i = 0; i < sessions; ++i) {
      ids.push_back((static_cast<std::uint64_t>(n) << 32) | (i + 1));  // leaf ids < 2^48
      index[ids.back()] = i;
    }
    tx_seq.assign(sessions, 0);
    echo_seq.assign(sessions, 0);
    ep = Endpoint::open(t, EndpointConfig{}, clock, [this](const Tlpdu& x) {
      auto it = index.find(x.meta.session);
      if (it == index.end() || x.meta.seq != echo_seq[it->second] ||
          (x.meta.type == TlpduType::kData && !pattern->check(x.meta.session, x.meta.seq, x.payload.bytes))) {
        ++bad;
        return Verdict::kReject;
      }
      ++echo_seq[it->second];
      ++echoes;
      return Verdict::kAccept;
    });
    ep->set_on_space([this] { blocked = false; });
  }

  // Sends OPENs first (seq 0), then DATA (seq 1..), and CLOSEs at the end if asked.
  void produce() {
    for (int k = 0; k < 2000 && !blocked && sent < to_send; ++k) {
      TlpduMeta m;
      Payload p;
      std::size_t i;
      if (sent < ids.size()) {
        i = static_cast<std::size_t>(sent);
        m.type = TlpduType::kOpen;
      } else if (close_at_end && sent >= to_send - ids.size()) {
        i = static_cast<std::size_t>(sent - (to_send - ids.size()));
        m.type = TlpduType::kClose;
      } else {
        i = rng() % ids.size();
        m.type = TlpduType::kData;
      }
      m.session = ids[i];
      m.seq = tx_seq[i];
      if (m.type == TlpduType::kData) {
        p = pattern->payload(m.session, m.seq);
      }
      const int rc = ep->submit(m, std::move(p));
      if (rc == -EAGAIN) {
        blocked = true;
        break;
      }
      if (rc != 0) {
        ++bad;
        break;
      }
      ++tx_seq[i];
      ++sent;
    }
    if (sent == to_send) {
      ep->flush();
    }
    ep->poll_timers();
  }

  test::Node node() {
    return test::Node{[this](std::vector<pollfd>* v) { ep->pollfds(v); }, [this](int fd, short e) { ep->handle(fd, e); },
                      [this] { produce(); }, [this] { return ep->next_deadline(); }};
  }
};

// The backend stand-in: checks ids, order and bytes, echoes everything back.
struct Target {
  std::unique_ptr<Endpoint> ep;
  std::unordered_map<std::uint64_t, std::uint32_t> next_seq;
  std::unordered_map<std::uint64_t, int> owner;  // id seen here -> source number it decodes to
  std::map<int, std::uint64_t> per_source;
  std::uint64_t received = 0;
  std::uint64_t closes = 0;
  std::uint64_t bad = 0;
  std::string first_bad;
  bool resume = false;
  const test::Pattern* pattern;
  // (level-2 index, level-1 index) -> source, from the wiring
  std::map<std::pair<std::uint32_t, std::uint32_t>, int> route;

  Target(const Transport& t, const test::Pattern& p, const Clock& clock) : pattern(&p) {
    ep = Endpoint::open(t, EndpointConfig{}, clock, [this](const Tlpdu& x) { return on(x); });
    ep->set_on_space([this] { resume = true; });
  }
  Verdict on(const Tlpdu& x) {
    const std::uint32_t i2 = Concentrator::index_of(x.meta.session, kBits);
    const std::uint64_t mid = Concentrator::up_id(x.meta.session, kBits);
    const std::uint32_t i1 = Concentrator::index_of(mid, kBits);
    const std::uint64_t leaf = Concentrator::up_id(mid, kBits);
    auto r = route.find({i2, i1});
    const int src = static_cast<int>(leaf >> 32);
    auto bad_input = [&](const std::string& why) {
      if (first_bad.empty()) {
        first_bad = why;
      }
      ++bad;
      return Verdict::kReject;
    };
    if (r == route.end() || r->second != src) {
      return bad_input("id " + std::to_string(x.meta.session) + " does not decode to its source");
    }
    auto [it, fresh] = next_seq.try_emplace(x.meta.session, 0);
    if (x.meta.seq != it->second) {
      return bad_input("order");
    }
    if (x.meta.type == TlpduType::kData && !pattern->check(leaf, x.meta.seq, x.payload.bytes)) {
      return bad_input("bytes");
    }
    const int rc = ep->submit(x.meta, x.payload);  // echo, same id, same buffer
    if (rc == -EAGAIN) {
      return Verdict::kRetryLater;
    }
    ++it->second;
    ++received;
    ++per_source[src];
    if (x.meta.type == TlpduType::kClose) {
      ++closes;
    }
    return Verdict::kAccept;
  }
  test::Node node() {
    return test::Node{[this](std::vector<pollfd>* v) { ep->pollfds(v); },
                      [this](int fd, short e) { ep->handle(fd, e); },
                      [this] {
                        if (resume) {
                          resume = false;
                          ep->resume();
                        }
                        ep->poll_timers();
                      },
                      [this] { return ep->next_deadline(); }};
  }
};

TEST(NetpduCascade, TwoLevelsMixedVariantsEveryByteAndOrder) {
  SteadyClock clock;
  const test::Pattern pattern(2000, 128);
  // sources 0,2 -> c1 (variant 1, variant 2); sources 1,3 -> c2 (variant 2, variant 1)
  // c1 -> c3 (variant 1), c2 -> c3 (variant 2); c3 -> target (variant 2)
  auto s0 = link(0), s2 = link(2), s1 = link(3), s3 = link(0);
  auto c1_c3 = link(0), c2_c3 = link(2), c3_t = link(2);
  Concentrator c1(c1_c3.first, cc(), clock);
  Concentrator c2(c2_c3.first, cc(), clock);
  Concentrator c3(c3_t.first, cc(), clock);
  Target target(c3_t.second, pattern, clock);
  ASSERT_EQ(c1.add_upstream(s0.second), 0);
  ASSERT_EQ(c1.add_upstream(s2.second), 1);
  ASSERT_EQ(c2.add_upstream(s1.second), 0);
  ASSERT_EQ(c2.add_upstream(s3.second), 1);
  ASSERT_EQ(c3.add_upstream(c1_c3.second), 0);
  ASSERT_EQ(c3.add_upstream(c2_c3.second), 1);
  target.route = {{{0, 0}, 0}, {{0, 1}, 2}, {{1, 0}, 1}, {{1, 1}, 3}};
  const std::uint64_t per_source = 150'000;
  std::vector<std::unique_ptr<Source>> sources;
  sources.push_back(std::make_unique<Source>(0, s0.first, 1000, per_source, pattern, clock));
  sources.push_back(std::make_unique<Source>(1, s1.first, 1000, per_source, pattern, clock));
  sources.push_back(std::make_unique<Source>(2, s2.first, 1000, per_source, pattern, clock));
  sources.push_back(std::make_unique<Source>(3, s3.first, 1000, per_source, pattern, clock));
  for (auto& s : sources) {
    s->close_at_end = true;
  }
  std::vector<test::Node> nodes{test::node_of(c1), test::node_of(c2), test::node_of(c3), target.node()};
  for (auto& s : sources) {
    nodes.push_back(s->node());
  }
  const bool done = test::pump(nodes, [&] {
    std::uint64_t echoes = 0;
    for (auto& s : sources) {
      echoes += s->echoes;
    }
    return echoes == 4 * per_source || target.bad != 0;
  });
  EXPECT_TRUE(done);
  EXPECT_EQ(target.bad, 0u) << target.first_bad;
  EXPECT_EQ(target.received, 4 * per_source);
  EXPECT_EQ(target.closes, 4000u);
  for (auto& s : sources) {
    EXPECT_EQ(s->bad, 0u) << s->number;
    EXPECT_EQ(s->echoes, per_source) << s->number;
    EXPECT_EQ(target.per_source[s->number], per_source);
  }
  EXPECT_EQ(target.next_seq.size(), 4000u) << "4000 distinct ids at the target";
  EXPECT_FALSE(c1.failed() || c2.failed() || c3.failed());
  EXPECT_EQ(c3.stats().up_tlpdus, 4 * per_source);
  EXPECT_EQ(c3.stats().down_tlpdus, 4 * per_source);
  EXPECT_EQ(c1.stats().dropped_answers + c2.stats().dropped_answers + c3.stats().dropped_answers, 0u);
}

TEST(NetpduCascade, IdMappingIsReversible) {
  for (unsigned bits : {1u, 8u, 16u, 32u}) {
    const std::uint64_t leaf = 0x0000'00AB'CDEF'1234ull >> (bits > 16 ? 8 : 0);
    const auto idx = static_cast<std::uint32_t>((std::uint64_t{1} << bits) - 1);
    const std::uint64_t down = Concentrator::down_id(leaf, idx, bits);
    EXPECT_EQ(Concentrator::index_of(down, bits), idx);
    EXPECT_EQ(Concentrator::up_id(down, bits), leaf);
  }
}

struct OneLevel {
  SteadyClock clock;
  test::Pattern pattern{0, 64};
  std::pair<Transport, Transport> up_a = link(0);
  std::pair<Transport, Transport> up_b = link(0);
  std::pair<Transport, Transport> down = link(0);
  std::unique_ptr<Concentrator> c;
  std::unique_ptr<Target> target;
  std::vector<TlpduMeta> target_saw;

  OneLevel() {
    c = std::make_unique<Concentrator>(down.first, cc(), clock);
    EXPECT_EQ(c->add_upstream(up_a.second), 0);
    EXPECT_EQ(c->add_upstream(up_b.second), 1);
  }
};

TEST(NetpduCascade, BadUpstreamIsClosedAloneAndItsSessionsClosedDownstream) {
  OneLevel w;
  std::vector<TlpduMeta> seen;
  auto target = Endpoint::open(w.down.second, EndpointConfig{}, w.clock, [&](const Tlpdu& x) {
    seen.push_back(x.meta);
    return Verdict::kAccept;
  });
  // Upstream b: a good source that keeps working. Upstream a: opens 3 sessions, then garbage.
  const test::Pattern pattern(0, 64);
  Source good(1, w.up_b.first, 10, 2000, pattern, w.clock);
  auto bad_ep = Endpoint::open(w.up_a.first, EndpointConfig{}, w.clock, [](const Tlpdu&) { return Verdict::kAccept; });
  for (std::uint32_t s = 1; s <= 3; ++s) {
    TlpduMeta m;
    m.type = TlpduType::kOpen;
    m.session = s;
    ASSERT_EQ(bad_ep->submit(m, Payload{}), 0);
  }
  TlpduMeta m;
  m.session = 2;
  m.seq = 1;
  ASSERT_EQ(bad_ep->submit(m, copy_payload(ByteSpan(test::bytes_of("data")))), 0);
  bad_ep->flush();
  const int raw = bad_ep->fds()[0];
  bool garbage_sent = false;
  std::vector<test::Node> nodes{test::node_of(*w.c), good.node(), test::node_of(*target), test::node_of(*bad_ep)};
  const bool done = test::pump(nodes, [&] {
    if (!garbage_sent && seen.size() >= 4) {
      test::write_all(raw, "\x4E\x50\x44\x55\x09garbage-after-good-frames...", 33);
      garbage_sent = true;
    }
    std::size_t closes = 0;
    for (const auto& x : seen) {
      closes += x.type == TlpduType::kClose ? 1 : 0;
    }
    return good.echoes == 0 && good.sent == 2000 && closes == 3 && !w.c->upstream_open(0);
  });
  // The target does not echo here: the good source sees no echoes, which is fine.
  EXPECT_TRUE(done);
  const auto log = w.c->take_log();
  ASSERT_FALSE(log.empty());
  EXPECT_NE(log[0].find("upstream 0 failed: bad version"), std::string::npos) << log[0];
  EXPECT_EQ(w.c->live_upstreams(), 1u);
  EXPECT_TRUE(w.c->upstream_open(1));
  EXPECT_FALSE(w.c->failed());
  EXPECT_EQ(w.c->stats().synthesized_closes, 3u);
  // The synthesized CLOSEs carry the next sequence number of each session.
  std::map<std::uint64_t, std::uint32_t> close_seq;
  std::size_t from_good = 0;
  for (const auto& x : seen) {
    if (Concentrator::index_of(x.session, kBits) == 0 && x.type == TlpduType::kClose) {
      close_seq[Concentrator::up_id(x.session, kBits)] = x.seq;
    }
    from_good += Concentrator::index_of(x.session, kBits) == 1 ? 1 : 0;
  }
  EXPECT_EQ(close_seq, (std::map<std::uint64_t, std::uint32_t>{{1, 1}, {2, 2}, {3, 1}}));
  EXPECT_EQ(from_good, 2000u) << "nothing of the good upstream was lost";
}

TEST(NetpduCascade, UpstreamProtocolViolations) {
  struct Case {
    const char* name;
    std::vector<TlpduMeta> send;
    const char* message;
  };
  auto meta = [](TlpduType t, std::uint64_t s, std::uint32_t q) {
    TlpduMeta m;
    m.type = t;
    m.session = s;
    m.seq = q;
    return m;
  };
  const std::vector<Case> cases = {
      {"data before open", {meta(TlpduType::kData, 5, 0)}, "unknown session: session 0x5"},
      {"id too large to cascade", {meta(TlpduType::kOpen, std::uint64_t{1} << 56, 0)}, "rejected"},
      {"duplicate open", {meta(TlpduType::kOpen, 5, 0), meta(TlpduType::kOpen, 5, 1)}, "rejected"},
      {"sequence gap", {meta(TlpduType::kOpen, 5, 0), meta(TlpduType::kData, 5, 2)}, "bad sequence number"},
      {"data after close",
       {meta(TlpduType::kOpen, 5, 0), meta(TlpduType::kClose, 5, 1), meta(TlpduType::kData, 5, 2)},
       "rejected"},
  };
  for (const auto& c : cases) {
    OneLevel w;
    auto target =
        Endpoint::open(w.down.second, EndpointConfig{}, w.clock, [](const Tlpdu&) { return Verdict::kAccept; });
    auto ep = Endpoint::open(w.up_a.first, EndpointConfig{}, w.clock, [](const Tlpdu&) { return Verdict::kAccept; });
    for (const auto& m : c.send) {
      ASSERT_EQ(ep->submit(m, Payload{}), 0);
    }
    ep->flush();
    ASSERT_TRUE(test::pump({test::node_of(*w.c), test::node_of(*target), test::node_of(*ep)},
                           [&] { return !w.c->upstream_open(0); }, 5000))
        << c.name;
    const auto log = w.c->take_log();
    ASSERT_EQ(log.size(), 1u) << c.name;
    EXPECT_NE(log[0].find(c.message), std::string::npos) << c.name << ": " << log[0];
    EXPECT_TRUE(w.c->upstream_open(1)) << c.name;
  }
}

TEST(NetpduCascade, AnswerForAnIndexNeverGivenFailsTheDownstream) {
  OneLevel w;
  auto target = Endpoint::open(w.down.second, EndpointConfig{}, w.clock, [](const Tlpdu&) { return Verdict::kAccept; });
  auto ep_a = Endpoint::open(w.up_a.first, EndpointConfig{}, w.clock, [](const Tlpdu&) { return Verdict::kAccept; });
  TlpduMeta m;
  m.session = Concentrator::down_id(7, 200, kBits);  // index 200 was never handed out
  ASSERT_EQ(target->submit(m, Payload{}), 0);
  target->flush();
  ASSERT_TRUE(test::pump({test::node_of(*w.c), test::node_of(*target), test::node_of(*ep_a)},
                         [&] { return w.c->failed() && ep_a->state() != Endpoint::State::kOpen; }, 5000));
  EXPECT_NE(w.c->error_message().find("downstream failed: unknown session"), std::string::npos) << w.c->error_message();
  EXPECT_EQ(ep_a->state(), Endpoint::State::kClosed) << "upstreams are closed when the downstream is lost";
}

TEST(NetpduCascade, AnswersForAGoneUpstreamAreDropped) {
  OneLevel w;
  auto target = Endpoint::open(w.down.second, EndpointConfig{}, w.clock, [](const Tlpdu&) { return Verdict::kAccept; });
  {
    auto ep_a = Endpoint::open(w.up_a.first, EndpointConfig{}, w.clock, [](const Tlpdu&) { return Verdict::kAccept; });
  }  // upstream 0 closes
  ASSERT_TRUE(test::pump({test::node_of(*w.c), test::node_of(*target)}, [&] { return !w.c->upstream_open(0); }, 5000));
  TlpduMeta m;
  m.session = Concentrator::down_id(7, 0, kBits);
  ASSERT_EQ(target->submit(m, Payload{}), 0);
  target->flush();
  ASSERT_TRUE(test::pump({test::node_of(*w.c), test::node_of(*target)},
                         [&] { return w.c->stats().dropped_answers == 1; }, 5000));
  EXPECT_FALSE(w.c->failed());
}

TEST(NetpduCascade, IndexSpaceExhaustion) {
  SteadyClock clock;
  auto down = link(0);
  ConcentratorConfig c = cc();
  c.index_bits = 1;
  Concentrator conc(down.first, c, clock);
  auto a = link(0), b = link(0), d = link(0);
  EXPECT_EQ(conc.add_upstream(a.second), 0);
  EXPECT_EQ(conc.add_upstream(b.second), 1);
  EXPECT_EQ(conc.add_upstream(d.second), -ENOSPC);
  for (auto* p : {&a, &b, &d}) {
    ::close(p->first.fd);
  }
  ::close(down.second.fd);
}

}  // namespace
}  // namespace xtcp::netpdu
