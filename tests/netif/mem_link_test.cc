// Tests for MemLinkPair: delivery both ways, seeded determinism, each fault's rate and effect,
// delay and jitter in virtual time, the drop filter, queue limit and MTU. ManualClock only.
#include "stack/netif/mem_link.h"

#include <gtest/gtest.h>

#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <vector>

namespace xtcp {
namespace {

using Dir = MemLinkDirection;

// A packet carrying its id in the first four bytes, followed by filler.
std::vector<std::byte> make_packet(std::uint32_t id, std::size_t size = 64) {
  std::vector<std::byte> p(size);
  for (std::size_t i = 0; i < size; ++i) {
    p[i] = static_cast<std::byte>((id * 31 + i * 7) & 0xFF);
  }
  std::memcpy(p.data(), &id, sizeof id);
  return p;
}

std::uint32_t id_of(std::span<const std::byte> p) {
  std::uint32_t id;
  std::memcpy(&id, p.data(), sizeof id);
  return id;
}

// Drains a direction, stepping the clock to each next delivery time, and returns the ids in
// arrival order.
std::vector<std::uint32_t> drain(ManualClock& clock, MemLinkPair& pair, Link& receiver) {
  std::vector<std::uint32_t> ids;
  for (;;) {
    receiver.receive_batch(1000, [&](std::span<const std::byte> p) { ids.push_back(id_of(p)); });
    const TimeNs next = pair.next_delivery_time();
    if (next == kNever) {
      return ids;
    }
    clock.set(std::max(clock.now(), next));
  }
}

TEST(MemLink, DeliversBothWaysInOrder) {
  ManualClock clock;
  MemLinkPair pair(clock);
  for (std::uint32_t i = 0; i < 5; ++i) {
    ASSERT_EQ(pair.a().send(make_packet(i)), 0);
    ASSERT_EQ(pair.b().send(make_packet(100 + i)), 0);
  }
  std::vector<std::uint32_t> at_b, at_a;
  EXPECT_EQ(pair.b().receive_batch(3, [&](auto p) { at_b.push_back(id_of(p)); }), 3);
  EXPECT_EQ(pair.b().receive_batch(10, [&](auto p) { at_b.push_back(id_of(p)); }), 2);
  EXPECT_EQ(pair.b().receive_batch(10, [&](auto p) { at_b.push_back(id_of(p)); }), 0);
  EXPECT_EQ(pair.a().receive_batch(10, [&](auto p) { at_a.push_back(id_of(p)); }), 5);
  EXPECT_EQ(at_b, (std::vector<std::uint32_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(at_a, (std::vector<std::uint32_t>{100, 101, 102, 103, 104}));
  EXPECT_EQ(pair.counters(Dir::a_to_b).sent, 5u);
  EXPECT_EQ(pair.counters(Dir::a_to_b).delivered, 5u);
  EXPECT_EQ(pair.counters(Dir::b_to_a).delivered, 5u);
  EXPECT_EQ(pair.a().poll_fd(), -1);
}

TEST(MemLink, PayloadIsCopiedIntact) {
  ManualClock clock;
  MemLinkPair pair(clock);
  auto p = make_packet(9, 1500);
  ASSERT_EQ(pair.a().send(p), 0);
  const auto original = p;
  p[10] = std::byte{0};  // the sender's buffer may be reused at once
  std::vector<std::byte> got;
  pair.b().receive_batch(1, [&](auto s) { got.assign(s.begin(), s.end()); });
  EXPECT_EQ(got, original);
}

TEST(MemLink, HandlerMaySendOnTheLinkItReadsFrom) {
  ManualClock clock;
  MemLinkPair pair(clock);
  pair.a().send(make_packet(1));
  int replies = 0;
  // An echo: b answers each packet; a's packet and b's answer travel different directions,
  // and sending more on a from inside b's handler is also safe.
  pair.b().receive_batch(10, [&](auto p) {
    pair.b().send(p);
    if (id_of(p) == 1) {
      pair.a().send(make_packet(2));
    }
  });
  pair.a().receive_batch(10, [&](auto) { ++replies; });
  EXPECT_GE(replies, 1);
  EXPECT_EQ(pair.counters(Dir::a_to_b).sent, 2u);
}

TEST(MemLink, MtuAndQueueLimit) {
  ManualClock clock;
  MemLinkFaults f;
  f.max_queue_packets = 10;
  MemLinkPair pair(clock, f, {}, 1280);
  EXPECT_EQ(pair.a().mtu(), 1280u);
  EXPECT_EQ(pair.a().send(make_packet(1, 1281)), -EMSGSIZE);
  EXPECT_EQ(pair.a().send(make_packet(1, 1280)), 0);
  int eagain = 0;
  for (std::uint32_t i = 0; i < 14; ++i) {
    eagain += pair.a().send(make_packet(i)) == -EAGAIN;
  }
  EXPECT_EQ(eagain, 5);
  EXPECT_EQ(pair.counters(Dir::a_to_b).dropped_queue_full, 5u);
  EXPECT_EQ(pair.in_flight(Dir::a_to_b), 10u);
  pair.set_mtu(9000);
  EXPECT_EQ(pair.b().mtu(), 9000u);
}

// Same seed and same sends: the same fate for every packet, counters included. Another seed:
// a different fate sequence.
TEST(MemLink, SameSeedSameFates) {
  auto run = [](std::uint64_t seed) {
    ManualClock clock;
    MemLinkFaults f;
    f.seed = seed;
    f.loss = 0.1;
    f.duplicate = 0.05;
    f.reorder = 0.1;
    f.corrupt = 0.05;
    f.delay = ms(2);
    f.jitter = us(800);
    MemLinkPair pair(clock, f, f);
    std::vector<std::vector<std::byte>> arrivals;
    std::vector<TimeNs> times;
    for (std::uint32_t i = 0; i < 2000; ++i) {
      pair.a().send(make_packet(i));
      clock.advance(us(100));
      pair.b().receive_batch(100, [&](auto p) {
        arrivals.emplace_back(p.begin(), p.end());
        times.push_back(clock.now());
      });
    }
    while (pair.next_delivery_time() != kNever) {
      clock.set(pair.next_delivery_time());
      pair.b().receive_batch(100, [&](auto p) {
        arrivals.emplace_back(p.begin(), p.end());
        times.push_back(clock.now());
      });
    }
    const auto& c = pair.counters(Dir::a_to_b);
    return std::make_tuple(arrivals, times, c.lost, c.duplicated, c.reordered, c.corrupted,
                           c.delivered);
  };
  const auto first = run(42);
  const auto again = run(42);
  const auto other = run(43);
  EXPECT_EQ(first, again);
  EXPECT_NE(std::get<0>(first), std::get<0>(other));
  EXPECT_GT(std::get<2>(first), 0u);
  EXPECT_GT(std::get<3>(first), 0u);
  EXPECT_GT(std::get<4>(first), 0u);
  EXPECT_GT(std::get<5>(first), 0u);
}

// A drop filter or a changed loss rate does not shift the random stream: packets the filter
// lets through meet the same fate as without it.
TEST(MemLink, FilterDoesNotPerturbOtherFates) {
  auto run = [](bool with_filter) {
    ManualClock clock;
    MemLinkFaults f;
    f.seed = 7;
    f.loss = 0.3;
    MemLinkPair pair(clock, f);
    if (with_filter) {
      pair.set_drop_filter(Dir::a_to_b, [](auto p) { return id_of(p) % 10 == 0; });
    }
    for (std::uint32_t i = 0; i < 1000; ++i) {
      pair.a().send(make_packet(i));
    }
    std::vector<std::uint32_t> ids;
    pair.b().receive_batch(2000, [&](auto p) { ids.push_back(id_of(p)); });
    return ids;
  };
  auto without = run(false);
  std::erase_if(without, [](std::uint32_t id) { return id % 10 == 0; });
  EXPECT_EQ(run(true), without);
}

TEST(MemLink, LossRateWithinTolerance) {
  ManualClock clock;
  MemLinkFaults f;
  f.seed = 1234;
  f.loss = 0.1;
  f.max_queue_packets = 0;
  MemLinkPair pair(clock, f);
  constexpr int kN = 10'000;
  for (std::uint32_t i = 0; i < kN; ++i) {
    pair.a().send(make_packet(i));
  }
  const auto& c = pair.counters(Dir::a_to_b);
  // Binomial(10000, 0.1): sd 30; allow 5 sd.
  EXPECT_NEAR(static_cast<double>(c.lost), 1000.0, 150.0);
  std::vector<std::uint32_t> ids;
  pair.b().receive_batch(kN, [&](auto p) { ids.push_back(id_of(p)); });
  EXPECT_EQ(ids.size() + c.lost, static_cast<std::size_t>(kN));
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end())) << "loss alone never reorders";
}

TEST(MemLink, DelayIsRespectedInVirtualTime) {
  ManualClock clock(seconds(5));
  MemLinkFaults f;
  f.delay = ms(20);
  MemLinkPair pair(clock, f);
  pair.a().send(make_packet(1));
  clock.advance(ms(3));
  pair.a().send(make_packet(2));
  EXPECT_EQ(pair.next_delivery_time(), seconds(5) + ms(20));
  EXPECT_EQ(pair.next_delivery_time(Dir::b_to_a), kNever);
  int got = 0;
  auto count = [&](auto) { ++got; };
  clock.set(seconds(5) + ms(20) - 1);
  EXPECT_EQ(pair.b().receive_batch(10, count), 0);
  clock.set(seconds(5) + ms(20));
  EXPECT_EQ(pair.b().receive_batch(10, count), 1);
  EXPECT_EQ(pair.next_delivery_time(), seconds(5) + ms(23));
  clock.set(seconds(5) + ms(23));
  EXPECT_EQ(pair.b().receive_batch(10, count), 1);
  EXPECT_EQ(pair.next_delivery_time(), kNever);
}

TEST(MemLink, JitterStaysWithinBoundsAndReorders) {
  ManualClock clock;
  MemLinkFaults f;
  f.seed = 99;
  f.delay = ms(10);
  f.jitter = ms(5);
  MemLinkPair pair(clock, f);
  // Event-driven: the clock jumps to the next send or the next delivery, whichever is first,
  // so each packet is received exactly at its due time.
  std::map<std::uint32_t, TimeNs> sent_at;
  std::vector<std::uint32_t> order;
  TimeNs earliest = kNever, latest = 0;
  const TimeNs start = clock.now();
  std::uint32_t next_id = 0;
  while (next_id < 500 || pair.next_delivery_time() != kNever) {
    const TimeNs send_time = next_id < 500 ? start + us(50) * next_id : kNever;
    clock.set(std::min(send_time, pair.next_delivery_time()));
    pair.b().receive_batch(1000, [&](auto p) {
      const TimeNs transit = clock.now() - sent_at[id_of(p)];
      earliest = std::min(earliest, transit);
      latest = std::max(latest, transit);
      order.push_back(id_of(p));
    });
    if (clock.now() == send_time) {
      sent_at[next_id] = clock.now();
      pair.a().send(make_packet(next_id++));
    }
  }
  EXPECT_EQ(order.size(), 500u);
  EXPECT_GE(earliest, ms(10));
  EXPECT_LE(latest, ms(15));
  EXPECT_GT(latest - earliest, ms(4)) << "jitter should use most of its range";
  EXPECT_FALSE(std::is_sorted(order.begin(), order.end()));
}

TEST(MemLink, CorruptionFlipsExactlyOneBit) {
  ManualClock clock;
  MemLinkFaults f;
  f.seed = 5;
  f.corrupt = 1.0;
  MemLinkPair pair(clock, f);
  std::vector<std::vector<std::byte>> sent;
  for (std::uint32_t i = 0; i < 300; ++i) {
    sent.push_back(make_packet(i, 20 + i % 200));
    pair.a().send(sent.back());
  }
  std::size_t checked = 0;
  std::vector<int> bit_hits(8, 0);
  pair.b().receive_batch(1000, [&](auto p) {
    // The id bytes may be the corrupted ones, so match by position in the (unreordered) stream.
    const auto& orig = sent[checked++];
    ASSERT_EQ(p.size(), orig.size());
    int flipped = 0;
    for (std::size_t i = 0; i < p.size(); ++i) {
      const auto diff = static_cast<unsigned>(p[i] ^ orig[i]);
      flipped += std::popcount(diff);
      if (diff != 0) {
        ++bit_hits[std::countr_zero(diff)];
      }
    }
    EXPECT_EQ(flipped, 1);
  });
  EXPECT_EQ(checked, 300u);
  EXPECT_EQ(pair.counters(Dir::a_to_b).corrupted, 300u);
  for (int b = 0; b < 8; ++b) {
    EXPECT_GT(bit_hits[b], 10) << "bit " << b << " should be hit sometimes";
  }
}

TEST(MemLink, DuplicationDeliversTwoIdenticalCopies) {
  ManualClock clock;
  MemLinkFaults f;
  f.duplicate = 1.0;
  MemLinkPair pair(clock, f);
  for (std::uint32_t i = 0; i < 50; ++i) {
    pair.a().send(make_packet(i));
  }
  std::map<std::uint32_t, int> copies;
  pair.b().receive_batch(1000, [&](auto p) {
    EXPECT_EQ(std::vector<std::byte>(p.begin(), p.end()), make_packet(id_of(p)));
    ++copies[id_of(p)];
  });
  EXPECT_EQ(copies.size(), 50u);
  for (auto& [id, n] : copies) {
    EXPECT_EQ(n, 2) << id;
  }
  EXPECT_EQ(pair.counters(Dir::a_to_b).duplicated, 50u);
  EXPECT_EQ(pair.counters(Dir::a_to_b).delivered, 100u);

  // At a partial rate, the count tracks the probability.
  MemLinkFaults g;
  g.seed = 3;
  g.duplicate = 0.2;
  g.max_queue_packets = 0;
  MemLinkPair half(clock, g);
  for (std::uint32_t i = 0; i < 10'000; ++i) {
    half.a().send(make_packet(i));
  }
  EXPECT_NEAR(static_cast<double>(half.counters(Dir::a_to_b).duplicated), 2000.0, 200.0);
}

TEST(MemLink, ReorderHoldsAPacketBehindTheNextOne) {
  ManualClock clock;
  MemLinkPair pair(clock);
  MemLinkFaults hold;
  hold.reorder = 1.0;
  pair.set_faults(Dir::a_to_b, hold);
  pair.a().send(make_packet(0));
  pair.set_faults(Dir::a_to_b, MemLinkFaults{});
  pair.a().send(make_packet(1));
  pair.a().send(make_packet(2));
  std::vector<std::uint32_t> ids;
  pair.b().receive_batch(10, [&](auto p) { ids.push_back(id_of(p)); });
  EXPECT_EQ(ids, (std::vector<std::uint32_t>{1, 0, 2}));
  EXPECT_EQ(pair.counters(Dir::a_to_b).reordered, 1u);

  // reorder_gap = 3: three later packets overtake it.
  hold.reorder_gap = 3;
  pair.set_faults(Dir::a_to_b, hold);
  pair.a().send(make_packet(10));
  pair.set_faults(Dir::a_to_b, MemLinkFaults{});
  for (std::uint32_t i = 11; i < 15; ++i) {
    pair.a().send(make_packet(i));
  }
  ids.clear();
  pair.b().receive_batch(10, [&](auto p) { ids.push_back(id_of(p)); });
  EXPECT_EQ(ids, (std::vector<std::uint32_t>{11, 12, 13, 10, 14}));
}

TEST(MemLink, HeldPacketIsReleasedIfNothingFollows) {
  ManualClock clock;
  MemLinkFaults hold;
  hold.reorder = 1.0;
  hold.delay = ms(1);
  hold.reorder_max_hold = ms(10);
  MemLinkPair pair(clock, hold);
  pair.a().send(make_packet(7));
  EXPECT_EQ(pair.in_flight(Dir::a_to_b), 1u);
  EXPECT_EQ(pair.next_delivery_time(), clock.now() + ms(11));
  const auto ids = drain(clock, pair, pair.b());
  EXPECT_EQ(ids, std::vector<std::uint32_t>{7});
}

TEST(MemLink, ReorderRateAndNoLoss) {
  ManualClock clock;
  MemLinkFaults f;
  f.seed = 11;
  f.reorder = 0.3;
  f.max_queue_packets = 0;
  MemLinkPair pair(clock, f);
  constexpr std::uint32_t kN = 5000;
  for (std::uint32_t i = 0; i < kN; ++i) {
    pair.a().send(make_packet(i));
    clock.advance(us(10));
  }
  const auto ids = drain(clock, pair, pair.b());
  ASSERT_EQ(ids.size(), kN);
  std::vector<std::uint32_t> sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  for (std::uint32_t i = 0; i < kN; ++i) {
    ASSERT_EQ(sorted[i], i) << "every packet exactly once";
  }
  std::size_t overtaken = 0;
  for (std::size_t i = 1; i < ids.size(); ++i) {
    overtaken += ids[i] < ids[i - 1];
  }
  const auto reordered = pair.counters(Dir::a_to_b).reordered;
  EXPECT_NEAR(static_cast<double>(reordered), 1500.0, 150.0);
  EXPECT_GT(overtaken, 500u);
}

TEST(MemLink, DropFilterLosesExactlyTheChosenPacket) {
  ManualClock clock;
  MemLinkPair pair(clock);
  int calls = 0;
  pair.set_drop_filter(Dir::a_to_b, [&](std::span<const std::byte> p) {
    ++calls;
    return id_of(p) == 3;
  });
  for (std::uint32_t i = 0; i < 6; ++i) {
    pair.a().send(make_packet(i));
    pair.b().send(make_packet(100 + i));  // the other direction is unfiltered
  }
  std::vector<std::uint32_t> at_b, at_a;
  pair.b().receive_batch(10, [&](auto p) { at_b.push_back(id_of(p)); });
  pair.a().receive_batch(10, [&](auto p) { at_a.push_back(id_of(p)); });
  EXPECT_EQ(at_b, (std::vector<std::uint32_t>{0, 1, 2, 4, 5}));
  EXPECT_EQ(at_a.size(), 6u);
  EXPECT_EQ(calls, 6);
  EXPECT_EQ(pair.counters(Dir::a_to_b).filtered, 1u);
  pair.set_drop_filter(Dir::a_to_b, nullptr);
  pair.a().send(make_packet(3));
  at_b.clear();
  pair.b().receive_batch(10, [&](auto p) { at_b.push_back(id_of(p)); });
  EXPECT_EQ(at_b, std::vector<std::uint32_t>{3});
}

}  // namespace
}  // namespace xtcp
