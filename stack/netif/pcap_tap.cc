// PcapTap implementation: each packet is copied into one reused Tins::RawPDU and written
// with Tins::PacketWriter on a LINKTYPE_RAW file. RawPDU serializes its bytes verbatim, so
// truncated or corrupt packets are recorded exactly as they crossed the link.
#include "stack/netif/pcap_tap.h"

#include <fcntl.h>
#include <tins/packet.h>
#include <tins/packet_writer.h>
#include <tins/rawpdu.h>
#include <tins/timestamp.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <exception>
#include <utility>

namespace xtcp {
namespace {
// Tag naming "bare IP packets, no link header" for libtins. libtins 4.0 maps no PDU type
// to DLT_RAW, but PacketWriter takes any DataLinkType<T>; this specialization supplies it.
struct RawIpLinkType {};
}  // namespace
}  // namespace xtcp

namespace Tins {
template <>
struct DataLinkType<xtcp::RawIpLinkType> {
  static const int type = DLT_RAW;  // libpcap writes it to the file as LINKTYPE_RAW (101)
  int get_type() const { return type; }
};
}  // namespace Tins

namespace xtcp {

std::unique_ptr<PcapTap> PcapTap::open(Link& inner, const Clock& clock, const std::string& path,
                                       const PcapTapOptions& options, std::string* error) {
  // Check the file can be created before libtins tries: libtins 4.0's PacketWriter reads
  // pcap_geterr() of a handle it has already closed when pcap_dump_open fails (a
  // use-after-free that AddressSanitizer reports), so its error path must not be reached.
  const int probe = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (probe < 0) {
    if (error != nullptr) {
      *error = "cannot open pcap file '" + path + "': " + std::strerror(errno);
    }
    return nullptr;
  }
  ::close(probe);

  std::unique_ptr<Tins::PacketWriter> writer;
  try {
    writer = std::make_unique<Tins::PacketWriter>(path, Tins::DataLinkType<RawIpLinkType>());
  } catch (const std::exception& e) {
    if (error != nullptr) {
      *error = "cannot open pcap file '" + path + "': " + e.what();
    }
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
                 TimeNs offset, std::unique_ptr<Tins::PacketWriter> writer)
    : inner_(inner),
      clock_(clock),
      path_(std::move(path)),
      options_(options),
      offset_(offset),
      writer_(std::move(writer)),
      scratch_(std::make_unique<Tins::RawPDU>(Tins::RawPDU::payload_type{})) {}

// Out of line so Tins::PacketWriter is complete where unique_ptr deletes it.
PcapTap::~PcapTap() = default;

void PcapTap::record(std::span<const std::byte> packet) {
  if (packet.empty()) {
    // PacketWriter indexes buffer[0] of the serialized PDU; nothing to write anyway.
    ++counters_.packets_not_recorded;
    return;
  }
  const auto* first = reinterpret_cast<const std::uint8_t*>(packet.data());
  scratch_->payload().assign(first, first + packet.size());

  TimeNs t = clock_.now() + offset_;
  if (t < 0) {
    t = 0;
  }
  const Tins::Timestamp stamp{std::chrono::microseconds(t / kNsPerUs)};
  // The Packet borrows scratch_ and must hand it back before it is destroyed.
  Tins::Packet pkt(scratch_.get(), stamp, Tins::Packet::own_pdu());
  struct GiveBack {
    Tins::Packet& p;
    ~GiveBack() { p.release_pdu(); }
  } give_back{pkt};
  writer_->write(pkt);
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
