// Variant 2 (control transport) target side: one read on the control transport brings many
// variable-length NetPDU headers; for each, in control order, buffers are allocated from
// its TLPDU sizes and one readv scatters the payloads from the data transport it names.
//
//   control fd --read--> header buffer --parse--> pending NetPDUs (bounded)
//   head NetPDU: sizes --> one shared block for small payloads, own buffers for large ones
//   data fd[j] --readv(one iovec per payload)--> buffers --> sink(Tlpdu) in control order
//
// Only the data transport the head NetPDU waits on is polled, so bytes parked on another
// data transport never make the owner spin.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "netpdu/io.h"
#include "netpdu/receiver.h"

namespace xtcp::netpdu {

// Payloads at least this long get a buffer of their own, so a long-lived big message does
// not pin its neighbours' memory (and vice versa); smaller ones share one block.
inline constexpr std::size_t kOwnBufferThreshold = 4096;

class SplitDeaggregator {
 public:
  // `control` and every data source must outlive this; 1..65535 data sources.
  SplitDeaggregator(ByteSource& control, std::vector<ByteSource*> data, const ReceiverConfig& config,
                    TlpduSink sink, std::shared_ptr<MemoryBudget> budget = nullptr);
  SplitDeaggregator(const SplitDeaggregator&) = delete;
  SplitDeaggregator& operator=(const SplitDeaggregator&) = delete;

  // Any of the transports is readable (or the owner resumes after kRetryLater / budget).
  RxState on_readable();

  bool wants_read_control() const;
  bool wants_read_data(std::size_t lane) const;
  bool delivery_blocked() const { return delivering_ && state_ == RxState::kOpen; }
  // The last on_readable() stopped at max_pdus_per_call: headers already read may need no
  // further input (empty payloads), so call on_readable() again soon.
  bool yielded() const { return yielded_ && state_ == RxState::kOpen; }

  RxState state() const { return state_; }
  RxError error() const { return error_; }
  WireError wire_error() const { return wire_error_; }
  const std::string& error_message() const { return error_message_; }
  const RxStats& stats() const { return stats_; }

 private:
  struct Pending {
    NetPduHeader header;
    std::vector<TlpduHeader> tlpdus;
    std::uint64_t payload_bytes = 0;
  };
  enum class Fill { kComplete, kWait, kStop };

  bool parse_control();
  Fill fill_head();
  bool deliver();
  void fail(RxError e, const std::string& msg);
  void parse_fail(RxError e, const std::string& msg);
  std::string where(bool head) const;
  std::size_t max_pending_tlpdus() const;

  ByteSource& control_;
  std::vector<ByteSource*> data_;
  ReceiverConfig config_;
  TlpduSink sink_;
  std::shared_ptr<MemoryBudget> budget_;
  RxState state_ = RxState::kOpen;
  RxError error_ = RxError::kNone;
  WireError wire_error_ = WireError::kNone;
  std::string error_message_;
  bool in_call_ = false;
  bool yielded_ = false;

  std::vector<std::byte> ctl_;  // control bytes read, not yet parsed: [ctl_begin_, ctl_end_)
  std::size_t ctl_begin_ = 0;
  std::size_t ctl_end_ = 0;
  bool ctl_eof_ = false;
  bool deferred_ = false;  // a bad header was found behind pending NetPDUs: fail once they are out
  RxError deferred_error_ = RxError::kNone;
  std::string deferred_message_;
  std::uint64_t ctl_offset_ = 0;  // control stream offset of ctl_begin_, for messages

  std::deque<Pending> pending_;
  std::size_t pending_tlpdus_ = 0;

  // The head NetPDU being filled / delivered.
  bool head_allocated_ = false;
  std::vector<Payload> head_payloads_;
  std::size_t head_slot_ = 0;      // first payload not yet complete
  std::size_t head_slot_have_ = 0;
  bool delivering_ = false;
  std::size_t next_slot_ = 0;

  RxStats stats_;
};

}  // namespace xtcp::netpdu
