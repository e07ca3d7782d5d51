// Initial sequence numbers (RFC 6528) and SYN cookies (RFC 4987 section 3.6), both keyed
// with a per-layer secret so an off-path attacker can neither predict nor forge them.
#pragma once

#include <cstdint>
#include <optional>

#include "stack/core/clock.h"
#include "stack/core/flow_table.h"
#include "stack/core/siphash.h"
#include "stack/wire/seq.h"

namespace xtcp {

class IsnGenerator {
 public:
  explicit IsnGenerator(const SipKey& key) : key_(key) {}
  // RFC 6528: ISN = M + F(4-tuple, secret), M a 4-microsecond clock.
  wire::SeqNum isn(const FlowKey& key, TimeNs now) const;
  // RFC 7323 5.4: a per-connection random offset for our TSval clock.
  std::uint32_t timestamp_offset(const FlowKey& key) const;

 private:
  SipKey key_;
};

// What a SYN cookie remembers of the peer's SYN.
struct CookieOptions {
  std::uint16_t mss = 536;
  bool sack = false;
  bool has_window_scale = false;
  std::uint8_t window_scale = 0;
};

// Cookie layout (32 bits): [5 bits period][3 bits MSS index][24 bits MAC]. The period is
// now/64 s; a cookie is accepted for two periods. SACK and window scale survive only when
// the peer uses timestamps: they ride in the low 6 bits of our SYN-ACK's TSval.
class SynCookies {
 public:
  explicit SynCookies(const SipKey& key) : key_(key) {}

  wire::SeqNum make(const FlowKey& key, wire::SeqNum peer_isn, std::uint16_t mss, TimeNs now) const;
  // Checks the ACK completing a cookie handshake; returns the MSS on success.
  std::optional<std::uint16_t> check(const FlowKey& key, wire::SeqNum peer_isn,
                                     wire::SeqNum cookie, TimeNs now) const;

  // Low bits of a TSval carrying the options; tsval_now is our current TSval.
  static std::uint32_t encode_ts(std::uint32_t tsval_now, const CookieOptions& opts);
  static CookieOptions decode_ts(std::uint32_t ts_ecr, std::uint16_t mss);

 private:
  std::uint32_t mac(const FlowKey& key, wire::SeqNum peer_isn, std::uint32_t period,
                    std::uint32_t mss_index) const;
  SipKey key_;
};

}  // namespace xtcp
