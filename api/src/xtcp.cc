// The C ABI of xtcp.h: argument checks that need no runtime, xtcp_configure's parsing, and
// forwarding to the process-wide Runtime. Pool handles are opaque ids (never dereferenced),
// so a stale or forged handle is answered with an error instead of a crash.
#include <arpa/inet.h>
#include <net/if.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "api/src/runtime.h"
#include "xtcp/xtcp.h"

namespace {

using xtcp::api::LinkSetup;
using xtcp::api::Runtime;

struct CState {
  bool configured = false;
  LinkSetup setup;
  int default_pool = 0;
};

CState& state() {
  static CState s;
  return s;
}

Runtime* rt() { return xtcp::api::process_runtime(); }

xtcp_pool* to_handle(int id) { return reinterpret_cast<xtcp_pool*>(static_cast<std::uintptr_t>(id)); }

// 0 for NULL or a handle that does not fit an id.
int to_id(const xtcp_pool* pool) {
  const auto v = reinterpret_cast<std::uintptr_t>(pool);
  return v > 0 && v <= INT32_MAX ? static_cast<int>(v) : 0;
}

// The runtime, created from xtcp_configure's settings on first use.
int ensure_runtime() {
  if (rt() != nullptr) {
    return 0;
  }
  if (!state().configured) {
    return -ENODEV;  // no link configured
  }
  int err = 0;
  std::string msg;
  std::unique_ptr<Runtime> r = Runtime::open(state().setup, &err, &msg);
  if (!r) {
    return err != 0 ? err : -ENODEV;
  }
  xtcp::api::set_process_runtime(std::move(r));
  return 0;
}

bool parse_addr(const char* s, std::uint32_t* out) {
  in_addr a{};
  if (s == nullptr || ::inet_pton(AF_INET, s, &a) != 1) {
    return false;
  }
  *out = ntohl(a.s_addr);
  return *out != 0;
}

bool pool_ok(int id) { return rt() != nullptr && id != 0 && rt()->pool_exists(id); }

// No exception crosses the C ABI: running out of memory inside the stack is -ENOMEM.
template <class F>
int guarded(F f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  } catch (...) {
    return -EIO;
  }
}

}  // namespace

extern "C" {

int xtcp_configure(const struct xtcp_config* config) {
  if (rt() != nullptr) {
    return -EALREADY;
  }
  if (config == nullptr) {
    return -EINVAL;
  }
  LinkSetup s;
  if (config->tun_name != nullptr) {
    if (std::strlen(config->tun_name) == 0 || std::strlen(config->tun_name) >= IFNAMSIZ) {
      return -EINVAL;
    }
    s.tun_name = config->tun_name;
  }
  if (!parse_addr(config->local_addr, &s.local_addr)) {
    return -EINVAL;
  }
  if (config->kernel_addr != nullptr) {
    const std::string k = config->kernel_addr;
    const auto slash = k.find('/');
    const std::string addr = k.substr(0, slash);
    if (!parse_addr(addr.c_str(), &s.kernel_addr)) {
      return -EINVAL;
    }
    if (slash != std::string::npos) {
      char* end = nullptr;
      const long prefix = std::strtol(k.c_str() + slash + 1, &end, 10);
      if (end == k.c_str() + slash + 1 || *end != '\0' || prefix < 1 || prefix > 32) {
        return -EINVAL;
      }
      s.kernel_prefix = static_cast<int>(prefix);
    }
    if (s.kernel_addr == s.local_addr) {
      return -EINVAL;
    }
  }
  if (config->pcap_path != nullptr) {
    s.pcap_path = config->pcap_path;
  }
  if (config->mtu != 0) {
    if (config->mtu < 576 || config->mtu > 65535) {
      return -EINVAL;
    }
    s.mtu = config->mtu;
  }
  if (config->max_connections != 0) {
    s.max_connections = config->max_connections;
  }
  if (config->tx_cache_size != 0) {
    s.tx_cache_size = config->tx_cache_size;
  }
  state().setup = s;
  state().configured = true;
  return 0;
}

int xtcp_initialize(size_t buffer_pool_size) {
  if (state().default_pool != 0 && pool_ok(state().default_pool)) {
    return -EALREADY;
  }
  if (buffer_pool_size == 0) {
    return -EINVAL;
  }
  if (const int rc = guarded([] { return ensure_runtime(); }); rc < 0) {
    return rc;
  }
  const int id = guarded([&] { return rt()->pool_create(buffer_pool_size); });
  if (id < 0) {
    return id;
  }
  state().default_pool = id;
  return 0;
}

int xtcp_finalize(void) {
  if (rt() == nullptr) {
    return -EINVAL;
  }
  xtcp::api::set_process_runtime(nullptr);
  state().default_pool = 0;
  return 0;
}

int xtcp_open_group(int domain, int type, int protocol, uint16_t port) {
  if (!pool_ok(state().default_pool)) {
    return -EINVAL;
  }
  return guarded([&] { return rt()->open_group(state().default_pool, domain, type, protocol, port); });
}

int xtcp_close_group(int gd) { return guarded([&] { return rt() != nullptr ? rt()->close_group(gd) : -EBADF; }); }

int xtcp_accept(int gd) { return guarded([&] { return rt() != nullptr ? rt()->accept(0, gd) : -EBADF; }); }

int xtcp_pars(int gd, int cd, struct sockaddr_in* sa) {
  return guarded([&] { return rt() != nullptr ? rt()->pars(gd, cd, sa) : -EBADF; });
}

int xtcp_close(int gd, int cd) { return guarded([&] { return rt() != nullptr ? rt()->close(0, gd, cd) : -EBADF; }); }

int xtcp_recv(int gd, int* cd, void* buf, size_t len) {
  return guarded([&] { return rt() != nullptr ? rt()->recv(0, gd, cd, buf, len) : -EBADF; });
}

int xtcp_send(int gd, int cd, size_t ackd, const void* buf, size_t len) {
  return guarded([&] { return rt() != nullptr ? rt()->send(0, gd, cd, ackd, buf, len) : -EBADF; });
}

void XTCP_ZERO(xtcp_set* set) {
  if (set != nullptr) {
    std::memset(set, 0, sizeof *set);
  }
}

void XTCP_CLR(int gd, xtcp_set* set) {
  if (set != nullptr && gd >= 0 && gd < XTCP_SETSIZE) {
    set->bits[gd / 64] &= ~(std::uint64_t{1} << (gd % 64));
  }
}

void XTCP_SET(int gd, xtcp_set* set) {
  if (set != nullptr && gd >= 0 && gd < XTCP_SETSIZE) {
    set->bits[gd / 64] |= std::uint64_t{1} << (gd % 64);
  }
}

int XTCP_ISSET(int gd, const xtcp_set* set) {
  if (set == nullptr || gd < 0 || gd >= XTCP_SETSIZE) {
    return 0;
  }
  return (set->bits[gd / 64] >> (gd % 64)) & 1u ? 1 : 0;
}

int xtcp_select(int n, xtcp_set* readgds, xtcp_set* acceptgds, struct timeval* timeout) {
  if (rt() == nullptr) {
    return -EINVAL;
  }
  return guarded([&] { return rt()->select(n, readgds, acceptgds, timeout); });
}

int xtcp_group_fd(int gd) { return guarded([&] { return rt() != nullptr ? rt()->group_fd(gd) : -EBADF; }); }

int xtcp_poll(void) { return guarded([&] { return rt() != nullptr ? rt()->poll() : -EINVAL; }); }

int xtcp_next_timeout(void) {
  return guarded([&] { return rt() != nullptr ? rt()->next_timeout_ms() : -EINVAL; });
}

int xtcp_link_fd(void) {
  if (rt() == nullptr) {
    return -EINVAL;
  }
  const int fd = rt()->link_fd();
  return fd >= 0 ? fd : -ENODEV;
}

int xtcp_connect(int gd, const struct sockaddr_in* addr) {
  return guarded([&] { return rt() != nullptr ? rt()->connect(gd, addr) : -EBADF; });
}

int xtcp_setopt(int gd, int option, int64_t value) {
  return guarded([&] { return rt() != nullptr ? rt()->setopt(gd, option, value) : -EBADF; });
}

int xtcp_getopt(int gd, int option, int64_t* value) {
  return guarded([&] { return rt() != nullptr ? rt()->getopt(gd, option, value) : -EBADF; });
}

xtcp_pool* xtcp_pool_create(size_t buffer_pool_size, int* err) {
  int rc = buffer_pool_size == 0 ? -EINVAL : guarded([] { return ensure_runtime(); });
  int id = 0;
  if (rc == 0) {
    id = guarded([&] { return rt()->pool_create(buffer_pool_size); });
    rc = id < 0 ? id : 0;
  }
  if (err != nullptr) {
    *err = rc;
  }
  return rc == 0 ? to_handle(id) : nullptr;
}

int xtcp_pool_destroy(xtcp_pool* pool) {
  const int id = to_id(pool);
  if (!pool_ok(id)) {
    return -EINVAL;
  }
  if (id == state().default_pool) {
    return -EINVAL;  // the default pool goes with xtcp_finalize
  }
  return guarded([&] { return rt()->pool_destroy(id); });
}

xtcp_pool* xtcp_default_pool(void) {
  return pool_ok(state().default_pool) ? to_handle(state().default_pool) : nullptr;
}

int xtcp_pool_open_group(xtcp_pool* pool, int domain, int type, int protocol, uint16_t port) {
  const int id = to_id(pool);
  if (!pool_ok(id)) {
    return -EINVAL;
  }
  return guarded([&] { return rt()->open_group(id, domain, type, protocol, port); });
}

int xtcp_pool_accept(xtcp_pool* pool, int gd) {
  const int id = to_id(pool);
  return guarded([&] { return pool_ok(id) ? rt()->accept(id, gd) : -EINVAL; });
}

int xtcp_pool_recv(xtcp_pool* pool, int gd, int* cd, void* buf, size_t len) {
  const int id = to_id(pool);
  return guarded([&] { return pool_ok(id) ? rt()->recv(id, gd, cd, buf, len) : -EINVAL; });
}

int xtcp_pool_send(xtcp_pool* pool, int gd, int cd, size_t ackd, const void* buf, size_t len) {
  const int id = to_id(pool);
  return guarded([&] { return pool_ok(id) ? rt()->send(id, gd, cd, ackd, buf, len) : -EINVAL; });
}

int xtcp_pool_close(xtcp_pool* pool, int gd, int cd) {
  const int id = to_id(pool);
  return guarded([&] { return pool_ok(id) ? rt()->close(id, gd, cd) : -EINVAL; });
}

int xtcp_pool_stats(const xtcp_pool* pool, struct xtcp_pool_stats* out) {
  const int id = to_id(pool);
  return guarded([&] { return pool_ok(id) ? rt()->pool_stats(id, out) : -EINVAL; });
}

}  // extern "C"
