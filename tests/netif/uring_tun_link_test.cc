// UringTunLink against the real kernel, inside a throwaway network namespace: kernel UDP
// datagrams arrive byte-exact through receive_batch, an ICMP echo request sent through the
// link is answered, 1000-packet bursts arrive complete and in order both ways, send()
// returns -EAGAIN instead of blocking when every send buffer is in flight (and recovers),
// and the system calls stay batched. Skipped (with the reason) when not root, without
// TUN or namespaces, or when io_uring is unavailable (no liburing at build time, or the
// kernel refuses it).
#include "stack/netif/uring_tun_link.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "stack/wire/bytes.h"
#include "stack/wire/checksum.h"
#include "tests/support/netns.h"

namespace xtcp {
namespace {

// prefix + decimal i, built in place (GCC 12's -Wrestrict misfires on "literal" + std::string
// inside lambdas at -O3).
std::string tagged(std::string_view prefix, int i) {
  std::string s(prefix);
  s += std::to_string(i);
  return s;
}

using wire::load_be16;
using wire::load_be32;
using wire::store_be16;
using wire::store_be32;
using Bytes = std::vector<std::byte>;

constexpr std::uint32_t kKernelIp = 0xC6120001;  // 198.18.0.1, the kernel's end
constexpr std::uint32_t kStackIp = 0xC6120002;   // 198.18.0.2, "our" end behind the TUN
constexpr int kPollMs = 3000;                     // generous bound; poll returns at once

// Waits on poll_fd() (or not at all when next_event_time() says something is due) and
// hands what arrives to on_packet, until done() or kPollMs without any completion.
bool receive_until(UringTunLink& link, const std::function<void(const Bytes&)>& on_packet,
                   const std::function<bool()>& done) {
  while (!done()) {
    if (link.next_event_time() != 0) {
      pollfd p{link.poll_fd(), POLLIN, 0};
      if (::poll(&p, 1, kPollMs) <= 0) {
        return false;
      }
    }
    const int n = link.receive_batch(64, [&](std::span<const std::byte> pkt) {
      on_packet(Bytes(pkt.begin(), pkt.end()));
    });
    EXPECT_GE(n, 0);
  }
  return true;
}

std::optional<Bytes> receive_matching(UringTunLink& link, const std::function<bool(const Bytes&)>& want) {
  std::optional<Bytes> found;
  receive_until(
      link,
      [&](const Bytes& b) {
        if (!found && want(b)) {
          found = b;
        }
      },
      [&] { return found.has_value(); });
  return found;
}

bool is_ipv4_proto(const Bytes& b, std::uint8_t proto) {
  return b.size() >= 20 && (static_cast<std::uint8_t>(b[0]) >> 4) == 4 && static_cast<std::uint8_t>(b[9]) == proto;
}

// The receive mode the link really uses (multishot needs Linux 6.7).
void note_mode(const UringTunLink& link, bool asked) {
  if (asked && !link.multishot()) {
    std::printf("note: no IORING_OP_READ_MULTISHOT in this kernel: queued reads used\n");
  }
  EXPECT_TRUE(asked || !link.multishot());
}

std::unique_ptr<UringTunLink> open_configured(const UringTunOptions& options) {
  std::string error;
  int code = 0;
  auto link = UringTunLink::open(options, &error, &code);
  EXPECT_NE(link, nullptr) << error << " (" << code << ")";
  if (link == nullptr) {
    return nullptr;
  }
  EXPECT_EQ(configure_kernel_side(link->name(), kKernelIp, 24, &error), 0) << error;
  return link;
}

UringTunOptions options(const std::string& name, bool multishot) {
  UringTunOptions o;
  o.tun.name = name;
  o.tun.mtu = 1500;
  o.rx_multishot = multishot;
  return o;
}

// A UDP socket of the calling thread's namespace, bound to 198.18.0.1:port.
int bound_udp_socket(std::uint16_t port, int rcvbuf = 0) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0) << std::strerror(errno);
  if (rcvbuf > 0) {
    EXPECT_EQ(::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf), 0) << std::strerror(errno);
  }
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_port = htons(port);
  local.sin_addr.s_addr = htonl(kKernelIp);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local), 0) << std::strerror(errno);
  return fd;
}

void send_udp(int fd, std::uint16_t port, const std::string& payload) {
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(port);
  dst.sin_addr.s_addr = htonl(kStackIp);
  const ssize_t n = ::sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst);
  EXPECT_EQ(n, static_cast<ssize_t>(payload.size())) << std::strerror(errno);
}

// Receives one datagram on a kernel socket within kPollMs; nullopt otherwise.
std::optional<std::string> recv_udp(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, kPollMs) != 1) {
    return std::nullopt;
  }
  char buf[2048];
  const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  if (n < 0) {
    return std::nullopt;
  }
  return std::string(buf, static_cast<std::size_t>(n));
}

void finish_ipv4(Bytes& pkt, std::uint8_t proto, std::uint32_t src, std::uint32_t dst) {
  std::byte* ip = pkt.data();
  wire::store_u8(ip + 0, 0x45);
  wire::store_u8(ip + 1, 0);
  store_be16(ip + 2, static_cast<std::uint16_t>(pkt.size()));
  store_be16(ip + 4, 0x1234);
  store_be16(ip + 6, 0x4000);  // DF
  wire::store_u8(ip + 8, 64);
  wire::store_u8(ip + 9, proto);
  store_be16(ip + 10, 0);
  store_be32(ip + 12, src);
  store_be32(ip + 16, dst);
  store_be16(ip + 10, wire::internet_checksum({ip, 20}));
}

// IPv4/UDP 198.18.0.2:sport -> 198.18.0.1:dport (UDP checksum 0: none, allowed over IPv4).
Bytes make_udp(std::uint16_t sport, std::uint16_t dport, const std::string& payload) {
  Bytes pkt(28 + payload.size());
  std::byte* udp = pkt.data() + 20;
  store_be16(udp + 0, sport);
  store_be16(udp + 2, dport);
  store_be16(udp + 4, static_cast<std::uint16_t>(8 + payload.size()));
  store_be16(udp + 6, 0);
  std::memcpy(udp + 8, payload.data(), payload.size());
  finish_ipv4(pkt, 17, kStackIp, kKernelIp);
  return pkt;
}

// IPv4 + ICMP echo request from 198.18.0.2 to 198.18.0.1, checksums filled in.
Bytes make_echo_request(std::uint16_t id, std::uint16_t seq, const std::string& payload) {
  Bytes pkt(28 + payload.size());
  std::byte* icmp = pkt.data() + 20;
  wire::store_u8(icmp + 0, 8);
  wire::store_u8(icmp + 1, 0);
  store_be16(icmp + 2, 0);
  store_be16(icmp + 4, id);
  store_be16(icmp + 6, seq);
  std::memcpy(icmp + 8, payload.data(), payload.size());
  store_be16(icmp + 2, wire::internet_checksum({icmp, 8 + payload.size()}));
  finish_ipv4(pkt, 1, kStackIp, kKernelIp);
  return pkt;
}

std::string udp_payload(const Bytes& b) {
  return std::string(reinterpret_cast<const char*>(b.data() + 28), b.size() - 28);
}

// Every test runs twice: receiving with rx_slots queued reads, and with one multishot read
// over provided buffers (where the kernel lacks it, the link falls back to queued reads).
class UringTunLinkTest : public ::testing::TestWithParam<bool> {
 protected:
  bool multishot() const { return GetParam(); }
  void SetUp() override {
    if (auto reason = netns_unavailable_reason()) {
      GTEST_SKIP() << *reason;
    }
    std::string why;
    if (!UringTunLink::available(&why)) {
      GTEST_SKIP() << why;
    }
    std::string error;
    ns_ = NetNs::create(&error);
    ASSERT_NE(ns_, nullptr) << error;
  }
  std::unique_ptr<NetNs> ns_;  // declared first: outlives every TUN fd opened inside it
};

TEST_P(UringTunLinkTest, KernelUdpDatagramsArriveByteExact) {
  ns_->run_in_thread([ms = multishot()] {
    auto link = open_configured(options("xtu0", ms));
    ASSERT_NE(link, nullptr);
    note_mode(*link, ms);
    EXPECT_EQ(link->name(), "xtu0");
    EXPECT_EQ(link->mtu(), 1500u);
    EXPECT_GE(link->poll_fd(), 0);
    EXPECT_EQ(link->rx_slots(), 64u);

    // Nothing waits (IPv6 is off in the namespace): no packet, and no system call either.
    int none = 0;
    EXPECT_EQ(link->receive_batch(8, [&](std::span<const std::byte>) { ++none; }), 0);
    EXPECT_EQ(none, 0);
    EXPECT_EQ(link->counters().syscalls, 0u);
    EXPECT_EQ(link->next_event_time(), kNever);

    const int sock = bound_udp_socket(40000);
    std::vector<std::string> payloads = {"hello through the TUN", std::string(1472, 'x'), "z"};
    for (std::size_t i = 0; i < 1472; ++i) {
      payloads[1][i] = static_cast<char>(i * 7);
    }
    for (const auto& p : payloads) {
      send_udp(sock, 9999, p);
    }
    ::close(sock);

    std::vector<Bytes> got;
    ASSERT_TRUE(receive_until(
        *link, [&](const Bytes& b) { if (is_ipv4_proto(b, 17)) got.push_back(b); },
        [&] { return got.size() == payloads.size(); }))
        << "only " << got.size() << " datagrams reached the link";
    for (std::size_t i = 0; i < payloads.size(); ++i) {
      const Bytes& b = got[i];
      ASSERT_EQ(b.size(), 28 + payloads[i].size());
      const std::byte* ip = b.data();
      EXPECT_EQ(wire::load_u8(ip + 0), 0x45);
      EXPECT_EQ(load_be16(ip + 2), b.size());
      EXPECT_EQ(load_be32(ip + 12), kKernelIp);
      EXPECT_EQ(load_be32(ip + 16), kStackIp);
      EXPECT_EQ(wire::internet_checksum({ip, 20}), 0);
      const std::byte* udp = ip + 20;
      EXPECT_EQ(load_be16(udp + 0), 40000);
      EXPECT_EQ(load_be16(udp + 2), 9999);
      wire::Checksum sum = wire::pseudo_header_sum(kKernelIp, kStackIp, 17,
                                                   static_cast<std::uint16_t>(8 + payloads[i].size()));
      sum.add({udp, 8 + payloads[i].size()});
      EXPECT_EQ(sum.folded(), 0xffff) << "bad UDP checksum";
      EXPECT_EQ(udp_payload(b), payloads[i]) << "datagram " << i;
    }
    const UringTunCounters& c = link->counters();
    EXPECT_EQ(c.packets_in, payloads.size());
    EXPECT_EQ(c.read_errors, 0u);
    EXPECT_EQ(c.rx_truncated, 0u);
    // Queued reads: one io_uring_enter per batch that handed packets over (the re-arm), no
    // more. Multishot: the read stays armed and buffers go back through shared memory.
    EXPECT_GE(c.rx_batches, 1u);
    EXPECT_EQ(c.syscalls, link->multishot() ? 0u : c.rx_batches);
  });
}

TEST_P(UringTunLinkTest, EchoRequestSentThroughTheLinkIsAnsweredByKernel) {
  ns_->run_in_thread([ms = multishot()] {
    auto link = open_configured(options("xtu0", ms));
    ASSERT_NE(link, nullptr);

    const std::string payload = "xtcp io_uring echo payload 0123456789";
    const Bytes request = make_echo_request(0xbeef, 7, payload);
    ASSERT_EQ(link->send(request), 0);
    // Queued, not written yet: the run loop is told to come back at once.
    EXPECT_EQ(link->sends_in_flight(), 1u);
    EXPECT_EQ(link->next_event_time(), 0);
    EXPECT_EQ(link->counters().packets_out, 0u);
    EXPECT_EQ(link->flush(), 1);
    EXPECT_EQ(link->flush(), 0) << "nothing left to submit";
    EXPECT_EQ(link->counters().tx_batches, 1u);

    auto reply = receive_matching(*link, [](const Bytes& b) { return is_ipv4_proto(b, 1); });
    ASSERT_TRUE(reply.has_value()) << "the kernel did not answer the echo request";
    const Bytes& b = *reply;
    ASSERT_EQ(b.size(), request.size());
    const std::byte* ip = b.data();
    EXPECT_EQ(load_be32(ip + 12), kKernelIp);
    EXPECT_EQ(load_be32(ip + 16), kStackIp);
    EXPECT_EQ(wire::internet_checksum({ip, 20}), 0);
    const std::byte* icmp = ip + 20;
    EXPECT_EQ(wire::load_u8(icmp + 0), 0);  // echo reply
    EXPECT_EQ(load_be16(icmp + 4), 0xbeef);
    EXPECT_EQ(load_be16(icmp + 6), 7);
    EXPECT_EQ(wire::internet_checksum({icmp, 8 + payload.size()}), 0);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(icmp + 8), payload.size()), payload);

    const UringTunCounters& c = link->counters();
    EXPECT_EQ(c.packets_out, 1u);
    EXPECT_EQ(c.bytes_out, request.size());
    EXPECT_EQ(c.send_errors, 0u);
    EXPECT_EQ(link->sends_in_flight(), 0u);

    // A packet larger than the MTU is refused at once, never queued.
    EXPECT_EQ(link->send(Bytes(1501)), -EMSGSIZE);
    EXPECT_EQ(link->counters().send_errors, 1u);
  });
}

TEST_P(UringTunLinkTest, BurstOf1000PacketsEachWayArrivesCompleteAndInOrder) {
  ns_->run_in_thread([ms = multishot()] {
    UringTunOptions o = options("xtu0", ms);
    o.tun.tx_queue_len = 2000;  // the kernel's burst waits in the device until we read it
    auto link = open_configured(o);
    ASSERT_NE(link, nullptr);
    constexpr int kBurst = 1000;

    // Kernel -> link: 1000 datagrams queued by the kernel before we read any.
    const int out = bound_udp_socket(40010);
    for (int i = 0; i < kBurst; ++i) {
      send_udp(out, 9000, tagged("k2l ", i) + " " + std::string(static_cast<std::size_t>(i % 200), 'p'));
    }
    ::close(out);
    std::vector<std::string> got;
    EXPECT_TRUE(receive_until(
        *link, [&](const Bytes& b) { if (is_ipv4_proto(b, 17)) got.push_back(udp_payload(b)); },
        [&] { return got.size() >= static_cast<std::size_t>(kBurst); }));
    ASSERT_EQ(got.size(), static_cast<std::size_t>(kBurst));
    for (int i = 0; i < kBurst; ++i) {
      ASSERT_EQ(got[static_cast<std::size_t>(i)],
                tagged("k2l ", i) + " " + std::string(static_cast<std::size_t>(i % 200), 'p'))
          << "packet " << i << " missing or out of order";
    }
    const std::uint64_t rx_calls = link->counters().syscalls;
    EXPECT_LT(rx_calls, static_cast<std::uint64_t>(kBurst / 8)) << "reads are not batched";
    if (link->multishot()) {
      // The 64 buffers filled before we read any: the read ended and was armed again.
      EXPECT_GE(link->counters().rx_no_buffers, 1u);
      EXPECT_EQ(rx_calls, link->counters().rx_no_buffers);
    }

    // Link -> kernel: 1000 datagrams sent back to back, then one flush.
    const int in = bound_udp_socket(40011, 8 << 20);
    for (int i = 0; i < kBurst; ++i) {
      ASSERT_EQ(link->send(make_udp(5000, 40011, tagged("l2k ", i))), 0) << "send " << i;
    }
    EXPECT_GE(link->flush(), 0);
    for (int i = 0; i < kBurst; ++i) {
      auto d = recv_udp(in);
      ASSERT_TRUE(d.has_value()) << "datagram " << i << " of " << kBurst << " never came";
      ASSERT_EQ(*d, tagged("l2k ", i)) << "out of order";
    }
    ::close(in);
    link->receive_batch(64, [](std::span<const std::byte>) {});  // takes the last completions
    const UringTunCounters& c = link->counters();
    EXPECT_EQ(c.packets_out, static_cast<std::uint64_t>(kBurst));
    EXPECT_EQ(c.send_drops, 0u);
    EXPECT_EQ(c.send_errors, 0u);
    // tx_batch (64) writes per io_uring_enter, not one system call per packet.
    EXPECT_LE(c.tx_batches, static_cast<std::uint64_t>(kBurst / 64 + 2));
    EXPECT_LE(c.syscalls - rx_calls, static_cast<std::uint64_t>(kBurst / 64 + 3));
    EXPECT_EQ(c.packets_in, static_cast<std::uint64_t>(kBurst));
  });
}

TEST_P(UringTunLinkTest, SendReturnsEagainWhenEverySendBufferIsInFlightAndRecovers) {
  ns_->run_in_thread([ms = multishot()] {
    UringTunOptions o = options("xtu0", ms);
    o.tx_slots = 8;
    o.tx_batch = 0;  // send() never submits: the 8 buffers stay queued until flush()
    auto link = open_configured(o);
    ASSERT_NE(link, nullptr);
    const int in = bound_udp_socket(40020, 1 << 20);

    for (int i = 0; i < 8; ++i) {
      ASSERT_EQ(link->send(make_udp(5000, 40020, tagged("q", i))), 0);
    }
    EXPECT_EQ(link->sends_in_flight(), 8u);
    // A full ring refuses at once (a blocking send would hang the test here).
    EXPECT_EQ(link->send(make_udp(5000, 40020, "dropped")), -EAGAIN);
    EXPECT_EQ(link->send(make_udp(5000, 40020, "dropped")), -EAGAIN);
    EXPECT_EQ(link->counters().send_drops, 2u);
    EXPECT_EQ(link->counters().syscalls, 0u) << "send() must not enter the kernel with tx_batch 0";

    // Submitting frees the buffers (a TUN write completes inside the submit).
    EXPECT_EQ(link->flush(), 8);
    EXPECT_EQ(link->sends_in_flight(), 0u);
    ASSERT_EQ(link->send(make_udp(5000, 40020, "after")), 0);
    EXPECT_EQ(link->flush(), 1);
    for (int i = 0; i < 8; ++i) {
      auto d = recv_udp(in);
      ASSERT_TRUE(d.has_value());
      EXPECT_EQ(*d, tagged("q", i));
    }
    auto d = recv_udp(in);
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(*d, "after");
    ::close(in);
    EXPECT_EQ(link->counters().packets_out, 9u);
    EXPECT_EQ(link->counters().send_drops, 2u);
  });

  // With send() allowed to submit (tx_batch 8 of 8), a full set of buffers is handed over
  // and reused at once: no -EAGAIN in a long burst.
  ns_->run_in_thread([ms = multishot()] {
    UringTunOptions o = options("xtu1", ms);
    o.tx_slots = 8;
    o.tx_batch = 8;
    auto link = open_configured(o);
    ASSERT_NE(link, nullptr);
    for (int i = 0; i < 200; ++i) {
      ASSERT_EQ(link->send(make_echo_request(1, static_cast<std::uint16_t>(i), "burst")), 0) << i;
    }
    EXPECT_EQ(link->counters().send_drops, 0u);
    EXPECT_EQ(link->counters().tx_batches, 25u);
  });
}

// A read buffer holds the MTU given at open; a larger packet (the device MTU raised behind
// the link's back) is counted and dropped, never handed over cut short.
TEST_P(UringTunLinkTest, PacketLongerThanTheBuffersIsCountedNotTruncated) {
  ns_->run_in_thread([ms = multishot()] {
    auto link = open_configured(options("xtu0", ms));
    ASSERT_NE(link, nullptr);
    std::string error;
    ASSERT_EQ(set_interface_mtu("xtu0", 3000, &error), 0) << error;
    const int sock = bound_udp_socket(40030);
    send_udp(sock, 9, std::string(2000, 'L'));
    send_udp(sock, 9, "small");
    ::close(sock);
    auto small = receive_matching(*link, [](const Bytes& b) { return is_ipv4_proto(b, 17); });
    ASSERT_TRUE(small.has_value());
    EXPECT_EQ(udp_payload(*small), "small");
    EXPECT_EQ(link->counters().rx_truncated, 1u);
    EXPECT_EQ(link->counters().packets_in, 1u);
  });
}

// The bench and the engine open a link on one thread and run it on another: reads queued
// by the opening thread are cancelled when it exits and queued again by the next
// receive_batch(). Closing releases the device at once (the same name opens again).
TEST_P(UringTunLinkTest, OpenedOnOneThreadUsedOnAnotherAndClosedCleanly) {
  std::unique_ptr<UringTunLink> link;
  ns_->run_in_thread([&, ms = multishot()] { link = open_configured(options("xtu0", ms)); });
  ASSERT_NE(link, nullptr);
  ns_->run_in_thread([&, ms = multishot()] {
    const int sock = bound_udp_socket(40040);
    send_udp(sock, 9, "after the thread change");
    ::close(sock);
    auto got = receive_matching(*link, [](const Bytes& b) { return is_ipv4_proto(b, 17); });
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(udp_payload(*got), "after the thread change");
    EXPECT_EQ(link->counters().read_errors, 0u);
    link.reset();
    std::string error;
    auto again = UringTunLink::open(options("xtu0", ms), &error);
    EXPECT_NE(again, nullptr) << "the closed link still holds the device: " << error;
  });
}

INSTANTIATE_TEST_SUITE_P(Receive, UringTunLinkTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& param) {
                           return param.param ? "Multishot" : "QueuedReads";
                         });

TEST(UringTunLinkOptionsTest, BadSlotCountsAreRefused) {
  std::string error;
  int code = 0;
  UringTunOptions o;
  o.rx_slots = 0;
  EXPECT_EQ(UringTunLink::open(o, &error, &code), nullptr);
  EXPECT_TRUE(code == -EINVAL || code == -ENOSYS) << code;  // -ENOSYS: built without liburing
  o = UringTunOptions{};
  o.tx_slots = 4;
  o.tx_batch = 5;
  code = 0;
  EXPECT_EQ(UringTunLink::open(o, &error, &code), nullptr);
  EXPECT_TRUE(code == -EINVAL || code == -ENOSYS) << code;
}

}  // namespace
}  // namespace xtcp
