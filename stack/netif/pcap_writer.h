// PcapWriter: writes a classic pcap capture file (libpcap's format 2.4: microsecond
// timestamps, host byte order) through a buffered stdio stream, with no library beyond libc.
// PcapTap records links with it; the file is byte for byte what libpcap's pcap_dump writes.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>

namespace xtcp {

// LINKTYPE_RAW: each record is a bare IP packet, no link header.
inline constexpr std::uint32_t kPcapLinkTypeRaw = 101;
// The snapshot length written in the file header (what libtins's PacketWriter used).
inline constexpr std::uint32_t kPcapSnapLen = 65535;

class PcapWriter {
 public:
  // Creates (truncates) the file at path, mode 0644 before the umask, and writes the
  // 24-byte file header. On failure returns nullptr with
  // "cannot open pcap file '<path>': <reason>" in *error (may be null).
  static std::unique_ptr<PcapWriter> open(const std::string& path, std::uint32_t linktype,
                                          std::uint32_t snaplen, std::string* error);

  // Flushes the stdio buffer and closes the file (errors then are not reported). Records
  // reach the file when the buffer fills or here, not one by one.
  ~PcapWriter();
  PcapWriter(const PcapWriter&) = delete;
  PcapWriter& operator=(const PcapWriter&) = delete;

  // Appends one record: timestamp in microseconds since the epoch (its seconds are stored
  // in 32 bits, modulo 2^32, as libpcap does); captured and original length are both
  // packet.size(), never cut to the snapshot length. As libpcap's pcap_dump, once a write
  // has failed the stream stays in error and later records are dropped; the packet bytes
  // are written only if the record header was. Returns false when the record was dropped.
  bool write(std::uint64_t timestamp_us, std::span<const std::byte> packet);

 private:
  explicit PcapWriter(std::FILE* file) : file_(file) {}

  std::FILE* file_;
};

}  // namespace xtcp
