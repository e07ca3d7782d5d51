// Schedule: when each client acts next (its next message, a reconnect), for a million
// clients. A calendar of 1-ms slots over a 65-second ring: adding is O(1), and each turn
// takes the slots that have come due. An item further away than the ring waits in its slot
// for the right round. Items carry the client's generation, so a client that closed and
// reopened ignores what its former self had scheduled (no cancellation needed).
#pragma once

#include <cstdint>
#include <vector>

#include "stack/core/clock.h"
#include "stack/core/function_ref.h"

namespace xtcp::loadgen {

class Schedule {
 public:
  explicit Schedule(TimeNs start) : cursor_ms_(start / kNsPerMs), slots_(kSlots) {}

  void add(std::uint32_t index, std::uint32_t gen, TimeNs due) {
    std::int64_t ms = (due + kNsPerMs - 1) / kNsPerMs;
    if (ms < cursor_ms_) {
      ms = cursor_ms_;
    }
    slots_[static_cast<std::size_t>(ms) & (kSlots - 1)].push_back(Item{index, gen, ms});
    ++size_;
  }

  // Calls fn(index, gen) for every item due at or before now, in slot order.
  void run_due(TimeNs now, FunctionRef<void(std::uint32_t, std::uint32_t)> fn) {
    const std::int64_t now_ms = now / kNsPerMs;
    while (cursor_ms_ <= now_ms && size_ > 0) {
      std::vector<Item>& slot = slots_[static_cast<std::size_t>(cursor_ms_) & (kSlots - 1)];
      if (!slot.empty()) {
        // fn may add to this very slot (a due time of "now"): take the items out first.
        std::vector<Item> items;
        items.swap(slot);
        for (const Item& it : items) {
          if (it.due_ms > cursor_ms_) {
            slot.push_back(it);  // a later round of the ring
          } else {
            --size_;
            fn(it.index, it.gen);
          }
        }
      }
      if (cursor_ms_ == now_ms) {
        break;  // items added for now by fn run on the next turn
      }
      ++cursor_ms_;
    }
    if (size_ == 0 && cursor_ms_ < now_ms) {
      cursor_ms_ = now_ms;
    }
  }

  // The earliest moment something may be due: exact within the next second, else "in a
  // second" (the caller only uses it to bound a wait).
  TimeNs next_due() const {
    if (size_ == 0) {
      return kNever;
    }
    for (std::int64_t ms = cursor_ms_; ms < cursor_ms_ + 1000; ++ms) {
      for (const Item& it : slots_[static_cast<std::size_t>(ms) & (kSlots - 1)]) {
        if (it.due_ms <= ms) {
          return ms * kNsPerMs;
        }
      }
    }
    return (cursor_ms_ + 1000) * kNsPerMs;
  }

  std::size_t size() const { return size_; }

 private:
  static constexpr std::size_t kSlots = 1u << 16;
  struct Item {
    std::uint32_t index;
    std::uint32_t gen;
    std::int64_t due_ms;
  };
  std::int64_t cursor_ms_;
  std::vector<std::vector<Item>> slots_;
  std::size_t size_ = 0;
};

}  // namespace xtcp::loadgen
