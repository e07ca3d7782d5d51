// CaptureTap and its classifier without the stack: which flow a packet belongs to (TCP
// either way, ICMP errors by the segment they quote, fragments), filters, and a capture
// into a FIFO whose reader never reads: the capture ends with EAGAIN, the link never waits.
#include "stack/netif/capture_tap.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <deque>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "stack/core/clock.h"

namespace xtcp {
namespace {

using Bytes = std::vector<std::byte>;

constexpr std::uint32_t kStack = 0xC6120002;   // 198.18.0.2
constexpr std::uint32_t kClient = 0xC6120001;  // 198.18.0.1

void put16(Bytes& b, std::size_t at, std::uint32_t v) {
  b[at] = static_cast<std::byte>(v >> 8);
  b[at + 1] = static_cast<std::byte>(v);
}
void put32(Bytes& b, std::size_t at, std::uint32_t v) {
  put16(b, at, v >> 16);
  put16(b, at + 2, v & 0xffff);
}

// An IPv4 packet (no options) carrying l4; checksums are not looked at by the classifier.
Bytes ipv4(std::uint8_t proto, std::uint32_t src, std::uint32_t dst, const Bytes& l4, std::uint16_t frag = 0) {
  Bytes p(20 + l4.size());
  p[0] = std::byte{0x45};
  put16(p, 2, static_cast<std::uint32_t>(p.size()));
  put16(p, 6, frag);
  p[8] = std::byte{64};
  p[9] = static_cast<std::byte>(proto);
  put32(p, 12, src);
  put32(p, 16, dst);
  std::copy(l4.begin(), l4.end(), p.begin() + 20);
  return p;
}

Bytes tcp(std::uint32_t src, std::uint16_t sport, std::uint32_t dst, std::uint16_t dport, std::size_t payload = 0) {
  Bytes t(20 + payload, std::byte{0x61});
  put16(t, 0, sport);
  put16(t, 2, dport);
  t[12] = std::byte{0x50};
  t[13] = std::byte{0x10};
  return ipv4(6, src, dst, t);
}

// An ICMP destination unreachable quoting the first 28 bytes of `about`.
Bytes icmp_about(std::uint32_t src, std::uint32_t dst, const Bytes& about) {
  Bytes m(8);
  m[0] = std::byte{3};
  m[1] = std::byte{4};
  m.insert(m.end(), about.begin(), about.begin() + 28);
  return ipv4(1, src, dst, m);
}

TEST(CaptureClassifier, TcpBothWaysIcmpByQuoteAndFragments) {
  PacketFlow f;
  ASSERT_TRUE(packet_flow(tcp(kStack, 7000, kClient, 40000), true, &f));
  EXPECT_EQ(f.local_addr, kStack);
  EXPECT_EQ(f.remote_addr, kClient);
  EXPECT_EQ(f.local_port, 7000);
  EXPECT_EQ(f.remote_port, 40000);
  ASSERT_TRUE(packet_flow(tcp(kClient, 40000, kStack, 7000), false, &f));
  EXPECT_EQ(f.local_port, 7000);
  EXPECT_EQ(f.remote_port, 40000);
  EXPECT_EQ(f.remote_addr, kClient);
  // A router (198.18.0.9) bounces our segment to the client: the flow is the segment's.
  const std::uint32_t router = 0xC6120009;
  ASSERT_TRUE(packet_flow(icmp_about(router, kStack, tcp(kStack, 7000, kClient, 40000)), false, &f));
  EXPECT_TRUE(f.has_ports);
  EXPECT_EQ(f.remote_addr, kClient);
  EXPECT_EQ(f.local_port, 7000);
  EXPECT_EQ(f.remote_port, 40000);
  // The stack answers a client's segment with an ICMP error.
  ASSERT_TRUE(packet_flow(icmp_about(kStack, kClient, tcp(kClient, 40000, kStack, 7000)), true, &f));
  EXPECT_EQ(f.remote_addr, kClient);
  EXPECT_EQ(f.local_port, 7000);
  EXPECT_EQ(f.remote_port, 40000);
  // A later fragment has no ports; the first one has.
  Bytes l4(20);
  put16(l4, 0, 40000);
  put16(l4, 2, 7000);
  ASSERT_TRUE(packet_flow(ipv4(6, kClient, kStack, l4, 0x2000), false, &f));
  EXPECT_TRUE(f.has_ports);
  ASSERT_TRUE(packet_flow(ipv4(6, kClient, kStack, l4, 0x0010), false, &f));
  EXPECT_FALSE(f.has_ports);
  EXPECT_EQ(f.remote_addr, kClient);
  // Not IPv4, and a header cut short.
  Bytes v6(40);
  v6[0] = std::byte{0x60};
  EXPECT_FALSE(packet_flow(v6, false, &f));
  EXPECT_FALSE(packet_flow(Bytes(10, std::byte{0x45}), false, &f));
}

TEST(CaptureClassifier, FiltersNeedEveryFieldGiven) {
  PacketFlow f;
  ASSERT_TRUE(packet_flow(tcp(kClient, 40000, kStack, 7000), false, &f));
  EXPECT_TRUE(filter_matches(CaptureFilter{}, f));
  EXPECT_TRUE(filter_matches(CaptureFilter{kClient, 40000, 7000}, f));
  EXPECT_TRUE(filter_matches(CaptureFilter{kClient, 0, 0}, f));
  EXPECT_TRUE(filter_matches(CaptureFilter{0, 0, 7000}, f));
  EXPECT_FALSE(filter_matches(CaptureFilter{kClient, 40001, 7000}, f));
  EXPECT_FALSE(filter_matches(CaptureFilter{kClient, 40000, 7001}, f));
  EXPECT_FALSE(filter_matches(CaptureFilter{kClient + 1, 0, 0}, f));
  PacketFlow no_ports = f;
  no_ports.has_ports = false;
  no_ports.local_port = no_ports.remote_port = 0;
  EXPECT_TRUE(filter_matches(CaptureFilter{kClient, 0, 0}, no_ports));
  EXPECT_FALSE(filter_matches(CaptureFilter{kClient, 0, 7000}, no_ports));
}

class QueueLink final : public Link {
 public:
  int send(std::span<const std::byte> packet) override {
    sent.emplace_back(packet.begin(), packet.end());
    return 0;
  }
  int receive_batch(int max_packets, PacketHandler on_packet) override {
    int n = 0;
    while (n < max_packets && !inbound.empty()) {
      const Bytes p = std::move(inbound.front());
      inbound.pop_front();
      on_packet(p);
      ++n;
    }
    return n;
  }
  std::size_t mtu() const override { return 1500; }
  std::vector<Bytes> sent;
  std::deque<Bytes> inbound;
};

// A FIFO whose reader never reads fills after the pipe's 64 KiB and the capture's buffer:
// the write fails with EAGAIN (the descriptor is non-blocking), the capture ends, counted,
// and every packet still crosses the link.
TEST(CaptureTap, AStalledFifoEndsTheCaptureNeverTheLink) {
  char dir_tmpl[] = "/tmp/xtcp-capfifo-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_tmpl), nullptr);
  const std::string fifo = std::string(dir_tmpl) + "/live.pcap";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(reader, 0);
  QueueLink inner;
  ManualClock clock;
  CaptureTap tap(inner, clock, false);
  CaptureSpec spec;
  spec.file.path = fifo;
  std::string error;
  const int id = tap.start(spec, &error);
  ASSERT_GT(id, 0) << error;
  const Bytes big = tcp(kStack, 7000, kClient, 40000, 1400);
  for (int i = 0; i < 200; ++i) {  // 290 KB: more than the pipe and the buffer hold
    ASSERT_EQ(tap.send(big), 0);
  }
  EXPECT_EQ(inner.sent.size(), 200u);
  CaptureStatus st;
  ASSERT_EQ(tap.status(id, &st), 0);
  EXPECT_FALSE(st.running);
  EXPECT_EQ(st.error, EAGAIN);
  EXPECT_LT(st.packets, 200u);
  EXPECT_EQ(tap.totals().errors, 1u);
  EXPECT_EQ(tap.totals().running, 0u);
  EXPECT_EQ(tap.stop(id, nullptr), -EAGAIN);
  EXPECT_EQ(tap.stop(id, nullptr), -EBADF);
  ::close(reader);
  ::unlink(fifo.c_str());
  ::rmdir(dir_tmpl);
}

// Both directions are written; received packets pass through to the handler unchanged.
TEST(CaptureTap, ReceivedAndSentPacketsOfTheFlowOnly) {
  char path_tmpl[] = "/tmp/xtcp-captap-XXXXXX";
  const int fd = ::mkstemp(path_tmpl);
  ASSERT_GE(fd, 0);
  ::close(fd);
  QueueLink inner;
  ManualClock clock;
  CaptureTap tap(inner, clock, false);
  CaptureSpec spec;
  spec.file.path = path_tmpl;
  spec.filter = CaptureFilter{kClient, 40000, 7000};
  std::string error;
  const int id = tap.start(spec, &error);
  ASSERT_GT(id, 0) << error;
  inner.inbound.push_back(tcp(kClient, 40000, kStack, 7000, 5));
  inner.inbound.push_back(tcp(kClient, 40001, kStack, 7000, 5));
  int handed = 0;
  EXPECT_EQ(tap.receive_batch(8, [&](std::span<const std::byte>) { ++handed; }), 2);
  EXPECT_EQ(handed, 2);
  tap.send(tcp(kStack, 7000, kClient, 40000, 3));
  tap.send(tcp(kStack, 7000, kClient, 40001, 3));
  CaptureStatus st;
  ASSERT_EQ(tap.stop(id, &st), 0);
  EXPECT_EQ(st.packets, 2u);
  EXPECT_EQ(st.bytes, 45u + 43u);
  struct stat sb {};
  ASSERT_EQ(::stat(path_tmpl, &sb), 0);
  EXPECT_EQ(sb.st_size, 24 + 16 + 45 + 16 + 43);
  ::unlink(path_tmpl);
}

}  // namespace
}  // namespace xtcp
