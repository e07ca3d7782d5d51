// Sharding of the example servers (xtcp-echo, xtcp-im --shards N): the xtcp C API runs one
// stack per process, so a shard is a PROCESS with its own stack on its own queue of one
// multi-queue TUN device (xtcp_config.tun_multi_queue). The kernel spreads the flows over the
// queues by flow hash and keeps each flow on one queue; shards share nothing.
//
// The supervisor (the process the user started) forks the workers one after the other:
// helpers first (xtcp-im's backend), then shard 0 .. N-1, each waited for until it reports
// "ready" on its pipe (so shard 0 creates the device and sets its kernel side before shard 1
// adds its queue). Once all are ready it prints the program's start-up line. It forwards
// SIGINT/SIGTERM (stop) and SIGUSR1 (counters) to the shards, stops them at the end of
// --duration, asks them for their counters every --stats-interval and prints the sums, and
// at the end prints the sum of the shards' final counters, then each shard's as
// "shard<i>.<name> <value>", then the helpers'. A worker that ends while the supervisor did
// not ask for it makes the supervisor stop the others and exit 1.
//
// Pipe protocol (worker -> supervisor, text lines): "ready"; "counters" or "final", then
// "<name> <value>" lines, then "end".
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "server_examples/common/server_flags.h"
#include "tools/cli/cli.h"

namespace xtcp_examples {

// A worker's end of its pipe to the supervisor.
class ShardChannel {
 public:
  ShardChannel(int index, int fd) : index_(index), fd_(fd) {}
  ShardChannel(const ShardChannel&) = delete;
  ShardChannel& operator=(const ShardChannel&) = delete;

  int index() const { return index_; }  // the shard's number (helpers: -1)
  // The worker serves: its queue is attached and its port open.
  void ready();
  // The counters the supervisor asked for (SIGUSR1).
  void counters(const std::vector<Counter>& counters);
  // The counters at the end, just before the worker exits.
  void final_counters(const std::vector<Counter>& counters);
  // From now on stats hands its prints (SIGUSR1) to the supervisor.
  void attach(xtcp::cli::StatsPrinter& stats);

 private:
  void send(const std::string& text);

  int index_;
  int fd_;
};

struct Worker {
  std::string name;  // "shard 0", "backend": for messages
  // false: a helper, started before the shards and stopped after them; it runs in a process
  // group of its own, so that a signal to the program's group does not stop it before them.
  bool shard = true;
  // Runs in the forked process; its result is the process's exit status.
  std::function<int(ShardChannel&)> run;
};

struct SupervisorSpec {
  const char* program = "";
  const ServerFlags* flags = nullptr;  // --duration, --stats-interval, --stats-json
  // The start-up line without its newline, printed once every worker is ready;
  // ", N shards" is appended.
  std::string ready_line;
  // The counters the final text block shows (as the single process prints them), by prefix.
  std::vector<std::string> final_prefixes;
  // The line printed before the final counters ("xtcp-echo: stopping: ..."), from the sums.
  std::function<std::string(const std::vector<Counter>& sums)> stopping_line;
};

// The flags shard `index` runs with: no --duration and no --stats-interval of its own (the
// supervisor keeps the time and asks), text counters, --pcap FILE becomes FILE.<index>.
ServerFlags shard_flags(const ServerFlags& flags, int index);

// Starts the workers (helpers must come first), supervises them until a stop signal, the
// duration, or a worker's unexpected end, stops them and prints the counters. Returns the
// program's exit status: 0, or 1 after a worker failed.
int run_supervisor(const SupervisorSpec& spec, std::vector<Worker> workers);

// "exited with status 1", "was killed by signal 9 (Killed)".
std::string describe_exit(int wait_status);

}  // namespace xtcp_examples
