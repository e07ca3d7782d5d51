// The flow lookup index: TCP 4-tuple -> connection slot index, one per shard. Every inbound
// segment of an established flow goes through find(); connection setup and teardown call
// insert()/erase(). Open addressing, Robin Hood linear probing, 16 bytes per slot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "stack/core/flow_hash.h"
#include "stack/core/function_ref.h"

namespace xtcp {

// Open-addressing hash table, power-of-two capacity, grown (by full rehash into twice the
// capacity) before the load factor exceeds 0.8; reserve() at start-up keeps rehashing off the
// packet path. Robin Hood insertion bounds probe lengths and lets a miss stop early; erase
// shifts the following run back by one instead of leaving a tombstone, so lookups do not decay
// under connection churn.
//
// A slot is exactly key (12 bytes) + value (4 bytes): no hash or distance is stored. The home
// slot of an entry is recomputed from its key when Robin Hood needs it (a keyed
// folded-multiply hash, a few ns). An empty slot has value kNoValue, which therefore cannot be
// stored.
//
// The hash is keyed with a per-table 64-bit seed (random by default), expanded into four
// secret words and mixed with two rounds of 64x64->128-bit folded multiplication (the
// wyhash/foldhash construction): a remote peer choosing its address and port cannot predict
// which slots its flows land in, so it cannot build long collision chains.
class FlowTable {
 public:
  static constexpr std::uint32_t kNoValue = 0xFFFF'FFFFu;

  // Sized for `expected_entries` without rehashing.
  explicit FlowTable(std::size_t expected_entries = 0, std::uint64_t seed = random_seed());

  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;
  // A moved-from table may only be destroyed or assigned to.
  FlowTable(FlowTable&&) = default;
  FlowTable& operator=(FlowTable&&) = default;

  std::optional<std::uint32_t> find(const FlowKey& key) const;

  // False (and no change) if the key is already present. `value` must not be kNoValue.
  bool insert(const FlowKey& key, std::uint32_t value);

  // False if the key was absent.
  bool erase(const FlowKey& key);

  // Grows so that n entries fit without another rehash. Never shrinks.
  void reserve(std::size_t n);
  void clear();

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::size_t capacity() const { return slots_.size(); }
  // Bytes owned by the table: the object plus the slot array.
  std::size_t memory_bytes() const;

  // Visits every entry once, in slot order. The table must not be modified meanwhile.
  void for_each(FunctionRef<void(const FlowKey& key, std::uint32_t value)> fn) const;

  // Longest distance of any entry from its home slot. O(capacity): for tests and diagnostics.
  std::size_t max_displacement() const;

  // 64 bits from the kernel's random source (getrandom).
  static std::uint64_t random_seed();

  struct alignas(16) Slot {
    FlowKey key;
    std::uint32_t value;
  };
  static_assert(sizeof(Slot) == 16);

 private:
  static constexpr std::size_t kMinCapacity = 16;

  std::uint64_t hash(const FlowKey& key) const;
  std::size_t home(const FlowKey& key) const { return static_cast<std::size_t>(hash(key) >> shift_); }
  std::size_t distance(std::size_t index) const {
    return (index - home(slots_[index].key)) & mask_;
  }
  void rehash(std::size_t new_capacity);
  // Robin Hood placement of a key known to be absent.
  void insert_absent(Slot slot);
  // Index of key's slot, or kNotFound.
  std::size_t locate(const FlowKey& key) const;
  static std::size_t capacity_for(std::size_t entries);

  static constexpr std::size_t kNotFound = ~std::size_t{0};

  FlowHasher hasher_;
  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  int shift_ = 64;  // home = hash >> shift_: the top bits, the best mixed ones
  std::size_t size_ = 0;
  std::size_t grow_at_ = 0;  // size beyond which we rehash: 0.8 * capacity
};

}  // namespace xtcp
