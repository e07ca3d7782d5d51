// Helpers for the data-path engine tests (retransmission, SACK, flow control): peer options
// without timestamps, a passive handshake with a chosen round-trip time, and short-hand for
// the peer's ACKs and data segments. Names live in xtcp::test::dp to stay clear of other
// helper headers in this folder.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "tests/support/tcp_harness.h"

namespace xtcp::test::dp {

using namespace wire::tcp_flags;  // NOLINT

// MSS 1460, optionally SACK-permitted and a window-scale shift (-1: none). No timestamps.
inline wire::TcpOptions peer_options(bool sack = true, int wscale = -1, std::uint16_t mss = 1460) {
  wire::TcpOptions o;
  o.has_mss = true;
  o.mss = mss;
  o.sack_permitted = sack;
  if (wscale >= 0) {
    o.has_window_scale = true;
    o.window_scale = static_cast<std::uint8_t>(wscale);
  }
  return o;
}

// Passive open where the final ACK arrives `rtt` after the SYN-ACK left, so the stack's
// first RTT sample is exactly rtt. With timestamps in opts the harness echoes them.
inline ConnId open_with_rtt(TcpHarness& h, const wire::TcpOptions& opts, TimeNs rtt,
                            std::uint16_t window = 65535) {
  EXPECT_EQ(h.tcp().listen(kServerPort), 0);
  h.peer_uses_ts = opts.has_timestamp;
  h.peer_ts = opts.ts_val;
  Seg syn;
  syn.flags = kSyn;
  syn.seq = 0;
  syn.window = window;
  syn.opts = opts;
  h.inject(syn);
  const Sent synack = h.sent_one();
  EXPECT_EQ(synack.flags, kSyn | kAck);
  if (rtt > 0) {
    h.advance(rtt);
  }
  Seg ack = h.with_ts(Seg{});
  ack.window = window;
  h.inject(ack);
  h.expect_silence();
  const std::int64_t c = h.tcp().accept(kServerPort);
  EXPECT_GE(c, 0);
  h.events();
  return static_cast<ConnId>(c);
}

// A pure ACK from the peer: cumulative ack (relative to the stack's ISS), peer seq.
inline Seg ack_seg(std::uint32_t ack, std::uint16_t window = 65535, std::uint32_t seq = 1) {
  Seg s;
  s.flags = kAck;
  s.seq = seq;
  s.ack = ack;
  s.window = window;
  return s;
}

inline Seg with_sack(Seg s, std::vector<std::pair<std::uint32_t, std::uint32_t>> blocks,
                     std::uint32_t iss) {
  s.opts.sack_count = static_cast<std::uint8_t>(blocks.size());
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    s.opts.sack[i] = wire::SackBlock{wire::SeqNum(iss + blocks[i].first),
                                     wire::SeqNum(iss + blocks[i].second)};
  }
  return s;
}

// Peer data: bytes [seq, seq + payload.size()) of its stream, acknowledging `ack`.
inline Seg data_seg(std::uint32_t seq, std::vector<std::byte> payload, std::uint32_t ack = 1,
                    std::uint16_t window = 65535) {
  Seg s;
  s.flags = kAck;
  s.seq = seq;
  s.ack = ack;
  s.window = window;
  s.payload = std::move(payload);
  return s;
}

inline std::vector<std::byte> slice(const std::vector<std::byte>& v, std::size_t from,
                                    std::size_t len) {
  return std::vector<std::byte>(v.begin() + static_cast<std::ptrdiff_t>(from),
                                v.begin() + static_cast<std::ptrdiff_t>(from + len));
}

inline ConnInfo info_of(TcpHarness& h, ConnId c) {
  ConnInfo info{};
  EXPECT_EQ(h.tcp().info(c, &info), 0);
  return info;
}

inline std::string as_string(const std::vector<std::byte>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size());
}

}  // namespace xtcp::test::dp
