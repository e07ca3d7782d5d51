// Interop fixture: the xtcp stack on a TUN device inside a network namespace the test
// creates (198.18.0.0/24, removed at the end), run on its own thread, with kernel sockets of
// that namespace as clients. The server speaks three services on the engine API:
//   7 echo; 13 sends a greeting then closes (server-side active close);
//   14 sends a greeting then aborts (RST).
// An optional FaultLink between TUN and stack impairs both directions (this kernel has no
// netem; the injector gives the same loss/dup/reorder/delay/corruption in user space).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "stack/netif/mem_link.h"
#include "stack/netif/tun_link.h"
#include "tests/support/netns.h"

namespace xtcp::test {

inline constexpr const char* kStackIp = "198.18.0.2";
inline constexpr std::uint16_t kEchoPort = 7;
inline constexpr std::uint16_t kGreetClosePort = 13;
inline constexpr std::uint16_t kGreetAbortPort = 14;
inline constexpr const char* kGreeting = "hello from xtcp\n";

// For server threads of interop tests, after entering the namespace: opens TUN xtcp0 with
// the kernel's end at 198.18.0.1/24 and up; *stack_addr gets kStackIp. nullptr with *error.
std::unique_ptr<TunLink> open_test_tun(std::uint32_t* stack_addr, std::string* error);
// Waits (bounded, 5 s) until a server thread's state leaves 0; true when it became 1.
bool wait_until_started(const std::atomic<int>& state);

struct ServerOptions {
  bool faults = false;
  MemLinkFaults to_kernel;    // stack -> kernel direction
  MemLinkFaults from_kernel;  // kernel -> stack direction
  std::size_t rx_buffer = 256 * 1024;
  std::size_t tx_buffer = 256 * 1024;
  bool sack = true;
  std::string pcap;  // if set, the traffic the stack sees is written there
};

struct ServerReport {
  std::uint64_t accepted = 0;
  std::uint64_t echoed = 0;
  std::uint64_t retransmits = 0;
  std::uint64_t rto_expirations = 0;
  std::uint64_t fast_retransmits = 0;
  std::uint64_t tlp_probes = 0;
  std::uint64_t drop_bad_checksum = 0;
  std::uint64_t resets_in = 0;
  std::uint64_t closed_events = 0;
  std::uint64_t closed_with_reset = 0;
  std::uint64_t time_wait = 0;
  std::uint64_t live_connections = 0;
  std::uint64_t fault_lost = 0;
  std::uint64_t fault_duplicated = 0;
  std::uint64_t fault_reordered = 0;
  std::uint64_t fault_corrupted = 0;
};

class TunServer {
 public:
  // Returns null and sets *skip_reason when this machine cannot run interop tests.
  static std::unique_ptr<TunServer> start(const ServerOptions& options, std::string* skip_reason,
                                          std::string* error);
  ~TunServer();

  const NetNs& ns() const { return *ns_; }
  // Runs fn on a thread inside the namespace (client sockets must be made there).
  void in_namespace(const std::function<void()>& fn) const;
  // A consistent snapshot of the server's counters, taken on the server thread.
  ServerReport report();

 private:
  TunServer() = default;
  void run(const ServerOptions& options);

  std::unique_ptr<NetNs> ns_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> state_{0};  // 0 starting, 1 up, -1 failed
  std::string error_;
  std::mutex report_mu_;
  ServerReport report_;
};

// Kernel-socket client helpers (call inside in_namespace). Timeouts bound every wait.
int connect_tcp(std::uint16_t port, int timeout_ms = 5000);
// Sends data while reading the echo; half-closes after the last byte; reads to EOF.
// Returns what came back (empty on error; *error says why).
std::vector<std::uint8_t> echo_exchange(int fd, const std::vector<std::uint8_t>& data,
                                        int timeout_ms, std::string* error);
std::string sha256_hex(const std::vector<std::uint8_t>& data);
std::vector<std::uint8_t> random_bytes(std::size_t n, std::uint64_t seed);

}  // namespace xtcp::test
