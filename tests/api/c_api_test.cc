// The C ABI and the C++ wrapper over a process runtime installed by the test (the internal
// hook set_process_runtime), the blocking xtcp_select on a link with a real descriptor, and
// active opens (xtcp_connect).
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "tests/api/api_test_util.h"
#include "xtcp/xtcp.hpp"

namespace xtcp::test::api_bench {
namespace {

TEST(ApiC, CallsWithoutARuntimeAreErrors) {
  ASSERT_EQ(api::process_runtime(), nullptr);
  int cd = 0;
  char buf[4];
  EXPECT_EQ(xtcp_finalize(), -EINVAL);
  EXPECT_EQ(xtcp_open_group(PF_INET, SOCK_STREAM, 0, 7000), -EINVAL);
  EXPECT_EQ(xtcp_accept(1), -EBADF);
  EXPECT_EQ(xtcp_recv(1, &cd, buf, sizeof buf), -EBADF);
  EXPECT_EQ(xtcp_send(1, 1, 0, buf, 1), -EBADF);
  EXPECT_EQ(xtcp_close(1, 1), -EBADF);
  EXPECT_EQ(xtcp_close_group(1), -EBADF);
  EXPECT_EQ(xtcp_select(0, nullptr, nullptr, nullptr), -EINVAL);
  EXPECT_EQ(xtcp_poll(), -EINVAL);
  EXPECT_EQ(xtcp_link_fd(), -EINVAL);
  EXPECT_EQ(xtcp_next_timeout(), -EINVAL);
  EXPECT_EQ(xtcp_default_pool(), nullptr);
  EXPECT_EQ(xtcp_pool_accept(nullptr, 1), -EINVAL);
  EXPECT_EQ(xtcp_pool_stats(nullptr, nullptr), -EINVAL);
  EXPECT_EQ(xtcp_configure(nullptr), -EINVAL);
  xtcp_config bad{};
  bad.local_addr = "not an address";
  EXPECT_EQ(xtcp_configure(&bad), -EINVAL);
  bad.local_addr = "198.18.0.2";
  bad.kernel_addr = "198.18.0.1/40";
  EXPECT_EQ(xtcp_configure(&bad), -EINVAL);
  bad.kernel_addr = nullptr;
  bad.tun_name = "a-name-much-too-long-for-linux";
  EXPECT_EQ(xtcp_configure(&bad), -EINVAL);
  // XTCP_* set macros tolerate out-of-range descriptors and NULL.
  xtcp_set s;
  XTCP_ZERO(&s);
  XTCP_SET(-1, &s);
  XTCP_SET(XTCP_SETSIZE, &s);
  XTCP_SET(3, nullptr);
  EXPECT_EQ(XTCP_ISSET(-1, &s), 0);
  EXPECT_EQ(XTCP_ISSET(3, nullptr), 0);
}

// A server's whole cycle through the C functions (initialize, open a group, select, accept,
// recv, answer with the ACK, poll the resend timer, a second pool, finalize), on the test's
// link.
TEST(ApiC, WholeServerCycleOnAnInstalledRuntime) {
  Bench b;
  b.install();
  ASSERT_EQ(xtcp_initialize(1u << 20), 0);
  EXPECT_EQ(xtcp_initialize(1u << 20), -EALREADY);
  EXPECT_EQ(xtcp_configure(nullptr), -EALREADY) << "the link is fixed while running";
  ASSERT_NE(xtcp_default_pool(), nullptr);
  const int gd = xtcp_open_group(PF_INET, SOCK_STREAM, 0, 7000);
  ASSERT_GT(gd, 0);
  Client c;
  b.handshake(c);
  xtcp_set r;
  xtcp_set a;
  XTCP_ZERO(&r);
  XTCP_ZERO(&a);
  XTCP_SET(gd, &r);
  XTCP_SET(gd, &a);
  timeval tv{0, 0};
  ASSERT_EQ(xtcp_select(gd + 1, &r, &a, &tv), 1);
  ASSERT_TRUE(XTCP_ISSET(gd, &a));
  const int cd = xtcp_accept(gd);
  ASSERT_GT(cd, 0);
  sockaddr_in sa{};
  ASSERT_EQ(xtcp_pars(gd, cd, &sa), 0);
  EXPECT_EQ(ntohs(sa.sin_port), c.port);
  b.queue(c, data(1, "REQ1"));
  XTCP_ZERO(&r);
  XTCP_SET(gd, &r);
  ASSERT_EQ(xtcp_select(gd + 1, &r, nullptr, &tv), 1);
  char buf[64];
  int rcd = 0;
  ASSERT_EQ(xtcp_recv(gd, &rcd, buf, sizeof buf), 4);
  EXPECT_EQ(rcd, cd);
  ASSERT_EQ(xtcp_send(gd, cd, 4, "ANS1", 4), 4);
  EXPECT_SEGMENT(b.sent_one(c), Match().flags(kAck | kPsh).rack(5).payload(bytes_of("ANS1")));
  struct xtcp_pool_stats st{};
  ASSERT_EQ(xtcp_pool_stats(xtcp_default_pool(), &st), 0);
  EXPECT_EQ(st.acks_on_answers, 1u);
  EXPECT_EQ(st.connections, 1u);
  EXPECT_EQ(xtcp_recv(gd, &rcd, buf, sizeof buf), -EAGAIN);
  EXPECT_EQ(xtcp_link_fd(), -ENODEV) << "the scripted link has no descriptor";
  EXPECT_GE(xtcp_poll(), 0);
  // The answer is unacknowledged: its retransmission timer is the next deadline (initial
  // RTO 1 s, RFC 6298 2.1), and xtcp_poll is due exactly when it fires.
  const int wait_ms = xtcp_next_timeout();
  EXPECT_GT(wait_ms, 0);
  EXPECT_LE(wait_ms, 1000);
  b.clock.advance(static_cast<TimeNs>(wait_ms) * kNsPerMs);
  EXPECT_EQ(xtcp_next_timeout(), 0);
  EXPECT_GE(xtcp_poll(), 0);
  EXPECT_SEGMENT(b.sent_one(c), Match().flags(kAck | kPsh).rack(5).payload(bytes_of("ANS1")));  // resent
  // A second pool through the explicit-handle calls.
  int err = 1;
  xtcp_pool* p2 = xtcp_pool_create(64 * 1024, &err);
  ASSERT_NE(p2, nullptr);
  EXPECT_EQ(err, 0);
  const int g2 = xtcp_pool_open_group(p2, PF_INET, SOCK_STREAM, 0, 7001);
  ASSERT_GT(g2, 0);
  EXPECT_EQ(xtcp_pool_accept(p2, gd), -EBADF) << "gd belongs to the default pool";
  EXPECT_EQ(xtcp_pool_accept(p2, g2), -EAGAIN);
  EXPECT_EQ(xtcp_pool_destroy(xtcp_default_pool()), -EINVAL);
  EXPECT_EQ(xtcp_pool_destroy(p2), 0);
  EXPECT_EQ(xtcp_pool_destroy(p2), -EINVAL) << "a stale pool handle";
  EXPECT_EQ(xtcp_pool_recv(p2, g2, &rcd, buf, sizeof buf), -EINVAL);
  // finalize resets the connection; every call afterwards is an error.
  ASSERT_EQ(xtcp_finalize(), 0);
  EXPECT_TRUE(b.sent_one(c).has(kRst));
  EXPECT_EQ(xtcp_finalize(), -EINVAL);
  EXPECT_EQ(xtcp_recv(gd, &rcd, buf, sizeof buf), -EBADF);
  EXPECT_EQ(xtcp_send(gd, cd, 0, "x", 1), -EBADF);
  EXPECT_EQ(xtcp_close(gd, cd), -EBADF);
  EXPECT_EQ(xtcp_open_group(PF_INET, SOCK_STREAM, 0, 7000), -EINVAL);
  EXPECT_EQ(xtcp_default_pool(), nullptr);
  EXPECT_EQ(api::process_runtime(), nullptr);
}

// The C++ wrapper: RAII handles over the same calls.
TEST(ApiC, CppWrapper) {
  Bench b;
  b.install();
  {
    auto svc = xtcp::Service::start(1u << 20);
    ASSERT_TRUE(svc) << svc.error().message();
    auto group = svc->default_pool().open_group(7000);
    ASSERT_TRUE(group);
    EXPECT_FALSE(group->set(XTCP_OPT_FRAMING, XTCP_FRAME_DELIMITER));
    EXPECT_EQ(group->get(XTCP_OPT_FRAMING).value_or(-1), XTCP_FRAME_DELIMITER);
    EXPECT_EQ(group->set(XTCP_OPT_FRAMING, 42), std::errc::invalid_argument);
    EXPECT_EQ(group->accept().error(), std::errc::resource_unavailable_try_again);
    Client c;
    b.handshake(c);
    xtcp::GroupSet r;
    xtcp::GroupSet a;
    r.add(*group);
    a.add(*group);
    auto n = xtcp::select(r, a, std::chrono::microseconds(0));
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, 1);
    EXPECT_TRUE(a.contains(*group));
    auto conn = group->accept();
    ASSERT_TRUE(conn);
    EXPECT_EQ(conn->peer()->sin_port, htons(c.port));
    EXPECT_FALSE(conn->set_user_data(0xfeed));
    b.inject(c, data(1, "LIST\nMSG"));
    std::byte buf[64];
    auto got = group->recv(buf);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->conn, *conn);
    EXPECT_EQ(got->user_data, 0xfeedu);
    EXPECT_EQ(got->size, 5u) << "whole lines only";
    auto sent = got->conn.send(got->size, "alice bob\n");
    ASSERT_TRUE(sent);
    EXPECT_EQ(*sent, 10u);
    EXPECT_SEGMENT(b.sent_one(c), Match().rack(6).payload(bytes_of("alice bob\n")));
    auto info = conn->info();
    ASSERT_TRUE(info);
    EXPECT_EQ(info->state, XTCP_STATE_ESTABLISHED);
    EXPECT_EQ(info->rx_held, 3u) << "MSG waits for its line end";
    auto stats = svc->default_pool().stats();
    ASSERT_TRUE(stats);
    EXPECT_EQ(stats->acks_on_answers, 1u);
    // A Connection owns what it is given: moving moves ownership, and it closes once.
    xtcp::Connection owned{*conn};
    xtcp::Connection moved = std::move(owned);
    EXPECT_FALSE(owned);
    EXPECT_TRUE(moved);
    EXPECT_FALSE(moved.close());
    EXPECT_EQ(conn->send(0, "x").error(), std::errc::bad_file_descriptor) << "closed by its owner";
    EXPECT_FALSE(xtcp::counters().empty());
    auto pool2 = xtcp::Pool::create(64 * 1024);
    ASSERT_TRUE(pool2);
    auto g2 = pool2->open_group(7001);
    ASSERT_TRUE(g2);
    EXPECT_EQ(g2->recv(buf).error(), std::errc::resource_unavailable_try_again);
  }
  EXPECT_EQ(api::process_runtime(), nullptr) << "the Service finalized";
}

// The C++ layer of the calls a proxy needs (half-close, reset, offering held bytes again)
// and of the per-connection capture, whose file is complete once the Capture goes away.
TEST(ApiC, CppWrapperHalfCloseAbortRedeliverAndCapture) {
  Bench b;
  b.install();
  const std::string path = ::testing::TempDir() + "xtcp_cxx_capture.pcap";
  {
    auto svc = xtcp::Service::start(1u << 20);
    ASSERT_TRUE(svc) << svc.error().message();
    auto group = svc->default_pool().open_group(7000);
    ASSERT_TRUE(group);
    Client c;
    b.handshake(c);
    auto conn = group->accept();
    ASSERT_TRUE(conn);
    xtcp_capture_spec spec{};
    spec.path = path.c_str();
    spec.gd = conn->gd();
    spec.cd = conn->cd();
    auto capture = xtcp::Capture::start(spec);
    ASSERT_TRUE(capture) << capture.error().message() << ": " << xtcp::last_error();

    b.inject(c, data(1, "held"));
    std::byte buf[64];
    auto got = group->recv(buf);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->size, 4u);
    EXPECT_EQ(group->recv(buf).error(), std::errc::resource_unavailable_try_again);
    EXPECT_FALSE(conn->redeliver());
    got = group->recv(buf);
    ASSERT_TRUE(got) << "the held bytes come again";
    EXPECT_EQ(got->size, 4u);
    EXPECT_FALSE(conn->ack(4));
    b.sent();
    EXPECT_FALSE(conn->shutdown_write());
    EXPECT_SEGMENT(b.sent_one(c), Match().flags(kFin | kAck).rack(5));
    EXPECT_EQ(conn->send(0, "late").error(), std::errc::broken_pipe);
    auto stats = capture->stats();
    ASSERT_TRUE(stats);
    EXPECT_GE(stats->packets, 3u) << "the data, its ACK and our FIN";
    EXPECT_FALSE(capture->stop());
    EXPECT_FALSE(*capture);

    Client c2;
    c2.port = 40001;
    b.handshake(c2);
    auto conn2 = group->accept();
    ASSERT_TRUE(conn2);
    EXPECT_FALSE(conn2->abort());
    EXPECT_SEGMENT(b.sent_one(c2), Match().flags(kRst | kAck));
    EXPECT_EQ(conn2->abort(), std::errc::bad_file_descriptor) << "released by the abort";
  }
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_GT(st.st_size, 24) << "a pcap header and records";
  std::remove(path.c_str());
}

double elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since).count();
}

// xtcp_select blocks (poll(2) on the link) up to its timeout, wakes for packets, and fires
// timers while it waits (here the accept timeout's RST).
TEST(ApiSelect, BlocksUntilTimeoutPacketsOrTimers) {
  SocketLink link;
  SteadyClock clock;
  api::Runtime rt(default_config(), link, clock);
  const int pool = rt.pool_create(1u << 20);
  const int gd = rt.open_group(pool, PF_INET, SOCK_STREAM, 0, 7000);
  ASSERT_GT(gd, 0);
  ASSERT_EQ(rt.setopt(gd, XTCP_OPT_ACCEPT_TIMEOUT_MS, 40), 0);
  xtcp_set r;
  xtcp_set a;
  XTCP_ZERO(&r);
  XTCP_SET(gd, &r);
  timeval tv{0, 50'000};
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(rt.select(gd + 1, &r, nullptr, &tv), 0);
  EXPECT_GE(elapsed_ms(t0), 49.0) << "blocked for the timeout";
  EXPECT_FALSE(XTCP_ISSET(gd, &r));
  // A SYN arrives: the stack answers from inside select; the ACK makes the group ready.
  Client c;
  Seg syn;
  syn.flags = kSyn;
  syn.seq = 0;
  syn.opts.has_mss = true;
  syn.opts.mss = 1460;
  link.inject(build_segment(c, syn));
  XTCP_ZERO(&a);
  XTCP_SET(gd, &a);
  timeval quick{0, 10'000};
  EXPECT_EQ(rt.select(gd + 1, nullptr, &a, &quick), 0) << "half-open: not ready yet";
  std::uint32_t iss = 0;
  auto out = link.take();
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(tcp_flags_of(out[0], &iss), kSyn | kAck);
  c.iss = iss;
  link.inject(build_segment(c, Seg{}));
  XTCP_ZERO(&a);
  XTCP_SET(gd, &a);
  timeval five{5, 0};
  t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(rt.select(gd + 1, nullptr, &a, &five), 1);
  EXPECT_LT(elapsed_ms(t0), 4000.0) << "woken by the packet, not the timeout";
  EXPECT_TRUE(XTCP_ISSET(gd, &a));
  // Nobody accepts: within the next select's wait the 40 ms accept timeout fires.
  XTCP_ZERO(&r);
  XTCP_SET(gd, &r);
  timeval wait{0, 200'000};
  EXPECT_EQ(rt.select(gd + 1, &r, nullptr, &wait), 0);
  out = link.take();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_NE(tcp_flags_of(out[0]) & kRst, 0) << "refused while select waited";
  EXPECT_EQ(rt.accept(0, gd), -EAGAIN);
}

// xtcp_connect: an active open from a group without a port; the connection joins it.
TEST(ApiConnect, ActiveOpenJoinsTheGroup) {
  Bench b;
  const int gd = b.rt->open_group(b.pool, PF_INET, SOCK_STREAM, 0, 0);
  ASSERT_GT(gd, 0);
  Client server;  // the remote side, played by the test
  server.addr = 0xC6120001;
  server.port = 80;
  server.isn = 777'000;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(80);
  to.sin_addr.s_addr = htonl(server.addr);
  const int cd = b.rt->connect(gd, &to);
  ASSERT_GT(cd, 0);
  auto out = b.sent({&server});
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].seg.flags, kSyn);
  EXPECT_GT(out[0].seg.window, 0u) << "the SYN's window comes from the group's pool";
  server.server_port = out[0].seg.src_port;
  EXPECT_EQ(b.send(gd, cd, 0, "GET\n"), 4) << "queued while connecting";
  Seg synack;
  synack.flags = kSyn | kAck;
  synack.seq = 0;
  synack.ack = 1;
  synack.opts.has_mss = true;
  synack.opts.mss = 1460;
  b.inject(server, synack);
  auto segs = b.sent({&server});
  ASSERT_FALSE(segs.empty());
  EXPECT_EQ(str(segs.back().seg.payload), "GET\n");
  b.inject(server, data(1, "200\n", 5));
  const auto r = b.recv(gd);
  EXPECT_EQ(r.cd, cd);
  EXPECT_EQ(r.data, "200\n");
  EXPECT_EQ(b.rt->rx_pool(b.pool)->used(), 4u);
  ASSERT_EQ(b.send(gd, cd, 4, ""), 0);
  EXPECT_EQ(b.rt->rx_pool(b.pool)->used(), 0u);
  sockaddr_in sa{};
  ASSERT_EQ(b.rt->pars(gd, cd, &sa), 0);
  EXPECT_EQ(sa.sin_port, htons(80));
  sockaddr_in bad = to;
  bad.sin_family = AF_INET6;
  EXPECT_EQ(b.rt->connect(gd, &bad), -EINVAL);
}

}  // namespace
}  // namespace xtcp::test::api_bench
