// The XTCP runtime (see runtime.h): pools, groups, the connection table, event handling,
// the recv/ackd bookkeeping and xtcp_select's drive loop.
//
// A connection's received bytes stay in its pool from arrival until the application names
// them in ackd. xtcp_recv always delivers from the oldest unacknowledged byte; `seen` counts
// how many of those the application has already been shown, so a connection is offered again
// only when it has something new (more bytes, a complete message, its end) or after an ackd
// that left bytes behind: an application that acknowledges nothing is never spun on.
#include "api/src/runtime.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <new>

#include "stack/netif/pcap_tap.h"
#include "stack/netif/tun_link.h"

namespace xtcp::api {
namespace {

constexpr std::uint32_t kNil = UINT32_MAX;
constexpr std::uint32_t kMaxSlots = (1u << 24) - 2;  // cd = gen(7 bits) << 24 | slot + 1

enum ConnState : std::uint8_t { kFree = 0, kPending = 1, kOpen = 2 };
enum ConnFlag : std::uint8_t {
  kQueued = 1,        // in the group's ready list
  kPeerFin = 2,       // the client sent FIN
  kEnded = 4,         // the engine connection finished (error says how)
  kEndReported = 8,   // xtcp_recv has reported the end; only xtcp_close is left
  kConnecting = 16,   // active open not yet established
};

std::atomic<int> g_next_pool_id{1};

std::uint32_t load_be(const std::byte* p, std::size_t n) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  }
  return v;
}

std::size_t header_len(int framing) { return framing == XTCP_FRAME_U16BE ? 2 : 4; }

}  // namespace

struct Runtime::Owned {
  SteadyClock clock;
  std::unique_ptr<TunLink> tun;
  std::unique_ptr<PcapTap> tap;
  Link& link() { return tap ? static_cast<Link&>(*tap) : static_cast<Link&>(*tun); }
};

struct Runtime::Pool {
  int id = 0;
  int slot = -1;  // in the PoolRxDispatch
  std::unique_ptr<SharedRxPool> rx;
  std::uint64_t groups = 0;
  std::uint64_t connections = 0;
  std::uint64_t acks_on_answers = 0;
  std::uint64_t acks_alone = 0;
  std::uint64_t accept_timeouts = 0;
};

struct Runtime::Group {
  int gd = 0;
  int pool = 0;
  std::uint16_t port = 0;
  int efd = -1;
  bool signaled = false;  // efd's counter is non-zero
  GroupOptions opts;
  std::uint32_t ready_head = kNil;
  std::uint32_t ready_tail = kNil;
  std::deque<Pending> pending;  // accepted by the engine, waiting for xtcp_accept (FIFO)
  std::size_t pending_live = 0;
  std::uint64_t connections = 0;
};

// 40 bytes per connection on top of the engine's control block.
struct Runtime::Conn {
  ConnId conn = kNoConn;  // engine connection; kNoConn once the engine side is gone
  std::uint16_t gd = 0;   // 0: free slot
  std::uint8_t gen = 0;
  std::uint8_t state = kFree;
  std::uint8_t flags = 0;
  std::uint8_t framing = XTCP_FRAME_NONE;
  std::uint8_t delimiter = '\n';
  std::int16_t error = 0;
  std::uint16_t remote_port = 0;  // host order
  std::uint32_t remote_addr = 0;  // host order
  std::uint32_t delivered = 0;    // bytes the last xtcp_recv returned, not yet acknowledged
  std::uint32_t seen = 0;         // unacknowledged bytes the application has been shown
  std::uint32_t frames_end = 0;   // framing: end of the last complete message found
  std::uint32_t scan_pos = 0;     // delimiter framing: bytes searched so far
  std::uint32_t max_message = 0;
  std::uint32_t prev = kNil;      // ready list
  std::uint32_t next = kNil;
};

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
      port_gd_(65536, 0) {
  config_.stack.tcp.max_connections =
      std::min<std::uint32_t>(config_.stack.tcp.max_connections, kMaxSlots);
  stack_ = std::make_unique<Stack>(config_.stack, link_, clock_, rx_, tx_);
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
  TunOptions topts;
  topts.name = setup.tun_name;
  topts.mtu = setup.mtu;
  std::string msg;
  int code = 0;
  owned->tun = TunLink::open(topts, &msg, &code);
  if (!owned->tun) {
    return fail(code != 0 ? code : -ENODEV, msg);
  }
  if (setup.kernel_addr != 0) {
    const int rc = configure_kernel_side(owned->tun->name(), setup.kernel_addr, setup.kernel_prefix, &msg);
    if (rc < 0) {
      return fail(rc, msg);
    }
  }
  if (!setup.pcap_path.empty()) {
    PcapTapOptions po;
    po.wall_clock_timestamps = true;
    owned->tap = PcapTap::open(*owned->tun, owned->clock, setup.pcap_path, po, &msg);
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
  // Every connection of every group is reset (the peers must not wait for a timeout).
  for (auto& g : groups_) {
    if (g) {
      destroy_group(*g);
    }
  }
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
  if (index == 0 || index - 1 >= conns_.size()) {
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

std::uint32_t Runtime::alloc_slot() {
  if (!free_slots_.empty()) {
    const std::uint32_t s = free_slots_.back();
    free_slots_.pop_back();
    return s;
  }
  if (conns_.size() >= kMaxSlots) {
    return kNil;
  }
  conns_.emplace_back();
  return static_cast<std::uint32_t>(conns_.size() - 1);
}

void Runtime::free_slot(std::uint32_t slot) {
  Conn& c = conns_[slot];
  const std::uint8_t gen = static_cast<std::uint8_t>(c.gen + 1);
  c = Conn{};
  c.gen = gen;  // a stale descriptor of this slot no longer matches
  free_slots_.push_back(slot);
  --live_conns_;
}

// ---- pools -------------------------------------------------------------------------------

int Runtime::pool_create(std::size_t buffer_pool_size) {
  if (buffer_pool_size < config_.chunk_size) {
    return -EINVAL;
  }
  auto p = std::make_unique<Pool>();
  try {
    SharedRxPoolOptions o;
    o.chunk_size = config_.chunk_size;
    o.conn_window = config_.conn_window;
    p->rx = std::make_unique<SharedRxPool>(buffer_pool_size, o);
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  } catch (const std::invalid_argument&) {
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
  for (auto& g : groups_) {
    if (g && g->pool == pool) {
      destroy_group(*g);
    }
  }
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
    return -EAFNOSUPPORT;
  }
  if ((type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) != SOCK_STREAM ||
      (protocol != 0 && protocol != IPPROTO_TCP)) {
    return -EPROTONOSUPPORT;
  }
  if (port != 0 && port_gd_[port] != 0) {
    return -EADDRINUSE;
  }
  int gd = 1;
  while (gd < static_cast<int>(groups_.size()) && groups_[gd]) {
    ++gd;
  }
  if (gd >= static_cast<int>(groups_.size())) {
    return -EMFILE;
  }
  // The group's one descriptor, shared by all its connections (seed Fig. 6b).
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

void Runtime::destroy_group(Group& g) {
  TcpLayer& tcp = stack_->tcp();
  if (g.port != 0) {
    take_accepted(g.port);  // so every connection is ours to reset below
    tcp.unlisten(g.port);
    port_gd_[g.port] = 0;
  }
  Pool* p = pool_of(g.pool);
  for (std::uint32_t s = 0; s < conns_.size(); ++s) {
    Conn& c = conns_[s];
    if (c.gd != g.gd || c.state == kFree) {
      continue;
    }
    if (c.conn != kNoConn) {
      engine_to_slot_[c.conn] = kNil;
      tcp.abort(c.conn);
    }
    if (p != nullptr && p->connections > 0) {
      --p->connections;
    }
    free_slot(s);
  }
  ::close(g.efd);
  if (p != nullptr && p->groups > 0) {
    --p->groups;
  }
  groups_[g.gd].reset();  // g is gone after this
}

int Runtime::close_group(int gd) {
  Group* g = group(gd);
  if (g == nullptr) {
    return -EBADF;
  }
  destroy_group(*g);
  return 0;
}

int Runtime::group_fd(int gd) const {
  const Group* g = group(gd);
  return g != nullptr ? g->efd : -EBADF;
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
    default:
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
    default: return -EINVAL;
  }
}

// ---- readiness ---------------------------------------------------------------------------

void Runtime::sync_fd(Group& g) {
  const bool want = g.ready_head != kNil || g.pending_live > 0;
  if (want == g.signaled) {
    return;
  }
  std::uint64_t v = 1;
  // The counter is only ever 0 or 1: one write when the group becomes ready, one read
  // (which resets an eventfd counter) when it is drained.
  const ssize_t r = want ? ::write(g.efd, &v, sizeof v) : ::read(g.efd, &v, sizeof v);
  (void)r;
  g.signaled = want;
}

void Runtime::ready_push(Group& g, std::uint32_t slot) {
  Conn& c = conns_[slot];
  c.prev = g.ready_tail;
  c.next = kNil;
  if (g.ready_tail == kNil) {
    g.ready_head = slot;
  } else {
    conns_[g.ready_tail].next = slot;
  }
  g.ready_tail = slot;
  c.flags |= kQueued;
}

void Runtime::ready_unlink(Group& g, std::uint32_t slot) {
  Conn& c = conns_[slot];
  if ((c.flags & kQueued) == 0) {
    return;
  }
  if (c.prev == kNil) {
    g.ready_head = c.next;
  } else {
    conns_[c.prev].next = c.next;
  }
  if (c.next == kNil) {
    g.ready_tail = c.prev;
  } else {
    conns_[c.next].prev = c.prev;
  }
  c.prev = c.next = kNil;
  c.flags &= static_cast<std::uint8_t>(~kQueued);
}

bool Runtime::scan_frames(Conn& c) {
  const std::size_t held = rx_.held(c.conn);
  const SharedRxPool* pool = rx_.pool(rx_.slot_of(c.conn));
  if (pool == nullptr) {
    return true;
  }
  if (c.framing == XTCP_FRAME_DELIMITER) {
    std::byte tmp[512];
    const auto delim = static_cast<std::byte>(c.delimiter);
    while (c.scan_pos < held) {
      const std::size_t k =
          pool->peek(c.conn, c.scan_pos, wire::MutableByteSpan(tmp, std::min(sizeof tmp, held - c.scan_pos)));
      const std::byte* hit = std::find(tmp, tmp + k, delim);
      if (hit == tmp + k) {
        c.scan_pos += static_cast<std::uint32_t>(k);
        continue;
      }
      const auto end = static_cast<std::uint32_t>(c.scan_pos + (hit - tmp) + 1);
      if (end - c.frames_end > c.max_message) {
        return false;
      }
      c.frames_end = c.scan_pos = end;
    }
    return held - c.frames_end <= c.max_message;  // a partial message already too long
  }
  const std::size_t hdr = header_len(c.framing);
  while (held - c.frames_end >= hdr) {
    std::byte h[4];
    pool->peek(c.conn, c.frames_end, wire::MutableByteSpan(h, hdr));
    const std::uint64_t total = hdr + static_cast<std::uint64_t>(load_be(h, hdr));
    if (total > c.max_message) {
      return false;
    }
    if (c.frames_end + total > held) {
      break;
    }
    c.frames_end += static_cast<std::uint32_t>(total);
  }
  return true;
}

// The largest message boundary within the first n bytes of the stream (copied to data).
std::size_t Runtime::frame_cut(const Conn& c, const std::byte* data, std::size_t n) const {
  if (n >= c.frames_end) {
    return c.frames_end;
  }
  if (c.framing == XTCP_FRAME_DELIMITER) {
    const auto delim = static_cast<std::byte>(c.delimiter);
    for (std::size_t i = n; i > 0; --i) {
      if (data[i - 1] == delim) {
        return i;
      }
    }
    return 0;
  }
  const std::size_t hdr = header_len(c.framing);
  std::size_t off = 0;
  while (off + hdr <= n) {
    const std::size_t total = hdr + load_be(data + off, hdr);
    if (off + total > n) {
      break;
    }
    off += total;
  }
  return off;
}

bool Runtime::at_boundary(const Conn& c, std::size_t ackd) const {
  if (c.framing == XTCP_FRAME_NONE || ackd == 0 || c.conn == kNoConn) {
    return true;
  }
  const SharedRxPool* pool = rx_.pool(rx_.slot_of(c.conn));
  if (pool == nullptr) {
    return true;
  }
  if (c.framing == XTCP_FRAME_DELIMITER) {
    std::byte b{};
    pool->peek(c.conn, ackd - 1, wire::MutableByteSpan(&b, 1));
    return b == static_cast<std::byte>(c.delimiter);
  }
  const std::size_t hdr = header_len(c.framing);
  std::size_t off = 0;
  while (off < ackd) {
    std::byte h[4];
    if (pool->peek(c.conn, off, wire::MutableByteSpan(h, hdr)) != hdr) {
      return false;
    }
    off += hdr + load_be(h, hdr);
  }
  return off == ackd;
}

void Runtime::kill(Conn& c, int error) {
  if (c.conn != kNoConn) {
    engine_to_slot_[c.conn] = kNil;
    stack_->tcp().abort(c.conn);  // RST; the engine frees the connection and its bytes
    c.conn = kNoConn;
  }
  c.flags |= kEnded;
  c.error = static_cast<std::int16_t>(error);
}

bool Runtime::has_news(std::uint32_t slot) {
  Conn& c = conns_[slot];
  if ((c.flags & kEndReported) != 0) {
    return false;
  }
  if ((c.flags & kEnded) != 0 && c.error != 0) {
    return true;  // a reset or timed-out connection is reported before its data
  }
  if (c.conn != kNoConn) {
    std::size_t avail;
    if (c.framing == XTCP_FRAME_NONE) {
      avail = rx_.held(c.conn);
    } else {
      if (!scan_frames(c)) {
        kill(c, EPROTO);  // a message larger than XTCP_OPT_MAX_MESSAGE
        return true;
      }
      avail = c.frames_end;
    }
    if (avail > c.seen) {
      return true;
    }
  }
  return (c.flags & (kPeerFin | kEnded)) != 0;
}

void Runtime::refresh(std::uint32_t slot) {
  Conn& c = conns_[slot];
  if (c.state != kOpen) {
    return;
  }
  Group* g = group(c.gd);
  if (g == nullptr) {
    return;
  }
  const bool want = has_news(slot);
  if (want && (c.flags & kQueued) == 0) {
    ready_push(*g, slot);
  } else if (!want) {
    ready_unlink(*g, slot);
  }
  sync_fd(*g);
}

// ---- engine events -----------------------------------------------------------------------

void Runtime::process_events() {
  TcpLayer& tcp = stack_->tcp();
  // Handling an event can queue more (accept() reports data that came before it).
  for (int round = 0; round < 8 && tcp.has_events(); ++round) {
    tcp.poll_events([this](const TcpEvent& e) { on_event(e); });
  }
}

void Runtime::on_event(const TcpEvent& e) {
  if (e.type == TcpEventType::kAcceptable) {
    take_accepted(e.port);
    return;
  }
  if (e.conn >= engine_to_slot_.size() || engine_to_slot_[e.conn] == kNil) {
    return;  // a connection the application closed, or one we never took
  }
  const std::uint32_t slot = engine_to_slot_[e.conn];
  Conn& c = conns_[slot];
  switch (e.type) {
    case TcpEventType::kConnected:
      c.flags &= static_cast<std::uint8_t>(~kConnecting);
      return;
    case TcpEventType::kWritable:
      return;
    case TcpEventType::kReadable:
      break;
    case TcpEventType::kPeerClosed:
      c.flags |= kPeerFin;
      break;
    case TcpEventType::kClosed:
      c.flags |= kEnded;
      c.error = static_cast<std::int16_t>(e.error);
      if (c.state == kPending) {
        // Died before the application accepted it: nobody will ever see it.
        Group* g = group(c.gd);
        engine_to_slot_[c.conn] = kNil;
        stack_->tcp().close(c.conn);
        if (g != nullptr) {
          --g->pending_live;
          if (Pool* p = pool_of(g->pool)) {
            --p->connections;
          }
        }
        free_slot(slot);
        if (g != nullptr) {
          sync_fd(*g);
        }
        return;
      }
      break;
    default:
      return;
  }
  refresh(slot);
}

// The runtime takes every established connection out of the engine's accept queue at once
// and keeps its own FIFO per group, so it can refuse exactly the ones not accepted in time.
void Runtime::take_accepted(std::uint16_t port) {
  TcpLayer& tcp = stack_->tcp();
  const std::uint16_t gd = port_gd_[port];
  Group* g = group(gd);
  Pool* p = g != nullptr ? pool_of(g->pool) : nullptr;
  const TimeNs now = clock_.now();
  for (std::uint32_t guard = 0; guard <= tcp.config().accept_backlog + 1024u; ++guard) {
    const std::int64_t r = tcp.accept(port);
    if (r < 0) {
      break;
    }
    const auto id = static_cast<ConnId>(r);
    std::uint32_t slot = kNil;
    if (g != nullptr && p != nullptr && g->pending_live < tcp.config().accept_backlog) {
      slot = alloc_slot();
    }
    if (slot == kNil) {
      tcp.abort(id);  // backlog full or no slot: refuse (RST)
      continue;
    }
    Conn& c = conns_[slot];
    c.conn = id;
    c.gd = static_cast<std::uint16_t>(gd);
    c.state = kPending;
    ConnInfo info{};
    if (tcp.info(id, &info) == 0) {
      c.remote_addr = info.key.remote_addr;
      c.remote_port = info.key.remote_port;
    }
    if (id >= engine_to_slot_.size()) {
      engine_to_slot_.resize(std::max<std::size_t>(static_cast<std::size_t>(id) + 1, engine_to_slot_.size() * 2), kNil);
    }
    engine_to_slot_[id] = slot;
    ++live_conns_;
    ++p->connections;
    const TimeNs deadline =
        g->opts.accept_timeout_ms > 0 ? now + ms(g->opts.accept_timeout_ms) : kNever;
    g->pending.push_back(Pending{slot, c.gen, deadline});
    ++g->pending_live;
  }
  if (g != nullptr) {
    sync_fd(*g);
  }
}

void Runtime::sweep_accept_timeouts(TimeNs now) {
  for (auto& gp : groups_) {
    if (!gp) {
      continue;
    }
    Group& g = *gp;
    bool changed = false;
    while (!g.pending.empty()) {
      const Pending p = g.pending.front();
      Conn& c = conns_[p.slot];
      if (c.gen != p.gen || c.state != kPending || c.gd != g.gd) {
        g.pending.pop_front();  // accepted or died meanwhile
        continue;
      }
      if (p.deadline > now) {
        break;
      }
      // Seed Fig. 6c: a connection request not accepted in time is refused.
      g.pending.pop_front();
      engine_to_slot_[c.conn] = kNil;
      stack_->tcp().abort(c.conn);
      --g.pending_live;
      if (Pool* pool = pool_of(g.pool)) {
        ++pool->accept_timeouts;
        --pool->connections;
      }
      free_slot(p.slot);
      changed = true;
    }
    if (changed) {
      sync_fd(g);
    }
  }
}

// ---- the calls ---------------------------------------------------------------------------

int Runtime::accept(int pool, int gd) {
  Group* g = group(gd);
  if (g == nullptr || (pool != 0 && g->pool != pool)) {
    return -EBADF;
  }
  process_events();
  while (!g->pending.empty()) {
    const Pending p = g->pending.front();
    g->pending.pop_front();
    Conn& c = conns_[p.slot];
    if (c.gen != p.gen || c.state != kPending || c.gd != gd) {
      continue;
    }
    --g->pending_live;
    c.state = kOpen;
    c.framing = static_cast<std::uint8_t>(g->opts.framing);
    c.delimiter = static_cast<std::uint8_t>(g->opts.delimiter);
    c.max_message = static_cast<std::uint32_t>(g->opts.max_message);
    ++g->connections;
    if (c.conn != kNoConn) {
      stack_->tcp().set_nodelay(c.conn, g->opts.nodelay);
    }
    refresh(p.slot);  // bytes (or the end) may have come before the accept
    sync_fd(*g);
    return make_cd(p.slot);
  }
  sync_fd(*g);
  return -EAGAIN;
}

int Runtime::pars(int gd, int cd, sockaddr_in* sa) {
  std::uint32_t slot = 0;
  const Conn* c = conn(0, gd, cd, &slot);
  if (c == nullptr) {
    return -EBADF;
  }
  if (sa == nullptr) {
    return -EINVAL;
  }
  std::memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_port = htons(c->remote_port);
  sa->sin_addr.s_addr = htonl(c->remote_addr);
  return 0;
}

int Runtime::close(int pool, int gd, int cd) {
  std::uint32_t slot = 0;
  Conn* c = conn(pool, gd, cd, &slot);
  if (c == nullptr) {
    return -EBADF;
  }
  Group& g = *group(gd);
  ready_unlink(g, slot);
  if (c->conn != kNoConn) {
    const ConnId id = c->conn;
    engine_to_slot_[id] = kNil;
    TcpLayer& tcp = stack_->tcp();
    if (rx_.held(id) > 0 && (c->flags & kEnded) == 0) {
      // RFC 2525 2.17: closing with unacknowledged data resets, so the client learns that
      // its bytes were not processed.
      tcp.abort(id);
    } else {
      rx_.detach(id);  // bytes still arriving before the FIN exchange ends are dropped
      tcp.close(id);
    }
  }
  --g.connections;
  if (Pool* p = pool_of(g.pool)) {
    --p->connections;
  }
  free_slot(slot);
  sync_fd(g);
  return 0;
}

int Runtime::recv(int pool, int gd, int* cd, void* buf, std::size_t len) {
  Group* g = group(gd);
  if (g == nullptr || (pool != 0 && g->pool != pool)) {
    return -EBADF;
  }
  if (cd == nullptr || buf == nullptr || len == 0) {
    return -EINVAL;
  }
  len = std::min<std::size_t>(len, INT_MAX);
  process_events();
  const Pool* p = pool_of(g->pool);
  // Bounded: every pass either returns or takes one connection off the ready list.
  for (std::size_t guard = 0; guard <= conns_.size(); ++guard) {
    const std::uint32_t slot = g->ready_head;
    if (slot == kNil) {
      break;
    }
    Conn& c = conns_[slot];
    if (!has_news(slot)) {
      ready_unlink(*g, slot);
      continue;
    }
    *cd = make_cd(slot);
    if ((c.flags & kEnded) != 0 && c.error != 0) {
      c.flags |= kEndReported;
      ready_unlink(*g, slot);
      sync_fd(*g);
      return -c.error;
    }
    const std::size_t avail =
        c.conn == kNoConn ? 0 : (c.framing == XTCP_FRAME_NONE ? rx_.held(c.conn) : c.frames_end);
    if (avail > c.seen) {
      auto* out = static_cast<std::byte*>(buf);
      std::size_t n = p->rx->peek(c.conn, 0, wire::MutableByteSpan(out, std::min(len, avail)));
      if (c.framing != XTCP_FRAME_NONE) {
        n = frame_cut(c, out, n);
        if (n == 0) {
          return -EMSGSIZE;  // stays first in line for a call with a larger buffer
        }
      }
      c.delivered = static_cast<std::uint32_t>(n);
      c.seen = std::max(c.seen, c.delivered);
      ready_unlink(*g, slot);
      sync_fd(*g);
      return static_cast<int>(n);
    }
    c.flags |= kEndReported;  // orderly end, after all data was shown
    ready_unlink(*g, slot);
    sync_fd(*g);
    return 0;
  }
  sync_fd(*g);
  return -EAGAIN;
}

int Runtime::send(int pool, int gd, int cd, std::size_t ackd, const void* buf, std::size_t len) {
  std::uint32_t slot = 0;
  Conn* c = conn(pool, gd, cd, &slot);
  if (c == nullptr) {
    return -EBADF;
  }
  if ((buf == nullptr && len > 0) || ackd > c->delivered || !at_boundary(*c, ackd)) {
    return -EINVAL;
  }
  len = std::min<std::size_t>(len, INT_MAX);
  Group& g = *group(gd);
  Pool* p = pool_of(g.pool);
  TcpLayer& tcp = stack_->tcp();
  if (ackd > 0) {
    // The acknowledged bytes leave the pool; the engine ACKs what the pool no longer holds.
    if (c->conn != kNoConn) {
      p->rx->pop_front(c->conn, ackd);
    }
    const auto a = static_cast<std::uint32_t>(ackd);
    c->delivered -= a;
    c->seen = 0;  // what is left is offered again first
    c->frames_end = c->frames_end > a ? c->frames_end - a : 0;
    c->scan_pos = c->scan_pos > a ? c->scan_pos - a : 0;
  }
  int rc = 0;
  if (c->conn == kNoConn) {
    rc = c->error != 0 ? -c->error : -ENOTCONN;
  } else if (len > 0) {
    const std::int64_t r = tcp.send(c->conn, wire::ByteSpan(static_cast<const std::byte*>(buf), len));
    if (r > 0) {
      rc = static_cast<int>(r);
      if (ackd > 0) {
        ++p->acks_on_answers;
      }
    } else if (r == 0) {
      rc = -EAGAIN;  // transmit cache full; the ACK went alone
      if (ackd > 0) {
        ++p->acks_alone;
      }
    } else {
      rc = static_cast<int>(r);
      if (ackd > 0) {
        tcp.consumed(c->conn);  // "irrespective of the success of sending, ackd is ACKed"
      }
    }
  } else if (ackd > 0) {
    tcp.consumed(c->conn);  // len 0: the ACK alone
    ++p->acks_alone;
  }
  refresh(slot);
  return rc;
}

int Runtime::connect(int gd, const sockaddr_in* addr) {
  Group* g = group(gd);
  if (g == nullptr) {
    return -EBADF;
  }
  if (addr == nullptr || addr->sin_family != AF_INET) {
    return -EINVAL;
  }
  Pool* p = pool_of(g->pool);
  const std::uint32_t slot = alloc_slot();
  if (slot == kNil) {
    return -ENOMEM;
  }
  ++live_conns_;
  staged_pool_slot_ = p->slot;  // the SYN's window is computed inside connect()
  const std::int64_t r = stack_->tcp().connect(ntohl(addr->sin_addr.s_addr), ntohs(addr->sin_port), 0);
  staged_pool_slot_ = -1;
  if (r < 0) {
    free_slot(slot);
    return static_cast<int>(r);
  }
  const auto id = static_cast<ConnId>(r);
  rx_.bind(id, p->slot);
  Conn& c = conns_[slot];
  c.conn = id;
  c.gd = static_cast<std::uint16_t>(gd);
  c.state = kOpen;
  c.flags = kConnecting;
  c.remote_addr = ntohl(addr->sin_addr.s_addr);
  c.remote_port = ntohs(addr->sin_port);
  c.framing = static_cast<std::uint8_t>(g->opts.framing);
  c.delimiter = static_cast<std::uint8_t>(g->opts.delimiter);
  c.max_message = static_cast<std::uint32_t>(g->opts.max_message);
  if (id >= engine_to_slot_.size()) {
    engine_to_slot_.resize(std::max<std::size_t>(static_cast<std::size_t>(id) + 1, engine_to_slot_.size() * 2), kNil);
  }
  engine_to_slot_[id] = slot;
  stack_->tcp().set_nodelay(id, g->opts.nodelay);
  ++g->connections;
  ++p->connections;
  return make_cd(slot);
}

// ---- driving -----------------------------------------------------------------------------

int Runtime::drive() {
  const int n = stack_->poll();
  process_events();
  sweep_accept_timeouts(clock_.now());
  process_events();
  return n;
}

int Runtime::poll() { return drive(); }

TimeNs Runtime::next_deadline() const {
  TimeNs t = std::min(stack_->next_deadline(), link_.next_event_time());
  for (const auto& g : groups_) {
    if (g && !g->pending.empty()) {
      t = std::min(t, g->pending.front().deadline);
    }
  }
  return t;
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
      if (XTCP_ISSET(gd, &want_read) && g->ready_head != kNil) {
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
