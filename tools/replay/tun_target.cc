// The TUN target: a running xtcp program behind a TUN device, reached from the kernel's
// side, through one packet socket bound to the device: the client packets are written onto
// the device as they are (the server reads them from its TUN descriptor), and the server's
// answers, which come in on the device, are read from it. The kernel must not answer those flows
// itself: the clients' addresses must be ones it does not own (docs/replay.md), which
// make_tun_target checks.
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "stack/wire/bytes.h"
#include "tools/replay/target.h"

namespace xtcp::replay {

namespace {

class TunTarget final : public Target {
 public:
  TunTarget(int packet, int ifindex, Endpoint server) : packet_(packet), ifindex_(ifindex), server_(server) {}
  ~TunTarget() override { ::close(packet_); }

  TimeNs now() const override { return clock_.now(); }

  // Straight onto the device through the packet socket, bytes as they are: a raw IPv4
  // socket would fill in the header's checksum and total length (raw(7)) and refuse a bad
  // header length, and the adversarial captures carry those wrong on purpose.
  int send(std::span<const std::byte> ip) override {
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_protocol = htons(ETH_P_IP);
    to.sll_ifindex = ifindex_;
    if (::sendto(packet_, ip.data(), ip.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) < 0) {
      return -errno;
    }
    return 0;
  }

  int run(TimeNs until, const PacketFn& on_packet) override {
    const TimeNs wait = std::max<TimeNs>(0, until - clock_.now());
    pollfd pfd{packet_, POLLIN, 0};
    const int rc = ::poll(&pfd, 1, static_cast<int>(std::min<TimeNs>((wait + kNsPerMs - 1) / kNsPerMs, 1000)));
    if (rc < 0) {
      return errno == EINTR ? 0 : -errno;
    }
    return poll(on_packet);
  }

  int poll(const PacketFn& on_packet) override {
    for (;;) {
      sockaddr_ll from{};
      socklen_t len = sizeof from;
      const ssize_t n = ::recvfrom(packet_, buf_.data(), buf_.size(), MSG_DONTWAIT,
                                   reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 0) {
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -errno;
      }
      if (from.sll_pkttype == PACKET_OUTGOING) {
        continue;  // our own client packets on their way in
      }
      const std::span<const std::byte> p(buf_.data(), static_cast<std::size_t>(n));
      const TcpFacts f = read_tcp_facts(p);
      if (f.valid && f.src == server_) {
        on_packet(p);
      }
    }
  }

 private:
  int packet_;
  int ifindex_;
  Endpoint server_;
  SteadyClock clock_;
  std::vector<std::byte> buf_ = std::vector<std::byte>(65536);
};

}  // namespace

std::unique_ptr<Target> make_tun_target(const TunOptions& options, const Endpoint& server, std::string* error) {
  const unsigned ifindex = ::if_nametoindex(options.device.c_str());
  if (ifindex == 0) {
    *error = "no interface '" + options.device + "' in this network namespace";
    return nullptr;
  }
  const int packet = ::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_IP));
  if (packet < 0) {
    *error = std::string("cannot open a packet socket (needs root or CAP_NET_RAW): ") + std::strerror(errno);
    return nullptr;
  }
  sockaddr_ll at{};
  at.sll_family = AF_PACKET;
  at.sll_protocol = htons(ETH_P_IP);
  at.sll_ifindex = static_cast<int>(ifindex);
  if (::bind(packet, reinterpret_cast<const sockaddr*>(&at), sizeof at) < 0) {
    *error = "cannot bind a packet socket to '" + options.device + std::string("': ") + std::strerror(errno);
    ::close(packet);
    return nullptr;
  }
  return std::make_unique<TunTarget>(packet, static_cast<int>(ifindex), server);
}

// True when the kernel of this namespace owns addr (it would answer the flow itself).
bool kernel_owns_address(std::uint32_t addr) {
  const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    return false;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(addr);
  const bool owned = ::bind(s, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0;
  ::close(s);
  return owned;
}

}  // namespace xtcp::replay
