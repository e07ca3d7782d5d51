// The instant-messaging backend behind NetPDU transports: the client protocol of
// docs/im-protocol.md (the one xtcp-im speaks itself), served for client sessions that
// front ends forward; the NetPDU side is in docs/netpdu.md.
//
//   front end --TLPDUs--> Endpoint --sink--> session line buffer --> LOGIN/MSG/LIST/QUIT
//   answer (last TLPDU flagged kAnswer) --> same session; FROM/ONLINE/OFFLINE --> targets
//
// Backpressure: a line whose answer (or whose FROM, on the target's transport) cannot be
// queued waits, and its transport is not read meanwhile (kRetryLater); nothing is buffered
// beyond the transports' bounds. ONLINE/OFFLINE wait for room too (a LOGIN waits for them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "netpdu/endpoint.h"

namespace xtcp::netpdu {

struct ImBackendConfig {
  EndpointConfig endpoint;
  std::size_t max_line = 1024;               // longer lines: ERR line-too-long (line dropped)
  std::size_t max_frame = 8192;              // a line longer than this ends the session
  std::size_t max_list_bytes = 1024 * 1024;  // a longer LIST answer: ERR list-too-long
};

struct ImBackendStats {
  std::uint64_t requests = 0;
  std::uint64_t logins = 0;
  std::uint64_t logouts = 0;            // QUIT, session end, or the front end's transport lost
  std::uint64_t errors = 0;             // ERR answers
  std::uint64_t messages = 0;           // FROM delivered
  std::uint64_t presence_sent = 0;
  std::uint64_t presence_waits = 0;     // a fan-out paused for a full target transport
  std::uint64_t stalls = 0;             // a line waited for room
  std::uint64_t sessions_ended = 0;     // QUIT, or a line that cannot be framed
  std::uint64_t transports_failed = 0;
};

class ImBackend {
 public:
  ImBackend(const ImBackendConfig& config, const Clock& clock);
  ~ImBackend();
  ImBackend(const ImBackend&) = delete;
  ImBackend& operator=(const ImBackend&) = delete;

  // Adopts a handshaken front-end transport.
  void add_transport(const Transport& t);
  void handle(int fd, short revents);
  // Latency bounds, resumes, retiring closed/failed transports (their users log out).
  void poll_timers();
  void pollfds(std::vector<pollfd>* out) const;
  TimeNs next_deadline() const;

  std::size_t transports() const { return conns_.size(); }
  std::size_t logged_in() const { return users_.size(); }
  std::vector<std::string> take_log() { return std::exchange(log_, {}); }
  const ImBackendStats& stats() const { return stats_; }

 private:
  struct Session {
    std::string name;  // empty until LOGIN
    std::string buf;   // bytes not yet forming a complete line
    std::uint32_t rx_seq = 0;
    std::uint32_t tx_seq = 0;
    bool closing = false;  // we sent CLOSE; waiting for the front end's
  };
  // What a stalled line waits for: room on a transport (its own, or a MSG target's) or the
  // presence queue to empty (a LOGIN).
  struct Wait {
    enum What : std::uint8_t { kTransport, kPresence } what = kTransport;
    std::uint32_t conn = 0;
  };
  struct Conn {
    std::uint32_t id = 0;
    std::unique_ptr<Endpoint> ep;
    std::unordered_map<std::uint64_t, Session> sessions;
    bool stalled = false;  // stalled_session has complete lines waiting for room
    std::uint64_t stalled_session = 0;
    Wait waits_for;        // what the stalled line needs besides room for its answer
  };
  struct UserRef {
    std::uint32_t conn;
    std::uint64_t session;
  };

  Verdict on_tlpdu(Conn& c, const Tlpdu& t);
  bool has_room(const Conn& c) const;
  void process_lines(Conn& c, std::uint64_t sid, Session& s);
  // false: it needs room that is not there; nothing was done, try again later.
  bool handle_line(Conn& c, std::uint64_t sid, Session& s, std::string_view line);
  int send(Conn& c, std::uint64_t sid, Session& s, TlpduType type, std::uint8_t flags, std::string text);
  void answer(Conn& c, std::uint64_t sid, Session& s, std::string text);
  // Queues ONLINE/OFFLINE name for every other logged-in user and sends what fits.
  void broadcast_presence(const std::string& name, bool online);
  // Sends queued presence in order while the targets' transports have room; true when
  // nothing is left (a LOGIN waits until then).
  bool pump_presence();
  bool room_on(std::uint32_t conn) const;
  // A stalled or blocked transport whose wait is over: poll_timers would go on with it.
  bool can_go_on(const Conn& c) const;
  // poll_timers has something to do now (a wait ended, a transport to retire).
  bool work_ready() const;
  void logout(Session& s);
  void end_session(Conn& c, std::uint64_t sid, Session& s);
  void retire(std::uint32_t id);

  ImBackendConfig config_;
  const Clock& clock_;
  std::uint32_t next_conn_ = 1;
  std::unordered_map<std::uint32_t, std::unique_ptr<Conn>> conns_;
  std::unordered_map<int, std::uint32_t> fd_conn_;
  std::map<std::string, UserRef> users_;  // ordered: LIST shows names sorted
  struct PresenceEvent {
    std::string name;
    bool online = false;
    std::string next;  // the fan-out goes on at the first user not before this name
  };
  std::deque<PresenceEvent> presence_;  // at most one per user plus one ONLINE
  std::uint32_t presence_waits_for_ = 0;  // the transport the fan-out waits for
  std::vector<std::string> log_;
  ImBackendStats stats_;
};

// True for 1..32 characters of [A-Za-z0-9_.-].
bool valid_im_name(std::string_view name);

}  // namespace xtcp::netpdu
