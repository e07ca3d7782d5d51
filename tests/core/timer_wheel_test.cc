// Tests for TimerWheel and FifoTimerQueue: firing order and exactness, re-entrant callbacks,
// far deadlines, and a randomized run checked step by step against a std::set reference.
#include "stack/core/timer_wheel.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <set>
#include <utility>
#include <vector>

namespace xtcp {
namespace {

struct Fired {
  std::vector<std::uint32_t> owners;
  auto fn() {
    return [this](std::uint32_t o) { owners.push_back(o); };
  }
};

TEST(TimerWheel, FiresAtDeadlineNotBefore) {
  TimerWheel w(ms(1), 0);
  w.schedule(7, ms(10) + 300);
  EXPECT_TRUE(w.is_scheduled(7));
  EXPECT_EQ(w.deadline(7), ms(10) + 300);
  EXPECT_EQ(w.next_deadline(), ms(10) + 300);
  Fired f;
  EXPECT_EQ(w.advance(ms(10), f.fn()), 0u);
  EXPECT_EQ(w.advance(ms(10) + 299, f.fn()), 0u);
  EXPECT_TRUE(f.owners.empty());
  EXPECT_EQ(w.advance(ms(10) + 300, f.fn()), 1u);
  EXPECT_EQ(f.owners, std::vector<std::uint32_t>{7});
  EXPECT_FALSE(w.is_scheduled(7));
  EXPECT_EQ(w.deadline(7), kNever);
  EXPECT_EQ(w.next_deadline(), kNever);
  EXPECT_EQ(w.advance(seconds(100), f.fn()), 0u);
  EXPECT_EQ(f.owners.size(), 1u);
}

TEST(TimerWheel, FiresInDeadlineOrderAcrossLevelsAndWithinATick) {
  TimerWheel w(ms(1), 0);
  // Same tick, sub-tick order differs from scheduling order; plus far ones on higher levels.
  w.schedule(1, ms(5) + 900);
  w.schedule(2, ms(5) + 100);
  w.schedule(3, ms(5) + 500);
  w.schedule(4, seconds(3));
  w.schedule(5, ms(300));
  w.schedule(6, seconds(3600));
  w.schedule(7, ms(5) + 101);
  Fired f;
  EXPECT_EQ(w.advance(seconds(4000), f.fn()), 7u);
  EXPECT_EQ(f.owners, (std::vector<std::uint32_t>{2, 7, 3, 1, 5, 4, 6}));
  EXPECT_TRUE(w.empty());
}

TEST(TimerWheel, RescheduleMovesAndCancelDisarms) {
  TimerWheel w(ms(1), 0);
  w.schedule(1, ms(10));
  w.schedule(2, ms(20));
  w.schedule(1, ms(30));  // moved later
  w.cancel(2);
  w.cancel(2);   // idempotent
  w.cancel(99);  // never scheduled, beyond the array
  EXPECT_EQ(w.size(), 1u);
  EXPECT_EQ(w.next_deadline(), ms(30));
  Fired f;
  EXPECT_EQ(w.advance(ms(29), f.fn()), 0u);
  w.schedule(1, ms(15));  // moved earlier, already in the past
  EXPECT_EQ(w.next_deadline(), ms(15));
  EXPECT_EQ(w.advance(ms(29), f.fn()), 1u);
  EXPECT_EQ(f.owners, std::vector<std::uint32_t>{1});
}

TEST(TimerWheel, PastDeadlinesFireAtNextAdvance) {
  TimerWheel w(ms(1), seconds(10));
  Fired f;
  w.advance(seconds(20), f.fn());
  w.schedule(3, seconds(5));  // before the wheel's start
  w.schedule(4, seconds(19));
  w.schedule(5, seconds(20));
  EXPECT_EQ(w.next_deadline(), seconds(5));
  EXPECT_EQ(w.advance(seconds(20), f.fn()), 3u);
  EXPECT_EQ(f.owners, (std::vector<std::uint32_t>{3, 4, 5}));
}

TEST(TimerWheel, FarDeadlinesAreExact) {
  TimerWheel w(ms(1), 0);
  const TimeNs far[] = {seconds(2 * 3600) + 17, seconds(30LL * 24 * 3600) + 1,
                        seconds(200LL * 365 * 24 * 3600), kNever - 1};
  for (std::uint32_t i = 0; i < 4; ++i) {
    w.schedule(i, far[i]);
  }
  Fired f;
  for (std::uint32_t i = 0; i < 4; ++i) {
    ASSERT_EQ(w.next_deadline(), far[i]);
    EXPECT_EQ(w.advance(far[i] - 1, f.fn()), 0u);
    EXPECT_EQ(w.advance(far[i], f.fn()), 1u);
    EXPECT_EQ(f.owners.back(), i);
  }
  EXPECT_EQ(w.next_deadline(), kNever);
}

TEST(TimerWheel, ScheduleAtNeverIsCancel) {
  TimerWheel w;
  w.schedule(1, ms(5));
  w.schedule(1, kNever);
  EXPECT_FALSE(w.is_scheduled(1));
  EXPECT_TRUE(w.empty());
}

TEST(TimerWheel, NextDeadlineIsExactAfterEarliestIsRemoved) {
  TimerWheel w(ms(1), 0);
  // All on a high level, so next_deadline has to look inside a bucket.
  w.schedule(1, seconds(100) + 5);
  w.schedule(2, seconds(100) + 3);
  w.schedule(3, seconds(101) + 1);
  EXPECT_EQ(w.next_deadline(), seconds(100) + 3);
  w.cancel(2);
  EXPECT_EQ(w.next_deadline(), seconds(100) + 5);
  w.schedule(1, seconds(200));
  EXPECT_EQ(w.next_deadline(), seconds(101) + 1);
  w.schedule(4, seconds(50));
  EXPECT_EQ(w.next_deadline(), seconds(50));
}

TEST(TimerWheel, CallbacksMayRescheduleAndCancel) {
  TimerWheel w(ms(1), 0);
  w.schedule(1, ms(10));
  w.schedule(2, ms(20));
  w.schedule(3, ms(30));
  w.schedule(4, ms(40));
  std::vector<std::pair<std::uint32_t, TimeNs>> log;
  int periodic = 0;
  const std::size_t n = w.advance(ms(100), [&](std::uint32_t o) {
    log.emplace_back(o, w.deadline(o));
    if (o == 1 && ++periodic < 4) {
      w.schedule(1, ms(10) * (periodic + 1) + ms(5));  // periodic: 25, 35, 45 ms
    }
    if (o == 2) {
      w.cancel(3);              // a due timer cancelled before it fires
      w.schedule(5, ms(21));    // a new one, due within this advance
      w.schedule(6, ms(1));     // in the past: fires next, before the rest
      w.schedule(7, ms(500));   // beyond now: stays armed
    }
  });
  std::vector<std::uint32_t> order;
  for (auto& [o, d] : log) {
    order.push_back(o);
    EXPECT_EQ(d, kNever) << "a timer is disarmed before its callback";
  }
  EXPECT_EQ(order, (std::vector<std::uint32_t>{1, 2, 6, 5, 1, 1, 4, 1}));
  EXPECT_EQ(n, 8u);
  EXPECT_TRUE(w.is_scheduled(7));
  EXPECT_FALSE(w.is_scheduled(1));
  EXPECT_FALSE(w.is_scheduled(3));
  EXPECT_EQ(w.next_deadline(), ms(500));
}

TEST(TimerWheel, NestedAdvanceFromCallbackDoesNothing) {
  TimerWheel w;
  w.schedule(1, ms(1));
  w.schedule(2, ms(1));
  std::size_t inner = 99;
  w.advance(ms(5), [&](std::uint32_t) { inner = w.advance(ms(5), [](std::uint32_t) {}); });
  EXPECT_EQ(inner, 0u);
  EXPECT_TRUE(w.empty());
}

TEST(TimerWheel, ManyTimersFireExactlyOnceInOrder) {
  constexpr std::uint32_t kN = 1'000'000;
  TimerWheel w(ms(1), 0);
  w.reserve(kN);
  std::mt19937_64 rng(42);
  std::vector<TimeNs> deadline(kN);
  for (std::uint32_t i = 0; i < kN; ++i) {
    deadline[i] = static_cast<TimeNs>(rng() % static_cast<std::uint64_t>(seconds(600)));
    w.schedule(i, deadline[i]);
  }
  EXPECT_EQ(w.size(), kN);
  std::vector<std::uint8_t> fired(kN, 0);
  TimeNs last = 0;
  TimeNs now = 0;
  std::size_t total = 0;
  bool ordered = true;
  bool early = false;
  while (!w.empty()) {
    now += ms(7) + 123;
    total += w.advance(now, [&](std::uint32_t o) {
      ++fired[o];
      early |= deadline[o] > now;
      ordered &= deadline[o] >= last;
      last = deadline[o];
    });
  }
  EXPECT_EQ(total, kN);
  EXPECT_TRUE(ordered);
  EXPECT_FALSE(early);
  for (std::uint32_t i = 0; i < kN; ++i) {
    ASSERT_EQ(fired[i], 1) << i;
  }
}

TEST(TimerWheel, EntryIsSixteenBytesPerOwner) {
  static_assert(sizeof(TimerWheel::Entry) == 16);
  TimerWheel w;
  const std::size_t empty = w.memory_bytes();
  w.reserve(1'000'000);
  EXPECT_EQ(w.memory_bytes() - empty, 16u * 1'000'000);
}

// The reference is a std::set of (deadline, owner) plus each owner's deadline. During advance,
// each fired owner must be the reference's earliest (ties allowed), due, and is removed there;
// callbacks make random changes to both. Afterwards nothing due may remain.
TEST(TimerWheel, RandomizedAgainstReferenceModel) {
  constexpr std::uint32_t kOwners = 3000;
  constexpr int kOps = 100'000;
  std::mt19937_64 rng(12345);
  const TimeNs gran = us(250);
  TimerWheel w(gran, seconds(1));
  std::set<std::pair<TimeNs, std::uint32_t>> ref;
  std::vector<TimeNs> ref_deadline(kOwners, kNever);
  TimeNs now = seconds(1);

  auto pick_delta = [&]() -> TimeNs {
    switch (rng() % 6) {
      case 0: return static_cast<TimeNs>(rng() % static_cast<std::uint64_t>(gran * 3));
      case 1: return static_cast<TimeNs>(rng() % static_cast<std::uint64_t>(ms(300)));
      case 2: return static_cast<TimeNs>(rng() % static_cast<std::uint64_t>(seconds(70)));
      case 3: return static_cast<TimeNs>(rng() % static_cast<std::uint64_t>(seconds(8000)));
      case 4: return -static_cast<TimeNs>(rng() % static_cast<std::uint64_t>(ms(50)));
      default: return static_cast<TimeNs>(rng() % 5) * gran;  // exact tick edges
    }
  };
  auto ref_set = [&](std::uint32_t o, TimeNs d) {
    if (ref_deadline[o] != kNever) {
      ref.erase({ref_deadline[o], o});
    }
    ref_deadline[o] = d;
    if (d != kNever) {
      ref.insert({d, o});
    }
  };
  auto both_schedule = [&](std::uint32_t o, TimeNs d) {
    w.schedule(o, d);
    ref_set(o, d);
  };
  auto both_cancel = [&](std::uint32_t o) {
    w.cancel(o);
    ref_set(o, kNever);
  };

  std::size_t fired_total = 0;
  for (int op = 0; op < kOps; ++op) {
    const std::uint64_t kind = rng() % 100;
    const auto owner = static_cast<std::uint32_t>(rng() % kOwners);
    if (kind < 55) {
      both_schedule(owner, now + pick_delta());
    } else if (kind < 70) {
      both_cancel(owner);
    } else {
      // Advance by a mix of small steps, exact tick edges and long jumps.
      TimeNs step;
      switch (rng() % 4) {
        case 0: step = static_cast<TimeNs>(rng() % static_cast<std::uint64_t>(gran)); break;
        case 1: step = gran; break;
        case 2: step = static_cast<TimeNs>(rng() % static_cast<std::uint64_t>(ms(400))); break;
        default: step = static_cast<TimeNs>(rng() % static_cast<std::uint64_t>(seconds(900)));
      }
      now += step;
      bool ok = true;
      const std::size_t n = w.advance(now, [&](std::uint32_t o) {
        // The fired owner must be armed in the reference, due, and the earliest.
        if (ref_deadline[o] == kNever || ref_deadline[o] > now ||
            ref.begin()->first != ref_deadline[o]) {
          ok = false;
          return;
        }
        ref_set(o, kNever);
        ++fired_total;
        const std::uint64_t action = rng() % 10;
        if (action < 3) {
          both_schedule(o, now + pick_delta());  // re-arm self, maybe due again now
        } else if (action < 5) {
          both_cancel(static_cast<std::uint32_t>(rng() % kOwners));
        } else if (action < 6) {
          both_schedule(static_cast<std::uint32_t>(rng() % kOwners), now + pick_delta());
        }
      });
      ASSERT_TRUE(ok) << "op " << op << ": fired out of order, early or twice";
      ASSERT_TRUE(ref.empty() || ref.begin()->first > now) << "op " << op << ": due timer left";
      (void)n;
    }
    ASSERT_EQ(w.size(), ref.size()) << "op " << op;
    ASSERT_EQ(w.next_deadline(), ref.empty() ? kNever : ref.begin()->first) << "op " << op;
    ASSERT_EQ(w.deadline(owner), ref_deadline[owner]) << "op " << op;
    ASSERT_EQ(w.is_scheduled(owner), ref_deadline[owner] != kNever) << "op " << op;
  }
  EXPECT_GT(fired_total, 10'000u);
  for (std::uint32_t o = 0; o < kOwners; ++o) {
    ASSERT_EQ(w.deadline(o), ref_deadline[o]) << o;
  }
}

// ---------------------------------------------------------------------------------------------

TEST(FifoTimerQueue, PopsExpiredInOrder) {
  FifoTimerQueue q;
  EXPECT_EQ(q.next_deadline(), kNever);
  q.push(1, ms(10));
  q.push(2, ms(20));
  q.push(3, ms(20));
  q.push(4, ms(30));
  EXPECT_EQ(q.size(), 4u);
  EXPECT_EQ(q.next_deadline(), ms(10));
  std::vector<std::pair<std::uint32_t, TimeNs>> got;
  auto collect = [&](std::uint32_t o, TimeNs d) { got.emplace_back(o, d); };
  EXPECT_EQ(q.pop_expired(ms(9), collect), 0u);
  EXPECT_EQ(q.pop_expired(ms(20), collect), 3u);
  EXPECT_EQ(got, (std::vector<std::pair<std::uint32_t, TimeNs>>{{1, ms(10)}, {2, ms(20)},
                                                                 {3, ms(20)}}));
  EXPECT_EQ(q.next_deadline(), ms(30));
  EXPECT_EQ(q.pop_expired(seconds(1), collect), 1u);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.next_deadline(), kNever);
}

TEST(FifoTimerQueue, LazyRemoveSkipsTombstones) {
  FifoTimerQueue q;
  const auto t1 = q.push(1, ms(10));
  const auto t2 = q.push(2, ms(20));
  const auto t3 = q.push(3, ms(30));
  EXPECT_TRUE(q.remove(t2));
  EXPECT_FALSE(q.remove(t2));
  EXPECT_EQ(q.size(), 2u);
  EXPECT_TRUE(q.remove(t1));  // the head: next_deadline moves past the tombstone too
  EXPECT_EQ(q.next_deadline(), ms(30));
  std::vector<std::uint32_t> got;
  q.pop_expired(ms(100), [&](std::uint32_t o, TimeNs) { got.push_back(o); });
  EXPECT_EQ(got, std::vector<std::uint32_t>{3});
  EXPECT_FALSE(q.remove(t3));      // already expired
  EXPECT_FALSE(q.remove(t3 + 5));  // never issued
}

TEST(FifoTimerQueue, OutOfOrderPushNeverFiresEarly) {
  FifoTimerQueue q;
  q.push(1, ms(50));
  q.push(2, ms(10));
  std::vector<std::uint32_t> got;
  auto collect = [&](std::uint32_t o, TimeNs) { got.push_back(o); };
  q.pop_expired(ms(20), collect);
  EXPECT_TRUE(got.empty());
  q.pop_expired(ms(50), collect);
  EXPECT_EQ(got, (std::vector<std::uint32_t>{1, 2}));
}

TEST(FifoTimerQueue, RingGrowsAndWrapsWithCallbacksPushing) {
  FifoTimerQueue q(16);
  std::mt19937_64 rng(7);
  std::vector<FifoTimerQueue::Ticket> tickets;
  TimeNs now = 0;
  TimeNs tail_deadline = 0;
  std::uint32_t next_owner = 0;
  std::vector<TimeNs> owner_deadline;
  std::vector<bool> removed;
  std::size_t popped = 0;
  for (int round = 0; round < 20'000; ++round) {
    const int pushes = static_cast<int>(rng() % 5);
    for (int i = 0; i < pushes; ++i) {
      tail_deadline = std::max(tail_deadline, now) + static_cast<TimeNs>(rng() % 1000);
      tickets.push_back(q.push(next_owner, tail_deadline));
      owner_deadline.push_back(tail_deadline);
      removed.push_back(false);
      ++next_owner;
    }
    if (rng() % 4 == 0 && !tickets.empty()) {
      const std::size_t k = rng() % tickets.size();
      // Tickets and owners are both issued from 0 upward, so ticket k belongs to owner k.
      EXPECT_EQ(q.remove(tickets[k]), !removed[k]);
      removed[k] = true;
    }
    now += static_cast<TimeNs>(rng() % 2000);
    q.pop_expired(now, [&](std::uint32_t o, TimeNs d) {
      EXPECT_EQ(d, owner_deadline[o]);
      EXPECT_LE(d, now);
      EXPECT_FALSE(removed[o]);
      removed[o] = true;  // popped: must never come again
      ++popped;
      if (o % 97 == 0) {  // a callback pushing while the ring is being drained
        tail_deadline = std::max(tail_deadline, now) + 1;
        tickets.push_back(q.push(next_owner, tail_deadline));
        owner_deadline.push_back(tail_deadline);
        removed.push_back(false);
        ++next_owner;
      }
    });
    EXPECT_TRUE(q.empty() || q.next_deadline() > now);
  }
  std::size_t live = 0;
  for (bool r : removed) {
    live += r ? 0 : 1;
  }
  EXPECT_EQ(q.size(), live);
  EXPECT_GT(popped, 10'000u);
  EXPECT_GE(q.capacity(), 16u);
  EXPECT_EQ(q.memory_bytes() - sizeof(FifoTimerQueue), q.capacity() * 16);
}

}  // namespace
}  // namespace xtcp
