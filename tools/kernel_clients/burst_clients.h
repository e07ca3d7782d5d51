// xtcp-kernel-clients: many connections of the Linux kernel's own TCP, spread over worker
// processes (a process holds at most 20,000 descriptors here), that send one message each at
// the same instant ("a burst") and check every echo. It measures what a burst of real kernel
// clients costs a server: the time from the first send to the last answer, each client's
// answer latency, and what went wrong on the way: the clients' retransmissions (per socket,
// from TCP_INFO, and namespace-wide from /proc/net/snmp and /proc/net/netstat) and the
// packets the server's TUN device dropped from its queue.
//
//   parent --fork--> worker 0..P-1 (each: its own epoll, connections [first, first + count))
//   parent --'B' on each command pipe--> workers send, wait for every echo --'D'--> parent
//   results: one shared anonymous mapping (per-worker summary, per-connection latency)
#pragma once

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace xtcp::kclients {

inline constexpr const char* kProgram = "xtcp-kernel-clients";
// Descriptors one worker may use for connections (the limit per process is 20,000; the
// rest is left for the epoll, pipes and the standard streams).
inline constexpr std::uint32_t kMaxPerProcess = 18'000;
// Source ports bound on each source address: 1024..65535.
inline constexpr std::uint32_t kPortsPerAddress = 65'535 - 1'024 + 1;

struct Options {
  sockaddr_in target{};
  std::string target_text;
  std::uint32_t src_base = 0;  // host order: first source address
  std::uint32_t src_count = 0; // addresses in the --src range
  std::string src_text;
  std::uint32_t connections = 1000;
  int processes = 0;           // 0: ceil(connections / kMaxPerProcess)
  std::uint64_t ramp = 20'000; // connections per second over all workers
  std::uint64_t message_size = 64;
  int bursts = 3;
  std::chrono::microseconds interval{std::chrono::seconds(2)};
  std::chrono::microseconds timeout{std::chrono::seconds(120)};  // per burst and for the set-up
  std::string tun_dev;         // a TUN device whose queue drops are counted ("" : none)
  std::string json_path;       // "" : no JSON file
};

// One burst, as the parent sums it up.
struct BurstResult {
  int index = 0;
  std::uint32_t answered = 0;       // connections whose echo came back whole and right
  std::uint32_t errors = 0;         // send failures, wrong bytes, resets, closes
  double burst_seconds = 0;         // first send to last answer (over every worker)
  double p50_ms = 0, p99_ms = 0, max_ms = 0;  // per-connection answer latency
  std::uint32_t clients_retransmitting = 0;   // sockets whose tcpi_total_retrans grew
  std::uint32_t clients_backed_off = 0;       // ... by 2 or more: they waited on backoff
  std::uint64_t socket_retransmissions = 0;   // sum of the growth
  std::uint64_t retrans_segs = 0;             // namespace-wide Tcp RetransSegs growth
  std::uint64_t rto_timeouts = 0;             // namespace-wide TcpExt TCPTimeouts growth
  std::int64_t tun_queue_drops = -1;          // the TUN device's tx_dropped growth (-1: none)
};

struct RunResult {
  std::uint32_t connected = 0;
  std::uint32_t connect_failures = 0;
  double setup_seconds = 0;
  std::string first_error;          // the first failure a worker saw ("" : none)
  std::vector<BurstResult> bursts;
  bool ok() const;
};

// Runs the whole thing: forks the workers, connects, runs the bursts, stops the workers.
// Progress and results go to stdout; false with *error when it could not start at all.
bool run(const Options& options, RunResult* result, std::string* error);

// The JSON summary (one object).
std::string to_json(const Options& options, const RunResult& result);

}  // namespace xtcp::kclients
