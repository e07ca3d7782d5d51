// Variant 1 (headers inline) source side: TLPDUs of many sessions are queued into the open
// NetPDU, which closes on a size threshold, a latency bound or an explicit flush; closed
// NetPDUs leave as header + payload iovecs in one gather call (several NetPDUs per call).
//
//   submit(meta, payload) -> [NetPDU hdr][TLPDU hdr][payload ref][TLPDU hdr][payload ref]...
//   poll()/flush()/on_writable() -> one writev of all closed NetPDUs (<= kIovMax entries)
//   bytes accepted by the kernel -> payload owners released, in order
//
// No I/O happens in submit(); the owner calls poll() once per event-loop turn (and when the
// descriptor is writable), which is what lets many NetPDUs share one system call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>

#include "netpdu/clock.h"
#include "netpdu/io.h"
#include "netpdu/payload.h"
#include "netpdu/wire.h"

namespace xtcp::netpdu {

struct AggregatorConfig {
  std::uint32_t max_pdu_bytes = 256 * 1024;  // negotiated: no NetPDU is longer
  std::uint32_t max_tlpdus = 8192;           // negotiated: TLPDUs per NetPDU
  std::uint32_t flush_bytes = 64 * 1024;     // close the open NetPDU once it reaches this
  std::uint32_t latency_us = 200;            // ... or once its first TLPDU is this old
  // Backpressure: bytes queued and not yet accepted by the kernel (headers + payloads).
  // submit() answers -EAGAIN rather than exceed it; on_space fires below low_watermark.
  std::size_t max_queued_bytes = 4u << 20;
  std::size_t low_watermark = 2u << 20;
};

// Returns an empty string when the config is usable, else what is wrong with it.
std::string validate(const AggregatorConfig& c);

// Largest payload one TLPDU may carry under these limits (one NetPDU, one TLPDU).
inline std::size_t max_payload(std::uint32_t max_pdu_bytes) {
  return max_pdu_bytes - kNetPduHeaderLen - kTlpduHeaderLen;
}

struct AggregatorStats {
  std::uint64_t tlpdus = 0;        // accepted by submit()
  std::uint64_t pdus = 0;          // NetPDUs closed
  std::uint64_t flush_size = 0;    // ... because of the size threshold or a full NetPDU
  std::uint64_t flush_timer = 0;   // ... because of the latency bound
  std::uint64_t flush_explicit = 0;
  std::uint64_t gather_calls = 0;  // writev calls made
  std::uint64_t would_block = 0;   // submit() answered -EAGAIN
  std::uint64_t header_bytes = 0;  // NetPDU + TLPDU header bytes queued
  std::uint64_t payload_bytes = 0;
};

class Aggregator {
 public:
  // `sink` and `clock` must outlive the aggregator. `config` must pass validate().
  Aggregator(ByteSink& sink, const AggregatorConfig& config, const Clock& clock);
  Aggregator(const Aggregator&) = delete;
  Aggregator& operator=(const Aggregator&) = delete;

  // Queues one TLPDU referencing payload.bytes (not copied) until written. Returns 0;
  // -EAGAIN when max_queued_bytes would be exceeded (stop reading the sessions' sources
  // until on_space); -EMSGSIZE if it can never fit one NetPDU; -EPIPE (or the failing
  // errno) once the transport has failed.
  int submit(const TlpduMeta& meta, Payload payload);

  // Closes the open NetPDU if its latency bound has passed, then writes what is ready.
  void poll();
  // Closes the open NetPDU now and writes what is ready.
  void flush();
  // The descriptor became writable after a partial write / EAGAIN.
  void on_writable();

  // When to call poll() next: the open NetPDU's deadline, or kNever.
  TimeNs next_deadline() const;
  // True while closed NetPDUs wait for the descriptor to become writable.
  bool wants_write() const { return want_write_ && state_ == State::kOpen; }
  // Nothing queued at all (open or closed).
  bool idle() const { return queue_.empty(); }
  std::size_t queued_bytes() const { return queued_bytes_; }
  bool would_block(std::size_t payload_len) const;

  // Called (from poll/flush/on_writable) once the queue falls below the low watermark after
  // a submit() was refused with -EAGAIN.
  void set_on_space(std::function<void()> fn) { on_space_ = std::move(fn); }

  bool failed() const { return state_ == State::kFailed; }
  int error() const { return error_; }
  const std::string& error_message() const { return error_message_; }
  const AggregatorStats& stats() const { return stats_; }

 private:
  enum class State { kOpen, kFailed };
  // One queued piece: a 20-byte header (NetPDU or TLPDU, both kNetPduHeaderLen long) and,
  // for TLPDUs, the referenced payload.
  struct Entry {
    std::byte header[kNetPduHeaderLen];
    Payload payload;
  };
  static_assert(kNetPduHeaderLen == kTlpduHeaderLen);

  void close_open_pdu();
  void write_ready();
  void consume(std::size_t n);
  void fail(int err, const char* what);
  void maybe_signal_space();

  ByteSink& sink_;
  AggregatorConfig config_;
  const Clock& clock_;
  State state_ = State::kOpen;
  int error_ = 0;
  std::string error_message_;

  std::deque<Entry> queue_;
  std::size_t front_offset_ = 0;  // bytes of queue_.front() already written
  std::size_t open_entries_ = 0;  // trailing entries forming the open NetPDU (0: none open)
  std::uint32_t open_bytes_ = 0;
  std::uint32_t open_count_ = 0;
  TimeNs open_since_ = 0;
  std::size_t queued_bytes_ = 0;
  bool want_write_ = false;
  bool refused_ = false;  // a submit() got -EAGAIN since the last on_space
  std::function<void()> on_space_;
  AggregatorStats stats_;
};

}  // namespace xtcp::netpdu
