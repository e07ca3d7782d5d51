// Big-endian loads and stores over byte spans, through memcpy so no alignment or aliasing
// assumptions are made. Every wire view is built on these; callers check lengths first.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace xtcp::wire {

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

inline ByteSpan as_bytes(const void* data, std::size_t len) {
  return {static_cast<const std::byte*>(data), len};
}

}  // namespace xtcp::wire
