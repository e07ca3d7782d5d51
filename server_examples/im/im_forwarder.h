// xtcp-im's forwarding mode (--backend): client connections on the xtcp API, their request
// lines forwarded unchanged to xtcp-backend as NetPDU sessions (netpdu/backend_client.h),
// the backend's TLPDUs returned to the right client. An answer is sent with ackd = the
// request bytes it answers, so the client's ACK rides on the answer exactly as in local mode.
//
//   xtcp_recv (whole lines) --BackendClient::send--> aggregator --writev--> backend
//   backend --readv--> de-aggregator --on_data(session, bytes, answered)--> xtcp_send(ackd)
//
// One poll(2) over the TUN descriptor and the backend transports drives both sides.
// Backpressure: when the backend link refuses more (it is slow), the forwarder stops
// reading clients; their bytes stay unacknowledged in the pool, so TCP flow control slows
// the clients instead of anything growing here. See docs/im-protocol.md, "Forwarding mode".
// Toward the clients the group sends whole answers or nothing (XTCP_OPT_SEND_ALL); what the
// transmit cache refuses waits in an Outbox with its ackd until xtcp_writable names the
// connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "netpdu/backend_client.h"
#include "netpdu/clock.h"
#include "server_examples/common/outbox.h"
#include "server_examples/common/server_flags.h"

namespace xtcp_examples {

struct ImForwarderConfig {
  xtcp::netpdu::Address backend;
  int data_transports = 0;  // 0: variant 1 (one transport); else a variant 2 bundle
  xtcp::netpdu::HandshakeLimits limits;
  xtcp::netpdu::EndpointConfig endpoint;
};

struct ImForwarderStats {
  std::uint64_t accepted = 0;
  std::uint64_t client_closes = 0;    // the client's FIN, after its lines were answered
  std::uint64_t resets = 0;           // -ECONNRESET / -ETIMEDOUT / -EPROTO from xtcp_recv
  std::uint64_t backend_closes = 0;   // the backend ended the session (QUIT, bad framing)
  std::uint64_t slow_consumers = 0;   // closed because their answer backlog passed the limit
  std::uint64_t recv_calls = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t forwarded_bytes = 0;  // request bytes handed to the backend link
  std::uint64_t forwarded_lines = 0;
  std::uint64_t answers = 0;          // TLPDUs that answered a request (carried an ACK)
  std::uint64_t pushes = 0;           // notifications (FROM/ONLINE/OFFLINE)
  std::uint64_t orphans = 0;          // TLPDUs for clients already gone (dropped)
  std::uint64_t stalls = 0;           // times the backend link refused and reading stopped
};

class ImForwarder {
 public:
  ImForwarder() = default;
  ~ImForwarder() { close(); }
  ImForwarder(const ImForwarder&) = delete;
  ImForwarder& operator=(const ImForwarder&) = delete;

  // Connects to the backend (handshake included, bounded to 5 s), then opens the group on
  // port (after xtcp_initialize). 0, or a negative errno with *what saying what failed.
  int open(std::uint16_t port, const ImForwarderConfig& config, std::string* what);
  // One turn: poll(2) on the TUN and the backend (at most timeout_ms), drive the stack,
  // deliver backend answers, accept, forward requests. 0; -EINTR (a signal); -EPIPE when
  // the backend link is lost (every client is closed then; see backend_error()).
  int run_once(int timeout_ms);
  // Closes the group (its connections are reset) and the backend link. Idempotent.
  void close();

  std::size_t connections() const { return conns_.size(); }
  std::size_t sessions() const { return backend_ ? backend_->sessions() : 0; }
  const ImForwarderStats& stats() const { return stats_; }
  const std::string& backend_error() const { return backend_error_; }
  // The "im.<name>" and "netpdu.<name>" counters.
  void counters(std::vector<Counter>* out) const;
  // "im.<name> <value>" and "netpdu.<name> <value>" lines.
  void print_counters(std::FILE* out) const;

 private:
  struct Conn {
    std::uint64_t session = 0;    // 0: no backend session (not opened yet, or ended)
    std::size_t forwarded = 0;    // unanswered bytes (after the outbox's pending_ackd) already forwarded
    bool client_done = false;     // the client's FIN: finish once every line is answered
  };
  // Bytes xtcp_recv delivered that the backend link refused: retried before anything else
  // is read (the connection is not offered again for bytes it has already shown).
  struct Stalled {
    int cd = -1;
    xtcp::netpdu::Payload bytes;
  };
  // Hands bytes of cd's session to the backend link; 0, -EAGAIN, or the link's failure.
  int forward(Conn& c, const xtcp::netpdu::Payload& bytes);
  // Every forwarded line of c answered (BackendClient counts them).
  bool all_answered(const Conn& c) const;

  bool reading_stopped() const { return stalled_.has_value() || !unopened_.empty(); }
  void retry_stalled();
  void accept_all();
  // false: the backend refused (-EAGAIN); the connection waits in unopened_.
  bool open_session(int cd, Conn& c);
  void serve_requests();
  void on_request_bytes(int cd, std::size_t n);
  void on_client_end(int cd, int rc);
  void on_backend_data(std::uint64_t session, const xtcp::netpdu::Payload& bytes, std::size_t answered);
  void on_backend_close(std::uint64_t session);
  // Ends c's backend session (CLOSE; retried while the link is full).
  void end_session(Conn& c);
  void close_when_flushed(int cd);
  void close_now(int cd);
  void finish_closing();
  void lose_backend(const std::string& why);
  void forget_clients();
  int poll_wait_ms(int timeout_ms) const;

  int gd_ = -1;
  xtcp::netpdu::SteadyClock clock_;
  std::unique_ptr<xtcp::netpdu::BackendClient> backend_;
  std::string backend_error_;
  std::optional<Outbox> outbox_;
  std::unordered_map<int, Conn> conns_;
  std::unordered_map<std::uint64_t, int> cd_of_session_;
  std::deque<int> unopened_;               // accepted; OPEN refused by backpressure
  std::deque<std::uint64_t> unsent_closes_;  // CLOSE refused by backpressure
  std::optional<Stalled> stalled_;
  bool more_work_ = false;  // a per-turn bound was reached: do not sleep next turn
  std::vector<char> buf_;
  std::vector<pollfd> pfds_;
  ImForwarderStats stats_;
};

}  // namespace xtcp_examples
