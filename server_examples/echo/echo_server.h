// xtcp-echo's serving loop on the xtcp C API, for the program and for whoever runs its logic
// in process (xtcp-replay): xtcp_recv -> xtcp_send(ackd = bytes echoed, the same bytes), so
// the ACK rides on the echo. The group sends whole echoes or nothing (XTCP_OPT_SEND_ALL): an
// echo the transmit cache cannot take leaves its bytes unacknowledged in the pool, and the
// stack offers them again from xtcp_recv once the room is there, so the server keeps no
// queue of its own. After the client's FIN the connection is closed behind the last echo.
#pragma once

#include <xtcp/xtcp.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tools/cli/cli.h"

namespace xtcp_examples {

// A group on port that sends whole echoes or nothing (XTCP_OPT_SEND_ALL). The group
// descriptor, or a negative errno with *what naming the call that failed (nothing stays
// open then).
int open_echo_group(std::uint16_t port, std::string* what);

// The largest echo sent at once: 64 KiB, or a quarter of the transmit cache when smaller
// (so that a refused echo always fits once the cache drains).
std::size_t echo_piece();

class EchoServer {
 public:
  EchoServer(int gd, std::size_t piece) : gd_(gd), buf_(piece) {}

  // One round of xtcp_select (waiting at most timeout_ms), accepts, echoes. 0 or
  // xtcp_select's error.
  int run_once(int timeout_ms);

  // echo.accepted, echo.bytes_echoed, echo.client_closes, echo.resets, echo.deferred_sends,
  // echo.unechoed_at_close.
  void counters(std::vector<xtcp::cli::Counter>* out) const;
  std::uint64_t accepted() const { return accepted_; }
  std::uint64_t bytes_echoed() const { return echoed_; }

 private:
  void serve();
  void echo(int cd, std::size_t n);

  int gd_;
  std::vector<char> buf_;
  std::uint64_t accepted_ = 0;
  std::uint64_t echoed_ = 0;
  std::uint64_t client_closes_ = 0;
  std::uint64_t resets_ = 0;
  std::uint64_t deferred_ = 0;
  std::uint64_t unechoed_ = 0;
};

}  // namespace xtcp_examples
