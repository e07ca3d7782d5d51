// The XTCP runtime (see runtime.h), part 1: construction, pools, groups and their options,
// and xtcp_select's drive loop. Connections (events, readiness, recv/send) are in
// runtime_conn.cc.
#include "api/src/runtime.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstring>
#include <new>

#include "api/src/errors.h"
#include "api/src/runtime_internal.h"

namespace xtcp::api {

using internal::header_len;
using internal::kConnecting;
using internal::kEnded;
using internal::kEndReported;
using internal::kFree;
using internal::kMaxSlots;
using internal::kNil;
using internal::kOpen;
using internal::kPeerFin;
using internal::kPending;
using internal::kQueued;
using internal::load_be;

namespace {
std::atomic<int> g_next_pool_id{1};

// API slots: one per engine connection the application holds, plus connections whose engine
// side is gone (reset by the runtime) and not yet closed by the application.
std::uint32_t slot_capacity(const RuntimeConfig& config) {
  const std::uint64_t engine = std::min<std::uint64_t>(config.stack.tcp.max_connections, kMaxSlots);
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(kMaxSlots, 2 * engine + 64));
}
}  // namespace

// ---- the engine index --------------------------------------------------------------------

EngineIndex::~EngineIndex() {
  if (entries_ != nullptr) {
    ::munmap(entries_, static_cast<std::size_t>(cap_) * sizeof(std::uint32_t));
  }
}

void EngineIndex::reserve(std::uint32_t n) {
  if (n == 0) {
    return;
  }
  void* p = ::mmap(nullptr, static_cast<std::size_t>(n) * sizeof(std::uint32_t), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    throw std::bad_alloc();
  }
  entries_ = static_cast<std::uint32_t*>(p);
  cap_ = n;
}

bool EngineIndex::set(ConnId id, std::uint32_t slot) {
  if (id >= cap_) {
    return false;
  }
  entries_[id] = slot + 1;
  high_ = std::max(high_, id + 1);
  return true;
}

std::size_t EngineIndex::resident_bytes() const {
  constexpr std::size_t kPage = 4096;
  return (static_cast<std::size_t>(high_) * sizeof(std::uint32_t) + kPage - 1) / kPage * kPage;
}

// ---- construction ------------------------------------------------------------------------

Runtime::Runtime(const RuntimeConfig& config, Link& link, const Clock& clock)
    : Runtime(config, link, clock, nullptr) {}

Runtime::Runtime(const RuntimeConfig& config, Link& link, const Clock& clock,
                 std::unique_ptr<Owned> owned)
    : config_(config),
      owned_(std::move(owned)),
      link_(link),
      clock_(clock),
      tx_(config.tx_cache_size, config.tx_chunk_size, config.tx_conn_limit),
      rx_(config.conn_window),
      groups_(XTCP_SETSIZE),
      port_gd_(65536, 0),
      conns_(slot_capacity(config)),
      cold_(slot_capacity(config)) {
  config_.stack.tcp.max_connections =
      std::min<std::uint32_t>(config_.stack.tcp.max_connections, kMaxSlots);
  config_.stack.logger = &logger_;
  // Every per-connection index is reserved for the most connections at start-up: no table
  // grows (and stalls) on the packet path; pages become resident only as ids are used.
  tx_.reserve_connections(config_.stack.tcp.max_connections);
  rx_.reserve_connections(config_.stack.tcp.max_connections);
  // Programs (owned link, SteadyClock) write wall-clock pcap timestamps; tests the Clock's.
  capture_ = std::make_unique<CaptureTap>(link_, clock_, owned_ != nullptr, &logger_);
  stack_ = std::make_unique<Stack>(config_.stack, *capture_, clock_, rx_, tx_);
  engine_to_slot_.reserve(stack_->tcp().config().max_connections);
  // A connection belongs to the pool of the group listening on its local port; an active
  // open to the pool staged by connect().
  rx_.set_resolver([this](ConnId c) -> int {
    ConnInfo info{};
    if (stack_ && stack_->tcp().info(c, &info) == 0) {
      if (const std::uint16_t gd = port_gd_[info.key.local_port]; gd != 0) {
        if (const Group* g = group(gd)) {
          if (const Pool* p = pool_of(g->pool)) {
            return p->slot;
          }
        }
      }
    }
    return staged_pool_slot_;
  });
}

std::uint32_t tun_queue_packets(const LinkSetup& setup) {
  if (setup.tun_queue_len != 0) {
    return std::min(setup.tun_queue_len, kMaxTunQueueLen);
  }
  const std::uint64_t want = std::uint64_t{kTunQueuePerConnection} * setup.max_connections;
  return static_cast<std::uint32_t>(std::clamp<std::uint64_t>(want, 10'000, kMaxTunQueueLen));
}

std::unique_ptr<Runtime> Runtime::open(const LinkSetup& setup, int* error, std::string* message) {
  auto fail = [&](int e, const std::string& m) -> std::unique_ptr<Runtime> {
    if (error != nullptr) {
      *error = e;
    }
    if (message != nullptr) {
      *message = m;
    }
    return nullptr;
  };
  if (setup.local_addr == 0) {
    return fail(-EINVAL, "no local address");
  }
  auto owned = std::make_unique<Owned>();
  std::string msg;
  int code = 0;
  if (!setup.shm_name.empty()) {
    // A point-to-point link to one client process: no device, no kernel side to configure.
    // The stack answers every packet to its source address over the one link, so the
    // client's address range needs no route here.
    // Slots grow with an MTU above the default 2 KiB slot's (up to 64 KiB slots). Each ring
    // holds at least tun_queue_len packets, the room a TUN device's queue would give: one
    // input can fan out into thousands of answers (IM presence), and a full ring drops.
    ShmOptions so;
    const std::uint32_t ring = setup.tun_queue_len != 0 ? setup.tun_queue_len : 10'000;
    so.slot_count = std::bit_ceil(std::clamp<std::uint32_t>(ring, so.slot_count, kMaxTunQueueLen));
    const std::size_t need = (setup.mtu + ShmLink::kSlotHeader + 63) / 64 * 64;
    so.slot_size = static_cast<std::uint32_t>(std::clamp<std::size_t>(need, so.slot_size, 65536));
    so.mtu = static_cast<std::uint32_t>(std::min<std::size_t>(setup.mtu, so.slot_size - ShmLink::kSlotHeader));
    owned->shm = ShmLink::create(setup.shm_name, so, &msg, &code);
    if (!owned->shm) {
      return fail(code != 0 ? code : -EIO, msg);
    }
  } else {
    TunOptions topts;
    topts.name = setup.tun_name;
    topts.mtu = setup.mtu;
    topts.tx_queue_len = tun_queue_packets(setup);
    topts.multi_queue = setup.tun_multi_queue;
    std::string device_name;
    if (setup.link_io == XTCP_IO_URING) {
      UringTunOptions uo;
      uo.tun = topts;
      owned->uring = UringTunLink::open(uo, &msg, &code);
      if (!owned->uring) {
        // No liburing in this build, or a kernel (or seccomp filter) that refuses io_uring
        // to this process: not supported here, as xtcp_configure would have said.
        if (code == -ENOSYS || code == -EPERM || code == -EACCES) {
          return fail(-ENOTSUP, "link_io XTCP_IO_URING: " + msg + "; use XTCP_IO_RW");
        }
        return fail(code != 0 ? code : -ENODEV, msg);
      }
      device_name = owned->uring->name();
    } else {
      owned->tun = TunLink::open(topts, &msg, &code);
      if (!owned->tun) {
        return fail(code != 0 ? code : -ENODEV, msg);
      }
      device_name = owned->tun->name();
    }
    if (setup.kernel_addr != 0) {
      const int rc = configure_kernel_side(device_name, setup.kernel_addr, setup.kernel_prefix, &msg);
      if (rc < 0) {
        return fail(rc, msg);
      }
    }
  }
  if (!setup.pcap_path.empty()) {
    PcapTapOptions po;
    po.wall_clock_timestamps = true;
    owned->tap = PcapTap::open(owned->device(), owned->clock, setup.pcap_path, po, &msg);
    if (!owned->tap) {
      return fail(-EIO, msg);
    }
  }
  RuntimeConfig config;
  config.stack.ip.local_addr = setup.local_addr;
  config.stack.tcp.max_connections = setup.max_connections;
  config.tx_cache_size = setup.tx_cache_size;
  try {
    Link& link = owned->link();
    const Clock& clock = owned->clock;
    return std::unique_ptr<Runtime>(new Runtime(config, link, clock, std::move(owned)));
  } catch (const std::bad_alloc&) {
    return fail(-ENOMEM, "cannot allocate the transmit cache");
  }
}

Runtime::~Runtime() {
  // Every connection of every group is reset (the peers must not wait for a timeout), and
  // the resets (with whatever else a batching link holds) leave before the link closes.
  destroy_groups(std::vector<bool>(groups_.size(), true));
  flush();
}

// ---- lookups -----------------------------------------------------------------------------

Runtime::Group* Runtime::group(int gd) const {
  if (gd <= 0 || gd >= static_cast<int>(groups_.size())) {
    return nullptr;
  }
  return groups_[gd].get();
}

Runtime::Pool* Runtime::pool_of(int id) const {
  auto it = pools_.find(id);
  return it == pools_.end() ? nullptr : it->second.get();
}

const SharedRxPool* Runtime::rx_pool(int pool) const {
  const Pool* p = pool_of(pool);
  return p != nullptr ? p->rx.get() : nullptr;
}

int Runtime::make_cd(std::uint32_t slot) const {
  return static_cast<int>((static_cast<std::uint32_t>(conns_[slot].gen & 0x7F) << 24) | (slot + 1));
}

Runtime::Conn* Runtime::conn(int pool, int gd, int cd, std::uint32_t* slot) {
  const Group* g = group(gd);
  if (g == nullptr || (pool != 0 && g->pool != pool) || cd <= 0) {
    return nullptr;
  }
  const std::uint32_t index = (static_cast<std::uint32_t>(cd) & 0xFFFFFF);
  if (index == 0 || index - 1 >= conns_.high_water()) {
    return nullptr;
  }
  Conn& c = conns_[index - 1];
  if (c.gd != gd || c.state != kOpen || (c.gen & 0x7F) != (static_cast<std::uint32_t>(cd) >> 24)) {
    return nullptr;
  }
  *slot = index - 1;
  return &c;
}

ConnId Runtime::engine_conn(int gd, int cd) const {
  std::uint32_t slot = 0;
  const Conn* c = const_cast<Runtime*>(this)->conn(0, gd, cd, &slot);
  return c != nullptr ? c->conn : kNoConn;
}

bool Runtime::conn_busy(int gd, int cd) const {
  std::uint32_t slot = 0;
  const Conn* c = const_cast<Runtime*>(this)->conn(0, gd, cd, &slot);
  return c != nullptr && c->cold != 0;
}

std::size_t Runtime::hot_record_bytes() { return sizeof(Conn); }
std::size_t Runtime::cold_record_bytes() { return sizeof(Cold); }

// Slots come from the runtime's own free list first: the slab would default-construct a
// recycled slot, and its generation must survive (stale descriptors must not match).
std::uint32_t Runtime::alloc_slot() {
  if (free_head_ != kNil) {
    const std::uint32_t s = free_head_;
    free_head_ = static_cast<std::uint32_t>(conns_[s].user_data);
    conns_[s].user_data = 0;
    return s;
  }
  const std::uint32_t s = conns_.alloc();
  return s == Slab<Conn>::kNone ? kNil : s;
}

void Runtime::free_slot(std::uint32_t slot) {
  Conn& c = conns_[slot];
  if ((c.flags & internal::kWantWrite) != 0) {
    write_want_.erase(slot);  // a queued WriteWaiter goes stale with the generation
  }
  Group* g = group(c.gd);
  if ((c.flags & kQueued) != 0 && g != nullptr) {
    --g->ready_count;  // its FIFO entry goes stale with the generation
  }
  const bool had_entry = (c.flags & internal::kInFifo) != 0;
  if (c.cold != 0) {
    cold_.free(c.cold - 1);
  }
  const std::uint8_t gen = static_cast<std::uint8_t>(c.gen + 1);
  c = Conn{};
  c.gen = gen;  // a stale descriptor of this slot no longer matches
  c.user_data = free_head_;
  free_head_ = slot;
  --live_conns_;
  if (had_entry && g != nullptr) {
    ready_compact(*g);
  }
}

Runtime::Cold& Runtime::cold_of(Conn& c) {
  if (c.cold == 0) {
    const std::uint32_t i = cold_.alloc();  // as many cold slots as hot ones: never kNone
    c.cold = i + 1;
  }
  return cold_[c.cold - 1];
}

void Runtime::settle_cold(Conn& c) {
  if (c.cold == 0) {
    return;
  }
  const Cold& k = cold_[c.cold - 1];
  if (k.delivered == 0 && k.seen == 0 && k.frames_end == 0 && k.scan_pos == 0 && !k.gone) {
    cold_.free(c.cold - 1);
    c.cold = 0;
  }
}

void Runtime::remote_of(const Conn& c, std::uint32_t* addr, std::uint16_t* port) const {
  *addr = 0;
  *port = 0;
  ConnInfo info{};
  if (c.conn != kNoConn && stack_->tcp().info(c.conn, &info) == 0) {
    *addr = info.key.remote_addr;
    *port = info.key.remote_port;
  } else if (const Cold* k = cold_if(c); k != nullptr && k->gone) {
    *addr = k->remote_addr;
    *port = k->remote_port;
  }
}

// ---- pools -------------------------------------------------------------------------------

int Runtime::pool_create(std::size_t buffer_pool_size) {
  if (buffer_pool_size < config_.chunk_size) {
    explain("buffer_pool_size %zu is smaller than one chunk (%zu bytes)", buffer_pool_size, config_.chunk_size);
    return -EINVAL;
  }
  auto p = std::make_unique<Pool>();
  try {
    SharedRxPoolOptions o;
    o.chunk_size = config_.chunk_size;
    o.conn_window = config_.conn_window;
    p->rx = std::make_unique<SharedRxPool>(buffer_pool_size, o);
    // Busy: answers wait in the transmit cache for a client whose window is closed (RFC 9293
    // 3.8.6.1: the persist state), i.e. a connection making no progress.
    p->rx->set_busy_test([this](ConnId c) {
      if (tx_.queued(c) == 0 || !stack_) {
        return false;
      }
      ConnInfo info{};
      return stack_->tcp().info(c, &info) == 0 && info.snd_wnd == 0;
    });
  } catch (const std::bad_alloc&) {
    explain("cannot allocate a receive buffer of %zu bytes", buffer_pool_size);
    return -ENOMEM;
  } catch (const std::invalid_argument& e) {
    explain("buffer_pool_size %zu: %s", buffer_pool_size, e.what());
    return -EINVAL;
  }
  p->slot = rx_.add_pool(p->rx.get());
  if (p->slot < 0) {
    return -ENOMEM;
  }
  p->id = g_next_pool_id.fetch_add(1);
  const int id = p->id;
  pools_.emplace(id, std::move(p));
  return id;
}

int Runtime::pool_destroy(int pool) {
  Pool* p = pool_of(pool);
  if (p == nullptr) {
    return -EINVAL;
  }
  std::vector<bool> which(groups_.size(), false);
  for (std::size_t gd = 1; gd < groups_.size(); ++gd) {
    which[gd] = groups_[gd] && groups_[gd]->pool == pool;
  }
  destroy_groups(which);
  rx_.remove_pool(p->slot);
  pools_.erase(pool);
  return 0;
}

int Runtime::pool_stats(int pool, struct xtcp_pool_stats* out) const {
  const Pool* p = pool_of(pool);
  if (p == nullptr) {
    return -EINVAL;
  }
  if (out == nullptr) {
    return -EINVAL;
  }
  *out = {};
  out->connections = p->connections;
  out->groups = p->groups;
  out->rx_buffer_size = p->rx->size();
  out->rx_buffer_used = p->rx->used();
  out->rx_bytes = p->rx->stats().bytes_in;
  out->rx_dropped_full = p->rx->stats().bytes_refused;
  out->tx_cache_size = tx_.size();
  out->tx_cache_used = tx_.used();
  out->acks_on_answers = p->acks_on_answers;
  out->acks_alone = p->acks_alone;
  out->answers_from_cache = stack_->tcp().stats().answers_from_cache;  // engine-wide
  out->accept_timeouts = p->accept_timeouts;
  return 0;
}

// ---- groups ------------------------------------------------------------------------------

namespace {
ListenOptions listen_options(const GroupOptions& o) {
  ListenOptions lo;
  lo.app_ack = o.ack_mode == XTCP_ACK_APPLICATION;
  lo.ack_deadline = ms(o.ack_deadline_ms);
  return lo;
}
}  // namespace

int Runtime::open_group(int pool, int domain, int type, int protocol, std::uint16_t port) {
  Pool* p = pool_of(pool);
  if (p == nullptr) {
    return -EINVAL;
  }
  if (domain != PF_INET) {
    explain("domain %d: only PF_INET is supported", domain);
    return -EAFNOSUPPORT;
  }
  if ((type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) != SOCK_STREAM ||
      (protocol != 0 && protocol != IPPROTO_TCP)) {
    explain("type %d protocol %d: only SOCK_STREAM with protocol 0 or IPPROTO_TCP", type, protocol);
    return -EPROTONOSUPPORT;
  }
  if (port != 0 && port_gd_[port] != 0) {
    explain("port %u already has a group (gd %u)", port, port_gd_[port]);
    return -EADDRINUSE;
  }
  int gd = 1;
  while (gd < static_cast<int>(groups_.size()) && groups_[gd]) {
    ++gd;
  }
  if (gd >= static_cast<int>(groups_.size())) {
    explain("all %zu group descriptors are in use", groups_.size() - 1);
    return -EMFILE;
  }
  // The group's one descriptor, shared by all its connections: the application waits on
  // one descriptor per group, never one per connection.
  const int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd < 0) {
    return -errno;
  }
  auto g = std::make_unique<Group>();
  g->gd = gd;
  g->pool = pool;
  g->port = port;
  g->efd = efd;
  if (port != 0) {
    const int rc = stack_->tcp().listen(port, listen_options(g->opts));
    if (rc < 0) {
      ::close(efd);
      return rc;
    }
    port_gd_[port] = static_cast<std::uint16_t>(gd);
  }
  groups_[gd] = std::move(g);
  ++p->groups;
  return gd;
}

// Closes the groups whose descriptor is set in `which`: their listeners first (so nothing new
// arrives), then one pass over the connection table resets all their connections (finalize
// with a million connections must not walk the table once per group).
void Runtime::destroy_groups(const std::vector<bool>& which) {
  TcpLayer& tcp = stack_->tcp();
  for (std::size_t gd = 1; gd < groups_.size(); ++gd) {
    Group* g = groups_[gd].get();
    if (g == nullptr || !which[gd] || g->port == 0) {
      continue;
    }
    take_accepted(g->port);  // so every connection is ours to reset below
    tcp.unlisten(g->port);
    port_gd_[g->port] = 0;
  }
  for (std::uint32_t s = 0; s < conns_.high_water(); ++s) {
    Conn& c = conns_[s];
    if (c.state == kFree || !which[c.gd]) {
      continue;
    }
    if (c.conn != kNoConn) {
      engine_to_slot_.clear(c.conn);
      tcp.abort(c.conn);
    }
    if (Pool* p = pool_of(groups_[c.gd]->pool); p != nullptr && p->connections > 0) {
      --p->connections;
    }
    free_slot(s);
  }
  for (std::size_t gd = 1; gd < groups_.size(); ++gd) {
    Group* g = groups_[gd].get();
    if (g == nullptr || !which[gd]) {
      continue;
    }
    ::close(g->efd);
    if (Pool* p = pool_of(g->pool); p != nullptr && p->groups > 0) {
      --p->groups;
    }
    groups_[gd].reset();
  }
}

int Runtime::close_group(int gd) {
  Group* g = group(gd);
  if (g == nullptr) {
    return -EBADF;
  }
  std::vector<bool> which(groups_.size(), false);
  which[static_cast<std::size_t>(gd)] = true;
  destroy_groups(which);
  return 0;
}

int Runtime::group_fd(int gd) {
  Group* g = group(gd);
  if (g == nullptr) {
    return -EBADF;
  }
  g->fd_exported = true;
  return g->efd;
}

bool Runtime::group_ready(const Group& g) const {
  return g.ready_count > 0 || g.pending_live > 0 || !g.writable.empty();
}

void Runtime::reassert_fds() {
  for (const auto& gp : groups_) {
    if (gp && gp->fd_exported) {
      sync_fd(*gp);
    }
  }
}

int Runtime::relisten(Group& g) {
  if (g.port == 0) {
    return 0;
  }
  // New listen options take effect for new connection requests. Nothing waits in the
  // engine's accept queue (take it first), and half-open connections keep their listen
  // port, so unlisten + listen loses nothing.
  take_accepted(g.port);
  TcpLayer& tcp = stack_->tcp();
  tcp.unlisten(g.port);
  return tcp.listen(g.port, listen_options(g.opts));
}

int Runtime::setopt(int gd, int option, std::int64_t value) {
  Group* g = group(gd);
  if (g == nullptr) {
    return -EBADF;
  }
  GroupOptions& o = g->opts;
  // Every -EINVAL below is a value out of range (docs/api.md lists each option's range),
  // unless the option itself is unknown.
  explain("value %lld is out of range for option %d", static_cast<long long>(value), option);
  switch (option) {
    case XTCP_OPT_ACK_MODE:
      if (value != XTCP_ACK_APPLICATION && value != XTCP_ACK_AUTO) {
        return -EINVAL;
      }
      o.ack_mode = static_cast<int>(value);
      return relisten(*g);
    case XTCP_OPT_ACK_DEADLINE_MS:
      if (value < 0 || value > 3'600'000) {
        return -EINVAL;
      }
      o.ack_deadline_ms = value;
      return relisten(*g);
    case XTCP_OPT_FRAMING:
      if (value < XTCP_FRAME_NONE || value > XTCP_FRAME_DELIMITER) {
        return -EINVAL;
      }
      o.framing = static_cast<int>(value);
      return 0;
    case XTCP_OPT_DELIMITER:
      if (value < 0 || value > 255) {
        return -EINVAL;
      }
      o.delimiter = static_cast<int>(value);
      return 0;
    case XTCP_OPT_MAX_MESSAGE:
      // A message must fit the connection's receive window, or it could never complete.
      if (value < 1 || static_cast<std::uint64_t>(value) > config_.conn_window) {
        return -EINVAL;
      }
      o.max_message = value;
      return 0;
    case XTCP_OPT_ACCEPT_TIMEOUT_MS:
      if (value < 0 || value > INT32_MAX) {
        return -EINVAL;
      }
      o.accept_timeout_ms = value;
      return 0;
    case XTCP_OPT_NODELAY:
      if (value != 0 && value != 1) {
        return -EINVAL;
      }
      o.nodelay = value != 0;
      return 0;
    case XTCP_OPT_SEND_ALL:
      if (value != 0 && value != 1) {
        return -EINVAL;
      }
      o.send_all = value != 0;
      return 0;
    case XTCP_OPT_ZERO_WINDOW_ABORT_MS:
      if (value < 0 || value > 86'400'000) {
        return -EINVAL;
      }
      o.zero_window_abort_ms = value;
      return 0;
    case XTCP_OPT_TX_LIMIT:
      // Below one segment's worth an answer could never leave in full-sized segments.
      if (value != 0 && (value < 1024 || value > INT32_MAX)) {
        explain("XTCP_OPT_TX_LIMIT is 0 (no limit of its own) or 1024 to 2^31-1 bytes, got %lld",
                static_cast<long long>(value));
        return -EINVAL;
      }
      o.tx_limit = value;
      return 0;
    default:
      explain("unknown option %d", option);
      return -EINVAL;
  }
}

int Runtime::getopt(int gd, int option, std::int64_t* value) const {
  const Group* g = group(gd);
  if (g == nullptr) {
    return -EBADF;
  }
  if (value == nullptr) {
    return -EINVAL;
  }
  const GroupOptions& o = g->opts;
  switch (option) {
    case XTCP_OPT_ACK_MODE: *value = o.ack_mode; return 0;
    case XTCP_OPT_ACK_DEADLINE_MS: *value = o.ack_deadline_ms; return 0;
    case XTCP_OPT_FRAMING: *value = o.framing; return 0;
    case XTCP_OPT_DELIMITER: *value = o.delimiter; return 0;
    case XTCP_OPT_MAX_MESSAGE: *value = o.max_message; return 0;
    case XTCP_OPT_ACCEPT_TIMEOUT_MS: *value = o.accept_timeout_ms; return 0;
    case XTCP_OPT_NODELAY: *value = o.nodelay ? 1 : 0; return 0;
    case XTCP_OPT_SEND_ALL: *value = o.send_all ? 1 : 0; return 0;
    case XTCP_OPT_ZERO_WINDOW_ABORT_MS: *value = o.zero_window_abort_ms; return 0;
    case XTCP_OPT_TX_LIMIT: *value = o.tx_limit; return 0;
    default: explain("unknown option %d", option); return -EINVAL;
  }
}

// ---- driving -----------------------------------------------------------------------------

// Every packet read may bring a request into a receive pool; what a full pool refuses is
// dropped, and its client waits out a retransmission timeout (with 1M clients sending at
// once into a 256 KiB pool, most of a burst). Packets left in the device queue wait
// safely instead (the TUN queue is sized for bursts), so a drive reads at most about half
// as many packets as the pools have free chunks: the application drains the pool between
// drives, and a burst moves through the pool instead of being dropped at its door.
int Runtime::input_rounds() const {
  if (pools_.empty()) {
    return kMaxInputRounds;
  }
  std::size_t free_chunks = 0;
  for (const auto& [id, p] : pools_) {
    free_chunks += p->rx->free_bytes() / p->rx->chunk_size();
  }
  const std::size_t batch = static_cast<std::size_t>(std::max(1, config_.stack.rx_batch));
  return static_cast<int>(std::clamp<std::size_t>(free_chunks / (2 * batch), 1, kMaxInputRounds));
}

int Runtime::drive() {
  const int n = stack_->poll(input_rounds());  // flushes what the packets and the timers made the stack send
  process_events();
  sweep_accept_timeouts(clock_.now());
  process_events();
  update_refused_windows();
  sweep_hoarders(clock_.now());
  process_events();
  wake_waiters();
  reassert_fds();
  // What the steps after the stack's own poll sent (the resets of accept timeouts, of
  // connections killed while handling events): drive() is the last step before the
  // application, or select's sleep, takes over.
  flush();
  if (logger_.enabled(LogLevel::kInfo)) {
    std::uint64_t refused = 0;
    for (const auto& [id, p] : pools_) {
      refused += p->rx->stats().bytes_refused;
    }
    if (refused > rx_refused_seen_) {
      logger_.report(LogKind::kRxPoolFull, LogLevel::kInfo, clock_.now(),
                     "api: receive buffer full: %llu bytes of in-window payload dropped "
                     "(api.rx_dropped_full; clients retransmit them)",
                     static_cast<unsigned long long>(refused - rx_refused_seen_));
      rx_refused_seen_ = refused;
    }
  }
  return n;
}

int Runtime::poll() { return drive(); }

int Runtime::flush() { return stack_->flush_link(); }

TimeNs Runtime::next_deadline() const {
  TimeNs t = std::min(stack_->next_deadline(), link_.next_event_time());
  for (const auto& g : groups_) {
    if (g && !g->pending.empty()) {
      t = std::min(t, g->pending.front().deadline);
    }
  }
  if (!stuck_since_.empty()) {
    t = std::min(t, next_hoarder_sweep_);
  }
  return t;
}

int Runtime::next_timeout_ms() const {
  constexpr TimeNs kCapMs = 60'000;
  const TimeNs deadline = next_deadline();
  const TimeNs now = clock_.now();
  if (deadline <= now) {
    return 0;
  }
  if (deadline == kNever || deadline - now >= kCapMs * kNsPerMs) {
    return static_cast<int>(kCapMs);
  }
  return static_cast<int>((deadline - now + kNsPerMs - 1) / kNsPerMs);
}

int Runtime::select(int n, xtcp_set* readgds, xtcp_set* acceptgds, const timeval* timeout) {
  if (n < 0 || n > XTCP_SETSIZE) {
    return -EINVAL;
  }
  if (timeout != nullptr && (timeout->tv_sec < 0 || timeout->tv_usec < 0 || timeout->tv_usec >= 1'000'000)) {
    return -EINVAL;
  }
  const xtcp_set none{};
  const xtcp_set want_read = readgds != nullptr ? *readgds : none;
  const xtcp_set want_accept = acceptgds != nullptr ? *acceptgds : none;
  for (int gd = 0; gd < n; ++gd) {
    if ((XTCP_ISSET(gd, &want_read) || XTCP_ISSET(gd, &want_accept)) && group(gd) == nullptr) {
      return -EBADF;
    }
  }
  const TimeNs start = clock_.now();
  const TimeNs deadline =
      timeout == nullptr
          ? kNever
          : start + std::min<TimeNs>(static_cast<TimeNs>(timeout->tv_sec), INT32_MAX) * kNsPerSec +
                static_cast<TimeNs>(timeout->tv_usec) * kNsPerUs;
  for (;;) {
    drive();
    xtcp_set r{};
    xtcp_set a{};
    int ready = 0;
    for (int gd = 1; gd < n; ++gd) {
      const Group* g = group(gd);
      if (g == nullptr) {
        continue;
      }
      if (XTCP_ISSET(gd, &want_read) && (g->ready_count > 0 || !g->writable.empty())) {
        XTCP_SET(gd, &r);
        ++ready;
      }
      if (XTCP_ISSET(gd, &want_accept) && g->pending_live > 0) {
        XTCP_SET(gd, &a);
        ++ready;
      }
    }
    const TimeNs now = clock_.now();
    const int fd = link_.poll_fd();
    // A link without a descriptor (in-memory, scripted) cannot be waited on: its clock is
    // virtual and moves only when the test moves it, so one pass is all select can do.
    if (ready > 0 || now >= deadline || fd < 0) {
      if (readgds != nullptr) {
        *readgds = r;
      }
      if (acceptgds != nullptr) {
        *acceptgds = a;
      }
      return ready;
    }
    // No answer sleeps in a batching link with us: drive() above flushed it last (the
    // application's sends since the previous select went with its first receive round).
    const TimeNs wake = std::min(deadline, next_deadline());
    const TimeNs delay = std::max<TimeNs>(0, wake - now);
    const TimeNs wait_ms = std::min<TimeNs>((delay + kNsPerMs - 1) / kNsPerMs, INT_MAX);
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(wait_ms)) < 0 && errno == EINTR) {
      return -EINTR;  // as select(2): let the application see its signal
    }
  }
}

// ---- process-wide runtime ----------------------------------------------------------------

namespace {
std::unique_ptr<Runtime>& process_slot() {
  static std::unique_ptr<Runtime> rt;
  return rt;
}
}  // namespace

void set_process_runtime(std::unique_ptr<Runtime> runtime) { process_slot() = std::move(runtime); }
Runtime* process_runtime() { return process_slot().get(); }

}  // namespace xtcp::api
