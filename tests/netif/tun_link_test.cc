// TunLink against the real kernel, inside a throwaway network namespace: the kernel's
// UDP datagrams arrive byte-exact through receive_batch, and an ICMP echo request written
// with send() is answered by the kernel. Skipped (with the reason) when not root/no TUN.
#include "stack/netif/tun_link.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "stack/wire/bytes.h"
#include "stack/wire/checksum.h"
#include "tests/support/netns.h"

namespace xtcp {
namespace {

using wire::load_be16;
using wire::load_be32;
using wire::store_be16;
using wire::store_be32;
using Bytes = std::vector<std::byte>;

constexpr std::uint32_t kKernelIp = 0xC6120001;  // 198.18.0.1, the kernel's end
constexpr std::uint32_t kStackIp = 0xC6120002;   // 198.18.0.2, "our" end behind the TUN
constexpr int kPollMs = 3000;                     // generous bound; poll returns at once

// Receives with poll() until one packet satisfying want arrives (others, if any, are
// skipped and returned in *skipped), or until kPollMs without any packet.
std::optional<Bytes> receive_matching(TunLink& link, const std::function<bool(const Bytes&)>& want,
                                      std::vector<Bytes>* skipped = nullptr) {
  for (;;) {
    pollfd p{link.poll_fd(), POLLIN, 0};
    const int n = ::poll(&p, 1, kPollMs);
    if (n <= 0) {
      return std::nullopt;
    }
    std::optional<Bytes> found;
    const int got = link.receive_batch(1, [&](std::span<const std::byte> pkt) {
      Bytes b(pkt.begin(), pkt.end());
      if (!found && want(b)) {
        found = std::move(b);
      } else if (skipped != nullptr) {
        skipped->push_back(std::move(b));
      }
    });
    EXPECT_GE(got, 0);
    if (found) {
      return found;
    }
  }
}

bool is_ipv4_proto(const Bytes& b, std::uint8_t proto) {
  return b.size() >= 20 && (static_cast<std::uint8_t>(b[0]) >> 4) == 4 &&
         static_cast<std::uint8_t>(b[9]) == proto;
}

std::unique_ptr<NetNs> make_netns() {
  std::string error;
  auto ns = NetNs::create(&error);
  EXPECT_NE(ns, nullptr) << error;
  return ns;
}

std::unique_ptr<TunLink> open_configured_tun(const TunOptions& options) {
  std::string error;
  int code = 0;
  auto link = TunLink::open(options, &error, &code);
  EXPECT_NE(link, nullptr) << error << " (" << code << ")";
  if (link == nullptr) {
    return nullptr;
  }
  EXPECT_EQ(configure_kernel_side(link->name(), kKernelIp, 24, &error), 0) << error;
  return link;
}

// A UDP socket of the calling thread's namespace, bound to 198.18.0.1:port.
int bound_udp_socket(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0) << std::strerror(errno);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_port = htons(port);
  local.sin_addr.s_addr = htonl(kKernelIp);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local), 0)
      << std::strerror(errno);
  return fd;
}

void send_udp(int fd, std::uint16_t port, const std::string& payload) {
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(port);
  dst.sin_addr.s_addr = htonl(kStackIp);
  const ssize_t n = ::sendto(fd, payload.data(), payload.size(), 0,
                             reinterpret_cast<sockaddr*>(&dst), sizeof dst);
  EXPECT_EQ(n, static_cast<ssize_t>(payload.size())) << std::strerror(errno);
}

// IPv4 + ICMP echo request from 198.18.0.2 to 198.18.0.1, checksums filled in.
Bytes make_echo_request(std::uint16_t id, std::uint16_t seq, const std::string& payload) {
  Bytes pkt(20 + 8 + payload.size());
  std::byte* ip = pkt.data();
  wire::store_u8(ip + 0, 0x45);
  wire::store_u8(ip + 1, 0);
  store_be16(ip + 2, static_cast<std::uint16_t>(pkt.size()));
  store_be16(ip + 4, 0x1234);  // identification
  store_be16(ip + 6, 0x4000);  // DF
  wire::store_u8(ip + 8, 64);  // TTL
  wire::store_u8(ip + 9, 1);   // ICMP
  store_be16(ip + 10, 0);
  store_be32(ip + 12, kStackIp);
  store_be32(ip + 16, kKernelIp);
  store_be16(ip + 10, wire::internet_checksum({ip, 20}));

  std::byte* icmp = ip + 20;
  wire::store_u8(icmp + 0, 8);  // echo request
  wire::store_u8(icmp + 1, 0);
  store_be16(icmp + 2, 0);
  store_be16(icmp + 4, id);
  store_be16(icmp + 6, seq);
  std::memcpy(icmp + 8, payload.data(), payload.size());
  store_be16(icmp + 2, wire::internet_checksum({icmp, 8 + payload.size()}));
  return pkt;
}

class TunLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto reason = netns_unavailable_reason()) {
      GTEST_SKIP() << *reason;
    }
    ns_ = make_netns();
    ASSERT_NE(ns_, nullptr);
  }
  std::unique_ptr<NetNs> ns_;  // declared first: outlives every TUN fd opened inside it
};

TEST_F(TunLinkTest, KernelUdpDatagramArrivesByteExact) {
  ns_->run_in_thread([] {
    auto link = open_configured_tun(TunOptions{.name = "xtcp0", .mtu = 1500});
    ASSERT_NE(link, nullptr);
    EXPECT_EQ(link->name(), "xtcp0");
    EXPECT_EQ(link->mtu(), 1500u);
    EXPECT_GE(link->poll_fd(), 0);

    const int sock = bound_udp_socket(40000);
    const std::string payload = "hello through the TUN";
    send_udp(sock, 9999, payload);
    ::close(sock);

    auto pkt = receive_matching(*link, [](const Bytes& b) { return is_ipv4_proto(b, 17); });
    ASSERT_TRUE(pkt.has_value()) << "no UDP packet reached the TUN";
    const Bytes& b = *pkt;
    ASSERT_EQ(b.size(), 20u + 8u + payload.size());
    const std::byte* ip = b.data();
    EXPECT_EQ(wire::load_u8(ip + 0), 0x45);                       // IPv4, no options
    EXPECT_EQ(load_be16(ip + 2), b.size());                         // total length
    EXPECT_EQ(load_be16(ip + 6) & 0x3fff, 0);                       // no MF, offset 0
    EXPECT_EQ(wire::load_u8(ip + 9), 17);                           // UDP
    EXPECT_EQ(load_be32(ip + 12), kKernelIp);
    EXPECT_EQ(load_be32(ip + 16), kStackIp);
    EXPECT_EQ(wire::internet_checksum({ip, 20}), 0) << "bad IPv4 header checksum";

    const std::byte* udp = ip + 20;
    EXPECT_EQ(load_be16(udp + 0), 40000);
    EXPECT_EQ(load_be16(udp + 2), 9999);
    EXPECT_EQ(load_be16(udp + 4), 8 + payload.size());
    wire::Checksum sum = wire::pseudo_header_sum(kKernelIp, kStackIp, 17,
                                                 static_cast<std::uint16_t>(8 + payload.size()));
    sum.add({udp, 8 + payload.size()});
    EXPECT_EQ(sum.folded(), 0xffff) << "bad UDP checksum";
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(udp + 8), payload.size()), payload);

    EXPECT_GE(link->counters().packets_in, 1u);
    EXPECT_GE(link->counters().bytes_in, b.size());
    EXPECT_EQ(link->counters().read_errors, 0u);
  });
}

TEST_F(TunLinkTest, EchoRequestSentThroughTunIsAnsweredByKernel) {
  ns_->run_in_thread([] {
    auto link = open_configured_tun(TunOptions{.name = "xtcp0", .mtu = 1500});
    ASSERT_NE(link, nullptr);

    const std::string payload = "xtcp echo payload 0123456789";
    const Bytes request = make_echo_request(0xbeef, 7, payload);
    ASSERT_EQ(link->send(request), 0);
    EXPECT_EQ(link->counters().packets_out, 1u);
    EXPECT_EQ(link->counters().bytes_out, request.size());

    auto reply = receive_matching(*link, [](const Bytes& b) { return is_ipv4_proto(b, 1); });
    ASSERT_TRUE(reply.has_value()) << "the kernel did not answer the echo request";
    const Bytes& b = *reply;
    ASSERT_EQ(b.size(), request.size());
    const std::byte* ip = b.data();
    const std::size_t ihl = (wire::load_u8(ip) & 0x0f) * 4u;
    ASSERT_EQ(ihl, 20u);
    EXPECT_EQ(load_be32(ip + 12), kKernelIp);
    EXPECT_EQ(load_be32(ip + 16), kStackIp);
    EXPECT_EQ(wire::internet_checksum({ip, 20}), 0);
    const std::byte* icmp = ip + 20;
    EXPECT_EQ(wire::load_u8(icmp + 0), 0);  // echo reply
    EXPECT_EQ(wire::load_u8(icmp + 1), 0);
    EXPECT_EQ(load_be16(icmp + 4), 0xbeef);
    EXPECT_EQ(load_be16(icmp + 6), 7);
    EXPECT_EQ(wire::internet_checksum({icmp, 8 + payload.size()}), 0);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(icmp + 8), payload.size()), payload);
  });
}

TEST_F(TunLinkTest, ReceiveBatchStopsAtMaxPacketsAndWhenEmpty) {
  ns_->run_in_thread([] {
    auto link = open_configured_tun(TunOptions{.name = "xtcp0", .mtu = 1500});
    ASSERT_NE(link, nullptr);
    // Nothing queued yet (IPv6 is off in the namespace): returns 0 without blocking.
    int none = 0;
    EXPECT_EQ(link->receive_batch(8, [&](std::span<const std::byte>) { ++none; }), 0);
    EXPECT_EQ(none, 0);

    const int sock = bound_udp_socket(40001);
    for (int i = 0; i < 5; ++i) {
      send_udp(sock, 9000, "datagram " + std::to_string(i));
    }
    ::close(sock);
    pollfd p{link->poll_fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, kPollMs), 1);

    std::vector<Bytes> got;
    auto collect = [&](std::span<const std::byte> pkt) { got.emplace_back(pkt.begin(), pkt.end()); };
    EXPECT_EQ(link->receive_batch(2, collect), 2);
    EXPECT_EQ(got.size(), 2u);
    // The rest, possibly needing another wake-up if the kernel was still queueing.
    while (got.size() < 5) {
      pollfd q{link->poll_fd(), POLLIN, 0};
      ASSERT_EQ(::poll(&q, 1, kPollMs), 1) << "only " << got.size() << " of 5 arrived";
      EXPECT_GT(link->receive_batch(64, collect), 0);
    }
    EXPECT_EQ(link->receive_batch(64, collect), 0);
    ASSERT_EQ(got.size(), 5u);
    for (int i = 0; i < 5; ++i) {
      const std::string expect = "datagram " + std::to_string(i);
      ASSERT_EQ(got[i].size(), 28 + expect.size());
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(got[i].data() + 28), expect.size()),
                expect);
    }
    EXPECT_EQ(link->counters().packets_in, 5u);
  });
}

TEST_F(TunLinkTest, MtuIsSetOnTheDevice) {
  ns_->run_in_thread([] {
    auto link = open_configured_tun(TunOptions{.name = "xtcp0", .mtu = 1400});
    ASSERT_NE(link, nullptr);
    EXPECT_EQ(link->mtu(), 1400u);
    std::string error;
    EXPECT_EQ(get_interface_mtu("xtcp0", &error), 1400) << error;

    // mtu = 0 keeps the device's MTU and reports it.
    auto second = TunLink::open(TunOptions{.name = "xtcp1", .mtu = 0}, &error);
    ASSERT_NE(second, nullptr) << error;
    EXPECT_EQ(second->mtu(), 1500u);  // the TUN driver's default
  });
  // Seen from outside by iproute2, too; and the address and UP flag of configure_kernel_side.
  // (The devices are gone by now: check with one kept open across the command.)
  std::unique_ptr<TunLink> kept;
  ns_->run_in_thread([&] { kept = open_configured_tun(TunOptions{.name = "xtcp0", .mtu = 1280}); });
  ASSERT_NE(kept, nullptr);
  const CommandResult show = ns_->run("ip -4 addr show dev xtcp0");
  EXPECT_EQ(show.exit_code, 0) << show.output;
  EXPECT_NE(show.output.find("mtu 1280"), std::string::npos) << show.output;
  EXPECT_NE(show.output.find("inet 198.18.0.1/24"), std::string::npos) << show.output;
  EXPECT_NE(show.output.find(",UP"), std::string::npos) << show.output;
  kept.reset();
}

// The transmit queue length and a device route, as the load generator sets them up: the
// kernel then holds up to that many packets for the reader, and sends a whole address
// range into the device.
TEST_F(TunLinkTest, TransmitQueueLengthAndDeviceRoute) {
  std::unique_ptr<TunLink> kept;
  ns_->run_in_thread([&] {
    std::string error;
    kept = TunLink::open(TunOptions{.name = "xtcpl0", .mtu = 1500, .tx_queue_len = 12000}, &error);
    ASSERT_NE(kept, nullptr) << error;
    ASSERT_EQ(set_interface_up("xtcpl0", &error), 0) << error;
    ASSERT_EQ(add_device_route("xtcpl0", 0xC6128000, 17, &error), 0) << error;
    EXPECT_EQ(add_device_route("xtcpl0", 0xC6128000, 17, &error), 0) << "an existing route is fine";
    EXPECT_EQ(add_device_route("nosuchdev", 0xC6120000, 24, &error), -ENODEV);
    EXPECT_NE(error.find("nosuchdev"), std::string::npos) << error;
    EXPECT_EQ(set_interface_tx_queue_len("xtcpl0", 0, &error), -EINVAL);
  });
  ASSERT_NE(kept, nullptr);
  const CommandResult link = ns_->run("ip link show dev xtcpl0");
  EXPECT_NE(link.output.find("qlen 12000"), std::string::npos) << link.output;
  const CommandResult route = ns_->run("ip -4 route show dev xtcpl0");
  EXPECT_NE(route.output.find("198.18.128.0/17"), std::string::npos) << route.output;
  kept.reset();
}

TEST_F(TunLinkTest, MultiQueueAttachesQueuesByName) {
  ns_->run_in_thread([] {
    std::string error;
    int code = 0;
    auto q0 = TunLink::open(TunOptions{.name = "xtcpmq", .multi_queue = true}, &error, &code);
    ASSERT_NE(q0, nullptr) << error;
    auto q1 = TunLink::open(TunOptions{.name = "xtcpmq", .multi_queue = true}, &error, &code);
    ASSERT_NE(q1, nullptr) << error;
    EXPECT_NE(q0->poll_fd(), q1->poll_fd());

    // A single-queue open of a multi-queue device is refused, as an error, not a throw.
    auto single = TunLink::open(TunOptions{.name = "xtcpmq", .multi_queue = false}, &error, &code);
    EXPECT_EQ(single, nullptr);
    EXPECT_EQ(code, -EINVAL);
    EXPECT_NE(error.find("\"xtcpmq\""), std::string::npos) << error;
    EXPECT_NE(error.find("not a TUN device with these flags"), std::string::npos) << error;
  });
}

TEST_F(TunLinkTest, SecondSingleQueueOpenIsBusy) {
  ns_->run_in_thread([] {
    std::string error;
    int code = 0;
    auto first = TunLink::open(TunOptions{.name = "xtcp0"}, &error, &code);
    ASSERT_NE(first, nullptr) << error;
    auto second = TunLink::open(TunOptions{.name = "xtcp0"}, &error, &code);
    EXPECT_EQ(second, nullptr);
    EXPECT_EQ(code, -EBUSY) << error;
  });
}

TEST_F(TunLinkTest, KernelPicksTheNameWhenNoneIsGiven) {
  ns_->run_in_thread([] {
    std::string error;
    auto link = TunLink::open(TunOptions{.name = ""}, &error);
    ASSERT_NE(link, nullptr) << error;
    EXPECT_EQ(link->name().rfind("tun", 0), 0u) << link->name();
    EXPECT_NE(::if_nametoindex(link->name().c_str()), 0u);
  });
}

TEST_F(TunLinkTest, PacketTheKernelRejectsIsAnErrorAndCounted) {
  ns_->run_in_thread([] {
    auto link = open_configured_tun(TunOptions{.name = "xtcp0"});
    ASSERT_NE(link, nullptr);
    // The TUN driver classifies IFF_NO_PI packets by the version nibble; 0 is refused.
    const Bytes not_ip(20, std::byte{0});
    EXPECT_EQ(link->send(not_ip), -EINVAL);
    EXPECT_EQ(link->counters().send_errors, 1u);
    EXPECT_EQ(link->counters().send_drops, 0u);
    EXPECT_EQ(link->counters().packets_out, 0u);
  });
}

TEST(TunLinkErrors, BadOptionsAreReportedWithoutThrowing) {
  std::string error;
  int code = 0;
  EXPECT_EQ(TunLink::open(TunOptions{.name = std::string(IFNAMSIZ, 'x')}, &error, &code),
            nullptr);
  EXPECT_EQ(code, -EINVAL);
  EXPECT_NE(error.find("invalid interface name"), std::string::npos) << error;

  EXPECT_EQ(TunLink::open(TunOptions{.name = "xtcp0", .mtu = 70000}, &error, &code), nullptr);
  EXPECT_EQ(code, -EINVAL);

  EXPECT_EQ(configure_kernel_side("xtcp0", kKernelIp, 33, &error), -EINVAL);
  EXPECT_NE(error.find("prefix length"), std::string::npos) << error;
}

TEST_F(TunLinkTest, ConfigureKernelSideOfMissingInterfaceFails) {
  ns_->run_in_thread([] {
    std::string error;
    EXPECT_EQ(configure_kernel_side("nosuchif0", kKernelIp, 24, &error), -ENODEV);
    EXPECT_NE(error.find("nosuchif0"), std::string::npos) << error;
  });
}

}  // namespace
}  // namespace xtcp
