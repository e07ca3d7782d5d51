// An xtcp server in the load generator's own process, on the other end of an in-memory
// link: the XTCP API's runtime on that link, serving the echo or the IM protocol with the
// same server code as the xtcp-im program (xtcp-echo's loop for echo). pump() runs one
// non-blocking round between the load generator's turns, so no TUN device limits what can
// be measured.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "stack/core/clock.h"
#include "stack/netif/link.h"

namespace xtcp::loadgen {

class InProcessTarget {
 public:
  enum class Kind { kEcho, kIm };
  // The server answers at addr:port. nullptr with *error on failure. Only one can exist at
  // a time (it is the process's XTCP runtime).
  static std::unique_ptr<InProcessTarget> create(Kind kind, Link& link, const Clock& clock, std::uint32_t addr,
                                                 std::uint16_t port, std::uint32_t connections, std::string* error);
  virtual ~InProcessTarget() = default;
  // One round of the server: its stack, accepts, answers. Never blocks.
  virtual void pump() = 0;
  // Bytes the server's engine and buffers account for (xtcp_counters "mem.total").
  virtual std::uint64_t memory_bytes() const = 0;
};

}  // namespace xtcp::loadgen
