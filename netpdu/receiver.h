// What the receive side hands its user, and how the user answers: each TLPDU goes to a
// TlpduSink, whose Verdict accepts it, asks for it again later (backpressure), or rejects
// the whole transport (unknown session, bad sequence): then the receiver fails with a clear
// message and its owner closes that transport; no other transport is affected.
#pragma once

#include <cstdint>
#include <functional>

#include "netpdu/payload.h"
#include "netpdu/wire.h"

namespace xtcp::netpdu {

struct Tlpdu {
  TlpduMeta meta;
  Payload payload;  // a slice of a received buffer; copy the Payload to keep the bytes
};

enum class Verdict : std::uint8_t {
  kAccept,          // taken (the sink copied the Payload if it keeps the bytes)
  kRetryLater,      // not now: delivery stops until the owner calls on_readable() again
  kUnknownSession,  // bad input: no such session on this transport
  kBadSequence,     // bad input: the session's sequence number is not the next one
  kReject,          // bad input of another kind the sink detected
};

using TlpduSink = std::function<Verdict(const Tlpdu&)>;

enum class RxState : std::uint8_t {
  kOpen,
  kClosed,  // the peer ended the stream at a frame boundary
  kFailed,  // bad input or I/O error: see error_message(); close the transport
};

enum class RxError : std::uint8_t {
  kNone,
  kWire,            // a header failed validation (wire_error() says which field)
  kTruncated,       // end of stream inside a frame
  kIo,              // read error
  kUnknownSession,  // the sink's verdict
  kBadSequence,
  kRejected,
};
const char* to_string(RxError e);

struct ReceiverConfig {
  PduLimits limits;  // from the handshake (split/data_transports set by the split receiver)
  // Received bytes still referenced (by the receiver or by sinks holding payloads) above
  // which no further frame is read: the receive side's memory bound.
  std::size_t max_buffered_bytes = 16u << 20;
  // Frames handled per on_readable() call, so one busy transport cannot starve the others.
  std::uint32_t max_pdus_per_call = 64;
};

struct RxStats {
  std::uint64_t pdus = 0;
  std::uint64_t tlpdus = 0;
  std::uint64_t payload_bytes = 0;
  std::uint64_t read_calls = 0;
};

}  // namespace xtcp::netpdu
