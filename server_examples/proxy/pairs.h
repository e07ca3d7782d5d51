// The pairs of xtcp-proxy: each client connection accepted on the client group is bound to
// one connection the same stack opens (xtcp_connect) to a server, and bytes move between
// the two by pushing, with no buffer of the proxy's own:
//
//   bytes arrive on half A (held unacknowledged in A's receive pool)
//     --xtcp_recv(A)--> xtcp_send(B, the bytes)     queued in the shared transmit cache
//     --queued n-->     xtcp_send(A, ackd n)        only now do they leave A's pool: A's
//                                                   window opens by what B could take
//   B refused (the cache, or B's share of it, --pair-buffer, is full): A's bytes stay in
//   A's pool, A's advertised window closes, and the sender behind A stops: the data backs
//   up there. When B's peer ACKs and frees room, B becomes writable (xtcp_writable) and
//   A's held bytes are offered again (xtcp_redeliver): the push resumes.
//
// Each direction ends by itself: a FIN from one peer becomes a FIN toward the other
// (xtcp_shutdown) after the last byte; once both directions ended the pair is released
// (the stack finishes the closes, and keeps only its compact TIME-WAIT entries). A reset
// on either side resets the other (xtcp_abort). A server that refuses or does not answer
// within the connect timeout is marked down and the client goes on to the next one; with
// none left, it is reset.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "server_examples/proxy/balancer.h"
#include "server_examples/proxy/proxy_protocol.h"
#include "tools/cli/cli.h"

namespace xtcp_proxy {

struct ProxyOptions {
  std::uint32_t listen_addr = 0;  // host order: the proxy's address, for the PROXY header
  std::uint16_t listen_port = 0;
  ProxyHeader header = ProxyHeader::kNone;
  std::uint64_t max_pairs = 0;            // 0: as many as the stack holds
  Clock::duration connect_timeout = std::chrono::seconds(3);
  Clock::duration idle_timeout{0};        // 0: never
};

class PairTable {
 public:
  // client_gd: the listening group; server_gd: a group without port for the connects. Both
  // must already report writable connections (xtcp_writable called once).
  PairTable(int client_gd, int server_gd, Balancer* balancer, const ProxyOptions& options);

  // One round: waits up to timeout_ms (xtcp_select) and does all that is ready: accepts,
  // writable connections, bytes and ends, connect and idle timeouts. 0 or xtcp_select's error.
  int run_once(int timeout_ms);

  // "proxy.*" counters.
  void counters(std::vector<xtcp::cli::Counter>* out) const;
  std::uint64_t pairs_open() const { return open_; }
  std::uint64_t pairs_total() const { return total_; }

 private:
  enum Side : std::uint8_t { kClient = 0, kServer = 1 };
  struct Half {
    int cd = 0;
    bool waits = false;        // its held bytes wait for room on the other half
    bool eof_pending = false;  // its peer's FIN came while bytes were held or the server connects
    bool eof_done = false;     // its peer's FIN was passed on (FIN toward the other peer)
  };
  struct Pair {
    Half half[2];
    bool in_use = false;
    bool connecting = false;
    std::int8_t server = -1;  // index in the balancer, -1: none
    std::uint32_t attempt = 0;  // its current connect (next_attempt_): older timeout entries are stale
    TriedSet tried = 0;
    std::uint32_t client_addr = 0;  // host order
    std::uint16_t client_port = 0;
    Clock::time_point last_active{};
    std::unique_ptr<std::string> header_left;  // a PROXY header the cache could not take whole
  };
  struct ConnectDeadline {
    std::uint32_t pair;
    std::uint32_t attempt;
    Clock::time_point at;
  };

  static Side other(Side s) { return s == kClient ? kServer : kClient; }
  static std::uint64_t tag(std::uint32_t pair, Side s) { return (static_cast<std::uint64_t>(pair) << 1 | s) + 1; }

  void accept_clients();
  void connect_next(std::uint32_t p);
  void connect_failed(std::uint32_t p, bool timed_out);
  void connected(std::uint32_t p);
  // The server's half can take the client's bytes (established, PROXY header queued):
  // what the client sent meanwhile is offered again, or its FIN passed on.
  void client_may_go(std::uint32_t p);
  void drain_writable(Side s);
  void drain_recv(Side s);
  void forward(std::uint32_t p, Side from, const char* data, std::size_t n);
  void send_header(Pair& pair);
  void on_end(std::uint32_t p, Side from);
  void pass_fin(std::uint32_t p, Side from);
  void on_error(std::uint32_t p, Side from, int error);
  void redeliver(Pair& pair, Side s);
  std::uint64_t held(const Pair& pair, Side s) const;
  void note_cached(const Pair& pair, Side s);
  void reset_both(std::uint32_t p);
  void finish(std::uint32_t p);
  void release(std::uint32_t p);
  void sweep_timeouts();
  int next_timer_ms() const;

  int gd_[2];
  Balancer* balancer_;
  ProxyOptions options_;
  std::deque<Pair> pairs_;  // stable addresses; slots reused from free_
  std::vector<std::uint32_t> free_;
  std::deque<ConnectDeadline> connect_deadlines_;  // in deadline order (one timeout for all)
  Clock::time_point next_idle_sweep_{};
  std::vector<char> buf_;
  std::uint32_t next_attempt_ = 0;  // numbers every connect, across pairs and their slots

  std::uint64_t open_ = 0;
  std::uint64_t total_ = 0;
  std::uint64_t bytes_[2] = {0, 0};          // to the server (from the client), to the client
  std::uint64_t connect_failures_ = 0;
  std::uint64_t connect_timeouts_ = 0;
  std::uint64_t failovers_ = 0;
  std::uint64_t reset_no_server_ = 0;
  std::uint64_t refused_limit_ = 0;
  std::uint64_t resets_from_[2] = {0, 0};
  std::uint64_t half_closes_from_[2] = {0, 0};
  std::uint64_t idle_timeouts_ = 0;
  std::uint64_t deferred_[2] = {0, 0};       // forwards that waited for room on the other half
  std::uint64_t cached_peak_ = 0;            // the most one half of a pair held in the cache
};

}  // namespace xtcp_proxy
