// Variant 2 source side (the multiplexing information travels out of band, on a control
// transport): payloads go back to back on one of N data transports with one gather call
// each; the variable-length NetPDU header (fixed part + one TLPDU header per payload, naming
// the data transport) goes on the control transport, many headers per write.
//
//   submit -> lane = hash(session) % N -> open NetPDU of that lane (header bytes built here)
//   close  -> header appended to the control queue; payload refs queued on lane N
//   poll   -> each lane's payloads --writev--> data transport j, then
//             control queue --one write--> control transport (many headers per call)
//
// Each turn writes the payloads before the headers, but a header does not wait for its
// payloads to be completely written: the receiver reads a data transport only for a header
// it holds, so waiting would deadlock as soon as one NetPDU's payloads exceed the socket
// buffer. Headers leave in close order, which per lane is the payload order; a session
// always uses the same lane, so its TLPDUs stay in order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "netpdu/aggregator.h"
#include "netpdu/clock.h"
#include "netpdu/io.h"
#include "netpdu/payload.h"
#include "netpdu/wire.h"

namespace xtcp::netpdu {

// The data transport a session's TLPDUs use: a fixed mix of the id, so a session never
// changes lane (documented in docs/netpdu.md; the receiver does not depend on it).
std::size_t lane_of(std::uint64_t session, std::size_t lanes);

class SplitAggregator {
 public:
  // `control`, every data sink and `clock` must outlive this; 1..65535 data sinks.
  SplitAggregator(ByteSink& control, std::vector<ByteSink*> data, const AggregatorConfig& config,
                  const Clock& clock);
  SplitAggregator(const SplitAggregator&) = delete;
  SplitAggregator& operator=(const SplitAggregator&) = delete;

  // Same contract as Aggregator::submit.
  int submit(const TlpduMeta& meta, Payload payload);
  void poll();
  void flush();
  void on_writable_control();
  void on_writable_data(std::size_t lane);

  TimeNs next_deadline() const;
  bool wants_write_control() const { return ctl_want_write_ && !failed_; }
  bool wants_write_data(std::size_t lane) const { return lanes_[lane].want_write && !failed_; }
  std::size_t lanes() const { return lanes_.size(); }
  bool idle() const;
  std::size_t queued_bytes() const { return queued_bytes_; }
  void set_on_space(std::function<void()> fn) { on_space_ = std::move(fn); }

  bool failed() const { return failed_; }
  int error() const { return error_; }
  const std::string& error_message() const { return error_message_; }
  const AggregatorStats& stats() const { return stats_; }

 private:
  struct Lane {
    ByteSink* sink = nullptr;
    std::deque<Payload> queue;  // non-empty payloads: closed NetPDUs' first, then the open one's
    std::size_t front_offset = 0;
    std::size_t open_entries = 0;  // trailing queue entries of the open NetPDU
    std::vector<std::byte> open_header;  // fixed part + TLPDU headers; empty: none open
    std::uint32_t open_bytes = 0;        // what the open NetPDU's total length would be
    std::uint32_t open_count = 0;
    TimeNs open_since = 0;
    bool want_write = false;
  };

  void close_open(std::size_t lane);
  void write_lane(std::size_t lane);
  void write_control();
  void write_all();
  void fail(int err, const char* what);
  void maybe_signal_space();

  ByteSink& control_;
  AggregatorConfig config_;
  const Clock& clock_;
  std::vector<Lane> lanes_;
  std::vector<std::byte> ctl_out_;  // headers ready for the control transport
  std::size_t ctl_offset_ = 0;
  bool ctl_want_write_ = false;
  std::size_t queued_bytes_ = 0;
  bool refused_ = false;
  bool failed_ = false;
  int error_ = 0;
  std::string error_message_;
  std::function<void()> on_space_;
  AggregatorStats stats_;
};

}  // namespace xtcp::netpdu
