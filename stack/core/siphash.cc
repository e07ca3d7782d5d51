// SipHash-2-4, written from the paper's description (c = 2 compression, d = 4 finalization).
#include "stack/core/siphash.h"

#include <sys/random.h>

#include <cstring>
#include <ctime>

namespace xtcp {
namespace {

inline std::uint64_t rotl(std::uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

struct State {
  std::uint64_t v0, v1, v2, v3;
  void round() {
    v0 += v1;
    v1 = rotl(v1, 13);
    v1 ^= v0;
    v0 = rotl(v0, 32);
    v2 += v3;
    v3 = rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = rotl(v1, 17);
    v1 ^= v2;
    v2 = rotl(v2, 32);
  }
};

}  // namespace

std::uint64_t siphash24(const SipKey& key, const void* data, std::size_t len) {
  State s{0x736f6d6570736575ULL ^ key.k0, 0x646f72616e646f6dULL ^ key.k1,
          0x6c7967656e657261ULL ^ key.k0, 0x7465646279746573ULL ^ key.k1};
  const auto* p = static_cast<const unsigned char*>(data);
  const std::size_t blocks = len / 8;
  for (std::size_t i = 0; i < blocks; ++i) {
    std::uint64_t m = 0;
    for (int b = 0; b < 8; ++b) {
      m |= static_cast<std::uint64_t>(p[i * 8 + b]) << (8 * b);  // little-endian words
    }
    s.v3 ^= m;
    s.round();
    s.round();
    s.v0 ^= m;
  }
  std::uint64_t last = static_cast<std::uint64_t>(len & 0xff) << 56;
  for (std::size_t b = 0; b < len % 8; ++b) {
    last |= static_cast<std::uint64_t>(p[blocks * 8 + b]) << (8 * b);
  }
  s.v3 ^= last;
  s.round();
  s.round();
  s.v0 ^= last;
  s.v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) {
    s.round();
  }
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

SipKey random_sip_key() {
  SipKey k;
  if (getrandom(&k, sizeof k, 0) != static_cast<ssize_t>(sizeof k)) {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    k.k0 = static_cast<std::uint64_t>(ts.tv_nsec) * 0x9e3779b97f4a7c15ULL;
    k.k1 = static_cast<std::uint64_t>(ts.tv_sec) ^ 0xbf58476d1ce4e5b9ULL;
  }
  return k;
}

}  // namespace xtcp
