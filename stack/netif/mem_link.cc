// In-memory link pair (see mem_link.h). send() copies the packet, decides its fate from the
// direction's seeded generator and queues it by due time; receive_batch() on the other end
// hands over the packets whose due time has come, in due-time order.
#include "stack/netif/mem_link.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <utility>

namespace xtcp {
namespace {

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E37'79B9'7F4A'7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58'476D'1CE4'E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D0'49BB'1331'11EBull;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) from the top 53 bits.
double unit(std::uint64_t r) { return static_cast<double>(r >> 11) * 0x1.0p-53; }

// Uniform in [0, span] (span >= 0).
TimeNs uniform_upto(std::uint64_t r, TimeNs span) {
  if (span <= 0) {
    return 0;
  }
  return static_cast<TimeNs>(r % (static_cast<std::uint64_t>(span) + 1));
}

// Min-heap on (due, order) through std::push_heap/pop_heap, which build max-heaps.
template <typename P>
bool later(const P& x, const P& y) {
  return x.due != y.due ? x.due > y.due : x.order > y.order;
}

}  // namespace

int MemLink::send(std::span<const std::byte> packet) { return pair_->send(tx_, packet); }

int MemLink::receive_batch(int max_packets, PacketHandler on_packet) {
  return pair_->receive(rx_, max_packets, on_packet);
}

std::size_t MemLink::mtu() const { return pair_->mtu(); }

MemLinkPair::MemLinkPair(Clock& clock, MemLinkFaults a_to_b, MemLinkFaults b_to_a,
                         std::size_t mtu)
    : clock_(clock),
      mtu_(mtu),
      a_(*this, MemLinkDirection::a_to_b, MemLinkDirection::b_to_a),
      b_(*this, MemLinkDirection::b_to_a, MemLinkDirection::a_to_b) {
  set_faults(MemLinkDirection::a_to_b, a_to_b);
  set_faults(MemLinkDirection::b_to_a, b_to_a);
}

void MemLinkPair::seed(Direction& d, std::uint64_t seed) {
  std::uint64_t state = seed;
  for (auto& word : d.rng) {
    word = splitmix64(state);
  }
}

// xoshiro256** (Blackman and Vigna): small, fast, and the same sequence on every platform.
std::uint64_t MemLinkPair::next_random(Direction& d) {
  std::uint64_t* s = d.rng;
  const std::uint64_t result = std::rotl(s[1] * 5, 7) * 9;
  const std::uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = std::rotl(s[3], 45);
  return result;
}

void MemLinkPair::set_faults(MemLinkDirection dir, const MemLinkFaults& faults) {
  Direction& d = dir_[index(dir)];
  d.faults = faults;
  seed(d, faults.seed);
}

void MemLinkPair::set_drop_filter(MemLinkDirection dir, DropFilter filter) {
  dir_[index(dir)].filter = std::move(filter);
}

int MemLinkPair::send(MemLinkDirection dir, std::span<const std::byte> packet) {
  if (packet.size() > mtu_) {
    return -EMSGSIZE;
  }
  Direction& d = dir_[index(dir)];
  const MemLinkFaults& f = d.faults;
  const TimeNs now = clock_.now();
  ++d.counters.sent;
  // A held packet whose fallback time has passed goes ahead of this one whether or not the
  // receiver polled in between, so fates do not depend on polling.
  release_held(d, now);

  // Always the same seven draws, in the same order, whatever the settings and the outcome.
  const std::uint64_t r_loss = next_random(d);
  const std::uint64_t r_dup = next_random(d);
  const std::uint64_t r_reorder = next_random(d);
  const std::uint64_t r_corrupt = next_random(d);
  const std::uint64_t r_bit = next_random(d);
  const std::uint64_t r_jitter = next_random(d);
  const std::uint64_t r_jitter_dup = next_random(d);

  if (d.filter && d.filter(packet)) {
    ++d.counters.filtered;
    return 0;
  }
  if (unit(r_loss) < f.loss) {
    ++d.counters.lost;
    return 0;
  }
  if (f.max_queue_packets != 0 && queued(d) >= f.max_queue_packets) {
    ++d.counters.dropped_queue_full;
    return -EAGAIN;
  }

  std::vector<std::byte> bytes(packet.begin(), packet.end());
  if (!bytes.empty() && unit(r_corrupt) < f.corrupt) {
    const std::uint64_t bit = r_bit % (bytes.size() * 8);
    bytes[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
    ++d.counters.corrupted;
  }
  const bool duplicate = unit(r_dup) < f.duplicate;
  std::vector<std::byte> copy;
  if (duplicate) {
    copy = bytes;
  }

  const TimeNs due = now + f.delay + uniform_upto(r_jitter, f.jitter);
  if (unit(r_reorder) < f.reorder) {
    ++d.counters.reordered;
    d.held.push_back(Held{Packet{due, 0, std::move(bytes)},
                          std::max<std::uint32_t>(f.reorder_gap, 1), due + f.reorder_max_hold});
  } else {
    enqueue(d, due, std::move(bytes));
  }

  if (duplicate) {
    if (f.max_queue_packets != 0 && queued(d) >= f.max_queue_packets) {
      ++d.counters.dropped_queue_full;
    } else {
      ++d.counters.duplicated;
      enqueue(d, now + f.delay + uniform_upto(r_jitter_dup, f.jitter), std::move(copy));
    }
  }
  return 0;
}

// Queues a packet, then lets it count against every held packet; a held packet whose count
// reaches zero is queued right behind it (never earlier than its own due time).
void MemLinkPair::enqueue(Direction& d, TimeNs due, std::vector<std::byte> bytes) {
  d.queue.push_back(Packet{due, d.next_order++, std::move(bytes)});
  std::push_heap(d.queue.begin(), d.queue.end(), later<Packet>);
  for (std::size_t i = 0; i < d.held.size();) {
    Held& h = d.held[i];
    if (--h.waiting_for == 0) {
      Packet p = std::move(h.packet);
      p.due = std::max(p.due, due);
      p.order = d.next_order++;
      d.queue.push_back(std::move(p));
      std::push_heap(d.queue.begin(), d.queue.end(), later<Packet>);
      d.held.erase(d.held.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
}

// Held packets whose fallback time has come join the queue at that time.
void MemLinkPair::release_held(Direction& d, TimeNs now) {
  for (std::size_t i = 0; i < d.held.size();) {
    Held& h = d.held[i];
    if (h.release_at <= now) {
      Packet p = std::move(h.packet);
      p.due = h.release_at;
      p.order = d.next_order++;
      d.queue.push_back(std::move(p));
      std::push_heap(d.queue.begin(), d.queue.end(), later<Packet>);
      d.held.erase(d.held.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
}

int MemLinkPair::receive(MemLinkDirection dir, int max_packets, PacketHandler on_packet) {
  Direction& d = dir_[index(dir)];
  const TimeNs now = clock_.now();
  release_held(d, now);
  int handed = 0;
  while (handed < max_packets && !d.queue.empty() && d.queue.front().due <= now) {
    // Out of the queue before the handler runs: it may send on this very link.
    std::pop_heap(d.queue.begin(), d.queue.end(), later<Packet>);
    Packet p = std::move(d.queue.back());
    d.queue.pop_back();
    ++d.counters.delivered;
    ++handed;
    on_packet(std::span<const std::byte>(p.bytes));
  }
  return handed;
}

TimeNs MemLinkPair::next_delivery_time(MemLinkDirection dir) const {
  const Direction& d = dir_[index(dir)];
  TimeNs t = d.queue.empty() ? kNever : d.queue.front().due;
  for (const Held& h : d.held) {
    t = std::min(t, h.release_at);
  }
  return t;
}

TimeNs MemLinkPair::next_delivery_time() const {
  return std::min(next_delivery_time(MemLinkDirection::a_to_b),
                  next_delivery_time(MemLinkDirection::b_to_a));
}

std::size_t MemLinkPair::in_flight(MemLinkDirection dir) const { return queued(dir_[index(dir)]); }

}  // namespace xtcp
