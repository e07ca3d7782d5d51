// The load generator's latency histogram and its schedule of client actions.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "tools/loadgen/histogram.h"
#include "tools/loadgen/schedule.h"

namespace xtcp::loadgen {
namespace {

TEST(LoadgenHistogram, EveryValueWithinOnePercentOfItsBucket) {
  for (const std::uint64_t v : std::initializer_list<std::uint64_t>{0, 1, 127, 128, 129, 255, 256, 1000, 123456, 999999937,
                          Histogram::kMax}) {
    const std::uint32_t b = Histogram::bucket_of(v);
    const std::uint64_t top = Histogram::bucket_top(b);
    EXPECT_GE(top, v) << v;
    EXPECT_LE(static_cast<double>(top - v), static_cast<double>(v) / 64.0 + 1.0) << v;
    if (b > 0) {
      EXPECT_LT(Histogram::bucket_top(b - 1), v) << "buckets are contiguous at " << v;
    }
  }
}

TEST(LoadgenHistogram, PercentilesOfAKnownDistribution) {
  Histogram h;
  EXPECT_EQ(h.percentile(50), 0u);
  for (std::uint64_t v = 1; v <= 10'000; ++v) {
    h.record(v);
  }
  EXPECT_EQ(h.count(), 10'000u);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_EQ(h.max(), 10'000u);
  EXPECT_NEAR(h.mean(), 5000.5, 1e-9);
  EXPECT_NEAR(static_cast<double>(h.percentile(50)), 5000, 5000 / 64.0);
  EXPECT_NEAR(static_cast<double>(h.percentile(99)), 9900, 9900 / 64.0);
  EXPECT_NEAR(static_cast<double>(h.percentile(99.9)), 9990, 9990 / 64.0);
  EXPECT_EQ(h.percentile(100), 10'000u);
  Histogram other;
  other.record(1'000'000);
  h.merge(other);
  EXPECT_EQ(h.max(), 1'000'000u);
  EXPECT_EQ(h.count(), 10'001u);
}

TEST(LoadgenSchedule, RunsItemsWhenDueAndInOrderOfTime) {
  Schedule s(seconds(1));
  std::vector<std::uint32_t> ran;
  s.add(3, 0, seconds(1) + ms(30));
  s.add(1, 0, seconds(1) + ms(10));
  s.add(2, 0, seconds(1) + ms(20));
  s.add(9, 0, seconds(1) + seconds(100));  // beyond one turn of the ring
  EXPECT_EQ(s.next_due(), seconds(1) + ms(10));
  s.run_due(seconds(1) + ms(15), [&](std::uint32_t i, std::uint32_t) { ran.push_back(i); });
  EXPECT_EQ(ran, (std::vector<std::uint32_t>{1}));
  s.run_due(seconds(1) + ms(40), [&](std::uint32_t i, std::uint32_t) { ran.push_back(i); });
  EXPECT_EQ(ran, (std::vector<std::uint32_t>{1, 2, 3}));
  s.run_due(seconds(1) + seconds(66), [&](std::uint32_t i, std::uint32_t) { ran.push_back(i); });
  EXPECT_EQ(ran.size(), 3u) << "the far item waits for its round of the ring";
  s.run_due(seconds(1) + seconds(100), [&](std::uint32_t i, std::uint32_t) { ran.push_back(i); });
  EXPECT_EQ(ran.back(), 9u);
  EXPECT_EQ(s.size(), 0u);
  EXPECT_EQ(s.next_due(), kNever);
}

TEST(LoadgenSchedule, ItemsAddedForNowRunOnTheNextTurn) {
  Schedule s(0);
  int runs = 0;
  s.add(1, 0, ms(5));
  s.run_due(ms(5), [&](std::uint32_t, std::uint32_t) {
    ++runs;
    s.add(2, 0, ms(5));
  });
  EXPECT_EQ(runs, 1);
  s.run_due(ms(5), [&](std::uint32_t i, std::uint32_t) { runs += static_cast<int>(i); });
  EXPECT_EQ(runs, 3);
}

}  // namespace
}  // namespace xtcp::loadgen
