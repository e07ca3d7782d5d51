// ForwardingLink: the base of links that sit on another link and look at its packets
// (PcapTap, CaptureTap): everything is handed to the inner link unless overridden.
#pragma once

#include <cstddef>
#include <span>

#include "stack/netif/link.h"

namespace xtcp {

class ForwardingLink : public Link {
 public:
  int send(std::span<const std::byte> packet) override { return inner_.send(packet); }
  int receive_batch(int max_packets, PacketHandler on_packet) override {
    return inner_.receive_batch(max_packets, on_packet);
  }
  // Packets are looked at when sent, whatever the inner link queues: flushing is its job.
  int flush() override { return inner_.flush(); }
  int poll_fd() const override { return inner_.poll_fd(); }
  std::size_t mtu() const override { return inner_.mtu(); }
  TimeNs next_event_time() const override { return inner_.next_event_time(); }

 protected:
  // inner must outlive this link.
  explicit ForwardingLink(Link& inner) : inner_(inner) {}
  Link& inner_;
};

}  // namespace xtcp
