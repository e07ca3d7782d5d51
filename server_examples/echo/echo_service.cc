// Echo over the engine: readable -> read what the send side can take -> send; the rest
// waits for the writable event, so nothing is buffered twice or dropped.
#include "server_examples/echo/echo_service.h"

#include <algorithm>

namespace xtcp {

EchoService::EchoService(Stack& stack, StreamBuffers& buffers, std::uint16_t port)
    : stack_(stack), buffers_(buffers), port_(port), scratch_(64 * 1024) {
  listen_rc_ = stack_.tcp().listen(port_);
}

void EchoService::pump(ConnId conn, Conn& c) {
  TcpLayer& tcp = stack_.tcp();
  for (;;) {
    const std::size_t room = buffers_.tx().free_space(conn);
    const std::size_t want = std::min({buffers_.readable(conn), room, scratch_.size()});
    if (want == 0) {
      break;
    }
    const std::size_t n = buffers_.read(conn, wire::MutableByteSpan(scratch_.data(), want));
    const std::int64_t sent = tcp.send(conn, wire::ByteSpan(scratch_.data(), n));
    if (sent < 0) {
      tcp.abort(conn);
      conns_.erase(conn);
      return;
    }
    echoed_ += static_cast<std::uint64_t>(sent);
    tcp.consumed(conn);
  }
  if (c.peer_closed && buffers_.readable(conn) == 0) {
    tcp.close(conn);  // orderly: FIN after the echoed bytes; the engine finishes the close
    conns_.erase(conn);
  }
}

void EchoService::on_events() {
  TcpLayer& tcp = stack_.tcp();
  while (tcp.has_events()) {
    tcp.poll_events([&](const TcpEvent& e) { handle(e); });
  }
}

bool EchoService::handle(const TcpEvent& e) {
  TcpLayer& tcp = stack_.tcp();
  if (e.type == TcpEventType::kAcceptable) {
    if (e.port != port_) {
      return false;
    }
    for (;;) {
      const std::int64_t c = tcp.accept(port_);
      if (c < 0) {
        break;
      }
      ++accepted_;
      conns_.emplace(static_cast<ConnId>(c), Conn{});
    }
    return true;
  }
  auto it = conns_.find(e.conn);
  if (it == conns_.end()) {
    return false;
  }
  switch (e.type) {
    case TcpEventType::kReadable:
    case TcpEventType::kWritable:
      pump(e.conn, it->second);
      break;
    case TcpEventType::kPeerClosed:
      it->second.peer_closed = true;
      pump(e.conn, it->second);
      break;
    case TcpEventType::kClosed:
      conns_.erase(it);
      tcp.close(e.conn);  // reset or timed out: release the handle
      break;
    default:
      break;
  }
  return true;
}

}  // namespace xtcp
