// A flow index that does not store keys: TCP 4-tuple -> a 32-bit value (a slot index in the
// owner's storage), 8 bytes per slot. The key of an entry lives once, in the owner's record;
// the index keeps only the value and a 32-bit keyed hash, and asks the owner for the key (a
// FlowKeySource) when a stored hash matches the one looked up. For a table of a million
// flows that is 8 / 0.85 = 9.4 bytes per entry instead of the 20-40 of FlowTable (key, value,
// power-of-two capacity).
//
// Open addressing with Robin Hood linear probing. The home slot of an entry follows from its
// stored hash (multiply-shift range reduction), so probing, Robin Hood displacement and
// backward-shift deletion never read a key; a lookup reads one key per hash match (in
// practice: one, the entry itself). Deletion shifts the following run back instead of leaving
// a tombstone, so probe lengths do not decay under churn.
//
// The capacity is fixed at construction from a maximum entry count and a maximum load, and is
// not a power of two: a million entries at load 0.85 take 1,176,471 slots, not 2^21. Nothing
// ever grows: an insert beyond the maximum fails and the caller decides (recycle, refuse).
// The slot array is anonymous memory reserved up front; an empty slot is all zero bits (the
// value is stored + 1), so pages nobody wrote stay untouched and cost no resident memory.
//
// The hash is keyed with a per-index 64-bit seed (random by default), with FlowTable's
// construction (four secret words, two rounds of folded 64x64->128-bit multiplication): a peer
// choosing addresses and ports cannot predict slots, so it cannot build collision chains.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "stack/core/flow_table.h"  // FlowKey, FlowTable::random_seed
#include "stack/core/function_ref.h"

namespace xtcp {

// Where a FlowIndex finds the key of a value: the owner's record for that slot. Called only
// for values the index holds (the owner must keep the key readable until it erases the value
// from the index), and only when the stored hash matched.
class FlowKeySource {
 public:
  virtual FlowKey key_of(std::uint32_t value) const = 0;

 protected:
  ~FlowKeySource() = default;
};

// Anonymous private memory reserved at construction (MAP_NORESERVE), zero-filled by the
// kernel on first touch: pages never written cost no resident memory. Move-only.
class ZeroedPages {
 public:
  ZeroedPages() = default;
  // Throws std::bad_alloc if the address space cannot be had.
  explicit ZeroedPages(std::size_t bytes);
  ~ZeroedPages();
  ZeroedPages(ZeroedPages&& other) noexcept;
  ZeroedPages& operator=(ZeroedPages&& other) noexcept;
  ZeroedPages(const ZeroedPages&) = delete;
  ZeroedPages& operator=(const ZeroedPages&) = delete;

  void* data() const { return data_; }
  // The reservation, rounded up to whole pages.
  std::size_t bytes() const { return bytes_; }
  // Back to all zero; the pages are given back to the kernel (MADV_DONTNEED).
  void zero();

  static std::size_t page_size();

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

class FlowIndex {
 public:
  static constexpr double kDefaultMaxLoad = 0.85;
  // The largest storable value (values are stored + 1; 0 marks an empty slot).
  static constexpr std::uint32_t kMaxValue = 0xFFFF'FFFEu;

  // Room for `max_entries` entries at a load of at most `max_load` (0 < max_load < 1):
  // capacity() = max(ceil(max_entries / max_load), max_entries + 1) slots, at most 2^32 - 1.
  // `keys` must outlive the index.
  FlowIndex(const FlowKeySource& keys, std::size_t max_entries,
            double max_load = kDefaultMaxLoad, std::uint64_t seed = FlowTable::random_seed());

  FlowIndex(const FlowIndex&) = delete;
  FlowIndex& operator=(const FlowIndex&) = delete;
  // A moved-from index may only be destroyed or assigned to.
  FlowIndex(FlowIndex&&) noexcept = default;
  FlowIndex& operator=(FlowIndex&&) noexcept = default;

  std::optional<std::uint32_t> find(const FlowKey& key) const;

  // False (and no change) if the key is already present, or if the index holds max_entries()
  // entries (full(): the caller makes room or refuses). `value` must be <= kMaxValue, and
  // keys.key_of(value) must return `key` from now until the entry is erased.
  bool insert(const FlowKey& key, std::uint32_t value);

  // False if the key was absent.
  bool erase(const FlowKey& key);
  // Erases the entry of `key` only if its value is `value`; matches on hash and value, so it
  // never asks the key source (for owners whose record is already being reused or torn down).
  bool erase(const FlowKey& key, std::uint32_t value);

  // Empties the index and gives its pages back.
  void clear();

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  bool full() const { return size_ >= max_entries_; }
  std::size_t max_entries() const { return max_entries_; }
  std::size_t capacity() const { return capacity_; }
  // Bytes the index costs: the object, the page bitmap and every slot page ever written (what
  // is resident; pages only read map the kernel's shared zero page).
  std::size_t memory_bytes() const;
  // Bytes it can cost at most: the object, the bitmap and the whole slot array.
  std::size_t reserved_bytes() const;

  // Visits every entry once, in slot order, asking the key source for each key. The index
  // must not be modified meanwhile.
  void for_each(FunctionRef<void(const FlowKey& key, std::uint32_t value)> fn) const;

  // Longest distance of any entry from its home slot. O(capacity): for tests and diagnostics.
  std::size_t max_displacement() const;

  struct Slot {
    std::uint32_t value_plus_one;  // 0: empty
    std::uint32_t hash;            // the keyed hash's top 32 bits; the home slot follows
  };
  static_assert(sizeof(Slot) == 8);

 private:
  std::uint32_t hash(const FlowKey& key) const;
  // Multiply-shift range reduction: the top bits of the hash pick the slot, so entries in a
  // run are ordered by hash as well as by home.
  std::size_t home(std::uint32_t h) const {
    return static_cast<std::size_t>((std::uint64_t{h} * capacity_) >> 32);
  }
  std::size_t distance(std::size_t index, std::uint32_t h) const {
    const std::size_t from = home(h);
    return index >= from ? index - from : index + capacity_ - from;
  }
  std::size_t next(std::size_t index) const { return index + 1 == capacity_ ? 0 : index + 1; }
  std::size_t locate(const FlowKey& key, std::uint32_t h) const;
  void erase_at(std::size_t index);
  void mark_written(std::size_t index);

  static constexpr std::size_t kNotFound = ~std::size_t{0};

  const FlowKeySource* keys_;
  FlowHasher hasher_;
  ZeroedPages storage_;
  Slot* slots_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t max_entries_ = 0;
  std::size_t size_ = 0;
  // One bit per page of the slot array: set once a slot on it was written.
  std::vector<std::uint64_t> written_;
  std::size_t written_pages_ = 0;
  unsigned slots_per_page_shift_ = 0;
};

}  // namespace xtcp
