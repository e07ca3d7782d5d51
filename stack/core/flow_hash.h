// The TCP 4-tuple and its keyed hash, shared by the flow tables (FlowTable, FlowIndex).
#pragma once

#include <cstdint>

namespace xtcp {

// The 4-tuple as the shard sees it. Addresses and ports may be in host or network byte order;
// the table only needs every caller to use the same one.
struct FlowKey {
  std::uint32_t local_addr;
  std::uint32_t remote_addr;
  std::uint16_t local_port;
  std::uint16_t remote_port;

  friend bool operator==(const FlowKey&, const FlowKey&) = default;
};
static_assert(sizeof(FlowKey) == 12);

// A 64-bit hash of a FlowKey keyed with a per-table seed: the seed is expanded into four
// secret words, mixed in with two rounds of 64x64->128-bit folded multiplication (the
// wyhash/foldhash construction), so a remote peer choosing its address and port cannot
// predict where its flows land and cannot build long collision chains.
class FlowHasher {
 public:
  explicit FlowHasher(std::uint64_t seed) {
    std::uint64_t state = seed;
    for (auto& word : secret_) {
      word = splitmix64(state) | 1;  // odd multipliers never collapse to zero through the low bit
    }
  }

  std::uint64_t operator()(const FlowKey& key) const {
    const std::uint64_t addrs = (std::uint64_t{key.local_addr} << 32) | key.remote_addr;
    const std::uint64_t ports = (std::uint64_t{key.local_port} << 16) | key.remote_port;
    const std::uint64_t h = folded_multiply(addrs ^ secret_[0], ports ^ secret_[1]);
    return folded_multiply(h ^ secret_[2], secret_[3]);
  }

 private:
  static std::uint64_t splitmix64(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9E37'79B9'7F4A'7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58'476D'1CE4'E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D0'49BB'1331'11EBull;
    return z ^ (z >> 31);
  }
  // 64x64 -> 128-bit multiply, high and low halves xored: every input bit reaches every
  // output bit, and with secret operands the result is unpredictable to whoever chose the
  // inputs.
  static std::uint64_t folded_multiply(std::uint64_t a, std::uint64_t b) {
    __extension__ using u128 = unsigned __int128;
    const u128 p = static_cast<u128>(a) * b;
    return static_cast<std::uint64_t>(p) ^ static_cast<std::uint64_t>(p >> 64);
  }

  std::uint64_t secret_[4];
};

}  // namespace xtcp
