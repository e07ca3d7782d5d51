// TunLink: a Link over a Linux TUN device (IFF_TUN | IFF_NO_PI, optionally IFF_MULTI_QUEUE).
// Packets the kernel routes to the device are read() by receive_batch; send() write()s one
// IPv4 packet into the kernel. configure_kernel_side() gives the kernel's end an address.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "stack/netif/link.h"

namespace xtcp {

struct TunOptions {
  // Device name. Empty: the kernel picks one (tun0, tun1, ...); read it back with name().
  // An existing device of that name is attached to (another queue, when multi_queue).
  std::string name = "xtcp0";
  // IFF_MULTI_QUEUE: every open() with the same name adds a queue; the kernel spreads
  // flows across queues, one shard per queue. The device must be created with it too.
  bool multi_queue = false;
  // Set on the device with SIOCSIFMTU when non-zero; 0 keeps the device's current MTU.
  std::size_t mtu = 1500;
  // The device's transmit queue (packets the kernel holds for us before dropping), set
  // with SIOCSIFTXQLEN when non-zero; 0 keeps the kernel's default (500).
  std::uint32_t tx_queue_len = 0;
};

struct TunCounters {
  std::uint64_t packets_in = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t packets_out = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t read_errors = 0;   // read() failed with anything but EAGAIN/EINTR
  std::uint64_t send_drops = 0;    // write() returned EAGAIN: packet dropped
  std::uint64_t send_errors = 0;   // write() failed otherwise (device down, bad packet)
};

class TunLink final : public Link {
 public:
  // Largest packet a TUN device carries (IPv4 total length is 16 bits).
  static constexpr std::size_t kMaxPacket = 65535;

  // Opens /dev/net/tun (O_NONBLOCK, O_CLOEXEC) and creates or attaches the device in the
  // network namespace of the calling thread. On failure returns nullptr, and stores a
  // message in *error and a negative errno in *error_code (either may be null).
  static std::unique_ptr<TunLink> open(const TunOptions& options, std::string* error,
                                       int* error_code = nullptr);

  ~TunLink() override;
  TunLink(const TunLink&) = delete;
  TunLink& operator=(const TunLink&) = delete;

  // write()s one packet. 0 on success; -EAGAIN when the kernel would block (counted in
  // send_drops, packet dropped); another negative errno on failure. No flush() of its own
  // (Link's does nothing): a TUN descriptor takes exactly one packet per write(2), and
  // writev(2) on it still makes one packet of all the iovecs, so batching sends needs
  // io_uring (UringTunLink).
  int send(std::span<const std::byte> packet) override;

  // read()s until max_packets were handed over or the device has nothing more (EAGAIN).
  // Returns the count, or a negative errno when the first read fails; a failure after
  // some packets were handed over ends the batch and returns the count (it recurs on
  // the next call).
  int receive_batch(int max_packets, PacketHandler on_packet) override;

  int poll_fd() const override { return fd_; }
  std::size_t mtu() const override { return mtu_; }

  // The device name the kernel assigned (equal to options.name when one was given).
  const std::string& name() const { return name_; }
  const TunCounters& counters() const { return counters_; }

 private:
  TunLink(int fd, std::string name, std::size_t mtu);

  int fd_;
  std::string name_;
  std::size_t mtu_;
  // Sized for the largest IPv4 packet, not for mtu_: the device MTU can be raised behind
  // our back (ip link set mtu), and a short read() would silently truncate a packet.
  std::vector<std::byte> buffer_;
  TunCounters counters_;
};

// Configures the kernel's end of a TUN (or any) interface in the calling thread's network
// namespace: address (SIOCSIFADDR), netmask from prefix_len (SIOCSIFNETMASK), then
// IFF_UP (SIOCSIFFLAGS). addr_host_order is e.g. 0xC6120001 for 198.18.0.1.
// Returns 0, or a negative errno with a message in *error (may be null).
int configure_kernel_side(const std::string& ifname, std::uint32_t addr_host_order,
                          int prefix_len, std::string* error);

// Sets an interface's MTU (SIOCSIFMTU) in the calling thread's network namespace.
// Returns 0, or a negative errno with a message in *error (may be null).
int set_interface_mtu(const std::string& ifname, std::size_t mtu, std::string* error);

// Reads an interface's MTU (SIOCGIFMTU). Returns the MTU, or a negative errno.
int get_interface_mtu(const std::string& ifname, std::string* error);

// Brings an interface up (IFF_UP) without giving it an address, in the calling thread's
// network namespace. Returns 0, or a negative errno with a message in *error.
int set_interface_up(const std::string& ifname, std::string* error);

// Sets the length of an interface's transmit queue (SIOCSIFTXQLEN): for a TUN device, the
// packets the kernel may hold for the reader before it drops (default 500, too few for a
// burst from many clients). Returns 0, or a negative errno with a message in *error.
int set_interface_tx_queue_len(const std::string& ifname, std::uint32_t packets, std::string* error);

// Replaces the interface's root qdisc with "noqueue" (tc qdisc replace dev IF root noqueue),
// in the calling thread's namespace. TunLink::open does it for its device: a TUN device
// queues packets for its reader in its own ring (tx_queue_len per queue) and drops when
// that is full, so the default qdisc in front of it never holds a packet, yet allocates
// rings of tx_queue_len packets per band for every transmit queue the device has: for a
// multi-queue TUN device (256 of them) with a long queue, gigabytes of kernel memory and
// seconds under the kernel's network configuration lock when it comes up. Returns 0, or a
// negative errno with a message in *error.
int set_interface_noqueue(const std::string& ifname, std::string* error);

// Adds a route to net/prefix_len through the interface (SIOCADDRT, no gateway), in the
// calling thread's namespace: how the kernel learns that a load generator's address range
// lies behind its TUN device. An existing identical route is not an error. Returns 0, or a
// negative errno with a message in *error.
int add_device_route(const std::string& ifname, std::uint32_t net_host_order, int prefix_len,
                     std::string* error);

}  // namespace xtcp
