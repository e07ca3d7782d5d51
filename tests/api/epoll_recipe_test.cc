// The own-epoll recipe of docs/api.md, run as written: an epoll set over xtcp_link_fd and
// the group's eventfd, epoll_wait with xtcp_next_timeout, xtcp_poll every turn, then
// accept and recv. The application reads the eventfd when it fires, as eventfd users do,
// and serves only a few messages per turn: the descriptor must stay readable exactly while
// the group has data or connections to accept.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <string>

#include "tests/api/api_test_util.h"
#include "xtcp/xtcp.h"

namespace xtcp::test::api_bench {
namespace {

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

// The application of the recipe.
class EpollServer {
 public:
  EpollServer(int gd, int recv_budget) : gd_(gd), budget_(recv_budget) {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    link_fd_ = xtcp_link_fd();
    group_fd_ = xtcp_group_fd(gd);
    EXPECT_GE(ep_, 0);
    EXPECT_GE(link_fd_, 0);
    EXPECT_GE(group_fd_, 0);
    for (const int fd : {link_fd_, group_fd_}) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      EXPECT_EQ(::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev), 0);
    }
  }
  ~EpollServer() { ::close(ep_); }

  int group_fd() const { return group_fd_; }
  int answered() const { return answered_; }
  int accepted() const { return accepted_; }

  // Whether epoll reports the group descriptor right now (without waiting).
  bool epoll_sees_group() {
    epoll_event ready[4];
    const int n = ::epoll_wait(ep_, ready, 4, 0);
    for (int i = 0; i < n; ++i) {
      if (ready[i].data.fd == group_fd_) {
        return true;
      }
    }
    return false;
  }

  // One turn of the loop; wait_ms caps xtcp_next_timeout (the test's clients are already
  // queued, nothing needs a long wait). Returns the number of descriptors epoll reported.
  int turn(int wait_ms) {
    const int timeout = std::min(xtcp_next_timeout(), wait_ms);
    epoll_event ready[8];
    const int n = ::epoll_wait(ep_, ready, 8, timeout);
    for (int i = 0; i < n; ++i) {
      if (ready[i].data.fd == group_fd_) {
        std::uint64_t v = 0;
        EXPECT_EQ(::read(group_fd_, &v, sizeof v), static_cast<ssize_t>(sizeof v));
      }
    }
    EXPECT_GE(xtcp_poll(), 0);
    while (xtcp_accept(gd_) > 0) {
      ++accepted_;
    }
    char buf[256];
    for (int served = 0; served < budget_; ++served) {
      int cd = 0;
      const int r = xtcp_recv(gd_, &cd, buf, sizeof buf);
      if (r == -EAGAIN) {
        break;
      }
      if (r <= 0) {
        xtcp_close(gd_, cd);
        continue;
      }
      // Framed by lines: answer every line of what came.
      const std::string got(buf, static_cast<std::size_t>(r));
      std::string answer;
      for (std::size_t pos = 0; (pos = got.find('\n', pos)) != std::string::npos; ++pos) {
        answer += "OK\n";
        ++answered_;
      }
      EXPECT_EQ(xtcp_send(gd_, cd, static_cast<std::size_t>(r), answer.data(), answer.size()),
                static_cast<int>(answer.size()));
    }
    return n;
  }

 private:
  int gd_;
  int budget_;
  int ep_ = -1;
  int link_fd_ = -1;
  int group_fd_ = -1;
  int answered_ = 0;
  int accepted_ = 0;
};

class EpollRecipe : public ::testing::Test {
 protected:
  void SetUp() override {
    rt_ = std::make_unique<api::Runtime>(default_config(), link_, clock_);
    api::set_process_runtime(std::move(rt_));
    ASSERT_EQ(xtcp_initialize(1u << 20), 0);
    gd_ = xtcp_open_group(PF_INET, SOCK_STREAM, 0, 7000);
    ASSERT_GT(gd_, 0);
    ASSERT_EQ(xtcp_setopt(gd_, XTCP_OPT_FRAMING, XTCP_FRAME_DELIMITER), 0);
  }
  void TearDown() override { xtcp_finalize(); }

  // Sends a SYN for c; the SYN-ACK comes from the server's next xtcp_poll.
  void send_syn(Client& c) {
    Seg syn;
    syn.flags = kSyn;
    syn.seq = 0;
    syn.opts.has_mss = true;
    syn.opts.mss = 1460;
    link_.inject(build_segment(c, syn));
  }
  // Reads the SYN-ACKs the server sent and completes each handshake.
  void complete_handshakes(std::vector<Client>& clients) {
    for (const auto& p : link_.take()) {
      const auto ip = wire::Ipv4View::parse(p);
      ASSERT_TRUE(ip.has_value());
      wire::TcpError e;
      const auto t = wire::TcpView::parse(ip->payload(), &e);
      ASSERT_TRUE(t.ok());
      if (t.flags() != (kSyn | kAck)) {
        continue;
      }
      for (Client& c : clients) {
        if (c.port == t.dst_port()) {
          c.iss = t.seq().raw();
          c.have_iss = true;
          link_.inject(build_segment(c, Seg{}));
        }
      }
    }
  }

  SocketLink link_;
  SteadyClock clock_;
  std::unique_ptr<api::Runtime> rt_;
  int gd_ = 0;
};

// The application reads the eventfd and serves one message per turn: the descriptor must
// fire again while messages are left, or the loop would sleep with work to do.
TEST_F(EpollRecipe, ReadingTheEventfdNeverLosesAWakeup) {
  EpollServer server(gd_, 1);
  std::vector<Client> clients(4);
  for (std::size_t i = 0; i < clients.size(); ++i) {
    clients[i].port = static_cast<std::uint16_t>(41000 + i);
    send_syn(clients[i]);
  }
  server.turn(0);  // SYN-ACKs
  complete_handshakes(clients);
  server.turn(0);  // the ACKs: connections to accept
  for (int i = 0; i < 20 && server.accepted() < 4; ++i) {
    server.turn(0);
  }
  ASSERT_EQ(server.accepted(), 4);
  EXPECT_FALSE(readable(server.group_fd())) << "nothing to accept or read";
  // Each client sends two requests in two segments.
  for (Client& c : clients) {
    link_.inject(build_segment(c, data(1, "PING 1\n")));
    link_.inject(build_segment(c, data(8, "PING 2\n")));
  }
  const int expected = 8;
  // Every turn serves one message; the loop may sleep only when nothing is left. Turns
  // are bounded: 8 messages need 8 turns (plus one to see the packets).
  for (int turns = 0; turns < 40 && server.answered() < expected; ++turns) {
    const bool left_before = server.answered() > 0 && server.answered() < expected;
    const int fired = server.turn(2000);
    if (left_before) {
      EXPECT_GT(fired, 0) << "the loop waited in epoll_wait while " << expected - server.answered()
                          << " messages were left";
    }
  }
  EXPECT_EQ(server.answered(), expected);
  EXPECT_FALSE(readable(server.group_fd())) << "drained: not readable";
}

// A loop that calls xtcp_poll in the same turn that found packets on the link: the group
// it made ready is reported by the very next epoll_wait, without sleeping.
TEST_F(EpollRecipe, PollInTheSameTurnMakesTheGroupFire) {
  EpollServer server(gd_, 1000);
  std::vector<Client> clients(1);
  send_syn(clients[0]);
  server.turn(0);
  complete_handshakes(clients);
  server.turn(0);
  ASSERT_EQ(server.accepted(), 1);
  EXPECT_FALSE(server.epoll_sees_group());
  link_.inject(build_segment(clients[0], data(1, "HELLO\n")));
  ASSERT_GE(xtcp_poll(), 1);  // the stack took the packet; the group has a message
  EXPECT_TRUE(server.epoll_sees_group());
  EXPECT_TRUE(readable(server.group_fd()));
  // The application reads the counter without serving: still readable after any call.
  std::uint64_t v = 0;
  EXPECT_EQ(::read(server.group_fd(), &v, sizeof v), static_cast<ssize_t>(sizeof v));
  EXPECT_GE(xtcp_poll(), 0);
  EXPECT_TRUE(readable(server.group_fd())) << "a message is waiting";
  server.turn(0);
  EXPECT_EQ(server.answered(), 1);
  EXPECT_FALSE(readable(server.group_fd()));
}

}  // namespace
}  // namespace xtcp::test::api_bench
