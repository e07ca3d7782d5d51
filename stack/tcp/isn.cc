// ISN generation and SYN cookie encoding; see isn.h for the layouts.
#include "stack/tcp/isn.h"

#include <array>
#include <cstring>

namespace xtcp {
namespace {

// MSS values a cookie can carry (3 bits); the peer's MSS is rounded down to one of them.
constexpr std::array<std::uint16_t, 8> kCookieMss = {536, 1000, 1200, 1300, 1400, 1440, 1460, 8960};
constexpr TimeNs kCookiePeriod = seconds(64);
constexpr std::uint32_t kTsOptionBits = 6;
constexpr std::uint32_t kTsOptionMask = (1u << kTsOptionBits) - 1;
constexpr std::uint32_t kTsOptionsPresent = 1u << 5;
constexpr std::uint32_t kTsSack = 1u << 4;
constexpr std::uint32_t kNoWindowScale = 0xf;

std::uint64_t hash_flow(const SipKey& key, const FlowKey& f, std::uint32_t extra1,
                        std::uint32_t extra2) {
  std::array<std::uint32_t, 6> words = {f.local_addr, f.remote_addr,
                                        (static_cast<std::uint32_t>(f.local_port) << 16) | f.remote_port,
                                        extra1, extra2, 0x78746370};
  return siphash24(key, words.data(), sizeof words);
}

}  // namespace

wire::SeqNum IsnGenerator::isn(const FlowKey& key, TimeNs now) const {
  const auto m = static_cast<std::uint32_t>(now / (4 * kNsPerUs));
  return wire::SeqNum(m + static_cast<std::uint32_t>(hash_flow(key_, key, 0, 0)));
}

std::uint32_t IsnGenerator::timestamp_offset(const FlowKey& key) const {
  return static_cast<std::uint32_t>(hash_flow(key_, key, 1, 0) >> 32);
}

std::uint32_t SynCookies::mac(const FlowKey& key, wire::SeqNum peer_isn, std::uint32_t period,
                              std::uint32_t mss_index) const {
  return static_cast<std::uint32_t>(
             hash_flow(key_, key, peer_isn.raw(), (period << 3) | mss_index)) & 0xffffff;
}

wire::SeqNum SynCookies::make(const FlowKey& key, wire::SeqNum peer_isn, std::uint16_t mss,
                              TimeNs now) const {
  std::uint32_t index = 0;
  for (std::uint32_t i = 0; i < kCookieMss.size(); ++i) {
    if (kCookieMss[i] <= mss) {
      index = i;
    }
  }
  const auto period = static_cast<std::uint32_t>(now / kCookiePeriod);
  return wire::SeqNum(((period & 0x1f) << 27) | (index << 24) | mac(key, peer_isn, period, index));
}

std::optional<std::uint16_t> SynCookies::check(const FlowKey& key, wire::SeqNum peer_isn,
                                               wire::SeqNum cookie, TimeNs now) const {
  const std::uint32_t c = cookie.raw();
  const std::uint32_t index = (c >> 24) & 0x7;
  const auto period_now = static_cast<std::uint32_t>(now / kCookiePeriod);
  for (std::uint32_t age = 0; age < 2; ++age) {
    const std::uint32_t period = period_now - age;
    if ((period & 0x1f) != (c >> 27)) {
      continue;
    }
    if (mac(key, peer_isn, period, index) == (c & 0xffffff)) {
      return kCookieMss[index];
    }
  }
  return std::nullopt;
}

std::uint32_t SynCookies::encode_ts(std::uint32_t tsval_now, const CookieOptions& opts) {
  std::uint32_t bits = kTsOptionsPresent | (opts.sack ? kTsSack : 0) |
                       (opts.has_window_scale ? opts.window_scale : kNoWindowScale);
  std::uint32_t ts = (tsval_now & ~kTsOptionMask) | bits;
  // Never run ahead of our clock: the peer's PAWS would then reject our next segments.
  if (static_cast<std::int32_t>(ts - tsval_now) > 0) {
    ts -= kTsOptionMask + 1;
  }
  return ts;
}

CookieOptions SynCookies::decode_ts(std::uint32_t ts_ecr, std::uint16_t mss) {
  CookieOptions o;
  o.mss = mss;
  if ((ts_ecr & kTsOptionsPresent) == 0) {
    return o;
  }
  o.sack = (ts_ecr & kTsSack) != 0;
  const std::uint32_t ws = ts_ecr & 0xf;
  if (ws != kNoWindowScale) {
    o.has_window_scale = true;
    o.window_scale = static_cast<std::uint8_t>(ws > 14 ? 14 : ws);
  }
  return o;
}

}  // namespace xtcp
