// One xtcp-kernel-server worker process: its own epoll loop (edge-triggered) over its own
// SO_REUSEPORT listening socket and the connections the kernel hands it, speaking echo or
// the IM protocol (ImCore from server_examples/im). With --processes > 1 and IM, its users
// reach the other workers' users through the shared directory (im_directory.h), the mesh
// (mesh.h) and the delivery order of sequencer.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tools/kernel_server/counters.h"
#include "tools/kernel_server/im_directory.h"
#include "tools/kernel_server/options.h"

namespace xtcp::kserver {

struct WorkerSetup {
  const Options* options = nullptr;
  int index = 0;               // 0 .. processes-1
  int listen_fd = -1;          // non-blocking, listening, SO_REUSEPORT
  std::vector<int> mesh_fds;   // IM with processes > 1: the end toward each worker (-1 for itself); else empty
  WorkerStats* stats = nullptr;
  ImDirectory* directory = nullptr;  // IM with processes > 1, else nullptr
};

// Runs until a stop signal (cli::stop_requested(); SIGINT/SIGTERM must be blocked by the
// caller: they are let in only while epoll waits). Returns the exit status: 0, or 1 when
// epoll failed.
int run_worker(const WorkerSetup& setup);

// The resident memory of a process (/proc/<pid> or "self"): false when it cannot be read.
struct ProcessMemory {
  std::uint64_t rss = 0;       // VmRSS
  std::uint64_t pss = 0;       // Pss (smaps_rollup): shared pages divided among their users
  std::uint64_t rss_peak = 0;  // VmHWM
};
bool read_process_memory(const std::string& proc_dir, ProcessMemory* m);

}  // namespace xtcp::kserver
