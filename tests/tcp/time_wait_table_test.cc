// The compact TIME-WAIT table: FIFO expiry, restart, erase anywhere, recycling of the oldest
// entry when full, wrap of the ring and of its expiry groups, expiry precision with shared
// deadlines, and memory per entry at a million entries.
#include <gtest/gtest.h>

#include <cstdint>
#include <deque>

#include "stack/tcp/time_wait.h"

namespace xtcp {
namespace {

FlowKey tw_key(std::uint32_t n) {
  return FlowKey{1, 0x0A000000u + (n >> 16), 80, static_cast<std::uint16_t>(n)};
}

TimeWaitTable::Entry entry(std::uint32_t n, Tick expires) {
  TimeWaitTable::Entry e{};
  e.key = tw_key(n);
  e.snd_nxt = SeqNum(1000 + n);
  e.rcv_nxt = SeqNum(2000 + n);
  e.ts_recent = 3000 + n;
  e.window = static_cast<std::uint16_t>(n * 3);
  e.flags = (n % 2) != 0 ? TimeWaitTable::kTimestamps : 0;
  e.expires = expires;
  return e;
}

bool has(TimeWaitTable& t, std::uint32_t n) { return t.find(tw_key(n)) != nullptr; }

TEST(TimeWaitTable, FindShowsWhatWasInserted) {
  TimeWaitTable t(16, 1);
  t.insert(entry(7, 500));
  const TimeWaitTable::Entry* e = t.find(tw_key(7));
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->key, tw_key(7));
  EXPECT_EQ(e->snd_nxt, SeqNum(1007));
  EXPECT_EQ(e->rcv_nxt, SeqNum(2007));
  EXPECT_EQ(e->ts_recent, 3007u);
  EXPECT_EQ(e->window, 21u);
  EXPECT_EQ(e->flags, TimeWaitTable::kTimestamps);
  EXPECT_EQ(e->expires, 500u);
  EXPECT_EQ(t.find(tw_key(8)), nullptr);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.max_entries(), 16u);
}

TEST(TimeWaitTable, ExpiresInFifoOrder) {
  TimeWaitTable t(64, 2);
  for (std::uint32_t n = 1; n <= 10; ++n) {
    t.insert(entry(n, 100 + n));
  }
  EXPECT_EQ(t.next_expiry(), 101u);
  EXPECT_EQ(t.expire(100), 0u);
  EXPECT_EQ(t.expire(104), 4u);
  for (std::uint32_t n = 1; n <= 10; ++n) {
    EXPECT_EQ(has(t, n), n > 4) << n;
  }
  EXPECT_EQ(t.next_expiry(), 105u);
  EXPECT_EQ(t.expire(105), 1u);
  EXPECT_EQ(t.expire(109), 4u);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.next_expiry(), 110u);
  EXPECT_EQ(t.expire(200), 1u);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.next_expiry(), 0u);
}

TEST(TimeWaitTable, RestartMovesToTheTail) {
  TimeWaitTable t(64, 3);
  for (std::uint32_t n = 1; n <= 3; ++n) {
    t.insert(entry(n, 100 + n));
  }
  EXPECT_EQ(t.size(), 3u);
  t.restart(t.find(tw_key(1)), 500);
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(t.next_expiry(), 102u);
  EXPECT_EQ(t.expire(103), 2u);
  EXPECT_EQ(t.size(), 1u);
  const TimeWaitTable::Entry* e = t.find(tw_key(1));
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->expires, 500u);
  EXPECT_EQ(e->snd_nxt, SeqNum(1001)) << "the record moves with its contents";
  EXPECT_EQ(e->flags, TimeWaitTable::kTimestamps);
  EXPECT_EQ(t.next_expiry(), 500u);
  EXPECT_EQ(t.expire(499), 0u);
  EXPECT_EQ(t.expire(500), 1u);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.next_expiry(), 0u);
}

TEST(TimeWaitTable, EraseInTheMiddleAndAtTheHead) {
  TimeWaitTable t(8, 4);
  for (std::uint32_t n = 1; n <= 5; ++n) {
    t.insert(entry(n, 100 + n));
  }
  t.erase(t.find(tw_key(3)));
  EXPECT_EQ(t.size(), 4u);
  EXPECT_FALSE(has(t, 3));
  t.erase(t.find(tw_key(3)));  // nothing: find gave nullptr
  EXPECT_EQ(t.size(), 4u);
  EXPECT_EQ(t.next_expiry(), 101u);
  t.erase(t.find(tw_key(1)));
  EXPECT_EQ(t.next_expiry(), 102u) << "the head moves to the next live entry";
  EXPECT_EQ(t.expire(103), 1u) << "the erased entry is not counted again";
  EXPECT_EQ(t.next_expiry(), 104u);
  EXPECT_TRUE(has(t, 4));
  EXPECT_TRUE(has(t, 5));
  // Erasing an Entry the caller built itself works by key.
  TimeWaitTable::Entry copy = entry(4, 0);
  t.erase(&copy);
  EXPECT_FALSE(has(t, 4));
  EXPECT_EQ(t.expire(1000), 1u);
  EXPECT_EQ(t.size(), 0u);
}

TEST(TimeWaitTable, InsertOfAPresentKeyReplacesIt) {
  TimeWaitTable t(8, 5);
  t.insert(entry(1, 101));
  t.insert(entry(2, 102));
  TimeWaitTable::Entry again = entry(1, 200);
  again.rcv_nxt = SeqNum(77);
  t.insert(again);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.find(tw_key(1))->rcv_nxt, SeqNum(77));
  EXPECT_EQ(t.next_expiry(), 102u);
  EXPECT_EQ(t.expire(150), 1u);
  EXPECT_TRUE(has(t, 1));
}

TEST(TimeWaitTable, FullTableRecyclesTheOldestLiveEntry) {
  TimeWaitTable t(4, 6);
  for (std::uint32_t n = 1; n <= 4; ++n) {
    t.insert(entry(n, 100 + n));
  }
  EXPECT_EQ(t.recycled(), 0u);
  t.erase(t.find(tw_key(1)));  // the oldest leaves on its own: its slot is free again
  t.insert(entry(5, 105));
  EXPECT_EQ(t.recycled(), 0u);
  EXPECT_EQ(t.size(), 4u);
  t.insert(entry(6, 106));
  EXPECT_EQ(t.recycled(), 1u);
  EXPECT_FALSE(has(t, 2)) << "the oldest live entry made room";
  for (std::uint32_t n = 3; n <= 6; ++n) {
    EXPECT_TRUE(has(t, n)) << n;
  }
  EXPECT_EQ(t.size(), 4u);
  EXPECT_EQ(t.next_expiry(), 103u);
  // A hole in the middle (4 erased) still holds its ring slot until the head passes it, so
  // the next insert recycles the oldest live entry (3).
  t.erase(t.find(tw_key(4)));
  t.insert(entry(7, 107));
  EXPECT_EQ(t.recycled(), 2u);
  EXPECT_FALSE(has(t, 3));
  EXPECT_EQ(t.size(), 3u);
  t.insert(entry(8, 108));  // the head skipped the hole: room without recycling
  EXPECT_EQ(t.recycled(), 2u);
  EXPECT_EQ(t.size(), 4u);
  EXPECT_EQ(t.next_expiry(), 105u);
  EXPECT_EQ(t.expire(1000), 4u);
}

TEST(TimeWaitTable, RecyclingAMillionTimesKeepsTheNewest) {
  TimeWaitTable t(1000, 7);
  for (std::uint32_t n = 0; n < 100'000; ++n) {
    t.insert(entry(n, 5000));
  }
  EXPECT_EQ(t.size(), 1000u);
  EXPECT_EQ(t.recycled(), 99'000u);
  for (std::uint32_t n = 98'000; n < 100'000; ++n) {
    ASSERT_EQ(has(t, n), n >= 99'000) << n;
  }
  EXPECT_EQ(t.expire(5000), 1000u);
}

// Slots wrap around the ring, and group numbers (a byte) wrap past 255, many times over: finds,
// expiry and restarts stay right across both. Ten slots hold at most six live entries and the
// holes restarts leave, so nothing is recycled and a plain model predicts every answer.
TEST(TimeWaitTable, FindAfterTheRingAndGroupNumbersWrap) {
  TimeWaitTable t(10, 8);
  std::deque<std::pair<std::uint32_t, Tick>> model;  // live keys and deadlines, oldest first
  std::uint32_t next = 0;
  Tick now = 1;
  for (int round = 0; round < 3000; ++round) {
    for (int i = 0; i < 2; ++i) {  // two entries per tick, one deadline per tick
      t.insert(entry(next, now + 3));
      model.emplace_back(next++, now + 3);
    }
    if (round % 5 == 0) {
      // A retransmitted FIN for the oldest: it goes to the tail with a new deadline.
      const std::uint32_t n = model.front().first;
      t.restart(t.find(tw_key(n)), now + 3);
      model.pop_front();
      model.emplace_back(n, now + 3);
    }
    ++now;
    std::size_t due = 0;
    while (!model.empty() && tick_before_eq(model.front().second, now)) {
      model.pop_front();
      ++due;
    }
    ASSERT_EQ(t.expire(now), due) << round;
    ASSERT_EQ(t.size(), model.size()) << round;
    ASSERT_EQ(t.next_expiry(), model.empty() ? 0 : model.front().second) << round;
    for (std::uint32_t n = next >= 20 ? next - 20 : 0; n < next; ++n) {
      const TimeWaitTable::Entry* e = t.find(tw_key(n));
      bool live = false;
      for (const auto& [m, deadline] : model) {
        live = live || m == n;
      }
      ASSERT_EQ(e != nullptr, live) << "round " << round << " entry " << n;
      if (e != nullptr) {
        ASSERT_EQ(e->key, tw_key(n));
        ASSERT_EQ(e->snd_nxt, SeqNum(1000 + n));
      }
    }
  }
  EXPECT_EQ(t.recycled(), 0u);
}

// Deadlines 1 tick apart for 2*MSL = 60000 ticks, expire() every tick: the 256 expiry groups
// cannot give every deadline its own, yet no entry leaves before its deadline, and none later
// than 2*MSL / 200 (+1 tick) after it.
TEST(TimeWaitTable, SharedDeadlinesNeverEarlyAndOnlySlightlyLate) {
  constexpr Tick kMsl2 = 60'000;
  TimeWaitTable t(200'000, 9);
  std::deque<std::pair<std::uint32_t, Tick>> model;  // key, own deadline, in insertion order
  std::uint32_t next = 0;
  Tick worst_late = 0;
  for (Tick now = 1; now < 3 * kMsl2; ++now) {
    if (now < 2 * kMsl2) {
      const std::uint32_t n = next++;
      t.insert(entry(n, now + kMsl2));
      model.emplace_back(n, now + kMsl2);
    }
    const std::size_t gone = t.expire(now);
    for (std::size_t i = 0; i < gone; ++i) {
      ASSERT_FALSE(model.empty());
      const auto [n, deadline] = model.front();
      model.pop_front();
      ASSERT_TRUE(tick_before_eq(deadline, now)) << "entry " << n << " left early";
      worst_late = std::max(worst_late, now - deadline);
    }
    if (!model.empty()) {
      ASSERT_FALSE(tick_before_eq(t.next_expiry(), now));
      ASSERT_TRUE(tick_before_eq(model.front().second, t.next_expiry()));
    }
  }
  EXPECT_TRUE(model.empty());
  EXPECT_EQ(t.size(), 0u);
  EXPECT_LE(worst_late, kMsl2 / 200 + 1);
  RecordProperty("worst_late_ticks", std::to_string(worst_late));
}

TEST(TimeWaitTable, AnEarlierDeadlineThanTheTailsIsRaisedToIt) {
  TimeWaitTable t(8, 10);
  t.insert(entry(1, 200));
  t.insert(entry(2, 150));
  EXPECT_EQ(t.find(tw_key(2))->expires, 200u) << "FIFO: nothing leaves before what came first";
  EXPECT_EQ(t.expire(199), 0u);
  EXPECT_EQ(t.expire(200), 2u);
}

// The design target: at most 48 bytes per TIME-WAIT entry all in (ring and index), at a
// million entries; pages not yet written cost nothing.
TEST(TimeWaitTable, AtMost48BytesPerEntryAtAMillion) {
  static_assert(sizeof(TimeWaitTable::Record) == 28);
  constexpr std::uint32_t kN = 1'000'000;
  TimeWaitTable t(kN, 11);
  EXPECT_LT(t.memory_bytes(), 64u * 1024) << "an empty table has written (almost) nothing";
  for (std::uint32_t n = 0; n < kN; ++n) {
    t.insert(entry(n, 60'000 + n / 1000));
  }
  ASSERT_EQ(t.size(), kN);
  EXPECT_EQ(t.recycled(), 0u);
  const double per_entry = static_cast<double>(t.memory_bytes()) / kN;
  const double reserved_per_entry = static_cast<double>(t.reserved_bytes()) / kN;
  EXPECT_LE(per_entry, 48.0);
  EXPECT_LE(reserved_per_entry, 48.0);
  EXPECT_LE(per_entry, 28.0 + 8.0 / 0.85 + 0.1);
  RecordProperty("bytes_per_entry_at_1M", std::to_string(per_entry));
  for (std::uint32_t n = 0; n < kN; n += 9973) {
    ASSERT_TRUE(has(t, n)) << n;
  }
  EXPECT_EQ(t.expire(60'000 + 999), kN);
}

}  // namespace
}  // namespace xtcp
