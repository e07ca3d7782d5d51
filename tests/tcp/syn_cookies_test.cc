// SynCookies and IsnGenerator (stack/tcp/isn.h) on their own, with fixed keys and times.
// Cookies (RFC 4987 3.6): accepted for the 64-second period they were made in and the next
// one (never more than 128 s, which TcpLayer::cookies_outstanding relies on), refused for
// another 4-tuple, peer ISN, key or any modified bit; the MSS comes back rounded down to the
// table; the options survive the SYN-ACK's TSval without running ahead of our clock.
// ISNs (RFC 6528): M (4-microsecond clock) + F(4-tuple, secret); timestamp offsets
// (RFC 7323 5.4) fixed per 4-tuple.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "stack/tcp/isn.h"

namespace xtcp {
namespace {

using wire::SeqNum;

constexpr SipKey kKey{0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};
constexpr SipKey kOtherKey{0x0706050403020100ull, 0x0f0e0d0c0b0a0909ull};
constexpr TimeNs kPeriod = seconds(64);
// The start of an arbitrary period (1000: its low 5 bits are 8, not 0).
constexpr TimeNs kT0 = 1000 * kPeriod;

FlowKey flow() { return FlowKey{0x0A000001u, 0xC0A80102u, 80, 40000}; }

// 4-tuples that differ from flow() in one field each, and the reverse direction.
std::vector<FlowKey> neighbours() {
  const FlowKey f = flow();
  std::vector<FlowKey> v;
  FlowKey k = f;
  k.local_addr ^= 1;
  v.push_back(k);
  k = f;
  k.remote_addr ^= 1;
  v.push_back(k);
  k = f;
  k.remote_addr ^= 0x80000000u;
  v.push_back(k);
  k = f;
  k.local_port ^= 1;
  v.push_back(k);
  k = f;
  k.remote_port ^= 1;
  v.push_back(k);
  k = f;
  k.remote_port ^= 0x8000;
  v.push_back(k);
  v.push_back(FlowKey{f.remote_addr, f.local_addr, f.remote_port, f.local_port});
  // Ports swapped between the two words of the hash input.
  v.push_back(FlowKey{f.local_addr, f.remote_addr, f.remote_port, f.local_port});
  return v;
}

// ---- SYN cookies ---------------------------------------------------------------------

TEST(SynCookies, CheckedRightAfterMaking) {
  const SynCookies c(kKey);
  const SeqNum peer_isn(0x12345678u);
  const SeqNum cookie = c.make(flow(), peer_isn, 1460, kT0 + seconds(5));
  const std::optional<std::uint16_t> mss = c.check(flow(), peer_isn, cookie, kT0 + seconds(5));
  ASSERT_TRUE(mss.has_value());
  EXPECT_EQ(*mss, 1460);
  // Stateless: another object with the same key checks it too, and makes the same cookie.
  const SynCookies same(kKey);
  EXPECT_EQ(same.make(flow(), peer_isn, 1460, kT0 + seconds(5)), cookie);
  EXPECT_EQ(same.check(flow(), peer_isn, cookie, kT0 + seconds(6)),
            std::optional<std::uint16_t>(1460));
}

TEST(SynCookies, LifetimeIsTwoPeriods) {
  const SynCookies c(kKey);
  const SeqNum peer_isn(99);
  // Made at the very start of a period: good until the end of the next one.
  const SeqNum early = c.make(flow(), peer_isn, 1460, kT0);
  EXPECT_TRUE(c.check(flow(), peer_isn, early, kT0).has_value());
  EXPECT_TRUE(c.check(flow(), peer_isn, early, kT0 + seconds(63)).has_value());
  EXPECT_TRUE(c.check(flow(), peer_isn, early, kT0 + kPeriod).has_value());
  EXPECT_TRUE(c.check(flow(), peer_isn, early, kT0 + 2 * kPeriod - 1).has_value());
  EXPECT_FALSE(c.check(flow(), peer_isn, early, kT0 + 2 * kPeriod).has_value());
  EXPECT_FALSE(c.check(flow(), peer_isn, early, kT0 + 3 * kPeriod).has_value());
  // Made at the last nanosecond of a period: the same deadline, 64 s and 1 ns later.
  const TimeNs late_at = kT0 + kPeriod - 1;
  const SeqNum late = c.make(flow(), peer_isn, 1460, late_at);
  EXPECT_TRUE(c.check(flow(), peer_isn, late, late_at).has_value());
  EXPECT_TRUE(c.check(flow(), peer_isn, late, late_at + 1).has_value());
  EXPECT_TRUE(c.check(flow(), peer_isn, late, kT0 + 2 * kPeriod - 1).has_value());
  EXPECT_FALSE(c.check(flow(), peer_isn, late, kT0 + 2 * kPeriod).has_value());
  // Not before it was made (a cookie from a later period).
  EXPECT_FALSE(c.check(flow(), peer_isn, early, kT0 - 1).has_value());
  EXPECT_FALSE(c.check(flow(), peer_isn, early, kT0 - kPeriod).has_value());
  // Nor when the 5-bit period in the cookie comes round again.
  EXPECT_FALSE(c.check(flow(), peer_isn, early, kT0 + 32 * kPeriod).has_value());
  EXPECT_FALSE(c.check(flow(), peer_isn, early, kT0 + 33 * kPeriod).has_value());
  EXPECT_FALSE(c.check(flow(), peer_isn, early, kT0 + 32 * kPeriod + seconds(1)).has_value());
}

TEST(SynCookies, AcceptedAtLeast64AndAtMost128Seconds) {
  // What the engine assumes (cookies_outstanding): any cookie younger than 64 s is good, none
  // older than 128 s is.
  const SynCookies c(kKey);
  const std::vector<TimeNs> made_at = {kT0,
                                       kT0 + 1,
                                       kT0 + seconds(10),
                                       kT0 + ms(63'999),
                                       kT0 + kPeriod - 1,
                                       seconds(31 * 64 + 5),
                                       seconds(3)};
  const std::vector<TimeNs> ages = {0,
                                    1,
                                    seconds(1),
                                    seconds(63),
                                    seconds(64) - 1,
                                    seconds(64),
                                    seconds(100),
                                    seconds(127),
                                    seconds(128) - 1,
                                    seconds(128),
                                    seconds(129),
                                    seconds(200),
                                    seconds(64 * 31),
                                    seconds(64 * 32),
                                    seconds(64 * 33) - 1};
  for (const TimeNs t : made_at) {
    for (std::uint32_t i = 0; i < 4; ++i) {
      const SeqNum peer_isn(0x9e3779b9u * (i + 1));
      const SeqNum cookie = c.make(flow(), peer_isn, 1400, t);
      for (const TimeNs age : ages) {
        const bool ok = c.check(flow(), peer_isn, cookie, t + age).has_value();
        const TimeNs periods = (t + age) / kPeriod - t / kPeriod;
        EXPECT_EQ(ok, periods <= 1) << "made at " << t << " ns, checked " << age << " ns later";
        if (age < seconds(64)) {
          EXPECT_TRUE(ok) << "made at " << t << " ns, checked " << age << " ns later";
        }
        if (age >= seconds(128)) {
          EXPECT_FALSE(ok) << "made at " << t << " ns, checked " << age << " ns later";
        }
      }
    }
  }
}

TEST(SynCookies, RefusedForAnotherFourTuple) {
  const SynCookies c(kKey);
  const SeqNum peer_isn(0xfffffff0u);
  const TimeNs t = kT0 + seconds(30);
  const SeqNum cookie = c.make(flow(), peer_isn, 1460, t);
  ASSERT_TRUE(c.check(flow(), peer_isn, cookie, t).has_value());
  for (const FlowKey& other : neighbours()) {
    EXPECT_FALSE(c.check(other, peer_isn, cookie, t).has_value())
        << other.local_addr << ":" << other.local_port << " " << other.remote_addr << ":"
        << other.remote_port;
  }
}

TEST(SynCookies, RefusedForAnotherPeerIsn) {
  const SynCookies c(kKey);
  const SeqNum peer_isn(0x80000000u);
  const TimeNs t = kT0 + seconds(30);
  const SeqNum cookie = c.make(flow(), peer_isn, 1460, t);
  for (const SeqNum other : {peer_isn + 1, peer_isn - 1, SeqNum(0), SeqNum(0x7fffffffu),
                             SeqNum(peer_isn.raw() ^ 0x00010000u)}) {
    EXPECT_FALSE(c.check(flow(), other, cookie, t).has_value()) << other.raw();
  }
}

TEST(SynCookies, RefusedWhenAnyBitIsChanged) {
  const SynCookies c(kKey);
  const SeqNum peer_isn(4242);
  for (const std::uint16_t mss : {536, 1460, 8960}) {
    const TimeNs t = kT0 + seconds(20);
    const SeqNum cookie = c.make(flow(), peer_isn, mss, t);
    for (std::uint32_t bit = 0; bit < 32; ++bit) {
      const SeqNum bad(cookie.raw() ^ (1u << bit));
      // Checked in the same period and in the next one.
      EXPECT_FALSE(c.check(flow(), peer_isn, bad, t).has_value())
          << "mss " << mss << " bit " << bit;
      EXPECT_FALSE(c.check(flow(), peer_isn, bad, t + kPeriod).has_value())
          << "mss " << mss << " bit " << bit;
    }
    EXPECT_FALSE(c.check(flow(), peer_isn, cookie + 1, t).has_value());
    EXPECT_FALSE(c.check(flow(), peer_isn, cookie - 1, t).has_value());
  }
}

TEST(SynCookies, MssRoundedDownToTheTable) {
  const SynCookies c(kKey);
  const SeqNum peer_isn(1);
  const TimeNs t = kT0 + seconds(1);
  auto round_trip = [&](std::uint16_t mss) {
    const std::optional<std::uint16_t> got =
        c.check(flow(), peer_isn, c.make(flow(), peer_isn, mss, t), t);
    EXPECT_TRUE(got.has_value()) << "mss " << mss;
    return got.value_or(0);
  };
  // Common values come back as they are or close below.
  EXPECT_EQ(round_trip(536), 536);
  EXPECT_EQ(round_trip(1460), 1460);  // Ethernet
  EXPECT_EQ(round_trip(1448), 1440);
  EXPECT_EQ(round_trip(1459), 1440);
  EXPECT_EQ(round_trip(1440), 1440);
  EXPECT_EQ(round_trip(1400), 1400);
  EXPECT_EQ(round_trip(8960), 8960);  // jumbo
  EXPECT_EQ(round_trip(9000), 8960);
  EXPECT_EQ(round_trip(65535), 8960);
  // Every MSS from the RFC 9293 default up: one of at most 8 values (3 bits), never above
  // the MSS asked for, never smaller for a larger MSS.
  std::set<std::uint16_t> values;
  std::uint16_t last = 0;
  for (std::uint32_t mss = 536; mss <= 65535; mss += (mss < 10000 ? 1 : 97)) {
    const std::uint16_t got = round_trip(static_cast<std::uint16_t>(mss));
    ASSERT_LE(got, mss);
    ASSERT_GE(got, 536);
    ASSERT_GE(got, last) << "mss " << mss;
    values.insert(got);
    last = got;
  }
  EXPECT_LE(values.size(), 8u);
}

TEST(SynCookies, DifferentKeysGiveDifferentCookies) {
  const SynCookies a(kKey);
  const SynCookies b(kOtherKey);
  const TimeNs t = kT0 + seconds(7);
  std::size_t same = 0;
  for (std::uint32_t i = 0; i < 64; ++i) {
    FlowKey k = flow();
    k.remote_port = static_cast<std::uint16_t>(1024 + i);
    const SeqNum peer_isn(0x01000193u * i);
    const SeqNum ca = a.make(k, peer_isn, 1460, t);
    const SeqNum cb = b.make(k, peer_isn, 1460, t);
    same += ca == cb ? 1 : 0;
    EXPECT_FALSE(b.check(k, peer_isn, ca, t).has_value()) << i;
    EXPECT_FALSE(a.check(k, peer_isn, cb, t).has_value()) << i;
    EXPECT_TRUE(a.check(k, peer_isn, ca, t).has_value()) << i;
  }
  EXPECT_EQ(same, 0u);
}

TEST(SynCookies, CookiesDifferAcrossFlowsAndPeerIsns) {
  const SynCookies c(kKey);
  const TimeNs t = kT0 + seconds(7);
  std::set<std::uint32_t> seen;
  std::size_t made = 0;
  for (const FlowKey& k : neighbours()) {
    for (std::uint32_t i = 0; i < 16; ++i) {
      seen.insert(c.make(k, SeqNum(1000 + i), 1460, t).raw());
      ++made;
    }
  }
  EXPECT_EQ(seen.size(), made);
}

TEST(SynCookies, TimestampOptionsRoundTripForEveryCombination) {
  const std::vector<std::uint32_t> clocks = {0,           1,           5,           31,
                                             32,          63,          64,          65,
                                             1000,        123456789,   0x7fffffffu, 0x80000000u,
                                             0xffffffc0u, 0xffffffe0u, 0xfffffffeu, 0xffffffffu};
  for (const std::uint32_t now : clocks) {
    for (const bool sack : {false, true}) {
      for (const bool has_ws : {false, true}) {
        for (std::uint8_t ws = 0; ws <= 14; ++ws) {
          CookieOptions in;
          in.mss = 1460;
          in.sack = sack;
          in.has_window_scale = has_ws;
          in.window_scale = ws;
          const std::uint32_t ts = SynCookies::encode_ts(now, in);
          const auto ahead = static_cast<std::int32_t>(ts - now);
          // Never ahead of our clock (PAWS at the peer), and not far behind it.
          EXPECT_LE(ahead, 0) << "now " << now;
          EXPECT_GT(ahead, -64) << "now " << now;
          // The peer echoes it in its ACK's TSecr.
          const CookieOptions out = SynCookies::decode_ts(ts, 1300);
          const std::string what = "now " + std::to_string(now) + " sack " + std::to_string(sack) +
                                   " ws " + std::to_string(has_ws) + "/" + std::to_string(ws);
          EXPECT_EQ(out.mss, 1300) << what;
          EXPECT_EQ(out.sack, sack) << what;
          EXPECT_EQ(out.has_window_scale, has_ws) << what;
          if (has_ws) {
            EXPECT_EQ(out.window_scale, ws) << what;
          }
        }
      }
    }
  }
}

TEST(SynCookies, TimestampWithoutOptionBitsMeansNoOptions) {
  // A TSecr that is not one of our cookie TSvals (bit 5 clear): no SACK, no window scale.
  for (const std::uint32_t ecr : {0u, 0x1fu, 0x10u, 0x0fu, 0xffffffc0u, 0x12345600u | 0x1fu}) {
    const CookieOptions o = SynCookies::decode_ts(ecr, 536);
    EXPECT_EQ(o.mss, 536);
    EXPECT_FALSE(o.sack) << ecr;
    EXPECT_FALSE(o.has_window_scale) << ecr;
  }
}

// ---- ISNs and timestamp offsets -------------------------------------------------------

TEST(IsnGenerator, AdvancesWithTheFourMicrosecondClock) {
  const IsnGenerator g(kKey);
  const TimeNs t0 = seconds(12345);
  const SeqNum i0 = g.isn(flow(), t0);
  EXPECT_EQ(g.isn(flow(), t0), i0);  // a function of the 4-tuple and the time only
  EXPECT_EQ(g.isn(flow(), t0 + us(4)) - i0, 1);
  EXPECT_EQ(g.isn(flow(), t0 + ms(1)) - i0, 250);
  EXPECT_EQ(g.isn(flow(), t0 + seconds(1)) - i0, 250'000);
  EXPECT_EQ(g.isn(flow(), t0 + seconds(3600)) - i0, 900'000'000);
  // Monotonic: never backwards, at most one step per 4 us.
  SeqNum prev = i0;
  for (TimeNs d = 1; d < us(40); d += 333) {
    const SeqNum i = g.isn(flow(), t0 + d);
    EXPECT_GE(i - prev, 0) << d;
    EXPECT_LE(i - prev, 1) << d;
    prev = i;
  }
  // Across the 2^32 wrap of M (every 2^32 * 4 us, about 4.8 hours) it keeps counting.
  const TimeNs wrap = static_cast<TimeNs>(1ull << 32) * us(4);
  EXPECT_EQ(g.isn(flow(), wrap + us(40)) - g.isn(flow(), wrap - us(40)), 20);
}

TEST(IsnGenerator, DiffersAcrossFourTuples) {
  const IsnGenerator g(kKey);
  const TimeNs t = seconds(77);
  std::set<std::uint32_t> seen = {g.isn(flow(), t).raw()};
  for (const FlowKey& k : neighbours()) {
    EXPECT_TRUE(seen.insert(g.isn(k, t).raw()).second);
  }
  for (std::uint16_t port = 1024; port < 1024 + 256; ++port) {
    FlowKey k = flow();
    k.remote_port = port;
    if (port != flow().remote_port) {
      EXPECT_TRUE(seen.insert(g.isn(k, t).raw()).second) << port;
    }
  }
  // The per-tuple part is not a small offset: two tuples are far apart at the same time.
  FlowKey k = flow();
  k.remote_port = static_cast<std::uint16_t>(k.remote_port + 1);
  const std::int32_t gap = g.isn(k, t) - g.isn(flow(), t);
  EXPECT_TRUE(gap > 1'000'000 || gap < -1'000'000) << gap;
}

TEST(IsnGenerator, DependsOnTheSecret) {
  const IsnGenerator a(kKey);
  const IsnGenerator b(kOtherKey);
  const TimeNs t = seconds(77);
  EXPECT_NE(a.isn(flow(), t), b.isn(flow(), t));
  EXPECT_NE(a.timestamp_offset(flow()), b.timestamp_offset(flow()));
  for (const FlowKey& k : neighbours()) {
    EXPECT_NE(a.isn(k, t), b.isn(k, t));
  }
}

TEST(IsnGenerator, TimestampOffsetStablePerFourTupleAndDiffersAcross) {
  const IsnGenerator g(kKey);
  const IsnGenerator again(kKey);
  const std::uint32_t off = g.timestamp_offset(flow());
  EXPECT_EQ(g.timestamp_offset(flow()), off);
  EXPECT_EQ(again.timestamp_offset(flow()), off);
  // Not tied to the ISN (which moves with time).
  EXPECT_NE(off, g.isn(flow(), 0).raw());
  std::set<std::uint32_t> seen = {off};
  for (const FlowKey& k : neighbours()) {
    const std::uint32_t o = g.timestamp_offset(k);
    EXPECT_EQ(g.timestamp_offset(k), o);
    EXPECT_TRUE(seen.insert(o).second);
  }
  for (std::uint16_t port = 1024; port < 1024 + 256; ++port) {
    FlowKey k = flow();
    k.remote_port = port;
    if (port != flow().remote_port) {
      EXPECT_TRUE(seen.insert(g.timestamp_offset(k)).second) << port;
    }
  }
}

}  // namespace
}  // namespace xtcp
