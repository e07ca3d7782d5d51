// FaultLink: moves packets through the pair's fault model on every send and receive.
#include "stack/netif/fault_link.h"

namespace xtcp {

void FaultLink::flush_to_inner() {
  while (pair_.b().receive_batch(64, [this](std::span<const std::byte> p) { inner_.send(p); }) == 64) {
  }
}

int FaultLink::send(std::span<const std::byte> packet) {
  const int rc = pair_.a().send(packet);
  flush_to_inner();
  return rc;
}

int FaultLink::flush() {
  flush_to_inner();
  return inner_.flush();
}

int FaultLink::receive_batch(int max_packets, PacketHandler on_packet) {
  flush_to_inner();  // delayed packets toward the device whose time has come
  const int n = inner_.receive_batch(max_packets, [this](std::span<const std::byte> p) { pair_.b().send(p); });
  if (n < 0) {
    return n;
  }
  return pair_.a().receive_batch(max_packets, on_packet);
}

}  // namespace xtcp
