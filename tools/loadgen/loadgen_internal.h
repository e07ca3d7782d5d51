// Internal to the load generator: a client's state and the IM workload's table of messages
// in flight, shared by loadgen.cc (lifecycle) and loadgen_workloads.cc (what is sent and
// checked). Not installed.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "tools/loadgen/loadgen.h"

namespace xtcp::loadgen {

inline constexpr std::uint32_t kNoClient = UINT32_MAX;
inline constexpr std::uint32_t kNotReady = UINT32_MAX;

enum ClientState : std::uint8_t {
  kIdle = 0,        // no connection (not started yet, or between churned connections)
  kConnecting = 1,  // SYN sent
  kLoggingIn = 2,   // IM: LOGIN sent, waiting for OK
  kReady = 3,       // established (and logged in)
  kClosing = 4,     // closing on purpose (FIN sent, or IM QUIT sent)
};

// 40 bytes per client.
struct Loadgen::Client {
  ConnId conn = kNoConn;
  std::uint32_t gen = 0;         // bumped at every (re)connect and close: schedules carry it
  std::uint8_t state = kIdle;
  std::uint8_t awaiting = 0;     // IM: a MSG waits for its OK / ERR offline
  std::uint8_t last_target_gen = 0;
  std::uint32_t last_target = 0;  // IM: where the waiting MSG went
  std::uint32_t echo_left = 0;   // echo: bytes of the current message still to come back
  std::uint32_t seq = 0;         // IM: messages sent by this connection
  std::uint64_t echo_pos = 0;    // echo: stream offset of the next byte to come back
  TimeNs started_at = 0;         // connect: SYN time; echo: when the current message left
};

// IM messages sent and not yet delivered, by target connection; each target's list is in
// send order, so a message that arrives ahead of an older one from the same sender is out
// of order.
struct Loadgen::Pending {
  struct Entry {
    std::uint32_t sender;
    std::uint8_t sender_gen;
    std::uint32_t seq;
    TimeNs sent_at;
  };
  static std::uint64_t key(std::uint32_t target, std::uint8_t target_gen) {
    return (static_cast<std::uint64_t>(target) << 8) | target_gen;
  }
  std::unordered_map<std::uint64_t, std::vector<Entry>> by_target;
  std::uint64_t count = 0;
  std::uint64_t size() const { return count; }
};

// A name per connection generation: a user that reconnects logs in under a new name, so a
// message to the previous connection is never mistaken for one to the new.
inline std::uint8_t gen8(std::uint32_t gen) { return static_cast<std::uint8_t>(gen); }

}  // namespace xtcp::loadgen
