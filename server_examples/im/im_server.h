// xtcp-im's server loop on the xtcp C API: one group per port with '\n' framing, so each
// xtcp_recv returns whole request lines of one connection; ImCore turns them into answers
// (sent with ackd = the lines consumed, so the ACK rides on the answer) and pushes (ackd 0).
// The group sends whole answers or nothing (XTCP_OPT_SEND_ALL); what the transmit cache
// refuses waits in an Outbox with its ackd and leaves when xtcp_writable names the
// connection, so a refused answer still carries its request's ACK.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "server_examples/common/outbox.h"
#include "server_examples/common/server_flags.h"
#include "server_examples/im/im_core.h"

namespace xtcp_examples {

// Framed messages longer than this reset the connection (XTCP_OPT_MAX_MESSAGE); lines
// between kImMaxLine and this are answered ERR line-too-long.
inline constexpr std::size_t kImMaxMessage = 8192;
// Answers and pushes waiting for a full transmit cache, per connection; past it the
// connection is closed as a slow consumer.
inline constexpr std::size_t kImMaxBacklog = 1u << 20;
// The largest piece one xtcp_send takes (a longer answer, a big LIST, goes in pieces):
// this, or a quarter of the transmit cache when that is smaller.
inline constexpr std::size_t kImMaxPiece = 64 * 1024;
// The piece size for the transmit cache the pool has now (after xtcp_initialize).
std::size_t im_piece_size();

struct ImServerStats {
  std::uint64_t accepted = 0;
  std::uint64_t client_closes = 0;   // xtcp_recv reported the client's FIN
  std::uint64_t quits = 0;           // QUIT
  std::uint64_t resets = 0;          // -ECONNRESET / -ETIMEDOUT
  std::uint64_t slow_consumers = 0;  // closed because their backlog passed kImMaxBacklog
  std::uint64_t recv_calls = 0;      // xtcp_recv calls that returned data
  std::uint64_t recv_errors = 0;     // other xtcp_recv errors (-EMSGSIZE, ...)
  std::uint64_t bytes_in = 0;
};

class ImServer {
 public:
  ImServer() = default;
  ~ImServer() { close(); }
  ImServer(const ImServer&) = delete;
  ImServer& operator=(const ImServer&) = delete;

  // Opens the group on port in the default pool (after xtcp_initialize) and sets its
  // options. 0, or a negative errno with *what naming the call that failed.
  int open(std::uint16_t port, std::string* what);
  // One round: xtcp_select (at most timeout_ms), accept, send what waits for connections
  // xtcp_writable names, serve every connection with requests (bounded per round). 0 or
  // xtcp_select's error.
  int run_once(int timeout_ms);
  // Closes the group (its connections are reset). Idempotent.
  void close();

  // Who hears of logins and logouts (ImCore::Presence); before or after open().
  void set_presence(ImCore::Presence p) { core_.set_presence(p); }

  int group() const { return gd_; }
  std::size_t connections() const { return conns_.size(); }
  const ImCore& core() const { return core_; }
  const ImServerStats& stats() const { return stats_; }
  const Outbox* outbox() const { return outbox_ ? &*outbox_ : nullptr; }
  // The "im.<name>" counters.
  void counters(std::vector<Counter>* out) const;
  // "im.<name> <value>" lines.
  void print_counters(std::FILE* out) const;

 private:
  struct Conn {
    bool discarding = false;  // inside a line longer than the receive buffer
    bool quit = false;        // QUIT answered: later bytes are dropped (and acknowledged)
  };
  void accept_all();
  void serve_requests();
  void on_data(int cd, std::size_t n);
  void on_end(int cd, int rc);
  void send_pushes();
  // Closes cd once its waiting answers are out (now if none).
  void close_when_flushed(int cd);
  void close_now(int cd);
  void finish_closing();

  int gd_ = -1;
  ImCore core_;
  std::optional<Outbox> outbox_;  // set once the group is open
  std::unordered_map<int, Conn> conns_;
  std::vector<char> buf_;
  std::string reply_;
  std::vector<ImPush> pushes_;
  ImServerStats stats_;
};

}  // namespace xtcp_examples
