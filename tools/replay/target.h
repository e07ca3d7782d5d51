// Where xtcp-replay sends the client packets: an xtcp server in this process, over the
// in-memory link in virtual time (in_process_target.cc), or a running xtcp program behind
// a TUN device, reached from the kernel's side of it (tun_target.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "stack/core/clock.h"
#include "tools/replay/packet.h"

namespace xtcp::replay {

using PacketFn = std::function<void(std::span<const std::byte>)>;

class Target {
 public:
  virtual ~Target() = default;
  // The target's clock: virtual for the in-process server, CLOCK_MONOTONIC over TUN.
  virtual TimeNs now() const = 0;
  // Sends one IPv4 packet from a client to the server. 0, or a negative errno.
  virtual int send(std::span<const std::byte> ip) = 0;
  // Lets the server run until it has sent something or `until` has come, and hands every
  // packet it sent towards the clients to on_packet. 0, or a negative errno.
  virtual int run(TimeNs until, const PacketFn& on_packet) = 0;
  // Lets the server take what was sent and hands over what it sent back, without waiting
  // (and without moving virtual time): replay calls it after every client packet, so the
  // server meets them one by one, as the captured server did. 0, or a negative errno.
  virtual int poll(const PacketFn& on_packet) = 0;
  // The server's counters worth reporting (in-process only: "tcp.bad_checksum 1 ...").
  virtual std::string server_counters() const { return {}; }
};

// The service the in-process server runs: xtcp-echo's or xtcp-im's logic.
enum class Service { kEcho, kIm };

// A deliberately broken in-process server, to see that replay notices: change-byte flips
// one bit of the first data byte the server sends (checksum fixed, so the client takes it);
// fin-to-rst sends a RST in place of every FIN the server sends.
enum class Fault { kNone, kChangeByte, kFinToRst };

struct InProcessOptions {
  Service service = Service::kEcho;
  Endpoint server;           // the address and port the server answers at
  bool im_presence_all = true;  // xtcp-im --presence all (default) or watched
  Fault fault = Fault::kNone;
  TimeNs start = seconds(100);  // the virtual clock's first value
};

// nullptr with *error on failure. Only one may exist at a time (it is the process's XTCP
// runtime).
std::unique_ptr<Target> make_in_process_target(const InProcessOptions& options, std::string* error);

struct TunOptions {
  std::string device;  // the TUN interface (kernel side) the live server sits behind
};
// Opens a packet socket on the device (sending and receiving) in the calling process's
// network namespace. nullptr with *error on failure.
std::unique_ptr<Target> make_tun_target(const TunOptions& options, const Endpoint& server, std::string* error);

}  // namespace xtcp::replay

namespace xtcp::replay {
// True when the kernel of this network namespace owns addr: it would answer (or reset) the
// flows of a replayed client with that address itself.
bool kernel_owns_address(std::uint32_t addr);
}  // namespace xtcp::replay
