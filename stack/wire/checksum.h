// The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
// Checksum accumulates 16-bit big-endian words in a 64-bit sum; finish() folds and inverts.
#pragma once

#include <cstdint>

#include "stack/wire/bytes.h"

namespace xtcp::wire {

class Checksum {
 public:
  // Adds bytes as if they continued the data already added. Odd lengths are handled:
  // a following add() continues at the correct byte parity.
  void add(ByteSpan data);
  void add_u16(std::uint16_t v) { add_word(v); }
  void add_u32(std::uint32_t v) {
    add_word(static_cast<std::uint16_t>(v >> 16));
    add_word(static_cast<std::uint16_t>(v));
  }
  // The value to put in a header checksum field (one's complement of the folded sum).
  std::uint16_t finish() const;
  // The folded sum without inversion; 0xffff over a packet whose checksum is correct.
  std::uint16_t folded() const;

 private:
  void add_word(std::uint16_t w) {
    // A pending odd byte shifts word alignment; words added directly must be aligned.
    sum_ += odd_ ? static_cast<std::uint16_t>((w >> 8) | (w << 8)) : w;
  }
  std::uint64_t sum_ = 0;
  bool odd_ = false;  // an odd number of bytes has been added so far
};

// Checksum of data alone (e.g. IPv4 header, ICMP message).
std::uint16_t internet_checksum(ByteSpan data);

// TCP/UDP pseudo-header (RFC 9293 section 3.1) seeded into a Checksum.
Checksum pseudo_header_sum(std::uint32_t src, std::uint32_t dst, std::uint8_t protocol,
                           std::uint16_t length);

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for a 16-bit field changing from old to new.
std::uint16_t checksum_update16(std::uint16_t checksum, std::uint16_t old_value,
                                std::uint16_t new_value);
std::uint16_t checksum_update32(std::uint16_t checksum, std::uint32_t old_value,
                                std::uint32_t new_value);

}  // namespace xtcp::wire
