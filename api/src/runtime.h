// The XTCP runtime behind the C API: one Stack (link + IPv4 + TCP), the connection pools
// (each a SharedRxPool behind one PoolRxDispatch), the shared transmit cache, the groups
// (one eventfd each) and the connection table. The C functions in xtcp.cc forward to one
// process-wide Runtime; tests build their own on an injected Link and Clock.
//
//   link --Stack::poll--> TcpLayer --append--> pool ; TcpEvents --> process_events()
//        --> ready lists per group --> eventfd / xtcp_select --> xtcp_recv (peek, still held)
//   xtcp_send(ackd) --> pool.pop_front(ackd) --> TcpLayer::send (the ACK rides on the answer)
#pragma once

#include <netinet/in.h>
#include <sys/time.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "xtcp/xtcp.h"
#include "stack/buffer/pool_rx_dispatch.h"
#include "stack/buffer/shared_rx_pool.h"
#include "stack/buffer/shared_tx_cache.h"
#include "stack/core/clock.h"
#include "stack/core/log.h"
#include "stack/core/slab.h"
#include "stack/netif/capture_tap.h"
#include "stack/netif/link.h"
#include "stack/stack.h"

namespace xtcp::api {

struct RuntimeConfig {
  StackConfig stack;                        // stack.ip.local_addr is required
  std::size_t tx_cache_size = 64u << 20;    // the one shared transmit cache
  std::size_t tx_conn_limit = 1u << 20;     // most one connection may have cached
  std::size_t conn_window = 64u * 1024;     // largest receive window of one connection
  std::size_t chunk_size = 256;             // rx pool chunk (see shared_rx_pool.h)
  std::size_t tx_chunk_size = 128;          // tx cache chunk: most answers are short
};

// How the process-wide runtime reaches the outside: xtcp_configure's settings, parsed.
struct LinkSetup {
  std::string tun_name = "xtcp0";
  // Non-empty: the stack serves on the shared-memory link of this name (ShmLink::create)
  // instead of a TUN device; tun_name and kernel_addr are then unused, and tun_queue_len
  // sizes its rings (the next power of two, at least 4096 slots per direction).
  std::string shm_name;
  std::uint32_t local_addr = 0;   // host order
  std::uint32_t kernel_addr = 0;  // host order; 0: leave the kernel side alone
  int kernel_prefix = 24;
  std::string pcap_path;          // empty: no capture
  std::size_t mtu = 1500;
  std::uint32_t max_connections = 1u << 20;
  std::size_t tx_cache_size = 64u << 20;
  // 0: sized for bursts (tun_queue_packets); a shared-memory link's rings then hold 10,000.
  std::uint32_t tun_queue_len = 0;
  // IFF_MULTI_QUEUE: this process adds one queue to tun_name (a shard); every process that
  // opens the device may set its kernel side, MTU and queue length to the same values.
  bool tun_multi_queue = false;
  // XTCP_IO_RW: TunLink (a read(2)/write(2) per packet); XTCP_IO_URING: UringTunLink, whose
  // sends are batched until the runtime flushes. TUN only (xtcp_configure checks).
  std::uint32_t link_io = XTCP_IO_RW;
};

// The longest queue the kernel gives a TUN device (SIOCSIFTXQLEN): its ring of packet pointers
// is one kmalloc of 8 bytes per packet, at most 4 MiB.
inline constexpr std::uint32_t kMaxTunQueueLen = 524'288;

// Room in the TUN queue per connection the stack may hold, by default: a burst in which
// every client sends at once waits in the device while the stack works through it, and
// so do what the clients add meanwhile: a kernel client retransmits its request 200 ms
// after sending it and again after 0.6 s, 1.4 s, 3 s, ... (RFC 6298 backoff from Linux's
// 200 ms minimum), and ACKs our answers. A queue that overflows drops some of each wave,
// and each drop costs its client a whole backoff period.
inline constexpr std::uint32_t kTunQueuePerConnection = 8;

// The TUN queue a LinkSetup asks for: tun_queue_len, or when 0 kTunQueuePerConnection
// packets per connection of max_connections, from 10,000 to kMaxTunQueueLen. The kernel
// allocates only the ring (8 bytes a slot); packets take memory only while they wait.
std::uint32_t tun_queue_packets(const LinkSetup& setup);

// Per-group options (xtcp_setopt); snapshotted into a connection when it is accepted.
struct GroupOptions {
  int ack_mode = XTCP_ACK_APPLICATION;
  std::int64_t ack_deadline_ms = 0;
  int framing = XTCP_FRAME_NONE;
  int delimiter = '\n';
  std::int64_t max_message = 16 * 1024;
  std::int64_t accept_timeout_ms = 5000;
  bool nodelay = true;
  bool send_all = false;  // XTCP_OPT_SEND_ALL: an answer is queued whole or not at all
  std::int64_t zero_window_abort_ms = 60'000;  // XTCP_OPT_ZERO_WINDOW_ABORT_MS (0: never)
  std::int64_t tx_limit = 0;  // XTCP_OPT_TX_LIMIT: most bytes one connection caches (0: no own limit)
};

// Engine ConnId -> API slot, for every id the engine can hand out (its max_connections):
// reserved at start-up as zero pages, so an id never written reads "none" without making its
// page resident, and nothing grows on the accept path. Entries hold slot + 1 (0: none).
class EngineIndex {
 public:
  static constexpr std::uint32_t kNone = UINT32_MAX;
  EngineIndex() = default;
  ~EngineIndex();
  EngineIndex(const EngineIndex&) = delete;
  EngineIndex& operator=(const EngineIndex&) = delete;
  // Reserves room for ids below n; throws std::bad_alloc if it cannot.
  void reserve(std::uint32_t n);
  // The slot of engine connection id, or kNone.
  std::uint32_t slot(ConnId id) const { return id < cap_ ? entries_[id] - 1 : kNone; }
  // False (nothing stored) for an id beyond the reserved range.
  bool set(ConnId id, std::uint32_t slot);
  void clear(ConnId id) {
    if (id < cap_) {
      entries_[id] = 0;
    }
  }
  // The pages ever written (an estimate of what is resident: the ids below the highest set).
  std::size_t resident_bytes() const;

 private:
  std::uint32_t* entries_ = nullptr;
  std::uint32_t cap_ = 0;
  std::uint32_t high_ = 0;  // 1 + the highest id ever set
};

class Runtime {
 public:
  // Tests and embedders: the runtime uses but does not own link and clock.
  Runtime(const RuntimeConfig& config, Link& link, const Clock& clock);
  // Programs: opens the TUN device (TunLink, or UringTunLink for XTCP_IO_URING), or the
  // shared-memory link, and the pcap tap on top; runs on CLOCK_MONOTONIC.
  // nullptr with *error (negative errno) and *message on failure.
  static std::unique_ptr<Runtime> open(const LinkSetup& setup, int* error, std::string* message);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Pools: positive ids, never reused within the process.
  int pool_create(std::size_t buffer_pool_size);
  int pool_destroy(int pool);
  bool pool_exists(int pool) const { return pools_.count(pool) != 0; }
  int pool_stats(int pool, struct xtcp_pool_stats* out) const;

  // The calls of xtcp.h. pool 0 means "any pool" for the per-group calls.
  int open_group(int pool, int domain, int type, int protocol, std::uint16_t port);
  int close_group(int gd);
  int accept(int pool, int gd);
  int pars(int gd, int cd, sockaddr_in* sa);
  int close(int pool, int gd, int cd);
  // xtcp_shutdown: FIN after the queued bytes (SHUT_WR); receiving goes on.
  int shutdown(int gd, int cd, int how);
  // xtcp_abort: RST now and the descriptor released.
  int abort(int gd, int cd);
  // xtcp_redeliver: the unacknowledged bytes (and an orderly end after them) are offered
  // again by recv.
  int redeliver(int gd, int cd);
  // user_data (optional): the connection's user data, whenever *cd is set.
  int recv(int pool, int gd, int* cd, void* buf, std::size_t len, std::uint64_t* user_data = nullptr);
  int send(int pool, int gd, int cd, std::size_t ackd, const void* buf, std::size_t len);
  int select(int n, xtcp_set* readgds, xtcp_set* acceptgds, const timeval* timeout);
  // The group's eventfd. From the first call on, the runtime keeps it readable while the
  // group is ready whatever the application reads from it (see sync_fd).
  int group_fd(int gd);
  int set_user_data(int gd, int cd, std::uint64_t value);
  int get_user_data(int gd, int cd, std::uint64_t* value);
  // A connection whose refused send can now go on (once per refusal), or -EAGAIN.
  int writable(int gd);
  int conn_info(int gd, int cd, struct xtcp_conn_info* out);
  // Every counter of the stack and the runtime, in a fixed order: names are interned for
  // the life of the process. Returns how many exist; fills up to n.
  int counters(struct xtcp_counter* out, std::size_t n);
  Logger& logger() { return logger_; }
  // Packet captures of connections (capture.cc): xtcp_capture_start/stop/query. The runtime
  // maps the spec's group and connection to ports and addresses; the CaptureTap between
  // the stack and the link matches and writes.
  int capture_start(const struct xtcp_capture_spec* spec);
  int capture_stop(int id);
  int capture_query(int id, struct xtcp_capture_stats* out) const;
  const CaptureTotals& capture_totals() const { return capture_->totals(); }
  int poll();
  int link_fd() const { return link_.poll_fd(); }
  int connect(int gd, const sockaddr_in* addr);
  int setopt(int gd, int option, std::int64_t value);
  int getopt(int gd, int option, std::int64_t* value) const;

  // Drives the stack once: link, timers, engine events, accept timeouts; flushes the link
  // at its end. Packets processed: at most input_rounds() batches.
  int drive();
  // Batches of packets the next drive reads: up to kMaxInputRounds, fewer as the receive
  // pools fill (about half a free chunk per packet; at least one batch).
  static constexpr int kMaxInputRounds = 16;
  int input_rounds() const;
  // Hands the packets a batching link queued (the application's answers since the last
  // drive) to the device: select() before it sleeps, xtcp_next_timeout, the destructor.
  // Returns Link::flush's result.
  int flush();
  // The next moment drive() has timer work (engine timers, accept timeouts, delayed packets).
  TimeNs next_deadline() const;
  // next_deadline() as xtcp_next_timeout reports it: whole ms from now, rounded up, capped.
  int next_timeout_ms() const;

  Stack& stack() { return *stack_; }
  const Stack& stack() const { return *stack_; }
  SharedTxCache& tx_cache() { return tx_; }
  // The pool's shared receive buffer (nullptr for an unknown pool): for tests and stats.
  const SharedRxPool* rx_pool(int pool) const;
  // Engine connection behind a descriptor (kNoConn if none): for tests.
  ConnId engine_conn(int gd, int cd) const;
  std::size_t open_connections() const { return live_conns_; }
  // Connections that have a cold record now (bytes shown or held in their counters, or an
  // engine side that is gone): the others keep only their hot record. For tests and stats.
  std::size_t busy_connections() const { return cold_.in_use(); }
  // Whether connection cd of group gd has a cold record (false for an unknown one): for tests.
  bool conn_busy(int gd, int cd) const;
  // Bytes of one connection's hot record (every connection) and cold record (busy ones).
  static std::size_t hot_record_bytes();
  static std::size_t cold_record_bytes();

 private:
  struct Owned;
  struct Pool;
  struct Group;
  struct Pending {
    std::uint32_t slot;
    std::uint8_t gen;
    TimeNs deadline;
  };

  // Every connection's hot record: all an idle connection needs, 24 bytes. A free slot keeps
  // its generation (a stale descriptor of the slot no longer matches) and holds the next free
  // slot in user_data.
  struct Conn {
    std::uint64_t user_data = 0;
    ConnId conn = kNoConn;       // engine connection; kNoConn once the engine side is gone
    std::uint32_t cold = 0;      // 1 + index of the cold record; 0: none
    std::uint16_t gd = 0;        // 0: free slot
    std::uint8_t gen = 0;
    std::uint8_t state = 0;      // internal::ConnState
    std::uint8_t flags = 0;      // internal::ConnFlag
    std::uint8_t framing = XTCP_FRAME_NONE;
    std::uint8_t delimiter = '\n';
    std::uint8_t error = 0;      // errno the connection ended with (the ones used are < 256)
  };
  static_assert(sizeof(Conn) <= 24, "the hot record of every connection is at most 24 bytes");
  // What only a connection with data in hand, or whose engine side is gone, needs: attached
  // on demand, returned when all of it is back to zero (settle_cold).
  struct Cold {
    std::uint32_t delivered = 0;    // bytes the last xtcp_recv returned, not yet acknowledged
    std::uint32_t seen = 0;         // unacknowledged bytes the application has been shown
    std::uint32_t frames_end = 0;   // framing: end of the last complete message found
    std::uint32_t scan_pos = 0;     // delimiter framing: bytes searched so far
    std::uint32_t remote_addr = 0;  // host order; kept once the engine side is gone (kill)
    std::uint16_t remote_port = 0;
    bool gone = false;              // remote_addr/remote_port are set: the engine side is gone
  };

  Runtime(const RuntimeConfig& config, Link& link, const Clock& clock, std::unique_ptr<Owned> owned);

  Group* group(int gd) const;
  Pool* pool_of(int id) const;
  // The open connection cd of group gd (and pool, unless 0), or nullptr.
  Conn* conn(int pool, int gd, int cd, std::uint32_t* slot);
  std::uint32_t alloc_slot();
  void free_slot(std::uint32_t slot);
  // The end of xtcp_close / xtcp_abort: the descriptor's slot and its counts go.
  void release_descriptor(Group& g, std::uint32_t slot);
  int make_cd(std::uint32_t slot) const;
  // The connection's cold record, attached now if it has none (never fails: the cold slab
  // has a slot for every hot one).
  Cold& cold_of(Conn& c);
  // Its cold record, or nullptr.
  const Cold* cold_if(const Conn& c) const { return c.cold != 0 ? &cold_[c.cold - 1] : nullptr; }
  // Returns the cold record of a connection that no longer needs it.
  void settle_cold(Conn& c);
  // The peer's address and port (host order): from the engine while it has the connection.
  void remote_of(const Conn& c, std::uint32_t* addr, std::uint16_t* port) const;

  void process_events();
  void on_event(const TcpEvent& e);
  void take_accepted(std::uint16_t port);
  void sweep_accept_timeouts(TimeNs now);
  // The ready FIFO of a group holds slot | gen << 24 entries: kQueued says a connection is
  // in the list, kInFifo that it has an entry (at most one); entries of connections taken
  // off the list or closed stay until popped (or compacted) and are skipped.
  void ready_push(Group& g, std::uint32_t slot);
  void ready_unlink(Group& g, std::uint32_t slot);
  // Whether a FIFO entry is its connection's current one (else it is skipped).
  bool ready_current(const Group& g, std::uint32_t entry) const;
  // The connection at the front of the list, or kNil: pops the entries skipped on the way.
  std::uint32_t ready_front(Group& g);
  // Takes the front connection (ready_front's) off the list.
  void ready_take_front(Group& g);
  // Drops the entries that would be skipped once they outnumber the queued connections.
  void ready_compact(Group& g);
  // Re-evaluates whether the connection has something for xtcp_recv, fixes its place in
  // the group's ready list and the group's eventfd.
  void refresh(std::uint32_t slot);
  bool has_news(std::uint32_t slot);
  // Framing: finds message ends in newly received bytes; false if a message is too big.
  bool scan_frames(Conn& c);
  bool at_boundary(const Conn& c, std::size_t ackd) const;
  std::size_t frame_cut(const Conn& c, std::uint32_t frames_end, const std::byte* data, std::size_t n) const;
  // RST now; the descriptor stays (reporting error) until the application closes it.
  void kill(Conn& c, int error);
  void sync_fd(Group& g);
  int relisten(Group& g);
  void destroy_groups(const std::vector<bool>& which);
  bool group_ready(const Group& g) const;
  // Re-asserts every exported group descriptor that is ready (the application may have
  // read its counter since the runtime last wrote it).
  void reassert_fds();

  // Answers that did not fit (runtime_send.cc): a refused send is remembered with the room
  // it needs; the connection is woken (made writable) once the cache has that room.
  struct WriteWaiter {
    std::uint32_t slot;
    std::uint8_t gen;
  };
  void note_refused(std::uint32_t slot, std::size_t want);
  // Wakes the connection if its room is there; else waits on its own ACKs (when its share
  // of the cache is what limits it) or in the FIFO of the whole cache.
  void try_wake(std::uint32_t slot);
  void wake(std::uint32_t slot);
  // Wakes waiters of the shared FIFO in order while the cache has their room.
  void wake_waiters();
  bool own_share_limits(ConnId conn, std::size_t want) const;
  // Room for conn's next answer: its share of the cache, and no more than the cache's
  // min_share in all while its peer advertises window 0 (a hoarder is throttled first).
  std::size_t tx_room(ConnId conn) const;
  // XTCP_OPT_TX_LIMIT of the connection's group (SIZE_MAX: none).
  std::size_t group_tx_limit(ConnId conn) const;
  bool peer_window_closed(ConnId conn) const;
  // Throttling (runtime_send.cc): refused connections of every pool get a window update
  // once their pool has uncommitted room, oldest refusal first; and connections whose
  // refused answer waits while their peer keeps window 0 are reset past their group's
  // XTCP_OPT_ZERO_WINDOW_ABORT_MS when the cache or their pool is under pressure.
  void update_refused_windows();
  void sweep_hoarders(TimeNs now);
  bool under_pressure(ConnId conn) const;
  // The connection's counters as "api.*" and the memory of each part as "mem.*".
  template <class F>
  void visit_counters(F&& f) const;

  RuntimeConfig config_;
  std::unique_ptr<Owned> owned_;
  Link& link_;
  const Clock& clock_;
  SharedTxCache tx_;
  PoolRxDispatch rx_;
  std::map<int, std::unique_ptr<Pool>> pools_;
  std::unique_ptr<CaptureTap> capture_;         // between the stack and link_; outlives stack_
  std::unique_ptr<Stack> stack_;
  std::vector<std::unique_ptr<Group>> groups_;  // indexed by gd (0 unused)
  std::vector<std::uint16_t> port_gd_;          // listening port -> gd
  Slab<Conn> conns_;                            // hot records: every API connection slot
  std::uint32_t free_head_ = UINT32_MAX;        // free hot slots, threaded through user_data
  Slab<Cold> cold_;                             // cold records of busy connections
  EngineIndex engine_to_slot_;                  // ConnId -> API slot
  std::size_t live_conns_ = 0;
  int staged_pool_slot_ = -1;                   // rx pool of an active open in progress
  Logger logger_;
  std::deque<WriteWaiter> write_fifo_;          // refused for lack of room in the whole cache
  std::unordered_map<std::uint32_t, std::uint32_t> write_want_;  // slot -> room its refused send needs
  std::uint64_t sends_refused_ = 0;
  std::uint64_t writable_wakeups_ = 0;
  std::uint64_t rx_refused_seen_ = 0;           // pools' refused bytes when last reported
  // Refused-send waiters whose peer advertises window 0: since when (slot -> time).
  std::unordered_map<std::uint32_t, TimeNs> stuck_since_;
  TimeNs next_hoarder_sweep_ = 0;
  std::uint64_t zero_window_aborts_ = 0;
  std::uint64_t refused_window_updates_ = 0;
};

// The process-wide runtime the C functions use. Tests install one built on their own link
// and clock (then xtcp_initialize only creates the default pool in it); xtcp_finalize
// destroys it.
void set_process_runtime(std::unique_ptr<Runtime> runtime);
Runtime* process_runtime();

}  // namespace xtcp::api
