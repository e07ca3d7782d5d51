// The XTCP runtime (see runtime.h), packet captures: xtcp_capture_start's spec checked and
// turned into a CaptureFilter (a group becomes its port, a connection its 4-tuple), then
// handed to the CaptureTap that sits between the stack and the link.
#include <arpa/inet.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "api/src/errors.h"
#include "api/src/runtime_internal.h"

// The capture structs are ABI: their sizes stay (reserved words take new fields).
static_assert(sizeof(void*) != 8 || sizeof(struct xtcp_capture_spec) == 80,
              "struct xtcp_capture_spec must keep its size (80 bytes on LP64)");
static_assert(sizeof(struct xtcp_capture_stats) == 72, "struct xtcp_capture_stats must keep its size (72 bytes)");

namespace xtcp::api {

namespace {

constexpr std::uint32_t kMaxSnapLen = 65535;
constexpr std::uint64_t kMinRotateBytes = 4096;
constexpr std::uint32_t kDefaultRotateFiles = 8;
constexpr std::uint32_t kMaxRotateFiles = 10000;

bool reserved_clear(const struct xtcp_capture_spec& s) {
  if (s.reserved_u32 != 0) {
    return false;
  }
  for (const std::uint64_t r : s.reserved) {
    if (r != 0) {
      return false;
    }
  }
  return true;
}

std::string dotted(std::uint32_t addr) {
  in_addr a{};
  a.s_addr = htonl(addr);
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

// Sets *field to value, unless the spec gave another value for it: false then.
template <class T>
bool agree(T* field, T value) {
  if (*field != 0 && *field != value) {
    return false;
  }
  *field = value;
  return true;
}

}  // namespace

int Runtime::capture_start(const struct xtcp_capture_spec* spec) {
  if (spec == nullptr) {
    explain("spec is NULL");
    return -EINVAL;
  }
  const struct xtcp_capture_spec& s = *spec;
  if (s.path == nullptr || s.path[0] == '\0') {
    explain("no path: the pcap file to write is required");
    return -EINVAL;
  }
  if (!reserved_clear(s)) {
    explain("reserved fields must be 0");
    return -EINVAL;
  }
  if (s.snaplen > kMaxSnapLen) {
    explain("snaplen %u: at most %u bytes (0: %u)", s.snaplen, kMaxSnapLen, kMaxSnapLen);
    return -EINVAL;
  }
  if (s.rotate_bytes != 0 && s.rotate_bytes < kMinRotateBytes) {
    explain("rotate_bytes %llu: at least %llu (0: no rotation)", static_cast<unsigned long long>(s.rotate_bytes),
            static_cast<unsigned long long>(kMinRotateBytes));
    return -EINVAL;
  }
  if (s.rotate_bytes == 0 && s.rotate_files != 0) {
    explain("rotate_files %u without rotate_bytes: files are kept only when rotating", s.rotate_files);
    return -EINVAL;
  }
  if (s.rotate_files > kMaxRotateFiles) {
    explain("rotate_files %u: at most %u", s.rotate_files, kMaxRotateFiles);
    return -EINVAL;
  }
  if (s.gd < 0 || s.cd < 0 || (s.cd != 0 && s.gd == 0)) {
    explain("gd %d, cd %d: a connection is named by its group and descriptor (0: none)", s.gd, s.cd);
    return -EINVAL;
  }
  CaptureSpec cs;
  CaptureFilter& f = cs.filter;
  if (s.remote_addr != nullptr && s.remote_addr[0] != '\0') {
    in_addr a{};
    if (::inet_pton(AF_INET, s.remote_addr, &a) != 1) {
      explain("remote_addr \"%s\" is not an IPv4 address (dotted quad)", s.remote_addr);
      return -EINVAL;
    }
    f.remote_addr = ntohl(a.s_addr);
  }
  f.remote_port = s.remote_port;
  f.local_port = s.local_port;
  if (s.gd != 0) {
    const Group* g = group(s.gd);
    if (g == nullptr) {
      explain("no group %d", s.gd);
      return -EBADF;
    }
    if (s.cd != 0) {
      std::uint32_t slot = 0;
      const Conn* c = conn(0, s.gd, s.cd, &slot);
      if (c == nullptr) {
        explain("no connection %d in group %d", s.cd, s.gd);
        return -EBADF;
      }
      std::uint32_t addr = 0;
      std::uint16_t port = 0;
      remote_of(*c, &addr, &port);
      std::uint16_t local_port = g->port;
      ConnInfo info{};
      if (c->conn != kNoConn && stack_->tcp().info(c->conn, &info) == 0) {
        local_port = info.key.local_port;
      }
      if (local_port == 0 || addr == 0) {
        explain("connection %d of group %d has ended and its local port is no longer known", s.cd, s.gd);
        return -ENOTCONN;
      }
      if (!agree(&f.remote_addr, addr) || !agree(&f.remote_port, port) || !agree(&f.local_port, local_port)) {
        explain("connection %d of group %d is %s:%u -> port %u; the spec's remote_addr/remote_port/local_port "
                "disagree",
                s.cd, s.gd, dotted(addr).c_str(), port, local_port);
        return -EINVAL;
      }
    } else {
      if (g->port == 0) {
        explain("group %d has no port (it makes connections with xtcp_connect): capture them by cd", s.gd);
        return -EINVAL;
      }
      if (!agree(&f.local_port, g->port)) {
        explain("group %d listens on port %u, the spec's local_port is %u", s.gd, g->port, s.local_port);
        return -EINVAL;
      }
    }
  }
  cs.file.path = s.path;
  cs.file.snaplen = s.snaplen != 0 ? s.snaplen : kMaxSnapLen;
  cs.file.rotate_bytes = s.rotate_bytes;
  cs.file.rotate_files = s.rotate_bytes == 0 ? 1 : (s.rotate_files != 0 ? s.rotate_files : kDefaultRotateFiles);
  std::string why;
  const int id = capture_->start(cs, &why);
  if (id < 0) {
    explain(why);
  }
  return id;
}

int Runtime::capture_stop(int id) {
  CaptureStatus final;
  const CaptureSpec* spec = capture_->spec(id);
  const std::string path = spec != nullptr ? spec->file.path : std::string();
  const int rc = capture_->stop(id, &final);
  if (rc == -EBADF) {
    explain("no capture %d", id);
  } else if (rc < 0) {
    explain("capture %d (%s) failed: %s", id, path.c_str(), std::strerror(-rc));
  }
  return rc;
}

int Runtime::capture_query(int id, struct xtcp_capture_stats* out) const {
  CaptureStatus st;
  if (capture_->status(id, &st) < 0) {
    explain("no capture %d", id);
    return -EBADF;
  }
  if (out == nullptr) {
    explain("out is NULL");
    return -EINVAL;
  }
  *out = {};
  out->running = st.running ? 1 : 0;
  out->error = st.error;
  out->packets = st.packets;
  out->bytes = st.bytes;
  out->truncated = st.truncated;
  out->file_index = st.file_index;
  return 0;
}

}  // namespace xtcp::api
