/* xtcp.h: the XTCP API over the xtcp user-space TCP/IPv4 stack.
 *
 * A connection pool owns one shared receive buffer of buffer_pool_size bytes used by all its
 * connections; connection groups are bound to a port and all their connections share ONE
 * pollable descriptor; answers of all pools wait in one shared transmit cache until the
 * client ACKs them. Received data is not ACKed until the application says so with the
 * `ackd` argument of xtcp_send: the ACK rides on the answer.
 *
 * Every call returns a negative errno value on error (-EBADF, -EINVAL, -EAGAIN, -ENOMEM,
 * -ECONNRESET, ...), listed with each call below; xtcp_last_error() explains the last
 * failure in words. Threading: one runtime is driven by one thread (xtcp_select or
 * xtcp_poll); calls from other threads are not synchronized.
 *
 * The core calls (xtcp_initialize ... xtcp_select) act on the default pool made by
 * xtcp_initialize; the xtcp_pool_* variants take an explicit pool from xtcp_pool_create.
 */
#ifndef XTCP_XTCP_H
#define XTCP_XTCP_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- version ------------------------------------------------------------------------- */

/* The version of this header. xtcp_version() gives the library's at run time. */
#define XTCP_VERSION_MAJOR 0
#define XTCP_VERSION_MINOR 2
#define XTCP_VERSION_PATCH 0
#define XTCP_VERSION_STRING "0.2.0"
/* MAJOR * 10000 + MINOR * 100 + PATCH, for #if comparisons. */
#define XTCP_VERSION_NUMBER (XTCP_VERSION_MAJOR * 10000 + XTCP_VERSION_MINOR * 100 + XTCP_VERSION_PATCH)
/* "MAJOR.MINOR.PATCH" of the library the program runs with. */
const char* xtcp_version(void);

/* ---- errors and logging -------------------------------------------------------------- */

/* The explanation of the last failed call of this thread (a call that returned a negative
 * errno other than -EAGAIN, or NULL from xtcp_pool_create): what failed and why, for
 * example "xtcp_initialize: cannot open TUN device \"lo\": ...". "" when no call failed
 * yet. Successful calls leave it as it is. The string stays valid until the next failing
 * call of the same thread. */
const char* xtcp_last_error(void);

enum xtcp_log_level { XTCP_LOG_ERROR = 0, XTCP_LOG_WARNING = 1, XTCP_LOG_INFO = 2, XTCP_LOG_DEBUG = 3 };
/* A log callback: level, a one-line message without a newline, and the arg given to
 * xtcp_set_log. Called from inside xtcp calls (on the thread that drives the stack); it
 * must not call back into xtcp. */
typedef void (*xtcp_log_fn)(int level, const char* message, void* arg);
/* Routes the library's reports of events (a device error, a table full, SYN cookies
 * switched on for a port, the transmit cache full, ...) to fn, for levels up to max_level.
 * Repeated reports of one kind are limited to one per 10 s, with the count of the ones left
 * out. fn NULL (the default): nothing is reported. May be called at any time. */
void xtcp_set_log(xtcp_log_fn fn, int max_level, void* arg);

/* ---- configuration of the link (before the first pool is made) ---------------------- */

struct xtcp_config {
  const char* tun_name;        /* TUN device to create or attach ("xtcp0" if NULL) */
  const char* local_addr;      /* the stack's IPv4 address, dotted quad (required) */
  const char* kernel_addr;     /* optional "ADDR/PREFIX" given to the kernel side of the TUN */
  const char* pcap_path;       /* optional: mirror all traffic to this pcap file */
  uint32_t mtu;                /* 0: 1500 */
  uint32_t max_connections;    /* 0: 1,048,576 */
  size_t tx_cache_size;        /* shared transmit cache for all pools; 0: 64 MiB */
  uint32_t tun_queue_len;      /* packets the kernel may queue toward the stack on the TUN
                                  device before it drops, at most 524,288 (the kernel's
                                  limit). 0: eight per connection of max_connections,
                                  from 10,000 to 524,288, so that a burst in which every
                                  client sends at once, and the retransmissions the clients
                                  add while it waits, wait instead of being dropped (the
                                  kernel's 500 overflows); with shm_name, 10,000 */
  uint32_t tun_multi_queue;    /* 0: a single-queue TUN device. Non-zero: create or attach
                                  tun_name with IFF_MULTI_QUEUE; every process that
                                  configures the same tun_name adds a queue, and the kernel
                                  spreads the flows across the queues by flow hash, each
                                  flow staying on one queue (one process per queue: shards
                                  that share nothing). The device must be multi-queue from
                                  its creation on. Unused with shm_name. */
  const char* shm_name;        /* NULL: TUN. Else serve on the shared-memory link of this name
                                  (created; a client such as xtcp-loadgen --shm attaches),
                                  instead of the TUN device */
  uint32_t link_io;            /* how packets cross the TUN device: XTCP_IO_RW (0, the
                                  default) or XTCP_IO_URING */
  uint32_t reserved_u32b;      /* 0 */
  size_t reserved[4];          /* 0: room for later settings without changing the size */
};
/* xtcp_config.link_io. XTCP_IO_RW: one read(2) and one write(2) per packet; each answer
 * leaves the moment the stack sends it. XTCP_IO_URING: io_uring moves the packets (Linux
 * 5.18+ works best; one multishot read from 6.7). Packets the stack sends are queued and
 * handed to the kernel together in one system call: after each round of packets
 * xtcp_poll/xtcp_select process, after the timers, before xtcp_select sleeps, in
 * xtcp_next_timeout (the epoll recipe calls it just before sleeping), at xtcp_finalize,
 * and whenever 64 are queued. An application that sleeps without calling one of these
 * first leaves its answers queued until it does. More packets per second one way, a
 * little more latency per exchange (docs/benchmarks.md). xtcp_configure returns -ENOTSUP
 * when this build has no liburing or the kernel refuses io_uring (xtcp_last_error says
 * which), -EINVAL with shm_name (the shared-memory link has no system call to batch). */
#define XTCP_IO_RW 0
#define XTCP_IO_URING 1
/* Sets the link used by every pool; must precede xtcp_initialize / xtcp_pool_create.
 * Returns 0, -EINVAL (bad address or name), -EALREADY (already running). */
int xtcp_configure(const struct xtcp_config* config);

/* ---- the core calls ------------------------------------------------------------------ */

/* Creates the default connection pool with a shared receive buffer of buffer_pool_size
 * bytes (opening the link on first use). 0 or -EALREADY, -EINVAL, -ENOMEM, -ENODEV. */
int xtcp_initialize(size_t buffer_pool_size);
/* Closes every group and connection of every pool (RST to open connections), closes the
 * link. 0 or -EINVAL (not initialized). */
int xtcp_finalize(void);

/* Opens a group bound to port: domain PF_INET, type SOCK_STREAM, protocol 0 (port 0: no
 * listener, for xtcp_connect). Returns a positive group descriptor, or -EAFNOSUPPORT,
 * -EPROTONOSUPPORT, -EINVAL, -EADDRINUSE, -EMFILE. */
int xtcp_open_group(int domain, int type, int protocol, uint16_t port);
/* Closes the group: its connections are reset, its port closed. 0 or -EBADF. */
int xtcp_close_group(int gd);

/* Accepts a pending connection into group gd: a positive connection descriptor, or
 * -EAGAIN (none pending), -EBADF. */
int xtcp_accept(int gd);
/* The client's address and port. 0, -EBADF (unknown gd/cd or cd of another group),
 * -EINVAL (sa NULL). */
int xtcp_pars(int gd, int cd, struct sockaddr_in* sa);
/* Orderly close (FIN after queued answers). 0 or -EBADF (also on a second close). */
int xtcp_close(int gd, int cd);
/* Half-close: how SHUT_WR (<sys/socket.h>) sends FIN after the queued answers while the
 * connection keeps receiving: xtcp_recv goes on delivering the peer's bytes until its
 * own FIN (then 0), and the descriptor stays until xtcp_close. After it xtcp_send returns
 * -EPIPE. On a connection whose peer already sent FIN (xtcp_recv returned 0: CLOSE-WAIT,
 * where sending still works) it sends the last FIN. 0, or -EBADF, -EINVAL (how other than
 * SHUT_WR), -ENOTCONN (an xtcp_connect not established yet), -ECONNRESET / -ETIMEDOUT /
 * ... (the connection ended with that error). */
int xtcp_shutdown(int gd, int cd, int how);
/* Reset: sends RST (in a synchronized state; an xtcp_connect in progress is just dropped),
 * discards what is queued either way, and releases the descriptor at once, like
 * xtcp_close. 0 or -EBADF. */
int xtcp_abort(int gd, int cd);
/* Offers the connection's unacknowledged bytes again: the next xtcp_recv on the group
 * delivers them (from the oldest), and, if xtcp_recv already reported the peer's orderly
 * end while bytes were held, the end again after them. For an application that left bytes
 * unacknowledged because their destination could not take them (a proxy forwarding into
 * another connection) and learns later, from that other connection, that it can. 0 or
 * -EBADF. */
int xtcp_redeliver(int gd, int cd);

/* Non-blocking: returns bytes of ONE connection of the group (its descriptor in *cd),
 * starting with any bytes delivered before but not acknowledged; connections with data are
 * served round-robin. -EAGAIN when no connection has data, -EINVAL (NULL cd or buf, or a
 * framed group whose next message does not fit len: -EMSGSIZE), -EBADF, and for a
 * connection that ended: 0 with *cd set (orderly end) or -ECONNRESET / -ETIMEDOUT with *cd
 * set (-EPROTO: a framed message exceeded XTCP_OPT_MAX_MESSAGE); then call
 * xtcp_close(gd, *cd). */
int xtcp_recv(int gd, int* cd, void* buf, size_t len);
/* Acknowledges ackd bytes of what the last xtcp_recv delivered on cd (the rest will be
 * delivered again first), and queues len bytes of answer; the ACK rides on the answer, or
 * goes alone when len is 0. Returns bytes queued (possibly fewer than len when the transmit
 * cache is full), or -EAGAIN (nothing could be queued; the ACK went alone), -EINVAL (ackd >
 * delivered, ackd not on a message boundary of a framed group, buf NULL with len > 0),
 * -EBADF, -EPIPE (connection closed for sending), -ECONNRESET, -ETIMEDOUT.
 * With XTCP_OPT_SEND_ALL set on the group, the answer is queued whole or not at all: when
 * it does not fit, nothing is queued, ackd is NOT applied, and -EAGAIN tells the
 * application to leave the request where it is: once the cache has room the connection
 * becomes writable (xtcp_writable) and its unacknowledged bytes come again from xtcp_recv,
 * so a request/answer server keeps no queue of its own. A refused send is remembered in
 * both modes (see xtcp_writable). */
int xtcp_send(int gd, int cd, size_t ackd, const void* buf, size_t len);

#define XTCP_SETSIZE 1024
typedef struct xtcp_set {
  uint64_t bits[XTCP_SETSIZE / 64];
} xtcp_set;
void XTCP_ZERO(xtcp_set* set);
void XTCP_CLR(int gd, xtcp_set* set);
void XTCP_SET(int gd, xtcp_set* set);
int XTCP_ISSET(int gd, const xtcp_set* set);

/* Drives the stack (reads the link, fires timers) until one of the groups below n in
 * readgds has data or one in acceptgds has a pending connection, or the timeout passes
 * (NULL: wait indefinitely; {0,0}: poll). On return the sets hold only the ready groups.
 * Returns the number of ready groups, 0 on timeout, or -EINVAL / -EBADF. */
int xtcp_select(int n, xtcp_set* readgds, xtcp_set* acceptgds, struct timeval* timeout);

/* ---- your own event loop ------------------------------------------------------------- */

/* The recipe: put xtcp_link_fd() and each group's xtcp_group_fd() in your epoll set; wait
 * with epoll_wait(..., xtcp_next_timeout()); then, every turn, call xtcp_poll() (packets
 * and due timers), and xtcp_accept / xtcp_recv on the groups. */

/* The group's pollable descriptor (an eventfd): readable exactly while the group has data
 * for xtcp_recv, connections to accept, or (once asked for) writable connections. The
 * application may read its counter, as eventfd users do: every xtcp call that leaves the
 * group ready makes it readable again. It only signals: driving the stack is still
 * xtcp_select's or xtcp_poll's job. -EBADF. */
int xtcp_group_fd(int gd);
/* Drives the stack once without blocking (for applications that use their own epoll on
 * xtcp_link_fd and the group descriptors). Returns packets processed, or -EINVAL. */
int xtcp_poll(void);
/* The link's descriptor (the TUN device), for the application's epoll set; -EINVAL (not
 * initialized), -ENODEV (a link without descriptor). */
int xtcp_link_fd(void);
/* Milliseconds until the stack next needs xtcp_poll for its own timers (retransmissions,
 * delayed ACKs, accept timeouts): 0 when one is due now, at most 60000 (also when no timer
 * is armed). Use it as the timeout of your own poll/epoll wait, called right before it:
 * with XTCP_IO_URING it first hands the answers queued since the last round to the kernel.
 * -EINVAL not initialized. */
int xtcp_next_timeout(void);

/* Active open from an ephemeral port to addr:port; the connection joins gd. Returns a
 * connection descriptor at once, or -EINVAL, -EBADF, -EADDRNOTAVAIL, -ENOMEM. xtcp_send
 * may queue bytes right away: they leave once the connection is established. The outcome:
 * in a group that asks for writable connections (it called xtcp_writable), xtcp_writable
 * returns the descriptor once when the handshake completes; a refused attempt (the peer's
 * RST) ends with -ECONNREFUSED from xtcp_recv, one that got no answer in the stack's SYN
 * retries with -ETIMEDOUT (then xtcp_close it). xtcp_connection_info's state says where it
 * stands at any time; xtcp_abort gives up earlier. */
int xtcp_connect(int gd, const struct sockaddr_in* addr);

/* Per-group options (xtcp_setopt/xtcp_getopt). */
enum xtcp_option {
  XTCP_OPT_ACK_MODE = 1,        /* XTCP_ACK_APPLICATION (default) or XTCP_ACK_AUTO */
  XTCP_OPT_ACK_DEADLINE_MS = 2, /* ACK anyway after this many ms (0: never; default 0) */
  XTCP_OPT_FRAMING = 3,         /* XTCP_FRAME_NONE (default), _U16BE, _U32BE, _DELIMITER */
  XTCP_OPT_DELIMITER = 4,       /* the delimiter byte for XTCP_FRAME_DELIMITER ('\n') */
  XTCP_OPT_MAX_MESSAGE = 5,     /* largest framed message; bigger ones reset the connection
                                   (applies at once to the group's connections too) */
  XTCP_OPT_ACCEPT_TIMEOUT_MS = 6, /* refuse connections not accepted in time (default 5000) */
  XTCP_OPT_NODELAY = 7,         /* 1 (default): answers leave at once (no Nagle); 0: Nagle */
  XTCP_OPT_SEND_ALL = 8,        /* 1: xtcp_send queues the whole answer or nothing (below) */
  XTCP_OPT_ZERO_WINDOW_ABORT_MS = 9, /* reset a connection whose answer was refused while its
                                   peer kept window 0 this long, holding transmit cache space,
                                   with the cache or its pool under pressure (default 60000;
                                   0: never; applies at once) */
  XTCP_OPT_TX_LIMIT = 10,       /* the most bytes one connection of the group may hold in the
                                   transmit cache (queued or unacknowledged by its peer),
                                   1024 to 2^31-1, below the stack's own share; beyond it
                                   xtcp_send queues less or nothing and the connection becomes
                                   writable when its peer's ACKs free room (0: the stack's
                                   share alone, the default; applies at once) */
};
enum { XTCP_ACK_APPLICATION = 0, XTCP_ACK_AUTO = 1 };
enum { XTCP_FRAME_NONE = 0, XTCP_FRAME_U16BE = 1, XTCP_FRAME_U32BE = 2, XTCP_FRAME_DELIMITER = 3 };
/* Options apply to connections accepted after the call, except XTCP_OPT_MAX_MESSAGE,
 * XTCP_OPT_SEND_ALL, XTCP_OPT_ZERO_WINDOW_ABORT_MS and XTCP_OPT_TX_LIMIT, which apply at
 * once to every connection of the group. 0, -EBADF,
 * -EINVAL. */
int xtcp_setopt(int gd, int option, int64_t value);
int xtcp_getopt(int gd, int option, int64_t* value);

/* ---- per-connection user data -------------------------------------------------------- */

/* Attaches a 64-bit value to a connection (0 until set): a pointer or an index into the
 * application's own table, so a server needs no map from descriptors to its state. It
 * stays until xtcp_close. 0, -EBADF. */
int xtcp_set_user_data(int gd, int cd, uint64_t value);
/* The value set with xtcp_set_user_data. 0, -EBADF, -EINVAL (value NULL). */
int xtcp_get_user_data(int gd, int cd, uint64_t* value);
/* xtcp_recv that also returns the connection's user data in *user_data (when not NULL,
 * and whenever *cd is set). Same results as xtcp_recv. */
int xtcp_recv_user(int gd, int* cd, uint64_t* user_data, void* buf, size_t len);

/* ---- answers that did not fit -------------------------------------------------------- */

/* When xtcp_send queues fewer bytes than asked (the shared transmit cache, or the
 * connection's share of it, is full), the connection is remembered. Once the cache can
 * take what it asked for (its client ACKed answers, or others freed room; refusals for
 * lack of room in the whole cache are served in the order they happened), the connection
 * becomes WRITABLE: bytes it received but the application did not acknowledge are
 * delivered again by xtcp_recv, and xtcp_writable returns it. Returns a connection
 * descriptor (once per refusal), or -EAGAIN (none), -EBADF. A group reports writable
 * connections from its first xtcp_writable call on: from then, a group with writable
 * connections counts as ready in xtcp_select's readgds and its descriptor is readable
 * (a program that never asks is not woken for them). */
int xtcp_writable(int gd);

/* ---- seeing inside ------------------------------------------------------------------- */

struct xtcp_counter {
  const char* name;  /* static string, e.g. "tcp.retransmits", "ip.drop_bad_checksum" */
  uint64_t value;
};
/* The stack's counters: "ip.*" (IPv4 layer: packets, drops by reason, fragments, ICMP),
 * "tcp.*" (segments, retransmissions, drops by reason, RSTs, challenge ACKs, SYN cookies,
 * TIME-WAIT, ...), "tcp.state.*" (connections by RFC 9293 state), "link.*" (device
 * errors), "api.*" (connections, groups, receive buffers and transmit cache of all pools,
 * ACKs on answers, refused sends) and "mem.*" (bytes of memory by part). Fills up to n
 * entries of out (out may be NULL when n is 0) and returns how many counters exist, so
 * a first call with n 0 sizes the array; -EINVAL not initialized. Names and order stay the
 * same for the life of the process. */
int xtcp_counters(struct xtcp_counter* out, size_t n);

enum xtcp_tcp_state {
  XTCP_STATE_CLOSED = 0, XTCP_STATE_LISTEN, XTCP_STATE_SYN_SENT, XTCP_STATE_SYN_RECEIVED,
  XTCP_STATE_ESTABLISHED, XTCP_STATE_FIN_WAIT_1, XTCP_STATE_FIN_WAIT_2, XTCP_STATE_CLOSE_WAIT,
  XTCP_STATE_CLOSING, XTCP_STATE_LAST_ACK, XTCP_STATE_TIME_WAIT
};
/* One connection as the stack sees it (like Linux's TCP_INFO). */
struct xtcp_conn_info {
  int state;                 /* enum xtcp_tcp_state; CLOSED once the connection ended */
  const char* state_name;    /* "ESTABLISHED", ... (static string) */
  struct sockaddr_in local;  /* the stack's address and port */
  struct sockaddr_in remote; /* the client's */
  uint32_t snd_mss;          /* payload bytes per segment we send */
  uint32_t snd_wnd;          /* the peer's advertised window, bytes */
  uint32_t rcv_wnd;          /* the window we advertised last, bytes */
  uint32_t cwnd;             /* congestion window, bytes */
  uint32_t ssthresh;
  uint32_t srtt_us;          /* smoothed round-trip time (0: no sample yet) */
  uint32_t rttvar_us;
  uint32_t rto_us;           /* current retransmission timeout */
  uint32_t bytes_in_flight;  /* sent, not yet acknowledged by the peer */
  uint32_t backoff;          /* consecutive retransmission timeouts */
  uint64_t rx_held;          /* bytes received and not yet acknowledged by the application */
  uint64_t tx_cached;        /* answer bytes in the transmit cache (unsent or unacknowledged) */
  uint64_t user_data;
  int error;                 /* errno the connection ended with, 0 while it lives */
};
/* Fills *out. 0, -EBADF, -EINVAL (out NULL). */
int xtcp_connection_info(int gd, int cd, struct xtcp_conn_info* out);

/* ---- capturing connections ----------------------------------------------------------- */

/* Writes the packets of one connection, or of those a filter picks, to a pcap file while
 * the program runs (besides xtcp_config.pcap_path, which mirrors the whole link from the
 * start). Both directions are written as they cross the link, each packet once per
 * capture that matches it: for a connection its SYN and handshake (when the capture was
 * running then), data, retransmissions, window updates, the final FIN or RST exchange,
 * and ICMP errors that quote one of its segments. Packets are matched by their 4-tuple,
 * so the filter keeps matching after the connection ends (a new connection from the same
 * address and port is written too) until xtcp_capture_stop.
 *
 * Files are classic pcap (LINKTYPE_RAW: each record a bare IPv4 packet), timestamps in
 * microseconds of wall-clock time; tshark, tcpdump and Wireshark read them. Writing never
 * waits on the file: records go through a 64 KiB buffer per capture, one write(2) when it
 * fills, on a non-blocking descriptor. A write that fails (disk full, a FIFO whose reader
 * stalls, ...) ends that capture at once (its files are closed, "capture.errors" counts
 * it, the log reports it at XTCP_LOG_ERROR), and traffic goes on untouched. Up to
 * XTCP_MAX_CAPTURES captures exist at once.
 *
 * Rotation: with rotate_bytes, a file is closed when its next record would take it past
 * rotate_bytes, and the next one opened. The first file is path; for a path ending in
 * ".pcap" the next ones are NAME.1.pcap, NAME.2.pcap, ... (for any other path PATH.1,
 * PATH.2, ...); once more than rotate_files files were written, the oldest is removed, so
 * the newest rotate_files stay. Files of an earlier capture beyond those are left alone.
 *
 * xtcp_counters lists "capture.started", "capture.running", "capture.packets" (packets
 * written, all captures), "capture.bytes" (packet bytes written, after the snapshot
 * length), "capture.truncated" (packets cut to the snapshot length) and "capture.errors"
 * (captures ended by a failed write). */
#define XTCP_MAX_CAPTURES 16
struct xtcp_capture_spec {
  const char* path;        /* the pcap file, created or truncated (required) */
  int gd;                  /* 0: any group. A group: its port is the local port to match
                              (-EINVAL for a group without port; -EBADF unknown) */
  int cd;                  /* 0: every connection the other fields allow. A connection of
                              group gd (gd required): its 4-tuple (-EBADF unknown,
                              -ENOTCONN when its engine side is gone and the local port
                              no longer known) */
  const char* remote_addr; /* NULL or "": any. The peer's IPv4 address, dotted quad */
  uint16_t remote_port;    /* 0: any. The peer's port */
  uint16_t local_port;     /* 0: any. The stack's port */
  uint32_t snaplen;        /* bytes kept of each packet, 1 to 65535 (0: 65535); longer
                              packets are cut, the record keeping their length */
  uint64_t rotate_bytes;   /* 0: one file, no size limit. Else at least 4096: the size at
                              which the next file begins (a file takes its first record
                              whatever its size) */
  uint32_t rotate_files;   /* with rotate_bytes: the newest files kept, 1 to 10000 (0: 8);
                              must be 0 without rotate_bytes */
  uint32_t reserved_u32;   /* 0 */
  uint64_t reserved[4];    /* 0: room for later fields */
};
/* The fields given must agree: with cd, remote_addr/remote_port/local_port may be set only
 * to the connection's own values; with gd, local_port only to the group's port. A spec
 * with no field set captures every packet of the link.
 * Returns a positive capture id (never reused within the process), or -EINVAL (spec or
 * path NULL, a bad address, snaplen/rotate_* out of range, fields that disagree, reserved
 * fields not 0, not initialized), -EBADF (unknown gd or cd), -ENOTCONN, -EMFILE
 * (XTCP_MAX_CAPTURES captures exist), or the negative errno of opening the file
 * (-ENOENT, -EACCES, ...). */
int xtcp_capture_start(const struct xtcp_capture_spec* spec);
/* Stops the capture: flushes and closes its file. A capture that an error ended keeps its
 * place (and counts toward XTCP_MAX_CAPTURES) until stopped. 0, the negative errno of the
 * write or final flush that failed (-ENOSPC, ...; the capture is gone all the same), or
 * -EBADF (no such capture). */
int xtcp_capture_stop(int id);
struct xtcp_capture_stats {
  int running;             /* 1 while it writes; 0 once an error ended it */
  int error;               /* the errno that ended it (positive), 0 while running */
  uint64_t packets;        /* packets written */
  uint64_t bytes;          /* packet bytes written (after the snapshot length) */
  uint64_t truncated;      /* packets cut to snaplen */
  uint64_t file_index;     /* the file written now (or last): 0 is path, N its N-th successor */
  uint64_t reserved[4];
};
/* Fills *out for a capture started and not yet stopped. 0, -EBADF, -EINVAL (out NULL). */
int xtcp_capture_query(int id, struct xtcp_capture_stats* out);

/* ---- several pools ------------------------------------------------------------------- */

typedef struct xtcp_pool xtcp_pool;
/* A pool with its own shared receive buffer; NULL with *err set on failure. */
xtcp_pool* xtcp_pool_create(size_t buffer_pool_size, int* err);
int xtcp_pool_destroy(xtcp_pool* pool);
xtcp_pool* xtcp_default_pool(void);
int xtcp_pool_open_group(xtcp_pool* pool, int domain, int type, int protocol, uint16_t port);
/* Group descriptors are unique across pools, so the per-group calls above serve every
 * pool; these name the pool explicitly and check the group belongs to it. */
int xtcp_pool_accept(xtcp_pool* pool, int gd);
int xtcp_pool_recv(xtcp_pool* pool, int gd, int* cd, void* buf, size_t len);
int xtcp_pool_send(xtcp_pool* pool, int gd, int cd, size_t ackd, const void* buf, size_t len);
int xtcp_pool_close(xtcp_pool* pool, int gd, int cd);

struct xtcp_pool_stats {
  uint64_t connections;          /* open connections of the pool */
  uint64_t groups;
  uint64_t rx_buffer_size;       /* buffer_pool_size */
  uint64_t rx_buffer_used;       /* bytes received and not yet acknowledged */
  uint64_t rx_bytes;             /* bytes received in total */
  uint64_t rx_dropped_full;      /* payload bytes dropped because the buffer was full */
  uint64_t tx_cache_size;        /* the shared transmit cache (all pools) */
  uint64_t tx_cache_used;        /* answers waiting for the client's ACK (all pools) */
  uint64_t acks_on_answers;      /* ACKs that rode on an answer */
  uint64_t acks_alone;           /* ACKs sent without data (len 0, deadline, window) */
  uint64_t answers_from_cache;   /* retransmitted requests answered from the cache */
  uint64_t accept_timeouts;      /* connections refused because nobody accepted them */
};
/* Like stat(2), the function shares the struct's name: C++ code names the type
 * `struct xtcp_pool_stats`. GCC's -Wshadow would flag the pair in C++; it is intended. */
#if defined(__cplusplus) && defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#endif
int xtcp_pool_stats(const xtcp_pool* pool, struct xtcp_pool_stats* out);
#if defined(__cplusplus) && defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* XTCP_XTCP_H */
