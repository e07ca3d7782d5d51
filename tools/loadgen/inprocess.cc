// In-process targets: the XTCP runtime installed as the process runtime on the in-memory
// link, then the IM server (server_examples/im) or an echo loop on the C API.
#include "tools/loadgen/inprocess.h"

#include <xtcp/xtcp.h>

#include <sys/socket.h>

#include <cerrno>
#include <vector>

#include "api/src/runtime.h"
#include "server_examples/im/im_server.h"

namespace xtcp::loadgen {

namespace {

using xtcp_examples::ImCore;

std::uint64_t mem_total() {
  const int n = xtcp_counters(nullptr, 0);
  if (n <= 0) {
    return 0;
  }
  std::vector<xtcp_counter> c(static_cast<std::size_t>(n));
  xtcp_counters(c.data(), c.size());
  for (const auto& e : c) {
    if (std::string(e.name) == "mem.total") {
      return e.value;
    }
  }
  return 0;
}

// The process runtime, made on the in-memory link; finalized with the target.
int install_runtime(Link& link, const Clock& clock, std::uint32_t addr, std::uint32_t connections,
                    std::string* error) {
  api::RuntimeConfig config;
  config.stack.ip.local_addr = addr;
  config.stack.tcp.max_connections = connections + connections / 10 + 1024;
  config.tx_cache_size = 256u << 20;
  api::set_process_runtime(std::make_unique<api::Runtime>(config, link, clock));
  const int rc = xtcp_initialize(64u << 20);
  if (rc < 0) {
    *error = xtcp_last_error();
    api::set_process_runtime(nullptr);
  }
  return rc;
}

class ImTarget final : public InProcessTarget {
 public:
  ~ImTarget() override {
    server_.close();
    xtcp_finalize();
  }
  int open(std::uint16_t port, std::string* error) {
    std::string what;
    server_.set_presence(ImCore::Presence::kWatched);  // as xtcp-im --presence watched
    const int rc = server_.open(port, &what);
    if (rc < 0) {
      *error = what + ": " + xtcp_last_error();
    }
    return rc;
  }
  void pump() override { server_.run_once(0); }
  std::uint64_t memory_bytes() const override { return mem_total(); }

 private:
  xtcp_examples::ImServer server_;
};

// Echo on the C API: whole answers or nothing (XTCP_OPT_SEND_ALL), so what the transmit
// cache cannot take now comes again from xtcp_recv once it can.
class EchoTarget final : public InProcessTarget {
 public:
  ~EchoTarget() override {
    if (gd_ > 0) {
      xtcp_close_group(gd_);
    }
    xtcp_finalize();
  }
  int open(std::uint16_t port, std::string* error) {
    gd_ = xtcp_open_group(PF_INET, SOCK_STREAM, 0, port);
    if (gd_ < 0 || xtcp_setopt(gd_, XTCP_OPT_SEND_ALL, 1) < 0) {
      *error = xtcp_last_error();
      return gd_ < 0 ? gd_ : -EINVAL;
    }
    return 0;
  }
  void pump() override {
    xtcp_set r;
    xtcp_set a;
    XTCP_ZERO(&r);
    XTCP_ZERO(&a);
    XTCP_SET(gd_, &r);
    XTCP_SET(gd_, &a);
    timeval zero{0, 0};
    if (xtcp_select(gd_ + 1, &r, &a, &zero) <= 0) {
      return;
    }
    for (int i = 0; i < 4096 && xtcp_accept(gd_) > 0; ++i) {
    }
    for (int i = 0; i < 8192; ++i) {
      int cd = 0;
      const int n = xtcp_recv(gd_, &cd, buf_.data(), buf_.size());
      if (n == -EAGAIN) {
        break;
      }
      if (n <= 0) {
        if (cd > 0) {
          xtcp_close(gd_, cd);  // end or reset: FIN after the last echo
        }
        continue;
      }
      xtcp_send(gd_, cd, static_cast<std::size_t>(n), buf_.data(), static_cast<std::size_t>(n));
    }
  }
  std::uint64_t memory_bytes() const override { return mem_total(); }

 private:
  int gd_ = -1;
  std::vector<char> buf_ = std::vector<char>(64 * 1024);
};

}  // namespace

std::unique_ptr<InProcessTarget> InProcessTarget::create(Kind kind, Link& link, const Clock& clock,
                                                         std::uint32_t addr, std::uint16_t port,
                                                         std::uint32_t connections, std::string* error) {
  if (api::process_runtime() != nullptr) {
    *error = "an XTCP runtime already exists in this process";
    return nullptr;
  }
  if (install_runtime(link, clock, addr, connections, error) < 0) {
    return nullptr;
  }
  if (kind == Kind::kIm) {
    auto t = std::make_unique<ImTarget>();
    if (t->open(port, error) < 0) {
      return nullptr;
    }
    return t;
  }
  auto t = std::make_unique<EchoTarget>();
  if (t->open(port, error) < 0) {
    return nullptr;
  }
  return t;
}

}  // namespace xtcp::loadgen
