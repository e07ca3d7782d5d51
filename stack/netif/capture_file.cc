// CaptureFile implementation: sizes are counted as records are written (24-byte file header,
// 16 bytes per record plus its captured bytes), so rotation needs no stat(2); the oldest
// file is removed by name when a new one takes the count past rotate_files.
#include "stack/netif/capture_file.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace xtcp {

std::string CaptureFile::file_name(const std::string& path, std::uint64_t index) {
  if (index == 0) {
    return path;
  }
  constexpr std::string_view kExt = ".pcap";
  const bool pcap = path.size() > kExt.size() && path.compare(path.size() - kExt.size(), kExt.size(), kExt) == 0;
  std::string name(path, 0, pcap ? path.size() - kExt.size() : path.size());
  name += '.';
  name += std::to_string(index);
  if (pcap) {
    name += kExt;
  }
  return name;
}

std::unique_ptr<CaptureFile> CaptureFile::open(const CaptureFileOptions& options, std::string* error,
                                               int* error_code) {
  std::unique_ptr<CaptureFile> f(new CaptureFile(options));
  const int err = f->open_current(error);
  if (err != 0) {
    if (error_code != nullptr) {
      *error_code = err;
    }
    return nullptr;
  }
  return f;
}

CaptureFile::~CaptureFile() { close(); }

int CaptureFile::open_current(std::string* error) {
  PcapWriterOptions wo;
  wo.nonblocking = true;  // a FIFO whose reader stalls ends the capture, never the data path
  wo.buffer_bytes = kBufferBytes;
  int err = 0;
  writer_ = PcapWriter::open(file_name(options_.path, index_), kPcapLinkTypeRaw, options_.snaplen, wo, error, &err);
  if (!writer_) {
    return err != 0 ? err : EIO;
  }
  file_bytes_ = PcapWriter::kFileHeaderBytes;
  file_records_ = 0;
  return 0;
}

int CaptureFile::rotate() {
  const int err = writer_->close();
  writer_.reset();
  if (err != 0) {
    return err;
  }
  ++index_;
  if (index_ >= options_.rotate_files) {
    // Best effort: a file the operator already moved away is not an error.
    ::unlink(file_name(options_.path, index_ - options_.rotate_files).c_str());
  }
  return open_current(nullptr);
}

int CaptureFile::record(std::uint64_t timestamp_us, std::span<const std::byte> packet) {
  if (error_ != 0) {
    return error_;
  }
  if (!writer_) {
    return EBADF;  // closed
  }
  const std::size_t kept = std::min<std::size_t>(packet.size(), options_.snaplen);
  const std::uint64_t bytes = PcapWriter::kRecordHeaderBytes + kept;
  if (options_.rotate_bytes != 0 && file_records_ != 0 && file_bytes_ + bytes > options_.rotate_bytes) {
    error_ = rotate();
    if (error_ != 0) {
      return error_;
    }
  }
  if (!writer_->write(timestamp_us, packet.first(kept), packet.size())) {
    error_ = writer_->error() != 0 ? writer_->error() : EIO;
    return error_;
  }
  file_bytes_ += bytes;
  ++file_records_;
  if (kept < packet.size()) {
    ++truncated_;
  }
  return 0;
}

int CaptureFile::close() {
  if (writer_) {
    const int err = writer_->close();
    writer_.reset();
    if (error_ == 0) {
      error_ = err;
    }
  }
  return error_;
}

}  // namespace xtcp
