// Tests for FlowTable: basic semantics, growth, memory per entry, and a million-operation
// randomized run against std::unordered_map, including heavy churn near the load limit.
#include "stack/core/flow_table.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

namespace xtcp {
namespace {

struct KeyHash {
  std::size_t operator()(const FlowKey& k) const {
    return std::hash<std::uint64_t>()((std::uint64_t{k.local_addr} << 32) ^ k.remote_addr) ^
           (std::size_t{k.local_port} << 16 | k.remote_port) * 0x9E3779B97F4A7C15ull;
  }
};

FlowKey key(std::uint32_t remote, std::uint16_t rport, std::uint32_t local = 0xC6120001,
            std::uint16_t lport = 443) {
  return FlowKey{local, remote, lport, rport};
}

TEST(FlowTable, InsertFindErase) {
  FlowTable t(0, 1);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_FALSE(t.find(key(1, 1)).has_value());
  EXPECT_TRUE(t.insert(key(1, 1000), 5));
  EXPECT_TRUE(t.insert(key(1, 1001), 6));
  EXPECT_TRUE(t.insert(key(2, 1000), 0));
  EXPECT_FALSE(t.insert(key(1, 1000), 9)) << "duplicate key";
  EXPECT_EQ(t.find(key(1, 1000)), 5u);
  EXPECT_EQ(t.find(key(1, 1001)), 6u);
  EXPECT_EQ(t.find(key(2, 1000)), 0u);
  EXPECT_FALSE(t.find(key(1, 1000, 0xC6120002)).has_value()) << "local address is in the key";
  EXPECT_FALSE(t.find(key(1, 1000, 0xC6120001, 80)).has_value()) << "local port is in the key";
  EXPECT_EQ(t.size(), 3u);
  EXPECT_TRUE(t.erase(key(1, 1000)));
  EXPECT_FALSE(t.erase(key(1, 1000)));
  EXPECT_FALSE(t.find(key(1, 1000)).has_value());
  EXPECT_EQ(t.find(key(1, 1001)), 6u);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_TRUE(t.insert(key(1, 1000), 7));
  EXPECT_EQ(t.find(key(1, 1000)), 7u);
  t.clear();
  EXPECT_EQ(t.size(), 0u);
  EXPECT_FALSE(t.find(key(1, 1001)).has_value());
}

TEST(FlowTable, AllZeroKeyAndLargestValueWork) {
  FlowTable t;
  EXPECT_TRUE(t.insert(FlowKey{0, 0, 0, 0}, FlowTable::kNoValue - 1));
  EXPECT_EQ(t.find(FlowKey{0, 0, 0, 0}), FlowTable::kNoValue - 1);
}

TEST(FlowTable, GrowsBeforeLoadFactorPointEight) {
  FlowTable t(0, 2);
  EXPECT_EQ(t.capacity(), 16u);
  std::size_t last_cap = t.capacity();
  int growths = 0;
  for (std::uint32_t i = 0; i < 100'000; ++i) {
    ASSERT_TRUE(t.insert(key(i, static_cast<std::uint16_t>(i * 7)), i));
    ASSERT_LE(t.size() * 5, t.capacity() * 4) << "load factor above 0.8";
    if (t.capacity() != last_cap) {
      EXPECT_EQ(t.capacity(), last_cap * 2);
      last_cap = t.capacity();
      ++growths;
    }
  }
  EXPECT_GE(growths, 13);
  for (std::uint32_t i = 0; i < 100'000; ++i) {
    ASSERT_EQ(t.find(key(i, static_cast<std::uint16_t>(i * 7))), i);
  }
}

TEST(FlowTable, ReserveAvoidsRehash) {
  FlowTable t(0, 3);
  t.reserve(1'000'000);
  const std::size_t cap = t.capacity();
  EXPECT_EQ(cap, std::size_t{1} << 21);  // 1M / 0.8 = 1.25M -> 2^21
  for (std::uint32_t i = 0; i < 1'000'000; ++i) {
    t.insert(key(i, 1), i);
  }
  EXPECT_EQ(t.capacity(), cap);
  FlowTable sized(1'000'000, 3);
  EXPECT_EQ(sized.capacity(), cap);
  // The load limit (floor of 0.8 * capacity) fits without doubling.
  FlowTable exact(12, 3);
  EXPECT_EQ(exact.capacity(), 16u);
}

TEST(FlowTable, MemoryPerEntry) {
  static_assert(sizeof(FlowTable::Slot) == 16);
  // At the densest point (just under 0.8 load) an entry costs 16 / 0.8 = 20 bytes; right after
  // a doubling, 40. Reserved for 10^6 connections: 2^21 slots, 33.5 bytes per entry.
  FlowTable t(0, 4);
  const std::size_t n = (std::size_t{1} << 20) * 4 / 5;
  for (std::uint32_t i = 0; i < n; ++i) {
    t.insert(key(i * 2654435761u, static_cast<std::uint16_t>(i)), i);
  }
  EXPECT_EQ(t.capacity(), std::size_t{1} << 20);
  const double per_entry = static_cast<double>(t.memory_bytes()) / static_cast<double>(t.size());
  EXPECT_LE(per_entry, 16.0 / 0.8 + 0.01);
  RecordProperty("bytes_per_entry_at_0.8", std::to_string(per_entry));
}

TEST(FlowTable, SeedChangesPlacementNotContents) {
  FlowTable a(0, 100);
  FlowTable b(0, 200);
  std::vector<std::pair<FlowKey, std::uint32_t>> seen_a, seen_b;
  for (std::uint32_t i = 0; i < 1000; ++i) {
    a.insert(key(i, 5), i);
    b.insert(key(i, 5), i);
  }
  a.for_each([&](const FlowKey& k, std::uint32_t v) { seen_a.emplace_back(k, v); });
  b.for_each([&](const FlowKey& k, std::uint32_t v) { seen_b.emplace_back(k, v); });
  ASSERT_EQ(seen_a.size(), 1000u);
  ASSERT_EQ(seen_b.size(), 1000u);
  EXPECT_NE(seen_a, seen_b) << "different seeds should lay the slots out differently";
  EXPECT_NE(FlowTable::random_seed(), FlowTable::random_seed());
}

// Structured keys an attacker could send (one remote address, sequential ports; or sequential
// addresses, one port) must still spread: Robin Hood keeps the worst displacement small.
TEST(FlowTable, StructuredKeysSpreadEvenly) {
  FlowTable ports(0, 5);
  for (std::uint32_t p = 0; p < 65536; ++p) {
    ports.insert(key(0x0A000001, static_cast<std::uint16_t>(p)), p);
  }
  EXPECT_LT(ports.max_displacement(), 64u);
  FlowTable addrs(0, 6);
  for (std::uint32_t a = 0; a < 500'000; ++a) {
    addrs.insert(key(0x0A000000 + a, 40000), a);
  }
  EXPECT_LT(addrs.max_displacement(), 64u);
}

// One million mixed operations at up to ~600k live entries, checked against unordered_map;
// then churn at a steady size near the load limit, where tombstones would hurt, and a check
// that probe lengths have not grown.
TEST(FlowTable, RandomizedAgainstUnorderedMap) {
  std::mt19937_64 rng(2024);
  FlowTable t(0, 77);
  std::unordered_map<FlowKey, std::uint32_t, KeyHash> ref;
  // A key universe small enough that inserts hit existing keys and erases hit present keys.
  auto random_key = [&] {
    const std::uint64_t r = rng() % 900'000;
    return key(0x64400000 + static_cast<std::uint32_t>(r / 7), static_cast<std::uint16_t>(r % 7),
               0xC6120001 + static_cast<std::uint32_t>(r % 3), 443);
  };
  for (int op = 0; op < 1'000'000; ++op) {
    const FlowKey k = random_key();
    const std::uint64_t kind = rng() % 10;
    if (kind < 6) {
      const auto v = static_cast<std::uint32_t>(rng() % FlowTable::kNoValue);
      const bool inserted = ref.emplace(k, v).second;
      ASSERT_EQ(t.insert(k, v), inserted) << op;
    } else if (kind < 8) {
      ASSERT_EQ(t.erase(k), ref.erase(k) == 1) << op;
    } else {
      const auto it = ref.find(k);
      const auto got = t.find(k);
      ASSERT_EQ(got.has_value(), it != ref.end()) << op;
      if (got) {
        ASSERT_EQ(*got, it->second) << op;
      }
    }
    ASSERT_EQ(t.size(), ref.size());
  }
  for (const auto& [k, v] : ref) {
    ASSERT_EQ(t.find(k), v);
  }
  std::size_t visited = 0;
  t.for_each([&](const FlowKey& k, std::uint32_t v) {
    ++visited;
    const auto it = ref.find(k);
    ASSERT_NE(it, ref.end());
    ASSERT_EQ(it->second, v);
  });
  EXPECT_EQ(visited, ref.size());

  // Steady-state churn: fill to 0.78 of capacity, then erase one / insert one 1M times.
  FlowTable c(0, 78);
  c.reserve(400'000);
  const std::size_t cap = c.capacity();
  const std::size_t target = cap * 78 / 100;
  std::vector<FlowKey> live;
  std::uint32_t next = 0;
  auto fresh = [&] {
    ++next;
    return key(next * 2654435761u, static_cast<std::uint16_t>(next >> 16), 0xC6120001, 80);
  };
  while (live.size() < target) {
    live.push_back(fresh());
    ASSERT_TRUE(c.insert(live.back(), next));
  }
  const std::size_t displacement_before = c.max_displacement();
  for (int i = 0; i < 1'000'000; ++i) {
    const std::size_t victim = rng() % live.size();
    ASSERT_TRUE(c.erase(live[victim]));
    live[victim] = fresh();
    ASSERT_TRUE(c.insert(live[victim], next));
  }
  EXPECT_EQ(c.capacity(), cap) << "churn at constant size must not grow the table";
  EXPECT_EQ(c.size(), target);
  for (const FlowKey& k : live) {
    ASSERT_TRUE(c.find(k).has_value());
  }
  EXPECT_LE(c.max_displacement(), displacement_before * 2 + 8);
}

}  // namespace
}  // namespace xtcp
