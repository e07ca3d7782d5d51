// Variant 1 (headers inline) target side: read the fixed NetPDU header, allocate a buffer
// from its total length, scatter the rest of the frame (plus the next frame's header) into
// it with one readv, then hand each TLPDU to the sink as a slice of that buffer (no copy).
//
//   fd --read(20)--> header --validate--> block(total-20) charged to the budget
//   fd --readv([block rest][next header])--> TLPDUs parsed --> sink(Tlpdu), in order
//
// Works on non-blocking descriptors: any read may stop anywhere in a frame; state is kept.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "netpdu/io.h"
#include "netpdu/receiver.h"

namespace xtcp::netpdu {

class Deaggregator {
 public:
  // `source` must outlive this. A null budget gets a private one of max_buffered_bytes;
  // receivers of one process may share a budget to bound their memory together.
  Deaggregator(ByteSource& source, const ReceiverConfig& config, TlpduSink sink,
               std::shared_ptr<MemoryBudget> budget = nullptr);
  Deaggregator(const Deaggregator&) = delete;
  Deaggregator& operator=(const Deaggregator&) = delete;

  // Reads and delivers until the descriptor is drained, a sink asks to retry later, the
  // budget is spent, or max_pdus_per_call frames were handled. Also the way to resume
  // after kRetryLater or a spent budget.
  RxState on_readable();

  // False while delivery waits for the sink, the budget is spent, or the stream ended:
  // the owner should not poll the descriptor for input then.
  bool wants_read() const;
  bool delivery_blocked() const { return phase_ == Phase::kDeliver && state_ == RxState::kOpen; }
  // The last on_readable() stopped at max_pdus_per_call with work possibly left that no
  // descriptor will announce: call on_readable() again soon (Endpoint does, via its timers).
  bool yielded() const { return yielded_ && state_ == RxState::kOpen; }

  RxState state() const { return state_; }
  RxError error() const { return error_; }
  WireError wire_error() const { return wire_error_; }
  const std::string& error_message() const { return error_message_; }
  const RxStats& stats() const { return stats_; }
  const std::shared_ptr<MemoryBudget>& budget() const { return budget_; }

 private:
  enum class Phase { kHeader, kBody, kDeliver };

  bool start_body();
  bool finish_body();
  bool deliver();
  void fail(RxError e, const std::string& msg);
  std::string where() const;

  ByteSource& source_;
  ReceiverConfig config_;
  TlpduSink sink_;
  std::shared_ptr<MemoryBudget> budget_;
  RxState state_ = RxState::kOpen;
  RxError error_ = RxError::kNone;
  WireError wire_error_ = WireError::kNone;
  std::string error_message_;
  bool in_call_ = false;
  bool yielded_ = false;

  Phase phase_ = Phase::kHeader;
  std::byte header_[kNetPduHeaderLen];
  std::size_t header_have_ = 0;
  std::size_t waiting_budget_ = 0;  // body length of a parsed header refused by the budget
  NetPduHeader current_;
  std::shared_ptr<std::byte> body_;
  std::size_t body_len_ = 0;
  std::size_t body_have_ = 0;
  std::vector<TlpduSlot> slots_;
  std::size_t next_slot_ = 0;
  std::uint64_t stream_offset_ = 0;  // bytes consumed, for error messages
  RxStats stats_;
};

}  // namespace xtcp::netpdu
