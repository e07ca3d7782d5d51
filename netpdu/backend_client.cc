// BackendClient: session ids and sequence numbers, request-line accounting for the ACK
// the answer carries, and the CLOSE handshake toward the backend.
#include "netpdu/backend_client.h"

#include <cerrno>
#include <cstring>

namespace xtcp::netpdu {

BackendClient::BackendClient(const Transport& t, const EndpointConfig& base, const Clock& clock,
                             BackendClientCallbacks callbacks)
    : cb_(std::move(callbacks)) {
  ep_ = Endpoint::open(t, base, clock, [this](const Tlpdu& x) { return on_tlpdu(x); });
  ep_->set_on_space([this] {
    if (cb_.on_space) {
      cb_.on_space();
    }
  });
}

std::unique_ptr<BackendClient> BackendClient::connect(const Address& backend, int data_transports,
                                                      const HandshakeLimits& limits, const EndpointConfig& base,
                                                      const Clock& clock, BackendClientCallbacks callbacks,
                                                      std::string* error) {
  auto t = open_transport(backend, limits, data_transports, 5000, error);
  if (!t) {
    return nullptr;
  }
  return std::make_unique<BackendClient>(*t, base, clock, std::move(callbacks));
}

int BackendClient::submit(std::uint64_t id, Session& s, TlpduType type, Payload p) {
  TlpduMeta m;
  m.type = type;
  m.session = id;
  m.seq = s.tx_seq;
  const int rc = ep_->submit(m, std::move(p));
  if (rc == 0) {
    ++s.tx_seq;
  }
  return rc;
}

int BackendClient::open_session(std::uint64_t* id) {
  Session s;
  const int rc = submit(next_id_, s, TlpduType::kOpen, Payload{});
  if (rc != 0) {
    return rc;
  }
  *id = next_id_++;
  sessions_.emplace(*id, std::move(s));
  return 0;
}

int BackendClient::send(std::uint64_t session, Payload bytes) {
  auto it = sessions_.find(session);
  if (it == sessions_.end() || it->second.closing) {
    return -ENOENT;
  }
  Session& s = it->second;
  const std::size_t max = ep_->max_payload_bytes();
  const std::size_t chunks = bytes.size() == 0 ? 0 : (bytes.size() + max - 1) / max;
  if (chunks == 0) {
    return 0;
  }
  if (!ep_->can_accept(bytes.size(), chunks)) {
    return -EAGAIN;
  }
  for (std::size_t off = 0; off < bytes.size(); off += max) {
    Payload part;
    part.bytes = bytes.bytes.subspan(off, std::min(max, bytes.size() - off));
    part.owner = bytes.owner;
    const int rc = submit(session, s, TlpduType::kData, std::move(part));
    if (rc != 0) {
      return rc;  // only a failed endpoint gets here: can_accept reserved the room
    }
  }
  const char* p = reinterpret_cast<const char*>(bytes.bytes.data());
  for (std::size_t i = 0; i < bytes.size();) {
    const void* nl = std::memchr(p + i, '\n', bytes.size() - i);
    if (nl == nullptr) {
      break;
    }
    i = static_cast<std::size_t>(static_cast<const char*>(nl) - p) + 1;
    s.line_ends.push_back(s.forwarded + i);
  }
  s.forwarded += bytes.size();
  return 0;
}

int BackendClient::close_session(std::uint64_t session) {
  auto it = sessions_.find(session);
  if (it == sessions_.end() || it->second.closing) {
    return -ENOENT;
  }
  const int rc = submit(session, it->second, TlpduType::kClose, Payload{});
  if (rc == 0) {
    it->second.closing = true;
    it->second.line_ends.clear();
  }
  return rc;
}

std::size_t BackendClient::unanswered_lines(std::uint64_t session) const {
  const auto it = sessions_.find(session);
  return it == sessions_.end() ? 0 : it->second.line_ends.size();
}

Verdict BackendClient::on_tlpdu(const Tlpdu& t) {
  auto it = sessions_.find(t.meta.session);
  if (it == sessions_.end()) {
    return Verdict::kUnknownSession;
  }
  Session& s = it->second;
  if (t.meta.type == TlpduType::kOpen) {
    return Verdict::kReject;  // the backend never opens sessions
  }
  if (t.meta.seq != s.rx_seq) {
    return Verdict::kBadSequence;
  }
  if (t.meta.type == TlpduType::kClose) {
    if (s.closing) {
      sessions_.erase(it);  // both CLOSEs seen: the id is forgotten
      return Verdict::kAccept;
    }
    // Backend-initiated: reply CLOSE (retried by poll_timers under backpressure), tell the
    // front end, forget the id.
    pending_close_replies_.emplace_back(t.meta.session, s.tx_seq);
    sessions_.erase(it);
    send_close_replies();
    if (cb_.on_close) {
      cb_.on_close(t.meta.session);
    }
    return Verdict::kAccept;
  }
  ++s.rx_seq;
  if (s.closing) {
    ++dropped_after_close_;
    return Verdict::kAccept;
  }
  std::size_t answered = 0;
  if ((t.meta.flags & tlpdu_flags::kAnswer) != 0) {
    if (s.line_ends.empty()) {
      --s.rx_seq;
      return Verdict::kReject;  // an answer to no request
    }
    answered = static_cast<std::size_t>(s.line_ends.front() - s.answered_upto);
    s.answered_upto = s.line_ends.front();
    s.line_ends.pop_front();
  }
  if (cb_.on_data) {
    cb_.on_data(t.meta.session, t.payload, answered);
  }
  return Verdict::kAccept;
}

void BackendClient::poll_timers() {
  send_close_replies();
  ep_->poll_timers();
}

void BackendClient::send_close_replies() {
  while (!pending_close_replies_.empty()) {
    TlpduMeta m;
    m.type = TlpduType::kClose;
    m.session = pending_close_replies_.front().first;
    m.seq = pending_close_replies_.front().second;
    if (ep_->submit(m, Payload{}) != 0) {
      break;
    }
    pending_close_replies_.pop_front();
  }
}

}  // namespace xtcp::netpdu
