// Tests for FlowIndex, the key-less Robin Hood index: semantics against FlowTable and
// std::unordered_map under random operations, the fixed capacity (full inserts fail, no power
// of two), displacement at load 0.85, keyed placement, keys read only on hash matches, and
// pages that cost nothing until written.
#include "stack/core/flow_index.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

#include "stack/core/flow_table.h"

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

// The owner's records: value v is the index of its key here. Counts key reads.
struct KeyStore final : FlowKeySource {
  std::vector<FlowKey> keys;
  mutable std::size_t reads = 0;
  FlowKey key_of(std::uint32_t value) const override {
    ++reads;
    return keys.at(value);
  }
  std::uint32_t add(const FlowKey& k) {
    keys.push_back(k);
    return static_cast<std::uint32_t>(keys.size() - 1);
  }
};

TEST(FlowIndex, InsertFindErase) {
  KeyStore s;
  FlowIndex t(s, 100, 0.85, 1);
  const std::uint32_t a = s.add(key(1, 1000));
  const std::uint32_t b = s.add(key(1, 1001));
  const std::uint32_t c = s.add(key(2, 1000));
  EXPECT_EQ(t.size(), 0u);
  EXPECT_FALSE(t.find(key(1, 1000)).has_value());
  EXPECT_TRUE(t.insert(key(1, 1000), a));
  EXPECT_TRUE(t.insert(key(1, 1001), b));
  EXPECT_TRUE(t.insert(key(2, 1000), c));
  EXPECT_FALSE(t.insert(key(1, 1000), c)) << "duplicate key";
  EXPECT_EQ(t.find(key(1, 1000)), a);
  EXPECT_EQ(t.find(key(1, 1001)), b);
  EXPECT_EQ(t.find(key(2, 1000)), c);
  EXPECT_FALSE(t.find(key(1, 1000, 0xC6120002)).has_value()) << "local address is in the key";
  EXPECT_FALSE(t.find(key(1, 1000, 0xC6120001, 80)).has_value()) << "local port is in the key";
  EXPECT_EQ(t.size(), 3u);
  EXPECT_TRUE(t.erase(key(1, 1000)));
  EXPECT_FALSE(t.erase(key(1, 1000)));
  EXPECT_FALSE(t.find(key(1, 1000)).has_value());
  EXPECT_EQ(t.find(key(1, 1001)), b);
  EXPECT_FALSE(t.erase(key(1, 1001), c)) << "erase by key and value: wrong value";
  EXPECT_EQ(t.find(key(1, 1001)), b);
  EXPECT_TRUE(t.erase(key(1, 1001), b));
  EXPECT_FALSE(t.find(key(1, 1001)).has_value());
  EXPECT_EQ(t.size(), 1u);
  t.clear();
  EXPECT_EQ(t.size(), 0u);
  EXPECT_FALSE(t.find(key(2, 1000)).has_value());
  EXPECT_TRUE(t.insert(key(2, 1000), c));
  EXPECT_EQ(t.find(key(2, 1000)), c);
}

TEST(FlowIndex, ValueZeroAndLargestValueAndZeroKey) {
  // Values are stored + 1: 0 is an ordinary value, only 2^32 - 1 cannot be stored.
  struct Fixed final : FlowKeySource {
    FlowKey key_of(std::uint32_t v) const override {
      return v == 0 ? FlowKey{0, 0, 0, 0} : FlowKey{9, 9, 9, 9};
    }
  } src;
  FlowIndex t(src, 4, 0.85, 2);
  EXPECT_TRUE(t.insert(FlowKey{0, 0, 0, 0}, 0));
  EXPECT_TRUE(t.insert(FlowKey{9, 9, 9, 9}, FlowIndex::kMaxValue));
  EXPECT_EQ(t.find(FlowKey{0, 0, 0, 0}), 0u);
  EXPECT_EQ(t.find(FlowKey{9, 9, 9, 9}), FlowIndex::kMaxValue);
}

TEST(FlowIndex, CapacityFollowsTheMaximumNotAPowerOfTwo) {
  KeyStore s;
  FlowIndex m(s, 1'000'000);
  EXPECT_EQ(m.capacity(), 1'176'471u);  // ceil(10^6 / 0.85)
  EXPECT_EQ(m.max_entries(), 1'000'000u);
  FlowIndex dense(s, 900, 0.9);
  EXPECT_EQ(dense.capacity(), 1000u);
  FlowIndex tiny(s, 1);
  EXPECT_GE(tiny.capacity(), 2u) << "one slot always stays empty";
}

TEST(FlowIndex, FullIndexRefusesInsertsUntilSomethingLeaves) {
  KeyStore s;
  FlowIndex t(s, 1000, 0.85, 3);
  for (std::uint32_t i = 0; i < 1000; ++i) {
    ASSERT_TRUE(t.insert(key(i, 7), s.add(key(i, 7))));
  }
  EXPECT_TRUE(t.full());
  const std::size_t cap = t.capacity();
  const std::uint32_t extra = s.add(key(5000, 7));
  EXPECT_FALSE(t.insert(key(5000, 7), extra)) << "no growth: the caller makes room";
  EXPECT_EQ(t.size(), 1000u);
  EXPECT_EQ(t.capacity(), cap);
  EXPECT_FALSE(t.find(key(5000, 7)).has_value());
  ASSERT_TRUE(t.erase(key(17, 7)));
  EXPECT_TRUE(t.insert(key(5000, 7), extra));
  EXPECT_EQ(t.find(key(5000, 7)), extra);
  for (std::uint32_t i = 0; i < 1000; ++i) {
    ASSERT_EQ(t.find(key(i, 7)).has_value(), i != 17) << i;
  }
}

// Random inserts (some beyond the maximum), erases by key and by key and value, and finds;
// every answer checked against std::unordered_map (with the same maximum) and FlowTable.
TEST(FlowIndex, RandomizedAgainstFlowTableAndUnorderedMap) {
  std::mt19937_64 rng(2025);
  KeyStore s;
  // A key universe with fixed values: inserts hit present keys, erases hit present keys.
  for (std::uint32_t r = 0; r < 300'000; ++r) {
    s.add(key(0x64400000 + r / 7, static_cast<std::uint16_t>(r % 7), 0xC6120001 + r % 3, 443));
  }
  constexpr std::size_t kMax = 200'000;
  FlowIndex t(s, kMax, 0.85, 77);
  FlowTable golden(0, 78);
  std::unordered_map<FlowKey, std::uint32_t, KeyHash> model;
  for (int op = 0; op < 1'000'000; ++op) {
    const auto v = static_cast<std::uint32_t>(rng() % s.keys.size());
    const FlowKey k = s.keys[v];
    const std::uint64_t kind = rng() % 20;
    if (kind < 10) {
      const bool expect = model.size() < kMax && model.count(k) == 0;
      if (expect) {
        model.emplace(k, v);
        ASSERT_TRUE(golden.insert(k, v));
      }
      ASSERT_EQ(t.insert(k, v), expect) << op;
    } else if (kind < 14) {
      const bool expect = model.erase(k) == 1;
      ASSERT_EQ(golden.erase(k), expect);
      ASSERT_EQ(t.erase(k), expect) << op;
    } else if (kind < 16) {
      // By key and value, sometimes with a wrong value.
      const std::uint32_t w = (kind == 14) ? v : v ^ 1;
      const auto it = model.find(k);
      const bool expect = it != model.end() && it->second == w;
      if (expect) {
        model.erase(it);
        ASSERT_TRUE(golden.erase(k));
      }
      ASSERT_EQ(t.erase(k, w), expect) << op;
    } else {
      const auto it = model.find(k);
      const auto got = t.find(k);
      ASSERT_EQ(got.has_value(), it != model.end()) << op;
      ASSERT_EQ(got, golden.find(k)) << op;
      if (got) {
        ASSERT_EQ(*got, it->second) << op;
      }
    }
    ASSERT_EQ(t.size(), model.size());
  }
  EXPECT_GT(t.size(), kMax * 9 / 10) << "the run should have spent time near the maximum";
  for (const auto& [k, v] : model) {
    ASSERT_EQ(t.find(k), v);
  }
  std::size_t visited = 0;
  t.for_each([&](const FlowKey& k, std::uint32_t v) {
    ++visited;
    const auto it = model.find(k);
    ASSERT_NE(it, model.end());
    ASSERT_EQ(it->second, v);
  });
  EXPECT_EQ(visited, model.size());
}

// At the maximum load of 0.85, with random and with structured keys (one remote address and
// every port; sequential addresses and one port), Robin Hood keeps the worst displacement
// small; churn at that load (erase one, insert one) does not make it grow.
TEST(FlowIndex, DisplacementBoundedAtLoad085) {
  constexpr std::size_t kMax = 500'000;
  {
    KeyStore s;
    FlowIndex t(s, kMax, 0.85, 5);
    for (std::uint32_t a = 0; a < kMax; ++a) {
      ASSERT_TRUE(t.insert(key(0x0A000000 + a, 40000), s.add(key(0x0A000000 + a, 40000))));
    }
    EXPECT_LE(t.size() * 100, t.capacity() * 85);
    EXPECT_LT(t.max_displacement(), 64u);
    RecordProperty("max_displacement_addresses", std::to_string(t.max_displacement()));
  }
  {
    KeyStore s;
    FlowIndex t(s, 65536, 0.85, 6);
    for (std::uint32_t p = 0; p < 65536; ++p) {
      const FlowKey k = key(0x0A000001, static_cast<std::uint16_t>(p));
      ASSERT_TRUE(t.insert(k, s.add(k)));
    }
    EXPECT_LT(t.max_displacement(), 64u);
    RecordProperty("max_displacement_ports", std::to_string(t.max_displacement()));
  }
  std::mt19937_64 rng(7);
  KeyStore s;
  FlowIndex t(s, kMax, 0.85, 8);
  std::vector<std::uint32_t> live;
  auto fresh = [&] {
    const auto r = static_cast<std::uint32_t>(rng());
    return key(r, static_cast<std::uint16_t>(rng()), 0xC6120001, 80);
  };
  while (live.size() < kMax) {
    const FlowKey k = fresh();
    const std::uint32_t v = s.add(k);
    if (t.insert(k, v)) {
      live.push_back(v);
    }
  }
  const std::size_t before = t.max_displacement();
  EXPECT_LT(before, 64u);
  RecordProperty("max_displacement_random", std::to_string(before));
  for (int i = 0; i < 500'000; ++i) {
    const std::size_t victim = rng() % live.size();
    ASSERT_TRUE(t.erase(s.keys[live[victim]], live[victim]));
    FlowKey k = fresh();
    std::uint32_t v = s.add(k);
    while (!t.insert(k, v)) {  // a rare repeat of a random key
      k = fresh();
      v = s.add(k);
    }
    live[victim] = v;
  }
  EXPECT_EQ(t.size(), kMax);
  EXPECT_LE(t.max_displacement(), before * 2 + 8);
  RecordProperty("max_displacement_after_churn", std::to_string(t.max_displacement()));
  for (const std::uint32_t v : live) {
    ASSERT_EQ(t.find(s.keys[v]), v);
  }
}

TEST(FlowIndex, SeedChangesPlacementNotContents) {
  KeyStore s;
  for (std::uint32_t i = 0; i < 1000; ++i) {
    s.add(key(i, 5));
  }
  auto layout = [&](std::uint64_t seed) {
    FlowIndex t(s, 1000, 0.85, seed);
    for (std::uint32_t i = 0; i < 1000; ++i) {
      t.insert(s.keys[i], i);
    }
    std::vector<std::uint32_t> order;  // values in slot order
    t.for_each([&](const FlowKey& k, std::uint32_t v) {
      EXPECT_EQ(k, s.keys[v]);
      order.push_back(v);
    });
    return order;
  };
  const auto a = layout(100);
  const auto b = layout(200);
  ASSERT_EQ(a.size(), 1000u);
  ASSERT_EQ(b.size(), 1000u);
  EXPECT_EQ(a, layout(100)) << "same seed, same layout";
  EXPECT_NE(a, b) << "different seeds should lay the slots out differently";
}

// Probing, displacement and deletion compare stored hashes: the owner's keys are read only
// when a 32-bit hash matches, so a miss (almost always) reads none and a hit reads one. With
// 10^5 keys, about 10^10 / 2^32 = 2.3 pairs share a hash: a few extra reads, not 10^5.
TEST(FlowIndex, ReadsKeysOnlyOnHashMatches) {
  KeyStore s;
  constexpr std::uint32_t kN = 100'000;
  FlowIndex t(s, kN, 0.85, 9);
  for (std::uint32_t i = 0; i < kN; ++i) {
    ASSERT_TRUE(t.insert(key(i, 9), s.add(key(i, 9))));
  }
  EXPECT_LE(s.reads, 32u) << "inserting absent keys reads (almost) no keys";
  s.reads = 0;
  for (std::uint32_t i = 0; i < kN; ++i) {
    ASSERT_EQ(t.find(key(i, 9)), i);
  }
  EXPECT_LE(s.reads, kN + 32);
  s.reads = 0;
  for (std::uint32_t i = 0; i < kN; ++i) {
    ASSERT_FALSE(t.find(key(i, 10)).has_value());
  }
  EXPECT_LE(s.reads, 32u);
  s.reads = 0;
  for (std::uint32_t i = 0; i < kN; i += 2) {
    ASSERT_TRUE(t.erase(key(i, 9), i));
  }
  EXPECT_EQ(s.reads, 0u) << "erase by key and value reads no key";
}

// Memory: 8-byte slots at load <= 0.85 (9.4 bytes per entry at the maximum), and nothing
// resident for pages never written.
TEST(FlowIndex, MemoryPerEntryAndUntouchedPages) {
  static_assert(sizeof(FlowIndex::Slot) == 8);
  KeyStore s;
  constexpr std::uint32_t kN = 1'000'000;
  FlowIndex t(s, kN, 0.85, 10);
  const std::size_t page = ZeroedPages::page_size();
  EXPECT_LT(t.memory_bytes(), 2 * page) << "an empty index writes no slot page";
  EXPECT_GE(t.reserved_bytes(), t.capacity() * 8);
  for (std::uint32_t i = 0; i < 3; ++i) {
    t.insert(key(i, 1), s.add(key(i, 1)));
  }
  EXPECT_LE(t.memory_bytes(), 2 * page + 3 * page);
  for (std::uint32_t i = 3; i < kN; ++i) {
    t.insert(key(i, 1), s.add(key(i, 1)));
  }
  const double per_entry = static_cast<double>(t.memory_bytes()) / kN;
  EXPECT_LE(per_entry, 8.0 / 0.85 + 0.02);
  EXPECT_LE(static_cast<double>(t.reserved_bytes()) / kN, 8.0 / 0.85 + 0.02);
  RecordProperty("bytes_per_entry_at_1M", std::to_string(per_entry));
  t.clear();
  EXPECT_LT(t.memory_bytes(), 2 * page) << "clear() gives the pages back";
  EXPECT_FALSE(t.find(key(5, 1)).has_value());
}

}  // namespace
}  // namespace xtcp
