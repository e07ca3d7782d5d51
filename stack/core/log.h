// Reports of rare events (a device error, a table full, SYN cookies switched on) from the
// engine to whoever embeds it. Each kind of event is rate limited on the engine's clock, so
// a flood of one kind yields one line per period plus the count of the ones left out.
//
//   TcpLayer / Ipv4Layer / Stack --report(kind, level, now, fmt...)--> Logger --> sink
#pragma once

#include <array>
#include <cstdint>

#include "stack/core/clock.h"

namespace xtcp {

enum class LogLevel : int { kError = 0, kWarning = 1, kInfo = 2, kDebug = 3 };

// One rate limit each. Add kinds before kCount.
enum class LogKind : std::uint8_t {
  kLinkSend,         // the device refused a packet
  kLinkReceive,      // reading the device failed
  kConnTableFull,    // max_connections reached: a SYN was refused
  kAcceptQueueFull,  // a listener's accept queue overflowed
  kSynCookies,       // a listener's SYN queue filled: SYN cookies answer
  kTimeWaitFull,     // the TIME-WAIT table recycled an entry early
  kTxCacheFull,      // the transmit cache refused an answer
  kRxPoolFull,       // a receive pool refused in-window payload
  kCaptureFailed,    // a packet capture ended: its file could not be written
  kCount,
};

class Logger {
 public:
  using Sink = void (*)(LogLevel level, const char* message, void* arg);

  // sink nullptr: nothing is reported (the default).
  void set_sink(Sink sink, LogLevel max_level, void* arg);
  bool enabled(LogLevel level) const { return sink_ != nullptr && level <= max_level_; }
  void set_period(TimeNs period) { period_ = period; }

  // Formats and hands the message to the sink, unless a report of the same kind went out
  // less than one period before `now`: then it is only counted, and the next report of
  // that kind says how many were left out.
  void report(LogKind kind, LogLevel level, TimeNs now, const char* format, ...)
      __attribute__((format(printf, 5, 6)));

 private:
  struct KindState {
    TimeNs last = 0;
    bool reported = false;
    std::uint64_t suppressed = 0;
  };
  Sink sink_ = nullptr;
  void* arg_ = nullptr;
  LogLevel max_level_ = LogLevel::kWarning;
  TimeNs period_ = seconds(10);
  std::array<KindState, static_cast<std::size_t>(LogKind::kCount)> kinds_{};
};

}  // namespace xtcp
