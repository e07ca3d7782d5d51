// PcapWriter implementation: the file header and the 16-byte record headers are built as
// native-endian 32/16-bit fields (the pcap magic number tells readers the byte order) and
// written with fwrite on a fully buffered stdio stream over an O_CLOEXEC descriptor.
#include "stack/netif/pcap_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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
                                             std::uint32_t snaplen, std::string* error) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (error != nullptr) {
      *error = open_error(path, errno);
    }
    return nullptr;
  }
  std::FILE* file = ::fdopen(fd, "wb");
  if (file == nullptr) {
    const int err = errno;
    ::close(fd);
    if (error != nullptr) {
      *error = open_error(path, err);
    }
    return nullptr;
  }
  // magic, version 2.4, thiszone 0 (timestamps are UTC), sigfigs 0, snaplen, linktype.
  unsigned char header[24] = {};
  put32(header + 0, kMagicMicroseconds);
  put16(header + 4, kVersionMajor);
  put16(header + 6, kVersionMinor);
  put32(header + 16, snaplen);
  put32(header + 20, linktype);
  if (std::fwrite(header, sizeof header, 1, file) != 1) {
    const int err = errno;
    std::fclose(file);
    if (error != nullptr) {
      *error = open_error(path, err);
    }
    return nullptr;
  }
  return std::unique_ptr<PcapWriter>(new PcapWriter(file));
}

PcapWriter::~PcapWriter() { std::fclose(file_); }

bool PcapWriter::write(std::uint64_t timestamp_us, std::span<const std::byte> packet) {
  if (std::ferror(file_) != 0) {
    return false;
  }
  const auto len = static_cast<std::uint32_t>(packet.size());
  unsigned char record[16];
  put32(record + 0, static_cast<std::uint32_t>(timestamp_us / kUsPerSec));
  put32(record + 4, static_cast<std::uint32_t>(timestamp_us % kUsPerSec));
  put32(record + 8, len);   // captured length
  put32(record + 12, len);  // original length
  if (std::fwrite(record, sizeof record, 1, file_) != 1) {
    return false;
  }
  return packet.empty() || std::fwrite(packet.data(), packet.size(), 1, file_) == 1;
}

}  // namespace xtcp
