// Robin Hood flow table (see flow_table.h). Keys come in from the TCP layer's segment
// demultiplexing and connection setup/teardown; values (connection slot indices) go back out.
#include "stack/core/flow_table.h"

#include <sys/random.h>

#include <algorithm>
#include <bit>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <utility>

namespace xtcp {
namespace {

constexpr FlowTable::Slot kEmptySlot{FlowKey{0, 0, 0, 0}, FlowTable::kNoValue};

}  // namespace

std::uint64_t FlowTable::random_seed() {
  std::uint64_t seed = 0;
  std::size_t got = 0;
  auto* out = reinterpret_cast<unsigned char*>(&seed);
  while (got < sizeof seed) {
    const ssize_t n = getrandom(out + got, sizeof seed - got, 0);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      // No kernel randomness (very old kernel or seccomp): fall back to the clock, weaker but
      // still different per table and per run.
      seed ^= static_cast<std::uint64_t>(
          std::chrono::steady_clock::now().time_since_epoch().count());
      seed ^= reinterpret_cast<std::uintptr_t>(&seed);
      break;
    }
  }
  return seed;
}

FlowTable::FlowTable(std::size_t expected_entries, std::uint64_t seed) : hasher_(seed) {
  rehash(capacity_for(expected_entries));
}

std::size_t FlowTable::capacity_for(std::size_t entries) {
  // Smallest power of two whose 0.8 load limit admits `entries`.
  std::size_t cap = std::bit_ceil(std::max(entries, kMinCapacity));
  while (cap / 5 * 4 < entries) {
    cap *= 2;
  }
  return cap;
}

std::uint64_t FlowTable::hash(const FlowKey& key) const { return hasher_(key); }

std::size_t FlowTable::memory_bytes() const {
  return sizeof(*this) + slots_.capacity() * sizeof(Slot);
}

void FlowTable::rehash(std::size_t new_capacity) {
  std::vector<Slot> old(new_capacity, kEmptySlot);
  old.swap(slots_);
  mask_ = new_capacity - 1;
  shift_ = 64 - std::countr_zero(new_capacity);
  grow_at_ = new_capacity / 5 * 4;  // floor(0.8 * capacity) for powers of two
  size_ = 0;
  for (const Slot& s : old) {
    if (s.value != kNoValue) {
      insert_absent(s);
      ++size_;
    }
  }
}

void FlowTable::reserve(std::size_t n) {
  const std::size_t cap = capacity_for(n);
  if (cap > slots_.size()) {
    rehash(cap);
  }
}

void FlowTable::clear() {
  std::fill(slots_.begin(), slots_.end(), kEmptySlot);
  size_ = 0;
}

// Robin Hood: the incoming entry takes the slot of any resident that is closer to its own home
// than the incoming one is, and carries on with the displaced resident. Probe lengths stay
// even, and every run is ordered by home slot, which lets a lookup stop early.
void FlowTable::insert_absent(Slot slot) {
  std::size_t i = home(slot.key);
  std::size_t dist = 0;
  for (;;) {
    Slot& cur = slots_[i];
    if (cur.value == kNoValue) {
      cur = slot;
      return;
    }
    const std::size_t cur_dist = distance(i);
    if (cur_dist < dist) {
      std::swap(cur, slot);
      dist = cur_dist;
    }
    i = (i + 1) & mask_;
    ++dist;
  }
}

std::size_t FlowTable::locate(const FlowKey& key) const {
  std::size_t i = home(key);
  for (std::size_t dist = 0;; ++dist) {
    const Slot& cur = slots_[i];
    if (cur.value == kNoValue) {
      return kNotFound;
    }
    if (cur.key == key) {
      return i;
    }
    // A resident nearer its home than we are to ours: by the Robin Hood order our key would
    // have displaced it, so the key is absent. Checked from the second probe on, where runs
    // from neighbouring homes start to interleave.
    if (dist > 0 && distance(i) < dist) {
      return kNotFound;
    }
    i = (i + 1) & mask_;
  }
}

std::optional<std::uint32_t> FlowTable::find(const FlowKey& key) const {
  const std::size_t i = locate(key);
  if (i == kNotFound) {
    return std::nullopt;
  }
  return slots_[i].value;
}

bool FlowTable::insert(const FlowKey& key, std::uint32_t value) {
  assert(value != kNoValue);
  if (value == kNoValue || locate(key) != kNotFound) {
    return false;
  }
  if (size_ + 1 > grow_at_) {
    rehash(slots_.size() * 2);
  }
  insert_absent(Slot{key, value});
  ++size_;
  return true;
}

// Backward-shift deletion: pull each following entry that is away from its home one slot back,
// until an empty slot or an entry already at home. The table ends exactly as if the key had
// never been inserted, with no tombstone.
bool FlowTable::erase(const FlowKey& key) {
  std::size_t i = locate(key);
  if (i == kNotFound) {
    return false;
  }
  for (;;) {
    const std::size_t next = (i + 1) & mask_;
    if (slots_[next].value == kNoValue || distance(next) == 0) {
      break;
    }
    slots_[i] = slots_[next];
    i = next;
  }
  slots_[i] = kEmptySlot;
  --size_;
  return true;
}

void FlowTable::for_each(FunctionRef<void(const FlowKey& key, std::uint32_t value)> fn) const {
  for (const Slot& s : slots_) {
    if (s.value != kNoValue) {
      fn(s.key, s.value);
    }
  }
}

std::size_t FlowTable::max_displacement() const {
  std::size_t worst = 0;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].value != kNoValue) {
      worst = std::max(worst, distance(i));
    }
  }
  return worst;
}

}  // namespace xtcp
