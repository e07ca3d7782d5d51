// The link interface: how a stack exchanges raw IPv4 packets with a device.
// Implementations: TunLink (Linux TUN, one write(2) per packet), UringTunLink (Linux TUN
// through io_uring: sends are queued and handed to the kernel together at flush()), ShmLink
// (shared-memory rings between two processes), MemLink (in-memory pair with fault
// injection), PcapTap (mirrors any link into a pcap file). The stack owns no device; it is
// handed a Link.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "stack/core/clock.h"
#include "stack/core/function_ref.h"

namespace xtcp {

using PacketHandler = FunctionRef<void(std::span<const std::byte>)>;

class Link {
 public:
  virtual ~Link() = default;

  // Sends one IPv4 packet (no link header). Returns 0, or a negative errno
  // (-EAGAIN when the device queue is full: the packet is dropped, TCP will retransmit).
  // A batching link (UringTunLink) may only queue the packet here; it reaches the device
  // at flush() at the latest.
  virtual int send(std::span<const std::byte> packet) = 0;

  // Hands every packet queued by send() to the device without waiting for it to be
  // written. Returns how many packets were handed over (0 when none waited), or a negative
  // errno (the packets stay queued for the next flush). Whoever drives a link calls it
  // before it sleeps or gives control away (Stack::poll after each receive round and after
  // the timers; the API runtime before it blocks or returns to the application), so a
  // batching link never holds an answer while its process waits.
  // The default has nothing to do: links whose send() hands the packet over at once. A TUN
  // descriptor takes exactly one packet per write(2) (no writev/sendmmsg batching on a
  // character device), so TunLink cannot batch without io_uring; ShmLink and MemLink
  // publish each packet to their ring or queue in send() already.
  virtual int flush() { return 0; }

  // Non-blocking: hands up to max_packets waiting packets to on_packet, one call each.
  // The span is valid only during the call. Returns how many were handed over, or a
  // negative errno on device failure.
  virtual int receive_batch(int max_packets, PacketHandler on_packet) = 0;

  // A descriptor that becomes readable when packets wait, or -1 if the link has none
  // (in-memory links are polled).
  virtual int poll_fd() const { return -1; }

  // Largest IPv4 packet the link carries.
  virtual std::size_t mtu() const = 0;

  // When a link holds packets back (delay injection), the moment the next one is due;
  // the run loop wakes up then even if poll_fd() stays quiet.
  virtual TimeNs next_event_time() const { return kNever; }
};

}  // namespace xtcp
