// Helpers shared by the segment-level engine tests in this folder: peer options without
// timestamps (so PAWS stays out of the way), and switching the harness between several
// connections of one stack (the harness tracks one connection's ports and ISS at a time).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "tests/support/tcp_harness.h"

namespace xtcp::test {

// Linux's SYN options without the timestamp option.
inline wire::TcpOptions no_ts_options(bool window_scale = true, std::uint8_t shift = 7) {
  wire::TcpOptions o;
  o.has_mss = true;
  o.mss = 1460;
  o.sack_permitted = true;
  o.has_window_scale = window_scale;
  o.window_scale = shift;
  return o;
}

inline TcpState state_of(TcpHarness& h, ConnId c) {
  ConnInfo info{};
  EXPECT_EQ(h.tcp().info(c, &info), 0);
  return info.state;
}

inline std::uint64_t count_in(TcpHarness& h, TcpState s) {
  return h.tcp().connections_by_state()[static_cast<int>(s)];
}

// What the harness remembers about one connection, plus where each side's next byte is.
struct Flow {
  ConnId conn = 0;
  std::uint32_t iss = 0;
  std::uint16_t stack_port = 0;
  std::uint16_t peer_port = 0;
  std::uint32_t peer_ts = 0;
  std::uint32_t last_stack_tsval = 0;
  bool peer_uses_ts = false;
  std::uint32_t peer_next = 1;   // relative sequence number of the peer's next byte
  std::uint32_t stack_next = 1;  // relative sequence number of the stack's next byte
};

inline Flow save_flow(const TcpHarness& h, ConnId c) {
  Flow f;
  f.conn = c;
  f.iss = h.iss;
  f.stack_port = h.stack_port;
  f.peer_port = h.peer_port;
  f.peer_ts = h.peer_ts;
  f.last_stack_tsval = h.last_stack_tsval;
  f.peer_uses_ts = h.peer_uses_ts;
  return f;
}

inline void use_flow(TcpHarness& h, const Flow& f) {
  h.iss = f.iss;
  h.stack_port = f.stack_port;
  h.peer_port = f.peer_port;
  h.peer_ts = f.peer_ts;
  h.last_stack_tsval = f.last_stack_tsval;
  h.peer_uses_ts = f.peer_uses_ts;
}

// Opens one more passive connection from peer_port to the listener on kServerPort (which
// must exist) through a real handshake. The harness is left switched to the new flow.
inline Flow open_passive(TcpHarness& h, std::uint16_t peer_port,
                         const wire::TcpOptions& opts = no_ts_options()) {
  using namespace wire::tcp_flags;  // NOLINT
  h.stack_port = kServerPort;
  h.peer_port = peer_port;
  h.peer_uses_ts = opts.has_timestamp;
  h.peer_ts = opts.ts_val;
  Seg syn;
  syn.flags = kSyn;
  syn.seq = 0;
  syn.opts = opts;
  h.inject(syn);
  const Sent synack = h.sent_one();
  EXPECT_SEGMENT(synack, Match().flags(kSyn | kAck).rseq(0).rack(1));
  h.inject(h.with_ts(Seg{}));
  h.expect_silence();
  const std::int64_t c = h.tcp().accept(kServerPort);
  EXPECT_GE(c, 0);
  h.events();
  return save_flow(h, static_cast<ConnId>(c));
}

// The connection still carries bytes both ways: the peer's data is delivered and ACKed
// (piggybacked on the stack's reply), the stack's data goes out and is ACKed. Drains events.
inline void expect_flow_works(TcpHarness& h, Flow& f, const std::string& tag = "probe") {
  using namespace wire::tcp_flags;  // NOLINT
  use_flow(h, f);
  const auto in = bytes_of(tag + "-in");
  const auto out = bytes_of(tag + "-out");
  Seg data = h.with_ts(Seg{});
  data.flags = kAck | kPsh;
  data.seq = f.peer_next;
  data.ack = f.stack_next;
  data.payload = in;
  h.inject(data);
  EXPECT_EQ(h.read_all(f.conn), tag + "-in");
  f.peer_next += static_cast<std::uint32_t>(in.size());
  ASSERT_EQ(h.tcp().send(f.conn, out), static_cast<std::int64_t>(out.size()));
  const auto sent = h.sent();
  ASSERT_EQ(sent.size(), 1u) << "expected the reply alone";
  EXPECT_EQ(sent[0].dst_port, f.peer_port);
  EXPECT_SEGMENT(sent[0],
                 Match().flags(kAck | kPsh).rseq(f.stack_next).rack(f.peer_next).payload(out));
  f.stack_next += static_cast<std::uint32_t>(out.size());
  Seg ack = h.with_ts(Seg{});
  ack.seq = f.peer_next;
  ack.ack = f.stack_next;
  h.inject(ack);
  h.expect_silence();
  ConnInfo info{};
  ASSERT_EQ(h.tcp().info(f.conn, &info), 0);
  EXPECT_EQ(info.state, TcpState::kEstablished);
  EXPECT_EQ(info.snd_una.raw() - f.iss, f.stack_next) << "reply acknowledged";
  h.events();
  f.last_stack_tsval = h.last_stack_tsval;
  f.peer_ts = h.peer_ts;
}

}  // namespace xtcp::test
