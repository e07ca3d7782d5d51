// Time for the aggregators' latency bound: a monotonic nanosecond count read through an
// injected Clock, so tests drive flushes in virtual time (ManualClock) and programs run on
// CLOCK_MONOTONIC. netpdu/ keeps its own small interface so it does not depend on stack/.
#pragma once

#include <cstdint>
#include <ctime>

namespace xtcp::netpdu {

using TimeNs = std::int64_t;
inline constexpr TimeNs kNever = INT64_MAX;
inline constexpr TimeNs kNsPerUs = 1'000;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimeNs now() const = 0;
};

class SteadyClock final : public Clock {
 public:
  TimeNs now() const override {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<TimeNs>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  }
};

// Moves only when told to.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimeNs start = 1'000'000'000) : now_(start) {}
  TimeNs now() const override { return now_; }
  void advance(TimeNs delta) { now_ += delta; }

 private:
  TimeNs now_;
};

}  // namespace xtcp::netpdu
