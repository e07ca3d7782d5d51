// CaptureTap: a Link that wraps another Link and, while captures run, writes the packets
// that match each capture's filter (both directions) to that capture's pcap files
// (CaptureFile: LINKTYPE_RAW, snapshot length, rotation by size). Up to kMaxCaptures run at
// once; with none running a packet costs one branch. Started and stopped at any time.
//
// A filter matches by the flow's 4-tuple as seen from the stack (local = the stack's end):
// remote address, remote port and local port, each either required or any. Every packet
// of a matching flow is written: SYN and handshake, retransmissions, FIN and RST, and
// ICMP errors that quote one of its segments. Fields with ports need a TCP header: a
// later fragment of a fragmented packet (no ports) matches only filters without ports.
// A filter with no field set matches every packet. Bytes are written as they cross the
// link, malformed packets included.
//
// Writes go through a 64 KiB stdio buffer per capture (one write(2) when it fills) on a
// non-blocking descriptor. A write, flush or open that fails (disk full, a FIFO whose
// reader stalls, a removed directory) ends that capture at once: its files are closed,
// the error is counted and kept for stop()/status(), and the packets flow on untouched.
//
//   Stack --send--> CaptureTap --match? record--> CaptureFile(s) ; --> inner link
//   inner link --receive_batch--> CaptureTap --match? record--> --> Stack
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "stack/core/clock.h"
#include "stack/core/log.h"
#include "stack/netif/capture_file.h"
#include "stack/netif/forwarding_link.h"

namespace xtcp {

// Which packets a capture takes: 0 in a field means any (addresses in host order).
struct CaptureFilter {
  std::uint32_t remote_addr = 0;
  std::uint16_t remote_port = 0;
  std::uint16_t local_port = 0;
  bool needs_ports() const { return remote_port != 0 || local_port != 0; }
};

// The flow a packet belongs to, seen from the stack; ports 0 when it carries none.
struct PacketFlow {
  std::uint32_t local_addr = 0;
  std::uint32_t remote_addr = 0;
  std::uint16_t local_port = 0;
  std::uint16_t remote_port = 0;
  bool has_ports = false;
};

// Reads the flow of an IPv4 packet that the stack sent (outbound) or received: a TCP
// segment's own addresses and ports, or those of the TCP segment an ICMP error quotes.
// False for what is not IPv4 (the packet then matches only empty filters).
bool packet_flow(std::span<const std::byte> packet, bool outbound, PacketFlow* out);
bool filter_matches(const CaptureFilter& filter, const PacketFlow& flow);

struct CaptureSpec {
  CaptureFilter filter;
  CaptureFileOptions file;
};

// One capture, while it runs or once an error ended it.
struct CaptureStatus {
  bool running = false;          // false once an error ended it
  int error = 0;                 // the errno that ended it (0 while running)
  std::uint64_t packets = 0;     // packets written
  std::uint64_t bytes = 0;       // packet bytes written (after the snapshot length)
  std::uint64_t truncated = 0;   // packets cut to the snapshot length
  std::uint64_t file_index = 0;  // the file being written: 0 the path, N its N-th rotation
};

// Over every capture since the tap was made.
struct CaptureTotals {
  std::uint64_t started = 0;
  std::uint64_t running = 0;   // now
  std::uint64_t packets = 0;   // written, all captures
  std::uint64_t bytes = 0;
  std::uint64_t truncated = 0;
  std::uint64_t errors = 0;    // captures ended by a failed write, flush or open of the next file
};

class CaptureTap final : public ForwardingLink {
 public:
  static constexpr int kMaxCaptures = 16;

  // inner and clock (and logger, if given) must outlive the tap. wall_clock_timestamps: the
  // offset between CLOCK_REALTIME and clock at construction is added to every timestamp
  // (programs on SteadyClock); else the Clock's value is written as is (virtual time).
  CaptureTap(Link& inner, const Clock& clock, bool wall_clock_timestamps, Logger* logger = nullptr);
  ~CaptureTap() override;
  CaptureTap(const CaptureTap&) = delete;
  CaptureTap& operator=(const CaptureTap&) = delete;

  // Opens the capture's first file and starts matching packets. A positive id (never
  // reused by this tap), -EMFILE when kMaxCaptures captures (running or ended by an error
  // and not yet stopped) exist, or -errno of the failed open with *error set.
  int start(const CaptureSpec& spec, std::string* error);
  // Ends the capture and frees its place: its files are flushed and closed. Fills *final
  // (may be null). 0, -errno of the write or flush that failed (then or before), -EBADF
  // (no such capture).
  int stop(int id, CaptureStatus* final);
  // 0 and *out, or -EBADF.
  int status(int id, CaptureStatus* out) const;
  const CaptureTotals& totals() const { return totals_; }
  // The spec a capture was started with, or nullptr.
  const CaptureSpec* spec(int id) const;

  // Write the packet to the captures it matches, then hand it on.
  int send(std::span<const std::byte> packet) override;
  int receive_batch(int max_packets, PacketHandler on_packet) override;

 private:
  struct Capture {
    int id = 0;  // 0: free place
    CaptureSpec spec;
    std::unique_ptr<CaptureFile> file;  // null once an error ended the capture
    CaptureStatus status;
  };
  void record(std::span<const std::byte> packet, bool outbound);
  void end_with_error(Capture& c, int err);
  Capture* find(int id);
  const Capture* find(int id) const;

  const Clock& clock_;
  Logger* logger_;
  TimeNs offset_ = 0;  // added to clock_.now() for the pcap timestamp
  std::array<Capture, kMaxCaptures> captures_;
  int running_ = 0;    // captures with a file: packets are looked at only while > 0
  int next_id_ = 1;
  CaptureTotals totals_;
};

}  // namespace xtcp
