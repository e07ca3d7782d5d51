// The IM backend helper of `xtcp-im --shards N` and its socket directory (see im_shards.h).
#include "server_examples/im/im_shards.h"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "netpdu/backend/backend_server.h"
#include "netpdu/net.h"

namespace xtcp_examples {

namespace cli = xtcp::cli;
namespace np = xtcp::netpdu;

PrivateSocketDir::~PrivateSocketDir() {
  if (!dir_.empty()) {
    ::unlink(socket_.c_str());
    ::rmdir(dir_.c_str());
  }
}

bool PrivateSocketDir::create(std::string* error) {
  const char* tmp = std::getenv("TMPDIR");
  std::string base = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  // A Unix socket path has at most 107 bytes: fall back to /tmp for a long TMPDIR.
  if (base.size() > 60) {
    base = "/tmp";
  }
  std::vector<char> path(base.begin(), base.end());
  const std::string suffix = "/xtcp-im-XXXXXX";
  path.insert(path.end(), suffix.begin(), suffix.end());
  path.push_back('\0');
  if (::mkdtemp(path.data()) == nullptr) {
    *error = "cannot make a directory for the backend socket in " + base + ": " + std::strerror(errno);
    return false;
  }
  dir_ = path.data();
  socket_ = dir_ + "/backend.sock";
  return true;
}

int run_im_backend(const std::string& program, const std::string& socket_path, ShardChannel& channel) {
  cli::on_stop_signals({SIGINT, SIGTERM});
  cli::ignore_signal(SIGUSR1);  // the supervisor asks the shards only
  cli::ignore_signal(SIGPIPE);
  std::string err;
  const int lfd = np::listen_on(np::unix_address(socket_path), &err);
  if (lfd < 0) {
    std::fprintf(stderr, "%s: backend: %s\n", program.c_str(), err.c_str());
    return cli::kExitFailure;
  }
  // xtcp-backend's defaults (netpdu/backend/main.cc without flags).
  np::HandshakeLimits limits;
  np::ImBackendConfig config;
  config.endpoint.tx.flush_bytes = std::min(config.endpoint.tx.flush_bytes, limits.max_pdu_bytes);
  config.endpoint.tx.low_watermark = config.endpoint.tx.max_queued_bytes / 2;
  np::SteadyClock clock;
  np::BackendServer server(lfd, limits, config, clock);
  channel.ready();
  int exit_code = cli::kExitOk;
  constexpr int kRoundMs = 200;  // a stop signal between the check and poll() waits no longer
  while (!cli::stop_requested()) {
    const int rc = server.run_once(kRoundMs);
    for (const auto& line : server.take_log()) {
      std::fprintf(stderr, "%s: backend: %s\n", program.c_str(), line.c_str());
    }
    if (rc < 0) {
      std::fprintf(stderr, "%s: backend: poll: %s\n", program.c_str(), std::strerror(-rc));
      exit_code = cli::kExitFailure;
      break;
    }
  }
  std::vector<Counter> counters;
  for (const auto& [name, value] : server.counters()) {
    counters.push_back(Counter{name, value});
  }
  channel.final_counters(counters);
  ::close(lfd);
  ::unlink(socket_path.c_str());
  return exit_code;
}

}  // namespace xtcp_examples
