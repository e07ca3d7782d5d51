// PcapTap: a Link that wraps another Link and mirrors every packet sent through it and
// received from it into a pcap file (LINKTYPE_RAW: bare IPv4, no link header), written
// with PcapWriter. Timestamps come from the injected Clock, so virtual-time tests give
// deterministic captures. Bytes are recorded verbatim, malformed packets included.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "stack/core/clock.h"
#include "stack/netif/forwarding_link.h"
#include "stack/netif/pcap_writer.h"

namespace xtcp {

struct PcapTapOptions {
  bool record_sent = true;
  bool record_received = true;
  // Pcap timestamps are wall-clock. When true, the offset between CLOCK_REALTIME and the
  // Clock at open() is added to every timestamp (for programs on SteadyClock). When false,
  // the Clock's value is written as is (virtual-time tests: t = ManualClock::now()).
  bool wall_clock_timestamps = false;
};

struct PcapTapCounters {
  std::uint64_t packets_recorded = 0;
  std::uint64_t bytes_recorded = 0;
  // Zero-length packets: not recorded (libtins, which wrote the files before PcapWriter,
  // could not write them; the capture and these counts stay as they were).
  std::uint64_t packets_not_recorded = 0;
};

class PcapTap final : public ForwardingLink {
 public:
  // Creates (truncates) the pcap file at path. inner and clock must outlive the tap.
  // On failure returns nullptr with a message in *error (may be null).
  static std::unique_ptr<PcapTap> open(Link& inner, const Clock& clock, const std::string& path,
                                       const PcapTapOptions& options, std::string* error);
  static std::unique_ptr<PcapTap> open(Link& inner, const Clock& clock, const std::string& path,
                                       std::string* error) {
    return open(inner, clock, path, PcapTapOptions{}, error);
  }

  // Flushes and closes the file: the capture is complete only once the tap is destroyed
  // (records are not flushed one by one; stdio buffers a few KiB). Write errors (disk
  // full) are not reported: the capture then ends at, or within, the record that failed.
  ~PcapTap() override;
  PcapTap(const PcapTap&) = delete;
  PcapTap& operator=(const PcapTap&) = delete;

  // Records the packet (whatever the inner link then does with it), then forwards it.
  int send(std::span<const std::byte> packet) override;
  // Forwards to the inner link, recording each packet before handing it on.
  int receive_batch(int max_packets, PacketHandler on_packet) override;

  const PcapTapCounters& counters() const { return counters_; }
  const std::string& path() const { return path_; }

 private:
  PcapTap(Link& inner, const Clock& clock, std::string path, const PcapTapOptions& options,
          TimeNs offset, std::unique_ptr<PcapWriter> writer);
  void record(std::span<const std::byte> packet);

  const Clock& clock_;
  std::string path_;
  PcapTapOptions options_;
  TimeNs offset_;  // added to clock_.now() for the pcap timestamp
  std::unique_ptr<PcapWriter> writer_;
  PcapTapCounters counters_;
};

}  // namespace xtcp
