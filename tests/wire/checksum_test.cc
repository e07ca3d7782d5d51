// Internet checksum tests: RFC 1071 and RFC 1624 worked examples, a captured header, odd
// lengths against a byte-pair reference, split adds, and incremental updates vs recompute.
#include "stack/wire/checksum.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <random>
#include <vector>

namespace xtcp::wire {
namespace {

std::vector<std::byte> bytes_of(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int b : v) {
    out.push_back(static_cast<std::byte>(b));
  }
  return out;
}

std::vector<std::byte> random_bytes(std::mt19937& rng, std::size_t n) {
  std::vector<std::byte> out(n);
  for (auto& b : out) {
    b = static_cast<std::byte>(rng() & 0xff);
  }
  return out;
}

// The textbook definition, one byte pair at a time with a 32-bit end-around carry, written
// independently of Checksum's 64-bit, 8-bytes-per-step loop.
std::uint16_t reference_checksum(const std::vector<std::byte>& data) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i < data.size(); i += 2) {
    std::uint32_t word = static_cast<std::uint32_t>(data[i]) << 8;
    if (i + 1 < data.size()) {
      word |= static_cast<std::uint32_t>(data[i + 1]);
    }
    sum += word;
    sum = (sum & 0xffff) + (sum >> 16);
  }
  return static_cast<std::uint16_t>(~sum & 0xffff);
}

TEST(Checksum, Rfc1071Example) {
  // RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2 (after the carries),
  // so the checksum is its complement 220d.
  const auto data = bytes_of({0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7});
  Checksum c;
  c.add(data);
  EXPECT_EQ(c.folded(), 0xddf2);
  EXPECT_EQ(c.finish(), 0x220d);
  EXPECT_EQ(internet_checksum(data), 0x220d);
}

TEST(Checksum, WellKnownIpv4HeaderExample) {
  // The widely reproduced example header (192.168.0.1 -> 192.168.0.199, UDP): b861.
  auto header = bytes_of({0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                          0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7});
  EXPECT_EQ(internet_checksum(header), 0xb861);
  header[10] = std::byte{0xb8};
  header[11] = std::byte{0x61};
  Checksum c;
  c.add(header);
  EXPECT_EQ(c.folded(), 0xffff) << "a header with a correct checksum sums to all ones";
  EXPECT_EQ(internet_checksum(header), 0);
}

TEST(Checksum, CapturedLinuxPingHeader) {
  // Linux 6.x echo request over lo, checksum ab88 as the kernel computed it.
  const auto header = bytes_of({0x45, 0x00, 0x00, 0x4c, 0x91, 0x26, 0x40, 0x00, 0x40, 0x01,
                                0xab, 0x88, 0x7f, 0x00, 0x00, 0x01, 0x7f, 0x00, 0x00, 0x01});
  EXPECT_EQ(internet_checksum(header), 0);
  auto zeroed = header;
  zeroed[10] = zeroed[11] = std::byte{0};
  EXPECT_EQ(internet_checksum(zeroed), 0xab88);
}

TEST(Checksum, EmptyAndAllZero) {
  EXPECT_EQ(internet_checksum({}), 0xffff);
  const std::vector<std::byte> zeros(37);
  EXPECT_EQ(internet_checksum(zeros), 0xffff);
}

TEST(Checksum, OddAndEvenLengthsMatchReference) {
  std::mt19937 rng(1071);
  for (std::size_t n = 0; n <= 257; ++n) {
    const auto data = random_bytes(rng, n);
    EXPECT_EQ(internet_checksum(data), reference_checksum(data)) << "length " << n;
  }
  // All-ones data drives every carry path.
  for (std::size_t n = 0; n <= 64; ++n) {
    const std::vector<std::byte> ones(n, std::byte{0xff});
    EXPECT_EQ(internet_checksum(ones), reference_checksum(ones)) << "length " << n;
  }
}

TEST(Checksum, LargeBufferDoesNotLoseCarries) {
  const std::vector<std::byte> ones(1 << 20, std::byte{0xff});
  EXPECT_EQ(internet_checksum(ones), reference_checksum(ones));
}

TEST(Checksum, SplitAddsAtEveryBoundaryEqualOneAdd) {
  std::mt19937 rng(791);
  for (std::size_t n : {1u, 2u, 3u, 7u, 8u, 9u, 16u, 31u, 64u}) {
    const auto data = random_bytes(rng, n);
    const std::uint16_t whole = internet_checksum(data);
    const ByteSpan all(data);
    for (std::size_t i = 0; i <= n; ++i) {
      for (std::size_t j = i; j <= n; ++j) {
        Checksum c;
        c.add(all.subspan(0, i));
        c.add(all.subspan(i, j - i));
        c.add(all.subspan(j));
        ASSERT_EQ(c.finish(), whole) << "n=" << n << " split at " << i << "," << j;
      }
    }
  }
}

TEST(Checksum, ByteAtATimeEqualsOneAdd) {
  std::mt19937 rng(1624);
  const auto data = random_bytes(rng, 101);
  Checksum c;
  for (const std::byte& b : data) {
    c.add(ByteSpan(&b, 1));
  }
  EXPECT_EQ(c.finish(), internet_checksum(data));
}

TEST(Checksum, WordAddsAfterOddByteCountKeepParity) {
  // add_u16 / add_u32 after an odd-length add must act as if the bytes were appended.
  std::mt19937 rng(9293);
  for (std::size_t prefix = 0; prefix < 6; ++prefix) {
    auto data = random_bytes(rng, prefix);
    Checksum c;
    c.add(data);
    c.add_u16(0xbeef);
    c.add_u32(0x01020304);
    for (int b : {0xbe, 0xef, 0x01, 0x02, 0x03, 0x04}) {
      data.push_back(static_cast<std::byte>(b));
    }
    EXPECT_EQ(c.finish(), reference_checksum(data)) << "prefix " << prefix;
  }
}

TEST(Checksum, PseudoHeaderEqualsBytes) {
  // RFC 9293 3.1: src, dst, zero, protocol, TCP length.
  const auto pseudo = bytes_of({198, 18, 0, 1, 198, 18, 0, 2, 0, 6, 0x05, 0xdc});
  Checksum c = pseudo_header_sum(0xc6120001, 0xc6120002, 6, 1500);
  EXPECT_EQ(c.finish(), internet_checksum(pseudo));
  // Continuing with segment bytes equals checksumming the concatenation.
  std::mt19937 rng(6);
  const auto seg = random_bytes(rng, 41);
  c.add(seg);
  auto all = pseudo;
  all.insert(all.end(), seg.begin(), seg.end());
  EXPECT_EQ(c.finish(), reference_checksum(all));
}

TEST(Checksum, Rfc1624Example) {
  // RFC 1624 section 4: checksum dd2f, a field 5555 -> 3285. Eqn. 3 gives 0000 (the value a
  // recomputation yields), where RFC 1141's eqn. 1 gave the wrong ffff.
  EXPECT_EQ(checksum_update16(0xdd2f, 0x5555, 0x3285), 0x0000);
}

TEST(Checksum, IncrementalUpdateEqualsRecomputation) {
  std::mt19937 rng(1624);
  for (int iter = 0; iter < 2000; ++iter) {
    const std::size_t n = 20 + 2 * (rng() % 40);  // even: fields sit at word boundaries
    auto data = random_bytes(rng, n);
    data[10] = data[11] = std::byte{0};
    const std::uint16_t before = internet_checksum(data);
    store_be16(data.data() + 10, before);

    const std::size_t at16 = 2 * (rng() % (n / 2));
    if (at16 == 10) {
      continue;  // that is the checksum field itself
    }
    const std::uint16_t old16 = load_be16(data.data() + at16);
    const auto new16 = static_cast<std::uint16_t>(rng());
    store_be16(data.data() + at16, new16);
    const std::uint16_t updated = checksum_update16(before, old16, new16);
    auto recompute = data;
    recompute[10] = recompute[11] = std::byte{0};
    ASSERT_EQ(updated, internet_checksum(recompute)) << "iteration " << iter;

    // A 32-bit field (like a TCP sequence number or an IPv4 address) at a word boundary.
    std::size_t at32 = 12 + 2 * (rng() % ((n - 16) / 2));
    store_be16(data.data() + 10, updated);
    const std::uint32_t old32 = load_be32(data.data() + at32);
    const std::uint32_t new32 = rng();
    store_be32(data.data() + at32, new32);
    const std::uint16_t updated32 = checksum_update32(updated, old32, new32);
    recompute = data;
    recompute[10] = recompute[11] = std::byte{0};
    ASSERT_EQ(updated32, internet_checksum(recompute)) << "iteration " << iter;
  }
}

}  // namespace
}  // namespace xtcp::wire
