// OooQueue (stack/tcp/reassembly.h), the bounded out-of-order receive queue, on its own:
// sorted insertion, overlaps (the first copy of a byte is kept), FIN position, the byte and
// segment budgets, pop_contiguous up to the first hole, SACK blocks for our ACKs (merged
// ranges, at most what the option carries, the most recently changed range first, RFC 2018
// section 4), 32-bit wrap-around and memory accounting.
#include "stack/tcp/reassembly.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace xtcp {
namespace {

constexpr std::size_t kNoLimit = std::numeric_limits<std::size_t>::max();

// The byte a sender puts at sequence number s; salt tells copies of the same range apart.
std::byte byte_at(SeqNum s, std::uint8_t salt) {
  return static_cast<std::byte>(static_cast<std::uint8_t>(s.raw() * 7u + (s.raw() >> 8) + salt));
}

std::vector<std::byte> payload(SeqNum seq, std::size_t len, std::uint8_t salt = 0) {
  std::vector<std::byte> v(len);
  for (std::size_t i = 0; i < len; ++i) {
    v[i] = byte_at(seq + static_cast<std::uint32_t>(i), salt);
  }
  return v;
}

// A queue with a fixed receive point and helpers to insert and drain it.
struct Fixture {
  OooQueue q;
  SeqNum origin;  // offsets given to put() are from here
  SeqNum rcv_nxt;
  std::size_t max_bytes = kNoLimit;
  std::size_t max_segments = kNoLimit;

  explicit Fixture(SeqNum start) : origin(start), rcv_nxt(start) {}

  // Inserts len bytes at origin + off, above the current rcv_nxt.
  std::size_t put(std::uint32_t off, std::size_t len, std::uint8_t salt = 0, bool fin = false) {
    const SeqNum seq = origin + off;
    const std::vector<std::byte> data = payload(seq, len, salt);
    return q.insert(rcv_nxt, seq, data, fin, max_bytes, max_segments);
  }

  // Pops what is contiguous at rcv_nxt, the receiver taking at most cap bytes per call.
  struct Popped {
    std::vector<std::byte> bytes;
    std::size_t calls = 0;
    bool fin = false;
  };
  Popped pop(std::size_t cap = kNoLimit) {
    Popped p;
    std::size_t room = cap;
    p.fin = q.pop_contiguous(&rcv_nxt, [&](wire::ByteSpan part) {
      ++p.calls;
      const std::size_t took = std::min(room, part.size());
      p.bytes.insert(p.bytes.end(), part.begin(), part.begin() + static_cast<std::ptrdiff_t>(took));
      room -= took;
      return took;
    });
    return p;
  }

  std::vector<wire::SackBlock> sack() const {
    std::array<wire::SackBlock, wire::kMaxSackBlocks> out{};
    const std::size_t n = q.sack_blocks(&out);
    EXPECT_LE(n, out.size());
    return {out.begin(), out.begin() + static_cast<std::ptrdiff_t>(std::min(n, out.size()))};
  }
};

// Expected bytes of [from, from+len) where each part came from the copy with the given salt.
struct Part {
  std::uint32_t off;
  std::size_t len;
  std::uint8_t salt;
};
std::vector<std::byte> expected(SeqNum base, std::initializer_list<Part> parts) {
  std::vector<std::byte> v;
  for (const Part& p : parts) {
    const std::vector<std::byte> b = payload(base + p.off, p.len, p.salt);
    v.insert(v.end(), b.begin(), b.end());
  }
  return v;
}

bool same_block(const wire::SackBlock& b, SeqNum left, SeqNum right) {
  return b.left == left && b.right == right;
}

::testing::AssertionResult blocks_are(const std::vector<wire::SackBlock>& got,
                                      const std::vector<std::pair<SeqNum, SeqNum>>& want) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << got.size() << " blocks, wanted " << want.size();
  }
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (!same_block(got[i], want[i].first, want[i].second)) {
      return ::testing::AssertionFailure()
             << "block " << i << " is [" << got[i].left.raw() << ", " << got[i].right.raw()
             << "), wanted [" << want[i].first.raw() << ", " << want[i].second.raw() << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

// Every block reported is one of the merged ranges, none twice.
::testing::AssertionResult blocks_within(const std::vector<wire::SackBlock>& got,
                                         const std::vector<std::pair<SeqNum, SeqNum>>& ranges) {
  for (std::size_t i = 0; i < got.size(); ++i) {
    const bool known = std::any_of(ranges.begin(), ranges.end(), [&](const auto& r) {
      return same_block(got[i], r.first, r.second);
    });
    if (!known) {
      return ::testing::AssertionFailure() << "block " << i << " [" << got[i].left.raw() << ", "
                                           << got[i].right.raw() << ") is not a queued range";
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (same_block(got[j], got[i].left, got[i].right)) {
        return ::testing::AssertionFailure() << "block " << i << " repeats block " << j;
      }
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(ReassemblyOooQueue, EmptyQueue) {
  Fixture f(SeqNum(1000));
  EXPECT_TRUE(f.q.empty());
  EXPECT_EQ(f.q.bytes(), 0u);
  EXPECT_TRUE(f.sack().empty());
  const Fixture::Popped p = f.pop();
  EXPECT_EQ(p.calls, 0u);
  EXPECT_FALSE(p.fin);
  EXPECT_EQ(f.rcv_nxt, SeqNum(1000));
}

TEST(ReassemblyOooQueue, InsertAboveHoleIsHeldNotDelivered) {
  Fixture f(SeqNum(1000));
  EXPECT_EQ(f.put(100, 100), 100u);
  EXPECT_EQ(f.put(300, 50), 50u);
  EXPECT_FALSE(f.q.empty());
  EXPECT_EQ(f.q.bytes(), 150u);
  EXPECT_EQ(f.q.front_seq(), SeqNum(1100));
  // rcv_nxt is at the hole: nothing is contiguous.
  const Fixture::Popped p = f.pop();
  EXPECT_EQ(p.calls, 0u);
  EXPECT_FALSE(p.fin);
  EXPECT_EQ(f.rcv_nxt, SeqNum(1000));
  EXPECT_EQ(f.q.bytes(), 150u);
}

TEST(ReassemblyOooQueue, OutOfOrderInsertionsDeliveredSortedOnceHoleFills) {
  const SeqNum base(5000);
  Fixture f(base);
  // Segments 3, 1, 2 (of 100 bytes each) arrive; segment 0 is the hole at rcv_nxt.
  EXPECT_EQ(f.put(300, 100), 100u);
  EXPECT_EQ(f.put(100, 100), 100u);
  EXPECT_EQ(f.put(200, 100), 100u);
  EXPECT_EQ(f.q.bytes(), 300u);
  EXPECT_EQ(f.q.front_seq(), base + 100);
  // Segment 0 is delivered in order by the engine (not through the queue).
  f.rcv_nxt = base + 100;
  const Fixture::Popped p = f.pop();
  EXPECT_EQ(p.bytes, expected(base, {{100, 300, 0}}));
  EXPECT_FALSE(p.fin);
  EXPECT_EQ(f.rcv_nxt, base + 400);
  EXPECT_EQ(f.q.bytes(), 0u);
  EXPECT_TRUE(f.q.empty());
}

TEST(ReassemblyOooQueue, PopStopsAtHole) {
  const SeqNum base(70000);
  Fixture f(base);
  EXPECT_EQ(f.put(100, 100), 100u);
  EXPECT_EQ(f.put(200, 100), 100u);
  EXPECT_EQ(f.put(400, 100), 100u);
  EXPECT_EQ(f.put(600, 10), 10u);
  f.rcv_nxt = base + 100;
  Fixture::Popped p = f.pop();
  EXPECT_EQ(p.bytes, expected(base, {{100, 200, 0}}));
  EXPECT_EQ(f.rcv_nxt, base + 300);
  EXPECT_EQ(f.q.bytes(), 110u);
  EXPECT_EQ(f.q.front_seq(), base + 400);
  // Still a hole at 300: nothing more.
  p = f.pop();
  EXPECT_TRUE(p.bytes.empty());
  EXPECT_EQ(f.rcv_nxt, base + 300);
  // The hole [300, 400) filled by the engine: up to the next hole at 500.
  f.rcv_nxt = base + 400;
  p = f.pop();
  EXPECT_EQ(p.bytes, expected(base, {{400, 100, 0}}));
  EXPECT_EQ(f.rcv_nxt, base + 500);
  EXPECT_EQ(f.q.bytes(), 10u);
  EXPECT_EQ(f.q.front_seq(), base + 600);
}

TEST(ReassemblyOooQueue, PopDeliversFromInsideAPieceWhenRcvNxtMovedIntoIt) {
  // The engine delivers an in-order segment up to front_seq() only, but a piece whose start is
  // below rcv_nxt must still deliver exactly the bytes from rcv_nxt on.
  const SeqNum base(9000);
  Fixture f(base);
  EXPECT_EQ(f.put(100, 100), 100u);
  f.rcv_nxt = base + 150;
  const Fixture::Popped p = f.pop();
  EXPECT_EQ(p.bytes, expected(base, {{150, 50, 0}}));
  EXPECT_EQ(f.rcv_nxt, base + 200);
  EXPECT_EQ(f.q.bytes(), 0u);
}

TEST(ReassemblyOooQueue, ReceiverFullKeepsTheRestQueued) {
  const SeqNum base(1);
  Fixture f(base);
  EXPECT_EQ(f.put(10, 100), 100u);
  EXPECT_EQ(f.put(110, 100, 0, /*fin=*/true), 100u);
  f.rcv_nxt = base + 10;
  // The receiver takes 30 bytes, then 0, then 120, then the rest.
  Fixture::Popped p = f.pop(30);
  EXPECT_EQ(p.bytes, expected(base, {{10, 30, 0}}));
  EXPECT_FALSE(p.fin);
  EXPECT_EQ(f.rcv_nxt, base + 40);
  EXPECT_FALSE(f.q.empty());
  p = f.pop(0);
  EXPECT_TRUE(p.bytes.empty());
  EXPECT_FALSE(p.fin);
  EXPECT_EQ(f.rcv_nxt, base + 40);
  p = f.pop(120);
  EXPECT_EQ(p.bytes, expected(base, {{40, 120, 0}}));
  EXPECT_FALSE(p.fin);
  EXPECT_EQ(f.rcv_nxt, base + 160);
  p = f.pop();
  EXPECT_EQ(p.bytes, expected(base, {{160, 50, 0}}));
  EXPECT_TRUE(p.fin);
  EXPECT_EQ(f.rcv_nxt, base + 210);
  EXPECT_EQ(f.q.bytes(), 0u);
  EXPECT_TRUE(f.q.empty());
}

TEST(ReassemblyOooQueue, OverlapKeepsFirstCopy) {
  const SeqNum base(123456);
  Fixture f(base);
  EXPECT_EQ(f.put(100, 100, /*salt=*/1), 100u);  // [100, 200) copy 1
  EXPECT_EQ(f.put(150, 100, /*salt=*/2), 50u);   // only [200, 250) is new
  EXPECT_EQ(f.put(50, 250, /*salt=*/3), 100u);   // [50, 100) and [250, 300) are new
  EXPECT_EQ(f.put(60, 200, /*salt=*/4), 0u);     // all held already
  EXPECT_EQ(f.put(100, 100, /*salt=*/5), 0u);    // exact duplicate
  EXPECT_EQ(f.q.bytes(), 250u);
  EXPECT_EQ(f.q.front_seq(), base + 50);
  f.rcv_nxt = base + 50;
  const Fixture::Popped p = f.pop();
  EXPECT_EQ(p.bytes, expected(base, {{50, 50, 3}, {100, 100, 1}, {200, 50, 2}, {250, 50, 3}}));
  EXPECT_EQ(f.rcv_nxt, base + 300);
  EXPECT_EQ(f.q.bytes(), 0u);
}

TEST(ReassemblyOooQueue, SegmentCoveringSeveralPiecesFillsOnlyTheGaps) {
  const SeqNum base(40);
  Fixture f(base);
  EXPECT_EQ(f.put(100, 10, 1), 10u);
  EXPECT_EQ(f.put(130, 10, 1), 10u);
  EXPECT_EQ(f.put(160, 10, 1), 10u);
  // [90, 180) covers three pieces and four gaps: 10 + 20 + 20 + 10 new bytes.
  EXPECT_EQ(f.put(90, 90, 2), 60u);
  EXPECT_EQ(f.q.bytes(), 90u);
  EXPECT_TRUE(blocks_are(f.sack(), {{base + 90, base + 180}}));
  f.rcv_nxt = base + 90;
  const Fixture::Popped p = f.pop();
  EXPECT_EQ(p.bytes, expected(base, {{90, 10, 2},
                                     {100, 10, 1},
                                     {110, 20, 2},
                                     {130, 10, 1},
                                     {140, 20, 2},
                                     {160, 10, 1},
                                     {170, 10, 2}}));
}

TEST(ReassemblyOooQueue, BytesBelowRcvNxtAreCut) {
  const SeqNum base(1000);
  Fixture f(base);
  // [900, 1100): only [1000, 1100) is above rcv_nxt.
  const std::vector<std::byte> data = payload(base - 100, 200, 7);
  EXPECT_EQ(f.q.insert(f.rcv_nxt, base - 100, data, false, kNoLimit, kNoLimit), 100u);
  EXPECT_EQ(f.q.bytes(), 100u);
  EXPECT_EQ(f.q.front_seq(), base);
  // Wholly below rcv_nxt, or ending at it: nothing.
  const std::vector<std::byte> old = payload(base - 200, 200, 8);
  EXPECT_EQ(f.q.insert(f.rcv_nxt, base - 200, old, false, kNoLimit, kNoLimit), 0u);
  EXPECT_EQ(f.q.bytes(), 100u);
  const Fixture::Popped p = f.pop();
  EXPECT_EQ(p.bytes, expected(base, {{0, 100, 7}}));
}

TEST(ReassemblyOooQueue, SackBlocksMergeAdjacentAndOverlappingPieces) {
  const SeqNum base(2000);
  Fixture f(base);
  EXPECT_EQ(f.put(100, 100), 100u);
  EXPECT_TRUE(blocks_are(f.sack(), {{base + 100, base + 200}}));
  EXPECT_EQ(f.put(200, 100), 100u);  // adjacent
  EXPECT_TRUE(blocks_are(f.sack(), {{base + 100, base + 300}}));
  EXPECT_EQ(f.put(250, 150), 100u);  // overlapping
  EXPECT_TRUE(blocks_are(f.sack(), {{base + 100, base + 400}}));
  EXPECT_EQ(f.put(50, 60), 50u);  // overlapping on the left
  EXPECT_TRUE(blocks_are(f.sack(), {{base + 50, base + 400}}));
  EXPECT_EQ(f.put(500, 100), 100u);  // separate
  EXPECT_TRUE(blocks_are(f.sack(), {{base + 500, base + 600}, {base + 50, base + 400}}));
  EXPECT_EQ(f.put(400, 100), 100u);  // joins both
  EXPECT_TRUE(blocks_are(f.sack(), {{base + 50, base + 600}}));
  EXPECT_EQ(f.q.bytes(), 550u);
}

TEST(ReassemblyOooQueue, SackBlocksMostRecentRangeFirstAndAtMostFour) {
  const SeqNum base(3000);
  Fixture f(base);
  std::vector<std::pair<SeqNum, SeqNum>> ranges;
  // Five disjoint ranges arriving in a scrambled order: after each, the first block is the
  // range holding the segment just received.
  for (const std::uint32_t k : {2u, 4u, 0u, 3u, 1u}) {
    const std::uint32_t off = 100 + 200 * k;
    EXPECT_EQ(f.put(off, 100), 100u);
    ranges.emplace_back(base + off, base + off + 100);
    const std::vector<wire::SackBlock> b = f.sack();
    EXPECT_EQ(b.size(), std::min<std::size_t>(ranges.size(), wire::kMaxSackBlocks));
    ASSERT_FALSE(b.empty());
    EXPECT_TRUE(same_block(b[0], base + off, base + off + 100)) << "after range " << k;
    EXPECT_TRUE(blocks_within(b, ranges));
  }
  // Growing a range makes it the most recent one again, with its new edges.
  EXPECT_EQ(f.put(950, 100), 50u);  // range 4 is [900, 1000): now [900, 1050)
  std::vector<wire::SackBlock> b = f.sack();
  ASSERT_EQ(b.size(), wire::kMaxSackBlocks);
  EXPECT_TRUE(same_block(b[0], base + 900, base + 1050));
  std::replace(ranges.begin(), ranges.end(), std::make_pair(base + 900, base + 1000),
               std::make_pair(base + 900, base + 1050));
  EXPECT_TRUE(blocks_within(b, ranges));
  // Filling the gap between ranges 0 and 1 merges them; the merged range is first.
  EXPECT_EQ(f.put(200, 100), 100u);
  b = f.sack();
  ASSERT_EQ(b.size(), wire::kMaxSackBlocks);
  EXPECT_TRUE(same_block(b[0], base + 100, base + 400));
  EXPECT_TRUE(blocks_within(b, {{base + 100, base + 400},
                                {base + 500, base + 600},
                                {base + 700, base + 800},
                                {base + 900, base + 1050}}));
  // A duplicate stores nothing: the first block stays the last range that changed.
  EXPECT_EQ(f.put(500, 100), 0u);
  b = f.sack();
  ASSERT_FALSE(b.empty());
  EXPECT_TRUE(same_block(b[0], base + 100, base + 400));
}

TEST(ReassemblyOooQueue, SackBlocksAfterPartialPop) {
  const SeqNum base(4000);
  Fixture f(base);
  EXPECT_EQ(f.put(300, 100), 100u);
  EXPECT_EQ(f.put(100, 100), 100u);  // the latest, then delivered
  f.rcv_nxt = base + 100;
  f.pop();
  EXPECT_EQ(f.rcv_nxt, base + 200);
  // Only what is still held is reported, and nothing below rcv_nxt.
  EXPECT_TRUE(blocks_are(f.sack(), {{base + 300, base + 400}}));
}

TEST(ReassemblyOooQueue, FinBecomesInOrderWithTheLastByte) {
  const SeqNum base(10);
  Fixture f(base);
  EXPECT_EQ(f.put(200, 100, 0, /*fin=*/true), 100u);  // FIN at 300
  EXPECT_EQ(f.put(100, 50), 50u);
  EXPECT_FALSE(f.q.empty());
  // Hole at [0, 100): nothing, no FIN.
  Fixture::Popped p = f.pop();
  EXPECT_FALSE(p.fin);
  EXPECT_EQ(f.rcv_nxt, base);
  // Up to the hole at [150, 200): the FIN is not yet in order.
  f.rcv_nxt = base + 100;
  p = f.pop();
  EXPECT_EQ(p.bytes.size(), 50u);
  EXPECT_FALSE(p.fin);
  EXPECT_FALSE(f.q.empty());
  // The hole filled: the data then the FIN.
  f.rcv_nxt = base + 200;
  p = f.pop();
  EXPECT_EQ(p.bytes, expected(base, {{200, 100, 0}}));
  EXPECT_TRUE(p.fin);
  EXPECT_EQ(f.rcv_nxt, base + 300);  // the FIN's own sequence number is the caller's
  EXPECT_TRUE(f.q.empty());
  // Reported once.
  p = f.pop();
  EXPECT_FALSE(p.fin);
}

TEST(ReassemblyOooQueue, BareFinOutOfOrder) {
  const SeqNum base(77);
  Fixture f(base);
  EXPECT_EQ(f.q.insert(f.rcv_nxt, base + 500, {}, true, kNoLimit, kNoLimit), 0u);
  EXPECT_FALSE(f.q.empty());
  EXPECT_EQ(f.q.bytes(), 0u);
  EXPECT_TRUE(f.sack().empty());
  f.rcv_nxt = base + 499;
  EXPECT_FALSE(f.pop().fin);
  f.rcv_nxt = base + 500;
  EXPECT_TRUE(f.pop().fin);
  EXPECT_TRUE(f.q.empty());
}

TEST(ReassemblyOooQueue, ByteBudget) {
  const SeqNum base(600);
  Fixture f(base);
  f.max_bytes = 1000;
  EXPECT_EQ(f.put(100, 600), 600u);
  EXPECT_EQ(f.q.bytes(), 600u);
  // 500 more would exceed 1000: refused, nothing stored.
  EXPECT_EQ(f.put(800, 500), 0u);
  EXPECT_EQ(f.q.bytes(), 600u);
  EXPECT_TRUE(blocks_are(f.sack(), {{base + 100, base + 700}}));
  // Exactly up to the budget.
  EXPECT_EQ(f.put(800, 400), 400u);
  EXPECT_EQ(f.q.bytes(), 1000u);
  // Full: a single new byte is refused, a duplicate stores nothing either.
  EXPECT_EQ(f.put(2000, 1), 0u);
  EXPECT_EQ(f.put(750, 1), 0u);
  EXPECT_EQ(f.put(100, 600), 0u);
  EXPECT_EQ(f.q.bytes(), 1000u);
  // A segment spanning held bytes and gaps never takes the queue beyond the budget, and the
  // count returned is what bytes() grew by.
  f.max_bytes = 1050;
  const std::size_t stored = f.put(0, 1300);  // gaps [0, 100) [700, 800) [1200, 1300)
  EXPECT_LE(f.q.bytes(), 1050u);
  EXPECT_EQ(f.q.bytes(), 1000u + stored);
  // Draining gives the room back.
  f.rcv_nxt = base + 100;
  const std::size_t held = f.q.bytes();
  const Fixture::Popped p = f.pop();
  EXPECT_EQ(f.q.bytes(), held - p.bytes.size());
  f.max_bytes = 1000;
  const std::size_t before = f.q.bytes();
  EXPECT_EQ(f.put(3000, 100), 100u);
  EXPECT_EQ(f.q.bytes(), before + 100);
}

TEST(ReassemblyOooQueue, SegmentBudget) {
  const SeqNum base(0xdead0000u);
  Fixture f(base);
  f.max_segments = 3;
  EXPECT_EQ(f.put(100, 10), 10u);
  EXPECT_EQ(f.put(200, 10), 10u);
  EXPECT_EQ(f.put(300, 10), 10u);
  // A fourth piece is refused, wherever it goes.
  EXPECT_EQ(f.put(400, 10), 0u);
  EXPECT_EQ(f.put(150, 10), 0u);
  EXPECT_EQ(f.put(110, 10), 0u);  // adjacent still needs a piece of its own
  EXPECT_EQ(f.q.bytes(), 30u);
  EXPECT_TRUE(blocks_within(
      f.sack(), {{base + 100, base + 110}, {base + 200, base + 210}, {base + 300, base + 310}}));
  EXPECT_EQ(f.sack().size(), 3u);
  // Duplicates cost no piece.
  EXPECT_EQ(f.put(200, 10), 0u);
  EXPECT_EQ(f.q.bytes(), 30u);
  // Delivering the first piece frees a slot.
  f.rcv_nxt = base + 100;
  f.pop();
  EXPECT_EQ(f.q.bytes(), 20u);
  EXPECT_EQ(f.put(300, 100), 90u);  // [310, 400): one new piece
  EXPECT_EQ(f.put(500, 10), 0u);
  EXPECT_EQ(f.q.bytes(), 110u);
}

TEST(ReassemblyOooQueue, WrapAroundOfSequenceNumbers) {
  const SeqNum base(0xffffffffu - 999u);  // 2^32 - 1000
  Fixture f(base);
  EXPECT_EQ(f.put(500, 1000, 1), 1000u);  // [2^32-500, 500): across zero
  EXPECT_EQ(f.put(2000, 100, 1), 100u);   // [1000, 1100)
  EXPECT_EQ(f.put(100, 300, 1), 300u);    // [2^32-900, 2^32-600)
  EXPECT_EQ(f.put(900, 400, 2), 0u);      // [2^32-100, 300): held already
  EXPECT_EQ(f.put(1400, 200, 2), 100u);   // [400, 600): only [500, 600) is new
  EXPECT_EQ(f.q.bytes(), 1500u);
  EXPECT_EQ(f.q.front_seq(), base + 100);
  EXPECT_EQ(f.q.front_seq().raw(), 0xffffffffu - 899u);
  // [2^32-500, 500) and [500, 600) form one range, the most recently changed.
  const std::vector<wire::SackBlock> b = f.sack();
  ASSERT_EQ(b.size(), 3u);
  EXPECT_TRUE(same_block(b[0], base + 500, SeqNum(600)));
  EXPECT_TRUE(blocks_within(
      b, {{base + 500, SeqNum(600)}, {SeqNum(1000), SeqNum(1100)}, {base + 100, base + 400}}));
  f.rcv_nxt = base + 100;
  Fixture::Popped p = f.pop();
  EXPECT_EQ(p.bytes, expected(base, {{100, 300, 1}}));
  EXPECT_EQ(f.rcv_nxt, base + 400);
  f.rcv_nxt = base + 500;
  p = f.pop();
  EXPECT_EQ(p.bytes, expected(base, {{500, 1000, 1}, {1500, 100, 2}}));
  EXPECT_EQ(f.rcv_nxt, SeqNum(600));
  EXPECT_EQ(f.q.front_seq(), SeqNum(1000));
  EXPECT_EQ(f.q.bytes(), 100u);
}

TEST(ReassemblyOooQueue, HoleAcrossZero) {
  // rcv_nxt just below 2^32, the only piece just above zero: nothing is contiguous.
  const SeqNum base(0xffffffffu - 9u);
  Fixture f(base);
  EXPECT_EQ(f.put(20, 10, 1), 10u);  // [10, 20)
  EXPECT_EQ(f.q.front_seq(), SeqNum(10));
  Fixture::Popped p = f.pop();
  EXPECT_TRUE(p.bytes.empty());
  EXPECT_EQ(f.rcv_nxt, base);
  EXPECT_EQ(f.q.bytes(), 10u);
  // The bytes from 2^32 - 10 to 10 arrive (here: queued too), then all of it is in order.
  EXPECT_EQ(f.put(0, 25, 2), 20u);
  EXPECT_TRUE(blocks_are(f.sack(), {{base, SeqNum(20)}}));
  p = f.pop();
  EXPECT_EQ(p.bytes, expected(base, {{0, 20, 2}, {20, 10, 1}}));
  EXPECT_EQ(f.rcv_nxt, SeqNum(20));
  EXPECT_TRUE(f.q.empty());
}

TEST(ReassemblyOooQueue, MemoryGrowsAndShrinks) {
  const SeqNum base(0xffffff00u);
  Fixture f(base);
  EXPECT_EQ(f.q.memory_bytes(), 0u);
  std::size_t last = f.q.memory_bytes();
  for (std::uint32_t k = 0; k < 20; ++k) {
    EXPECT_EQ(f.put(100 + 2000 * k, 1000), 1000u);
    EXPECT_GT(f.q.memory_bytes(), last) << "after piece " << k;
    EXPECT_GE(f.q.memory_bytes(), f.q.bytes());
    last = f.q.memory_bytes();
  }
  // Delivering the first 10 pieces frees their bytes.
  for (std::uint32_t k = 0; k < 10; ++k) {
    f.rcv_nxt = base + (100 + 2000 * k);
    f.pop();
  }
  EXPECT_EQ(f.q.bytes(), 10000u);
  EXPECT_LT(f.q.memory_bytes(), last);
  EXPECT_LE(f.q.memory_bytes(), last - 10000u);
  EXPECT_GE(f.q.memory_bytes(), f.q.bytes());
  f.q.clear();
  EXPECT_EQ(f.q.memory_bytes(), 0u);
  EXPECT_EQ(f.q.bytes(), 0u);
}

TEST(ReassemblyOooQueue, ClearForgetsDataAndFin) {
  const SeqNum base(31337);
  Fixture f(base);
  EXPECT_EQ(f.put(100, 100, 0, /*fin=*/true), 100u);
  f.q.clear();
  EXPECT_TRUE(f.q.empty());
  EXPECT_EQ(f.q.bytes(), 0u);
  EXPECT_TRUE(f.sack().empty());
  f.rcv_nxt = base + 200;
  EXPECT_FALSE(f.pop().fin);
  // Usable again.
  EXPECT_EQ(f.put(210, 10), 10u);
  EXPECT_TRUE(blocks_are(f.sack(), {{base + 210, base + 220}}));
}

// Heavy loss with a large window: many more separate ranges than SACK blocks. The newest
// segment is still reported first (RFC 2018 section 4), then the highest ranges.
TEST(ReassemblyOooQueue, SackBlocksWithManyRangesStartWithTheNewest) {
  Fixture f(SeqNum(1000));
  for (std::uint32_t i = 0; i < 70; ++i) {
    ASSERT_EQ(f.put(10 + 40 * i, 10), 10u);  // 70 ranges with holes between them
  }
  const auto blocks = f.sack();
  ASSERT_EQ(blocks.size(), 4u);
  EXPECT_EQ(blocks[0].left, f.origin + (10 + 40 * 69)) << "the newest range";
  EXPECT_EQ(blocks[1].left, f.origin + (10 + 40 * 68)) << "then the highest others";
  EXPECT_EQ(blocks[2].left, f.origin + (10 + 40 * 67));
  EXPECT_EQ(blocks[3].left, f.origin + (10 + 40 * 66));
  // A segment in the middle is the newest now.
  ASSERT_EQ(f.put(10 + 40 * 30 + 10, 5), 5u);
  const auto again = f.sack();
  EXPECT_EQ(again[0].left, f.origin + (10 + 40 * 30));
  EXPECT_EQ(again[0].right, f.origin + (10 + 40 * 30 + 15)) << "merged with its neighbour";
  EXPECT_EQ(again[1].left, f.origin + (10 + 40 * 69));
}

}  // namespace
}  // namespace xtcp
