// An echo service on the engine's internal API: every byte a client sends comes back, and
// when the client closes its side the connection is closed after the last echoed byte.
// Used in-process by the interop tests (on a TUN) and the whole-stack tests (netsim);
// the xtcp-echo program itself runs on the xtcp API (main.cc).
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "stack/buffer/stream_buffers.h"
#include "stack/stack.h"

namespace xtcp {

class EchoService {
 public:
  EchoService(Stack& stack, StreamBuffers& buffers, std::uint16_t port);
  // Handles queued engine events; call after each Stack::poll().
  void on_events();
  // Handles one event; false when it concerns another service (other port or connection).
  bool handle(const TcpEvent& e);
  std::uint64_t accepted() const { return accepted_; }
  std::uint64_t echoed_bytes() const { return echoed_; }
  std::size_t open_connections() const { return conns_.size(); }
  int listen_result() const { return listen_rc_; }

 private:
  struct Conn {
    bool peer_closed = false;
  };
  void pump(ConnId conn, Conn& c);

  Stack& stack_;
  StreamBuffers& buffers_;
  std::uint16_t port_;
  int listen_rc_;
  std::unordered_map<ConnId, Conn> conns_;
  std::vector<std::byte> scratch_;
  std::uint64_t accepted_ = 0;
  std::uint64_t echoed_ = 0;
};

}  // namespace xtcp
