// Internet checksum: 64-bit accumulation of big-endian 16-bit words, folded at the end.
#include "stack/wire/checksum.h"

#include <bit>
#include <cstring>

namespace xtcp::wire {

void Checksum::add(ByteSpan data) {
  const std::byte* p = data.data();
  std::size_t n = data.size();
  if (n == 0) {
    return;
  }
  std::uint64_t sum = 0;
  if (odd_) {
    // This byte completes the low half of the previous word.
    sum += load_u8(p);
    ++p;
    --n;
    odd_ = false;
  }
  if (n >= 16) {
    // RFC 1071 2(B): the one's complement sum does not depend on byte order, so sum
    // native-order words in four independent accumulators (no per-word byte swap, no
    // dependency chain), fold to 16 bits and swap that once.
    std::uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    while (n >= 16) {
      std::uint32_t w[4];
      std::memcpy(w, p, sizeof w);
      a0 += w[0];
      a1 += w[1];
      a2 += w[2];
      a3 += w[3];
      p += 16;
      n -= 16;
    }
    std::uint64_t native = (a0 & 0xffffffffu) + (a0 >> 32) + (a1 & 0xffffffffu) + (a1 >> 32) +
                           (a2 & 0xffffffffu) + (a2 >> 32) + (a3 & 0xffffffffu) + (a3 >> 32);
    while (native >> 16) {
      native = (native & 0xffff) + (native >> 16);
    }
    auto folded16 = static_cast<std::uint16_t>(native);
    if constexpr (std::endian::native == std::endian::little) {
      folded16 = __builtin_bswap16(folded16);
    }
    sum += folded16;
  }
  while (n >= 8) {
    sum += load_be32(p);
    sum += load_be32(p + 4);
    p += 8;
    n -= 8;
  }
  while (n >= 2) {
    sum += load_be16(p);
    p += 2;
    n -= 2;
  }
  if (n == 1) {
    sum += static_cast<std::uint64_t>(load_u8(p)) << 8;
    odd_ = true;
  }
  // Fold before adding so sum_ never overflows even over gigabytes.
  while (sum >> 32) {
    sum = (sum & 0xffffffffu) + (sum >> 32);
  }
  sum_ += sum;
}

std::uint16_t Checksum::folded() const {
  std::uint64_t s = sum_;
  while (s >> 16) {
    s = (s & 0xffff) + (s >> 16);
  }
  return static_cast<std::uint16_t>(s);
}

std::uint16_t Checksum::finish() const { return static_cast<std::uint16_t>(~folded()); }

std::uint16_t internet_checksum(ByteSpan data) {
  Checksum c;
  c.add(data);
  return c.finish();
}

Checksum pseudo_header_sum(std::uint32_t src, std::uint32_t dst, std::uint8_t protocol,
                           std::uint16_t length) {
  Checksum c;
  c.add_u32(src);
  c.add_u32(dst);
  c.add_u16(protocol);
  c.add_u16(length);
  return c;
}

std::uint16_t checksum_update16(std::uint16_t checksum, std::uint16_t old_value,
                                std::uint16_t new_value) {
  std::uint32_t sum = static_cast<std::uint16_t>(~checksum);
  sum += static_cast<std::uint16_t>(~old_value);
  sum += new_value;
  while (sum >> 16) {
    sum = (sum & 0xffff) + (sum >> 16);
  }
  return static_cast<std::uint16_t>(~sum);
}

std::uint16_t checksum_update32(std::uint16_t checksum, std::uint32_t old_value,
                                std::uint32_t new_value) {
  checksum = checksum_update16(checksum, static_cast<std::uint16_t>(old_value >> 16),
                               static_cast<std::uint16_t>(new_value >> 16));
  return checksum_update16(checksum, static_cast<std::uint16_t>(old_value),
                           static_cast<std::uint16_t>(new_value));
}

}  // namespace xtcp::wire
