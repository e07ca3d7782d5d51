// Key-less Robin Hood flow index; see flow_index.h.
#include "stack/core/flow_index.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>
#include <new>
#include <utility>

namespace xtcp {
namespace {

std::size_t round_up(std::size_t n, std::size_t unit) { return (n + unit - 1) / unit * unit; }

}  // namespace

// ---- ZeroedPages ------------------------------------------------------------------------------

std::size_t ZeroedPages::page_size() {
  static const std::size_t size = [] {
    const long s = sysconf(_SC_PAGESIZE);
    return s > 0 ? static_cast<std::size_t>(s) : std::size_t{4096};
  }();
  return size;
}

ZeroedPages::ZeroedPages(std::size_t bytes) {
  if (bytes == 0) {
    return;
  }
  const std::size_t len = round_up(bytes, page_size());
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    throw std::bad_alloc();
  }
  data_ = p;
  bytes_ = len;
}

ZeroedPages::~ZeroedPages() {
  if (data_ != nullptr) {
    munmap(data_, bytes_);
  }
}

ZeroedPages::ZeroedPages(ZeroedPages&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

ZeroedPages& ZeroedPages::operator=(ZeroedPages&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) {
      munmap(data_, bytes_);
    }
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void ZeroedPages::zero() {
  if (data_ == nullptr) {
    return;
  }
  // On a private anonymous mapping the next read of a dropped page sees zeros.
  if (madvise(data_, bytes_, MADV_DONTNEED) != 0) {
    std::fill_n(static_cast<unsigned char*>(data_), bytes_, 0);
  }
}

// ---- FlowIndex --------------------------------------------------------------------------------

FlowIndex::FlowIndex(const FlowKeySource& keys, std::size_t max_entries, double max_load,
                     std::uint64_t seed)
    : keys_(&keys), hasher_(seed), max_entries_(max_entries) {
  assert(max_load > 0 && max_load < 1);
  if (!(max_load > 0 && max_load < 1)) {
    max_load = kDefaultMaxLoad;
  }
  const auto wanted = static_cast<std::size_t>(std::ceil(static_cast<double>(max_entries) / max_load));
  // At least one slot stays empty, which ends every probe.
  capacity_ = std::max({wanted, max_entries + 1, std::size_t{8}});
  if (capacity_ > 0xFFFF'FFFFu) {
    throw std::bad_alloc();  // the multiply-shift reduction takes 32-bit hashes to 2^32 slots
  }
  storage_ = ZeroedPages(capacity_ * sizeof(Slot));
  slots_ = static_cast<Slot*>(storage_.data());
  slots_per_page_shift_ =
      static_cast<unsigned>(std::countr_zero(ZeroedPages::page_size() / sizeof(Slot)));
  const std::size_t pages = (capacity_ >> slots_per_page_shift_) + 1;
  written_.assign((pages + 63) / 64, 0);
}

std::uint32_t FlowIndex::hash(const FlowKey& key) const {
  return static_cast<std::uint32_t>(hasher_(key) >> 32);
}

void FlowIndex::mark_written(std::size_t index) {
  const std::size_t page = index >> slots_per_page_shift_;
  std::uint64_t& word = written_[page / 64];
  const std::uint64_t bit = std::uint64_t{1} << (page % 64);
  if ((word & bit) == 0) {
    word |= bit;
    ++written_pages_;
  }
}

std::size_t FlowIndex::memory_bytes() const {
  return sizeof(*this) + written_.capacity() * sizeof(std::uint64_t) +
         std::min(written_pages_ * ZeroedPages::page_size(), storage_.bytes());
}

std::size_t FlowIndex::reserved_bytes() const {
  return sizeof(*this) + written_.capacity() * sizeof(std::uint64_t) + storage_.bytes();
}

std::size_t FlowIndex::locate(const FlowKey& key, std::uint32_t h) const {
  std::size_t i = home(h);
  for (std::size_t dist = 0;; ++dist) {
    const Slot s = slots_[i];
    if (s.value_plus_one == 0) {
      return kNotFound;
    }
    if (s.hash == h && keys_->key_of(s.value_plus_one - 1) == key) {
      return i;
    }
    // A resident nearer its home than we are to ours: by the Robin Hood order our key would
    // have displaced it, so the key is absent.
    if (distance(i, s.hash) < dist) {
      return kNotFound;
    }
    i = next(i);
  }
}

std::optional<std::uint32_t> FlowIndex::find(const FlowKey& key) const {
  const std::size_t i = locate(key, hash(key));
  if (i == kNotFound) {
    return std::nullopt;
  }
  return slots_[i].value_plus_one - 1;
}

// Robin Hood: the incoming entry takes the slot of any resident closer to its own home than
// the incoming one is, and carries on with the displaced resident. Only hashes are compared.
bool FlowIndex::insert(const FlowKey& key, std::uint32_t value) {
  assert(value <= kMaxValue);
  if (value > kMaxValue || full()) {
    return false;
  }
  const std::uint32_t h = hash(key);
  if (locate(key, h) != kNotFound) {
    return false;
  }
  Slot carry{value + 1, h};
  std::size_t i = home(h);
  std::size_t dist = 0;
  for (;;) {
    Slot& cur = slots_[i];
    if (cur.value_plus_one == 0) {
      cur = carry;
      mark_written(i);
      break;
    }
    const std::size_t cur_dist = distance(i, cur.hash);
    if (cur_dist < dist) {
      std::swap(cur, carry);
      dist = cur_dist;
    }
    i = next(i);
    ++dist;
  }
  ++size_;
  return true;
}

// Backward-shift deletion: pull each following entry that is away from its home one slot
// back, until an empty slot or an entry at home. No tombstone is left.
void FlowIndex::erase_at(std::size_t i) {
  for (;;) {
    const std::size_t n = next(i);
    const Slot s = slots_[n];
    if (s.value_plus_one == 0 || distance(n, s.hash) == 0) {
      break;
    }
    slots_[i] = s;
    i = n;
  }
  slots_[i] = Slot{0, 0};
  --size_;
}

bool FlowIndex::erase(const FlowKey& key) {
  const std::size_t i = locate(key, hash(key));
  if (i == kNotFound) {
    return false;
  }
  erase_at(i);
  return true;
}

bool FlowIndex::erase(const FlowKey& key, std::uint32_t value) {
  if (value > kMaxValue) {
    return false;
  }
  const std::uint32_t h = hash(key);
  std::size_t i = home(h);
  for (std::size_t dist = 0;; ++dist) {
    const Slot s = slots_[i];
    if (s.value_plus_one == 0 || distance(i, s.hash) < dist) {
      return false;
    }
    if (s.hash == h && s.value_plus_one == value + 1) {
      erase_at(i);
      return true;
    }
    i = next(i);
  }
}

void FlowIndex::clear() {
  storage_.zero();
  std::fill(written_.begin(), written_.end(), 0);
  written_pages_ = 0;
  size_ = 0;
}

void FlowIndex::for_each(FunctionRef<void(const FlowKey& key, std::uint32_t value)> fn) const {
  if (size_ == 0) {
    return;  // without reading (and mapping) a single page
  }
  for (std::size_t i = 0; i < capacity_; ++i) {
    const Slot s = slots_[i];
    if (s.value_plus_one != 0) {
      fn(keys_->key_of(s.value_plus_one - 1), s.value_plus_one - 1);
    }
  }
}

std::size_t FlowIndex::max_displacement() const {
  std::size_t worst = 0;
  for (std::size_t i = 0; size_ != 0 && i < capacity_; ++i) {
    const Slot s = slots_[i];
    if (s.value_plus_one != 0) {
      worst = std::max(worst, distance(i, s.hash));
    }
  }
  return worst;
}

}  // namespace xtcp
