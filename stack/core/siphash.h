// SipHash-2-4 (Aumasson & Bernstein): a keyed PRF, used where a remote peer must not be
// able to predict or steer the output: ISNs (RFC 6528) and SYN cookies (RFC 4987).
#pragma once

#include <cstddef>
#include <cstdint>

namespace xtcp {

struct SipKey {
  std::uint64_t k0 = 0;
  std::uint64_t k1 = 0;
};

std::uint64_t siphash24(const SipKey& key, const void* data, std::size_t len);

// A key from the kernel's random source (getrandom); falls back to the clock only if that
// fails, which on Linux it does not.
SipKey random_sip_key();

}  // namespace xtcp
