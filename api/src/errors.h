// Why a call failed, in words: the runtime explains a failure where it knows more than the
// errno (which field, which device, which port), and the C layer keeps the explanation of
// the last failed call per thread for xtcp_last_error(). Not installed.
//
//   Runtime --explain("port %u ...")--> pending detail --C call returns < 0--> last error
#pragma once

#include <string>

namespace xtcp::api {

// Sets the explanation of the failure the current call is about to return.
void explain(const char* format, ...) __attribute__((format(printf, 1, 2)));
void explain(const std::string& message);

// Brackets one C call: forgets any earlier pending detail, and when the call fails records
// "<call>: <detail>", or "<call>: <strerror>" when nothing explained it.
class CallScope {
 public:
  explicit CallScope(const char* call);
  // Returns rc; records the last error when rc is a failure (negative, not -EAGAIN).
  int finish(int rc);

 private:
  const char* call_;
};

const char* last_error();

}  // namespace xtcp::api
