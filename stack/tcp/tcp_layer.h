// The TCP layer: owns control blocks, the flow table, listeners, timers and the TIME_WAIT
// table of one stack. Sans-I/O in the smoltcp sense: segments come in through tcp_input()
// (from Ipv4Layer), time through advance(); it never reads a clock on its own and never
// calls the application: what happened is queued as TcpEvents drained by poll_events().
//
//   Ipv4Layer --tcp_input--> TcpLayer --(input, handshake, receiver)--> RxStore / events
//   application --send/close--> TcpLayer --(sender, recovery)--> Ipv4Layer --> link
//
// One class, in parts that each have their own file: the host (tcp_layer.cc), input
// (tcp_input.cc), handshake, receiver, sender, loss recovery (tcp_*.cc), congestion control
// behind a static interface (congestion.h), and the hot/cold connection store
// (conn_store.h, tcp_conns.cc).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "stack/buffer/stores.h"
#include "stack/core/clock.h"
#include "stack/core/flow_index.h"
#include "stack/core/function_ref.h"
#include "stack/core/timer_wheel.h"
#include "stack/ip/ipv4_layer.h"
#include "stack/tcp/conn_store.h"
#include "stack/tcp/isn.h"
#include "stack/tcp/reassembly.h"
#include "stack/tcp/tcb.h"
#include "stack/tcp/tcp_config.h"
#include "stack/tcp/time_wait.h"
#include "stack/wire/tcp.h"

namespace xtcp {

#define XTCP_TCP_STATS(X)                                                                   \
  X(segs_in)                                                                                \
  X(segs_out)                                                                               \
  X(bytes_in)            /* payload bytes accepted in order */                              \
  X(bytes_out)           /* payload bytes sent, retransmissions included */                 \
  X(retransmits)         /* segments sent again */                                          \
  X(fast_retransmits)                                                                       \
  X(rto_expirations)                                                                        \
  X(tlp_probes)          /* RFC 8985 tail loss probes sent */                               \
  X(drop_malformed)      /* truncated or bad data offset */                                 \
  X(drop_bad_checksum)                                                                      \
  X(drop_bad_options)    /* zero/overlong option length, wrong size for a known option */   \
  X(drop_bad_flags)      /* SYN+FIN, SYN+RST, no flags, ... */                              \
  X(drop_bad_port)       /* port 0 */                                                       \
  X(drop_no_ack)         /* synchronized state, ACK bit off */                              \
  X(drop_out_of_window)  /* unacceptable sequence number (ACK sent unless RST) */           \
  X(drop_paws)           /* RFC 7323 5.3 */                                                 \
  X(drop_ack_invalid)    /* RFC 5961 5.2 ACK outside what we sent */                        \
  X(drop_listen_overflow) /* accept queue full */                                           \
  X(drop_no_memory)       /* no free control block */                                       \
  X(rst_in)                                                                                 \
  X(rst_out)                                                                                \
  X(rst_ignored)         /* out of window RST */                                            \
  X(challenge_acks)      /* RFC 5961 */                                                     \
  X(challenge_acks_limited)                                                                 \
  X(oow_acks_limited)    /* pure ACK out of window or PAWS not answered: budget spent */   \
  X(dup_acks)                                                                               \
  X(ooo_segments)        /* queued out of order */                                          \
  X(ooo_dropped)         /* out of order but no room */                                     \
  X(data_trimmed)        /* bytes outside the window cut from segments */                   \
  X(rx_store_full)       /* in-window bytes the receive store could not take */             \
  X(window_updates)      /* ACKs sent to refused connections once the store had room */    \
  X(sack_blocks_in)                                                                         \
  X(sack_blocks_invalid) /* outside [snd_una, snd_max] or empty */                          \
  X(dsack_blocks_in)     /* RFC 2883 D-SACK: a segment we sent arrived twice */              \
  X(spurious_undone)     /* reductions undone: every resend was reported duplicate */       \
  X(wscale_clamped)      /* RFC 7323 2.3 shift > 14 */                                      \
  X(urgent_ignored)      /* URG set: data delivered inline, pointer not used */             \
  X(window_probes)                                                                          \
  X(keepalive_probes)                                                                       \
  X(conn_timeouts)                                                                          \
  X(active_opens)                                                                           \
  X(passive_opens)                                                                          \
  X(established)                                                                            \
  X(syn_cookies_sent)                                                                       \
  X(syn_cookies_ok)                                                                         \
  X(syn_cookies_bad)                                                                        \
  X(time_wait_entered)                                                                      \
  X(time_wait_reused)    /* new SYN accepted on a TIME-WAIT 4-tuple (RFC 6191) */           \
  X(time_wait_recycled)  /* TIME-WAIT entries dropped early: the table was full */         \
  X(icmp_errors)                                                                            \
  X(conn_resets)         /* connections ended by a peer RST */                            \
  X(answers_from_cache)  /* retransmitted request answered with the cached answer (XTCP) */ \
  X(held_duplicates)     /* retransmitted data the application holds unacknowledged */     \
  X(crossed_duplicates)  /* retransmitted request met while our input had a backlog */      \
  X(ack_deadlines)       /* ACKs sent because the application's ACK deadline passed */ \
  X(aborts_on_data)      /* RSTs for new data after the application closed (RFC 1122) */

struct TcpStats {
#define XTCP_TCP_STAT_FIELD(name) std::uint64_t name = 0;
  XTCP_TCP_STATS(XTCP_TCP_STAT_FIELD)
#undef XTCP_TCP_STAT_FIELD
  template <class F>
  void for_each(F f) const {
#define XTCP_TCP_STAT_VISIT(name) f(#name, name);
    XTCP_TCP_STATS(XTCP_TCP_STAT_VISIT)
#undef XTCP_TCP_STAT_VISIT
  }
};

enum class TcpEventType : std::uint8_t {
  kAcceptable,  // a connection waits in the accept queue of `port`
  kConnected,   // an active open reached ESTABLISHED
  kReadable,    // new in-order bytes in the RxStore
  kWritable,    // acknowledged bytes left the TxStore: there is room to send
  kPeerClosed,  // the peer's FIN arrived: no more bytes will come
  kClosed,      // the connection is finished; `error` says how (0 = orderly)
};
const char* to_string(TcpEventType t);

struct TcpEvent {
  TcpEventType type;
  ConnId conn;
  std::uint16_t port;
  int error;
};

struct ConnInfo {
  TcpState state;
  FlowKey key;
  std::uint32_t snd_mss;
  std::uint32_t cwnd;
  std::uint32_t snd_wnd;
  std::uint32_t srtt_us;
  std::uint32_t rto_us;
  SeqNum snd_una, snd_nxt, rcv_nxt;
  int error;
  std::uint32_t ssthresh;
  std::uint32_t rttvar_us;
  std::uint32_t rcv_wnd;   // right edge we advertised minus what we acknowledged
  std::uint8_t backoff;    // consecutive RTO expirations
};

struct ListenOptions {
  // XTCP: data received on this listener's connections is ACKed only once the application
  // has released it from the RxStore; the ACK rides on the answer (send()) or goes alone
  // (consumed()). Otherwise classic delayed ACKs.
  bool app_ack = false;
  // With app_ack: ACK whatever was received anyway once it has waited this long (0: never),
  // so a slow answer does not make clients retransmit.
  TimeNs ack_deadline = 0;
};

class TcpLayer final : public IpUpperLayer {
 public:
  TcpLayer(const TcpConfig& config, Ipv4Layer& ip, const Clock& clock, RxStore& rx, TxStore& tx);
  ~TcpLayer() override;
  TcpLayer(const TcpLayer&) = delete;
  TcpLayer& operator=(const TcpLayer&) = delete;

  // Application side. Errors are negative errno values.
  int listen(std::uint16_t port, const ListenOptions& options = {});
  int unlisten(std::uint16_t port);
  // A connection from the accept queue of port, or -EAGAIN.
  std::int64_t accept(std::uint16_t port);
  // local_addr 0: the IP layer's first address; else one of its addresses (a load
  // generator spreads its clients over a range).
  std::int64_t connect(std::uint32_t remote_addr, std::uint16_t remote_port,
                       std::uint16_t local_port = 0, std::uint32_t local_addr = 0);
  // Queues bytes; returns how many were taken (0 when the TxStore is full), or -errno.
  // With application-controlled ACKs the segment also ACKs what the application released.
  std::int64_t send(ConnId conn, wire::ByteSpan data);
  // The application took bytes out of the RxStore: the window may open, and with
  // application-controlled ACKs the released bytes are ACKed now.
  void consumed(ConnId conn);
  // Room appeared in the RxStore for conn (whose bytes it refused): an ACK with the window
  // now (if it is open), instead of leaving the peer to its retransmission backoff.
  void update_window(ConnId conn);
  // The application holds an incomplete message of conn (it cannot release it yet): if the
  // peer has about used up its window and the store offers more, a window update now.
  void grow_window(ConnId conn);
  // Sends FIN after queued data; the handle stays valid until the application close()s.
  int shutdown(ConnId conn);
  // Orderly close and release of the handle; the engine finishes the close on its own.
  int close(ConnId conn);
  // RST now and release the handle.
  int abort(ConnId conn);
  int set_nodelay(ConnId conn, bool nodelay);
  int set_keepalive(ConnId conn, bool on);
  // Asks for a kWritable event the next time the peer's ACK frees room in the TxStore.
  int want_writable(ConnId conn);
  int info(ConnId conn, ConnInfo* out) const;

  void poll_events(FunctionRef<void(const TcpEvent&)> on_event);
  bool has_events() const { return !events_.empty(); }

  // Fires every timer due at or before now.
  void advance(TimeNs now);
  // Whether the packets being processed come from a backlog: the link held more than the
  // last poll round took (Stack sets it). While it does, a peer's retransmitted request is
  // no evidence that our answer was lost: its ACK of the answer may be among the packets
  // still waiting, behind a retransmission that crossed the answer in our own queue.
  void set_input_backlog(bool backlog) { input_backlog_ = backlog; }
  TimeNs next_deadline() const;

  // IpUpperLayer
  void tcp_input(std::uint32_t src, std::uint32_t dst, std::uint8_t tos,
                 wire::ByteSpan segment) override;
  void icmp_error_input(const IcmpErrorInfo& info) override;

  const TcpStats& stats() const { return stats_; }
  std::array<std::uint64_t, kTcpStateCount> connections_by_state() const;
  std::size_t connection_count() const { return conns_.connections(); }
  // Connections that have their full control block now (opening, closing, or with data,
  // timers or loss state); the others are quiet and keep only their 64-byte hot record.
  std::size_t busy_connections() const { return conns_.busy(); }
  // Where the layer's memory goes, in bytes made resident (reserved but untouched pages are
  // not counted: they cost nothing until used).
  struct Memory {
    std::size_t hot_blocks;   // 64-byte TcbHot of every connection ever open at once
    std::size_t busy_blocks;  // full Tcbs of busy connections, and their out-of-order queues
    std::size_t flow_index;   // 4-tuple -> connection
    std::size_t time_wait;    // TIME-WAIT ring and its index
    std::size_t timers;       // the timer wheel
    std::size_t total() const { return hot_blocks + busy_blocks + flow_index + time_wait + timers; }
  };
  Memory memory() const;
  std::size_t memory_bytes() const { return memory().total(); }
  const TcpConfig& config() const { return config_; }

 private:
  struct Segment;
  class SettleOnReturn;
  struct Listener {
    ConnId accept_head = kNoConn;
    ConnId accept_tail = kNoConn;
    std::uint32_t accept_len = 0;
    std::uint32_t syn_received = 0;
    Tick last_cookie_at = 0;  // when this listener last answered a SYN with a cookie (0: never)
    ListenOptions options;
  };
  // Parts of a connection that only some connections need, kept out of the Tcb.
  struct Extra {
    OooQueue ooo;
    SackScoreboard scoreboard;
    SeqNum rexmit_next;  // next hole to retransmit during SACK recovery
  };

  // tcp_conns.cc: a connection's full Tcb while it is busy, its hot record while quiet.
  // open() gives the full Tcb (made again from the hot record if the connection was quiet);
  // settle() packs it back when the connection has gone quiet. Every entry point (a
  // segment, a call, a timer) settles the connections it opened.
  Tcb& open(ConnId conn);
  void settle(ConnId conn);
  bool quiet(const Tcb& tcb) const;
  void pack(const Tcb& tcb, TcbHot& hot) const;
  void unpack(const TcbHot& hot, ConnId conn, Tcb& tcb) const;
  std::uint32_t derived_rto_us(std::uint32_t srtt_us, std::uint32_t rttvar_us) const;

  // Host (tcp_layer.cc): slots and lifecycle, events, timers, the application's calls.
  Tcb* lookup(ConnId conn);
  const Tcb* lookup(ConnId conn) const;
  Tcb* app_tcb(ConnId conn);
  std::int64_t alloc_conn(const FlowKey& key);
  void free_conn(ConnId conn);
  void init_tcb(Tcb& tcb, const FlowKey& key);
  void set_state(Tcb& tcb, TcpState s);
  void emit(TcpEventType type, ConnId conn, int error = 0);
  void connection_done(ConnId conn, Tcb& tcb, int error);
  void enter_time_wait(ConnId conn, Tcb& tcb);
  Extra& extra(ConnId conn, Tcb& tcb);
  Extra* find_extra(ConnId conn, const Tcb& tcb);
  void rearm(ConnId conn, Tcb& tcb);
  void on_timer(ConnId conn);
  void on_keepalive(ConnId conn, Tcb& tcb);
  Tick tick(TimeNs t) const;
  Tick now_tick() const;
  Tick deadline_tick(TimeNs delay) const;
  TimeNs tick_time(Tick t) const;
  std::uint32_t ts_now(const Tcb& tcb) const;
  std::uint16_t ephemeral_port(std::uint32_t local_addr, std::uint32_t remote_addr, std::uint16_t remote_port);

  // Input (tcp_input.cc): RFC 9293 section 3.10.7 in its order.
  void closed_input(const Segment& seg);
  void synchronized_input(ConnId conn, Tcb& tcb, Segment& seg);
  bool paws_reject(Tcb& tcb, const Segment& seg);
  bool check_sequence(ConnId conn, Tcb& tcb, const Segment& seg);
  bool process_rst(ConnId conn, Tcb& tcb, const Segment& seg);
  bool rst_matches_ack_sent(const Tcb& tcb, const Segment& seg) const;
  static bool carries_new_data(const Tcb& tcb, const Segment& seg);
  bool process_ack(ConnId conn, Tcb& tcb, const Segment& seg);
  void send_challenge_ack(ConnId conn, Tcb& tcb);
  bool take_ack_budget(Tcb& tcb);
  void time_wait_input(TimeWaitTable::Entry& tw, const Segment& seg);
  void icmp_error_for(ConnId conn, const IcmpErrorInfo& info);

  // Handshake (tcp_handshake.cc): LISTEN, SYN-SENT, SYN cookies, options, ESTABLISHED.
  // iss: the ISS to use instead of a fresh one (TIME-WAIT reuse).
  void listen_input(Listener& l, std::uint16_t port, const Segment& seg,
                    const SeqNum* iss = nullptr);
  void syn_sent_input(ConnId conn, Tcb& tcb, const Segment& seg);
  void adopt_syn_options(Tcb& tcb, const wire::TcpOptions& opts, bool from_cookie_opts);
  std::int64_t open_from_cookie(std::uint16_t port, Listener& l, const Segment& seg);
  void send_cookie_synack(const Segment& seg, Listener& l);
  // Could an ACK to l complete a cookie handshake? Only while its cookies are still valid.
  bool cookies_outstanding(const Listener& l) const;
  void report_accept_overflow(std::uint16_t port);
  void send_syn(ConnId conn, Tcb& tcb, bool with_ack);
  void established(ConnId conn, Tcb& tcb);

  // Receiver (tcp_receiver.cc): text and FIN in, the ACK point, the window, SACK blocks.
  void process_data(ConnId conn, Tcb& tcb, Segment& seg);
  void process_fin(ConnId conn, Tcb& tcb, const Segment& seg);
  void deliver_in_order(ConnId conn, Tcb& tcb, wire::ByteSpan data);
  SeqNum ack_point(const Tcb& tcb) const;
  bool refresh_app_ack(ConnId conn, Tcb& tcb);
  void arm_ack_deadline(Tcb& tcb);
  std::uint16_t window_to_advertise(ConnId conn, Tcb& tcb);
  std::uint32_t receive_window(ConnId conn, const Tcb& tcb) const;
  // Advertised, not yet received bytes (rcv_adv - rcv_nxt): the promise the RxStore keeps.
  static std::size_t promise_of(const Tcb& tcb);
  // Moves the advertised right edge (never left) and tells the RxStore the new promise.
  void set_rcv_adv(ConnId conn, Tcb& tcb, SeqNum edge);
  void fill_ack_options(ConnId conn, Tcb& tcb, wire::TcpOptions* opts);
  void schedule_delayed_ack(ConnId conn, Tcb& tcb);

  // Sender (tcp_sender.cc): the send loop, segments, ACKs, RSTs, probes.
  void output(ConnId conn, Tcb& tcb);
  bool send_data_segment(ConnId conn, Tcb& tcb, SeqNum seq, std::uint32_t len, bool fin,
                         bool retransmission);
  void send_control(ConnId conn, Tcb& tcb, SeqNum seq, std::uint8_t flags);
  void send_ack(ConnId conn, Tcb& tcb);
  // Bookkeeping after any segment carrying our ACK left (delayed-ACK state, ACK deadline).
  void ack_sent(Tcb& tcb);
  SeqNum acceptable_seq(const Tcb& tcb) const;
  void send_rst_reply(const Segment& seg);
  void send_rst(Tcb& tcb);
  void send_window_probe(ConnId conn, Tcb& tcb);
  void transmit(const FlowKey& key, const wire::TcpFields& f, const wire::TcpOptions& opts,
                wire::ByteSpan payload, ConnId conn_for_payload, std::size_t tx_offset,
                std::size_t len);
  std::uint32_t payload_room(ConnId conn, Tcb& tcb);

  // Loss recovery (tcp_recovery.cc): RTT and RTO, duplicate ACKs, SACK, tail loss probe.
  void update_rtt(Tcb& tcb, std::uint32_t sample_us);
  // Merges valid SACK blocks into the scoreboard; true if they reported new data.
  bool process_sack(ConnId conn, Tcb& tcb, const Segment& seg);
  void on_new_ack(ConnId conn, Tcb& tcb, std::uint32_t acked);
  void on_dupack(ConnId conn, Tcb& tcb);
  void on_rto(ConnId conn, Tcb& tcb);
  // D-SACK undo (RFC 2883 4, RFC 3708): remember the window before a reduction; undo it when
  // every segment resent since is reported duplicate.
  void arm_undo(Tcb& tcb);
  void try_undo(Tcb& tcb);
  void start_rto(Tcb& tcb);
  bool retransmit_hole(ConnId conn, Tcb& tcb);
  void retransmit_first(ConnId conn, Tcb& tcb);
  // RFC 8985 7: the retransmission timer after new data was sent or acknowledged: a tail
  // loss probe timeout when one may be sent and comes before the RTO, else the RTO.
  void arm_rto_or_probe(Tcb& tcb);
  bool probe_allowed(const Tcb& tcb) const;
  // The PTO itself (the caller checked probe_allowed), or the RTO when that comes first.
  void arm_probe(Tcb& tcb);
  void send_loss_probe(ConnId conn, Tcb& tcb);
  // An ACK of new data ends a probe episode (RFC 8985 7.4): a resent segment that was
  // needed is a repaired loss, answered like one.
  void end_probe_episode(Tcb& tcb);

  TcpConfig config_;
  Ipv4Layer& ip_;
  const Clock& clock_;
  RxStore& rx_;
  TxStore& tx_;
  TimeNs epoch_;
  IsnGenerator isn_;
  SynCookies cookies_;
  std::uint8_t rcv_wscale_ = 0;

  ConnStore conns_;
  mutable Tcb scratch_;  // a quiet connection unpacked for a read-only look (const lookup)
  // The flow index reads each connection's 4-tuple from its hot record.
  struct ConnKeys final : FlowKeySource {
    explicit ConnKeys(const ConnStore& store) : conns(&store) {}
    FlowKey key_of(std::uint32_t conn) const override { return conns->hot(conn).key; }
    const ConnStore* conns;
  };
  ConnKeys conn_keys_{conns_};
  FlowIndex flows_;
  std::unordered_map<std::uint16_t, Listener> listeners_;
  std::unordered_map<ConnId, Extra> extras_;
  std::uint64_t ooo_bytes_total_ = 0;
  TimerWheel wheel_;
  TimeWaitTable time_wait_;
  std::vector<TcpEvent> events_;
  std::array<std::uint64_t, kTcpStateCount> state_counts_{};
  std::uint16_t next_ephemeral_ = 0;
  bool input_backlog_ = false;
  TcpStats stats_;
};

}  // namespace xtcp
