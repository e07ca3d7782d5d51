// Parsers and emitters for the NetPDU header, TLPDU header and hello (layout in
// docs/netpdu.md). parse() validates every field against the negotiated limits before
// returning a value; emit() writes a fixed number of bytes into caller memory.
#include "netpdu/wire.h"

namespace xtcp::netpdu {

bool is_valid_tlpdu_type(std::uint8_t t) {
  return t >= static_cast<std::uint8_t>(TlpduType::kOpen) && t <= static_cast<std::uint8_t>(TlpduType::kClose);
}

const char* to_string(TlpduType t) {
  switch (t) {
    case TlpduType::kOpen:
      return "OPEN";
    case TlpduType::kData:
      return "DATA";
    case TlpduType::kClose:
      return "CLOSE";
  }
  return "?";
}

const char* to_string(WireError e) {
  switch (e) {
    case WireError::kNone:
      return "none";
    case WireError::kTruncated:
      return "truncated";
    case WireError::kBadMagic:
      return "bad magic";
    case WireError::kBadVersion:
      return "bad version";
    case WireError::kBadFlags:
      return "bad flags";
    case WireError::kBadHeaderLength:
      return "bad header length";
    case WireError::kBadLength:
      return "bad length";
    case WireError::kTooLong:
      return "longer than the negotiated maximum";
    case WireError::kBadCount:
      return "bad TLPDU count";
    case WireError::kBadTransport:
      return "no such data transport";
    case WireError::kBadType:
      return "unknown TLPDU type";
    case WireError::kBadReserved:
      return "reserved field not zero";
    case WireError::kLengthMismatch:
      return "TLPDU sizes do not add up to the total length";
    case WireError::kBadMessage:
      return "unknown hello message";
    case WireError::kBadRole:
      return "unknown role";
  }
  return "unknown";
}

const char* to_string(Role r) {
  switch (r) {
    case Role::kSingle:
      return "single";
    case Role::kControl:
      return "control";
    case Role::kData:
      return "data";
  }
  return "?";
}

const char* to_string(RejectReason r) {
  switch (r) {
    case RejectReason::kNone:
      return "none";
    case RejectReason::kVersion:
      return "no common version";
    case RejectReason::kRole:
      return "role not served";
    case RejectReason::kLimits:
      return "limits out of range";
    case RejectReason::kBundle:
      return "bad bundle";
    case RejectReason::kMalformed:
      return "malformed hello";
  }
  return "?";
}

std::optional<TlpduHeader> TlpduHeader::parse(ByteSpan bytes, WireError* err) {
  auto fail = [err](WireError e) -> std::optional<TlpduHeader> {
    *err = e;
    return std::nullopt;
  };
  if (bytes.size() < kTlpduHeaderLen) {
    return fail(WireError::kTruncated);
  }
  const std::byte* p = bytes.data();
  const std::uint8_t type = load_u8(p);
  if (!is_valid_tlpdu_type(type)) {
    return fail(WireError::kBadType);
  }
  if (load_be16(p + 2) != 0) {
    return fail(WireError::kBadReserved);
  }
  TlpduHeader h;
  h.meta.type = static_cast<TlpduType>(type);
  h.meta.flags = load_u8(p + 1);
  h.meta.session = load_be64(p + 4);
  h.meta.seq = load_be32(p + 12);
  h.size = load_be32(p + 16);
  *err = WireError::kNone;
  return h;
}

void TlpduHeader::emit(std::byte* out) const {
  store_u8(out, static_cast<std::uint8_t>(meta.type));
  store_u8(out + 1, meta.flags);
  store_be16(out + 2, 0);
  store_be64(out + 4, meta.session);
  store_be32(out + 12, meta.seq);
  store_be32(out + 16, size);
}

std::optional<NetPduHeader> NetPduHeader::parse(ByteSpan bytes, const PduLimits& limits, WireError* err) {
  auto fail = [err](WireError e) -> std::optional<NetPduHeader> {
    *err = e;
    return std::nullopt;
  };
  if (bytes.size() < kNetPduHeaderLen) {
    return fail(WireError::kTruncated);
  }
  const std::byte* p = bytes.data();
  if (load_be32(p) != kNetPduMagic) {
    return fail(WireError::kBadMagic);
  }
  NetPduHeader h;
  h.version = load_u8(p + 4);
  h.flags = load_u8(p + 5);
  h.data_transport = load_be16(p + 6);
  h.header_len = load_be32(p + 8);
  h.total_len = load_be32(p + 12);
  h.count = load_be32(p + 16);
  if (h.version != kVersion1) {
    return fail(WireError::kBadVersion);
  }
  if ((h.flags & ~pdu_flags::kKnown) != 0 || ((h.flags & pdu_flags::kSplit) != 0) != limits.split) {
    return fail(WireError::kBadFlags);
  }
  if (h.count == 0 || h.count > limits.max_tlpdus) {
    return fail(WireError::kBadCount);
  }
  if (limits.split) {
    if (h.data_transport >= limits.data_transports) {
      return fail(WireError::kBadTransport);
    }
    // count <= max_tlpdus <= kMaxMaxTlpdus keeps this product far from overflow.
    if (static_cast<std::uint64_t>(h.header_len) != kNetPduHeaderLen + std::uint64_t{kTlpduHeaderLen} * h.count) {
      return fail(WireError::kBadHeaderLength);
    }
  } else {
    if (h.data_transport != 0) {
      return fail(WireError::kBadTransport);
    }
    if (h.header_len != kNetPduHeaderLen) {
      return fail(WireError::kBadHeaderLength);
    }
  }
  if (h.total_len > limits.max_pdu_bytes) {
    return fail(WireError::kTooLong);
  }
  if (h.total_len < h.header_len) {
    return fail(WireError::kBadLength);
  }
  if (!limits.split && h.total_len - h.header_len < std::uint64_t{kTlpduHeaderLen} * h.count) {
    return fail(WireError::kBadLength);  // the count cannot fit in the body
  }
  *err = WireError::kNone;
  return h;
}

void NetPduHeader::emit(std::byte* out) const {
  store_be32(out, kNetPduMagic);
  store_u8(out + 4, version);
  store_u8(out + 5, flags);
  store_be16(out + 6, data_transport);
  store_be32(out + 8, header_len);
  store_be32(out + 12, total_len);
  store_be32(out + 16, count);
}

WireError parse_inline_tlpdus(ByteSpan body, std::uint32_t count, std::vector<TlpduSlot>* out,
                              std::uint32_t* where) {
  out->clear();
  std::size_t off = 0;
  for (std::uint32_t i = 0; i < count; ++i) {
    *where = i;
    if (body.size() - off < kTlpduHeaderLen) {
      return WireError::kBadLength;
    }
    WireError e = WireError::kNone;
    auto h = TlpduHeader::parse(body.subspan(off, kTlpduHeaderLen), &e);
    if (!h) {
      return e;
    }
    off += kTlpduHeaderLen;
    if (h->size > body.size() - off) {
      return WireError::kBadLength;
    }
    out->push_back(TlpduSlot{*h, static_cast<std::uint32_t>(off)});
    off += h->size;
  }
  if (off != body.size()) {
    *where = count;
    return WireError::kLengthMismatch;
  }
  return WireError::kNone;
}

std::optional<Hello> Hello::parse(ByteSpan bytes, WireError* err) {
  auto fail = [err](WireError e) -> std::optional<Hello> {
    *err = e;
    return std::nullopt;
  };
  if (bytes.size() < kHelloLen) {
    return fail(WireError::kTruncated);
  }
  const std::byte* p = bytes.data();
  if (load_be32(p) != kHelloMagic) {
    return fail(WireError::kBadMagic);
  }
  const std::uint8_t kind = load_u8(p + 4);
  if (kind < static_cast<std::uint8_t>(HelloKind::kHello) || kind > static_cast<std::uint8_t>(HelloKind::kReject)) {
    return fail(WireError::kBadMessage);
  }
  const std::uint8_t role = load_u8(p + 7);
  if (role < static_cast<std::uint8_t>(Role::kSingle) || role > static_cast<std::uint8_t>(Role::kData)) {
    return fail(WireError::kBadRole);
  }
  if (load_be32(p + 28) != 0) {
    return fail(WireError::kBadReserved);
  }
  Hello h;
  h.kind = static_cast<HelloKind>(kind);
  h.role = static_cast<Role>(role);
  if (h.kind == HelloKind::kReject) {
    h.reason = static_cast<RejectReason>(load_u8(p + 5));  // any value: shown, never indexed
    h.version_min = 0;
    h.version_max = load_u8(p + 6);
  } else {
    h.version_min = load_u8(p + 5);
    h.version_max = load_u8(p + 6);
  }
  h.max_pdu_bytes = load_be32(p + 8);
  h.max_tlpdus = load_be32(p + 12);
  h.token = load_be64(p + 16);
  h.data_index = load_be16(p + 24);
  h.data_count = load_be16(p + 26);
  *err = WireError::kNone;
  return h;
}

void Hello::emit(std::byte* out) const {
  store_be32(out, kHelloMagic);
  store_u8(out + 4, static_cast<std::uint8_t>(kind));
  store_u8(out + 5, kind == HelloKind::kReject ? static_cast<std::uint8_t>(reason) : version_min);
  store_u8(out + 6, version_max);
  store_u8(out + 7, static_cast<std::uint8_t>(role));
  store_be32(out + 8, max_pdu_bytes);
  store_be32(out + 12, max_tlpdus);
  store_be64(out + 16, token);
  store_be16(out + 24, data_index);
  store_be16(out + 26, data_count);
  store_be32(out + 28, 0);
}

}  // namespace xtcp::netpdu
