// The instant-messaging protocol of xtcp-im (docs/im-protocol.md), without any networking:
// request lines of a connection in -> the reply for that connection plus pushes (FROM,
// ONLINE, OFFLINE) for other connections out. The server loop (im_server.h) moves bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace xtcp_examples {

inline constexpr std::size_t kImMaxLine = 1024;  // bytes of a request line, '\n' excluded
inline constexpr std::size_t kImMaxName = 32;    // bytes of a user name
inline constexpr std::size_t kImMaxWatches = 1000;  // WATCHes of one connection

// A line for another connection (ends with '\n').
struct ImPush {
  int cd = 0;
  std::string line;
};

struct ImCounters {
  std::uint64_t requests = 0;
  std::uint64_t logins = 0;
  std::uint64_t logouts = 0;
  std::uint64_t messages = 0;          // MSG delivered to an online user
  std::uint64_t messages_offline = 0;  // MSG answered ERR offline
  std::uint64_t lists = 0;
  std::uint64_t watches = 0;           // WATCH requests accepted
  std::uint64_t errors = 0;            // every ERR answer
  std::uint64_t pushes = 0;            // FROM + ONLINE + OFFLINE lines
};

class ImCore {
 public:
  enum class After { kKeepOpen, kClose };
  // Who hears of logins and logouts: everyone logged in (kAll, a small chat room), or only
  // the connections that asked with WATCH name (kWatched: a contact list; with a million
  // users, telling everyone of every login is a million pushes per login).
  enum class Presence { kAll, kWatched };

  void set_presence(Presence p) { presence_ = p; }
  Presence presence() const { return presence_; }

  // Handles one request line of connection cd (without its '\n'; one trailing '\r' is
  // ignored). Appends the answer (always exactly one line) to *reply and lines for other
  // connections to *pushes. kClose after QUIT: the server closes once the reply is queued.
  After on_line(int cd, std::string_view line, std::string* reply, std::vector<ImPush>* pushes);
  // Connection cd ended (client FIN, reset, timeout, QUIT): logs its user out.
  void on_disconnect(int cd, std::vector<ImPush>* pushes);

  std::size_t online() const { return by_name_.size(); }
  // The user logged in on cd, or empty.
  std::string_view user_of(int cd) const;
  const ImCounters& counters() const { return counters_; }

  static bool valid_name(std::string_view name);

 private:
  void error(std::string* reply, std::string_view what);
  // ONLINE/OFFLINE of name: to everyone but cd (kAll), or to name's watchers (kWatched).
  void announce(int cd, const std::string& name, const std::string& line, std::vector<ImPush>* pushes);
  void broadcast(int except_cd, const std::string& line, std::vector<ImPush>* pushes);
  void forget_watches(int cd);

  std::unordered_map<int, std::string> by_cd_;  // logged-in connections
  std::map<std::string, int, std::less<>> by_name_;  // sorted for LIST
  Presence presence_ = Presence::kAll;
  std::unordered_map<std::string, std::vector<int>> watchers_;  // name -> connections watching it
  std::unordered_map<int, std::vector<std::string>> watching_;  // connection -> names it watches
  ImCounters counters_;
};

}  // namespace xtcp_examples
