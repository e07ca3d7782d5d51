// BackendServer: the serving loop of xtcp-backend as a library: a listening socket, the
// NetPDU handshakes of the front ends that connect to it, and the ImBackend behind them, in
// one poll(2) round at a time. xtcp-backend runs it (netpdu/backend/main.cc), and so does
// the supervisor of `xtcp-im --shards N` for the shards it forwards (server_examples/im/).
#pragma once

#include <poll.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "netpdu/backend/im_backend.h"
#include "netpdu/clock.h"
#include "netpdu/handshake.h"

namespace xtcp::netpdu {

class BackendServer {
 public:
  // Serves the front ends that connect to listen_fd (a listening stream socket; not
  // closed here). clock must outlive the server.
  BackendServer(int listen_fd, const HandshakeLimits& limits, const ImBackendConfig& config, const Clock& clock);
  BackendServer(const BackendServer&) = delete;
  BackendServer& operator=(const BackendServer&) = delete;

  // One round: waits in poll(2) for the listener, the handshakes and the transports, at
  // most max_wait_ms (-1: until one is ready or a deadline of the backend comes), then
  // accepts, handshakes and serves what is ready. 0 (also when a signal cut the wait
  // short), or a negative errno when poll fails otherwise.
  int run_once(int max_wait_ms);

  // The log lines since the last call: refused handshakes and the transports' events.
  std::vector<std::string> take_log();
  const ImBackend& backend() const { return backend_; }
  // The backend's counters as ("backend.<name>", value), in a fixed order.
  std::vector<std::pair<std::string, std::uint64_t>> counters() const;

 private:
  int listen_fd_;
  const Clock& clock_;
  Acceptor acceptor_;
  ImBackend backend_;
  std::vector<pollfd> pfds_;
  std::vector<std::string> log_;
};

}  // namespace xtcp::netpdu
