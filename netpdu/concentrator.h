// Cascaded aggregation (an inverted tree of links): a concentrator de-aggregates the
// NetPDU streams of several upstream transports and re-aggregates their TLPDUs into one
// downstream transport, and routes the answers back. Payloads are forwarded by reference.
//
//   upstream i: TLPDU(session s) --> downstream: TLPDU(session (s << bits) | i)
//   downstream: TLPDU(session d) --> upstream d & mask: TLPDU(session d >> bits)
//
// Each level takes `bits` low bits of the 64-bit id for its upstream index, so ids stay
// unambiguous at every level; a leaf's ids must stay below 2^(64 - sum of all levels' bits).
// Indices are never reused, so a late answer cannot reach a newer upstream.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "netpdu/endpoint.h"

namespace xtcp::netpdu {

struct ConcentratorConfig {
  unsigned index_bits = 16;  // 1..32: upstream transports over the concentrator's lifetime
  EndpointConfig upstream;    // limits are filled in from each upstream's handshake
  EndpointConfig downstream;
};

struct ConcentratorStats {
  std::uint64_t up_tlpdus = 0;           // forwarded upstream -> downstream
  std::uint64_t down_tlpdus = 0;         // forwarded downstream -> upstream
  std::uint64_t dropped_answers = 0;     // for an upstream that is gone
  std::uint64_t oversize_answers = 0;    // larger than the upstream's negotiated maximum
  std::uint64_t synthesized_closes = 0;  // CLOSE sent down for sessions of a dead upstream
};

class Concentrator {
 public:
  Concentrator(const Transport& downstream, const ConcentratorConfig& config, const Clock& clock);
  ~Concentrator();
  Concentrator(const Concentrator&) = delete;
  Concentrator& operator=(const Concentrator&) = delete;

  // Adopts a handshaken upstream transport. Returns its index, or -ENOSPC when all 2^bits
  // indices were used, or -EPIPE when the downstream is gone (the descriptors are closed).
  int add_upstream(const Transport& t);

  void handle(int fd, short revents);
  // Latency bounds, retiring dead upstreams (their open sessions get a CLOSE downstream).
  void poll_timers();
  void pollfds(std::vector<pollfd>* out) const;
  TimeNs next_deadline() const;

  bool failed() const { return failed_; }
  std::string error_message() const;
  std::size_t live_upstreams() const;
  bool upstream_open(std::uint32_t index) const;
  std::vector<std::string> take_log() { return std::exchange(log_, {}); }
  const ConcentratorStats& stats() const { return stats_; }

  static std::uint64_t down_id(std::uint64_t up_session, std::uint32_t index, unsigned bits) {
    return (up_session << bits) | index;
  }
  static std::uint32_t index_of(std::uint64_t down_session, unsigned bits) {
    return static_cast<std::uint32_t>(down_session & ((std::uint64_t{1} << bits) - 1));
  }
  static std::uint64_t up_id(std::uint64_t down_session, unsigned bits) { return down_session >> bits; }

 private:
  struct SessionState {
    std::uint32_t next_up_seq = 0;
    bool up_closed = false;    // the upstream sent CLOSE
    bool down_closed = false;  // the downstream sent CLOSE
  };
  struct Upstream {
    std::unique_ptr<Endpoint> ep;
    std::unordered_map<std::uint64_t, SessionState> sessions;
    bool blocked = false;  // its delivery waits for downstream room
  };
  struct PendingClose {
    std::uint64_t session;
    std::uint32_t seq;
  };

  Verdict from_upstream(std::uint32_t index, const Tlpdu& t);
  Verdict from_downstream(const Tlpdu& t);
  void retire(std::uint32_t index);
  void run_resumes();
  void send_pending_closes();
  void fail_all(const std::string& why);

  ConcentratorConfig config_;
  const Clock& clock_;
  std::unique_ptr<Endpoint> down_;
  std::vector<std::unique_ptr<Upstream>> ups_;  // by index; null once retired
  std::unordered_map<int, std::uint32_t> fd_index_;
  std::deque<PendingClose> pending_closes_;
  bool resume_ups_ = false;
  bool resume_down_ = false;
  bool failed_ = false;
  std::string error_;
  std::vector<std::string> log_;
  ConcentratorStats stats_;
};

}  // namespace xtcp::netpdu
