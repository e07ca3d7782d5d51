// Logger: printf-style formatting into a fixed buffer and the per-kind rate limit.
#include "stack/core/log.h"

#include <cstdarg>
#include <cstdio>

namespace xtcp {

void Logger::set_sink(Sink sink, LogLevel max_level, void* arg) {
  sink_ = sink;
  max_level_ = max_level;
  arg_ = arg;
}

void Logger::report(LogKind kind, LogLevel level, TimeNs now, const char* format, ...) {
  if (!enabled(level)) {
    return;
  }
  KindState& k = kinds_[static_cast<std::size_t>(kind)];
  if (k.reported && now - k.last < period_) {
    ++k.suppressed;
    return;
  }
  char line[512];
  va_list ap;
  va_start(ap, format);
  int n = std::vsnprintf(line, sizeof line, format, ap);
  va_end(ap);
  if (n < 0) {
    return;
  }
  if (k.suppressed > 0 && static_cast<std::size_t>(n) < sizeof line) {
    std::snprintf(line + n, sizeof line - static_cast<std::size_t>(n), " (%llu more like it not reported)",
                  static_cast<unsigned long long>(k.suppressed));
  }
  k.last = now;
  k.reported = true;
  k.suppressed = 0;
  sink_(level, line, arg_);
}

}  // namespace xtcp
