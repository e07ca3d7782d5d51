// CaptureTap implementation: each packet is classified once (its flow from the stack's
// side) and written to every running capture whose filter matches; a capture whose write
// fails is closed on the spot and keeps its errno until stopped.
#include "stack/netif/capture_tap.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <utility>

namespace xtcp {
namespace {

constexpr std::uint8_t kProtoIcmp = 1;
constexpr std::uint8_t kProtoTcp = 6;
constexpr std::size_t kIpv4HeaderMin = 20;
constexpr std::size_t kIcmpHeader = 8;

std::uint32_t be32(const std::byte* p) {
  return static_cast<std::uint32_t>(p[0]) << 24 | static_cast<std::uint32_t>(p[1]) << 16 |
         static_cast<std::uint32_t>(p[2]) << 8 | static_cast<std::uint32_t>(p[3]);
}
std::uint16_t be16(const std::byte* p) {
  return static_cast<std::uint16_t>(static_cast<unsigned>(p[0]) << 8 | static_cast<unsigned>(p[1]));
}

// ICMP messages that quote the packet they are about (RFC 792): destination unreachable,
// source quench, redirect, time exceeded, parameter problem.
bool icmp_quotes_packet(std::uint8_t type) { return type == 3 || type == 4 || type == 5 || type == 11 || type == 12; }

}  // namespace

bool packet_flow(std::span<const std::byte> packet, bool outbound, PacketFlow* out) {
  if (packet.size() < kIpv4HeaderMin || (static_cast<std::uint8_t>(packet[0]) >> 4) != 4) {
    return false;
  }
  const std::size_t ihl = (static_cast<std::size_t>(packet[0]) & 0x0f) * 4;
  const std::uint32_t src = be32(packet.data() + 12);
  const std::uint32_t dst = be32(packet.data() + 16);
  *out = PacketFlow{};
  out->local_addr = outbound ? src : dst;
  out->remote_addr = outbound ? dst : src;
  const bool first_fragment = (be16(packet.data() + 6) & 0x1fff) == 0;
  if (ihl < kIpv4HeaderMin || !first_fragment || packet.size() < ihl + 4) {
    return true;  // no ports to read
  }
  const auto l4 = packet.subspan(ihl);
  const auto protocol = static_cast<std::uint8_t>(packet[9]);
  if (protocol == kProtoTcp) {
    out->local_port = be16(l4.data() + (outbound ? 0 : 2));
    out->remote_port = be16(l4.data() + (outbound ? 2 : 0));
    out->has_ports = true;
    return true;
  }
  if (protocol == kProtoIcmp && l4.size() >= kIcmpHeader + kIpv4HeaderMin &&
      icmp_quotes_packet(static_cast<std::uint8_t>(l4[0]))) {
    // The quoted packet crossed the link the other way: our segment that a router or the
    // peer bounced back, or the peer's segment the stack answers with an ICMP error.
    const auto quoted = l4.subspan(kIcmpHeader);
    PacketFlow inner;
    if (packet_flow(quoted, !outbound, &inner) && static_cast<std::uint8_t>(quoted[9]) == kProtoTcp &&
        inner.has_ports) {
      *out = inner;
    }
  }
  return true;
}

bool filter_matches(const CaptureFilter& filter, const PacketFlow& flow) {
  if (filter.remote_addr != 0 && filter.remote_addr != flow.remote_addr) {
    return false;
  }
  if (filter.needs_ports() && !flow.has_ports) {
    return false;
  }
  return (filter.remote_port == 0 || filter.remote_port == flow.remote_port) &&
         (filter.local_port == 0 || filter.local_port == flow.local_port);
}

CaptureTap::CaptureTap(Link& inner, const Clock& clock, bool wall_clock_timestamps, Logger* logger)
    : ForwardingLink(inner), clock_(clock), logger_(logger) {
  if (wall_clock_timestamps) {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    offset_ = static_cast<TimeNs>(ts.tv_sec) * kNsPerSec + ts.tv_nsec - clock.now();
  }
}

CaptureTap::~CaptureTap() = default;

CaptureTap::Capture* CaptureTap::find(int id) {
  for (Capture& c : captures_) {
    if (id > 0 && c.id == id) {
      return &c;
    }
  }
  return nullptr;
}

const CaptureTap::Capture* CaptureTap::find(int id) const {
  return const_cast<CaptureTap*>(this)->find(id);
}

int CaptureTap::start(const CaptureSpec& spec, std::string* error) {
  Capture* place = nullptr;
  for (Capture& c : captures_) {
    if (c.id == 0) {
      place = &c;
      break;
    }
  }
  if (place == nullptr) {
    if (error != nullptr) {
      *error = std::string("already ") + std::to_string(kMaxCaptures) + " captures (stop one first)";
    }
    return -EMFILE;
  }
  int err = 0;
  std::unique_ptr<CaptureFile> file = CaptureFile::open(spec.file, error, &err);
  if (!file) {
    return -(err != 0 ? err : EIO);
  }
  place->id = next_id_++;
  place->spec = spec;
  place->file = std::move(file);
  place->status = CaptureStatus{};
  place->status.running = true;
  ++running_;
  ++totals_.started;
  totals_.running = static_cast<std::uint64_t>(running_);
  return place->id;
}

int CaptureTap::stop(int id, CaptureStatus* final) {
  Capture* c = find(id);
  if (c == nullptr) {
    return -EBADF;
  }
  if (c->file) {
    const int err = c->file->close();
    c->file.reset();
    --running_;
    totals_.running = static_cast<std::uint64_t>(running_);
    c->status.running = false;
    if (err != 0) {
      c->status.error = err;
      ++totals_.errors;
    }
  }
  if (final != nullptr) {
    *final = c->status;
  }
  const int rc = -c->status.error;
  c->id = 0;
  c->spec = CaptureSpec{};
  return rc;
}

int CaptureTap::status(int id, CaptureStatus* out) const {
  const Capture* c = find(id);
  if (c == nullptr) {
    return -EBADF;
  }
  *out = c->status;
  if (c->file) {
    out->file_index = c->file->file_index();
  }
  return 0;
}

const CaptureSpec* CaptureTap::spec(int id) const {
  const Capture* c = find(id);
  return c != nullptr ? &c->spec : nullptr;
}

void CaptureTap::end_with_error(Capture& c, int err) {
  c.status.file_index = c.file->file_index();
  c.file->close();
  c.file.reset();
  c.status.running = false;
  c.status.error = err;
  --running_;
  totals_.running = static_cast<std::uint64_t>(running_);
  ++totals_.errors;
  if (logger_ != nullptr) {
    logger_->report(LogKind::kCaptureFailed, LogLevel::kError, clock_.now(),
                    "capture %d (%s) stopped: %s; the packets flow on without it", c.id, c.spec.file.path.c_str(),
                    std::strerror(err));
  }
}

void CaptureTap::record(std::span<const std::byte> packet, bool outbound) {
  PacketFlow flow;
  const bool ipv4 = packet_flow(packet, outbound, &flow);
  TimeNs t = clock_.now() + offset_;
  if (t < 0) {
    t = 0;
  }
  const auto us = static_cast<std::uint64_t>(t / kNsPerUs);
  for (Capture& c : captures_) {
    if (!c.file) {
      continue;
    }
    const CaptureFilter& f = c.spec.filter;
    const bool empty = f.remote_addr == 0 && !f.needs_ports();
    if (!(ipv4 ? filter_matches(f, flow) : empty)) {
      continue;
    }
    const std::uint64_t truncated_before = c.file->packets_truncated();
    const int err = c.file->record(us, packet);
    if (err != 0) {
      end_with_error(c, err);
      continue;
    }
    const std::size_t kept = std::min<std::size_t>(packet.size(), c.spec.file.snaplen);
    ++c.status.packets;
    c.status.bytes += kept;
    ++totals_.packets;
    totals_.bytes += kept;
    if (c.file->packets_truncated() != truncated_before) {
      ++c.status.truncated;
      ++totals_.truncated;
    }
  }
}

int CaptureTap::send(std::span<const std::byte> packet) {
  if (running_ != 0) {
    record(packet, true);
  }
  return inner_.send(packet);
}

int CaptureTap::receive_batch(int max_packets, PacketHandler on_packet) {
  if (running_ == 0) {
    return inner_.receive_batch(max_packets, on_packet);
  }
  auto recording = [this, &on_packet](std::span<const std::byte> packet) {
    if (running_ != 0) {
      record(packet, false);
    }
    on_packet(packet);
  };
  return inner_.receive_batch(max_packets, recording);
}

}  // namespace xtcp
