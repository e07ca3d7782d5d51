// PcapWriter: writes a classic pcap capture file (libpcap's format 2.4: microsecond
// timestamps, host byte order) through a buffered stdio stream, with no library beyond libc.
// PcapTap records links with it; the file is byte for byte what libpcap's pcap_dump writes.
#pragma once

#include <cstddef>
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

// How PcapWriter::open makes the file, beyond linktype and snapshot length.
struct PcapWriterOptions {
  // O_NONBLOCK on the descriptor: a FIFO or socket path whose reader falls behind makes
  // the write fail with EAGAIN instead of stalling the caller (regular files ignore it).
  bool nonblocking = false;
  // The stdio buffer: records reach the file one write(2) per this many bytes. 0: stdio's.
  std::size_t buffer_bytes = 0;
};

class PcapWriter {
 public:
  // Creates (truncates) the file at path, mode 0644 before the umask, and writes the
  // 24-byte file header. On failure returns nullptr with
  // "cannot open pcap file '<path>': <reason>" in *error (may be null) and the errno in
  // *error_code (may be null).
  static std::unique_ptr<PcapWriter> open(const std::string& path, std::uint32_t linktype,
                                          std::uint32_t snaplen, std::string* error) {
    return open(path, linktype, snaplen, PcapWriterOptions{}, error, nullptr);
  }
  static std::unique_ptr<PcapWriter> open(const std::string& path, std::uint32_t linktype,
                                          std::uint32_t snaplen, const PcapWriterOptions& options,
                                          std::string* error, int* error_code);
  // Bytes of the file header every file starts with, and of each record's header.
  static constexpr std::size_t kFileHeaderBytes = 24;
  static constexpr std::size_t kRecordHeaderBytes = 16;

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
  bool write(std::uint64_t timestamp_us, std::span<const std::byte> packet) {
    return write(timestamp_us, packet, packet.size());
  }
  // The same for a packet cut to its first captured.size() bytes: the record keeps
  // original_length (at least captured.size()) as the length the packet had on the wire.
  bool write(std::uint64_t timestamp_us, std::span<const std::byte> captured, std::size_t original_length);

  // Flushes and closes the file now: 0, or the errno of the first write that failed (the
  // one write() reported, or the final flush's). Later calls return the same; write()
  // then drops every record.
  int close();
  // The errno of the first failed write (0: none yet).
  int error() const { return error_; }

 private:
  PcapWriter(std::FILE* file, std::unique_ptr<char[]> buffer) : file_(file), buffer_(std::move(buffer)) {}
  bool fail();

  std::FILE* file_;
  std::unique_ptr<char[]> buffer_;  // the stdio buffer of PcapWriterOptions::buffer_bytes
  int error_ = 0;
};

}  // namespace xtcp
