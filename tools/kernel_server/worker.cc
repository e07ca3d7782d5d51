// The worker loop of xtcp-kernel-server: see worker.h.
//
// One round: epoll_pwait (SIGINT/SIGTERM let in only there) -> accept, read (edge-triggered:
// every readable connection is read until EAGAIN, or put on the ready list when its share of
// the round is used up), write on EPOLLOUT -> close what must close -> send what waits for
// the other workers -> write what the round queued for each connection -> publish counters.
//
// Output: every connection has one buffer of bytes not yet taken by the kernel, at most
// --max-output. Echo stops reading a client whose echo waits there (TCP backpressure, like
// any echo server); IM closes it as a slow consumer (its pushes come from other users and
// cannot wait), as xtcp-im does.
#include "tools/kernel_server/worker.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "server_examples/im/im_core.h"
#include "tools/kernel_server/mesh.h"
#include "tools/kernel_server/sequencer.h"

namespace xtcp::kserver {
namespace {

using xtcp_examples::ImCore;
using xtcp_examples::ImPush;

constexpr int kMaxEvents = 512;
constexpr std::size_t kReadBuffer = 64 * 1024;
constexpr std::size_t kReadShare = 256 * 1024;  // bytes read from one connection per round
constexpr int kAcceptShare = 1024;              // accepts per round
constexpr int kAcceptRetryMs = 50;              // after EMFILE: try again this often
constexpr std::size_t kKeepCapacity = 16 * 1024;  // an emptied buffer larger than this is freed
// Clients are not read while this much waits for one other worker (resumes below the
// second): what they would send would only queue more.
constexpr std::size_t kMeshPauseBytes = 8u << 20;
constexpr std::size_t kMeshResumeBytes = 2u << 20;

enum class FdKind : std::uint8_t { kNone, kListener, kMesh, kClient };

// The first space-separated word of *rest (leading spaces skipped), as ImCore splits.
std::string_view next_word(std::string_view* rest) {
  std::size_t i = 0;
  while (i < rest->size() && (*rest)[i] == ' ') {
    ++i;
  }
  std::size_t j = i;
  while (j < rest->size() && (*rest)[j] != ' ') {
    ++j;
  }
  const std::string_view word = rest->substr(i, j - i);
  *rest = rest->substr(j);
  return word;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

class Worker {
 public:
  explicit Worker(const WorkerSetup& s);
  int run();

 private:
  struct Conn {
    std::uint32_t serial = 0;  // 0: no connection on this descriptor
    bool eof = false;          // the client's FIN was read
    bool closing = false;      // close once the output is written (after FIN or QUIT)
    bool quit = false;         // IM: QUIT answered; later input is dropped
    bool doomed = false;       // on the kill list (slow consumer, oversized line)
    bool ready = false;        // on the ready list: may have unread input
    bool dirty = false;        // on the dirty list: output to write
    bool blocked_out = false;  // the kernel refused output: wait for EPOLLOUT
    bool read_paused = false;  // echo: the output is full, reading waits for it to drain
    std::uint64_t login_seq = 0;  // IM across workers: the directory number of its login
    std::string in;            // IM: the start of a line whose '\n' has not come
    std::string out;           // bytes the kernel has not taken yet, from out_off
    std::size_t out_off = 0;
    std::size_t pending() const { return out.size() - out_off; }
  };
  struct Ref {
    int fd;
    std::uint32_t serial;
  };
  struct LocalUser {
    int fd;
    std::uint32_t serial;
    std::uint64_t login_seq;
  };

  Conn* live(int fd, std::uint32_t serial) {
    if (fd < 0 || static_cast<std::size_t>(fd) >= conns_.size()) {
      return nullptr;
    }
    Conn& c = conns_[static_cast<std::size_t>(fd)];
    return c.serial != 0 && c.serial == serial ? &c : nullptr;
  }
  Conn& at(int fd) { return conns_[static_cast<std::size_t>(fd)]; }
  void bump(Ctr k, std::uint64_t n = 1) { kserver::bump(stats_, k, n); }

  void dispatch(const epoll_event& ev);
  void accept_some();
  void read_conn(int fd);
  void on_data(int fd, const char* p, std::size_t n);
  void on_eof(int fd);
  void on_reset(int fd);
  void flush_conn(int fd);
  void close_now(int fd, bool abortive);
  void doom(int fd, Ctr why);
  void mark_ready(int fd);
  void mark_dirty(int fd);
  void run_ready();
  void settle();
  void publish();
  void finish();

  // IM
  void im_data(int fd, std::string_view data);
  void im_line(int fd, std::string_view line);
  bool im_intercept(int fd, std::string_view line);  // across workers: LOGIN, MSG, LIST
  void im_disconnect(int fd);
  void route_pushes(std::vector<ImPush>& pushes);
  // Queues an answer (is_push false) or a push for fd; false when fd takes nothing more.
  bool push_line(int fd, std::string_view line, bool is_push);
  void announce(const std::string& name, bool online, std::uint64_t seq);
  void record_watch(int fd, std::string_view line);
  void forget_user(int fd, const std::string& name);
  void deliver(MeshRecord& r);
  void on_mesh(int peer, std::uint32_t events);

  const Options& opt_;
  const int index_;
  const int listen_fd_;
  WorkerStats* stats_;
  const bool im_;
  const bool multi_;  // IM with more than one worker
  int ep_ = -1;
  std::uint32_t next_serial_ = 1;
  std::uint64_t open_ = 0;
  std::vector<Conn> conns_;
  std::vector<FdKind> kinds_;
  std::vector<int> mesh_peer_;  // descriptor -> worker, for mesh sockets
  std::vector<Ref> ready_;
  std::vector<Ref> dirty_;
  std::vector<Ref> kills_;
  bool accept_more_ = false;
  bool accept_retry_ = false;
  bool mesh_paused_ = false;
  std::vector<char> rbuf_;

  // IM
  ImCore core_;
  std::string reply_;
  std::vector<ImPush> pushes_;
  std::uint64_t extra_messages_ = 0;  // answered here without ImCore (forwarded MSG)
  std::uint64_t extra_lists_ = 0;
  std::uint64_t extra_errors_ = 0;
  ImDirectory* dir_ = nullptr;
  std::unique_ptr<Mesh> mesh_;
  std::unique_ptr<Sequencer> seq_;
  std::unordered_map<std::string, LocalUser> users_;             // this worker's users
  std::unordered_map<std::string, std::vector<Ref>> watchers_;   // name -> connections that WATCH it
  std::unordered_map<int, std::vector<std::string>> watching_;   // descriptor -> names it watches
};

Worker::Worker(const WorkerSetup& s)
    : opt_(*s.options),
      index_(s.index),
      listen_fd_(s.listen_fd),
      stats_(s.stats),
      im_(s.options->protocol == Protocol::kIm),
      multi_(s.options->protocol == Protocol::kIm && s.options->processes > 1),
      rbuf_(kReadBuffer),
      dir_(s.directory) {
  if (multi_) {
    // Presence is delivered here, in the directory's order, to this worker's users; ImCore
    // only keeps WATCH lists (its own ONLINE/OFFLINE lines are dropped), so it must not
    // also fan out every login to everyone.
    core_.set_presence(ImCore::Presence::kWatched);
    mesh_ = std::make_unique<Mesh>(index_, s.mesh_fds, stats_);
    seq_ = std::make_unique<Sequencer>(opt_.processes, [this](MeshRecord& r) { deliver(r); });
  } else {
    core_.set_presence(opt_.presence == Presence::kWatched ? ImCore::Presence::kWatched : ImCore::Presence::kAll);
  }
}

int Worker::run() {
  ep_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep_ < 0) {
    std::fprintf(stderr, "%s: worker %d: epoll_create1: %s\n", kProgram, index_, std::strerror(errno));
    return 1;
  }
  auto watch_fd = [&](int fd, FdKind kind, std::uint32_t events) {
    if (static_cast<std::size_t>(fd) >= kinds_.size()) {
      kinds_.resize(static_cast<std::size_t>(fd) + 1, FdKind::kNone);
    }
    kinds_[static_cast<std::size_t>(fd)] = kind;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = static_cast<std::uint32_t>(fd);
    return ::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
  };
  if (watch_fd(listen_fd_, FdKind::kListener, EPOLLIN | EPOLLET) < 0) {
    std::fprintf(stderr, "%s: worker %d: epoll_ctl: %s\n", kProgram, index_, std::strerror(errno));
    return 1;
  }
  if (multi_) {
    for (int w = 0; w < mesh_->workers(); ++w) {
      const int fd = mesh_->fd(w);
      if (fd < 0) {
        continue;
      }
      if (static_cast<std::size_t>(fd) >= mesh_peer_.size()) {
        mesh_peer_.resize(static_cast<std::size_t>(fd) + 1, -1);
      }
      mesh_peer_[static_cast<std::size_t>(fd)] = w;
      if (watch_fd(fd, FdKind::kMesh, EPOLLIN | EPOLLOUT | EPOLLET) < 0) {
        std::fprintf(stderr, "%s: worker %d: epoll_ctl: %s\n", kProgram, index_, std::strerror(errno));
        return 1;
      }
    }
  }
  sigset_t let_in;  // nothing blocked while waiting: a stop signal ends epoll_pwait
  sigemptyset(&let_in);
  std::vector<epoll_event> events(kMaxEvents);
  while (!cli::stop_requested()) {
    int timeout = -1;
    if (accept_more_ || (!ready_.empty() && !mesh_paused_)) {
      timeout = 0;
    } else if (accept_retry_) {
      timeout = kAcceptRetryMs;
    }
    const int n = ::epoll_pwait(ep_, events.data(), kMaxEvents, timeout, &let_in);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      std::fprintf(stderr, "%s: worker %d: epoll_pwait: %s\n", kProgram, index_, std::strerror(errno));
      finish();
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      dispatch(events[static_cast<std::size_t>(i)]);
    }
    if (accept_more_ || accept_retry_) {
      accept_some();
    }
    if (multi_) {
      const std::size_t q = mesh_->max_queued();
      if (!mesh_paused_ && q > kMeshPauseBytes) {
        mesh_paused_ = true;
      } else if (mesh_paused_ && q < kMeshResumeBytes) {
        mesh_paused_ = false;
      }
      if (mesh_paused_) {
        bump(kMeshReadPauses);
      }
    }
    if (!mesh_paused_) {
      run_ready();
    }
    settle();
  }
  finish();
  return 0;
}

void Worker::dispatch(const epoll_event& ev) {
  const int fd = static_cast<int>(ev.data.u64 & 0xffffffffu);
  const auto serial = static_cast<std::uint32_t>(ev.data.u64 >> 32);
  const FdKind kind = static_cast<std::size_t>(fd) < kinds_.size() ? kinds_[static_cast<std::size_t>(fd)] : FdKind::kNone;
  if (kind == FdKind::kListener) {
    accept_some();
    return;
  }
  if (kind == FdKind::kMesh) {
    on_mesh(mesh_peer_[static_cast<std::size_t>(fd)], ev.events);
    return;
  }
  if (kind != FdKind::kClient) {
    return;
  }
  Conn* c = live(fd, serial);
  if (c == nullptr) {
    return;  // closed earlier in this round
  }
  if ((ev.events & EPOLLOUT) != 0 && c->blocked_out) {
    c->blocked_out = false;
    flush_conn(fd);
    c = live(fd, serial);
    if (c == nullptr) {
      return;
    }
  }
  if ((ev.events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
    if (mesh_paused_) {
      mark_ready(fd);
    } else {
      read_conn(fd);
    }
  }
}

void Worker::accept_some() {
  accept_more_ = false;
  for (int i = 0; i < kAcceptShare; ++i) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) {
        continue;
      }
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        if (!accept_retry_) {
          bump(kAcceptFdLimit);  // once per spell: the connection waits in the backlog
        }
        accept_retry_ = true;
        return;
      }
      accept_retry_ = false;  // EAGAIN: all taken
      return;
    }
    accept_retry_ = false;
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const auto ufd = static_cast<std::size_t>(fd);
    if (ufd >= conns_.size()) {
      conns_.resize(std::max(ufd + 1, conns_.size() * 2));
    }
    if (ufd >= kinds_.size()) {
      kinds_.resize(std::max(ufd + 1, kinds_.size() * 2), FdKind::kNone);
    }
    Conn& c = conns_[ufd];
    c = Conn{};
    c.serial = next_serial_++;
    if (next_serial_ == 0) {
      next_serial_ = 1;
    }
    kinds_[ufd] = FdKind::kClient;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = (static_cast<std::uint64_t>(c.serial) << 32) | static_cast<std::uint32_t>(fd);
    if (::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) < 0) {
      c = Conn{};
      kinds_[ufd] = FdKind::kNone;
      ::close(fd);
      continue;
    }
    ++open_;
    bump(kAccepted);
  }
  accept_more_ = true;  // the share is used up: more next round
}

void Worker::read_conn(int fd) {
  const std::uint32_t serial = at(fd).serial;
  std::size_t share = kReadShare;
  for (;;) {
    Conn* c = live(fd, serial);
    if (c == nullptr || c->doomed || c->eof || c->quit) {
      return;  // after QUIT the rest is dropped when the connection closes
    }
    if (!im_ && c->pending() >= opt_.max_output) {
      c->read_paused = true;  // reading goes on once the echo drains (flush_conn)
      bump(kReadPauses);
      return;
    }
    if (share == 0) {
      mark_ready(fd);
      return;
    }
    const ssize_t n = ::recv(fd, rbuf_.data(), std::min(rbuf_.size(), share), 0);
    if (n > 0) {
      bump(kBytesIn, static_cast<std::uint64_t>(n));
      share -= static_cast<std::size_t>(n);
      on_data(fd, rbuf_.data(), static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) {
      on_eof(fd);
      return;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return;
    }
    on_reset(fd);
    return;
  }
}

void Worker::on_data(int fd, const char* p, std::size_t n) {
  if (im_) {
    im_data(fd, std::string_view(p, n));
    return;
  }
  Conn& c = at(fd);
  std::size_t sent = 0;
  if (c.pending() == 0 && !c.blocked_out) {
    // Nothing waits: straight back from the read buffer.
    while (sent < n) {
      const ssize_t w = ::send(fd, p + sent, n - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) {
        sent += static_cast<std::size_t>(w);
        bump(kBytesOut, static_cast<std::uint64_t>(w));
        continue;
      }
      if (w < 0 && errno == EINTR) {
        continue;
      }
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        c.blocked_out = true;
        break;
      }
      on_reset(fd);
      return;
    }
  }
  if (sent < n) {
    c.out.append(p + sent, n - sent);
    mark_dirty(fd);
  }
}

void Worker::on_eof(int fd) {
  Conn& c = at(fd);
  bump(kClientCloses);
  c.eof = true;
  c.closing = true;
  if (im_) {
    c.in.clear();  // an unfinished last line is dropped
    im_disconnect(fd);
  }
  mark_dirty(fd);  // closes once the output is written
}

void Worker::on_reset(int fd) {
  bump(kResets);
  if (im_) {
    im_disconnect(fd);
  }
  close_now(fd, false);
}

void Worker::flush_conn(int fd) {
  Conn& c = at(fd);
  if (c.doomed) {
    return;
  }
  while (c.pending() > 0 && !c.blocked_out) {
    const ssize_t n = ::send(fd, c.out.data() + c.out_off, c.pending(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c.out_off += static_cast<std::size_t>(n);
      bump(kBytesOut, static_cast<std::uint64_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      c.blocked_out = true;
      break;
    }
    on_reset(fd);
    return;
  }
  if (c.pending() == 0) {
    if (c.out.capacity() > kKeepCapacity) {
      std::string().swap(c.out);
    } else {
      c.out.clear();
    }
    c.out_off = 0;
    if (c.closing) {
      close_now(fd, false);
      return;
    }
  } else if (c.out_off >= kKeepCapacity && c.out_off * 2 >= c.out.size()) {
    c.out.erase(0, c.out_off);
    c.out_off = 0;
  }
  if (c.read_paused && c.pending() <= opt_.max_output / 2) {
    c.read_paused = false;
    mark_ready(fd);
  }
}

void Worker::close_now(int fd, bool abortive) {
  Conn& c = at(fd);
  if (c.serial == 0) {
    return;
  }
  if (im_ && !core_.user_of(fd).empty()) {
    im_disconnect(fd);  // every path out logs the user out first; this is the safety net
  }
  if (abortive) {
    const linger lg{1, 0};  // RST: a slow consumer's queue or an unframeable line is not worth sending
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  } else if (!c.eof) {
    // Input nobody will read (after QUIT) would turn our FIN into a RST: take it first.
    for (int i = 0; i < 64; ++i) {
      const ssize_t n = ::recv(fd, rbuf_.data(), rbuf_.size(), MSG_DONTWAIT);
      if (n <= 0 && !(n < 0 && errno == EINTR)) {
        break;
      }
    }
  }
  ::close(fd);  // also leaves the epoll set
  c = Conn{};
  kinds_[static_cast<std::size_t>(fd)] = FdKind::kNone;
  --open_;
}

void Worker::doom(int fd, Ctr why) {
  Conn& c = at(fd);
  if (c.doomed) {
    return;
  }
  c.doomed = true;
  bump(why);
  kills_.push_back(Ref{fd, c.serial});
}

void Worker::mark_ready(int fd) {
  Conn& c = at(fd);
  if (!c.ready) {
    c.ready = true;
    ready_.push_back(Ref{fd, c.serial});
  }
}

void Worker::mark_dirty(int fd) {
  Conn& c = at(fd);
  if (!c.dirty) {
    c.dirty = true;
    dirty_.push_back(Ref{fd, c.serial});
  }
}

void Worker::run_ready() {
  std::vector<Ref> now;
  now.swap(ready_);
  for (const Ref& r : now) {
    if (Conn* c = live(r.fd, r.serial)) {
      c->ready = false;
      read_conn(r.fd);
    }
  }
}

void Worker::settle() {
  // Kills first: closing a slow consumer logs its user out, which may push (and kill) more.
  // Writing may fail too (a reset logs a user out and pushes). Bounded: every further pass
  // comes from a connection that was closed.
  for (;;) {
    while (!kills_.empty()) {
      const Ref k = kills_.back();
      kills_.pop_back();
      if (live(k.fd, k.serial) != nullptr) {
        if (im_) {
          im_disconnect(k.fd);
        }
        close_now(k.fd, true);
      }
    }
    if (multi_) {
      mesh_->flush();
    }
    std::vector<Ref> now;
    now.swap(dirty_);
    for (const Ref& r : now) {
      if (Conn* c = live(r.fd, r.serial)) {
        c->dirty = false;
        flush_conn(r.fd);
      }
    }
    if (kills_.empty() && dirty_.empty()) {
      break;
    }
  }
  publish();
}

void Worker::publish() {
  set_gauge(stats_, kOpen, open_);
  if (!im_) {
    return;
  }
  const xtcp_examples::ImCounters& k = core_.counters();
  set_gauge(stats_, kOnline, core_.online());
  set_gauge(stats_, kLogins, k.logins);
  set_gauge(stats_, kLogouts, k.logouts);
  set_gauge(stats_, kMessages, k.messages + extra_messages_);
  set_gauge(stats_, kMessagesOffline, k.messages_offline);
  set_gauge(stats_, kLists, k.lists + extra_lists_);
  set_gauge(stats_, kWatches, k.watches);
  set_gauge(stats_, kErrors, k.errors + extra_errors_);
  if (multi_) {
    set_gauge(stats_, kHeldRecords, seq_->held_total());
  }
}

void Worker::finish() {
  publish();
  ProcessMemory m;
  if (read_process_memory("/proc/self", &m)) {  // with every connection still open
    stats_->rss_bytes.store(m.rss);
    stats_->pss_bytes.store(m.pss);
    stats_->rss_peak_bytes.store(m.rss_peak);
    stats_->final_memory.store(1);
  }
  for (std::size_t fd = 0; fd < conns_.size(); ++fd) {
    if (conns_[fd].serial != 0) {
      ::close(static_cast<int>(fd));
      conns_[fd] = Conn{};
    }
  }
  open_ = 0;
  set_gauge(stats_, kOpen, 0);
  if (ep_ >= 0) {
    ::close(ep_);
    ep_ = -1;
  }
}

// ---- IM ---------------------------------------------------------------------------------

void Worker::im_data(int fd, std::string_view data) {
  Conn* c = &at(fd);
  const std::uint32_t serial = c->serial;
  std::string joined;
  if (!c->in.empty()) {
    joined = std::move(c->in);
    c->in.clear();
    joined.append(data);
    data = joined;
  }
  std::size_t pos = 0;
  while (pos < data.size()) {
    const std::size_t nl = data.find('\n', pos);
    const std::size_t len = (nl == std::string_view::npos ? data.size() : nl) - pos;
    if (len > kMaxFramedLine) {
      doom(fd, kOversizedLines);  // cannot be framed: reset, as xtcp-im's stack does
      return;
    }
    if (nl == std::string_view::npos) {
      break;
    }
    im_line(fd, data.substr(pos, len));
    pos = nl + 1;
    c = live(fd, serial);
    if (c == nullptr || c->quit || c->doomed) {
      return;  // whatever follows QUIT is dropped
    }
  }
  c->in.assign(data.substr(pos));
}

void Worker::im_line(int fd, std::string_view line) {
  bump(kRequests);
  reply_.clear();
  pushes_.clear();
  if (multi_ && im_intercept(fd, line)) {
    push_line(fd, reply_, false);
    return;
  }
  std::string was;
  if (multi_) {
    was.assign(core_.user_of(fd));
  }
  const ImCore::After after = core_.on_line(fd, line, &reply_, &pushes_);
  if (multi_) {
    if (!was.empty() && core_.user_of(fd).empty()) {
      forget_user(fd, was);  // QUIT
    } else if (reply_ == "OK\n") {
      std::string_view rest = line;
      if (next_word(&rest) == "WATCH") {
        record_watch(fd, line);
      }
    }
  }
  push_line(fd, reply_, false);
  route_pushes(pushes_);
  if (after == ImCore::After::kClose) {
    Conn& c = at(fd);
    c.quit = true;
    c.closing = true;
    c.in.clear();
    bump(kQuits);
    mark_dirty(fd);  // closes after BYE
  }
}

bool Worker::im_intercept(int fd, std::string_view line) {
  std::string_view l = line;
  if (!l.empty() && l.back() == '\r') {
    l.remove_suffix(1);
  }
  if (l.size() > xtcp_examples::kImMaxLine) {
    return false;
  }
  std::string_view rest = l;
  const std::string_view cmd = next_word(&rest);
  const bool logged_in = !core_.user_of(fd).empty();
  if (cmd == "LOGIN" && !logged_in) {
    const std::string_view name = next_word(&rest);
    if (!ImCore::valid_name(name) || !next_word(&rest).empty()) {
      return false;  // ImCore answers ERR bad-name
    }
    std::uint64_t seq = 0;
    const ImDirectory::Claim claim = dir_->claim(name, index_, &seq);
    if (claim != ImDirectory::Claim::kOk) {
      reply_ = claim == ImDirectory::Claim::kTaken ? "ERR name-taken\n" : "ERR server-full\n";
      ++extra_errors_;
      return true;
    }
    // Free in the directory, so free in this worker's ImCore too: it answers OK.
    core_.on_line(fd, line, &reply_, &pushes_);
    pushes_.clear();  // its ONLINE lines: presence goes out below, in the directory's order
    const std::string n(name);
    at(fd).login_seq = seq;
    users_[n] = LocalUser{fd, at(fd).serial, seq};
    announce(n, true, seq);
    return true;
  }
  if (cmd == "MSG" && logged_in) {
    const std::string_view to = next_word(&rest);
    if (to.empty() || rest.size() < 2 || rest[0] != ' ') {
      return false;  // ImCore answers ERR usage
    }
    const std::optional<ImDirectory::Where> where = dir_->lookup(to);
    if (!where || where->worker == index_) {
      return false;  // ImCore: ERR offline, or a user of this worker
    }
    MeshRecord m;
    m.type = MeshRecord::kFrom;
    m.seq = where->claim_seq;
    m.name.assign(to);
    const std::string_view me = core_.user_of(fd);
    const std::string_view text = rest.substr(1);
    m.line.reserve(6 + me.size() + text.size() + 1);
    m.line.append("FROM ").append(me).append(" ").append(text).push_back('\n');
    mesh_->send(where->worker, m);
    bump(kForwarded);
    ++extra_messages_;
    reply_ = "OK\n";
    return true;
  }
  if (cmd == "LIST" && logged_in) {
    if (!next_word(&rest).empty()) {
      return false;  // ImCore answers ERR usage LIST
    }
    reply_ = "USERS";
    for (const std::string& n : dir_->names()) {
      reply_.append(" ").append(n);
    }
    reply_.push_back('\n');
    ++extra_lists_;
    return true;
  }
  return false;
}

void Worker::im_disconnect(int fd) {
  std::string name;
  if (multi_) {
    name.assign(core_.user_of(fd));
  }
  std::vector<ImPush> pushes;
  core_.on_disconnect(fd, &pushes);
  route_pushes(pushes);
  if (!name.empty()) {
    forget_user(fd, name);
  }
}

void Worker::forget_user(int fd, const std::string& name) {
  users_.erase(name);
  const auto it = watching_.find(fd);
  if (it != watching_.end()) {
    for (const std::string& n : it->second) {
      const auto w = watchers_.find(n);
      if (w == watchers_.end()) {
        continue;
      }
      std::erase_if(w->second, [fd](const Ref& r) { return r.fd == fd; });
      if (w->second.empty()) {
        watchers_.erase(w);
      }
    }
    watching_.erase(it);
  }
  at(fd).login_seq = 0;
  const std::uint64_t seq = dir_->release(name, index_);
  if (seq != 0) {
    announce(name, false, seq);
  }
}

void Worker::record_watch(int fd, std::string_view line) {
  std::string_view rest = line;
  if (!rest.empty() && rest.back() == '\r') {
    rest.remove_suffix(1);
  }
  next_word(&rest);  // WATCH
  const std::string name(next_word(&rest));
  std::vector<std::string>& mine = watching_[fd];
  if (std::find(mine.begin(), mine.end(), name) != mine.end()) {
    return;
  }
  mine.push_back(name);
  watchers_[name].push_back(Ref{fd, at(fd).serial});
}

void Worker::announce(const std::string& name, bool online, std::uint64_t seq) {
  MeshRecord ev;
  ev.type = MeshRecord::kPresence;
  ev.online = online;
  ev.seq = seq;
  ev.name = name;
  mesh_->broadcast(ev);
  bump(kPresenceEvents);
  seq_->add(index_, std::move(ev));
}

void Worker::route_pushes(std::vector<ImPush>& pushes) {
  for (ImPush& p : pushes) {
    if (!multi_) {
      push_line(p.cd, p.line, true);
      continue;
    }
    if (!starts_with(p.line, "FROM ")) {
      continue;  // ImCore's ONLINE/OFFLINE: presence is announced through the directory's order
    }
    MeshRecord r;
    r.type = MeshRecord::kLocalPush;
    r.fd = static_cast<std::uint32_t>(p.cd);
    r.serial = at(p.cd).serial;
    r.line = std::move(p.line);
    seq_->add(index_, std::move(r));
  }
}

bool Worker::push_line(int fd, std::string_view line, bool is_push) {
  Conn& c = at(fd);
  if (c.serial == 0 || c.doomed || c.quit || c.eof) {
    return false;  // after QUIT or FIN the user is logged out: nothing more goes to it
  }
  c.out.append(line);
  mark_dirty(fd);
  if (is_push) {
    bump(kPushes);
  }
  if (c.pending() > opt_.max_output) {
    doom(fd, kSlowConsumers);
  }
  return true;
}

void Worker::deliver(MeshRecord& r) {
  switch (r.type) {
    case MeshRecord::kLocalPush: {
      if (live(static_cast<int>(r.fd), r.serial) == nullptr || !push_line(static_cast<int>(r.fd), r.line, true)) {
        bump(kForwardDropped);
      }
      return;
    }
    case MeshRecord::kFrom: {
      const auto it = users_.find(r.name);
      if (it == users_.end() || it->second.login_seq != r.seq || live(it->second.fd, it->second.serial) == nullptr ||
          !push_line(it->second.fd, r.line, true)) {
        bump(kForwardDropped);  // the user left (or logged in again) before it arrived
      }
      return;
    }
    case MeshRecord::kPresence: {
      const std::string line = std::string(r.online ? "ONLINE " : "OFFLINE ") + r.name + "\n";
      if (opt_.presence == Presence::kAll) {
        // Everyone logged in before the event (not the user itself, not later logins).
        for (const auto& [name, u] : users_) {
          if (u.login_seq < r.seq) {
            push_line(u.fd, line, true);
          }
        }
        return;
      }
      const auto it = watchers_.find(r.name);
      if (it == watchers_.end()) {
        return;
      }
      for (const Ref& w : it->second) {
        const Conn* c = live(w.fd, w.serial);
        if (c != nullptr && c->login_seq != r.seq) {
          push_line(w.fd, line, true);
        }
      }
      return;
    }
  }
}

void Worker::on_mesh(int peer, std::uint32_t events) {
  if ((events & EPOLLOUT) != 0) {
    mesh_->on_writable(peer);
  }
  if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) == 0) {
    return;
  }
  const bool alive = mesh_->receive(peer, [&](MeshRecord&& r) {
    bump(r.type == MeshRecord::kPresence ? kPresenceReceived : kForwardReceived);
    seq_->add(peer, std::move(r));
  });
  if (!alive) {
    // The peer exited (stopping, or it died: the parent then stops every worker).
    ::epoll_ctl(ep_, EPOLL_CTL_DEL, mesh_->fd(peer), nullptr);
  }
}

}  // namespace

int run_worker(const WorkerSetup& setup) {
  Worker w(setup);
  return w.run();
}

bool read_process_memory(const std::string& proc_dir, ProcessMemory* m) {
  auto kb_field = [](const std::string& path, const char* key, std::uint64_t* out) {
    std::ifstream in(path);
    std::string line;
    const std::size_t klen = std::strlen(key);
    while (std::getline(in, line)) {
      if (line.compare(0, klen, key) == 0) {
        std::istringstream v(line.substr(klen));
        std::uint64_t kb = 0;
        v >> kb;
        *out = kb * 1024;
        return true;
      }
    }
    return false;
  };
  *m = ProcessMemory{};
  const bool rss = kb_field(proc_dir + "/status", "VmRSS:", &m->rss);
  kb_field(proc_dir + "/status", "VmHWM:", &m->rss_peak);
  kb_field(proc_dir + "/smaps_rollup", "Pss:", &m->pss);
  return rss;
}

}  // namespace xtcp::kserver
