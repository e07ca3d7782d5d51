// The links between xtcp-kernel-server's IM workers (only with --processes > 1): one
// AF_UNIX SOCK_SEQPACKET socketpair per pair of workers, made by the parent before fork.
// Each worker batches the records (sequencer.h: FROM lines for another worker's user,
// presence events) it has for a peer into packets of up to kMeshPacket bytes, and sends
// them when its round ends; a packet the peer's queue cannot take now waits (in order) in
// user space and leaves when the socket turns writable (EPOLLOUT). Reading the mesh never
// pauses, so two workers that both have much to send each other cannot block each other.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "tools/kernel_server/counters.h"
#include "tools/kernel_server/sequencer.h"

namespace xtcp::kserver {

inline constexpr std::size_t kMeshPacket = 60 * 1024;

// Record encoding: u32 length (whole record), u8 type, u8 online, u8 name length, u64 seq,
// name, line. Appends to *packet.
void encode_record(const MeshRecord& r, std::string* packet);
// Decodes the records of one packet in order; false (and stops) on a malformed one.
bool decode_records(const char* data, std::size_t n, const std::function<void(MeshRecord&&)>& each);

class Mesh {
 public:
  // fds[i]: this worker's end toward worker i (-1 for itself), non-blocking.
  Mesh(int self, std::vector<int> fds, WorkerStats* stats);
  ~Mesh();
  Mesh(const Mesh&) = delete;
  Mesh& operator=(const Mesh&) = delete;

  int self() const { return self_; }
  int workers() const { return static_cast<int>(peers_.size()); }
  int fd(int worker) const { return peers_[static_cast<std::size_t>(worker)].fd; }

  void send(int worker, const MeshRecord& r);
  void broadcast(const MeshRecord& r);  // to every other worker
  // Sends what waits for every peer (until a socket refuses); call at the end of a round.
  void flush();
  // EPOLLOUT on worker's socket.
  void on_writable(int worker);
  // Reads every packet worker sent; each record goes to on_record. False when the peer
  // closed its end or the link failed (the peer is gone).
  bool receive(int worker, const std::function<void(MeshRecord&&)>& on_record);
  // The most bytes waiting for one peer.
  std::size_t max_queued() const;

 private:
  struct Peer {
    int fd = -1;
    bool blocked = false;               // the last send was refused: wait for EPOLLOUT
    bool gone = false;
    std::deque<std::string> packets;    // the last one is still being filled
    std::size_t queued = 0;
  };
  void flush_peer(Peer& p);
  void update_gauge();

  int self_;
  std::vector<Peer> peers_;
  WorkerStats* stats_;
  std::vector<char> rbuf_;
};

}  // namespace xtcp::kserver
