// IcmpView and ICMP emitter tests against messages captured from Linux: an echo request and
// the kernel's reply, a UDP datagram and the kernel's port unreachable quoting it. Also
// truncation, checksum corruption, quote limits and the quoted-datagram parser.
#include "stack/wire/icmp.h"

#include <gtest/gtest.h>

#include <vector>

#include "stack/wire/checksum.h"
#include "stack/wire/ipv4.h"

namespace xtcp::wire {
namespace {

std::vector<std::byte> bytes_of(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int b : v) {
    out.push_back(static_cast<std::byte>(b));
  }
  return out;
}

// ICMP part of an echo request captured on lo (Linux 6.x): id 0x1c2d, seq 1, 48 data bytes.
const std::vector<std::byte> kEchoRequest = bytes_of({
    0x08, 0x00, 0x04, 0x9a, 0x1c, 0x2d, 0x00, 0x01, 0x65, 0xa1, 0xb2, 0xc3, 0x00, 0x00,
    0x00, 0x00, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
    0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29,
    0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
});
// The kernel's echo reply to it, ICMP part.
const std::vector<std::byte> kLinuxEchoReply = bytes_of({
    0x00, 0x00, 0x0c, 0x9a, 0x1c, 0x2d, 0x00, 0x01, 0x65, 0xa1, 0xb2, 0xc3, 0x00, 0x00,
    0x00, 0x00, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
    0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29,
    0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
});
// UDP 127.0.0.1:40000 -> 127.0.0.1:9 "hello xtcp\n", full IP datagram as captured.
const std::vector<std::byte> kUdpDatagram = bytes_of({
    0x45, 0x00, 0x00, 0x27, 0x39, 0x04, 0x40, 0x00, 0x40, 0x11, 0x03, 0xc0, 0x7f,
    0x00, 0x00, 0x01, 0x7f, 0x00, 0x00, 0x01, 0x9c, 0x40, 0x00, 0x09, 0x00, 0x13,
    0xfe, 0x26, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x78, 0x74, 0x63, 0x70, 0x0a,
});
// The kernel's port unreachable about it, ICMP part (type 3 code 3, whole datagram quoted).
const std::vector<std::byte> kLinuxPortUnreachable = bytes_of({
    0x03, 0x03, 0x38, 0xa2, 0x00, 0x00, 0x00, 0x00, 0x45, 0x00, 0x00, 0x27, 0x39, 0x04, 0x40, 0x00,
    0x40, 0x11, 0x03, 0xc0, 0x7f, 0x00, 0x00, 0x01, 0x7f, 0x00, 0x00, 0x01, 0x9c, 0x40, 0x00, 0x09,
    0x00, 0x13, 0xfe, 0x26, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x78, 0x74, 0x63, 0x70, 0x0a,
});

// An IPv4 header (+ options) followed by a TCP header start, as an ICMP error would quote.
std::vector<std::byte> tcp_quote(std::size_t ihl_words = 5, std::size_t transport_len = 8,
                                 std::uint16_t frag_field = 0x4000) {
  std::vector<std::byte> q(ihl_words * 4 + transport_len, std::byte{0});
  Ipv4Fields f;
  f.total_length = 1500;
  f.id = 0x1234;
  f.protocol = kProtoTcp;
  f.src = ipv4_addr(198, 18, 0, 2);
  f.dst = ipv4_addr(203, 0, 113, 7);
  emit_ipv4_header(q.data(), f);
  q[0] = static_cast<std::byte>(0x40 | ihl_words);
  for (std::size_t i = 20; i < ihl_words * 4; ++i) {
    q[i] = std::byte{0x01};  // NOP options
  }
  store_be16(q.data() + 6, frag_field);
  std::byte* t = q.data() + ihl_words * 4;
  if (transport_len >= 8) {
    store_be16(t, 443);
    store_be16(t + 2, 51000);
    store_be32(t + 4, 0xdeadbeef);
  }
  return q;
}

TEST(IcmpView, DecodesCapturedEchoRequest) {
  IcmpError err = IcmpError::kBadQuote;
  const auto icmp = IcmpView::parse(kEchoRequest, &err);
  ASSERT_TRUE(icmp.has_value());
  EXPECT_EQ(err, IcmpError::kNone);
  EXPECT_EQ(icmp->type(), kIcmpEchoRequest);
  EXPECT_EQ(icmp->code(), 0);
  EXPECT_EQ(icmp->checksum(), 0x049a);
  EXPECT_EQ(icmp->echo_id(), 0x1c2d);
  EXPECT_EQ(icmp->echo_seq(), 1);
  EXPECT_EQ(icmp->rest_of_header(), 0x1c2d0001u);
  EXPECT_FALSE(icmp->is_error());
  ASSERT_EQ(icmp->payload().size(), 48u);
  EXPECT_EQ(icmp->payload()[0], std::byte{0x65});
  EXPECT_EQ(icmp->payload()[47], std::byte{0x37});
  EXPECT_EQ(icmp->message().size(), 56u);
}

TEST(IcmpView, EveryTruncationOfTheHeaderIsAnError) {
  for (std::size_t n = 0; n < kIcmpHeaderLen; ++n) {
    const std::vector<std::byte> cut(kEchoRequest.begin(), kEchoRequest.begin() + n);
    IcmpError err = IcmpError::kNone;
    EXPECT_FALSE(IcmpView::parse(cut, &err).has_value()) << n;
    EXPECT_EQ(err, IcmpError::kTruncated) << n;
  }
  // Cutting the data breaks the checksum, which covers the whole message.
  for (std::size_t n = kIcmpHeaderLen; n < kEchoRequest.size(); ++n) {
    const std::vector<std::byte> cut(kEchoRequest.begin(), kEchoRequest.begin() + n);
    IcmpError err = IcmpError::kNone;
    EXPECT_FALSE(IcmpView::parse(cut, &err).has_value()) << n;
    EXPECT_EQ(err, IcmpError::kBadChecksum) << n;
  }
}

TEST(IcmpView, EverySingleBitErrorIsCaught) {
  for (std::size_t byte = 0; byte < kEchoRequest.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      auto msg = kEchoRequest;
      msg[byte] ^= static_cast<std::byte>(1 << bit);
      IcmpError err = IcmpError::kNone;
      EXPECT_FALSE(IcmpView::parse(msg, &err).has_value()) << byte << "/" << bit;
      EXPECT_EQ(err, IcmpError::kBadChecksum);
    }
  }
}

TEST(IcmpView, OddLengthMessage) {
  auto msg = bytes_of({0x08, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x02, 0xab});
  store_be16(msg.data() + 2, internet_checksum(msg));
  const auto icmp = IcmpView::parse(msg);
  ASSERT_TRUE(icmp.has_value());
  EXPECT_EQ(icmp->payload().size(), 1u);
}

TEST(IcmpView, ErrorTypesAndFields) {
  auto msg = kLinuxPortUnreachable;
  const auto icmp = IcmpView::parse(msg);
  ASSERT_TRUE(icmp.has_value());
  EXPECT_EQ(icmp->type(), kIcmpDestUnreachable);
  EXPECT_EQ(icmp->code(), kUnreachPort);
  EXPECT_TRUE(icmp->is_error());
  EXPECT_EQ(icmp->payload().size(), kUdpDatagram.size());

  EXPECT_TRUE(icmp_is_error(kIcmpTimeExceeded));
  EXPECT_TRUE(icmp_is_error(kIcmpParameterProblem));
  EXPECT_TRUE(icmp_is_error(kIcmpSourceQuench));
  EXPECT_TRUE(icmp_is_error(kIcmpRedirect));
  EXPECT_FALSE(icmp_is_error(kIcmpEchoReply));
  EXPECT_FALSE(icmp_is_error(kIcmpTimestampRequest));
  EXPECT_FALSE(icmp_is_error(42));

  // Parameter problem pointer and fragmentation-needed MTU live in the rest of header.
  auto pp = bytes_of({12, 0, 0, 0, 9, 0, 0, 0});
  store_be16(pp.data() + 2, internet_checksum(pp));
  EXPECT_EQ(IcmpView::parse(pp)->pointer(), 9);
  auto fn = bytes_of({3, 4, 0, 0, 0, 0, 0x05, 0x78});
  store_be16(fn.data() + 2, internet_checksum(fn));
  EXPECT_EQ(IcmpView::parse(fn)->next_hop_mtu(), 1400);
}

TEST(IcmpEmit, EchoReplyMatchesLinux) {
  const auto request = IcmpView::parse(kEchoRequest);
  ASSERT_TRUE(request.has_value());
  std::vector<std::byte> out(200, std::byte{0x77});
  const std::size_t n = emit_icmp_echo_reply(out, *request);
  ASSERT_EQ(n, kLinuxEchoReply.size());
  EXPECT_TRUE(std::equal(kLinuxEchoReply.begin(), kLinuxEchoReply.end(), out.begin()));
  EXPECT_EQ(out[n], std::byte{0x77}) << "nothing written past the reply";
}

TEST(IcmpEmit, EchoReplyInPlace) {
  // The reply may be written over the request itself.
  auto buf = kEchoRequest;
  const auto request = IcmpView::parse(buf);
  ASSERT_TRUE(request.has_value());
  ASSERT_EQ(emit_icmp_echo_reply(buf, *request), buf.size());
  EXPECT_EQ(buf, kLinuxEchoReply);
}

TEST(IcmpEmit, EchoReplyTruncatesToBuffer) {
  const auto request = IcmpView::parse(kEchoRequest);
  std::vector<std::byte> out(20);
  ASSERT_EQ(emit_icmp_echo_reply(out, *request), 20u);
  const auto reply = IcmpView::parse(out);
  ASSERT_TRUE(reply.has_value()) << "checksum covers the truncated message";
  EXPECT_EQ(reply->type(), kIcmpEchoReply);
  EXPECT_EQ(reply->echo_id(), 0x1c2d);
  EXPECT_TRUE(std::equal(out.begin() + 8, out.end(), kEchoRequest.begin() + 8));

  std::vector<std::byte> tiny(7);
  EXPECT_EQ(emit_icmp_echo_reply(tiny, *request), 0u);
  std::vector<std::byte> header_only(8);
  EXPECT_EQ(emit_icmp_echo_reply(header_only, *request), 8u);
  EXPECT_TRUE(IcmpView::parse(header_only).has_value());
}

TEST(IcmpEmit, PortUnreachableMatchesLinux) {
  std::vector<std::byte> out(576);
  const std::size_t n = emit_icmp_dest_unreachable(out, kUnreachPort, kUdpDatagram);
  ASSERT_EQ(n, kLinuxPortUnreachable.size());
  EXPECT_TRUE(std::equal(kLinuxPortUnreachable.begin(), kLinuxPortUnreachable.end(), out.begin()));
}

TEST(IcmpEmit, ErrorQuoteIsLimitedTo576ByteMessage) {
  std::vector<std::byte> big(1500, std::byte{0x5c});
  Ipv4Fields f;
  f.total_length = 1500;
  f.protocol = kProtoUdp;
  f.src = ipv4_addr(198, 18, 0, 1);
  f.dst = ipv4_addr(198, 18, 0, 2);
  emit_ipv4_header(big.data(), f);
  std::vector<std::byte> out(2000);
  const std::size_t n = emit_icmp_dest_unreachable(out, kUnreachPort, big);
  EXPECT_EQ(n, kIcmpHeaderLen + kIcmpErrorQuoteMax);
  EXPECT_EQ(n + 20, 576u) << "with its IP header the error is exactly 576 bytes";
  EXPECT_TRUE(std::equal(out.begin() + 8, out.begin() + static_cast<long>(n), big.begin()));
  EXPECT_TRUE(IcmpView::parse(ByteSpan(out.data(), n)).has_value());

  // A smaller buffer shortens the quote, but never below IP header + 8 bytes.
  std::vector<std::byte> small(8 + 28);
  EXPECT_EQ(emit_icmp_dest_unreachable(small, kUnreachPort, big), 36u);
  std::vector<std::byte> too_small(8 + 27);
  EXPECT_EQ(emit_icmp_dest_unreachable(too_small, kUnreachPort, big), 0u);

  // With a 60-byte header the minimum quote is 68 bytes.
  big[0] = std::byte{0x4f};
  std::vector<std::byte> out68(8 + 67);
  EXPECT_EQ(emit_icmp_dest_unreachable(out68, kUnreachPort, big), 0u);
  std::vector<std::byte> out69(8 + 68);
  EXPECT_EQ(emit_icmp_dest_unreachable(out69, kUnreachPort, big), 76u);
}

TEST(IcmpEmit, FragmentationNeededCarriesMtu) {
  const auto q = tcp_quote();
  std::vector<std::byte> out(100);
  const std::size_t n = emit_icmp_dest_unreachable(out, kUnreachFragNeeded, q, 1280);
  ASSERT_EQ(n, 8 + q.size());
  const auto icmp = IcmpView::parse(ByteSpan(out.data(), n));
  ASSERT_TRUE(icmp.has_value());
  EXPECT_EQ(icmp->code(), kUnreachFragNeeded);
  EXPECT_EQ(icmp->rest_of_header(), 1280u) << "RFC 1191: high 16 bits unused";
  EXPECT_EQ(icmp->next_hop_mtu(), 1280);
  // Other codes ignore the MTU argument.
  emit_icmp_dest_unreachable(out, kUnreachHost, q, 1280);
  EXPECT_EQ(IcmpView::parse(ByteSpan(out.data(), n))->rest_of_header(), 0u);
}

TEST(IcmpEmit, GenericErrorWritesTypeCodeRest) {
  const auto q = tcp_quote();
  std::vector<std::byte> out(100);
  const std::size_t n = emit_icmp_error(out, kIcmpParameterProblem, 0, 0x0c000000, q);
  const auto icmp = IcmpView::parse(ByteSpan(out.data(), n));
  ASSERT_TRUE(icmp.has_value());
  EXPECT_EQ(icmp->type(), kIcmpParameterProblem);
  EXPECT_EQ(icmp->pointer(), 12);
  // An original shorter than header + 8 is quoted whole.
  const std::vector<std::byte> short_orig(q.begin(), q.begin() + 22);
  EXPECT_EQ(emit_icmp_error(out, kIcmpTimeExceeded, 0, 0, short_orig), 30u);
  EXPECT_EQ(emit_icmp_error(out, kIcmpTimeExceeded, 0, 0, {}), 8u);
}

TEST(IcmpQuoteParse, QuotedUdpFromLinuxError) {
  const auto icmp = IcmpView::parse(kLinuxPortUnreachable);
  ASSERT_TRUE(icmp.has_value());
  IcmpError err = IcmpError::kBadChecksum;
  const auto q = parse_icmp_quote(icmp->payload(), &err);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(err, IcmpError::kNone);
  EXPECT_EQ(q->src, ipv4_addr(127, 0, 0, 1));
  EXPECT_EQ(q->dst, ipv4_addr(127, 0, 0, 1));
  EXPECT_EQ(q->protocol, kProtoUdp);
  EXPECT_EQ(q->id, 0x3904);
  EXPECT_EQ(q->total_length, 39);
  EXPECT_EQ(q->fragment_offset, 0u);
  EXPECT_EQ(q->src_port, 40000);
  EXPECT_EQ(q->dst_port, 9);
  EXPECT_EQ(q->header.size(), 20u);
  EXPECT_EQ(q->transport.size(), 19u);
}

TEST(IcmpQuoteParse, QuotedTcpWithOptionsAndSequence) {
  for (std::size_t ihl : {5u, 6u, 15u}) {
    const auto bytes = tcp_quote(ihl);
    const auto q = parse_icmp_quote(bytes);
    ASSERT_TRUE(q.has_value()) << ihl;
    EXPECT_EQ(q->protocol, kProtoTcp);
    EXPECT_EQ(q->src, ipv4_addr(198, 18, 0, 2));
    EXPECT_EQ(q->dst, ipv4_addr(203, 0, 113, 7));
    EXPECT_EQ(q->header.size(), ihl * 4);
    EXPECT_EQ(q->src_port, 443);
    EXPECT_EQ(q->dst_port, 51000);
    EXPECT_EQ(q->tcp_seq, 0xdeadbeefu);
  }
}

TEST(IcmpQuoteParse, RejectsShortAndImplausibleQuotes) {
  const auto full = tcp_quote(6);
  for (std::size_t n = 0; n < full.size(); ++n) {
    const std::vector<std::byte> cut(full.begin(), full.begin() + static_cast<long>(n));
    IcmpError err = IcmpError::kNone;
    EXPECT_FALSE(parse_icmp_quote(cut, &err).has_value()) << n;
    EXPECT_EQ(err, IcmpError::kTruncated) << n;
  }
  auto v6 = tcp_quote();
  v6[0] = std::byte{0x65};
  IcmpError err = IcmpError::kNone;
  EXPECT_FALSE(parse_icmp_quote(v6, &err).has_value());
  EXPECT_EQ(err, IcmpError::kBadQuote);
  auto ihl4 = tcp_quote();
  ihl4[0] = std::byte{0x44};
  EXPECT_FALSE(parse_icmp_quote(ihl4, &err).has_value());
  EXPECT_EQ(err, IcmpError::kBadQuote);
  // A lying IHL that points past the quote is a truncation, not an out-of-bounds read.
  auto long_ihl = tcp_quote();
  long_ihl[0] = std::byte{0x4f};
  EXPECT_FALSE(parse_icmp_quote(long_ihl, &err).has_value());
  EXPECT_EQ(err, IcmpError::kTruncated);
}

TEST(IcmpQuoteParse, NonInitialFragmentHasNoPorts) {
  const auto bytes = tcp_quote(5, 8, 0x2000 | 185);
  const auto q = parse_icmp_quote(bytes);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->fragment_offset, 1480u);
  EXPECT_EQ(q->src_port, 0);
  EXPECT_EQ(q->dst_port, 0);
  EXPECT_EQ(q->tcp_seq, 0u);
}

}  // namespace
}  // namespace xtcp::wire
