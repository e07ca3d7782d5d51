// xtcp.hpp: a thin C++20 RAII layer over the C ABI of xtcp.h (header-only; the C ABI stays
// the contract). Handles are move-only and release what they own when destroyed: Service
// (xtcp_configure + xtcp_initialize / xtcp_finalize), Pool, Group, Connection. Errors come
// back as std::error_code (generic category, errno values) inside an expected-like Result.
//
//   auto svc = xtcp::Service::start(config, 64 << 20);   // TUN link + default pool
//   auto group = svc->default_pool().open_group(7000);
//   ... xtcp::select(...) ; group->recv(buf) -> {cd, size} ; group->send(cd, ackd, answer)
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>

#include "xtcp/xtcp.h"

namespace xtcp {

inline std::error_code error_from(int rc) { return {rc < 0 ? -rc : rc, std::generic_category()}; }

// Either a value or an error_code (std::expected is C++23).
template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}                  // NOLINT: implicit by design
  Result(std::error_code error) : v_(error) {}                // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& value() const& { return std::get<0>(v_); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return std::get<0>(v_); }
  std::error_code error() const { return ok() ? std::error_code{} : std::get<1>(v_); }
  T value_or(T other) const { return ok() ? std::get<0>(v_) : other; }

 private:
  std::variant<T, std::error_code> v_;
};

// What xtcp_recv returned: `size` bytes of connection `cd` (0 with end == true: the client
// closed its side; see error() for a reset or timed-out connection).
struct Received {
  int cd = 0;
  std::size_t size = 0;
  bool end = false;
};

// One accepted (or connected) connection of a group; closes it when destroyed.
class Connection {
 public:
  Connection() = default;
  Connection(int gd, int cd) noexcept : gd_(gd), cd_(cd) {}
  Connection(Connection&& o) noexcept : gd_(o.gd_), cd_(std::exchange(o.cd_, 0)) {}
  Connection& operator=(Connection&& o) noexcept {
    if (this != &o) {
      close();
      gd_ = o.gd_;
      cd_ = std::exchange(o.cd_, 0);
    }
    return *this;
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { close(); }

  int gd() const { return gd_; }
  int cd() const { return cd_; }
  explicit operator bool() const { return cd_ > 0; }

  // Acknowledges ackd bytes of the last recv on this connection and queues the answer.
  Result<std::size_t> send(std::size_t ackd, std::span<const std::byte> answer) const {
    const int rc = xtcp_send(gd_, cd_, ackd, answer.data(), answer.size());
    return rc < 0 ? Result<std::size_t>(error_from(rc)) : Result<std::size_t>(static_cast<std::size_t>(rc));
  }
  Result<std::size_t> send(std::size_t ackd, std::string_view answer) const {
    return send(ackd, std::as_bytes(std::span(answer.data(), answer.size())));
  }
  // The ACK alone (xtcp_send with len 0).
  std::error_code ack(std::size_t ackd) const {
    const int rc = xtcp_send(gd_, cd_, ackd, nullptr, 0);
    return rc < 0 ? error_from(rc) : std::error_code{};
  }
  Result<sockaddr_in> peer() const {
    sockaddr_in sa{};
    const int rc = xtcp_pars(gd_, cd_, &sa);
    return rc < 0 ? Result<sockaddr_in>(error_from(rc)) : Result<sockaddr_in>(sa);
  }
  std::error_code close() {
    if (cd_ <= 0) {
      return {};
    }
    const int rc = xtcp_close(gd_, std::exchange(cd_, 0));
    return rc < 0 ? error_from(rc) : std::error_code{};
  }
  // Gives up ownership: the descriptor stays open.
  int release() { return std::exchange(cd_, 0); }

 private:
  int gd_ = 0;
  int cd_ = 0;
};

// A group bound to a port, with its one pollable descriptor; closed when destroyed.
class Group {
 public:
  Group() = default;
  explicit Group(int gd) noexcept : gd_(gd) {}
  Group(Group&& o) noexcept : gd_(std::exchange(o.gd_, 0)) {}
  Group& operator=(Group&& o) noexcept {
    if (this != &o) {
      close();
      gd_ = std::exchange(o.gd_, 0);
    }
    return *this;
  }
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;
  ~Group() { close(); }

  int gd() const { return gd_; }
  explicit operator bool() const { return gd_ > 0; }
  // The eventfd for the application's own epoll set.
  int fd() const { return xtcp_group_fd(gd_); }

  Result<Connection> accept() const {
    const int cd = xtcp_accept(gd_);
    return cd < 0 ? Result<Connection>(error_from(cd)) : Result<Connection>(Connection(gd_, cd));
  }
  Result<Connection> connect(const sockaddr_in& to) const {
    const int cd = xtcp_connect(gd_, &to);
    return cd < 0 ? Result<Connection>(error_from(cd)) : Result<Connection>(Connection(gd_, cd));
  }
  // Bytes of one connection (round-robin); an error for a reset connection carries its cd
  // in *cd_out when given.
  Result<Received> recv(std::span<std::byte> buf, int* cd_out = nullptr) const {
    int cd = 0;
    const int rc = xtcp_recv(gd_, &cd, buf.data(), buf.size());
    if (cd_out != nullptr) {
      *cd_out = cd;
    }
    if (rc < 0) {
      return error_from(rc);
    }
    return Received{cd, static_cast<std::size_t>(rc), rc == 0};
  }
  Result<std::size_t> send(int cd, std::size_t ackd, std::span<const std::byte> answer) const {
    const int rc = xtcp_send(gd_, cd, ackd, answer.data(), answer.size());
    return rc < 0 ? Result<std::size_t>(error_from(rc)) : Result<std::size_t>(static_cast<std::size_t>(rc));
  }
  Result<std::size_t> send(int cd, std::size_t ackd, std::string_view answer) const {
    return send(cd, ackd, std::as_bytes(std::span(answer.data(), answer.size())));
  }
  std::error_code set(int option, std::int64_t value) const {
    const int rc = xtcp_setopt(gd_, option, value);
    return rc < 0 ? error_from(rc) : std::error_code{};
  }
  Result<std::int64_t> get(int option) const {
    std::int64_t v = 0;
    const int rc = xtcp_getopt(gd_, option, &v);
    return rc < 0 ? Result<std::int64_t>(error_from(rc)) : Result<std::int64_t>(v);
  }
  std::error_code close() {
    if (gd_ <= 0) {
      return {};
    }
    const int rc = xtcp_close_group(std::exchange(gd_, 0));
    return rc < 0 ? error_from(rc) : std::error_code{};
  }
  int release() { return std::exchange(gd_, 0); }

 private:
  int gd_ = 0;
};

// A connection pool. Pools made by create() are destroyed with the handle; the default
// pool (xtcp_initialize) belongs to the Service.
class Pool {
 public:
  Pool() = default;
  Pool(Pool&& o) noexcept : p_(std::exchange(o.p_, nullptr)), owned_(o.owned_) {}
  Pool& operator=(Pool&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = std::exchange(o.p_, nullptr);
      owned_ = o.owned_;
    }
    return *this;
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool() { reset(); }

  static Result<Pool> create(std::size_t buffer_pool_size) {
    int err = 0;
    xtcp_pool* p = xtcp_pool_create(buffer_pool_size, &err);
    if (p == nullptr) {
      return error_from(err != 0 ? err : -ENOMEM);
    }
    return Pool(p, true);
  }
  // The default pool, not owned (valid between xtcp_initialize and xtcp_finalize).
  static Pool default_pool() { return Pool(xtcp_default_pool(), false); }

  xtcp_pool* get() const { return p_; }
  explicit operator bool() const { return p_ != nullptr; }

  Result<Group> open_group(std::uint16_t port, int domain = PF_INET, int type = SOCK_STREAM) const {
    const int gd = xtcp_pool_open_group(p_, domain, type, 0, port);
    return gd < 0 ? Result<Group>(error_from(gd)) : Result<Group>(Group(gd));
  }
  Result<struct xtcp_pool_stats> stats() const {
    struct xtcp_pool_stats s{};
    const int rc = xtcp_pool_stats(p_, &s);
    return rc < 0 ? Result<struct xtcp_pool_stats>(error_from(rc)) : Result<struct xtcp_pool_stats>(s);
  }
  void reset() {
    if (p_ != nullptr && owned_) {
      xtcp_pool_destroy(p_);
    }
    p_ = nullptr;
  }

 private:
  Pool(xtcp_pool* p, bool owned) : p_(p), owned_(owned) {}
  xtcp_pool* p_ = nullptr;
  bool owned_ = false;
};

// The running service: link configured, default pool made; xtcp_finalize when destroyed.
class Service {
 public:
  Service(Service&& o) noexcept : live_(std::exchange(o.live_, false)) {}
  Service& operator=(Service&& o) noexcept {
    if (this != &o) {
      stop();
      live_ = std::exchange(o.live_, false);
    }
    return *this;
  }
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;
  ~Service() { stop(); }

  static Result<Service> start(const xtcp_config& config, std::size_t buffer_pool_size) {
    if (const int rc = xtcp_configure(&config); rc < 0) {
      return error_from(rc);
    }
    return start(buffer_pool_size);
  }
  // When the link is already configured (or a test installed its own runtime).
  static Result<Service> start(std::size_t buffer_pool_size) {
    if (const int rc = xtcp_initialize(buffer_pool_size); rc < 0) {
      return error_from(rc);
    }
    return Service();
  }
  Pool default_pool() const { return Pool::default_pool(); }
  void stop() {
    if (std::exchange(live_, false)) {
      xtcp_finalize();
    }
  }

 private:
  Service() = default;
  bool live_ = true;
};

// A set of groups for select().
class GroupSet {
 public:
  GroupSet() { XTCP_ZERO(&set_); }
  void add(int gd) { XTCP_SET(gd, &set_); }
  void add(const Group& g) { XTCP_SET(g.gd(), &set_); }
  void remove(int gd) { XTCP_CLR(gd, &set_); }
  bool contains(int gd) const { return XTCP_ISSET(gd, &set_) != 0; }
  bool contains(const Group& g) const { return contains(g.gd()); }
  xtcp_set* get() { return &set_; }

 private:
  xtcp_set set_;
};

// xtcp_select over [0, XTCP_SETSIZE): drives the stack until a group is ready or the
// timeout passes (nullopt: wait indefinitely). The sets keep only the ready groups.
inline Result<int> select(GroupSet& read, GroupSet& accept,
                          std::optional<std::chrono::microseconds> timeout) {
  timeval tv{};
  if (timeout) {
    tv.tv_sec = static_cast<time_t>(timeout->count() / 1'000'000);
    tv.tv_usec = static_cast<suseconds_t>(timeout->count() % 1'000'000);
  }
  const int rc = xtcp_select(XTCP_SETSIZE, read.get(), accept.get(), timeout ? &tv : nullptr);
  return rc < 0 ? Result<int>(error_from(rc)) : Result<int>(rc);
}

}  // namespace xtcp
