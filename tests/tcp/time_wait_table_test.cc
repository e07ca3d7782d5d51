// The compact TIME-WAIT ring: expiry order, restart, erase, and the 2^32 position wrap.
#include <gtest/gtest.h>

#include "stack/tcp/time_wait.h"

namespace xtcp {
namespace {

TimeWaitTable::Entry entry(std::uint16_t port, Tick expires) {
  TimeWaitTable::Entry e{};
  e.key = FlowKey{1, 2, 80, port};
  e.expires = expires;
  return e;
}

TEST(TimeWaitTable, ExpiresInOrderAndRestartMovesToTail) {
  TimeWaitTable t;
  for (std::uint16_t p = 1; p <= 3; ++p) {
    t.insert(entry(p, 100 + p));
  }
  EXPECT_EQ(t.size(), 3u);
  t.restart(t.find(FlowKey{1, 2, 80, 1}), 500);
  EXPECT_EQ(t.next_expiry(), 102u);
  EXPECT_EQ(t.expire(103), 2u);
  EXPECT_EQ(t.size(), 1u);
  ASSERT_NE(t.find(FlowKey{1, 2, 80, 1}), nullptr);
  EXPECT_EQ(t.next_expiry(), 500u);
  EXPECT_EQ(t.expire(500), 1u);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.next_expiry(), 0u);
}

TEST(TimeWaitTable, SurvivesThePositionCounterWrap) {
  // Start just below 2^32 so positions pass 0xFFFFFFFF, the flow index's empty marker.
  TimeWaitTable t(0xFFFFFFF0u);
  for (std::uint16_t p = 1; p <= 200; ++p) {
    t.insert(entry(p, 1000));
  }
  EXPECT_EQ(t.size(), 200u);
  for (std::uint16_t p = 1; p <= 200; ++p) {
    ASSERT_NE(t.find(FlowKey{1, 2, 80, p}), nullptr) << "entry " << p << " lost at the wrap";
    EXPECT_EQ(t.find(FlowKey{1, 2, 80, p})->key.remote_port, p);
  }
  EXPECT_EQ(t.expire(1000), 200u);
  EXPECT_EQ(t.size(), 0u);
}

TEST(TimeWaitTable, EntriesStayAt32Bytes) { EXPECT_EQ(sizeof(TimeWaitTable::Entry), 32u); }

}  // namespace
}  // namespace xtcp
