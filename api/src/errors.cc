// Thread-local storage of the pending explanation and of the last error (see errors.h).
#include "api/src/errors.h"

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace xtcp::api {
namespace {

struct ErrorState {
  std::string pending;
  std::string last;
};

ErrorState& state() {
  thread_local ErrorState s;
  return s;
}

}  // namespace

void explain(const char* format, ...) {
  char line[512];
  va_list ap;
  va_start(ap, format);
  std::vsnprintf(line, sizeof line, format, ap);
  va_end(ap);
  state().pending = line;
}

void explain(const std::string& message) { state().pending = message; }

CallScope::CallScope(const char* call) : call_(call) { state().pending.clear(); }

int CallScope::finish(int rc) {
  ErrorState& s = state();
  if (rc < 0 && rc != -EAGAIN) {
    s.last = call_;
    s.last += ": ";
    s.last += s.pending.empty() ? std::strerror(-rc) : s.pending;
  }
  s.pending.clear();
  return rc;
}

const char* last_error() { return state().last.c_str(); }

}  // namespace xtcp::api
