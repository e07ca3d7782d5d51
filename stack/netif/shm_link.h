// ShmLink: a Link between two processes over a shared-memory region (memif-like), so that a
// load generator can reach a server without a TUN device (and the kernel's per-packet cost)
// in between. One side creates the region, the other attaches to it by name.
//
// The region is the file /dev/shm/xtcp-NAME (shm_open, mmap MAP_SHARED): a header, then two
// single-producer single-consumer rings of fixed-size slots, ring 0 from the creator to the
// attacher and ring 1 back. A slot holds a 16-bit length and one IPv4 packet. Each ring's
// head (written by its producer) and tail (written by its consumer) are atomics on cache
// lines of their own.
//
// Wake-ups cross the process boundary through one named FIFO per ring, next to the region:
// /dev/shm/xtcp-NAME.0 wakes ring 0's consumer (the attacher), .1 ring 1's (the creator).
// Nothing is passed between the processes but the name. A producer writes one byte into the
// ring's FIFO when its packet made the ring non-empty; a consumer re-checks the ring after
// every batch and keeps its own FIFO readable while packets are left (see shm_link.cc for
// why no wake-up can be lost).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "stack/netif/link.h"

namespace xtcp {

struct ShmOptions {
  // Bytes per slot, the length field included; a multiple of 64 from 128 to 65,536.
  std::uint32_t slot_size = 2048;
  // Slots per ring (per direction); a power of two from 2 to 1,048,576.
  std::uint32_t slot_count = 4096;
  // The link's MTU, the same on both ends (the attacher reads it from the header); at most
  // what a slot holds (slot_size - ShmLink::kSlotHeader).
  std::uint32_t mtu = 1500;
};

struct ShmCounters {
  std::uint64_t packets_in = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t packets_out = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t send_drops = 0;    // the peer's ring was full: -EAGAIN, packet dropped
  std::uint64_t send_errors = 0;   // a packet larger than a slot: -EMSGSIZE
  std::uint64_t wakeups_sent = 0;  // bytes written into the peer's FIFO
};

class ShmLink final : public Link {
 public:
  // Bytes in front of the packet in every slot (the 16-bit length, padded).
  static constexpr std::size_t kSlotHeader = 4;
  // Longest NAME: the region's path must stay short and predictable.
  static constexpr std::size_t kMaxName = 32;

  // Creates /dev/shm/xtcp-NAME and its two FIFOs. Fails if the region exists (another
  // server, or one that died: remove the files), if the name is empty, longer than
  // kMaxName or contains '/', or if the options are out of range. On failure returns
  // nullptr, and stores a message in *error and a negative errno in *error_code (either
  // may be null). The creator removes the region and the FIFOs when it is destroyed.
  static std::unique_ptr<ShmLink> create(const std::string& name, const ShmOptions& options, std::string* error,
                                         int* error_code = nullptr);

  // Attaches to the region another process created. Fails if it does not exist, is not an
  // xtcp link of this version (magic, version, sizes), or has a live attacher already (one
  // whose process is gone is replaced).
  static std::unique_ptr<ShmLink> attach(const std::string& name, std::string* error, int* error_code = nullptr);

  ~ShmLink() override;
  ShmLink(const ShmLink&) = delete;
  ShmLink& operator=(const ShmLink&) = delete;

  // Copies the packet into the next free slot of the outgoing ring. 0; -EAGAIN when the
  // ring is full (counted in send_drops, the packet is dropped: TCP retransmits);
  // -EMSGSIZE when the packet does not fit in a slot.
  int send(std::span<const std::byte> packet) override;

  // Hands up to max_packets packets of the incoming ring to on_packet (the span points into
  // the slot, valid only during the call), then frees their slots. Returns the count.
  int receive_batch(int max_packets, PacketHandler on_packet) override;

  // This side's FIFO: readable when packets wait in the incoming ring.
  int poll_fd() const override { return wake_rx_fd_; }
  std::size_t mtu() const override { return mtu_; }

  bool is_creator() const { return creator_; }
  const std::string& name() const { return name_; }
  // "/dev/shm/xtcp-NAME": the region's file.
  const std::string& path() const { return path_; }
  const ShmCounters& counters() const { return counters_; }

  // The path of the region for a name ("/dev/shm/xtcp-NAME"), and of its FIFO for ring
  // 0 or 1 (the region's path + ".0" / ".1").
  static std::string region_path(const std::string& name);
  static std::string fifo_path(const std::string& name, int ring);

  struct Region;  // the mapped layout, defined in shm_link.cc
  struct Ring;

 private:
  ShmLink() = default;
  // Opens both FIFOs (this side's read end, the peer's write end). 0 or a negative errno.
  int open_fifos(std::string* error);
  void wake_peer();

  bool creator_ = false;
  std::string name_;
  std::string path_;
  void* map_ = nullptr;
  std::size_t map_size_ = 0;
  Region* region_ = nullptr;
  Ring* tx_ = nullptr;  // the ring this side produces into
  Ring* rx_ = nullptr;  // the ring this side consumes
  std::byte* tx_slots_ = nullptr;
  std::byte* rx_slots_ = nullptr;
  std::uint32_t slot_size_ = 0;
  std::uint32_t mask_ = 0;  // slot_count - 1
  std::size_t mtu_ = 0;
  int wake_rx_fd_ = -1;  // this side's FIFO (read end; also written to keep it readable)
  int wake_tx_fd_ = -1;  // the peer's FIFO (write end)
  // The producer's own head and its last look at the consumer's tail (spares a load of the
  // consumer's cache line while the ring is known not to be full).
  std::uint32_t tx_head_ = 0;
  std::uint32_t tx_tail_seen_ = 0;
  ShmCounters counters_;
};

}  // namespace xtcp
