// TCP header parsing and emission. Option rules: RFC 9293 section 3.1 (EOL/NOP, kind-length
// encoding), RFC 7323 (window scale, timestamps), RFC 2018 (SACK).
#include "stack/wire/tcp.h"

#include "stack/wire/checksum.h"
#include "stack/wire/ipv4.h"

namespace xtcp::wire {

const char* to_string(TcpError e) {
  switch (e) {
    case TcpError::kNone: return "none";
    case TcpError::kTruncated: return "truncated";
    case TcpError::kBadDataOffset: return "bad_data_offset";
    case TcpError::kBadOptionLength: return "bad_option_length";
    case TcpError::kBadOptionSize: return "bad_option_size";
    case TcpError::kBadChecksum: return "bad_checksum";
  }
  return "unknown";
}

TcpError parse_tcp_options(ByteSpan options, TcpOptions* out) {
  *out = TcpOptions{};
  std::size_t i = 0;
  const std::size_t n = options.size();
  const std::byte* p = options.data();
  while (i < n) {
    const std::uint8_t kind = load_u8(p + i);
    if (kind == tcp_option::kEol) {
      break;
    }
    if (kind == tcp_option::kNop) {
      ++i;
      continue;
    }
    // RFC 9293 3.1: every other option carries a length byte that counts kind and length.
    if (i + 1 >= n) {
      return TcpError::kBadOptionLength;
    }
    const std::size_t len = load_u8(p + i + 1);
    if (len < 2 || i + len > n) {
      return TcpError::kBadOptionLength;
    }
    const std::byte* v = p + i + 2;
    switch (kind) {
      case tcp_option::kMss:
        if (len != 4) {
          return TcpError::kBadOptionSize;
        }
        out->has_mss = true;
        out->mss = load_be16(v);
        break;
      case tcp_option::kWindowScale:
        if (len != 3) {
          return TcpError::kBadOptionSize;
        }
        out->has_window_scale = true;
        out->window_scale = load_u8(v);
        if (out->window_scale > kMaxWindowScale) {
          out->window_scale = kMaxWindowScale;  // RFC 7323 2.3: use 14, log the error
          out->window_scale_clamped = true;
        }
        break;
      case tcp_option::kSackPermitted:
        if (len != 2) {
          return TcpError::kBadOptionSize;
        }
        out->sack_permitted = true;
        break;
      case tcp_option::kTimestamp:
        if (len != 10) {
          return TcpError::kBadOptionSize;
        }
        out->has_timestamp = true;
        out->ts_val = load_be32(v);
        out->ts_ecr = load_be32(v + 4);
        break;
      case tcp_option::kSack: {
        if (len < 10 || (len - 2) % 8 != 0) {
          return TcpError::kBadOptionSize;
        }
        const std::size_t blocks = (len - 2) / 8;
        out->sack_count = 0;
        for (std::size_t b = 0; b < blocks && b < kMaxSackBlocks; ++b) {
          out->sack[b] = SackBlock{SeqNum(load_be32(v + 8 * b)), SeqNum(load_be32(v + 8 * b + 4))};
          ++out->sack_count;
        }
        break;
      }
      default:
        ++out->unknown_count;  // RFC 9293 3.1: unknown options are skipped by their length
        break;
    }
    i += len;
  }
  return TcpError::kNone;
}

TcpView TcpView::parse(ByteSpan segment, TcpError* error) {
  TcpView v;
  *error = TcpError::kNone;
  if (segment.size() < kTcpHeaderMin) {
    *error = TcpError::kTruncated;
    return v;
  }
  const std::size_t offset = static_cast<std::size_t>(load_u8(segment.data() + 12) >> 4) * 4;
  if (offset < kTcpHeaderMin) {
    *error = TcpError::kBadDataOffset;
    return v;
  }
  if (offset > segment.size()) {
    *error = TcpError::kTruncated;
    return v;
  }
  v.bytes_ = segment;
  v.ok_ = true;
  return v;
}

bool TcpView::verify_checksum(std::uint32_t src, std::uint32_t dst) const {
  Checksum c = pseudo_header_sum(src, dst, kProtoTcp, static_cast<std::uint16_t>(bytes_.size()));
  c.add(bytes_);
  return c.folded() == 0xffff;
}

namespace {

std::size_t sack_blocks_that_fit(const TcpOptions& opts) {
  std::size_t used = (opts.has_mss ? 4 : 0) + (opts.has_window_scale ? 4 : 0) +
                     ((opts.has_timestamp || opts.sack_permitted) ? (opts.has_timestamp ? 12 : 4) : 0);
  std::size_t blocks = opts.sack_count;
  while (blocks > 0 && used + 4 + 8 * blocks > kTcpHeaderMax - kTcpHeaderMin) {
    --blocks;
  }
  return blocks;
}

}  // namespace

std::size_t tcp_header_length(const TcpOptions& opts) {
  std::size_t len = kTcpHeaderMin;
  if (opts.has_mss) {
    len += 4;
  }
  if (opts.has_timestamp) {
    len += 12;
  } else if (opts.sack_permitted) {
    len += 4;
  }
  if (opts.has_window_scale) {
    len += 4;
  }
  const std::size_t blocks = sack_blocks_that_fit(opts);
  if (blocks > 0) {
    len += 4 + 8 * blocks;
  }
  return len;
}

std::size_t emit_tcp_header(std::byte* out, const TcpFields& f, const TcpOptions& opts) {
  const std::size_t len = tcp_header_length(opts);
  store_be16(out + 0, f.src_port);
  store_be16(out + 2, f.dst_port);
  store_be32(out + 4, f.seq.raw());
  store_be32(out + 8, f.ack.raw());
  store_u8(out + 12, static_cast<std::uint8_t>((len / 4) << 4));
  store_u8(out + 13, f.flags);
  store_be16(out + 14, f.window);
  store_be16(out + 16, 0);
  store_be16(out + 18, f.urgent_pointer);
  std::byte* o = out + kTcpHeaderMin;
  auto put = [&o](std::uint8_t b) { store_u8(o++, b); };
  if (opts.has_mss) {
    put(tcp_option::kMss);
    put(4);
    store_be16(o, opts.mss);
    o += 2;
  }
  if (opts.has_timestamp) {
    if (opts.sack_permitted) {
      put(tcp_option::kSackPermitted);
      put(2);
    } else {
      put(tcp_option::kNop);
      put(tcp_option::kNop);
    }
    put(tcp_option::kTimestamp);
    put(10);
    store_be32(o, opts.ts_val);
    store_be32(o + 4, opts.ts_ecr);
    o += 8;
  } else if (opts.sack_permitted) {
    put(tcp_option::kNop);
    put(tcp_option::kNop);
    put(tcp_option::kSackPermitted);
    put(2);
  }
  if (opts.has_window_scale) {
    put(tcp_option::kNop);
    put(tcp_option::kWindowScale);
    put(3);
    put(opts.window_scale);
  }
  const std::size_t blocks = sack_blocks_that_fit(opts);
  if (blocks > 0) {
    put(tcp_option::kNop);
    put(tcp_option::kNop);
    put(tcp_option::kSack);
    put(static_cast<std::uint8_t>(2 + 8 * blocks));
    for (std::size_t b = 0; b < blocks; ++b) {
      store_be32(o, opts.sack[b].left.raw());
      store_be32(o + 4, opts.sack[b].right.raw());
      o += 8;
    }
  }
  return len;
}

void fill_tcp_checksum(MutableByteSpan segment, std::uint32_t src, std::uint32_t dst) {
  store_be16(segment.data() + 16, 0);
  Checksum c = pseudo_header_sum(src, dst, kProtoTcp, static_cast<std::uint16_t>(segment.size()));
  c.add(segment);
  store_be16(segment.data() + 16, c.finish());
}

}  // namespace xtcp::wire
