// Payload ownership. A Payload is a byte span plus a shared owner that keeps those bytes
// alive: the aggregator holds it from submit() until the bytes are written (then drops it);
// a receiver hands out slices of the buffers it read into, charged to a MemoryBudget.
//
//   producer buffer --Payload{span, owner}--> Aggregator queue --writev--> fd, owner.reset()
//   fd --readv--> block (charged to budget) --Payload{slice, alias of block}--> session sink
//   last reference to the block dropped --> budget charge returned
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>

#include "netpdu/bytes.h"

namespace xtcp::netpdu {

struct Payload {
  ByteSpan bytes;
  std::shared_ptr<const void> owner;  // may be null when the bytes are static or empty

  std::size_t size() const { return bytes.size(); }
};

// A payload owning a fresh copy of `bytes` (one allocation). For producers whose buffers
// do not outlive the call; everything else should reference its own memory.
Payload copy_payload(ByteSpan bytes);

// References `bytes` without copying; `on_release` runs once, when the last holder of the
// payload lets go (for the aggregator: once the bytes are in the kernel, or on failure).
// This is how a caller's own buffer (e.g. a slot of a shared receive pool) is lent out.
Payload payload_with_release(ByteSpan bytes, std::function<void()> on_release);

// Receive-side memory accounting: bytes of received buffers still referenced by anyone.
// A receiver stops reading while its budget is spent, which is what bounds its memory.
class MemoryBudget {
 public:
  explicit MemoryBudget(std::size_t limit) : limit_(limit) {}
  std::size_t limit() const { return limit_; }
  std::size_t used() const { return used_.load(std::memory_order_relaxed); }
  // May `n` more bytes be taken? Always yes when nothing is in use, so one frame larger than
  // the limit cannot wedge a receiver: the bound is max(limit, largest frame).
  bool can_take(std::size_t n) const {
    const std::size_t u = used();
    return u == 0 || u + n <= limit_;
  }

  // A block of n uninitialised bytes charged to `budget` until its last reference goes.
  static std::shared_ptr<std::byte> allocate(const std::shared_ptr<MemoryBudget>& budget, std::size_t n);

 private:
  std::size_t limit_;
  std::atomic<std::size_t> used_{0};
};

}  // namespace xtcp::netpdu
