// TunLink implementation: TUNSETIFF on /dev/net/tun, non-blocking read()/write() of bare
// IPv4 packets, and the ioctls (on a throwaway AF_INET socket) that configure the kernel's
// end of the interface. Every failure is returned as a negative errno plus a message.
#include "stack/netif/tun_link.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <linux/route.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace xtcp {
namespace {

void set_error(std::string* error, const std::string& what, int err) {
  if (error != nullptr) {
    *error = what + ": " + std::strerror(err);
  }
}

// Fills ifr.ifr_name, or returns -EINVAL when the name does not fit.
int set_ifname(ifreq& ifr, const std::string& ifname, std::string* error) {
  if (ifname.size() >= IFNAMSIZ || ifname.find('/') != std::string::npos) {
    set_error(error, "invalid interface name '" + ifname + "'", EINVAL);
    return -EINVAL;
  }
  std::memcpy(ifr.ifr_name, ifname.c_str(), ifname.size() + 1);
  return 0;
}

// A datagram socket for interface ioctls; closes itself.
class IoctlSocket {
 public:
  IoctlSocket() : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {}
  ~IoctlSocket() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  IoctlSocket(const IoctlSocket&) = delete;
  IoctlSocket& operator=(const IoctlSocket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

int ioctl_checked(int fd, unsigned long request, ifreq& ifr, const char* what,
                  std::string* error) {
  if (::ioctl(fd, request, &ifr) < 0) {
    const int err = errno;
    set_error(error, std::string(what) + " on " + ifr.ifr_name, err);
    return -err;
  }
  return 0;
}

void set_sockaddr_in(sockaddr& sa, std::uint32_t addr_host_order) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(addr_host_order);
  std::memcpy(&sa, &sin, sizeof sin);
}

}  // namespace

std::unique_ptr<TunLink> TunLink::open(const TunOptions& options, std::string* error,
                                       int* error_code) {
  auto fail = [&](int err) -> std::unique_ptr<TunLink> {
    if (error_code != nullptr) {
      *error_code = err;
    }
    return nullptr;
  };
  if (options.mtu > kMaxPacket || (options.mtu != 0 && options.mtu < 68)) {
    set_error(error, "TUN MTU " + std::to_string(options.mtu) + " outside 68..65535", EINVAL);
    return fail(-EINVAL);
  }
  ifreq ifr{};
  if (!options.name.empty()) {
    if (int rc = set_ifname(ifr, options.name, error); rc < 0) {
      return fail(rc);
    }
  }
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  if (options.multi_queue) {
    ifr.ifr_flags |= IFF_MULTI_QUEUE;
  }

  const int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    set_error(error, "open /dev/net/tun", err);
    return fail(-err);
  }
  if (::ioctl(fd, TUNSETIFF, &ifr) < 0) {
    const int err = errno;
    // The kernel answers EINVAL when a device of that name exists and is not a TUN device
    // (or a TUN device made with other flags), EBUSY when another process has it open.
    std::string why = "cannot open TUN device \"" + options.name + "\"" +
                      (options.multi_queue ? " (multi-queue)" : "");
    if (err == EINVAL && !options.name.empty() && get_interface_mtu(options.name, nullptr) > 0) {
      why += ": a device of that name exists and is not a TUN device with these flags";
    } else if (err == EBUSY) {
      why += ": another process has it open";
    }
    set_error(error, why, err);
    ::close(fd);
    return fail(-err);
  }
  std::string name(ifr.ifr_name, ::strnlen(ifr.ifr_name, IFNAMSIZ));
  if (int rc = set_interface_noqueue(name, error); rc < 0) {
    ::close(fd);
    return fail(rc);
  }
  if (options.tx_queue_len != 0) {
    if (int rc = set_interface_tx_queue_len(name, options.tx_queue_len, error); rc < 0) {
      ::close(fd);
      return fail(rc);
    }
  }

  int mtu = 0;
  if (options.mtu != 0) {
    if (int rc = set_interface_mtu(name, options.mtu, error); rc < 0) {
      ::close(fd);
      return fail(rc);
    }
    mtu = static_cast<int>(options.mtu);
  } else {
    mtu = get_interface_mtu(name, error);
    if (mtu < 0) {
      ::close(fd);
      return fail(mtu);
    }
  }
  return std::unique_ptr<TunLink>(new TunLink(fd, std::move(name), static_cast<std::size_t>(mtu)));
}

TunLink::TunLink(int fd, std::string name, std::size_t mtu)
    : fd_(fd), name_(std::move(name)), mtu_(mtu), buffer_(kMaxPacket) {}

TunLink::~TunLink() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

int TunLink::send(std::span<const std::byte> packet) {
  for (;;) {
    const ssize_t n = ::write(fd_, packet.data(), packet.size());
    if (n >= 0) {
      // A TUN write takes the whole packet or fails; there are no short writes.
      ++counters_.packets_out;
      counters_.bytes_out += static_cast<std::uint64_t>(n);
      return 0;
    }
    const int err = errno;
    if (err == EINTR) {
      continue;
    }
    if (err == EAGAIN || err == EWOULDBLOCK) {
      ++counters_.send_drops;
      return -EAGAIN;
    }
    ++counters_.send_errors;
    return -err;
  }
}

int TunLink::receive_batch(int max_packets, PacketHandler on_packet) {
  int handed = 0;
  while (handed < max_packets) {
    const ssize_t n = ::read(fd_, buffer_.data(), buffer_.size());
    if (n > 0) {
      ++counters_.packets_in;
      counters_.bytes_in += static_cast<std::uint64_t>(n);
      ++handed;
      on_packet(std::span<const std::byte>(buffer_.data(), static_cast<std::size_t>(n)));
      continue;
    }
    if (n == 0) {
      break;  // not produced by TUN in practice; treat as "nothing waiting"
    }
    const int err = errno;
    if (err == EINTR) {
      continue;
    }
    if (err == EAGAIN || err == EWOULDBLOCK) {
      break;
    }
    ++counters_.read_errors;
    return handed > 0 ? handed : -err;
  }
  return handed;
}

int set_interface_mtu(const std::string& ifname, std::size_t mtu, std::string* error) {
  ifreq ifr{};
  if (int rc = set_ifname(ifr, ifname, error); rc < 0) {
    return rc;
  }
  if (mtu > TunLink::kMaxPacket) {
    set_error(error, "MTU " + std::to_string(mtu) + " too large", EINVAL);
    return -EINVAL;
  }
  IoctlSocket sock;
  if (sock.fd() < 0) {
    const int err = errno;
    set_error(error, "socket(AF_INET) for interface ioctls", err);
    return -err;
  }
  ifr.ifr_mtu = static_cast<int>(mtu);
  return ioctl_checked(sock.fd(), SIOCSIFMTU, ifr, "SIOCSIFMTU", error);
}

int get_interface_mtu(const std::string& ifname, std::string* error) {
  ifreq ifr{};
  if (int rc = set_ifname(ifr, ifname, error); rc < 0) {
    return rc;
  }
  IoctlSocket sock;
  if (sock.fd() < 0) {
    const int err = errno;
    set_error(error, "socket(AF_INET) for interface ioctls", err);
    return -err;
  }
  if (int rc = ioctl_checked(sock.fd(), SIOCGIFMTU, ifr, "SIOCGIFMTU", error); rc < 0) {
    return rc;
  }
  return ifr.ifr_mtu;
}

int configure_kernel_side(const std::string& ifname, std::uint32_t addr_host_order,
                          int prefix_len, std::string* error) {
  if (prefix_len < 0 || prefix_len > 32) {
    set_error(error, "prefix length " + std::to_string(prefix_len) + " outside 0..32", EINVAL);
    return -EINVAL;
  }
  ifreq ifr{};
  if (int rc = set_ifname(ifr, ifname, error); rc < 0) {
    return rc;
  }
  IoctlSocket sock;
  if (sock.fd() < 0) {
    const int err = errno;
    set_error(error, "socket(AF_INET) for interface ioctls", err);
    return -err;
  }

  set_sockaddr_in(ifr.ifr_addr, addr_host_order);
  if (int rc = ioctl_checked(sock.fd(), SIOCSIFADDR, ifr, "SIOCSIFADDR", error); rc < 0) {
    return rc;
  }

  const std::uint32_t mask =
      prefix_len == 0 ? 0u : ~std::uint32_t{0} << (32 - prefix_len);
  set_sockaddr_in(ifr.ifr_netmask, mask);
  if (int rc = ioctl_checked(sock.fd(), SIOCSIFNETMASK, ifr, "SIOCSIFNETMASK", error); rc < 0) {
    return rc;
  }

  if (int rc = ioctl_checked(sock.fd(), SIOCGIFFLAGS, ifr, "SIOCGIFFLAGS", error); rc < 0) {
    return rc;
  }
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
  return ioctl_checked(sock.fd(), SIOCSIFFLAGS, ifr, "SIOCSIFFLAGS", error);
}

int set_interface_up(const std::string& ifname, std::string* error) {
  ifreq ifr{};
  if (int rc = set_ifname(ifr, ifname, error); rc < 0) {
    return rc;
  }
  IoctlSocket sock;
  if (sock.fd() < 0) {
    const int err = errno;
    set_error(error, "socket(AF_INET) for interface ioctls", err);
    return -err;
  }
  if (int rc = ioctl_checked(sock.fd(), SIOCGIFFLAGS, ifr, "SIOCGIFFLAGS", error); rc < 0) {
    return rc;
  }
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
  return ioctl_checked(sock.fd(), SIOCSIFFLAGS, ifr, "SIOCSIFFLAGS", error);
}

int set_interface_tx_queue_len(const std::string& ifname, std::uint32_t packets, std::string* error) {
  ifreq ifr{};
  if (int rc = set_ifname(ifr, ifname, error); rc < 0) {
    return rc;
  }
  if (packets == 0 || packets > INT32_MAX) {
    set_error(error, "transmit queue length " + std::to_string(packets), EINVAL);
    return -EINVAL;
  }
  IoctlSocket sock;
  if (sock.fd() < 0) {
    const int err = errno;
    set_error(error, "socket(AF_INET) for interface ioctls", err);
    return -err;
  }
  // Setting a length, even the one the device has, makes a TUN device reallocate the packet
  // ring of every queue it has (seconds for a multi-queue device with long queues, under the
  // kernel's global network configuration lock): a shard attaching its queue to a device
  // another shard already set up leaves the length alone.
  if (::ioctl(sock.fd(), SIOCGIFTXQLEN, &ifr) == 0 && ifr.ifr_qlen == static_cast<int>(packets)) {
    return 0;
  }
  ifr.ifr_qlen = static_cast<int>(packets);
  return ioctl_checked(sock.fd(), SIOCSIFTXQLEN, ifr, "SIOCSIFTXQLEN", error);
}

int set_interface_noqueue(const std::string& ifname, std::string* error) {
  ifreq ifr{};
  if (int rc = set_ifname(ifr, ifname, error); rc < 0) {
    return rc;
  }
  {
    IoctlSocket s;
    if (s.fd() < 0) {
      const int err = errno;
      set_error(error, "socket(AF_INET) for interface ioctls", err);
      return -err;
    }
    if (int rc = ioctl_checked(s.fd(), SIOCGIFINDEX, ifr, "SIOCGIFINDEX", error); rc < 0) {
      return rc;
    }
  }
  const int index = ifr.ifr_ifindex;
  const int sock = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (sock < 0) {
    const int err = errno;
    set_error(error, "socket(AF_NETLINK) for the qdisc of " + ifname, err);
    return -err;
  }
  // RTM_NEWQDISC, replace the root qdisc with "noqueue" (tc qdisc replace dev IF root noqueue).
  struct Request {
    nlmsghdr nh;
    tcmsg tc;
    char attrs[64];
  } req{};
  req.nh.nlmsg_type = RTM_NEWQDISC;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
  req.nh.nlmsg_seq = 1;
  req.tc.tcm_family = AF_UNSPEC;
  req.tc.tcm_ifindex = index;
  req.tc.tcm_parent = TC_H_ROOT;
  static constexpr char kKind[] = "noqueue";
  auto* kind = reinterpret_cast<rtattr*>(req.attrs);
  kind->rta_type = TCA_KIND;
  kind->rta_len = static_cast<unsigned short>(RTA_LENGTH(sizeof kKind));
  std::memcpy(RTA_DATA(kind), kKind, sizeof kKind);
  req.nh.nlmsg_len = static_cast<std::uint32_t>(NLMSG_LENGTH(sizeof(tcmsg)) + RTA_ALIGN(kind->rta_len));
  int rc = 0;
  if (::send(sock, &req, req.nh.nlmsg_len, 0) < 0) {
    rc = -errno;
  } else {
    union {
      nlmsghdr nh;
      char bytes[512];
    } ack{};
    const ssize_t n = ::recv(sock, &ack, sizeof ack, 0);
    if (n < 0) {
      rc = -errno;
    } else if (n < static_cast<ssize_t>(NLMSG_LENGTH(sizeof(nlmsgerr))) || ack.nh.nlmsg_type != NLMSG_ERROR) {
      rc = -EPROTO;
    } else {
      rc = reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(&ack.nh))->error;
    }
  }
  ::close(sock);
  if (rc < 0) {
    set_error(error, "setting the qdisc of " + ifname + " to noqueue (RTM_NEWQDISC)", -rc);
  }
  return rc;
}

int add_device_route(const std::string& ifname, std::uint32_t net_host_order, int prefix_len,
                     std::string* error) {
  if (prefix_len < 0 || prefix_len > 32) {
    set_error(error, "prefix length " + std::to_string(prefix_len) + " outside 0..32", EINVAL);
    return -EINVAL;
  }
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) {
    set_error(error, "interface name \"" + ifname + "\"", EINVAL);
    return -EINVAL;
  }
  IoctlSocket sock;
  if (sock.fd() < 0) {
    const int err = errno;
    set_error(error, "socket(AF_INET) for route ioctls", err);
    return -err;
  }
  const std::uint32_t mask = prefix_len == 0 ? 0u : ~std::uint32_t{0} << (32 - prefix_len);
  rtentry rt{};
  set_sockaddr_in(rt.rt_dst, net_host_order & mask);
  set_sockaddr_in(rt.rt_genmask, mask);
  set_sockaddr_in(rt.rt_gateway, 0);
  rt.rt_flags = RTF_UP;
  char dev[IFNAMSIZ] = {};
  std::memcpy(dev, ifname.data(), ifname.size());
  rt.rt_dev = dev;
  if (::ioctl(sock.fd(), SIOCADDRT, &rt) < 0) {
    const int err = errno;
    if (err == EEXIST) {
      return 0;
    }
    set_error(error, "SIOCADDRT to " + ifname, err);
    return -err;
  }
  return 0;
}

}  // namespace xtcp
