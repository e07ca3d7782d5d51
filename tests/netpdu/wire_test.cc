// Wire format tests: golden bytes for the NetPDU header, TLPDU header and hello (decode and
// encode), every truncated length, and each impossible field value the parsers must refuse.
#include "netpdu/wire.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/netpdu/test_util.h"

namespace xtcp::netpdu {
namespace {

using test::bytes_of;

const std::vector<std::byte> kGoldenPdu = bytes_of({0x4E, 0x50, 0x44, 0x55, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
                                                    0x00, 0x14, 0x00, 0x00, 0x12, 0x34, 0x00, 0x00, 0x00, 0x03});
const std::vector<std::byte> kGoldenTlpdu = bytes_of({0x02, 0x01, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
                                                      0x07, 0x08, 0x0A, 0x0B, 0x0C, 0x0D, 0x00, 0x00, 0x01, 0x00});
const std::vector<std::byte> kGoldenHello =
    bytes_of({0x4E, 0x50, 0x44, 0x48, 0x01, 0x01, 0x01, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00,
              0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00});

PduLimits inline_limits() {
  PduLimits l;
  l.max_pdu_bytes = 0x10000;
  l.max_tlpdus = 100;
  return l;
}

PduLimits split_limits(std::uint16_t transports) {
  PduLimits l = inline_limits();
  l.split = true;
  l.data_transports = transports;
  return l;
}

WireError parse_error(const std::vector<std::byte>& b, const PduLimits& l) {
  WireError e = WireError::kNone;
  const auto h = NetPduHeader::parse(ByteSpan(b), l, &e);
  EXPECT_EQ(h.has_value(), e == WireError::kNone);
  return e;
}

TEST(NetpduWire, PduHeaderGoldenDecode) {
  WireError e = WireError::kBadMagic;
  const auto h = NetPduHeader::parse(ByteSpan(kGoldenPdu), inline_limits(), &e);
  ASSERT_TRUE(h.has_value()) << to_string(e);
  EXPECT_EQ(e, WireError::kNone);
  EXPECT_EQ(h->version, 1);
  EXPECT_EQ(h->flags, 0);
  EXPECT_EQ(h->data_transport, 0);
  EXPECT_EQ(h->header_len, 20u);
  EXPECT_EQ(h->total_len, 0x1234u);
  EXPECT_EQ(h->count, 3u);
}

TEST(NetpduWire, PduHeaderGoldenEncode) {
  NetPduHeader h;
  h.total_len = 0x1234;
  h.count = 3;
  std::vector<std::byte> out(kNetPduHeaderLen);
  h.emit(out.data());
  EXPECT_EQ(out, kGoldenPdu);
}

TEST(NetpduWire, PduHeaderEveryTruncationRefused) {
  for (std::size_t n = 0; n < kNetPduHeaderLen; ++n) {
    const std::vector<std::byte> cut(kGoldenPdu.begin(), kGoldenPdu.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_EQ(parse_error(cut, inline_limits()), WireError::kTruncated) << n;
  }
}

TEST(NetpduWire, PduHeaderBadFields) {
  auto one = [](auto fn) {
    test::FrameBuilder b;
    fn(b);
    return b.out;
  };
  const PduLimits l = inline_limits();
  EXPECT_EQ(parse_error(one([](auto& b) { b.pdu_header(60, 2, 0, 0, 20, 0x4E504456); }), l), WireError::kBadMagic);
  EXPECT_EQ(parse_error(one([](auto& b) { b.pdu_header(60, 2, 0, 0, 20, 0x4E504448); }), l), WireError::kBadMagic)
      << "a hello must never parse as a NetPDU";
  EXPECT_EQ(parse_error(one([](auto& b) { b.pdu_header(60, 2, 0, 0, 20, 0x4E504455, 2); }), l), WireError::kBadVersion);
  EXPECT_EQ(parse_error(one([](auto& b) { b.pdu_header(60, 2, 0, 0, 20, 0x4E504455, 0); }), l), WireError::kBadVersion);
  EXPECT_EQ(parse_error(one([](auto& b) { b.pdu_header(60, 2, 0x02); }), l), WireError::kBadFlags);
  EXPECT_EQ(parse_error(one([](auto& b) { b.pdu_header(60, 2, 0x01); }), l), WireError::kBadFlags)
      << "split header on an inline transport";
  EXPECT_EQ(parse_error(one([](auto& b) { b.pdu_header(60, 2, 0, 1); }), l), WireError::kBadTransport);
  EXPECT_EQ(parse_error(one([](auto& b) { b.pdu_header(60, 2, 0, 0, 24); }), l), WireError::kBadHeaderLength);
  EXPECT_EQ(parse_error(one([](auto& b) { b.pdu_header(60, 0); }), l), WireError::kBadCount);
  EXPECT_EQ(parse_error(one([](auto& b) { b.pdu_header(60, 101); }), l), WireError::kBadCount);
  EXPECT_EQ(parse_error(one([](auto& b) { b.pdu_header(0x10001, 2); }), l), WireError::kTooLong);
  EXPECT_EQ(parse_error(one([](auto& b) { b.pdu_header(0xFFFFFFFF, 2); }), l), WireError::kTooLong);
  EXPECT_EQ(parse_error(one([](auto& b) { b.pdu_header(19, 1); }), l), WireError::kBadLength);
  EXPECT_EQ(parse_error(one([](auto& b) { b.pdu_header(59, 2); }), l), WireError::kBadLength)
      << "two TLPDU headers need 40 bytes of body";
  EXPECT_EQ(parse_error(one([](auto& b) { b.pdu_header(60, 2); }), l), WireError::kNone);
}

TEST(NetpduWire, SplitHeaderFields) {
  auto hdr = [](std::uint32_t total, std::uint32_t count, std::uint8_t flags, std::uint16_t transport,
                std::uint32_t hlen) {
    test::FrameBuilder b;
    b.pdu_header(total, count, flags, transport, hlen);
    return b.out;
  };
  const PduLimits l = split_limits(3);
  EXPECT_EQ(parse_error(hdr(60 + 5, 2, 1, 2, 60), l), WireError::kNone);
  EXPECT_EQ(parse_error(hdr(60, 2, 1, 2, 60), l), WireError::kNone) << "all payloads empty";
  EXPECT_EQ(parse_error(hdr(60 + 5, 2, 1, 3, 60), l), WireError::kBadTransport);
  EXPECT_EQ(parse_error(hdr(60 + 5, 2, 1, 0, 40), l), WireError::kBadHeaderLength);
  EXPECT_EQ(parse_error(hdr(60 + 5, 2, 1, 0, 20), l), WireError::kBadHeaderLength);
  EXPECT_EQ(parse_error(hdr(60 + 5, 2, 0, 0, 60), l), WireError::kBadFlags) << "inline header on a control transport";
  EXPECT_EQ(parse_error(hdr(59, 2, 1, 0, 60), l), WireError::kBadLength);
}

TEST(NetpduWire, TlpduGolden) {
  WireError e = WireError::kBadMagic;
  const auto h = TlpduHeader::parse(ByteSpan(kGoldenTlpdu), &e);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->meta.type, TlpduType::kData);
  EXPECT_EQ(h->meta.flags, 0x01);
  EXPECT_EQ(h->meta.session, 0x0102030405060708ull);
  EXPECT_EQ(h->meta.seq, 0x0A0B0C0Du);
  EXPECT_EQ(h->size, 0x100u);
  std::vector<std::byte> out(kTlpduHeaderLen);
  h->emit(out.data());
  EXPECT_EQ(out, kGoldenTlpdu);
}

TEST(NetpduWire, TlpduBadFields) {
  for (std::size_t n = 0; n < kTlpduHeaderLen; ++n) {
    WireError e = WireError::kNone;
    EXPECT_FALSE(TlpduHeader::parse(ByteSpan(kGoldenTlpdu.data(), n), &e));
    EXPECT_EQ(e, WireError::kTruncated);
  }
  for (int type : {0, 4, 0x80, 0xFF}) {
    auto b = kGoldenTlpdu;
    b[0] = static_cast<std::byte>(type);
    WireError e = WireError::kNone;
    EXPECT_FALSE(TlpduHeader::parse(ByteSpan(b), &e));
    EXPECT_EQ(e, WireError::kBadType) << type;
  }
  auto b = kGoldenTlpdu;
  b[3] = std::byte{1};
  WireError e = WireError::kNone;
  EXPECT_FALSE(TlpduHeader::parse(ByteSpan(b), &e));
  EXPECT_EQ(e, WireError::kBadReserved);
}

TEST(NetpduWire, InlineBodyWalk) {
  test::FrameBuilder b;
  b.tlpdu_header(1, 7, 0, 0);
  b.tlpdu_header(2, 7, 1, 3);
  b.text("abc");
  std::vector<TlpduSlot> slots;
  std::uint32_t where = 99;
  ASSERT_EQ(parse_inline_tlpdus(ByteSpan(b.out), 2, &slots, &where), WireError::kNone);
  ASSERT_EQ(slots.size(), 2u);
  EXPECT_EQ(slots[0].header.meta.type, TlpduType::kOpen);
  EXPECT_EQ(slots[1].offset, 40u);
  EXPECT_EQ(slots[1].header.size, 3u);

  // The count claims a third TLPDU that is not there.
  EXPECT_EQ(parse_inline_tlpdus(ByteSpan(b.out), 3, &slots, &where), WireError::kBadLength);
  EXPECT_EQ(where, 2u);
  // One TLPDU fewer than the bytes: leftover bytes.
  EXPECT_EQ(parse_inline_tlpdus(ByteSpan(b.out), 1, &slots, &where), WireError::kLengthMismatch);
  EXPECT_EQ(where, 1u);
  // A size running past the end.
  test::FrameBuilder c;
  c.tlpdu_header(2, 7, 0, 4);
  c.text("abc");
  EXPECT_EQ(parse_inline_tlpdus(ByteSpan(c.out), 1, &slots, &where), WireError::kBadLength);
  EXPECT_EQ(where, 0u);
  // A bad type in the second TLPDU.
  test::FrameBuilder d;
  d.tlpdu_header(2, 7, 0, 0);
  d.tlpdu_header(9, 7, 1, 0);
  EXPECT_EQ(parse_inline_tlpdus(ByteSpan(d.out), 2, &slots, &where), WireError::kBadType);
  EXPECT_EQ(where, 1u);
}

TEST(NetpduWire, HelloGolden) {
  WireError e = WireError::kBadMagic;
  const auto h = Hello::parse(ByteSpan(kGoldenHello), &e);
  ASSERT_TRUE(h.has_value()) << to_string(e);
  EXPECT_EQ(h->kind, HelloKind::kHello);
  EXPECT_EQ(h->version_min, 1);
  EXPECT_EQ(h->version_max, 1);
  EXPECT_EQ(h->role, Role::kControl);
  EXPECT_EQ(h->max_pdu_bytes, 0x40000u);
  EXPECT_EQ(h->max_tlpdus, 0x2000u);
  EXPECT_EQ(h->token, 0x1122334455667788ull);
  EXPECT_EQ(h->data_index, 0);
  EXPECT_EQ(h->data_count, 3);
  std::vector<std::byte> out(kHelloLen);
  h->emit(out.data());
  EXPECT_EQ(out, kGoldenHello);
}

TEST(NetpduWire, HelloBadFields) {
  for (std::size_t n = 0; n < kHelloLen; ++n) {
    WireError e = WireError::kNone;
    EXPECT_FALSE(Hello::parse(ByteSpan(kGoldenHello.data(), n), &e));
    EXPECT_EQ(e, WireError::kTruncated);
  }
  auto with = [](std::size_t at, int v) {
    auto b = kGoldenHello;
    b[at] = static_cast<std::byte>(v);
    WireError e = WireError::kNone;
    EXPECT_FALSE(Hello::parse(ByteSpan(b), &e));
    return e;
  };
  EXPECT_EQ(with(3, 0x55), WireError::kBadMagic) << "a NetPDU header is not a hello";
  EXPECT_EQ(with(4, 0), WireError::kBadMessage);
  EXPECT_EQ(with(4, 4), WireError::kBadMessage);
  EXPECT_EQ(with(7, 0), WireError::kBadRole);
  EXPECT_EQ(with(7, 4), WireError::kBadRole);
  EXPECT_EQ(with(31, 1), WireError::kBadReserved);
}

TEST(NetpduWire, RejectCarriesReason) {
  Hello r;
  r.kind = HelloKind::kReject;
  r.reason = RejectReason::kVersion;
  r.version_max = 1;
  std::vector<std::byte> out(kHelloLen);
  r.emit(out.data());
  EXPECT_EQ(out[5], std::byte{1});
  WireError e = WireError::kNone;
  const auto back = Hello::parse(ByteSpan(out), &e);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->reason, RejectReason::kVersion);
}

}  // namespace
}  // namespace xtcp::netpdu
