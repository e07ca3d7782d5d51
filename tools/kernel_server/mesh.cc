// Mesh: see mesh.h.
#include "tools/kernel_server/mesh.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace xtcp::kserver {
namespace {

constexpr std::size_t kHeader = 4 + 1 + 1 + 1 + 8;

}  // namespace

void encode_record(const MeshRecord& r, std::string* packet) {
  const std::uint32_t len = static_cast<std::uint32_t>(kHeader + r.name.size() + r.line.size());
  char h[kHeader];
  std::memcpy(h, &len, 4);
  h[4] = static_cast<char>(r.type);
  h[5] = static_cast<char>(r.online ? 1 : 0);
  h[6] = static_cast<char>(static_cast<std::uint8_t>(r.name.size()));
  std::memcpy(h + 7, &r.seq, 8);
  packet->append(h, kHeader);
  packet->append(r.name);
  packet->append(r.line);
}

bool decode_records(const char* data, std::size_t n, const std::function<void(MeshRecord&&)>& each) {
  std::size_t at = 0;
  while (at < n) {
    if (n - at < kHeader) {
      return false;
    }
    std::uint32_t len = 0;
    std::memcpy(&len, data + at, 4);
    const auto name_len = static_cast<std::uint8_t>(data[at + 6]);
    if (len < kHeader + name_len || len > n - at) {
      return false;
    }
    MeshRecord r;
    r.type = static_cast<MeshRecord::Type>(static_cast<std::uint8_t>(data[at + 4]));
    if (r.type != MeshRecord::kFrom && r.type != MeshRecord::kPresence) {
      return false;
    }
    r.online = data[at + 5] != 0;
    std::memcpy(&r.seq, data + at + 7, 8);
    r.name.assign(data + at + kHeader, name_len);
    r.line.assign(data + at + kHeader + name_len, len - kHeader - name_len);
    at += len;
    each(std::move(r));
  }
  return true;
}

Mesh::Mesh(int self, std::vector<int> fds, WorkerStats* stats) : self_(self), stats_(stats), rbuf_(kMeshPacket + 4096) {
  peers_.resize(fds.size());
  for (std::size_t i = 0; i < fds.size(); ++i) {
    peers_[i].fd = fds[i];
  }
}

Mesh::~Mesh() {
  for (Peer& p : peers_) {
    if (p.fd >= 0) {
      ::close(p.fd);
    }
  }
}

void Mesh::send(int worker, const MeshRecord& r) {
  Peer& p = peers_[static_cast<std::size_t>(worker)];
  if (p.gone) {
    return;
  }
  if (p.packets.empty() || p.packets.back().size() + r.name.size() + r.line.size() + kHeader > kMeshPacket) {
    p.packets.emplace_back();
  }
  const std::size_t before = p.packets.back().size();
  encode_record(r, &p.packets.back());
  p.queued += p.packets.back().size() - before;
}

void Mesh::broadcast(const MeshRecord& r) {
  for (int w = 0; w < workers(); ++w) {
    if (w != self_) {
      send(w, r);
    }
  }
}

void Mesh::flush_peer(Peer& p) {
  while (!p.blocked && !p.gone && !p.packets.empty()) {
    const std::string& pk = p.packets.front();
    const ssize_t n = ::send(p.fd, pk.data(), pk.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) {
      p.queued -= pk.size();
      p.packets.pop_front();
      bump(stats_, kMeshPacketsOut);
      continue;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
      p.blocked = true;
      bump(stats_, kMeshStalls);
      break;
    }
    p.gone = true;  // EPIPE, ECONNRESET: the peer exited (the parent handles that)
    p.packets.clear();
    p.queued = 0;
  }
}

void Mesh::flush() {
  for (Peer& p : peers_) {
    if (p.fd >= 0) {
      flush_peer(p);
    }
  }
  update_gauge();
}

void Mesh::on_writable(int worker) {
  Peer& p = peers_[static_cast<std::size_t>(worker)];
  p.blocked = false;
  flush_peer(p);
  update_gauge();
}

bool Mesh::receive(int worker, const std::function<void(MeshRecord&&)>& on_record) {
  Peer& p = peers_[static_cast<std::size_t>(worker)];
  if (p.gone) {
    return false;
  }
  for (;;) {
    const ssize_t n = ::recv(p.fd, rbuf_.data(), rbuf_.size(), MSG_DONTWAIT);
    if (n > 0) {
      bump(stats_, kMeshPacketsIn);
      if (!decode_records(rbuf_.data(), static_cast<std::size_t>(n), on_record)) {
        p.gone = true;
        return false;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return true;
    }
    p.gone = true;  // 0: the peer closed its end; other errors: the link is broken
    return false;
  }
}

std::size_t Mesh::max_queued() const {
  std::size_t m = 0;
  for (const Peer& p : peers_) {
    m = std::max(m, p.queued);
  }
  return m;
}

void Mesh::update_gauge() {
  std::size_t total = 0;
  for (const Peer& p : peers_) {
    total += p.queued;
  }
  set_gauge(stats_, kMeshQueuedBytes, total);
}

}  // namespace xtcp::kserver
