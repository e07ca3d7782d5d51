// ImBackend: the IM command handlers, per-session line buffering and sequence checks, the
// CLOSE handshake, presence fan-out and backpressure (stall a session, stop its transport).
#include "netpdu/backend/im_backend.h"

#include <cerrno>

namespace xtcp::netpdu {

namespace {
// Room reserved before each request line: the largest answer (LIST) plus a FROM to the
// same transport.
constexpr std::size_t kAnswerReserve = 8 * 1024;
}  // namespace

bool valid_im_name(std::string_view name) {
  if (name.empty() || name.size() > 32) {
    return false;
  }
  for (char ch : name) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                    ch == '.' || ch == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

ImBackend::ImBackend(const ImBackendConfig& config, const Clock& clock) : config_(config), clock_(clock) {}

ImBackend::~ImBackend() = default;

void ImBackend::add_transport(const Transport& t) {
  auto c = std::make_unique<Conn>();
  c->id = next_conn_++;
  Conn* raw = c.get();
  c->ep = Endpoint::open(t, config_.endpoint, clock_, [this, raw](const Tlpdu& x) { return on_tlpdu(*raw, x); });
  for (int fd : c->ep->fds()) {
    fd_conn_[fd] = c->id;
  }
  log_.push_back("transport " + std::to_string(c->id) + " up (" +
                 (t.negotiated.role == Role::kSingle ? std::string("variant 1")
                                                     : "variant 2, " + std::to_string(t.data_fds.size()) + " data") +
                 ", max aggregation " + std::to_string(t.negotiated.max_pdu_bytes) + ")");
  conns_.emplace(c->id, std::move(c));
}

bool ImBackend::has_room(const Conn& c) const { return c.ep->can_accept(kAnswerReserve, 2); }

Verdict ImBackend::on_tlpdu(Conn& c, const Tlpdu& t) {
  auto it = c.sessions.find(t.meta.session);
  if (t.meta.type == TlpduType::kOpen) {
    if (it != c.sessions.end()) {
      return Verdict::kReject;
    }
    Session s;
    s.rx_seq = t.meta.seq + 1;
    c.sessions.emplace(t.meta.session, std::move(s));
    return Verdict::kAccept;
  }
  if (it == c.sessions.end()) {
    return Verdict::kUnknownSession;
  }
  Session& s = it->second;
  if (t.meta.seq != s.rx_seq) {
    return Verdict::kBadSequence;
  }
  if (t.meta.type == TlpduType::kClose) {
    if (!s.closing) {
      // The client went away: log out, answer with our CLOSE, forget the id.
      if (!c.ep->can_accept(0, 1)) {
        return Verdict::kRetryLater;
      }
      logout(s);
      send(c, t.meta.session, s, TlpduType::kClose, 0, {});
    }
    if (c.stalled && c.stalled_session == t.meta.session) {
      c.stalled = false;
    }
    c.sessions.erase(it);
    return Verdict::kAccept;
  }
  // DATA
  if (s.closing) {
    ++s.rx_seq;  // in flight before our CLOSE reached the front end
    return Verdict::kAccept;
  }
  if (c.stalled || !has_room(c)) {
    return Verdict::kRetryLater;
  }
  ++s.rx_seq;
  s.buf.append(reinterpret_cast<const char*>(t.payload.bytes.data()), t.payload.size());
  process_lines(c, t.meta.session, s);
  return Verdict::kAccept;
}

void ImBackend::process_lines(Conn& c, std::uint64_t sid, Session& s) {
  std::size_t start = 0;
  while (!s.closing) {
    const std::size_t nl = s.buf.find('\n', start);
    if (nl == std::string::npos) {
      break;
    }
    if (nl - start > config_.max_line) {
      break;  // handled below, with the over-long tail
    }
    if (!has_room(c)) {
      c.stalled = true;  // the rest waits for room (poll_timers); the transport is not read meanwhile
      c.stalled_session = sid;
      s.buf.erase(0, start);
      return;
    }
    std::string_view line(s.buf.data() + start, nl - start);
    start = nl + 1;
    handle_line(c, sid, s, line);
  }
  if (s.closing) {
    s.buf.clear();
    return;
  }
  s.buf.erase(0, start);
  const std::size_t nl = s.buf.find('\n');
  if ((nl == std::string::npos ? s.buf.size() : nl) > config_.max_line) {
    end_session(c, sid, s, "ERR line-too-long\n");
  }
  c.stalled = false;
}

int ImBackend::send(Conn& c, std::uint64_t sid, Session& s, TlpduType type, std::uint8_t flags, std::string text) {
  TlpduMeta m;
  m.type = type;
  m.flags = flags;
  m.session = sid;
  m.seq = s.tx_seq;
  Payload p;
  if (!text.empty()) {
    auto owned = std::make_shared<std::string>(std::move(text));
    p.bytes = ByteSpan(reinterpret_cast<const std::byte*>(owned->data()), owned->size());
    p.owner = std::move(owned);
  }
  const int rc = c.ep->submit(m, std::move(p));
  if (rc == 0) {
    ++s.tx_seq;
  }
  return rc;
}

void ImBackend::answer(Conn& c, std::uint64_t sid, Session& s, std::string text) {
  send(c, sid, s, TlpduType::kData, tlpdu_flags::kAnswer, std::move(text));  // room was reserved
}

void ImBackend::end_session(Conn& c, std::uint64_t sid, Session& s, const std::string& why) {
  send(c, sid, s, TlpduType::kData, 0, why);
  send(c, sid, s, TlpduType::kClose, 0, {});
  logout(s);
  s.closing = true;
  s.buf.clear();
}

void ImBackend::logout(Session& s) {
  if (s.name.empty()) {
    return;
  }
  const std::string name = std::move(s.name);
  s.name.clear();
  users_.erase(name);
  broadcast_presence(name, false);
}

void ImBackend::broadcast_presence(const std::string& name, bool online) {
  const std::string text = "PRESENCE " + name + (online ? " online\n" : " offline\n");
  for (auto& [uname, ref] : users_) {
    if (uname == name) {
      continue;
    }
    auto cit = conns_.find(ref.conn);
    if (cit == conns_.end()) {
      continue;
    }
    Conn& tc = *cit->second;
    auto sit = tc.sessions.find(ref.session);
    if (sit == tc.sessions.end() || !tc.ep->can_accept(text.size() + kAnswerReserve, 2)) {
      ++stats_.presence_dropped;  // never buffered beyond the transport's bound
      continue;
    }
    if (send(tc, ref.session, sit->second, TlpduType::kData, 0, text) == 0) {
      ++stats_.presence_sent;
    } else {
      ++stats_.presence_dropped;
    }
  }
}

void ImBackend::handle_line(Conn& c, std::uint64_t sid, Session& s, std::string_view line) {
  ++stats_.requests;
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
  }
  if (line.empty()) {
    answer(c, sid, s, {});  // the answer carries no text, only the acknowledgement
    return;
  }
  const std::size_t sp = line.find(' ');
  const std::string_view cmd = line.substr(0, sp);
  const std::string_view rest = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);

  if (cmd == "LOGIN") {
    if (!s.name.empty()) {
      answer(c, sid, s, "ERR already-logged-in\n");
    } else if (!valid_im_name(rest)) {
      answer(c, sid, s, "ERR bad-name\n");
    } else if (users_.count(std::string(rest)) != 0) {
      answer(c, sid, s, "ERR name-taken " + std::string(rest) + "\n");
    } else {
      s.name = std::string(rest);
      users_.emplace(s.name, UserRef{c.id, sid});
      answer(c, sid, s, "OK LOGIN " + s.name + "\n");
      broadcast_presence(s.name, true);
    }
    return;
  }
  if (cmd == "MSG") {
    if (s.name.empty()) {
      answer(c, sid, s, "ERR not-logged-in\n");
      return;
    }
    const std::size_t sp2 = rest.find(' ');
    const std::string to(rest.substr(0, sp2));
    const std::string_view text = sp2 == std::string_view::npos ? std::string_view() : rest.substr(sp2 + 1);
    if (!valid_im_name(to)) {
      answer(c, sid, s, "ERR bad-syntax\n");
      return;
    }
    auto u = users_.find(to);
    if (u == users_.end()) {
      answer(c, sid, s, "ERR no-such-user " + to + "\n");
      return;
    }
    auto cit = conns_.find(u->second.conn);
    Session* ts = nullptr;
    if (cit != conns_.end()) {
      auto sit = cit->second->sessions.find(u->second.session);
      ts = sit == cit->second->sessions.end() ? nullptr : &sit->second;
    }
    std::string from = "FROM " + s.name + " ";
    from.append(text);
    from.push_back('\n');
    // The FROM must fit without eating the room reserved for answers on its transport.
    if (ts == nullptr || !cit->second->ep->can_accept(from.size() + kAnswerReserve, 3) ||
        send(*cit->second, u->second.session, *ts, TlpduType::kData, 0, std::move(from)) != 0) {
      ++stats_.busy_refusals;
      answer(c, sid, s, "ERR busy " + to + "\n");
      return;
    }
    ++stats_.messages;
    answer(c, sid, s, "OK MSG " + to + "\n");
    return;
  }
  if (cmd == "LIST" && rest.empty()) {
    std::string out = "USERS " + std::to_string(users_.size());
    std::size_t shown = 0;
    for (const auto& [name, ref] : users_) {
      if (shown++ == config_.list_limit) {
        break;
      }
      out += ' ';
      out += name;
    }
    out += '\n';
    answer(c, sid, s, std::move(out));
    return;
  }
  if (cmd == "LOGOUT" && rest.empty()) {
    if (s.name.empty()) {
      answer(c, sid, s, "ERR not-logged-in\n");
      return;
    }
    logout(s);
    answer(c, sid, s, "OK LOGOUT\n");
    return;
  }
  answer(c, sid, s, "ERR unknown-command\n");
}

void ImBackend::handle(int fd, short revents) {
  auto it = fd_conn_.find(fd);
  if (it == fd_conn_.end()) {
    return;
  }
  auto cit = conns_.find(it->second);
  if (cit != conns_.end()) {
    cit->second->ep->handle(fd, revents);
  }
}

void ImBackend::poll_timers() {
  std::vector<std::uint32_t> dead;
  for (auto& [id, c] : conns_) {
    if (c->ep->state() != Endpoint::State::kOpen) {
      dead.push_back(id);
    }
  }
  for (auto id : dead) {
    retire(id);
  }
  for (auto& [id, c] : conns_) {
    // Answers were refused room (the sink said kRetryLater, or a session stalled mid-way):
    // go on once the aggregator has written enough.
    if ((c->stalled || c->ep->delivery_blocked()) && has_room(*c)) {
      if (c->stalled) {
        auto sit = c->sessions.find(c->stalled_session);
        if (sit == c->sessions.end()) {
          c->stalled = false;
        } else {
          process_lines(*c, c->stalled_session, sit->second);
        }
      }
      if (!c->stalled && c->ep->delivery_blocked()) {
        c->ep->resume();
      }
    }
    c->ep->poll_timers();
  }
}

void ImBackend::retire(std::uint32_t id) {
  auto it = conns_.find(id);
  Conn& c = *it->second;
  const bool clean = c.ep->state() == Endpoint::State::kClosed;
  if (!clean) {
    ++stats_.transports_failed;
  }
  log_.push_back("transport " + std::to_string(id) + (clean ? " closed" : " failed: " + c.ep->error_message()) + ", " +
                 std::to_string(c.sessions.size()) + " sessions dropped");
  for (int fd : c.ep->fds()) {
    fd_conn_.erase(fd);
  }
  std::vector<std::string> names;
  for (auto& [sid, s] : c.sessions) {
    if (!s.name.empty()) {
      users_.erase(s.name);
      names.push_back(std::move(s.name));
    }
  }
  conns_.erase(it);
  for (const auto& n : names) {
    broadcast_presence(n, false);
  }
}

void ImBackend::pollfds(std::vector<pollfd>* out) const {
  for (const auto& [id, c] : conns_) {
    c->ep->pollfds(out);
  }
}

TimeNs ImBackend::next_deadline() const {
  TimeNs t = kNever;
  for (const auto& [id, c] : conns_) {
    t = std::min(t, c->ep->next_deadline());
  }
  return t;
}

}  // namespace xtcp::netpdu
