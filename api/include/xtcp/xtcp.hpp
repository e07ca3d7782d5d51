// xtcp.hpp: a thin C++20 layer over the C ABI of xtcp.h (header-only; the C ABI stays the
// contract). Owning handles are move-only and release what they own when destroyed:
// Service (xtcp_configure + xtcp_initialize / xtcp_finalize), Pool, Group, and Connection
// for whoever wants a connection closed at scope end. The connections a group hands out
// are plain Conn values (gd, cd) that own nothing, like the C descriptors. Errors come back
// as std::error_code (generic category, errno values) inside an expected-like Result;
// xtcp::last_error() explains the last failure in words.
//
//   auto svc = xtcp::Service::start(config, 64 << 20);   // TUN link + default pool
//   auto group = svc->default_pool().open_group(7000);
//   ... xtcp::select(...) ; while (auto c = group->accept()) { ... }
//   auto r = group->recv(buf);  r->conn.send(r->size, answer);
#pragma once

#if !defined(__cplusplus) || __cplusplus < 202002L
#error "xtcp.hpp needs C++20 (compile with -std=c++20); C and older C++ use <xtcp/xtcp.h>"
#endif

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

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

// A connection of a group, NOT owned: a plain (gd, cd) pair, copyable, that closes nothing
// when it goes away. Every connection a group hands out (accept, connect, recv, writable)
// is a Conn: it stays open until close() (xtcp_close) or until its group closes, as the
// C API's descriptors do, so `while (auto c = group.accept()) { ... }` keeps every client.
// Wrap one in Connection to close it at the end of a scope.
class Conn {
 public:
  Conn() = default;
  Conn(int gd, int cd) noexcept : gd_(gd), cd_(cd) {}

  int gd() const { return gd_; }
  int cd() const { return cd_; }
  explicit operator bool() const { return cd_ > 0; }
  friend bool operator==(const Conn&, const Conn&) = default;

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
  Result<xtcp_conn_info> info() const {
    xtcp_conn_info i{};
    const int rc = xtcp_connection_info(gd_, cd_, &i);
    return rc < 0 ? Result<xtcp_conn_info>(error_from(rc)) : Result<xtcp_conn_info>(i);
  }
  std::error_code set_user_data(std::uint64_t value) const {
    const int rc = xtcp_set_user_data(gd_, cd_, value);
    return rc < 0 ? error_from(rc) : std::error_code{};
  }
  Result<std::uint64_t> user_data() const {
    std::uint64_t v = 0;
    const int rc = xtcp_get_user_data(gd_, cd_, &v);
    return rc < 0 ? Result<std::uint64_t>(error_from(rc)) : Result<std::uint64_t>(v);
  }
  // xtcp_close: FIN after the queued answers. The Conn keeps its numbers but names a
  // closed connection afterwards (calls return -EBADF).
  std::error_code close() const {
    const int rc = xtcp_close(gd_, cd_);
    return rc < 0 ? error_from(rc) : std::error_code{};
  }
  // xtcp_shutdown(SHUT_WR): FIN after the queued answers; receiving goes on.
  std::error_code shutdown_write() const {
    const int rc = xtcp_shutdown(gd_, cd_, SHUT_WR);
    return rc < 0 ? error_from(rc) : std::error_code{};
  }
  // xtcp_abort: RST, queued data dropped, the descriptor released (as close()).
  std::error_code abort() const {
    const int rc = xtcp_abort(gd_, cd_);
    return rc < 0 ? error_from(rc) : std::error_code{};
  }
  // xtcp_redeliver: the connection's unacknowledged bytes come again from the next recv.
  std::error_code redeliver() const {
    const int rc = xtcp_redeliver(gd_, cd_);
    return rc < 0 ? error_from(rc) : std::error_code{};
  }

 private:
  int gd_ = 0;
  int cd_ = 0;
};

// What xtcp_recv returned: `size` bytes of connection `conn` (0 with end == true: the
// client closed its side; a reset or timed-out connection is an error whose Conn the
// recv call hands back through its out parameter).
struct Received {
  Conn conn;
  std::size_t size = 0;
  bool end = false;
  std::uint64_t user_data = 0;  // the connection's (xtcp_set_user_data)
};

// Owns one connection: closes it when destroyed. Made explicitly from a Conn.
class Connection {
 public:
  Connection() = default;
  explicit Connection(Conn c) noexcept : c_(c) {}
  Connection(Connection&& o) noexcept : c_(std::exchange(o.c_, Conn{})) {}
  Connection& operator=(Connection&& o) noexcept {
    if (this != &o) {
      close();
      c_ = std::exchange(o.c_, Conn{});
    }
    return *this;
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { close(); }

  const Conn& get() const { return c_; }
  const Conn* operator->() const { return &c_; }
  int gd() const { return c_.gd(); }
  int cd() const { return c_.cd(); }
  explicit operator bool() const { return static_cast<bool>(c_); }
  std::error_code close() {
    if (!c_) {
      return {};
    }
    return std::exchange(c_, Conn{}).close();
  }
  // Gives up ownership: the connection stays open.
  Conn release() { return std::exchange(c_, Conn{}); }

 private:
  Conn c_;
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

  // A connection waiting for acceptance (not owned: see Conn).
  Result<Conn> accept() const {
    const int cd = xtcp_accept(gd_);
    return cd < 0 ? Result<Conn>(error_from(cd)) : Result<Conn>(Conn(gd_, cd));
  }
  Result<Conn> connect(const sockaddr_in& to) const {
    const int cd = xtcp_connect(gd_, &to);
    return cd < 0 ? Result<Conn>(error_from(cd)) : Result<Conn>(Conn(gd_, cd));
  }
  // Bytes of one connection (round-robin). For a reset or timed-out connection the error
  // is returned and its Conn is stored in *ended (when given): close it.
  Result<Received> recv(std::span<std::byte> buf, Conn* ended = nullptr) const {
    int cd = 0;
    std::uint64_t user = 0;
    const int rc = xtcp_recv_user(gd_, &cd, &user, buf.data(), buf.size());
    if (ended != nullptr) {
      *ended = rc < 0 && cd > 0 ? Conn(gd_, cd) : Conn{};
    }
    if (rc < 0) {
      return error_from(rc);
    }
    return Received{Conn(gd_, cd), static_cast<std::size_t>(rc), rc == 0, user};
  }
  // A connection whose refused send can go on now (xtcp_writable).
  Result<Conn> writable() const {
    const int cd = xtcp_writable(gd_);
    return cd < 0 ? Result<Conn>(error_from(cd)) : Result<Conn>(Conn(gd_, cd));
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

// A running per-connection capture (xtcp_capture_start); stopped (its file complete) when
// destroyed or by stop().
class Capture {
 public:
  static Result<Capture> start(const xtcp_capture_spec& spec) {
    const int id = xtcp_capture_start(&spec);
    return id < 0 ? Result<Capture>(error_from(id)) : Result<Capture>(Capture(id));
  }
  Capture() = default;
  Capture(Capture&& o) noexcept : id_(std::exchange(o.id_, 0)) {}
  Capture& operator=(Capture&& o) noexcept {
    if (this != &o) {
      stop();
      id_ = std::exchange(o.id_, 0);
    }
    return *this;
  }
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;
  ~Capture() { stop(); }

  int id() const { return id_; }
  explicit operator bool() const { return id_ > 0; }
  Result<xtcp_capture_stats> stats() const {
    xtcp_capture_stats st{};
    const int rc = xtcp_capture_query(id_, &st);
    return rc < 0 ? Result<xtcp_capture_stats>(error_from(rc)) : Result<xtcp_capture_stats>(st);
  }
  // Flushes and closes the file; the error of the last write, if one failed.
  std::error_code stop() {
    if (id_ <= 0) {
      return {};
    }
    const int rc = xtcp_capture_stop(std::exchange(id_, 0));
    return rc < 0 ? error_from(rc) : std::error_code{};
  }

 private:
  explicit Capture(int id) noexcept : id_(id) {}
  int id_ = 0;
};

// The explanation of the last failed call of this thread (xtcp_last_error).
inline std::string last_error() { return xtcp_last_error(); }
inline std::string_view version() { return xtcp_version(); }

// Every counter of the stack, by name (xtcp_counters); empty before the stack runs.
struct Counter {
  std::string_view name;
  std::uint64_t value;
};
inline std::vector<Counter> counters() {
  const int n = xtcp_counters(nullptr, 0);
  if (n <= 0) {
    return {};
  }
  std::vector<xtcp_counter> raw(static_cast<std::size_t>(n));
  const int got = xtcp_counters(raw.data(), raw.size());
  std::vector<Counter> out;
  for (int i = 0; i < got && i < n; ++i) {
    out.push_back(Counter{raw[static_cast<std::size_t>(i)].name, raw[static_cast<std::size_t>(i)].value});
  }
  return out;
}

}  // namespace xtcp
