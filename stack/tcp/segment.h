// An incoming segment after parsing, seen from our side (key.local_* = its destination).
// Private to the TCP layer's .cc files.
#pragma once

#include "stack/tcp/tcp_layer.h"

namespace xtcp {

struct TcpLayer::Segment {
  FlowKey key;
  SeqNum seq;
  SeqNum ack;
  std::uint8_t flags = 0;
  std::uint16_t window = 0;  // raw field; scaled by the receiver of it
  std::uint16_t urgent = 0;
  std::uint32_t seq_len = 0;  // payload + SYN + FIN
  wire::ByteSpan payload;
  wire::TcpOptions opts;

  bool has(std::uint8_t f) const { return (flags & f) != 0; }
  SeqNum end() const { return seq + seq_len; }
};

}  // namespace xtcp
