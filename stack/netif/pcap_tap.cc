// PcapTap implementation: each packet is appended verbatim to a LINKTYPE_RAW file by
// PcapWriter, so truncated or corrupt packets are recorded exactly as they crossed the
// link; timestamps are the Clock (plus the wall-clock offset) in microseconds.
#include "stack/netif/pcap_tap.h"

#include <ctime>
#include <utility>

namespace xtcp {

std::unique_ptr<PcapTap> PcapTap::open(Link& inner, const Clock& clock, const std::string& path,
                                       const PcapTapOptions& options, std::string* error) {
  std::unique_ptr<PcapWriter> writer = PcapWriter::open(path, kPcapLinkTypeRaw, kPcapSnapLen, error);
  if (writer == nullptr) {
    return nullptr;
  }
  TimeNs offset = 0;
  if (options.wall_clock_timestamps) {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    offset = static_cast<TimeNs>(ts.tv_sec) * kNsPerSec + ts.tv_nsec - clock.now();
  }
  return std::unique_ptr<PcapTap>(
      new PcapTap(inner, clock, path, options, offset, std::move(writer)));
}

PcapTap::PcapTap(Link& inner, const Clock& clock, std::string path, const PcapTapOptions& options,
                 TimeNs offset, std::unique_ptr<PcapWriter> writer)
    : ForwardingLink(inner),
      clock_(clock),
      path_(std::move(path)),
      options_(options),
      offset_(offset),
      writer_(std::move(writer)) {}

PcapTap::~PcapTap() = default;

void PcapTap::record(std::span<const std::byte> packet) {
  if (packet.empty()) {
    ++counters_.packets_not_recorded;
    return;
  }
  TimeNs t = clock_.now() + offset_;
  if (t < 0) {
    t = 0;
  }
  // As before, a record lost to a write error still counts as recorded (not reported).
  writer_->write(static_cast<std::uint64_t>(t / kNsPerUs), packet);
  ++counters_.packets_recorded;
  counters_.bytes_recorded += packet.size();
}

int PcapTap::send(std::span<const std::byte> packet) {
  if (options_.record_sent) {
    record(packet);
  }
  return inner_.send(packet);
}

int PcapTap::receive_batch(int max_packets, PacketHandler on_packet) {
  if (!options_.record_received) {
    return inner_.receive_batch(max_packets, on_packet);
  }
  auto recording = [this, &on_packet](std::span<const std::byte> packet) {
    record(packet);
    on_packet(packet);
  };
  return inner_.receive_batch(max_packets, recording);
}

}  // namespace xtcp
