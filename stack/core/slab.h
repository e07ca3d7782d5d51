// Slab<T>: a fixed-capacity array of T for one kind of per-connection record, reserved at
// start-up as virtual memory whose pages become resident only as slots are first used.
// Slots are handed out in index order and recycled through a free list threaded through the
// free slots, so the resident size follows the most slots ever in use at once; nothing ever
// moves a live slot (references stay valid) or grows the array on the packet path.
//
//   alloc() --> free list head, else the next never-used slot (its page is touched now)
//   free(i) --> i becomes the free list head
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>

namespace xtcp {

template <class T>
class Slab {
  static_assert(std::is_trivially_destructible_v<T>, "slots are reused without destructors");
  static_assert(sizeof(T) >= sizeof(std::uint32_t), "a free slot holds the next free index");

 public:
  static constexpr std::uint32_t kNone = UINT32_MAX;

  // Reserves address space for capacity slots; throws std::bad_alloc if it cannot.
  explicit Slab(std::uint32_t capacity) : cap_(capacity) {
    if (cap_ == 0) {
      return;
    }
    void* p = ::mmap(nullptr, bytes(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      throw std::bad_alloc();
    }
    base_ = static_cast<T*>(p);
  }
  ~Slab() {
    if (base_ != nullptr) {
      ::munmap(base_, bytes());
    }
  }
  Slab(const Slab&) = delete;
  Slab& operator=(const Slab&) = delete;

  // A default-constructed slot, or kNone when all capacity slots are in use.
  std::uint32_t alloc() {
    std::uint32_t i;
    if (free_head_ != kNone) {
      i = free_head_;
      std::memcpy(&free_head_, static_cast<void*>(base_ + i), sizeof free_head_);
    } else if (fresh_ < cap_) {
      i = fresh_++;
    } else {
      return kNone;
    }
    new (base_ + i) T{};
    ++in_use_;
    return i;
  }

  void free(std::uint32_t i) {
    std::memcpy(static_cast<void*>(base_ + i), &free_head_, sizeof free_head_);
    free_head_ = i;
    --in_use_;
  }

  T& operator[](std::uint32_t i) { return base_[i]; }
  const T& operator[](std::uint32_t i) const { return base_[i]; }

  std::uint32_t capacity() const { return cap_; }
  std::uint32_t in_use() const { return in_use_; }
  // Slots ever handed out: what the slab has made resident.
  std::uint32_t high_water() const { return fresh_; }
  std::size_t resident_bytes() const { return static_cast<std::size_t>(fresh_) * sizeof(T); }

 private:
  std::size_t bytes() const { return static_cast<std::size_t>(cap_) * sizeof(T); }

  T* base_ = nullptr;
  std::uint32_t cap_;
  std::uint32_t fresh_ = 0;
  std::uint32_t in_use_ = 0;
  std::uint32_t free_head_ = kNone;
};

}  // namespace xtcp
