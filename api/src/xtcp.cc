// The C ABI of xtcp.h: argument checks that need no runtime, xtcp_configure's parsing, and
// forwarding to the process-wide Runtime. Pool handles are opaque ids (never dereferenced),
// so a stale or forged handle is answered with an error instead of a crash.
#include <arpa/inet.h>
#include <net/if.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>
#include <new>
#include <string>

#include "api/src/errors.h"
#include "api/src/runtime.h"
#include "stack/netif/shm_link.h"
#include "stack/netif/uring_tun_link.h"
#include "xtcp/xtcp.h"

// shm_name took one of the reserved words, tun_multi_queue the reserved uint32_t, link_io and
// reserved_u32b another reserved word: the struct (and so the ABI) keeps its size, and every
// field before them its offset.
static_assert(sizeof(void*) != 8 || sizeof(struct xtcp_config) == 104,
              "struct xtcp_config must keep its size (104 bytes on LP64)");
static_assert(sizeof(void*) != 8 || (offsetof(struct xtcp_config, shm_name) == 56 &&
                                     offsetof(struct xtcp_config, link_io) == 64 &&
                                     offsetof(struct xtcp_config, reserved_u32b) == 68 &&
                                     offsetof(struct xtcp_config, reserved) == 72),
              "link_io and reserved_u32b take the place of reserved[0] on LP64");

namespace {

using xtcp::api::CallScope;
using xtcp::api::explain;
using xtcp::api::LinkSetup;
using xtcp::api::Runtime;

struct CState {
  bool configured = false;
  LinkSetup setup;
  int default_pool = 0;
  xtcp_log_fn log_fn = nullptr;
  int log_level = XTCP_LOG_WARNING;
  void* log_arg = nullptr;
};

CState& state() {
  static CState s;
  return s;
}

Runtime* rt() { return xtcp::api::process_runtime(); }

// The engine's Logger speaks LogLevel; the application's callback gets the C level.
void log_to_application(xtcp::LogLevel level, const char* message, void* arg) {
  const CState& s = *static_cast<const CState*>(arg);
  if (s.log_fn != nullptr) {
    s.log_fn(static_cast<int>(level), message, s.log_arg);
  }
}

void apply_log_settings(Runtime& r) {
  CState& s = state();
  r.logger().set_sink(s.log_fn != nullptr ? &log_to_application : nullptr,
                      static_cast<xtcp::LogLevel>(s.log_level), &s);
}

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
    explain("no link configured: call xtcp_configure first");
    return -ENODEV;
  }
  int err = 0;
  std::string msg;
  std::unique_ptr<Runtime> r = Runtime::open(state().setup, &err, &msg);
  if (!r) {
    explain(msg);
    return err != 0 ? err : -ENODEV;
  }
  apply_log_settings(*r);
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

// One C call: no exception crosses the C ABI (running out of memory inside the stack is
// -ENOMEM), and a failure leaves its explanation for xtcp_last_error().
template <class F>
int guarded(const char* call, F f) noexcept {
  CallScope scope(call);
  try {
    return scope.finish(f());
  } catch (const std::bad_alloc&) {
    explain("out of memory");
    return scope.finish(-ENOMEM);
  } catch (...) {
    return scope.finish(-EIO);
  }
}

}  // namespace

extern "C" {

const char* xtcp_version(void) { return XTCP_VERSION_STRING; }

const char* xtcp_last_error(void) { return xtcp::api::last_error(); }

void xtcp_set_log(xtcp_log_fn fn, int max_level, void* arg) {
  CState& s = state();
  s.log_fn = fn;
  s.log_level = max_level < XTCP_LOG_ERROR ? XTCP_LOG_ERROR : (max_level > XTCP_LOG_DEBUG ? XTCP_LOG_DEBUG : max_level);
  s.log_arg = arg;
  if (rt() != nullptr) {
    apply_log_settings(*rt());
  }
}

int xtcp_configure(const struct xtcp_config* config) {
  return guarded("xtcp_configure", [&]() -> int {
    if (rt() != nullptr) {
      explain("the stack is already running (call xtcp_finalize first)");
      return -EALREADY;
    }
    if (config == nullptr) {
      explain("config is NULL");
      return -EINVAL;
    }
    LinkSetup s;
    if (config->tun_name != nullptr) {
      const std::size_t n = std::strlen(config->tun_name);
      if (n == 0 || n >= IFNAMSIZ) {
        explain("tun_name \"%s\": a device name has 1 to %d characters", config->tun_name, IFNAMSIZ - 1);
        return -EINVAL;
      }
      s.tun_name = config->tun_name;
    }
    if (config->shm_name != nullptr) {
      const std::string name = config->shm_name;
      if (name.empty() || name.size() > xtcp::ShmLink::kMaxName || name.find('/') != std::string::npos) {
        explain("shm_name \"%s\": a shared-memory link name has 1 to %zu characters and no '/'", name.c_str(),
                xtcp::ShmLink::kMaxName);
        return -EINVAL;
      }
      s.shm_name = name;
    }
    if (!parse_addr(config->local_addr, &s.local_addr)) {
      explain("local_addr \"%s\" is not an IPv4 address (dotted quad, not 0.0.0.0)",
              config->local_addr != nullptr ? config->local_addr : "(null)");
      return -EINVAL;
    }
    if (config->kernel_addr != nullptr) {
      const std::string k = config->kernel_addr;
      const auto slash = k.find('/');
      const std::string addr = k.substr(0, slash);
      if (!parse_addr(addr.c_str(), &s.kernel_addr)) {
        explain("kernel_addr \"%s\": expected ADDR or ADDR/PREFIX with an IPv4 address", k.c_str());
        return -EINVAL;
      }
      if (slash != std::string::npos) {
        char* end = nullptr;
        const long prefix = std::strtol(k.c_str() + slash + 1, &end, 10);
        if (end == k.c_str() + slash + 1 || *end != '\0' || prefix < 1 || prefix > 32) {
          explain("kernel_addr \"%s\": the prefix length must be 1 to 32", k.c_str());
          return -EINVAL;
        }
        s.kernel_prefix = static_cast<int>(prefix);
      }
      if (s.kernel_addr == s.local_addr) {
        explain("kernel_addr and local_addr are both %s: the two ends of the TUN need two addresses",
                addr.c_str());
        return -EINVAL;
      }
    }
    if (config->pcap_path != nullptr) {
      s.pcap_path = config->pcap_path;
    }
    if (config->mtu != 0) {
      if (config->mtu < 576 || config->mtu > 65535) {
        explain("mtu %u: must be 576 to 65535", config->mtu);
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
    if (config->tun_queue_len != 0) {
      if (config->tun_queue_len > xtcp::api::kMaxTunQueueLen) {
        explain("tun_queue_len %u: at most %u packets (the kernel's limit for a TUN queue)", config->tun_queue_len,
                xtcp::api::kMaxTunQueueLen);
        return -EINVAL;
      }
      s.tun_queue_len = config->tun_queue_len;
    }
    s.tun_multi_queue = config->tun_multi_queue != 0;
    if (config->link_io == XTCP_IO_URING) {
      if (!s.shm_name.empty()) {
        explain("link_io XTCP_IO_URING is for the TUN device; the shared-memory link (shm_name) has "
                "no system call to batch");
        return -EINVAL;
      }
      // Asked now, so that the program hears it at configure time rather than at its first
      // pool; Runtime::open reports a kernel that refuses the real ring the same way.
      std::string why;
      if (!xtcp::UringTunLink::available(&why)) {
        explain("link_io XTCP_IO_URING: %s; use XTCP_IO_RW", why.c_str());
        return -ENOTSUP;
      }
      s.link_io = XTCP_IO_URING;
    } else if (config->link_io != XTCP_IO_RW) {
      explain("link_io %u: expected XTCP_IO_RW (0) or XTCP_IO_URING (1)", config->link_io);
      return -EINVAL;
    }
    if (config->reserved_u32b != 0 ||
        std::any_of(std::begin(config->reserved), std::end(config->reserved),
                    [](std::size_t v) { return v != 0; })) {
      explain("the reserved fields must be 0 (initialize the struct with {0})");
      return -EINVAL;
    }
    state().setup = s;
    state().configured = true;
    return 0;
  });
}

int xtcp_initialize(size_t buffer_pool_size) {
  return guarded("xtcp_initialize", [&]() -> int {
    if (state().default_pool != 0 && pool_ok(state().default_pool)) {
      explain("the default pool exists already");
      return -EALREADY;
    }
    if (buffer_pool_size == 0) {
      explain("buffer_pool_size is 0");
      return -EINVAL;
    }
    if (const int rc = ensure_runtime(); rc < 0) {
      return rc;
    }
    apply_log_settings(*rt());
    const int id = rt()->pool_create(buffer_pool_size);
    if (id < 0) {
      return id;
    }
    state().default_pool = id;
    return 0;
  });
}

int xtcp_finalize(void) {
  return guarded("xtcp_finalize", [&]() -> int {
    if (rt() == nullptr) {
      explain("not initialized");
      return -EINVAL;
    }
    xtcp::api::set_process_runtime(nullptr);
    state().default_pool = 0;
    return 0;
  });
}

int xtcp_open_group(int domain, int type, int protocol, uint16_t port) {
  return guarded("xtcp_open_group", [&]() -> int {
    if (!pool_ok(state().default_pool)) {
      explain("no default pool: call xtcp_initialize first");
      return -EINVAL;
    }
    return rt()->open_group(state().default_pool, domain, type, protocol, port);
  });
}

// The per-group and per-connection calls: -EBADF before xtcp_initialize.
#define XTCP_FORWARD(call, expr) \
  guarded(call, [&]() -> int { return rt() != nullptr ? (expr) : -EBADF; })

int xtcp_close_group(int gd) { return XTCP_FORWARD("xtcp_close_group", rt()->close_group(gd)); }

int xtcp_accept(int gd) { return XTCP_FORWARD("xtcp_accept", rt()->accept(0, gd)); }

int xtcp_pars(int gd, int cd, struct sockaddr_in* sa) { return XTCP_FORWARD("xtcp_pars", rt()->pars(gd, cd, sa)); }

int xtcp_close(int gd, int cd) { return XTCP_FORWARD("xtcp_close", rt()->close(0, gd, cd)); }

int xtcp_shutdown(int gd, int cd, int how) { return XTCP_FORWARD("xtcp_shutdown", rt()->shutdown(gd, cd, how)); }

int xtcp_abort(int gd, int cd) { return XTCP_FORWARD("xtcp_abort", rt()->abort(gd, cd)); }

int xtcp_redeliver(int gd, int cd) { return XTCP_FORWARD("xtcp_redeliver", rt()->redeliver(gd, cd)); }

int xtcp_recv(int gd, int* cd, void* buf, size_t len) {
  return XTCP_FORWARD("xtcp_recv", rt()->recv(0, gd, cd, buf, len));
}

int xtcp_recv_user(int gd, int* cd, uint64_t* user_data, void* buf, size_t len) {
  return XTCP_FORWARD("xtcp_recv_user", rt()->recv(0, gd, cd, buf, len, user_data));
}

int xtcp_send(int gd, int cd, size_t ackd, const void* buf, size_t len) {
  return XTCP_FORWARD("xtcp_send", rt()->send(0, gd, cd, ackd, buf, len));
}

int xtcp_set_user_data(int gd, int cd, uint64_t value) {
  return XTCP_FORWARD("xtcp_set_user_data", rt()->set_user_data(gd, cd, value));
}

int xtcp_get_user_data(int gd, int cd, uint64_t* value) {
  return XTCP_FORWARD("xtcp_get_user_data", rt()->get_user_data(gd, cd, value));
}

int xtcp_writable(int gd) { return XTCP_FORWARD("xtcp_writable", rt()->writable(gd)); }

int xtcp_connection_info(int gd, int cd, struct xtcp_conn_info* out) {
  return XTCP_FORWARD("xtcp_connection_info", rt()->conn_info(gd, cd, out));
}

int xtcp_counters(struct xtcp_counter* out, size_t n) {
  return guarded("xtcp_counters", [&]() -> int {
    if (rt() == nullptr) {
      explain("not initialized");
      return -EINVAL;
    }
    if (out == nullptr && n > 0) {
      explain("out is NULL with n %zu", n);
      return -EINVAL;
    }
    return rt()->counters(out, n);
  });
}

// The capture calls: -EINVAL before xtcp_initialize (there is no link to capture yet).
#define XTCP_CAPTURE_CALL(call, expr)                \
  guarded(call, [&]() -> int {                       \
    if (rt() == nullptr) {                           \
      explain("not initialized");                    \
      return -EINVAL;                                \
    }                                                \
    return (expr);                                   \
  })

int xtcp_capture_start(const struct xtcp_capture_spec* spec) {
  return XTCP_CAPTURE_CALL("xtcp_capture_start", rt()->capture_start(spec));
}

int xtcp_capture_stop(int id) { return XTCP_CAPTURE_CALL("xtcp_capture_stop", rt()->capture_stop(id)); }

int xtcp_capture_query(int id, struct xtcp_capture_stats* out) {
  return XTCP_CAPTURE_CALL("xtcp_capture_query", rt()->capture_query(id, out));
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
  return guarded("xtcp_select", [&]() -> int {
    if (rt() == nullptr) {
      explain("not initialized");
      return -EINVAL;
    }
    return rt()->select(n, readgds, acceptgds, timeout);
  });
}

int xtcp_group_fd(int gd) { return XTCP_FORWARD("xtcp_group_fd", rt()->group_fd(gd)); }

int xtcp_poll(void) {
  return guarded("xtcp_poll", [&]() -> int {
    if (rt() == nullptr) {
      explain("not initialized");
      return -EINVAL;
    }
    return rt()->poll();
  });
}

int xtcp_next_timeout(void) {
  return guarded("xtcp_next_timeout", [&]() -> int {
    if (rt() == nullptr) {
      explain("not initialized");
      return -EINVAL;
    }
    // The recipe calls this right before epoll_wait: the application's answers queued in a
    // batching link (XTCP_IO_URING) go now, not after the sleep.
    rt()->flush();
    return rt()->next_timeout_ms();
  });
}

int xtcp_link_fd(void) {
  return guarded("xtcp_link_fd", [&]() -> int {
    if (rt() == nullptr) {
      explain("not initialized");
      return -EINVAL;
    }
    const int fd = rt()->link_fd();
    if (fd < 0) {
      explain("the link has no descriptor (an in-memory link)");
      return -ENODEV;
    }
    return fd;
  });
}

int xtcp_connect(int gd, const struct sockaddr_in* addr) {
  return XTCP_FORWARD("xtcp_connect", rt()->connect(gd, addr));
}

int xtcp_setopt(int gd, int option, int64_t value) {
  return XTCP_FORWARD("xtcp_setopt", rt()->setopt(gd, option, value));
}

int xtcp_getopt(int gd, int option, int64_t* value) {
  return XTCP_FORWARD("xtcp_getopt", rt()->getopt(gd, option, value));
}

xtcp_pool* xtcp_pool_create(size_t buffer_pool_size, int* err) {
  int id = 0;
  const int rc = guarded("xtcp_pool_create", [&]() -> int {
    if (buffer_pool_size == 0) {
      explain("buffer_pool_size is 0");
      return -EINVAL;
    }
    if (const int r = ensure_runtime(); r < 0) {
      return r;
    }
    id = rt()->pool_create(buffer_pool_size);
    return id < 0 ? id : 0;
  });
  if (err != nullptr) {
    *err = rc;
  }
  return rc == 0 ? to_handle(id) : nullptr;
}

// The calls that name a pool: -EINVAL for an unknown or stale handle.
#define XTCP_POOL_FORWARD(call, pool, expr)                          \
  guarded(call, [&]() -> int {                                       \
    const int id = to_id(pool);                                      \
    if (!pool_ok(id)) {                                              \
      explain("not a pool handle (unknown, destroyed, or NULL)");    \
      return -EINVAL;                                                \
    }                                                                \
    return (expr);                                                   \
  })

int xtcp_pool_destroy(xtcp_pool* pool) {
  return XTCP_POOL_FORWARD("xtcp_pool_destroy", pool, id == state().default_pool
      ? (explain("the default pool goes with xtcp_finalize"), -EINVAL)
      : rt()->pool_destroy(id));
}

xtcp_pool* xtcp_default_pool(void) {
  return pool_ok(state().default_pool) ? to_handle(state().default_pool) : nullptr;
}

int xtcp_pool_open_group(xtcp_pool* pool, int domain, int type, int protocol, uint16_t port) {
  return XTCP_POOL_FORWARD("xtcp_pool_open_group", pool, rt()->open_group(id, domain, type, protocol, port));
}

int xtcp_pool_accept(xtcp_pool* pool, int gd) {
  return XTCP_POOL_FORWARD("xtcp_pool_accept", pool, rt()->accept(id, gd));
}

int xtcp_pool_recv(xtcp_pool* pool, int gd, int* cd, void* buf, size_t len) {
  return XTCP_POOL_FORWARD("xtcp_pool_recv", pool, rt()->recv(id, gd, cd, buf, len));
}

int xtcp_pool_send(xtcp_pool* pool, int gd, int cd, size_t ackd, const void* buf, size_t len) {
  return XTCP_POOL_FORWARD("xtcp_pool_send", pool, rt()->send(id, gd, cd, ackd, buf, len));
}

int xtcp_pool_close(xtcp_pool* pool, int gd, int cd) {
  return XTCP_POOL_FORWARD("xtcp_pool_close", pool, rt()->close(id, gd, cd));
}

int xtcp_pool_stats(const xtcp_pool* pool, struct xtcp_pool_stats* out) {
  return XTCP_POOL_FORWARD("xtcp_pool_stats", pool, rt()->pool_stats(id, out));
}

}  // extern "C"
