// Front-end side of the link to the IM backend, for the IM server (issue 3): one session
// per client connection, its bytes forwarded as DATA TLPDUs through the aggregator, the
// backend's TLPDUs routed back to the right session by the de-aggregator.
//
//   client bytes --send(session, Payload)--> OPEN/DATA/CLOSE TLPDUs --> Endpoint --> backend
//   backend --> Endpoint --> on_data(session, bytes, answered) / on_close(session)
//
// `answered` is how many of the session's request bytes the backend has now answered (each
// request line gets exactly one TLPDU flagged kAnswer): the count an XTCP front end may
// acknowledge to its client with the answer. Session lifecycle rules are in docs/netpdu.md.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "netpdu/endpoint.h"
#include "netpdu/net.h"

namespace xtcp::netpdu {

struct BackendClientCallbacks {
  // Bytes for the session's client (a slice of a received buffer: copy the Payload to keep
  // it). `answered`: request bytes answered by this TLPDU, 0 for notifications.
  std::function<void(std::uint64_t session, const Payload& bytes, std::size_t answered)> on_data;
  // The backend ended the session: close the client (the CLOSE reply is already sent).
  std::function<void(std::uint64_t session)> on_close;
  // Backpressure released: sends refused with -EAGAIN may be retried.
  std::function<void()> on_space;
};

class BackendClient {
 public:
  BackendClient(const Transport& t, const EndpointConfig& base, const Clock& clock, BackendClientCallbacks callbacks);
  // Connects (variant 1 when data_transports == 0, else a bundle) and handshakes.
  static std::unique_ptr<BackendClient> connect(const Address& backend, int data_transports,
                                                const HandshakeLimits& limits, const EndpointConfig& base,
                                                const Clock& clock, BackendClientCallbacks callbacks,
                                                std::string* error);

  // Starts a session for a new client: *id gets a fresh id (never reused). 0 or -EAGAIN
  // (backpressure: try again on on_space) or the endpoint's failure.
  int open_session(std::uint64_t* id);
  // Forwards the client's bytes without copying (released once written). Larger than one
  // TLPDU: split into several, all or nothing. -EAGAIN: nothing queued, stop reading this
  // client (and do not acknowledge) until on_space. -ENOENT: no such open session.
  int send(std::uint64_t session, Payload bytes);
  // The client went away: CLOSE goes to the backend; answers still in flight are dropped.
  int close_session(std::uint64_t session);

  Endpoint& endpoint() { return *ep_; }
  // Flushes, retries CLOSE replies that met backpressure; call once per loop turn.
  void poll_timers();
  std::size_t sessions() const { return sessions_.size(); }
  // Request lines sent on the session and not answered yet (0 for an unknown session).
  std::size_t unanswered_lines(std::uint64_t session) const;
  std::uint64_t dropped_after_close() const { return dropped_after_close_; }

 private:
  struct Session {
    std::uint32_t tx_seq = 0;
    std::uint32_t rx_seq = 0;
    bool closing = false;             // we sent CLOSE; waiting for the backend's
    std::uint64_t forwarded = 0;      // request bytes sent
    std::uint64_t answered_upto = 0;  // request bytes answered
    std::deque<std::uint64_t> line_ends;  // stream offsets just past each '\n' not yet answered
  };

  Verdict on_tlpdu(const Tlpdu& t);
  void send_close_replies();
  int submit(std::uint64_t id, Session& s, TlpduType type, Payload p);

  std::unique_ptr<Endpoint> ep_;
  BackendClientCallbacks cb_;
  std::unordered_map<std::uint64_t, Session> sessions_;
  std::uint64_t next_id_ = 1;
  std::deque<std::pair<std::uint64_t, std::uint32_t>> pending_close_replies_;  // id, seq
  std::uint64_t dropped_after_close_ = 0;
};

}  // namespace xtcp::netpdu
