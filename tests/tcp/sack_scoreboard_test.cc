// SackScoreboard (stack/tcp/reassembly.h), the sender's record of SACKed ranges, on its own:
// merging on add(), trim() at a new cumulative ACK, sacked_bytes(), highest(), next_hole()
// over several holes (as retransmit_hole walks it), clear(), the bound on ranges, and 32-bit
// wrap-around.
#include <gtest/gtest.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "stack/tcp/reassembly.h"

namespace xtcp {
namespace {

using Range = std::pair<std::uint32_t, std::uint32_t>;  // raw [left, right)

// The holes between from and limit, walked the way the engine does: from the start of each
// hole to its end, then on from there.
std::vector<Range> holes(const SackScoreboard& sb, SeqNum from, SeqNum limit) {
  std::vector<Range> out;
  for (int guard = 0; guard < 64; ++guard) {
    SeqNum end;
    const SeqNum hole = sb.next_hole(from, limit, &end);
    if (!(hole < end)) {
      break;
    }
    out.emplace_back(hole.raw(), end.raw());
    from = end;
  }
  return out;
}

Range hole_at(const SackScoreboard& sb, SeqNum from, SeqNum limit) {
  SeqNum end;
  const SeqNum hole = sb.next_hole(from, limit, &end);
  return {hole.raw(), end.raw()};
}

TEST(SackScoreboard, EmptyBoard) {
  SackScoreboard sb;
  EXPECT_TRUE(sb.empty());
  EXPECT_EQ(sb.sacked_bytes(), 0u);
  EXPECT_EQ(hole_at(sb, SeqNum(100), SeqNum(500)), Range(100, 500));
}

TEST(SackScoreboard, EmptyOrReversedRangeIgnored) {
  SackScoreboard sb;
  sb.add(SeqNum(100), SeqNum(100));
  sb.add(SeqNum(200), SeqNum(100));
  EXPECT_TRUE(sb.empty());
  EXPECT_EQ(sb.sacked_bytes(), 0u);
}

TEST(SackScoreboard, AddKeepsRangesSortedAndMerged) {
  SackScoreboard sb;
  sb.add(SeqNum(500), SeqNum(600));
  sb.add(SeqNum(100), SeqNum(200));
  sb.add(SeqNum(300), SeqNum(400));
  EXPECT_FALSE(sb.empty());
  EXPECT_EQ(sb.sacked_bytes(), 300u);
  EXPECT_EQ(sb.highest(), SeqNum(600));
  EXPECT_EQ(holes(sb, SeqNum(0), SeqNum(700)),
            (std::vector<Range>{{0, 100}, {200, 300}, {400, 500}, {600, 700}}));
  // Adjacent on both sides: [200, 300) joins [100, 200) and [300, 400).
  sb.add(SeqNum(200), SeqNum(300));
  EXPECT_EQ(sb.sacked_bytes(), 400u);
  EXPECT_EQ(holes(sb, SeqNum(0), SeqNum(700)),
            (std::vector<Range>{{0, 100}, {400, 500}, {600, 700}}));
  // Inside what is SACKed already: no change.
  sb.add(SeqNum(150), SeqNum(350));
  sb.add(SeqNum(500), SeqNum(600));
  EXPECT_EQ(sb.sacked_bytes(), 400u);
  // Overlapping on the left of the first range and on the right of the last.
  sb.add(SeqNum(50), SeqNum(120));
  sb.add(SeqNum(550), SeqNum(650));
  EXPECT_EQ(sb.sacked_bytes(), 400u + 50u + 50u);
  EXPECT_EQ(sb.highest(), SeqNum(650));
  EXPECT_EQ(holes(sb, SeqNum(0), SeqNum(700)),
            (std::vector<Range>{{0, 50}, {400, 500}, {650, 700}}));
}

TEST(SackScoreboard, AddSpanningSeveralRangesMergesThemAll) {
  SackScoreboard sb;
  for (std::uint32_t k = 0; k < 6; ++k) {
    sb.add(SeqNum(1000 + 200 * k), SeqNum(1100 + 200 * k));  // [1000,1100) ... [2000,2100)
  }
  EXPECT_EQ(sb.sacked_bytes(), 600u);
  // [1050, 1650) covers the end of range 0, ranges 1 and 2, and the start of range 3.
  sb.add(SeqNum(1050), SeqNum(1650));
  EXPECT_EQ(sb.sacked_bytes(), 700u + 100u + 100u);  // [1000,1700) [1800,1900) [2000,2100)
  EXPECT_EQ(holes(sb, SeqNum(900), SeqNum(2100)),
            (std::vector<Range>{{900, 1000}, {1700, 1800}, {1900, 2000}}));
  EXPECT_EQ(sb.highest(), SeqNum(2100));
  // Covering everything.
  sb.add(SeqNum(990), SeqNum(2110));
  EXPECT_EQ(sb.sacked_bytes(), 1120u);
  EXPECT_EQ(holes(sb, SeqNum(900), SeqNum(2200)), (std::vector<Range>{{900, 990}, {2110, 2200}}));
}

TEST(SackScoreboard, TrimAtNewCumulativeAck) {
  SackScoreboard sb;
  sb.add(SeqNum(100), SeqNum(200));
  sb.add(SeqNum(300), SeqNum(400));
  sb.add(SeqNum(500), SeqNum(600));
  sb.trim(SeqNum(50));  // below everything: no change
  EXPECT_EQ(sb.sacked_bytes(), 300u);
  sb.trim(SeqNum(150));  // inside the first range: its left edge moves up
  EXPECT_EQ(sb.sacked_bytes(), 250u);
  EXPECT_EQ(holes(sb, SeqNum(150), SeqNum(600)), (std::vector<Range>{{200, 300}, {400, 500}}));
  sb.trim(SeqNum(200));  // exactly at its right edge: gone
  EXPECT_EQ(sb.sacked_bytes(), 200u);
  sb.trim(SeqNum(350));  // drops nothing whole, cuts the (new) first range
  EXPECT_EQ(sb.sacked_bytes(), 150u);
  EXPECT_EQ(hole_at(sb, SeqNum(350), SeqNum(600)), Range(400, 500));
  EXPECT_EQ(sb.highest(), SeqNum(600));
  sb.trim(SeqNum(450));  // in a hole: drops [350, 400)
  EXPECT_EQ(sb.sacked_bytes(), 100u);
  EXPECT_EQ(hole_at(sb, SeqNum(450), SeqNum(600)), Range(450, 500));
  sb.trim(SeqNum(600));
  EXPECT_TRUE(sb.empty());
  EXPECT_EQ(sb.sacked_bytes(), 0u);
}

TEST(SackScoreboard, TrimAcrossSeveralRangesAtOnce) {
  SackScoreboard sb;
  sb.add(SeqNum(100), SeqNum(200));
  sb.add(SeqNum(300), SeqNum(400));
  sb.add(SeqNum(500), SeqNum(600));
  sb.add(SeqNum(700), SeqNum(800));
  sb.trim(SeqNum(550));
  EXPECT_EQ(sb.sacked_bytes(), 150u);
  EXPECT_EQ(holes(sb, SeqNum(550), SeqNum(900)), (std::vector<Range>{{600, 700}, {800, 900}}));
  EXPECT_EQ(sb.highest(), SeqNum(800));
  // Adding after a trim still merges correctly.
  sb.add(SeqNum(600), SeqNum(700));
  EXPECT_EQ(sb.sacked_bytes(), 250u);
  EXPECT_EQ(holes(sb, SeqNum(550), SeqNum(900)), (std::vector<Range>{{800, 900}}));
}

TEST(SackScoreboard, NextHoleExactRanges) {
  // snd_una 1000; SACKed [1100,1200) [1300,1500) [1600,1700).
  SackScoreboard sb;
  sb.add(SeqNum(1300), SeqNum(1500));
  sb.add(SeqNum(1600), SeqNum(1700));
  sb.add(SeqNum(1100), SeqNum(1200));
  const SeqNum limit = sb.highest();
  EXPECT_EQ(limit, SeqNum(1700));
  EXPECT_EQ(sb.sacked_bytes(), 400u);
  EXPECT_EQ(hole_at(sb, SeqNum(1000), limit), Range(1000, 1100));
  EXPECT_EQ(hole_at(sb, SeqNum(1050), limit), Range(1050, 1100));
  EXPECT_EQ(hole_at(sb, SeqNum(1100), limit), Range(1200, 1300));  // at a SACKed range's start
  EXPECT_EQ(hole_at(sb, SeqNum(1150), limit), Range(1200, 1300));  // inside one
  EXPECT_EQ(hole_at(sb, SeqNum(1199), limit), Range(1200, 1300));
  EXPECT_EQ(hole_at(sb, SeqNum(1200), limit), Range(1200, 1300));  // at a hole's start
  EXPECT_EQ(hole_at(sb, SeqNum(1250), limit), Range(1250, 1300));
  EXPECT_EQ(hole_at(sb, SeqNum(1300), limit), Range(1500, 1600));
  EXPECT_EQ(hole_at(sb, SeqNum(1550), limit), Range(1550, 1600));
  // Nothing left below the limit: the "hole" is empty.
  EXPECT_EQ(hole_at(sb, SeqNum(1600), limit), Range(1700, 1700));
  // The limit cuts a hole short (the engine's limit is min(recover, highest)).
  EXPECT_EQ(hole_at(sb, SeqNum(1000), SeqNum(1040)), Range(1000, 1040));
  EXPECT_EQ(hole_at(sb, SeqNum(1200), SeqNum(1250)), Range(1200, 1250));
  // Beyond the highest SACKed byte the hole runs to the limit.
  EXPECT_EQ(hole_at(sb, SeqNum(1700), SeqNum(2000)), Range(1700, 2000));
  EXPECT_EQ(holes(sb, SeqNum(1000), limit),
            (std::vector<Range>{{1000, 1100}, {1200, 1300}, {1500, 1600}}));
}

TEST(SackScoreboard, Clear) {
  SackScoreboard sb;
  sb.add(SeqNum(100), SeqNum(200));
  sb.add(SeqNum(300), SeqNum(400));
  sb.clear();
  EXPECT_TRUE(sb.empty());
  EXPECT_EQ(sb.sacked_bytes(), 0u);
  EXPECT_EQ(hole_at(sb, SeqNum(50), SeqNum(500)), Range(50, 500));
  // Usable again, without the old ranges.
  sb.add(SeqNum(250), SeqNum(260));
  EXPECT_EQ(sb.sacked_bytes(), 10u);
  EXPECT_EQ(sb.highest(), SeqNum(260));
  EXPECT_EQ(holes(sb, SeqNum(50), SeqNum(500)), (std::vector<Range>{{50, 250}, {260, 500}}));
}

TEST(SackScoreboard, BoundedNumberOfRanges) {
  SackScoreboard sb;
  const std::uint32_t n = SackScoreboard::kMaxRanges;
  for (std::uint32_t k = 0; k < n + 4; ++k) {
    sb.add(SeqNum(1000 + 100 * k), SeqNum(1010 + 100 * k));
  }
  // The lowest kMaxRanges are kept (the highest are the least useful).
  EXPECT_EQ(sb.sacked_bytes(), 10u * n);
  EXPECT_EQ(sb.highest(), SeqNum(1010 + 100 * (n - 1)));
  // A new range below them all takes the place of the highest.
  sb.add(SeqNum(500), SeqNum(510));
  EXPECT_EQ(sb.sacked_bytes(), 10u * n);
  EXPECT_EQ(sb.highest(), SeqNum(1010 + 100 * (n - 2)));
  EXPECT_EQ(hole_at(sb, SeqNum(0), sb.highest()), Range(0, 500));
  // Merging still works when full and frees a slot.
  sb.add(SeqNum(1010), SeqNum(1100));
  EXPECT_EQ(sb.sacked_bytes(), 10u * n + 90u);
  sb.add(SeqNum(1000 + 100 * (n - 1)), SeqNum(1010 + 100 * (n - 1)));
  EXPECT_EQ(sb.highest(), SeqNum(1010 + 100 * (n - 1)));
  EXPECT_EQ(sb.sacked_bytes(), 10u * n + 100u);
}

TEST(SackScoreboard, WrapAroundOfSequenceNumbers) {
  const SeqNum base(0xffffffffu - 999u);  // snd_una = 2^32 - 1000
  SackScoreboard sb;
  sb.add(base + 1700, base + 1800);  // [700, 800)
  sb.add(base + 500, base + 1500);   // [2^32-500, 500): across zero
  sb.add(base + 100, base + 200);    // [2^32-900, 2^32-800)
  EXPECT_EQ(sb.sacked_bytes(), 1200u);
  EXPECT_EQ(sb.highest(), SeqNum(800));
  EXPECT_EQ(holes(sb, base, sb.highest()),
            (std::vector<Range>{
                {base.raw(), base.raw() + 100}, {base.raw() + 200, base.raw() + 500}, {500, 700}}));
  // Merging across zero.
  sb.add(base + 150, base + 600);
  EXPECT_EQ(sb.sacked_bytes(), 1500u);
  EXPECT_EQ(holes(sb, base, sb.highest()),
            (std::vector<Range>{{base.raw(), base.raw() + 100}, {500, 700}}));
  // A cumulative ACK past zero.
  sb.trim(SeqNum(100));
  EXPECT_EQ(sb.sacked_bytes(), 400u + 100u);
  EXPECT_EQ(holes(sb, SeqNum(100), sb.highest()), (std::vector<Range>{{500, 700}}));
  EXPECT_EQ(sb.highest(), SeqNum(800));
}

}  // namespace
}  // namespace xtcp
