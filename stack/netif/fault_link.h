// Impairs any link in both directions (loss, duplication, reordering, delay, corruption)
// by routing its packets through a MemLinkPair, whose seeded fault model does the work:
//   stack --send--> pair.a ~~faults~~> pair.b --> inner.send
//   inner.receive --> pair.b ~~faults~~> pair.a --> stack
// Used on a TUN device to impair traffic with real kernel peers where tc netem is missing.
#pragma once

#include "stack/netif/mem_link.h"

namespace xtcp {

class FaultLink final : public Link {
 public:
  FaultLink(Link& inner, Clock& clock, const MemLinkFaults& to_inner, const MemLinkFaults& from_inner)
      : inner_(inner), pair_(clock, to_inner, from_inner, inner.mtu()) {}

  int send(std::span<const std::byte> packet) override;
  int receive_batch(int max_packets, PacketHandler on_packet) override;
  // Moves the packets whose delay is over to the inner link, then flushes it (a batching
  // inner link holds them until then).
  int flush() override;
  int poll_fd() const override { return inner_.poll_fd(); }
  std::size_t mtu() const override { return inner_.mtu(); }
  TimeNs next_event_time() const override { return pair_.next_delivery_time(); }

  const MemLinkCounters& counters_to_inner() const { return pair_.counters(MemLinkDirection::a_to_b); }
  const MemLinkCounters& counters_from_inner() const { return pair_.counters(MemLinkDirection::b_to_a); }

 private:
  void flush_to_inner();

  Link& inner_;
  MemLinkPair pair_;
};

}  // namespace xtcp
