// xtcp-loadgen's engine: many TCP clients on one xtcp stack in client mode. The stack owns
// a whole address range, so neither descriptors nor ephemeral ports limit the number of
// connections, and every connection costs about the engine's memory per connection. The
// clients follow a workload (connect only, echo, the IM protocol, bursts), every answer is
// checked, and latencies go into a histogram.
//
//   run(): ramp (connect at the given rate) -> measure (duration) -> drain -> Results
//   each turn: link -> Stack::poll -> engine events -> Workload; due sends; progress
//
// The Loadgen does not own its link: the program gives it a TUN device, a test an
// in-memory link with a server on the other end (pump() runs that server between turns).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "stack/buffer/shared_rx_pool.h"
#include "stack/buffer/shared_tx_cache.h"
#include "stack/core/clock.h"
#include "stack/netif/link.h"
#include "stack/stack.h"
#include "tools/loadgen/histogram.h"
#include "tools/loadgen/schedule.h"

namespace xtcp::loadgen {

enum class Workload : std::uint8_t { kConnectOnly, kEcho, kIm, kBurst };
const char* to_string(Workload w);

struct Options {
  Workload workload = Workload::kEcho;
  std::uint32_t connections = 1000;
  double ramp_per_s = 10'000;           // connection attempts per second; 0: all at once
  std::uint32_t message_size = 64;      // echo: bytes per message; im: bytes of MSG text
  TimeNs interval = seconds(1);         // between two messages of one connection
  TimeNs duration = seconds(10);        // measuring time after the ramp
  TimeNs drain = seconds(10);           // waiting for late answers after the duration
  TimeNs lifetime = 0;                  // churn: mean connection lifetime (exponential); 0: none
  bool server_closes = false;           // churn: the server closes first (IM: QUIT)
  std::uint32_t bursts = 1;             // burst: how many bursts, interval apart
  std::uint64_t seed = 1;
  std::uint32_t src_addr = 0xC6128000;  // 198.18.128.0 ...
  std::uint32_t src_count = 32768;      // ... /17
  std::uint32_t target_addr = 0xC6120002;
  std::uint16_t target_port = 7;
  std::size_t rx_pool_size = 256u << 20;  // the clients' shared receive buffer
  std::size_t tx_cache_size = 256u << 20; // and transmit cache
  std::uint32_t max_connections = 0;    // engine table size; 0: connections + 10%
};

// What a run measured.
struct Results {
  Workload workload = Workload::kEcho;
  std::uint32_t target_connections = 0;
  std::uint64_t connects_started = 0;
  std::uint64_t connects_ok = 0;
  std::uint64_t connects_failed = 0;     // refused, reset or timed out before established
  std::uint64_t peak_established = 0;
  std::uint64_t resets = 0;              // established connections reset or timed out
  std::uint64_t churn_closes = 0;        // connections closed on purpose (lifetime)
  std::uint64_t logins = 0;
  std::uint64_t messages_sent = 0;
  std::uint64_t messages_answered = 0;   // echoes complete, or IM messages delivered
  std::uint64_t answered_in_measure = 0; // of which in the measuring period
  std::uint64_t messages_lost = 0;       // IM: acknowledged with OK, never delivered
  std::uint64_t messages_duplicated = 0;
  std::uint64_t messages_reordered = 0;
  std::uint64_t messages_dropped_by_churn = 0;  // IM: the target left before delivery
  std::uint64_t bad_answers = 0;         // wrong echo bytes, unexpected IM lines
  std::uint64_t sends_refused = 0;       // the clients' own transmit cache was full
  std::uint64_t offline_answers = 0;     // IM: "ERR offline" (the target had just left)
  std::uint64_t retransmits = 0;         // segments the clients' stack sent again
  std::uint64_t packets_out = 0;         // during the measuring period
  std::uint64_t packets_in = 0;
  double ramp_seconds = 0;               // first connect to the last one established
  double measure_seconds = 0;
  double slowest_connect_ms = 0;
  std::vector<double> burst_seconds;     // burst: first send to last answer, per burst
  Histogram latency;                     // us: echo round trip / IM sender to target
  Histogram connect_latency;             // us: SYN to established
  std::uint64_t errors() const {
    return connects_failed + resets + messages_lost + messages_duplicated + messages_reordered + bad_answers +
           sends_refused;
  }
};

// A snapshot for the progress line, taken every interval.
struct Progress {
  double elapsed_s = 0;
  const char* phase = "";
  std::uint64_t established = 0;
  std::uint32_t target = 0;
  double messages_per_s = 0;
  std::uint64_t p50_us = 0, p99_us = 0, p999_us = 0;
  std::uint64_t errors = 0;
  std::uint64_t retransmits = 0;
};

class Loadgen {
 public:
  Loadgen(const Options& options, Link& link, const Clock& clock);
  ~Loadgen();
  Loadgen(const Loadgen&) = delete;
  Loadgen& operator=(const Loadgen&) = delete;

  // Called between turns (in-process targets run their server here); may be empty.
  void set_pump(std::function<void()> pump) { pump_ = std::move(pump); }
  // Called every progress_every with a snapshot.
  void set_progress(TimeNs every, std::function<void(const Progress&)> cb) {
    progress_every_ = every;
    progress_ = std::move(cb);
  }
  // Checked every turn; true stops the run early (SIGINT): results so far are reported.
  void set_stop(std::function<bool()> stop) { stop_ = std::move(stop); }

  // Runs the whole workload. With a link that has a descriptor, waits in poll(2) between
  // turns; otherwise spins (the pump moves the other side).
  Results run();

  Stack& stack() { return *stack_; }

 private:
  struct Client;
  enum class Phase : std::uint8_t { kRamp, kMeasure, kDrain, kDone };

  // Connections.
  void start_connect(std::uint32_t index);
  void on_event(const TcpEvent& e);
  void on_established(std::uint32_t index);
  void on_closed(std::uint32_t index, int error);
  // The connection is over; with churn the client reconnects shortly.
  void finish(std::uint32_t index, bool on_purpose);
  // Churn: the client's lifetime is up.
  void close_client(std::uint32_t index);
  std::uint32_t next_source_addr();
  TimeNs draw_lifetime();

  // Workloads (loadgen_workloads.cc).
  void on_readable(std::uint32_t index);
  void send_due(std::uint32_t index);
  void echo_send(Client& c, std::uint32_t index);
  void echo_input(Client& c, std::uint32_t index);
  void im_login(Client& c);
  void im_send(Client& c, std::uint32_t index);
  void im_input(Client& c, std::uint32_t index);
  void im_line(Client& c, std::uint32_t index, std::string_view line);
  void im_ready_add(std::uint32_t index);
  void im_ready_remove(std::uint32_t index);
  void im_forget_target(std::uint32_t index);
  void start_burst();
  void burst_answered();
  bool write(Client& c, std::string_view bytes);

  void turn();
  void advance_phase();
  void report_progress();
  TimeNs next_wake() const;
  // Messages sent and not answered yet (the drain phase waits for them).
  std::uint64_t outstanding() const;
  void reset_all();

  Options opt_;
  Link& link_;
  const Clock& clock_;
  SharedRxPool rx_;
  SharedTxCache tx_;
  std::unique_ptr<Stack> stack_;
  std::mt19937_64 rng_;

  std::vector<Client> clients_;
  std::vector<std::uint32_t> conn_to_client_;  // ConnId -> client index
  Schedule sends_;                             // each client's next message
  Schedule life_;                              // churn: closes and reconnects
  std::uint32_t next_to_start_ = 0;
  std::uint32_t next_addr_ = 0;
  std::uint64_t established_ = 0;

  // IM: logged-in users by index, for random targets; in-flight messages by (target,
  // sender) in send order.
  std::vector<std::uint32_t> ready_;
  std::vector<std::uint32_t> ready_pos_;
  struct Pending;
  std::unique_ptr<Pending> pending_;

  Phase phase_ = Phase::kRamp;
  TimeNs start_ = 0;
  TimeNs ramp_timeout_ = 0;
  TimeNs ramp_done_at_ = 0;
  TimeNs measure_start_ = 0;
  TimeNs measure_end_ = 0;
  TimeNs drain_end_ = 0;
  std::uint64_t packets_out_at_measure_ = 0;
  std::uint64_t packets_in_at_measure_ = 0;
  std::uint64_t answered_at_measure_ = 0;
  std::uint32_t bursts_done_ = 0;
  TimeNs burst_started_ = 0;
  std::uint64_t burst_outstanding_ = 0;
  TimeNs next_burst_ = kNever;
  std::uint64_t echo_outstanding_ = 0;

  TimeNs progress_every_ = 0;
  TimeNs next_progress_ = kNever;
  std::uint64_t answered_at_last_progress_ = 0;
  TimeNs last_progress_at_ = 0;
  std::function<void(const Progress&)> progress_;
  std::function<void()> pump_;
  std::function<bool()> stop_;
  Results r_;
};

}  // namespace xtcp::loadgen
