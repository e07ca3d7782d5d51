// TCP header view, option parser and emitter (RFC 9293 section 3.1, RFC 7323, RFC 2018).
// Parse once with TcpView::parse; after success every accessor is in bounds.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "stack/wire/bytes.h"
#include "stack/wire/seq.h"

namespace xtcp::wire {

inline constexpr std::size_t kTcpHeaderMin = 20;
inline constexpr std::size_t kTcpHeaderMax = 60;

namespace tcp_flags {
inline constexpr std::uint8_t kFin = 0x01;
inline constexpr std::uint8_t kSyn = 0x02;
inline constexpr std::uint8_t kRst = 0x04;
inline constexpr std::uint8_t kPsh = 0x08;
inline constexpr std::uint8_t kAck = 0x10;
inline constexpr std::uint8_t kUrg = 0x20;
inline constexpr std::uint8_t kEce = 0x40;
inline constexpr std::uint8_t kCwr = 0x80;
}  // namespace tcp_flags

namespace tcp_option {
inline constexpr std::uint8_t kEol = 0;
inline constexpr std::uint8_t kNop = 1;
inline constexpr std::uint8_t kMss = 2;
inline constexpr std::uint8_t kWindowScale = 3;
inline constexpr std::uint8_t kSackPermitted = 4;
inline constexpr std::uint8_t kSack = 5;
inline constexpr std::uint8_t kTimestamp = 8;
}  // namespace tcp_option

// RFC 7323 section 2.3: shifts above 14 are clamped to 14.
inline constexpr std::uint8_t kMaxWindowScale = 14;
inline constexpr std::size_t kMaxSackBlocks = 4;

enum class TcpError : std::uint8_t {
  kNone = 0,
  kTruncated,          // shorter than 20 bytes or than its data offset
  kBadDataOffset,      // data offset < 5
  kBadOptionLength,    // option length 0/1, or running past the header
  kBadOptionSize,      // a known option with the wrong fixed length
  kBadChecksum,
};
const char* to_string(TcpError e);

struct SackBlock {
  SeqNum left;
  SeqNum right;  // one past the last byte
};

struct TcpOptions {
  bool has_mss = false;
  bool has_window_scale = false;
  bool sack_permitted = false;
  bool has_timestamp = false;
  bool window_scale_clamped = false;  // peer sent a shift > 14
  std::uint8_t window_scale = 0;
  std::uint16_t mss = 0;
  std::uint32_t ts_val = 0;
  std::uint32_t ts_ecr = 0;
  std::uint8_t sack_count = 0;
  std::array<SackBlock, kMaxSackBlocks> sack{};
  std::uint8_t unknown_count = 0;  // skipped options of unknown kind
};

// Walks the option bytes. EOL ends the list; unknown kinds with a sane length are skipped.
TcpError parse_tcp_options(ByteSpan options, TcpOptions* out);

class TcpView {
 public:
  // Returns a view with ok() false (and *error set) when the segment is malformed.
  // Checksum is not verified here; see verify_checksum.
  static TcpView parse(ByteSpan segment, TcpError* error);

  bool ok() const { return ok_; }
  std::uint16_t src_port() const { return load_be16(p() + 0); }
  std::uint16_t dst_port() const { return load_be16(p() + 2); }
  SeqNum seq() const { return SeqNum(load_be32(p() + 4)); }
  SeqNum ack() const { return SeqNum(load_be32(p() + 8)); }
  std::size_t header_length() const { return static_cast<std::size_t>(load_u8(p() + 12) >> 4) * 4; }
  std::uint8_t flags() const { return load_u8(p() + 13); }
  bool has(std::uint8_t flag) const { return (flags() & flag) != 0; }
  std::uint16_t window() const { return load_be16(p() + 14); }
  std::uint16_t checksum() const { return load_be16(p() + 16); }
  std::uint16_t urgent_pointer() const { return load_be16(p() + 18); }
  ByteSpan options() const { return bytes_.subspan(kTcpHeaderMin, header_length() - kTcpHeaderMin); }
  ByteSpan payload() const { return bytes_.subspan(header_length()); }
  ByteSpan bytes() const { return bytes_; }
  // Segment length in sequence space: data plus one for SYN and one for FIN.
  std::uint32_t seq_length() const {
    return static_cast<std::uint32_t>(payload().size()) + (has(tcp_flags::kSyn) ? 1 : 0) +
           (has(tcp_flags::kFin) ? 1 : 0);
  }
  bool verify_checksum(std::uint32_t src, std::uint32_t dst) const;

 private:
  const std::byte* p() const { return bytes_.data(); }
  ByteSpan bytes_;
  bool ok_ = false;
};

struct TcpFields {
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;
  SeqNum seq;
  SeqNum ack;
  std::uint8_t flags = 0;
  std::uint16_t window = 0;
  std::uint16_t urgent_pointer = 0;
};

// Bytes emit_tcp_header will write for these options (20 + padded options, <= 60).
std::size_t tcp_header_length(const TcpOptions& opts);

// Writes header and options (NOP-padded to 4 bytes, in Linux's order: MSS, SACK-permitted
// with timestamps, window scale, SACK blocks) with a zero checksum. Returns header length.
std::size_t emit_tcp_header(std::byte* out, const TcpFields& fields, const TcpOptions& opts);

// Computes and stores the checksum of segment (header + payload, contiguous).
void fill_tcp_checksum(MutableByteSpan segment, std::uint32_t src, std::uint32_t dst);

}  // namespace xtcp::wire
