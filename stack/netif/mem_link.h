// In-memory link pair for deterministic tests and in-process load: a packet sent on a() is
// received on b() and vice versa, after per-direction seeded faults (loss, duplication,
// reordering, delay + jitter in virtual time, bit corruption, queue limit) have been applied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "stack/core/clock.h"
#include "stack/netif/link.h"

namespace xtcp {

// Faults for one direction. Probabilities are in [0, 1]. Every send() draws the same fixed
// number of values from the direction's generator whatever the settings, so a packet's fate
// depends only on the seed and its position in the stream of sends.
struct MemLinkFaults {
  std::uint64_t seed = 1;
  double loss = 0.0;       // packet silently dropped
  double duplicate = 0.0;  // a second copy is queued (with its own jitter)
  double corrupt = 0.0;    // one random bit of one random byte is flipped
  // A reordered packet is held back until `reorder_gap` later packets of the same direction
  // have been queued, then queued behind the last of them; if they never come it is released
  // `reorder_max_hold` after its own due time.
  double reorder = 0.0;
  std::uint32_t reorder_gap = 1;
  TimeNs reorder_max_hold = ms(10);
  // A packet becomes receivable once clock.now() >= send time + delay + uniform[0, jitter].
  // Packets are received in due-time order (send order among equals), so jitter reorders too.
  TimeNs delay = 0;
  TimeNs jitter = 0;
  // Packets queued or held at once; a send beyond it is tail-dropped with -EAGAIN. 0: no limit.
  std::size_t max_queue_packets = 4096;
};

struct MemLinkCounters {
  std::uint64_t sent = 0;                // send() calls that passed the MTU check
  std::uint64_t delivered = 0;           // packets handed to the receiver (copies included)
  std::uint64_t lost = 0;                // random loss
  std::uint64_t filtered = 0;            // dropped by the drop filter
  std::uint64_t duplicated = 0;          // extra copies queued
  std::uint64_t reordered = 0;           // packets held back
  std::uint64_t corrupted = 0;           // packets with a flipped bit
  std::uint64_t dropped_queue_full = 0;  // tail drops (an extra copy counts too)
};

enum class MemLinkDirection : std::uint8_t { a_to_b = 0, b_to_a = 1 };

class MemLinkPair;

// One end of the pair. Obtained from MemLinkPair::a()/b(); lives as long as the pair.
class MemLink final : public Link {
 public:
  int send(std::span<const std::byte> packet) override;
  int receive_batch(int max_packets, PacketHandler on_packet) override;
  std::size_t mtu() const override;

 private:
  friend class MemLinkPair;
  MemLink(MemLinkPair& pair, MemLinkDirection tx, MemLinkDirection rx)
      : pair_(&pair), tx_(tx), rx_(rx) {}

  MemLinkPair* pair_;
  MemLinkDirection tx_;
  MemLinkDirection rx_;
};

class MemLinkPair {
 public:
  // Returns true to drop the packet (counted as `filtered`): lets a test lose exactly the
  // segment it chooses. Called after the packet's random draws, so the seeded stream of fates
  // is the same with or without a filter.
  using DropFilter = std::function<bool(std::span<const std::byte> packet)>;

  explicit MemLinkPair(Clock& clock, MemLinkFaults a_to_b = {}, MemLinkFaults b_to_a = {},
                       std::size_t mtu = 1500);

  // The endpoints hold a pointer back to the pair.
  MemLinkPair(const MemLinkPair&) = delete;
  MemLinkPair& operator=(const MemLinkPair&) = delete;

  MemLink& a() { return a_; }
  MemLink& b() { return b_; }

  // Replaces a direction's faults for packets sent from now on, and reseeds its generator
  // from faults.seed. Packets already in flight keep their fate.
  void set_faults(MemLinkDirection dir, const MemLinkFaults& faults);
  const MemLinkFaults& faults(MemLinkDirection dir) const { return dir_[index(dir)].faults; }

  // An empty filter removes it.
  void set_drop_filter(MemLinkDirection dir, DropFilter filter);

  const MemLinkCounters& counters(MemLinkDirection dir) const {
    return dir_[index(dir)].counters;
  }

  // Earliest time at which some packet (either direction, or just `dir`) becomes receivable,
  // or kNever: a test driver sets its clock to this to reach the next delivery.
  TimeNs next_delivery_time() const;
  TimeNs next_delivery_time(MemLinkDirection dir) const;

  // Packets queued or held in a direction.
  std::size_t in_flight(MemLinkDirection dir) const;

  std::size_t mtu() const { return mtu_; }
  void set_mtu(std::size_t mtu) { mtu_ = mtu; }

 private:
  friend class MemLink;

  struct Packet {
    TimeNs due;
    std::uint64_t order;  // send order, breaks ties between equal due times
    std::vector<std::byte> bytes;
  };
  struct Held {
    Packet packet;
    std::uint32_t waiting_for;  // later packets still to pass it
    TimeNs release_at;          // fallback release time
  };
  struct Direction {
    MemLinkFaults faults;
    std::uint64_t rng[4];  // xoshiro256** state
    MemLinkCounters counters;
    DropFilter filter;
    std::vector<Packet> queue;  // min-heap on (due, order)
    std::vector<Held> held;
    std::uint64_t next_order = 0;
  };

  static std::size_t index(MemLinkDirection dir) { return static_cast<std::size_t>(dir); }
  static void seed(Direction& d, std::uint64_t seed);
  static std::uint64_t next_random(Direction& d);

  int send(MemLinkDirection dir, std::span<const std::byte> packet);
  int receive(MemLinkDirection dir, int max_packets, PacketHandler on_packet);
  void enqueue(Direction& d, TimeNs due, std::vector<std::byte> bytes);
  void release_held(Direction& d, TimeNs now);
  std::size_t queued(const Direction& d) const { return d.queue.size() + d.held.size(); }

  Clock& clock_;
  std::size_t mtu_;
  Direction dir_[2];
  MemLink a_;
  MemLink b_;
};

}  // namespace xtcp
