// ImBackend: the IM command handlers (docs/im-protocol.md), per-session line buffering and
// sequence checks, the CLOSE handshake, presence fan-out and backpressure (a line that
// cannot be answered yet stalls its session and stops its transport).
#include "netpdu/backend/im_backend.h"

#include <algorithm>
#include <cerrno>

namespace xtcp::netpdu {

namespace {
// Room reserved on the requester's transport before each request line: any answer but
// LIST (checked for its real size) plus a FROM to the same transport.
constexpr std::size_t kAnswerReserve = 8 * 1024;

// The words of a line: separated by one or more spaces.
std::vector<std::string_view> words(std::string_view line, std::size_t max_words) {
  std::vector<std::string_view> w;
  std::size_t i = 0;
  while (i < line.size() && w.size() < max_words) {
    while (i < line.size() && line[i] == ' ') {
      ++i;
    }
    if (i == line.size()) {
      break;
    }
    const std::size_t end = std::min(line.find(' ', i), line.size());
    w.push_back(line.substr(i, end - i));
    i = end;
  }
  return w;
}
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
        if (!c.stalled) {
          c.waits_for = Wait{Wait::kTransport, c.id};
        }
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
    if (!c.stalled) {
      c.waits_for = Wait{Wait::kTransport, c.id};
    }
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
    if (nl - start > config_.max_frame) {
      end_session(c, sid, s);  // cannot be framed: the session ends, as xtcp-im resets it
      break;
    }
    if (!handle_line(c, sid, s, std::string_view(s.buf.data() + start, nl - start))) {
      // Waits for room (retried by poll_timers); the transport is not read meanwhile.
      if (!c.stalled) {
        ++stats_.stalls;
      }
      c.stalled = true;
      c.stalled_session = sid;
      s.buf.erase(0, start);
      return;
    }
    start = nl + 1;
  }
  c.stalled = false;
  if (s.closing) {
    s.buf.clear();
    return;
  }
  s.buf.erase(0, start);
  if (s.buf.size() > config_.max_frame) {
    end_session(c, sid, s);
  }
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
  if (text.rfind("ERR ", 0) == 0) {
    ++stats_.errors;
  }
  // Room was checked by the caller. An answer longer than one TLPDU goes in pieces; only
  // the last carries kAnswer, so "one flagged TLPDU per request line" holds.
  const std::size_t max = c.ep->max_payload_bytes();
  while (text.size() > max) {
    send(c, sid, s, TlpduType::kData, 0, text.substr(0, max));
    text.erase(0, max);
  }
  send(c, sid, s, TlpduType::kData, tlpdu_flags::kAnswer, std::move(text));
}

void ImBackend::end_session(Conn& c, std::uint64_t sid, Session& s) {
  send(c, sid, s, TlpduType::kClose, 0, {});
  logout(s);
  s.closing = true;
  s.buf.clear();
  ++stats_.sessions_ended;
}

void ImBackend::logout(Session& s) {
  if (s.name.empty()) {
    return;
  }
  const std::string name = std::move(s.name);
  s.name.clear();
  ++stats_.logouts;
  users_.erase(name);
  broadcast_presence(name, false);
}

void ImBackend::broadcast_presence(const std::string& name, bool online) {
  presence_.push_back(PresenceEvent{name, online, std::string()});
  pump_presence();
}

bool ImBackend::pump_presence() {
  while (!presence_.empty()) {
    PresenceEvent& e = presence_.front();
    const std::string text = (e.online ? "ONLINE " : "OFFLINE ") + e.name + "\n";
    // users_ is ordered by name: e.next is where an interrupted fan-out goes on. Users who
    // left meanwhile are simply not there; nobody can have arrived (LOGIN waits for this).
    for (auto it = users_.lower_bound(e.next); it != users_.end(); ++it) {
      if (it->first == e.name) {
        continue;
      }
      auto cit = conns_.find(it->second.conn);
      if (cit == conns_.end()) {
        continue;
      }
      Conn& tc = *cit->second;
      auto sit = tc.sessions.find(it->second.session);
      if (sit == tc.sessions.end()) {
        continue;
      }
      // Keep the transport's reserve for answers; without room the fan-out waits here.
      if (!tc.ep->can_accept(text.size() + kAnswerReserve, 3) ||
          send(tc, it->second.session, sit->second, TlpduType::kData, 0, text) != 0) {
        e.next = it->first;
        presence_waits_for_ = tc.id;
        ++stats_.presence_waits;
        return false;
      }
      ++stats_.presence_sent;
    }
    presence_.pop_front();
  }
  return true;
}

bool ImBackend::handle_line(Conn& c, std::uint64_t sid, Session& s, std::string_view line) {
  c.waits_for = Wait{Wait::kTransport, c.id};
  if (!has_room(c)) {
    return false;
  }
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
  }
  if (line.size() > config_.max_line) {
    ++stats_.requests;
    answer(c, sid, s, "ERR line-too-long\n");
    return true;
  }
  const auto w = words(line, 3);
  if (w.empty()) {
    ++stats_.requests;
    answer(c, sid, s, "ERR empty-line\n");
    return true;
  }
  const std::string_view cmd = w[0];
  if (cmd == "LOGIN") {
    if (!presence_.empty()) {
      // Presence is delivered in order and to exactly the users online at the time: a
      // new user waits until every earlier ONLINE/OFFLINE has gone out.
      c.waits_for = Wait{Wait::kPresence, 0};
      return false;
    }
    ++stats_.requests;
    if (!s.name.empty()) {
      answer(c, sid, s, "ERR already-logged-in\n");
    } else if (w.size() != 2 || !valid_im_name(w[1])) {
      answer(c, sid, s, "ERR bad-name\n");
    } else if (users_.count(std::string(w[1])) != 0) {
      answer(c, sid, s, "ERR name-taken\n");
    } else {
      s.name = std::string(w[1]);
      users_.emplace(s.name, UserRef{c.id, sid});
      ++stats_.logins;
      answer(c, sid, s, "OK\n");
      broadcast_presence(s.name, true);
    }
    return true;
  }
  if (cmd == "MSG") {
    if (s.name.empty()) {
      ++stats_.requests;
      answer(c, sid, s, "ERR not-logged-in\n");
      return true;
    }
    // MSG to text: `to` is the second word; the text is everything after the single space
    // that follows it, kept as sent, and must not be empty (docs/im-protocol.md).
    std::string_view text;
    std::size_t to_end = 0;
    if (w.size() >= 2) {
      to_end = static_cast<std::size_t>(w[1].data() - line.data()) + w[1].size();
      if (to_end + 1 < line.size()) {
        text = line.substr(to_end + 1);
      }
    }
    if (text.empty()) {
      ++stats_.requests;
      answer(c, sid, s, "ERR usage MSG to text\n");
      return true;
    }
    const std::string to(w[1]);
    auto u = users_.find(to);
    Conn* tc = nullptr;
    Session* ts = nullptr;
    if (u != users_.end()) {
      auto cit = conns_.find(u->second.conn);
      if (cit != conns_.end()) {
        auto sit = cit->second->sessions.find(u->second.session);
        if (sit != cit->second->sessions.end()) {
          tc = cit->second.get();
          ts = &sit->second;
        }
      }
    }
    if (ts == nullptr) {
      ++stats_.requests;
      answer(c, sid, s, "ERR offline\n");
      return true;
    }
    std::string from = "FROM " + s.name + " ";
    from.append(text);
    from.push_back('\n');
    // The FROM must fit without eating the room reserved for answers on its transport;
    // if it does not, the line waits (delivery is promised, buffering is bounded).
    if (!tc->ep->can_accept(from.size() + kAnswerReserve, 3)) {
      c.waits_for = Wait{Wait::kTransport, tc->id};
      return false;
    }
    ++stats_.requests;
    send(*tc, u->second.session, *ts, TlpduType::kData, 0, std::move(from));
    ++stats_.messages;
    answer(c, sid, s, "OK\n");
    return true;
  }
  if (cmd == "LIST") {
    if (s.name.empty()) {
      ++stats_.requests;
      answer(c, sid, s, "ERR not-logged-in\n");
      return true;
    }
    if (w.size() != 1) {
      ++stats_.requests;
      answer(c, sid, s, "ERR usage LIST\n");
      return true;
    }
    std::string out = "USERS";
    for (const auto& [name, ref] : users_) {  // std::map: sorted by byte value
      out += ' ';
      out += name;
      if (out.size() > config_.max_list_bytes) {
        break;
      }
    }
    out += '\n';
    if (out.size() > config_.max_list_bytes) {
      out = "ERR list-too-long\n";
    }
    const std::size_t pieces = out.size() / c.ep->max_payload_bytes() + 1;
    if (!c.ep->can_accept(out.size() + kAnswerReserve, pieces + 2)) {
      return false;
    }
    ++stats_.requests;
    answer(c, sid, s, std::move(out));
    return true;
  }
  if (cmd == "QUIT") {
    ++stats_.requests;
    answer(c, sid, s, "BYE\n");
    end_session(c, sid, s);  // logs out (OFFLINE to the others) and closes after BYE
    return true;
  }
  ++stats_.requests;
  answer(c, sid, s, "ERR unknown-command\n");
  return true;
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
  pump_presence();
  for (auto& [id, c] : conns_) {
    // Answers were refused room (the sink said kRetryLater, or a session stalled mid-way):
    // go on once what it waits for is there.
    if (can_go_on(*c)) {
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

bool ImBackend::room_on(std::uint32_t conn) const {
  auto it = conns_.find(conn);
  return it == conns_.end() || has_room(*it->second);  // a transport gone waits for nothing
}

bool ImBackend::can_go_on(const Conn& c) const {
  if (!c.stalled && !c.ep->delivery_blocked()) {
    return false;
  }
  if (!has_room(c)) {
    return false;
  }
  return c.waits_for.what == Wait::kPresence ? presence_.empty() : room_on(c.waits_for.conn);
}

bool ImBackend::work_ready() const {
  if (!presence_.empty() && room_on(presence_waits_for_)) {
    return true;
  }
  for (const auto& [id, c] : conns_) {
    if (c->ep->state() != Endpoint::State::kOpen || can_go_on(*c)) {
      return true;
    }
  }
  return false;
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
      ++stats_.logouts;
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
  // Work that waits for room, a resume or a retire is done by poll_timers, and nothing may
  // wake the caller's poll for it (a blocked receiver and an empty queue poll for nothing).
  if (work_ready()) {
    return 0;
  }
  TimeNs t = kNever;
  for (const auto& [id, c] : conns_) {
    t = std::min(t, c->ep->next_deadline());
  }
  return t;
}

}  // namespace xtcp::netpdu
