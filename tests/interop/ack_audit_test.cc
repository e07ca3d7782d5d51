// The pcap ACK audit on hand-made captures (no root needed): a clean request/answer
// exchange passes; a pure ACK for a request, an answer-less FIN acknowledging a request
// and an unacknowledged request are each caught, so the interop checks can fail.
#include "tests/interop/ack_audit.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "stack/wire/ipv4.h"
#include "stack/wire/tcp.h"

namespace xtcp::test {
namespace {

using namespace wire::tcp_flags;

constexpr std::uint32_t kServer = wire::ipv4_addr(198, 18, 0, 2);
constexpr std::uint32_t kClient = wire::ipv4_addr(198, 18, 0, 1);
constexpr std::uint16_t kPort = 7;
constexpr std::uint16_t kClientPort = 40000;
constexpr std::uint32_t kCiss = 1000;
constexpr std::uint32_t kSiss = 5000;

// A capture under construction: segments with sequence numbers relative to each ISS.
class CaptureBuilder {
 public:
  void client(std::uint8_t flags, std::uint32_t rel_seq, std::uint32_t rel_ack, std::size_t len) {
    add(kClient, kClientPort, kServer, kPort, flags, kCiss + rel_seq, kSiss + rel_ack, len);
  }
  void server(std::uint8_t flags, std::uint32_t rel_seq, std::uint32_t rel_ack, std::size_t len) {
    add(kServer, kPort, kClient, kClientPort, flags, kSiss + rel_seq, kCiss + rel_ack, len);
  }
  // The handshake: client ISN kCiss, server ISN kSiss.
  void handshake() {
    client(kSyn, 0, 0, 0);
    server(kSyn | kAck, 0, 1, 0);
    client(kAck, 1, 1, 0);
  }
  std::string write() const {
    char tmpl[] = "/tmp/ack-audit-XXXXXX";
    const int fd = mkstemp(tmpl);
    EXPECT_GE(fd, 0);
    std::vector<unsigned char> out;
    auto put32 = [&](std::uint32_t v) {
      unsigned char b[4];
      std::memcpy(b, &v, 4);
      out.insert(out.end(), b, b + 4);
    };
    put32(0xa1b2c3d4);
    put32(0x00040002);  // version 2.4 (minor, major little-endian halves)
    put32(0);
    put32(0);
    put32(65535);
    put32(101);  // LINKTYPE_RAW
    std::uint32_t t = 0;
    for (const auto& p : packets_) {
      put32(t++);
      put32(0);
      put32(static_cast<std::uint32_t>(p.size()));
      put32(static_cast<std::uint32_t>(p.size()));
      for (const std::byte b : p) {
        out.push_back(static_cast<unsigned char>(b));
      }
    }
    EXPECT_EQ(::write(fd, out.data(), out.size()), static_cast<ssize_t>(out.size()));
    ::close(fd);
    return tmpl;
  }

 private:
  void add(std::uint32_t src, std::uint16_t sport, std::uint32_t dst, std::uint16_t dport,
           std::uint8_t flags, std::uint32_t seq, std::uint32_t ack, std::size_t len) {
    std::vector<std::byte> pkt(20 + 20 + len, std::byte{'x'});
    wire::TcpFields tf;
    tf.src_port = sport;
    tf.dst_port = dport;
    tf.seq = wire::SeqNum(seq);
    tf.ack = wire::SeqNum((flags & kAck) != 0 ? ack : 0);
    tf.flags = flags;
    tf.window = 65535;
    wire::emit_tcp_header(pkt.data() + 20, tf, wire::TcpOptions{});
    wire::fill_tcp_checksum(wire::MutableByteSpan(pkt.data() + 20, 20 + len), src, dst);
    wire::Ipv4Fields ipf;
    ipf.total_length = static_cast<std::uint16_t>(pkt.size());
    ipf.protocol = 6;
    ipf.src = src;
    ipf.dst = dst;
    wire::emit_ipv4_header(pkt.data(), ipf);
    packets_.push_back(std::move(pkt));
  }
  std::vector<std::vector<std::byte>> packets_;
};

AckAudit audit(const CaptureBuilder& b) {
  const std::string path = b.write();
  AckAudit a;
  std::string err;
  EXPECT_TRUE(audit_acks(path, kServer, kPort, &a, &err)) << err;
  std::remove(path.c_str());
  return a;
}

// Three requests answered with data, then the client's FIN, the server's FIN+ACK.
TEST(AckAudit, AnswersCarryingTheAcksAreClean) {
  CaptureBuilder b;
  b.handshake();
  std::uint32_t c = 1;
  std::uint32_t s = 1;
  for (int i = 0; i < 3; ++i) {
    b.client(kAck | kPsh, c, s, 10);
    c += 10;
    b.server(kAck | kPsh, s, c, 12);
    s += 12;
    b.client(kAck, c, s, 0);
  }
  b.client(kAck | kFin, c, s, 0);
  b.server(kAck, s, c + 1, 0);  // the ACK of the client's FIN alone is excepted
  b.server(kAck | kFin, s, c + 1, 0);
  b.client(kAck, c + 1, s + 1, 0);
  const AckAudit a = audit(b);
  EXPECT_TRUE(a.clean()) << describe(a);
  EXPECT_EQ(a.requests, 3u);
  EXPECT_EQ(a.acked_by_answer, 3u);
  EXPECT_EQ(a.answers, 3u);
  EXPECT_EQ(a.fin_acks, 1u);
  EXPECT_EQ(a.connections, 1u);
}

TEST(AckAudit, PureAckForARequestIsCaught) {
  CaptureBuilder b;
  b.handshake();
  b.client(kAck | kPsh, 1, 1, 10);
  b.server(kAck, 1, 11, 0);  // what a kernel's delayed ACK would do
  b.server(kAck | kPsh, 1, 11, 5);
  const AckAudit a = audit(b);
  EXPECT_FALSE(a.clean());
  EXPECT_EQ(a.pure_acks, 1u);
  EXPECT_EQ(a.acked_by_answer, 0u);
  ASSERT_FALSE(a.problems.empty());
  EXPECT_NE(a.problems[0].find("pure ACK"), std::string::npos) << a.problems[0];
}

TEST(AckAudit, WindowUpdateIsAPureAckToo) {
  CaptureBuilder b;
  b.handshake();
  b.client(kAck | kPsh, 1, 1, 10);
  b.server(kAck | kPsh, 1, 11, 5);
  b.server(kAck, 6, 11, 0);  // acknowledges nothing new
  const AckAudit a = audit(b);
  EXPECT_FALSE(a.clean());
  EXPECT_EQ(a.pure_acks, 1u);
  EXPECT_EQ(a.acked_by_answer, 1u);
}

TEST(AckAudit, RequestAcknowledgedOnlyByAFinIsCaught) {
  CaptureBuilder b;
  b.handshake();
  b.client(kAck | kPsh, 1, 1, 10);
  b.server(kAck | kFin, 1, 11, 0);
  const AckAudit a = audit(b);
  EXPECT_FALSE(a.clean());
  EXPECT_EQ(a.acked_by_answer, 0u);
}

TEST(AckAudit, UnacknowledgedRequestIsCaught) {
  CaptureBuilder b;
  b.handshake();
  b.client(kAck | kPsh, 1, 1, 10);
  b.server(kAck | kPsh, 1, 11, 5);
  b.client(kAck | kPsh, 11, 6, 10);
  const AckAudit a = audit(b);
  EXPECT_FALSE(a.clean());
  EXPECT_EQ(a.requests, 2u);
  EXPECT_EQ(a.unacked_requests, 1u);
}

TEST(AckAudit, RetransmittedRequestCountsOnce) {
  CaptureBuilder b;
  b.handshake();
  b.client(kAck | kPsh, 1, 1, 10);
  b.client(kAck | kPsh, 1, 1, 10);  // the client retransmits before the answer
  b.server(kAck | kPsh, 1, 11, 5);
  const AckAudit a = audit(b);
  EXPECT_TRUE(a.clean()) << describe(a);
  EXPECT_EQ(a.requests, 1u);
}

TEST(AckAudit, RejectsWhatIsNotAPcap) {
  char tmpl[] = "/tmp/ack-audit-XXXXXX";
  const int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  const char junk[] = "this is not a capture file at all";
  ASSERT_EQ(::write(fd, junk, sizeof junk), static_cast<ssize_t>(sizeof junk));
  ::close(fd);
  AckAudit a;
  std::string err;
  EXPECT_FALSE(audit_acks(tmpl, kServer, kPort, &a, &err));
  EXPECT_NE(err.find("not a pcap"), std::string::npos) << err;
  std::remove(tmpl);
  EXPECT_FALSE(audit_acks("/nonexistent/x.pcap", kServer, kPort, &a, &err));
}

}  // namespace
}  // namespace xtcp::test
