// Memory per connection: opens N idle established connections through real handshakes of
// crafted segments (in memory, virtual time), then closes them all actively into TIME-WAIT,
// and reports bytes per connection as the engine counts them (TcpLayer::memory_bytes()) and
// as the process pays for them (resident set growth), next to the design targets
// (~128 bytes per idle established connection all-in, <= 48 bytes per TIME-WAIT entry).
//
//   bench_memory [--conns N]     (default 100000; --help lists the flags)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "stack/core/flow_index.h"
#include "stack/core/flow_table.h"
#include "stack/core/timer_wheel.h"
#include "stack/tcp/tcb.h"
#include "stack/tcp/time_wait.h"
#include "tools/cli/cli.h"

namespace xtcp::bench {
namespace {

using namespace wire::tcp_flags;  // NOLINT

BenchPeer peer_for(std::size_t i) {
  BenchPeer p;
  p.addr = 0xC6130001u + static_cast<std::uint32_t>(i / 60000);  // 198.19.0.1 upwards
  p.port = static_cast<std::uint16_t>(1024 + i % 60000);
  p.snd_nxt = 1'000'000u + static_cast<std::uint32_t>(i) * 7919u;
  return p;
}

double per(std::size_t bytes, std::size_t n) {
  return static_cast<double>(bytes) / static_cast<double>(n);
}
double per_delta(std::size_t after, std::size_t before, std::size_t n) {
  return (static_cast<double>(after) - static_cast<double>(before)) / static_cast<double>(n);
}

int run(std::size_t n) {
  std::printf("# bench_memory: %zu connections\n\n", n);
  std::printf("## Fixed sizes\n\n");
  std::printf("| item | bytes |\n|---|---:|\n");
  std::printf("| sizeof(Tcb) | %zu |\n", sizeof(Tcb));
  std::printf("| sizeof(TimeWaitTable::Record) (a TIME-WAIT ring slot) | %zu |\n",
              sizeof(TimeWaitTable::Record));
  std::printf("| sizeof(TcbHot) (every connection) | %zu |\n", sizeof(TcbHot));
  std::printf("| sizeof(FlowIndex::Slot) (flow and TIME-WAIT index slot, load <= %.2f) | %zu |\n",
              FlowIndex::kDefaultMaxLoad, sizeof(FlowIndex::Slot));
  std::printf("| TimerWheel entry per busy connection (timer_wheel.h) | 16 |\n");
  std::printf("| StreamBuffers slot per connection id (two unique_ptr) | %zu |\n\n",
              2 * sizeof(std::unique_ptr<int>));

  // Stand-alone structures filled with n entries.
  std::size_t flow_bytes = 0;
  {
    struct PeerKeys final : FlowKeySource {
      FlowKey key_of(std::uint32_t i) const override {
        const BenchPeer p = peer_for(i);
        return FlowKey{kStackAddr, p.addr, kServerPort, p.port};
      }
    } keys;
    FlowIndex t(keys, n, FlowIndex::kDefaultMaxLoad, 1);
    for (std::size_t i = 0; i < n; ++i) {
      t.insert(keys.key_of(static_cast<std::uint32_t>(i)), static_cast<std::uint32_t>(i));
    }
    flow_bytes = t.memory_bytes();
  }
  // A TIME-WAIT table sized for exactly n entries (what the engine gets when its limit is n),
  // filled: its own count and what the process pays (the ring and index are anonymous
  // mappings of their own, so the resident set sees exactly their written pages).
  std::size_t tw_bytes = 0;
  std::size_t tw_reserved = 0;
  std::size_t tw_rss = 0;
  std::size_t tw_live = 0;
  {
    const std::size_t rss_before = resident_bytes();
    TimeWaitTable tw(n, 1);
    for (std::size_t i = 0; i < n; ++i) {
      const BenchPeer p = peer_for(i);
      TimeWaitTable::Entry e{};
      e.key = FlowKey{kStackAddr, p.addr, kServerPort, p.port};
      e.expires = static_cast<Tick>(60'000 + i / 1000);  // 2*MSL after a close rate of 1000/ms
      tw.insert(e);
    }
    tw_bytes = tw.memory_bytes();
    tw_reserved = tw.reserved_bytes();
    tw_rss = std::max(resident_bytes(), rss_before) - rss_before;
    tw_live = tw.size();
  }

  // The bench's own bookkeeping is made resident before the baseline, so the resident set
  // growth below is the engine's (plus the StreamBuffers slots this bench uses as its store).
  std::vector<BenchPeer> peers(n);
  for (std::size_t i = 0; i < n; ++i) {
    peers[i] = peer_for(i);
  }
  std::vector<ConnId> conns(n, kNoConn);
  std::vector<std::byte> buf(256);
  // Sized for the load, as a server is (--max-connections): the flow index and the TIME-WAIT
  // table are reserved for max_connections and, hashed, touch all their pages once a few
  // thousand entries are in; with the default limit (1,048,576) they cost their full ~10 MB
  // each whatever n is.
  TcpConfig config;
  config.max_connections = static_cast<std::uint32_t>(n);
  BenchStack s(config, 64 * 1024, 64 * 1024);
  s.tcp().listen(kServerPort);
  const std::size_t mem0 = s.tcp().memory_bytes();
  const std::size_t rss0 = resident_bytes();
  double slowest_us = 0;
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::int64_t c = s.establish(peers[i]);
    slowest_us = std::max(
        slowest_us, std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    if (c < 0) {
      std::fprintf(stderr, "handshake %zu failed\n", i);
      return 1;
    }
    conns[i] = static_cast<ConnId>(c);
  }
  const double mean_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
      static_cast<double>(n);
  const std::size_t mem1 = s.tcp().memory_bytes();
  const std::size_t rss1 = resident_bytes();
  const auto states = s.tcp().connections_by_state();
  const std::size_t established = states[static_cast<int>(TcpState::kEstablished)];

  // Active close of every connection: our FIN, then the peer's FIN+ACK acknowledging it
  // takes FIN-WAIT-1 straight to TIME-WAIT (control block released, compact entry kept).
  for (std::size_t i = 0; i < n; ++i) {
    BenchPeer& p = peers[i];
    s.tcp().close(conns[i]);
    if ((s.link.last.flags & kFin) == 0) {
      std::fprintf(stderr, "no FIN from connection %zu\n", i);
      return 1;
    }
    p.rcv_nxt = s.link.last.seq + s.link.last.payload_len + 1;
    p.ts_ecr = s.link.last.ts_val;
    ++p.ts_val;
    const std::size_t len = p.build(buf.data(), kFin | kAck, p.snd_nxt, p.rcv_nxt, 65535, {});
    s.input(buf.data(), len);
    s.drop_events();
  }
  const std::size_t mem2 = s.tcp().memory_bytes();
  const std::size_t rss2 = resident_bytes();
  const std::size_t time_wait = s.tcp().connections_by_state()[static_cast<int>(TcpState::kTimeWait)];

  std::printf("## %zu idle established connections (ESTABLISHED: %zu)\n\n", n, established);
  std::printf("| measure | total | bytes per connection |\n|---|---:|---:|\n");
  std::printf("| TcpLayer::memory_bytes() | %zu | %.1f |\n", mem1, per(mem1, n));
  std::printf("| memory_bytes() growth over the empty layer | %zu | %.1f |\n", mem1 - mem0,
              per_delta(mem1, mem0, n));
  std::printf("| resident set growth (all-in) | %zu | %.1f |\n",
              rss1 - rss0, per_delta(rss1, rss0, n));
  std::printf("| of which: the flow index (FlowIndex sized for n, n entries) | %zu | %.1f |\n", flow_bytes,
              per(flow_bytes, n));
  std::printf("| design target, all-in | | 128 |\n\n");
  std::printf("Handshake (SYN in, SYN-ACK out, ACK in, accept), wall time: mean %.2f us, slowest "
              "%.0f us\n(every table is reserved at start-up for max_connections: nothing grows or copies\n"
              "on the packet path; the slowest handshakes are page faults and scheduling).\n\n",
              mean_us, slowest_us);

  std::printf("## Same connections after an active close (TIME-WAIT: %zu)\n\n", time_wait);
  std::printf("| measure | total | bytes per entry |\n|---|---:|---:|\n");
  std::printf("| TimeWaitTable(n) alone, n entries: memory_bytes() (ring + index, pages written) | %zu | %.1f |\n",
              tw_bytes, per(tw_bytes, n));
  std::printf("| TimeWaitTable(n) alone: reserved_bytes() (whole ring + whole index) | %zu | %.1f |\n",
              tw_reserved, per(tw_reserved, n));
  std::printf("| TimeWaitTable(n) alone: resident set growth while filling it | %zu | %.1f |\n",
              tw_rss, per(tw_rss, n));
  std::printf("| engine: memory_bytes() growth from ESTABLISHED to TIME-WAIT | %zd | %.1f |\n",
              static_cast<std::ptrdiff_t>(mem2 - mem1), per_delta(mem2, mem1, n));
  std::printf("| engine: resident set growth from ESTABLISHED to TIME-WAIT | %zd | %.1f |\n",
              static_cast<std::ptrdiff_t>(rss2 - rss1), per_delta(rss2, rss1, n));
  std::printf("| design target per TIME-WAIT entry | | 48 |\n\n");
  std::printf("The engine here is configured with max_connections = n, so its TIME-WAIT table\n"
              "has room for n entries (TcpConfig::max_time_wait, default max_connections). Cold\n"
              "control-block slots of connections that went to TIME-WAIT stay resident for reuse.\n");
  return time_wait == n && established == n && tw_live == n ? 0 : 1;
}

}  // namespace
}  // namespace xtcp::bench

int main(int argc, char** argv) {
  namespace cli = xtcp::cli;
  std::uint64_t n = 100000;
  cli::Flags flags("bench_memory", "[--conns N]",
                   "Memory per connection: opens N idle established connections through real handshakes of "
                   "crafted segments (in memory, virtual time, no network), closes them all actively into "
                   "TIME-WAIT, and reports bytes per connection and per TIME-WAIT entry as the engine counts "
                   "them and as the process pays for them (resident set growth), next to the design "
                   "targets (128 bytes per idle connection, 48 per TIME-WAIT entry).");
  flags.number("--conns", "N", "connections to open", &n, 1, 1000000);
  flags.epilog("Exit status: 0 every connection reached ESTABLISHED and then TIME-WAIT, 1 one did not, "
               "2 a bad, unknown or missing flag.\n");
  flags.parse(argc, argv);
  return xtcp::bench::run(static_cast<std::size_t>(n));
}
