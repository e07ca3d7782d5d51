// Handshake tests: negotiation rules (highest common version, smaller limits), clear
// rejections for version/limits/bundle/malformed hellos on both sides, the blocking
// initiator against the non-blocking Acceptor over socketpairs, bundle assembly by token,
// and the acceptor's timeout for silent connections.
#include "netpdu/handshake.h"

#include <gtest/gtest.h>

#include <future>
#include <string>

#include "netpdu/net.h"
#include "tests/netpdu/test_util.h"

namespace xtcp::netpdu {
namespace {

HandshakeLimits limits(std::uint32_t pdu = 256 * 1024, std::uint32_t count = 8192) {
  HandshakeLimits l;
  l.max_pdu_bytes = pdu;
  l.max_tlpdus = count;
  return l;
}

TEST(NetpduHandshake, AnswerTakesSmallerLimitsAndHighestCommonVersion) {
  HandshakeLimits mine = limits(100000, 500);
  mine.version_max = 3;
  Hello in = make_hello(limits(200000, 9000), Role::kSingle);
  in.version_min = 1;
  in.version_max = 2;
  std::string why;
  const Hello a = answer_hello(in, mine, &why);
  EXPECT_EQ(a.kind, HelloKind::kAccept) << why;
  EXPECT_EQ(a.version_min, 2);
  EXPECT_EQ(a.version_max, 2);
  EXPECT_EQ(a.max_pdu_bytes, 100000u);
  EXPECT_EQ(a.max_tlpdus, 500u);
  std::string err;
  const auto n = check_answer(in, a, &err);
  ASSERT_TRUE(n) << err;
  EXPECT_EQ(n->version, 2);
  EXPECT_EQ(n->max_pdu_bytes, 100000u);
}

TEST(NetpduHandshake, VersionMismatchRejectedClearly) {
  Hello in = make_hello(limits(), Role::kSingle);
  in.version_min = 2;
  in.version_max = 3;
  std::string why;
  const Hello a = answer_hello(in, limits(), &why);
  EXPECT_EQ(a.kind, HelloKind::kReject);
  EXPECT_EQ(a.reason, RejectReason::kVersion);
  EXPECT_EQ(why, "version mismatch: peer speaks 2..3, we speak 1..1");
  std::string err;
  EXPECT_FALSE(check_answer(in, a, &err));
  EXPECT_NE(err.find("no common version"), std::string::npos) << err;
  EXPECT_NE(err.find("we offered 2..3"), std::string::npos) << err;
}

TEST(NetpduHandshake, LimitsAndBundleShapeChecked) {
  std::string why;
  EXPECT_EQ(answer_hello(make_hello(limits(512), Role::kSingle), limits(), &why).reason, RejectReason::kLimits);
  EXPECT_NE(why.find("limits out of range"), std::string::npos);
  EXPECT_EQ(answer_hello(make_hello(limits(4096, 0), Role::kSingle), limits(), &why).reason, RejectReason::kLimits);
  EXPECT_EQ(answer_hello(make_hello(limits(), Role::kControl, 0, 0, 2), limits(), &why).reason,
            RejectReason::kBundle)
      << "bundle without a token";
  EXPECT_EQ(answer_hello(make_hello(limits(), Role::kData, 9, 2, 2), limits(), &why).reason, RejectReason::kBundle)
      << "data index out of range";
  EXPECT_EQ(answer_hello(make_hello(limits(), Role::kControl, 9, 0, 65), limits(), &why).reason,
            RejectReason::kBundle)
      << "more data transports than the acceptor takes";
  Hello not_hello = make_hello(limits(), Role::kSingle);
  not_hello.kind = HelloKind::kAccept;
  EXPECT_EQ(answer_hello(not_hello, limits(), &why).reason, RejectReason::kMalformed);
}

TEST(NetpduHandshake, InitiatorRefusesAnswersItDidNotAskFor) {
  const Hello sent = make_hello(limits(65536), Role::kSingle);
  std::string why;
  Hello a = answer_hello(sent, limits(), &why);
  std::string err;
  Hello bigger = a;
  bigger.max_pdu_bytes = 1 << 20;
  EXPECT_FALSE(check_answer(sent, bigger, &err));
  Hello other_version = a;
  other_version.version_min = other_version.version_max = 7;
  EXPECT_FALSE(check_answer(sent, other_version, &err));
  Hello other_role = a;
  other_role.role = Role::kData;
  EXPECT_FALSE(check_answer(sent, other_role, &err));
}

struct AcceptorHarness {
  ManualClock clock;
  Acceptor acceptor{limits(), clock, 5'000'000'000};
  // Serves the acceptor until `f` (an initiate() running on another thread) is ready.
  template <typename F>
  void serve(F& f) {
    for (int i = 0; i < 5000 && f.wait_for(std::chrono::seconds(0)) != std::future_status::ready; ++i) {
      std::vector<pollfd> p;
      for (int fd : acceptor.waiting_fds()) {
        p.push_back({fd, POLLIN, 0});
      }
      if (!p.empty() && ::poll(p.data(), p.size(), 10) > 0) {
        for (auto& x : p) {
          if (x.revents != 0) {
            acceptor.on_readable(x.fd);
          }
        }
      } else if (p.empty()) {
        f.wait_for(std::chrono::milliseconds(10));
      }
    }
  }
};

TEST(NetpduHandshake, SingleTransportOverSocketpair) {
  AcceptorHarness h;
  auto [a, b] = test::socket_pair();
  h.acceptor.add(b);
  auto f = std::async(std::launch::async, [a = a] { return initiate(a, make_hello(limits(65536), Role::kSingle), 5000); });
  h.serve(f);
  const HandshakeResult r = f.get();
  ASSERT_TRUE(r.negotiated) << r.error;
  EXPECT_EQ(r.negotiated->max_pdu_bytes, 65536u);
  auto ready = h.acceptor.take_ready();
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].fd, b);
  EXPECT_EQ(ready[0].negotiated.max_pdu_bytes, 65536u);
  EXPECT_EQ(ready[0].negotiated.role, Role::kSingle);
  ::close(a);
  ::close(b);
}

TEST(NetpduHandshake, VersionMismatchOverTheWireBothSidesSayWhy) {
  AcceptorHarness h;
  auto [a, b] = test::socket_pair();
  h.acceptor.add(b);
  Hello hello = make_hello(limits(), Role::kSingle);
  hello.version_min = 5;
  hello.version_max = 6;
  auto f = std::async(std::launch::async, [a = a, hello] { return initiate(a, hello, 5000); });
  h.serve(f);
  const HandshakeResult r = f.get();
  EXPECT_FALSE(r.negotiated);
  EXPECT_NE(r.error.find("no common version"), std::string::npos) << r.error;
  EXPECT_TRUE(h.acceptor.take_ready().empty());
  const auto errors = h.acceptor.take_errors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("version mismatch: peer speaks 5..6, we speak 1..1"), std::string::npos) << errors[0];
  ::close(a);
}

TEST(NetpduHandshake, GarbageInsteadOfHelloIsRefused) {
  AcceptorHarness h;
  auto [a, b] = test::socket_pair();
  h.acceptor.add(b);
  const std::string http = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";
  test::write_all(a, http.data(), http.size());
  h.acceptor.on_readable(b);
  const auto errors = h.acceptor.take_errors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("not a NetPDU hello: bad magic (magic 47455420)"), std::string::npos) << errors[0];
  // The refusal reached the peer before the close.
  std::byte buf[64];
  const ssize_t n = ::read(a, buf, sizeof buf);
  ASSERT_EQ(n, 32);
  WireError e = WireError::kNone;
  const auto rej = Hello::parse(ByteSpan(buf, 32), &e);
  ASSERT_TRUE(rej);
  EXPECT_EQ(rej->kind, HelloKind::kReject);
  EXPECT_EQ(rej->reason, RejectReason::kMalformed);
  ::close(a);
}

TEST(NetpduHandshake, InitiatorSeesANonNetpduPeer) {
  auto [a, b] = test::socket_pair();
  const std::string junk = "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n";
  test::write_all(b, junk.data(), junk.size());
  const HandshakeResult r = initiate(a, make_hello(limits(), Role::kSingle), 2000);
  EXPECT_FALSE(r.negotiated);
  EXPECT_NE(r.error.find("not a NetPDU hello"), std::string::npos) << r.error;
  ::close(a);
  ::close(b);
}

TEST(NetpduHandshake, InitiatorTimesOutOnASilentPeer) {
  auto [a, b] = test::socket_pair();
  const HandshakeResult r = initiate(a, make_hello(limits(), Role::kSingle), 50);
  EXPECT_FALSE(r.negotiated);
  EXPECT_NE(r.error.find("no answer within 50 ms"), std::string::npos) << r.error;
  ::close(a);
  ::close(b);
}

TEST(NetpduHandshake, InitiatorSeesPeerCloseMidAnswer) {
  auto [a, b] = test::socket_pair();
  test::write_all(b, "NPDH", 4);
  ::shutdown(b, SHUT_WR);  // the peer still takes our hello, but ends its answer early
  const HandshakeResult r = initiate(a, make_hello(limits(), Role::kSingle), 2000);
  EXPECT_FALSE(r.negotiated);
  EXPECT_NE(r.error.find("after 4 bytes"), std::string::npos) << r.error;
  ::close(a);
  ::close(b);
}

TEST(NetpduHandshake, BundleAssembledByTokenInAnyOrder) {
  AcceptorHarness h;
  const std::uint64_t token = 0xABCDEF;
  std::vector<std::pair<int, int>> pairs;
  for (int i = 0; i < 4; ++i) {
    pairs.push_back(test::socket_pair());
    h.acceptor.add(pairs.back().second);
  }
  // Data transports 2, 0 first, then control, then data 1.
  const std::vector<std::pair<Role, std::uint16_t>> order = {
      {Role::kData, 2}, {Role::kData, 0}, {Role::kControl, 0}, {Role::kData, 1}};
  for (std::size_t i = 0; i < order.size(); ++i) {
    const Hello hello = make_hello(limits(), order[i].first, token, order[i].second, 3);
    auto f = std::async(std::launch::async, [fd = pairs[i].first, hello] { return initiate(fd, hello, 5000); });
    h.serve(f);
    ASSERT_TRUE(f.get().negotiated);
    if (i < 3) {
      EXPECT_TRUE(h.acceptor.take_ready().empty()) << "bundle incomplete after " << i + 1;
    }
  }
  auto ready = h.acceptor.take_ready();
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].negotiated.role, Role::kControl);
  EXPECT_EQ(ready[0].fd, pairs[2].second);
  EXPECT_EQ(ready[0].data_fds, (std::vector<int>{pairs[1].second, pairs[3].second, pairs[0].second}));
  for (auto& [x, y] : pairs) {
    ::close(x);
    ::close(y);
  }
}

TEST(NetpduHandshake, DuplicateBundleMemberRefused) {
  AcceptorHarness h;
  auto p1 = test::socket_pair();
  auto p2 = test::socket_pair();
  h.acceptor.add(p1.second);
  h.acceptor.add(p2.second);
  for (auto fd : {p1.first, p2.first}) {
    const Hello hello = make_hello(limits(), Role::kData, 77, 0, 2);
    auto f = std::async(std::launch::async, [fd, hello] { return initiate(fd, hello, 5000); });
    h.serve(f);
    const auto r = f.get();
    if (fd == p2.first) {
      EXPECT_FALSE(r.negotiated);
      EXPECT_NE(r.error.find("bad bundle"), std::string::npos) << r.error;
    } else {
      EXPECT_TRUE(r.negotiated) << r.error;
    }
  }
  const auto errors = h.acceptor.take_errors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("duplicate member"), std::string::npos) << errors[0];
  ::close(p1.first);
  ::close(p2.first);
}

TEST(NetpduHandshake, AcceptorExpiresSilentConnectionsAndIncompleteBundles) {
  AcceptorHarness h;
  auto silent = test::socket_pair();
  auto half = test::socket_pair();
  h.acceptor.add(silent.second);
  h.acceptor.add(half.second);
  const Hello hello = make_hello(limits(), Role::kControl, 99, 0, 2);
  auto f = std::async(std::launch::async, [fd = half.first, hello] { return initiate(fd, hello, 5000); });
  h.serve(f);
  ASSERT_TRUE(f.get().negotiated);
  EXPECT_NE(h.acceptor.next_deadline(), kNever);
  h.clock.advance(5'000'000'000);
  h.acceptor.expire();
  const auto errors = h.acceptor.take_errors();
  EXPECT_EQ(errors.size(), 2u);
  EXPECT_TRUE(h.acceptor.waiting_fds().empty());
  EXPECT_EQ(h.acceptor.next_deadline(), kNever);
  // Both descriptors were closed by the acceptor: the peers see EOF.
  char c;
  EXPECT_EQ(::read(silent.first, &c, 1), 0);
  ::close(silent.first);
  ::close(half.first);
}

TEST(NetpduHandshake, AddressParsing) {
  std::string err;
  const auto a = parse_host_port("127.0.0.1:7400", &err);
  ASSERT_TRUE(a) << err;
  EXPECT_EQ(a->text(), "127.0.0.1:7400");
  EXPECT_FALSE(parse_host_port("127.0.0.1", &err));
  EXPECT_FALSE(parse_host_port("127.0.0.1:70000", &err));
  EXPECT_NE(err.find("not a port number"), std::string::npos);
  EXPECT_FALSE(parse_host_port("localhost:80", &err));
  EXPECT_NE(err.find("not an IPv4 address"), std::string::npos);
  EXPECT_FALSE(parse_host_port(":80", &err));
  EXPECT_FALSE(parse_host_port("1.2.3.4:8x", &err));
}

}  // namespace
}  // namespace xtcp::netpdu
