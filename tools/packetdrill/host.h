// One xtcp host for packetdrill's --so_filename mode: a stack (IPv4 + TCP engine) on a link
// whose two ends are packetdrill's netdev_send (packets into the stack) and netdev_receive
// (packets out of it), in virtual time (a ManualClock moved only by packetdrill's
// gettimeofday, usleep and netdev_receive), under a small BSD socket layer whose
// descriptors are real placeholder sockets (packetdrill closes leftovers with libc close).
//
// Threads: packetdrill runs blocking system calls on a second thread while its main thread
// keeps injecting packets and moving time. One mutex guards the whole host; a blocked call
// waits on a condition variable that every injected packet and every move of the clock
// signals. A call that would block on the main thread (the thread that loaded the library)
// cannot be woken by anyone: it moves virtual time through the stack's deadlines instead,
// as a kernel's timers would complete it, and gives up (EAGAIN) past max_wait.
//
// Every method returns a negative errno on failure (the C entry points turn it into -1 and
// errno); option, flag and errno numbers are Linux's.
#pragma once

#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "stack/buffer/stream_buffers.h"
#include "stack/core/clock.h"
#include "stack/core/function_ref.h"
#include "stack/netif/link.h"
#include "stack/stack.h"

namespace xtcp::packetdrill {

// What --so_flags sets: "local=A.B.C.D[,rcvbuf=N][,sndbuf=N][,mtu=N][,max_wait=S]"
// (separated by commas or spaces).
struct HostOptions {
  std::uint32_t local_addr = 0;  // host order; required (packetdrill's --local_ip)
  std::size_t rcvbuf = 64 * 1024;  // receive buffer of every connection
  std::size_t sndbuf = 64 * 1024;  // send buffer of every connection
  std::size_t mtu = 1500;
  // How far in virtual time netdev_receive (or a call blocking on the main thread) moves
  // through the stack's deadlines waiting for something before it gives up.
  TimeNs max_wait = seconds(3 * 3600);  // past a keep-alive probe (2 h idle)
  // What every gettimeofday call adds to the clock (packetdrill spins on it).
  TimeNs gettimeofday_step = us(1);
};

// Parses --so_flags. false with *error saying what is wrong.
bool parse_host_options(const char* flags, HostOptions* out, std::string* error);

// The link between the stack and packetdrill: injected packets wait in `inbound` until the
// stack polls; what the stack sends waits in `outbound`, stamped with the virtual time it
// left, until netdev_receive takes it.
class PacketdrillLink final : public Link {
 public:
  struct Sent {
    TimeNs at;
    std::vector<std::byte> bytes;
  };
  PacketdrillLink(const Clock& clock, std::size_t mtu) : clock_(clock), mtu_(mtu) {}
  int send(std::span<const std::byte> packet) override;
  int receive_batch(int max_packets, PacketHandler on_packet) override;
  std::size_t mtu() const override { return mtu_; }

  std::deque<std::vector<std::byte>> inbound;
  std::deque<Sent> outbound;

 private:
  const Clock& clock_;
  std::size_t mtu_;
};

// Per-connection byte rings behind the engine's RxStore and TxStore, with peek for MSG_PEEK.
class SocketStores {
 public:
  SocketStores(std::size_t rcvbuf, std::size_t sndbuf) : rcvbuf_(rcvbuf), sndbuf_(sndbuf) {}
  RxStore& rx() { return rx_side_; }
  TxStore& tx() { return tx_side_; }

  std::size_t readable(ConnId conn) const;
  std::size_t read(ConnId conn, wire::MutableByteSpan out, bool peek);
  std::size_t unacked(ConnId conn) const;  // bytes queued to send, not yet acknowledged
  std::size_t tx_free(ConnId conn) const { return sndbuf_ - unacked(conn); }
  std::size_t rcvbuf() const { return rcvbuf_; }
  std::size_t sndbuf() const { return sndbuf_; }

 private:
  struct Rings {
    std::unique_ptr<ByteRing> rx;
    std::unique_ptr<ByteRing> tx;
  };
  class RxSide final : public RxStore {
   public:
    explicit RxSide(SocketStores& s) : s_(s) {}
    std::size_t append(ConnId conn, wire::ByteSpan data) override;
    std::size_t free_space(ConnId conn) const override { return s_.rcvbuf_ - s_.readable(conn); }
    std::size_t capacity(ConnId) const override { return s_.rcvbuf_; }
    std::size_t held(ConnId conn) const override { return s_.readable(conn); }
    void release(ConnId conn) override { s_.drop(conn, /*rx=*/true); }

   private:
    SocketStores& s_;
  };
  class TxSide final : public TxStore {
   public:
    explicit TxSide(SocketStores& s) : s_(s) {}
    std::size_t append(ConnId conn, wire::ByteSpan data) override;
    std::size_t free_space(ConnId conn) const override { return s_.tx_free(conn); }
    std::size_t copy(ConnId conn, std::size_t offset, wire::MutableByteSpan dst) const override;
    void consume(ConnId conn, std::size_t n) override;
    void release(ConnId conn) override { s_.drop(conn, /*rx=*/false); }

   private:
    SocketStores& s_;
  };
  const Rings* find(ConnId conn) const;
  void drop(ConnId conn, bool rx);

  std::size_t rcvbuf_;
  std::size_t sndbuf_;
  std::unordered_map<ConnId, Rings> rings_;
  RxSide rx_side_{*this};
  TxSide tx_side_{*this};
};

class Host {
 public:
  explicit Host(const HostOptions& options);
  ~Host();
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  // Time and packets.
  void gettimeofday(timeval* tv);
  void usleep(std::uint64_t usec);
  int netdev_send(const void* buf, std::size_t count);
  // *count 0 when nothing left the stack within max_wait of virtual time.
  int netdev_receive(void* buf, std::size_t* count, long long* time_usecs);

  // Sockets (sockets.cc).
  int socket(int domain, int type, int protocol);
  int bind(int fd, const sockaddr* addr, socklen_t len);
  int listen(int fd, int backlog);
  int accept(int fd, sockaddr* addr, socklen_t* len);
  int connect(int fd, const sockaddr* addr, socklen_t len);
  ssize_t recv(int fd, void* buf, std::size_t len, int flags);
  ssize_t send(int fd, const void* buf, std::size_t len, int flags);
  int fcntl(int fd, int cmd, long arg);
  int ioctl(int fd, unsigned long request, void* arg);
  int close(int fd);
  int shutdown(int fd, int how);
  int getsockopt(int fd, int level, int name, void* value, socklen_t* len);
  int setsockopt(int fd, int level, int name, const void* value, socklen_t len);
  int poll(pollfd* fds, nfds_t nfds, int timeout_ms);
  // epoll over the host's sockets (epoll.cc): level-triggered, EPOLLET (reported again after
  // the socket's next wakeup: data, an ACK, a state change), EPOLLONESHOT.
  int epoll_create(int size);
  int epoll_ctl(int epfd, int op, int fd, const epoll_event* event);
  int epoll_wait(int epfd, epoll_event* events, int maxevents, int timeout_ms);

  TimeNs now() const { return clock_.now(); }
  const Stack& stack() const { return *stack_; }

 private:
  // What the engine told us about one connection (TcpEvents).
  struct ConnState {
    bool connected = false;
    bool peer_fin = false;
    bool done = false;   // reached CLOSED (error says how)
    int error = 0;
    int fd = -1;         // the descriptor holding it; -1 while waiting in a listener's queue
  };
  struct Socket {
    int fd = -1;
    ino_t ino = 0;  // of the placeholder, to recognise it again at teardown
    bool nonblocking = false;
    bool cloexec = false;
    bool reuseaddr = false;
    bool keepalive = false;
    bool nodelay = false;
    bool linger_abort = false;  // SO_LINGER on with 0 s: close() resets
    int linger_seconds = 0;
    bool linger_on = false;
    bool bound = false;
    std::uint32_t addr = 0;  // host order, 0: any
    std::uint16_t port = 0;
    bool listening = false;
    int backlog = 0;
    std::deque<ConnId> pending;  // handshakes done, taken from the engine, not accepted yet
    ConnId conn = kNoConn;
    int so_error = 0;  // reported once: by SO_ERROR, or by the next read or write
    bool shut_rd = false;
    bool shut_wr = false;
    std::uint64_t wakeups = 0;  // engine events for it (data, ACKs, state changes)
  };
  struct EpollItem {
    epoll_event event{};
    std::uint64_t seen_wakeups = 0;  // EPOLLET: what was last looked at
    bool disabled = false;           // EPOLLONESHOT, after it reported
  };
  struct Epoll {
    ino_t ino = 0;
    std::map<int, EpollItem> items;
  };

  // Runs the stack at the current time: injected packets, due timers, events.
  void pump();
  // Moves the clock to t, firing each timer at its own deadline on the way.
  // With lock (the caller's, on the main thread), blocked threads get to run at each step.
  void advance_to(TimeNs t, std::unique_lock<std::mutex>* lock = nullptr);
  void handle_events();
  void fill_pending(Socket& s);
  // Waits until ready() (true) or the virtual deadline (false). On the main thread the
  // clock moves through the stack's deadlines; elsewhere a condition variable waits for
  // the main thread to inject or move time.
  bool wait_until(std::unique_lock<std::mutex>& lock, FunctionRef<bool()> ready, TimeNs deadline);
  bool on_main_thread() const { return std::this_thread::get_id() == main_thread_; }
  // On the main thread: waits until every thread blocked in a call has looked at the
  // host's latest state (and gone back to sleep or finished its call), so a reader woken
  // by an injected packet reads before virtual time moves on, as it would on a kernel.
  void let_waiters_run(std::unique_lock<std::mutex>& lock);

  Socket* find(int fd);
  ConnState* conn_state(const Socket& s);
  // The pending error as a negative errno, now reported (cleared).
  static int take_error(Socket& s);
  // A real descriptor for a socket or an epoll instance: an unbound AF_UNIX socket, whose
  // inode tells it apart at teardown. The descriptor, or a negative errno.
  int new_placeholder(ino_t* ino);
  std::uint16_t free_port();
  short revents(int fd, short events);
  int readable_now(const Socket& s, int flags) const;
  ssize_t send_locked(std::unique_lock<std::mutex>& lock, Socket& s, const std::byte* data,
                      std::size_t len, bool dont_wait);
  int tcp_info(const Socket& s, void* value, socklen_t* len);
  void release_conn(ConnId conn);

  HostOptions options_;
  std::mutex mu_;
  std::condition_variable changed_;   // signalled on every change of state or time
  std::condition_variable looked_;    // a blocked thread went back to sleep or left
  std::uint64_t generation_ = 0;      // bumped with every signal of changed_
  // A thread asleep in a blocking call: the generation it last looked at, and when its
  // call times out (kNever: it does not), a moment the clock stops at on its way.
  struct Sleeper {
    std::uint64_t seen;
    TimeNs deadline;
  };
  std::unordered_map<std::thread::id, Sleeper> sleepers_;
  // The earliest moment the clock must stop at: the stack's next timer or a sleeper's timeout.
  TimeNs next_stop() const;
  std::thread::id main_thread_;
  ManualClock clock_{seconds(1)};
  PacketdrillLink link_;
  SocketStores stores_;
  std::unique_ptr<Stack> stack_;
  std::map<int, Socket> sockets_;
  std::map<int, Epoll> epolls_;
  std::unordered_map<ConnId, ConnState> conns_;
  std::uint16_t next_port_ = 0;
};

}  // namespace xtcp::packetdrill
