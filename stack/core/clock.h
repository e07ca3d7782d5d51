// Time as the engine sees it: a monotonic nanosecond count read through an injected Clock,
// so engine tests run in virtual time (ManualClock) and programs on the system clock.
#pragma once

#include <cstdint>
#include <ctime>

namespace xtcp {

// Monotonic nanoseconds since an arbitrary origin.
using TimeNs = std::int64_t;

inline constexpr TimeNs kNsPerUs = 1'000;
inline constexpr TimeNs kNsPerMs = 1'000'000;
inline constexpr TimeNs kNsPerSec = 1'000'000'000;
inline constexpr TimeNs kNever = INT64_MAX;

constexpr TimeNs ms(std::int64_t n) { return n * kNsPerMs; }
constexpr TimeNs us(std::int64_t n) { return n * kNsPerUs; }
constexpr TimeNs seconds(std::int64_t n) { return n * kNsPerSec; }

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimeNs now() const = 0;
};

// CLOCK_MONOTONIC: what programs run on.
class SteadyClock final : public Clock {
 public:
  TimeNs now() const override {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<TimeNs>(ts.tv_sec) * kNsPerSec + ts.tv_nsec;
  }
};

// Virtual time for tests: moves only when told to.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimeNs start = seconds(1)) : now_(start) {}
  TimeNs now() const override { return now_; }
  void advance(TimeNs delta) { now_ += delta; }
  void set(TimeNs t) { now_ = t; }

 private:
  TimeNs now_;
};

}  // namespace xtcp
