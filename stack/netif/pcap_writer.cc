// PcapWriter implementation: the file header and the 16-byte record headers are built as
// native-endian 32/16-bit fields (the pcap magic number tells readers the byte order) and
// written with fwrite on a fully buffered stdio stream over an O_CLOEXEC descriptor.
#include "stack/netif/pcap_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace xtcp {
namespace {

constexpr std::uint32_t kMagicMicroseconds = 0xa1b2c3d4;
constexpr std::uint16_t kVersionMajor = 2;
constexpr std::uint16_t kVersionMinor = 4;
constexpr std::uint64_t kUsPerSec = 1'000'000;

void put32(unsigned char* p, std::uint32_t v) { std::memcpy(p, &v, 4); }
void put16(unsigned char* p, std::uint16_t v) { std::memcpy(p, &v, 2); }

std::string open_error(const std::string& path, int err) {
  return "cannot open pcap file '" + path + "': " + std::strerror(err);
}

}  // namespace

std::unique_ptr<PcapWriter> PcapWriter::open(const std::string& path, std::uint32_t linktype,
                                             std::uint32_t snaplen, const PcapWriterOptions& options,
                                             std::string* error, int* error_code) {
  auto failed = [&](int err) -> std::unique_ptr<PcapWriter> {
    if (error != nullptr) {
      *error = open_error(path, err);
    }
    if (error_code != nullptr) {
      *error_code = err;
    }
    return nullptr;
  };
  const int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (options.nonblocking ? O_NONBLOCK : 0);
  const int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) {
    return failed(errno);
  }
  std::FILE* file = ::fdopen(fd, "wb");
  if (file == nullptr) {
    const int err = errno;
    ::close(fd);
    return failed(err);
  }
  std::unique_ptr<char[]> buffer;
  if (options.buffer_bytes != 0) {
    buffer.reset(new char[options.buffer_bytes]);
    std::setvbuf(file, buffer.get(), _IOFBF, options.buffer_bytes);
  }
  // magic, version 2.4, thiszone 0 (timestamps are UTC), sigfigs 0, snaplen, linktype.
  unsigned char header[kFileHeaderBytes] = {};
  put32(header + 0, kMagicMicroseconds);
  put16(header + 4, kVersionMajor);
  put16(header + 6, kVersionMinor);
  put32(header + 16, snaplen);
  put32(header + 20, linktype);
  if (std::fwrite(header, sizeof header, 1, file) != 1) {
    const int err = errno;
    std::fclose(file);
    return failed(err);
  }
  return std::unique_ptr<PcapWriter>(new PcapWriter(file, std::move(buffer)));
}

PcapWriter::~PcapWriter() {
  if (file_ != nullptr) {
    std::fclose(file_);
  }
}

bool PcapWriter::fail() {
  if (error_ == 0) {
    error_ = errno != 0 ? errno : EIO;
  }
  return false;
}

bool PcapWriter::write(std::uint64_t timestamp_us, std::span<const std::byte> captured,
                       std::size_t original_length) {
  if (file_ == nullptr || std::ferror(file_) != 0) {
    return false;
  }
  unsigned char record[kRecordHeaderBytes];
  put32(record + 0, static_cast<std::uint32_t>(timestamp_us / kUsPerSec));
  put32(record + 4, static_cast<std::uint32_t>(timestamp_us % kUsPerSec));
  put32(record + 8, static_cast<std::uint32_t>(captured.size()));
  put32(record + 12, static_cast<std::uint32_t>(std::max(original_length, captured.size())));
  errno = 0;
  if (std::fwrite(record, sizeof record, 1, file_) != 1) {
    return fail();
  }
  if (!captured.empty() && std::fwrite(captured.data(), captured.size(), 1, file_) != 1) {
    return fail();
  }
  return true;
}

int PcapWriter::close() {
  if (file_ == nullptr) {
    return error_;
  }
  errno = 0;
  const bool failed_before = std::ferror(file_) != 0;
  const int rc = std::fclose(file_);
  file_ = nullptr;
  if ((rc != 0 || failed_before) && error_ == 0) {
    error_ = errno != 0 ? errno : EIO;
  }
  return error_;
}

}  // namespace xtcp
