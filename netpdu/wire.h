// NetPDU wire format (docs/netpdu.md has the byte-by-byte layout): the NetPDU header, the
// TLPDU header and the transport set-up hello. Each is a small value with parse()/emit():
// parse() checks the length once and every field, so nothing after it can read out of bounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "netpdu/bytes.h"

namespace xtcp::netpdu {

inline constexpr std::uint32_t kNetPduMagic = 0x4E504455;  // "NPDU"
inline constexpr std::uint32_t kHelloMagic = 0x4E504448;   // "NPDH": never parses as a NetPDU
inline constexpr std::uint8_t kVersion1 = 1;
inline constexpr std::uint8_t kMinSupportedVersion = 1;
inline constexpr std::uint8_t kMaxSupportedVersion = 1;

inline constexpr std::size_t kNetPduHeaderLen = 20;  // fixed part (all of it on an inline transport)
inline constexpr std::size_t kTlpduHeaderLen = 20;
inline constexpr std::size_t kHelloLen = 32;

// Bounds on what a handshake may agree to: below the floor a 64 KiB client message would not
// fit; above the ceiling one frame could make the receiver allocate without reason.
inline constexpr std::uint32_t kMinMaxPduBytes = 1024;
inline constexpr std::uint32_t kMaxMaxPduBytes = 64u << 20;
inline constexpr std::uint32_t kMaxMaxTlpdus = 1u << 20;

namespace pdu_flags {
// The header travels on a control transport; its TLPDU headers follow it there and the
// payloads go, back to back, on the data transport it names (variant 2).
inline constexpr std::uint8_t kSplit = 0x01;
inline constexpr std::uint8_t kKnown = kSplit;
}  // namespace pdu_flags

// The request type of a TLPDU: what the message does to its session.
enum class TlpduType : std::uint8_t {
  kOpen = 1,   // a session (client connection) starts
  kData = 2,   // bytes of the session
  kClose = 3,  // the session ends
};
bool is_valid_tlpdu_type(std::uint8_t t);
const char* to_string(TlpduType t);

namespace tlpdu_flags {
// Set by the IM backend on the one TLPDU that answers a request line (docs/netpdu.md); the
// library itself passes flags through untouched.
inline constexpr std::uint8_t kAnswer = 0x01;
}  // namespace tlpdu_flags

enum class WireError : std::uint8_t {
  kNone = 0,
  kTruncated,         // fewer bytes than the fixed part
  kBadMagic,          // not a NetPDU / hello at all: wrong peer or lost framing
  kBadVersion,        // a version the transport did not negotiate
  kBadFlags,          // unknown flag bits, or the split flag on the wrong kind of transport
  kBadHeaderLength,   // header length field inconsistent with the variant and count
  kBadLength,         // total length below the header, or a TLPDU running past the end
  kTooLong,           // total length above the negotiated maximum aggregation size
  kBadCount,          // zero TLPDUs, or more than negotiated
  kBadTransport,      // a split header naming a data transport that does not exist
  kBadType,           // TLPDU request type unknown
  kBadReserved,       // a reserved field is not zero
  kLengthMismatch,    // TLPDU sizes do not add up to the total length
  kBadMessage,        // hello: unknown message kind
  kBadRole,           // hello: unknown role
};
const char* to_string(WireError e);

// What a session's TLPDU says about itself, minus its size (the payload carries that).
struct TlpduMeta {
  TlpduType type = TlpduType::kData;
  std::uint8_t flags = 0;
  std::uint64_t session = 0;
  std::uint32_t seq = 0;  // per session and direction, +1 per TLPDU, wraps
};

struct TlpduHeader {
  TlpduMeta meta;
  std::uint32_t size = 0;

  // Layout: type u8, flags u8, reserved u16 (0), session u64, seq u32, size u32.
  static std::optional<TlpduHeader> parse(ByteSpan bytes, WireError* err);
  // Writes exactly kTlpduHeaderLen bytes at out.
  void emit(std::byte* out) const;
};

// Limits a receiver checks a NetPDU header against (the handshake's outcome).
struct PduLimits {
  std::uint32_t max_pdu_bytes = 256 * 1024;
  std::uint32_t max_tlpdus = 8192;
  bool split = false;               // expecting control-transport headers (variant 2)
  std::uint16_t data_transports = 0;  // split only: how many data transports exist
};

struct NetPduHeader {
  std::uint8_t version = kVersion1;
  std::uint8_t flags = 0;
  std::uint16_t data_transport = 0;  // split only
  std::uint32_t header_len = kNetPduHeaderLen;
  std::uint32_t total_len = 0;
  std::uint32_t count = 0;

  // Checks the fixed part (kNetPduHeaderLen bytes) against the limits: magic, version,
  // flags, header length for the variant, count, total length. The TLPDUs are checked by
  // parse_inline_tlpdus / the split receiver.
  static std::optional<NetPduHeader> parse(ByteSpan bytes, const PduLimits& limits, WireError* err);
  // Writes exactly kNetPduHeaderLen bytes at out.
  void emit(std::byte* out) const;

  static std::uint32_t split_header_len(std::uint32_t count) {
    return static_cast<std::uint32_t>(kNetPduHeaderLen + kTlpduHeaderLen * count);
  }
};

// One TLPDU found in a received NetPDU: its header and where its payload starts, counted
// from the start of the body (inline) or of the data block (split).
struct TlpduSlot {
  TlpduHeader header;
  std::uint32_t offset = 0;
};

// Walks the body of an inline NetPDU (everything after its fixed header): exactly `count`
// TLPDUs, each header then payload, ending exactly at the end of `body`. Fills *out (cleared
// first); on error returns it with *where = index of the offending TLPDU (count when bytes
// are left over), and the caller must deliver nothing of this frame.
WireError parse_inline_tlpdus(ByteSpan body, std::uint32_t count, std::vector<TlpduSlot>* out,
                              std::uint32_t* where);

enum class HelloKind : std::uint8_t { kHello = 1, kAccept = 2, kReject = 3 };
enum class Role : std::uint8_t {
  kSingle = 1,   // variant 1: NetPDU headers and TLPDUs on this one transport
  kControl = 2,  // variant 2: the control transport of a bundle
  kData = 3,     // variant 2: data transport number data_index of a bundle
};
enum class RejectReason : std::uint8_t {
  kNone = 0,
  kVersion = 1,    // no common version
  kRole = 2,       // the acceptor does not serve this role (or roles differ)
  kLimits = 3,     // proposed sizes outside [kMinMaxPduBytes, kMaxMaxPduBytes]
  kBundle = 4,     // unknown bundle token, duplicate or out-of-range data index
  kMalformed = 5,  // the hello itself did not parse
};
const char* to_string(Role r);
const char* to_string(RejectReason r);

// One 32-byte message each way at set-up: the initiator sends kHello with what it supports;
// the acceptor answers kAccept with the agreed values, or kReject with a reason, then closes.
struct Hello {
  HelloKind kind = HelloKind::kHello;
  std::uint8_t version_min = kMinSupportedVersion;  // kAccept: the chosen version (both)
  std::uint8_t version_max = kMaxSupportedVersion;
  Role role = Role::kSingle;
  RejectReason reason = RejectReason::kNone;  // kReject only (it shares byte 5)
  std::uint32_t max_pdu_bytes = 0;
  std::uint32_t max_tlpdus = 0;
  std::uint64_t token = 0;        // bundle token (variant 2), 0 otherwise
  std::uint16_t data_index = 0;   // kData: which data transport this is
  std::uint16_t data_count = 0;   // kControl/kData: how many data transports the bundle has

  static std::optional<Hello> parse(ByteSpan bytes, WireError* err);
  void emit(std::byte* out) const;
};

}  // namespace xtcp::netpdu
