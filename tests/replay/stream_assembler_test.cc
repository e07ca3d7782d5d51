// xtcp-replay's StreamAssembler: the server's byte stream put together from segments by
// sequence number, as captured (reordered, retransmitted, overlapping, with holes).
#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tools/replay/capture.h"

namespace xtcp::replay {
namespace {

std::span<const std::byte> bytes_of(const std::string& s) {
  return std::span<const std::byte>(reinterpret_cast<const std::byte*>(s.data()), s.size());
}

std::string text_of(const std::vector<std::byte>& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

constexpr std::uint32_t kBase = 0xfffffff0;  // the stream's first byte; sequence numbers wrap

TEST(StreamAssembler, ReordersAndDropsWhatIsSeenAlready) {
  StreamAssembler s;
  s.set_base(kBase);
  s.add(kBase + 6, bytes_of("world"));
  EXPECT_TRUE(s.gap());
  EXPECT_EQ(s.high(), 11u);
  s.add(kBase + 6, bytes_of("wor"));  // a shorter retransmission of what waits
  s.add(kBase, bytes_of("hello "));
  EXPECT_FALSE(s.gap());
  EXPECT_EQ(text_of(s.bytes()), "hello world");
  s.add(kBase + 3, bytes_of("lo w"));  // all seen already
  s.add(kBase + 9, bytes_of("ld!"));   // partly seen: the new byte is kept
  EXPECT_EQ(text_of(s.bytes()), "hello world!");
  EXPECT_EQ(s.high(), 12u);
}

TEST(StreamAssembler, KeepsTheTailOfASegmentStartingBeforeTheBase) {
  StreamAssembler s;
  s.set_base(kBase);
  s.add(kBase - 3, bytes_of("xxxabc"));
  s.add(kBase - 3, bytes_of("xx"));  // wholly before the first byte
  EXPECT_EQ(text_of(s.bytes()), "abc");
  EXPECT_FALSE(s.gap());
}

TEST(StreamAssembler, LeavesOutWhatLiesPastAHoleNeverFilled) {
  StreamAssembler s;
  s.add(kBase, bytes_of("before the SYN"));  // no base yet: nothing to place it by
  s.set_base(kBase);
  s.add(kBase, bytes_of("abc"));
  s.add(kBase + 5, bytes_of("fgh"));
  s.add(kBase + 4, bytes_of("efghij"));  // overlaps what waits, still past the hole
  EXPECT_EQ(text_of(s.bytes()), "abc");
  EXPECT_TRUE(s.gap());
  EXPECT_EQ(s.high(), 10u);
  s.add(kBase + 3, bytes_of("d"));
  EXPECT_EQ(text_of(s.bytes()), "abcdefghij");
  EXPECT_FALSE(s.gap());
}

// A capture that lost one early server segment holds every later one out of order; with
// each later segment checked against every waiting one this took quadratic time (minutes for
// a capture of this size, hours for a long bulk capture). Also retransmitted many times over.
TEST(StreamAssembler, ManySegmentsPastAHoleTakeLinearWork) {
  constexpr std::uint32_t kSegments = 200000;
  StreamAssembler s;
  s.set_base(kBase);
  for (std::uint32_t i = kSegments; i >= 1; --i) {  // backwards: the worst order to drain
    const std::string one(1, static_cast<char>('a' + i % 26));
    s.add(kBase + i, bytes_of(one));
    if (i % 1000 == 0) {
      s.add(kBase + i, bytes_of(one));
    }
  }
  EXPECT_TRUE(s.gap());
  EXPECT_TRUE(s.bytes().empty());
  s.add(kBase, bytes_of("a"));
  EXPECT_FALSE(s.gap());
  ASSERT_EQ(s.bytes().size(), kSegments + 1);
  for (std::uint32_t i = 1; i <= kSegments; ++i) {
    ASSERT_EQ(static_cast<char>(s.bytes()[i]), static_cast<char>('a' + i % 26)) << i;
  }
}

}  // namespace
}  // namespace xtcp::replay
