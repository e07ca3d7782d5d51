// xtcp-kernel-server's counters: every worker keeps its own block in the shared mapping
// (one writer each, relaxed atomics, so nothing is locked); the supervising parent sums
// the blocks for the "name value" prints and shows a few per worker.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace xtcp::kserver {

// Indices into WorkerStats::c. The echo and IM counters are printed only for their protocol.
enum Ctr : std::size_t {
  // both protocols
  kAccepted,        // connections accepted
  kOpen,            // connections open now (gauge)
  kClientCloses,    // the client's FIN was read
  kResets,          // a read or write failed (ECONNRESET, EPIPE, ETIMEDOUT, ...)
  kBytesIn,
  kBytesOut,
  kAcceptFdLimit,   // accept4 failed with EMFILE/ENFILE (the connection waits in the backlog)
  // echo
  kReadPauses,      // a connection stopped being read because its echo waited unsent (--max-output)
  // IM (server_examples/im/im_core's counters, plus what this server adds)
  kOnline,          // users logged in on this worker (gauge)
  kQuits,
  kSlowConsumers,   // closed: more than --max-output waited unsent
  kOversizedLines,  // reset: a line longer than 8192 bytes
  kRequests,
  kLogins,
  kLogouts,
  kMessages,        // MSG answered OK (to a user of this worker or of another)
  kMessagesOffline,
  kLists,
  kWatches,
  kErrors,
  kPushes,          // FROM, ONLINE, OFFLINE lines queued for this worker's connections
  // IM across workers (--processes > 1)
  kForwarded,       // MSG for a user of another worker, sent there
  kForwardReceived,
  kForwardDropped,  // a forwarded or local FROM whose target connection had ended
  kPresenceEvents,  // logins and logouts of this worker, announced to every worker
  kPresenceReceived,
  kHeldRecords,     // records that waited for an earlier presence event of another worker
  kMeshPacketsOut,
  kMeshPacketsIn,
  kMeshStalls,      // a send to a worker was refused (its queue full): kept and sent later
  kMeshQueuedBytes, // gauge: bytes waiting for other workers
  kMeshReadPauses,  // rounds in which clients were not read because too much waited for a worker
  kCtrCount
};

struct alignas(64) WorkerStats {
  std::atomic<std::uint64_t> c[kCtrCount];
  std::atomic<std::int64_t> pid;
  // Written by the worker when it stops (before closing its connections); while it runs the
  // parent reads /proc/<pid> itself.
  std::atomic<std::uint64_t> rss_bytes;
  std::atomic<std::uint64_t> pss_bytes;
  std::atomic<std::uint64_t> rss_peak_bytes;
  std::atomic<int> final_memory;  // 1 once the three above are set
};

// One writer per block: a relaxed load and store is enough (no locked instruction).
inline void bump(WorkerStats* s, Ctr k, std::uint64_t n = 1) {
  s->c[k].store(s->c[k].load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
inline void set_gauge(WorkerStats* s, Ctr k, std::uint64_t v) { s->c[k].store(v, std::memory_order_relaxed); }

}  // namespace xtcp::kserver
