// Big-endian loads and stores for the NetPDU wire format, through memcpy (no alignment or
// aliasing assumptions). netpdu/ does not depend on stack/, so it carries its own copy of
// this idea; callers check lengths before touching bytes.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace xtcp::netpdu {

using ByteSpan = std::span<const std::byte>;
using MutableByteSpan = std::span<std::byte>;

inline std::uint8_t load_u8(const std::byte* p) { return static_cast<std::uint8_t>(*p); }

inline std::uint16_t load_be16(const std::byte* p) {
  std::uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return std::endian::native == std::endian::little ? __builtin_bswap16(v) : v;
}

inline std::uint32_t load_be32(const std::byte* p) {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return std::endian::native == std::endian::little ? __builtin_bswap32(v) : v;
}

inline std::uint64_t load_be64(const std::byte* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return std::endian::native == std::endian::little ? __builtin_bswap64(v) : v;
}

inline void store_u8(std::byte* p, std::uint8_t v) { *p = static_cast<std::byte>(v); }

inline void store_be16(std::byte* p, std::uint16_t v) {
  if constexpr (std::endian::native == std::endian::little) {
    v = __builtin_bswap16(v);
  }
  std::memcpy(p, &v, sizeof v);
}

inline void store_be32(std::byte* p, std::uint32_t v) {
  if constexpr (std::endian::native == std::endian::little) {
    v = __builtin_bswap32(v);
  }
  std::memcpy(p, &v, sizeof v);
}

inline void store_be64(std::byte* p, std::uint64_t v) {
  if constexpr (std::endian::native == std::endian::little) {
    v = __builtin_bswap64(v);
  }
  std::memcpy(p, &v, sizeof v);
}

}  // namespace xtcp::netpdu
