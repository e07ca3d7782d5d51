// CaptureFile: the pcap files of one capture (CaptureTap), cut to a snapshot length and
// rotated by size. The first file is the path itself; when the next record would take a
// file past rotate_bytes, the file is closed and the next one opened: for a path ending
// in ".pcap" the names are NAME.pcap, NAME.1.pcap, NAME.2.pcap, ... (otherwise PATH,
// PATH.1, PATH.2, ...); once more than rotate_files exist, the oldest is removed, so the
// newest rotate_files files stay. Without rotation (rotate_bytes 0) there is one file.
//
//   record(packet) --snaplen--> PcapWriter(current file) --full?--> close, open next, unlink oldest
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "stack/netif/pcap_writer.h"

namespace xtcp {

struct CaptureFileOptions {
  std::string path;
  std::uint32_t snaplen = kPcapSnapLen;  // bytes kept of each packet, 1 to 65535
  std::uint64_t rotate_bytes = 0;        // 0: one file without limit
  std::uint32_t rotate_files = 1;        // with rotate_bytes: the newest files kept, >= 1
};

class CaptureFile {
 public:
  // The stdio buffer of each file: at most one write(2) per this many bytes captured.
  static constexpr std::size_t kBufferBytes = 64 * 1024;

  // Opens the first file. nullptr on failure, with the errno in *error_code and
  // "cannot open pcap file '<path>': <reason>" in *error.
  static std::unique_ptr<CaptureFile> open(const CaptureFileOptions& options, std::string* error, int* error_code);
  CaptureFile(const CaptureFile&) = delete;
  CaptureFile& operator=(const CaptureFile&) = delete;
  ~CaptureFile();

  // Appends the packet (its first snaplen bytes), rotating first when the record would take
  // the file past rotate_bytes (a file always takes its first record, however big). 0, or
  // the errno of the write, flush or open that failed: the capture is then over and later
  // calls return the same errno.
  int record(std::uint64_t timestamp_us, std::span<const std::byte> packet);
  // Closes the current file: 0, or the errno of its final flush (or the earlier failure).
  int close();

  // The name of file number index (0: the path itself).
  static std::string file_name(const std::string& path, std::uint64_t index);
  // The number of the file being written (0 for the first).
  std::uint64_t file_index() const { return index_; }
  std::uint64_t packets_truncated() const { return truncated_; }

 private:
  explicit CaptureFile(CaptureFileOptions options) : options_(std::move(options)) {}
  int open_current(std::string* error);
  int rotate();

  CaptureFileOptions options_;
  std::unique_ptr<PcapWriter> writer_;
  std::uint64_t index_ = 0;         // the current file's number
  std::uint64_t file_bytes_ = 0;    // bytes in the current file, headers included
  std::uint64_t file_records_ = 0;  // records in the current file
  std::uint64_t truncated_ = 0;     // packets cut to snaplen
  int error_ = 0;
};

}  // namespace xtcp
