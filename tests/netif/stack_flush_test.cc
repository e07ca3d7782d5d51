// Stack::poll and batching links (Link::flush): a link that holds every sent packet until
// flush() (what UringTunLink does with its queued writes, here in memory and without its
// own submits) sits under a server Stack. After poll() returns nothing may be left in it,
// whether the packets answered input (SYN-ACKs, one flush per receive round) or came from
// the timers (a retransmission), and nothing may be lost on the way: the client, a plain
// Stack on the other end of a MemLinkPair, must see every answer. Virtual time throughout.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "stack/buffer/stream_buffers.h"
#include "stack/netif/mem_link.h"
#include "stack/stack.h"

namespace xtcp {
namespace {

constexpr std::uint32_t kClientAddr = 0xC6120001;  // 198.18.0.1 (in-memory link only)
constexpr std::uint32_t kServerAddr = 0xC6120002;  // 198.18.0.2
constexpr std::uint16_t kPort = 7;

// Holds every packet sent until flush(), then hands them to the inner link in order.
class HoldingLink final : public Link {
 public:
  explicit HoldingLink(Link& inner) : inner_(inner) {}

  int send(std::span<const std::byte> packet) override {
    held_.emplace_back(packet.begin(), packet.end());
    return 0;
  }
  int flush() override {
    const int n = static_cast<int>(held_.size());
    for (const auto& p : held_) {
      EXPECT_EQ(inner_.send(p), 0);
    }
    held_.clear();
    if (n > 0) {
      batches_.push_back(n);
    }
    return n;
  }
  int receive_batch(int max_packets, PacketHandler on_packet) override {
    return inner_.receive_batch(max_packets, on_packet);
  }
  std::size_t mtu() const override { return inner_.mtu(); }

  std::size_t held() const { return held_.size(); }
  // Packets handed over by each flush that had any, in order.
  const std::vector<int>& batches() const { return batches_; }
  void clear_batches() { batches_.clear(); }

 private:
  Link& inner_;
  std::vector<std::vector<std::byte>> held_;
  std::vector<int> batches_;
};

// TCP payload bytes of an IPv4 packet (0 for anything else).
std::size_t tcp_payload(std::span<const std::byte> p) {
  if (p.size() < 40 || std::to_integer<int>(p[9]) != 6) {
    return 0;
  }
  const std::size_t ihl = (std::to_integer<std::size_t>(p[0]) & 0xF) * 4;
  const std::size_t total = (std::to_integer<std::size_t>(p[2]) << 8) | std::to_integer<std::size_t>(p[3]);
  const std::size_t doff = (std::to_integer<std::size_t>(p[ihl + 12]) >> 4) * 4;
  return total > ihl + doff ? total - ihl - doff : 0;
}

struct Net {
  explicit Net(int rx_batch) : pair(clock), holding(pair.b()), cbuf(1 << 16, 1 << 16), sbuf(1 << 16, 1 << 16) {
    StackConfig cc;
    cc.ip.local_addr = kClientAddr;
    StackConfig sc;
    sc.ip.local_addr = kServerAddr;
    sc.rx_batch = rx_batch;
    client = std::make_unique<Stack>(cc, pair.a(), clock, cbuf.rx(), cbuf.tx());
    server = std::make_unique<Stack>(sc, holding, clock, sbuf.rx(), sbuf.tx());
  }

  ManualClock clock;
  MemLinkPair pair;
  HoldingLink holding;
  StreamBuffers cbuf;
  StreamBuffers sbuf;
  std::unique_ptr<Stack> client;
  std::unique_ptr<Stack> server;
};

TEST(StackFlush, AnswersToEachReceiveRoundLeaveTogetherBeforePollReturns) {
  Net net(/*rx_batch=*/16);
  ASSERT_EQ(net.server->tcp().listen(kPort), 0);
  constexpr int kConns = 40;
  for (int i = 0; i < kConns; ++i) {
    ASSERT_GE(net.client->tcp().connect(kServerAddr, kPort), 0);
  }
  net.client->poll();  // the 40 SYNs
  ASSERT_EQ(net.pair.in_flight(MemLinkDirection::a_to_b), static_cast<std::size_t>(kConns));

  net.server->poll();
  EXPECT_EQ(net.holding.held(), 0u) << "poll() returned with SYN-ACKs still held in the link";
  // rx_batch 16: three receive rounds, each round's answers flushed before the next round.
  EXPECT_EQ(net.holding.batches(), (std::vector<int>{16, 16, 8}));
  EXPECT_EQ(net.pair.in_flight(MemLinkDirection::b_to_a), static_cast<std::size_t>(kConns));

  net.client->poll();  // SYN-ACKs in, ACKs out
  EXPECT_EQ(net.client->tcp().connections_by_state()[static_cast<int>(TcpState::kEstablished)],
            static_cast<std::uint64_t>(kConns))
      << "an answer was lost";
  net.server->poll();
  EXPECT_EQ(net.holding.held(), 0u);
  EXPECT_EQ(net.server->tcp().connections_by_state()[static_cast<int>(TcpState::kEstablished)],
            static_cast<std::uint64_t>(kConns));
}

TEST(StackFlush, RetransmissionsFromTheTimersAreFlushedBeforePollReturns) {
  Net net(/*rx_batch=*/64);
  ASSERT_EQ(net.server->tcp().listen(kPort), 0);
  const std::int64_t c = net.client->tcp().connect(kServerAddr, kPort);
  ASSERT_GE(c, 0);
  net.client->poll();
  net.server->poll();
  net.client->poll();
  net.server->poll();
  const std::int64_t s = net.server->tcp().accept(kPort);
  ASSERT_GE(s, 0);
  net.holding.clear_batches();

  // The first copy of every data segment toward the client is lost.
  int dropped = 0;
  net.pair.set_drop_filter(MemLinkDirection::b_to_a, [&dropped](std::span<const std::byte> p) {
    if (tcp_payload(p) > 0 && dropped == 0) {
      ++dropped;
      return true;
    }
    return false;
  });
  std::vector<std::byte> data(100);
  for (std::size_t i = 0; i < data.size(); ++i) {
    data[i] = static_cast<std::byte>(i);
  }
  ASSERT_EQ(net.server->tcp().send(static_cast<ConnId>(s), data), static_cast<std::int64_t>(data.size()));
  // A send outside poll() is held until somebody flushes: here the application's side.
  EXPECT_EQ(net.holding.held(), 1u);
  EXPECT_EQ(net.server->flush_link(), 1);
  EXPECT_EQ(dropped, 1);

  // Nothing arrives; the retransmission timer fires inside poll().
  const std::uint64_t before = net.server->tcp().stats().retransmits;
  net.client->poll();
  // The timer wheel may fire a tick or two before the retransmission is due: move the
  // clock deadline by deadline (bounded) until it goes, checking every poll() on the way.
  for (int step = 0; step < 10 && net.server->tcp().stats().retransmits == before; ++step) {
    const TimeNs due = net.server->next_deadline();
    ASSERT_NE(due, kNever);
    net.clock.set(std::max(due, net.clock.now()));
    net.server->poll();
    EXPECT_EQ(net.holding.held(), 0u) << "poll() returned with timer sends still held in the link";
  }
  EXPECT_GT(net.server->tcp().stats().retransmits, before);
  EXPECT_EQ(net.pair.in_flight(MemLinkDirection::b_to_a), 1u);

  net.client->poll();
  std::vector<std::byte> got(200);
  const std::size_t n = net.cbuf.read(static_cast<ConnId>(c), got);
  ASSERT_EQ(n, data.size());
  EXPECT_TRUE(std::equal(data.begin(), data.end(), got.begin()));
}

TEST(StackFlush, WaitFlushesBeforeItSleeps) {
  Net net(/*rx_batch=*/64);
  ASSERT_EQ(net.server->tcp().listen(kPort), 0);
  ASSERT_GE(net.client->tcp().connect(kServerAddr, kPort), 0);
  net.client->poll();
  // The SYN-ACK is sent from poll() and flushed there; a send made after it (an abort's
  // RST here) waits in the link until wait() flushes it (the in-memory link has no
  // descriptor, so wait() returns at once after the flush).
  net.server->poll();
  net.client->poll();
  net.server->poll();
  const std::int64_t s = net.server->tcp().accept(kPort);
  ASSERT_GE(s, 0);
  ASSERT_EQ(net.server->tcp().abort(static_cast<ConnId>(s)), 0);
  EXPECT_EQ(net.holding.held(), 1u);
  net.server->wait(ms(1));
  EXPECT_EQ(net.holding.held(), 0u);
  EXPECT_EQ(net.pair.in_flight(MemLinkDirection::b_to_a), 1u);
}

}  // namespace
}  // namespace xtcp
