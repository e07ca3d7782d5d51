// What `xtcp-im --shards N` adds to the supervisor of server_examples/common/supervisor.h:
// users on different shards must reach each other, so without --backend the supervisor
// runs the IM backend (netpdu/backend, the code of xtcp-backend) in a helper process on a
// Unix socket in a private temporary directory, and every shard forwards to it.
#pragma once

#include <string>

#include "server_examples/common/supervisor.h"

namespace xtcp_examples {

// A private directory (mode 0700) for the backend's socket; removed with what is in it.
class PrivateSocketDir {
 public:
  PrivateSocketDir() = default;
  ~PrivateSocketDir();
  PrivateSocketDir(const PrivateSocketDir&) = delete;
  PrivateSocketDir& operator=(const PrivateSocketDir&) = delete;
  // Makes the directory under $TMPDIR (or /tmp); false with *error.
  bool create(std::string* error);
  // The socket path in it ("<dir>/backend.sock").
  const std::string& socket_path() const { return socket_; }

 private:
  std::string dir_;
  std::string socket_;
};

// The helper process: xtcp-backend's server (default settings) listening on socket_path;
// "ready" once it listens, its counters ("backend.*") at the end. Runs until SIGTERM/SIGINT;
// its exit status.
int run_im_backend(const std::string& program, const std::string& socket_path, ShardChannel& channel);

}  // namespace xtcp_examples
