// xtcp-kernel-server's parent process: opens the N listening sockets (SO_REUSEPORT, one per
// worker, all on --listen), the shared mapping (every worker's counters, and for IM with
// N > 1 the directory of logged-in names) and the mesh socketpairs, forks the workers,
// forwards SIGINT/SIGTERM to them, prints the counters (every --stats-interval, on SIGUSR1,
// at the end: summed over the workers, plus per-worker lines) and exits once every worker
// has: 0 after a stop signal or --duration, 1 when a worker died or could not start.
#pragma once

#include "tools/kernel_server/options.h"

namespace xtcp::kserver {

int run_server(const Options& options);

}  // namespace xtcp::kserver
