// The packetdrill adapter (libxtcp-packetdrill.so) driven the way packetdrill drives it:
// dlopen, packetdrill_interface_init with --so_flags, socket calls through the slots,
// packets in through netdev_send and out through netdev_receive, time through
// gettimeofday/usleep, and a blocking call on a second thread while this thread injects.
// packetdrill itself is not needed: the scripts in this folder run against the real
// packetdrill (docs/testing.md); this test keeps the entry points honest in CI.
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "stack/wire/bytes.h"
#include "stack/wire/checksum.h"
#include "stack/wire/ipv4.h"
#include "stack/wire/tcp.h"
#include "tools/packetdrill/packetdrill_interface.h"

namespace {

using namespace xtcp;                    // NOLINT
using namespace xtcp::wire::tcp_flags;  // NOLINT

constexpr std::uint32_t kLocal = wire::ipv4_addr(198, 18, 0, 1);
constexpr std::uint32_t kRemote = wire::ipv4_addr(198, 18, 1, 1);
constexpr std::uint16_t kPort = 8080;
constexpr std::uint16_t kPeerPort = 40001;

// One segment as the adapter sent it.
struct Out {
  std::uint8_t flags = 0;
  std::uint32_t seq = 0;
  std::uint32_t ack = 0;
  std::uint16_t window = 0;
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;
  wire::TcpOptions opts;
  std::string payload;
  long long time_usecs = 0;
};

class Adapter {
 public:
  explicit Adapter(const char* flags) {
    // packetdrill adds RTLD_NODELETE | RTLD_DEEPBIND; DEEPBIND does not mix with the
    // sanitizers' interceptors, and nothing here needs it.
    handle_ = dlopen(XTCP_PACKETDRILL_LIB, RTLD_NOW | RTLD_LOCAL);
    if (handle_ == nullptr) {
      ADD_FAILURE() << "dlopen " << XTCP_PACKETDRILL_LIB << ": " << dlerror();
      return;
    }
    auto init = reinterpret_cast<packetdrill_interface_init_t>(
        dlsym(handle_, "packetdrill_interface_init"));
    if (init == nullptr) {
      ADD_FAILURE() << "no packetdrill_interface_init";
      return;
    }
    init(flags, &ifc);
  }
  ~Adapter() {
    if (ifc.free != nullptr) {
      ifc.free(ifc.userdata);
    }
    if (handle_ != nullptr) {
      dlclose(handle_);
    }
  }
  Adapter(const Adapter&) = delete;
  Adapter& operator=(const Adapter&) = delete;

  void* u() const { return ifc.userdata; }

  long long now_usecs() {
    timeval tv{};
    EXPECT_EQ(ifc.gettimeofday(u(), &tv, nullptr), 0);
    return static_cast<long long>(tv.tv_sec) * 1'000'000 + tv.tv_usec;
  }

  // The peer's segment, as packetdrill builds it: IPv4 + TCP, checksums filled.
  void inject(std::uint8_t flags, std::uint32_t seq, std::uint32_t ack, std::string_view payload = {},
              std::uint16_t window = 65535, const wire::TcpOptions& opts = {}) {
    std::vector<std::byte> p(wire::kIpv4HeaderMin + wire::tcp_header_length(opts) + payload.size());
    wire::TcpFields f;
    f.src_port = kPeerPort;
    f.dst_port = kPort;
    f.seq = wire::SeqNum(seq);
    f.ack = wire::SeqNum(ack);
    f.flags = flags;
    f.window = window;
    std::byte* tcp = p.data() + wire::kIpv4HeaderMin;
    const std::size_t hdr = wire::emit_tcp_header(tcp, f, opts);
    if (!payload.empty()) {
      std::memcpy(tcp + hdr, payload.data(), payload.size());
    }
    wire::fill_tcp_checksum(wire::MutableByteSpan(tcp, hdr + payload.size()), kRemote, kLocal);
    wire::Ipv4Fields ip;
    ip.total_length = static_cast<std::uint16_t>(p.size());
    ip.protocol = wire::kProtoTcp;
    ip.src = kRemote;
    ip.dst = kLocal;
    wire::emit_ipv4_header(p.data(), ip);
    ASSERT_EQ(ifc.netdev_send(u(), p.data(), p.size()), 0);
  }

  // The next packet the stack sent (netdev_receive jumps to the stack's next deadline when
  // nothing waits); nullopt when nothing came within max_wait.
  std::optional<Out> receive() {
    std::vector<std::byte> buf(65536);
    std::size_t count = buf.size();
    long long t = 0;
    EXPECT_EQ(ifc.netdev_receive(u(), buf.data(), &count, &t), 0);
    if (count == 0) {
      return std::nullopt;
    }
    const auto ip = wire::Ipv4View::parse(wire::ByteSpan(buf.data(), count));
    EXPECT_TRUE(ip.has_value());
    if (!ip) {
      return std::nullopt;
    }
    EXPECT_EQ(ip->src(), kLocal);
    EXPECT_EQ(ip->dst(), kRemote);
    wire::TcpError err{};
    const auto tcp = wire::TcpView::parse(ip->payload(), &err);
    EXPECT_TRUE(tcp.ok());
    EXPECT_TRUE(tcp.verify_checksum(ip->src(), ip->dst()));
    Out o;
    o.flags = tcp.flags();
    o.seq = tcp.seq().raw();
    o.ack = tcp.ack().raw();
    o.window = tcp.window();
    o.src_port = tcp.src_port();
    o.dst_port = tcp.dst_port();
    EXPECT_EQ(wire::parse_tcp_options(tcp.options(), &o.opts), wire::TcpError::kNone);
    o.payload.assign(reinterpret_cast<const char*>(tcp.payload().data()), tcp.payload().size());
    o.time_usecs = t;
    return o;
  }

  int listener() {
    const int fd = ifc.socket(u(), AF_INET, SOCK_STREAM, IPPROTO_TCP);
    EXPECT_GE(fd, 0);
    const int one = 1;
    EXPECT_EQ(ifc.setsockopt(u(), fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(kLocal);
    sin.sin_port = htons(kPort);
    EXPECT_EQ(ifc.bind(u(), fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)), 0);
    EXPECT_EQ(ifc.listen(u(), fd, 1), 0);
    return fd;
  }

  packetdrill_interface ifc{};

 private:
  void* handle_ = nullptr;
};

constexpr std::uint32_t kPeerIsn = 1000;

// packetdrill's own test for "the system call thread is blocked": its state in /proc.
bool thread_sleeping(pid_t tid) {
  std::ifstream stat("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto close_paren = line.rfind(')');
  return close_paren != std::string::npos && close_paren + 2 < line.size() &&
         line[close_paren + 2] == 'S';
}

// Runs call() on a second thread and returns once that thread sleeps inside it (or
// finished), as packetdrill's main thread does before it moves on.
class SyscallThread {
 public:
  template <class F>
  explicit SyscallThread(F call) {
    thread_ = std::thread([this, call] {
      tid_ = static_cast<pid_t>(syscall(SYS_gettid));
      result_ = call();
      errno_ = errno;
      done_ = true;
    });
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done_ && std::chrono::steady_clock::now() < give_up) {
      if (tid_ != 0 && thread_sleeping(tid_)) {
        break;
      }
      std::this_thread::yield();
    }
  }
  ~SyscallThread() { join(); }
  SyscallThread(const SyscallThread&) = delete;
  SyscallThread& operator=(const SyscallThread&) = delete;
  bool done() const { return done_; }
  long join() {
    if (thread_.joinable()) {
      thread_.join();
    }
    return result_;
  }
  int error() const { return errno_; }

 private:
  std::thread thread_;
  std::atomic<pid_t> tid_{0};
  std::atomic<bool> done_{false};
  long result_ = -1;
  int errno_ = 0;
};

// Passive open through the slots: the SYN-ACK's fields, then the handshake's ACK. The peer
// offers no SACK, so no tail loss probe comes before the RTO.
struct Established {
  int listen_fd = -1;
  int fd = -1;
  std::uint32_t iss = 0;
};

Established establish(Adapter& a) {
  Established e;
  e.listen_fd = a.listener();
  wire::TcpOptions syn_opts;
  syn_opts.has_mss = true;
  syn_opts.mss = 1460;
  syn_opts.has_window_scale = true;
  syn_opts.window_scale = 7;
  a.inject(kSyn, kPeerIsn, 0, {}, 65535, syn_opts);
  const auto synack = a.receive();
  EXPECT_TRUE(synack.has_value());
  if (!synack) {
    return e;
  }
  EXPECT_EQ(synack->flags, kSyn | kAck);
  EXPECT_EQ(synack->ack, kPeerIsn + 1);
  EXPECT_EQ(synack->src_port, kPort);
  EXPECT_EQ(synack->dst_port, kPeerPort);
  EXPECT_TRUE(synack->opts.has_mss);
  EXPECT_EQ(synack->opts.mss, 1460);
  EXPECT_TRUE(synack->opts.has_window_scale);
  EXPECT_FALSE(synack->opts.sack_permitted) << "the peer offered no SACK";
  e.iss = synack->seq;
  a.inject(kAck, kPeerIsn + 1, e.iss + 1, {}, 512);
  sockaddr_in peer{};
  socklen_t len = sizeof(peer);
  e.fd = a.ifc.accept(a.u(), e.listen_fd, reinterpret_cast<sockaddr*>(&peer), &len);
  EXPECT_GE(e.fd, 0);
  EXPECT_EQ(ntohl(peer.sin_addr.s_addr), kRemote);
  EXPECT_EQ(ntohs(peer.sin_port), kPeerPort);
  return e;
}

const char* kFlags = "local=198.18.0.1";

TEST(PacketdrillAdapter, ExportsOnlyTheInitFunctionAndFillsEverySlot) {
  Adapter a(kFlags);
  ASSERT_NE(a.u(), nullptr);
  // Every one of the 32 function slots after userdata is set (packetdrill never checks).
  const auto* slots = reinterpret_cast<void* const*>(&a.ifc);
  for (std::size_t i = 1; i < sizeof(packetdrill_interface) / sizeof(void*); ++i) {
    EXPECT_NE(slots[i], nullptr) << "slot " << i;
  }
  EXPECT_EQ(sizeof(packetdrill_interface) / sizeof(void*), 33u);
}

TEST(PacketdrillAdapter, GettimeofdayAdvancesOnItsOwnAndUsleepMovesTheClock) {
  Adapter a(kFlags);
  const long long t0 = a.now_usecs();
  const long long t1 = a.now_usecs();
  EXPECT_GT(t1, t0) << "packetdrill spins on gettimeofday: it must move";
  EXPECT_LT(t1 - t0, 1000);
  ASSERT_EQ(a.ifc.usleep(a.u(), 250'000), 0);
  const long long t2 = a.now_usecs();
  EXPECT_GE(t2 - t1, 250'000);
  EXPECT_LT(t2 - t1, 251'000);
}

TEST(PacketdrillAdapter, PlaceholderDescriptorsAreRealSockets) {
  Adapter a(kFlags);
  const int fd = a.ifc.socket(a.u(), AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  struct stat st{};
  ASSERT_EQ(fstat(fd, &st), 0) << "packetdrill closes leftovers with libc close";
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(a.ifc.close(a.u(), fd), 0);
  errno = 0;
  EXPECT_EQ(fcntl(fd, F_GETFD), -1) << "close() through the slot closes the placeholder";
  EXPECT_EQ(errno, EBADF);
}

TEST(PacketdrillAdapter, ErrnoValuesAreLinuxs) {
  Adapter a(kFlags);
  errno = 0;
  EXPECT_EQ(a.ifc.socket(a.u(), AF_INET6, SOCK_STREAM, 0), -1);
  EXPECT_EQ(errno, EAFNOSUPPORT);
  EXPECT_EQ(a.ifc.socket(a.u(), AF_INET, SOCK_DGRAM, 0), -1);
  EXPECT_EQ(errno, EPROTONOSUPPORT);
  const int fd = a.ifc.socket(a.u(), AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in foreign{};
  foreign.sin_family = AF_INET;
  foreign.sin_addr.s_addr = htonl(wire::ipv4_addr(198, 18, 9, 9));
  foreign.sin_port = htons(kPort);
  EXPECT_EQ(a.ifc.bind(a.u(), fd, reinterpret_cast<sockaddr*>(&foreign), sizeof(foreign)), -1);
  EXPECT_EQ(errno, EADDRNOTAVAIL);
  char buf[16];
  EXPECT_EQ(a.ifc.read(a.u(), fd, buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, ENOTCONN);
  EXPECT_EQ(a.ifc.write(a.u(), fd, buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, EPIPE);
  EXPECT_EQ(a.ifc.shutdown(a.u(), fd, SHUT_WR), -1);
  EXPECT_EQ(errno, ENOTCONN);
  const int v = 1;
  EXPECT_EQ(a.ifc.setsockopt(a.u(), fd, SOL_TCP, TCP_CORK, &v, sizeof(v)), -1);
  EXPECT_EQ(errno, ENOPROTOOPT);
  EXPECT_EQ(a.ifc.setsockopt(a.u(), fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v)), 0)
      << "harmless options are accepted";
  EXPECT_EQ(a.ifc.fcntl(a.u(), fd, F_GETFL), O_RDWR | O_NONBLOCK);
  int mss = 0;
  socklen_t len = sizeof(mss);
  EXPECT_EQ(a.ifc.getsockopt(a.u(), fd, SOL_TCP, TCP_MAXSEG, &mss, &len), 0);
  EXPECT_EQ(mss, 536) << "Linux's TCP_MSS_DEFAULT before a connection";
  int arg = 0;
  EXPECT_EQ(a.ifc.ioctl(a.u(), fd, 0x1234, &arg), -1);
  EXPECT_EQ(errno, ENOTTY);
  EXPECT_EQ(a.ifc.close(a.u(), 9999), -1);
  EXPECT_EQ(errno, EBADF);
  int p[2];
  EXPECT_EQ(a.ifc.pipe(a.u(), p), -1);
  EXPECT_EQ(errno, ENOSYS);
  // A connect to a peer that answers RST fails with ECONNREFUSED through SO_ERROR.
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  peer.sin_addr.s_addr = htonl(kRemote);
  peer.sin_port = htons(kPeerPort);
  EXPECT_EQ(a.ifc.connect(a.u(), fd, reinterpret_cast<sockaddr*>(&peer), sizeof(peer)), -1);
  EXPECT_EQ(errno, EINPROGRESS);
  const auto syn = a.receive();
  ASSERT_TRUE(syn.has_value());
  EXPECT_EQ(syn->flags, kSyn);
  EXPECT_TRUE(syn->opts.has_timestamp);
  // The RST must come from the address and port the SYN went to: answer from kPeerPort to
  // the SYN's source port.
  std::vector<std::byte> rst(40);
  wire::TcpFields f;
  f.src_port = kPeerPort;
  f.dst_port = syn->src_port;
  f.seq = wire::SeqNum(0);
  f.ack = wire::SeqNum(syn->seq + 1);
  f.flags = kRst | kAck;
  wire::emit_tcp_header(rst.data() + 20, f, {});
  wire::fill_tcp_checksum(wire::MutableByteSpan(rst.data() + 20, 20), kRemote, kLocal);
  wire::Ipv4Fields ip;
  ip.total_length = 40;
  ip.protocol = wire::kProtoTcp;
  ip.src = kRemote;
  ip.dst = kLocal;
  wire::emit_ipv4_header(rst.data(), ip);
  ASSERT_EQ(a.ifc.netdev_send(a.u(), rst.data(), rst.size()), 0);
  int err = 0;
  len = sizeof(err);
  EXPECT_EQ(a.ifc.getsockopt(a.u(), fd, SOL_SOCKET, SO_ERROR, &err, &len), 0);
  EXPECT_EQ(err, ECONNREFUSED);
  EXPECT_EQ(a.ifc.getsockopt(a.u(), fd, SOL_SOCKET, SO_ERROR, &err, &len), 0);
  EXPECT_EQ(err, 0) << "SO_ERROR reports an error once";
  EXPECT_EQ(a.ifc.close(a.u(), fd), 0);
}

TEST(PacketdrillAdapter, BlockingAcceptOnASecondThreadReturnsWhenTheAckArrives) {
  Adapter a(kFlags);
  const int lfd = a.listener();
  SyscallThread accepting([&] { return static_cast<long>(a.ifc.accept(a.u(), lfd, nullptr, nullptr)); });
  EXPECT_FALSE(accepting.done()) << "accept() must block: no connection yet";
  wire::TcpOptions syn_opts;
  syn_opts.has_mss = true;
  syn_opts.mss = 1460;
  a.inject(kSyn, kPeerIsn, 0, {}, 65535, syn_opts);
  const auto synack = a.receive();
  ASSERT_TRUE(synack.has_value());
  EXPECT_EQ(synack->flags, kSyn | kAck);
  EXPECT_FALSE(accepting.done()) << "the handshake is not complete before its ACK";
  a.inject(kAck, kPeerIsn + 1, synack->seq + 1, {}, 512);
  // netdev_send returns only after the blocked accept() had its turn: the connection has
  // left the listener's queue already.
  pollfd lp{lfd, POLLIN, 0};
  EXPECT_EQ(a.ifc.poll(a.u(), &lp, 1, 0), 0);
  const long fd = accepting.join();
  ASSERT_GE(fd, 0) << "errno " << accepting.error();
  struct stat st{};
  EXPECT_EQ(fstat(static_cast<int>(fd), &st), 0);

  // A blocking read on the second thread gets the peer's bytes when they are injected.
  char buf[64] = {};
  SyscallThread reading([&] { return static_cast<long>(a.ifc.read(a.u(), static_cast<int>(fd), buf, sizeof(buf))); });
  EXPECT_FALSE(reading.done());
  a.inject(kAck | kPsh, kPeerIsn + 1, synack->seq + 1, "hello", 512);
  EXPECT_EQ(reading.join(), 5);
  EXPECT_EQ(std::string(buf, 5), "hello");
  // Read before the delayed-ACK time: the ACK shows the whole window again.
  const auto ack = a.receive();
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->flags, kAck);
  EXPECT_EQ(ack->ack, kPeerIsn + 6);
}

TEST(PacketdrillAdapter, DataBothWaysTimestampsAndRtoRetransmissionDuringUsleep) {
  Adapter a(kFlags);
  const Established e = establish(a);
  ASSERT_GE(e.fd, 0);
  // Our data leaves at once, stamped with the virtual time it left.
  const long long before = a.now_usecs();
  ASSERT_EQ(a.ifc.write(a.u(), e.fd, "ping", 4), 4);
  const auto data = a.receive();
  ASSERT_TRUE(data.has_value());
  EXPECT_EQ(data->payload, "ping");
  EXPECT_EQ(data->seq, e.iss + 1);
  EXPECT_GE(data->time_usecs, before);
  EXPECT_LE(data->time_usecs, a.now_usecs());
  // Unacknowledged, it is resent when the RTO expires while packetdrill sleeps: the
  // handshake's RTT sample is tiny, so the RTO is the 200 ms minimum (TcpConfig::min_rto).
  const long long sent_at = data->time_usecs;
  ASSERT_EQ(a.ifc.usleep(a.u(), 300'000), 0);  // the next resend would be 400 ms later
  const auto resent = a.receive();
  ASSERT_TRUE(resent.has_value());
  EXPECT_EQ(resent->payload, "ping");
  EXPECT_EQ(resent->seq, e.iss + 1);
  EXPECT_GE(resent->time_usecs - sent_at, 200'000) << "not before the minimum RTO";
  EXPECT_LT(resent->time_usecs - sent_at, 202'000) << "fired inside usleep, at its deadline";
  a.inject(kAck, kPeerIsn + 1, e.iss + 5, {}, 512);

  // The peer's bytes: SIOCINQ counts them, MSG_PEEK leaves them, read takes them.
  a.inject(kAck | kPsh, kPeerIsn + 1, e.iss + 5, "pong!", 512);
  int inq = -1;
  EXPECT_EQ(a.ifc.ioctl(a.u(), e.fd, SIOCINQ, &inq), 0);
  EXPECT_EQ(inq, 5);
  char buf[16] = {};
  EXPECT_EQ(a.ifc.recv(a.u(), e.fd, buf, 2, MSG_PEEK), 2);
  EXPECT_EQ(std::string(buf, 2), "po");
  EXPECT_EQ(a.ifc.read(a.u(), e.fd, buf, sizeof(buf)), 5);
  EXPECT_EQ(std::string(buf, 5), "pong!");
  // Delayed ACK: 40 ms after the data, found by netdev_receive jumping to the deadline.
  const long long data_in = a.now_usecs();
  const auto ack = a.receive();
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->ack, kPeerIsn + 6);
  EXPECT_GE(ack->time_usecs - data_in, 39'000);
  EXPECT_LE(ack->time_usecs - data_in, 42'000);

  pollfd p{e.fd, POLLIN | POLLOUT, 0};
  EXPECT_EQ(a.ifc.poll(a.u(), &p, 1, 0), 1);
  EXPECT_EQ(p.revents, POLLOUT);
  struct tcp_info ti{};
  socklen_t len = sizeof(ti);
  EXPECT_EQ(a.ifc.getsockopt(a.u(), e.fd, SOL_TCP, TCP_INFO, &ti, &len), 0);
  EXPECT_EQ(ti.tcpi_state, 1) << "TCP_ESTABLISHED";
  EXPECT_EQ(ti.tcpi_snd_mss, 1460u);
}

TEST(PacketdrillAdapter, ClosePathsFinBothWaysAndResetByPeer) {
  Adapter a(kFlags);
  const Established e = establish(a);
  ASSERT_GE(e.fd, 0);
  // Our FIN, the peer's ACK and FIN, our ACK of it.
  ASSERT_EQ(a.ifc.close(a.u(), e.fd), 0);
  const auto fin = a.receive();
  ASSERT_TRUE(fin.has_value());
  EXPECT_EQ(fin->flags, kFin | kAck);
  EXPECT_EQ(fin->seq, e.iss + 1);
  a.inject(kFin | kAck, kPeerIsn + 1, e.iss + 2, {}, 512);
  const auto last = a.receive();
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->flags, kAck);
  EXPECT_EQ(last->ack, kPeerIsn + 2);
  // TIME-WAIT has only its 60 s timer: nothing more leaves, and netdev_receive says so
  // (count 0) instead of waiting for ever.
  EXPECT_FALSE(a.receive().has_value());
  EXPECT_EQ(a.ifc.close(a.u(), e.listen_fd), 0);
}

TEST(PacketdrillAdapter, ReadAfterPeerResetReportsTheErrorOnceThenEndOfFile) {
  Adapter a(kFlags);
  const Established e = establish(a);
  ASSERT_GE(e.fd, 0);
  a.inject(kAck | kPsh, kPeerIsn + 1, e.iss + 1, "bye", 512);
  a.inject(kRst | kAck, kPeerIsn + 4, e.iss + 1, {}, 0);
  char buf[16];
  EXPECT_EQ(a.ifc.read(a.u(), e.fd, buf, sizeof(buf)), 3) << "bytes before the RST are read";
  errno = 0;
  EXPECT_EQ(a.ifc.read(a.u(), e.fd, buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, ECONNRESET);
  EXPECT_EQ(a.ifc.read(a.u(), e.fd, buf, sizeof(buf)), 0);
  EXPECT_EQ(a.ifc.write(a.u(), e.fd, buf, 1), -1);
  EXPECT_EQ(errno, EPIPE);
  EXPECT_EQ(a.ifc.close(a.u(), e.fd), 0);
}

TEST(PacketdrillAdapter, EpollReportsAListenerAndEdgeTriggeredData) {
  Adapter a(kFlags);
  const int lfd = a.listener();
  const int ep = a.ifc.epoll_create(a.u(), 1);
  ASSERT_GE(ep, 0);
  struct stat st{};
  EXPECT_EQ(fstat(ep, &st), 0) << "a real descriptor";
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 77;
  EXPECT_EQ(a.ifc.epoll_ctl(a.u(), ep, EPOLL_CTL_ADD, lfd, &ev), 0);
  EXPECT_EQ(a.ifc.epoll_ctl(a.u(), ep, EPOLL_CTL_ADD, lfd, &ev), -1);
  EXPECT_EQ(errno, EEXIST);
  EXPECT_EQ(a.ifc.epoll_ctl(a.u(), ep, EPOLL_CTL_ADD, 9999, &ev), -1);
  EXPECT_EQ(errno, EBADF);
  epoll_event out[4] = {};
  EXPECT_EQ(a.ifc.epoll_wait(a.u(), ep, out, 0, 0), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(a.ifc.epoll_wait(a.u(), ep, out, 4, 0), 0);

  wire::TcpOptions syn_opts;
  syn_opts.has_mss = true;
  syn_opts.mss = 1460;
  a.inject(kSyn, kPeerIsn, 0, {}, 65535, syn_opts);
  const auto synack = a.receive();
  ASSERT_TRUE(synack.has_value());
  a.inject(kAck, kPeerIsn + 1, synack->seq + 1, {}, 512);
  ASSERT_EQ(a.ifc.epoll_wait(a.u(), ep, out, 4, 0), 1);
  EXPECT_EQ(out[0].events, static_cast<std::uint32_t>(EPOLLIN));
  EXPECT_EQ(out[0].data.u64, 77u);
  const int fd = a.ifc.accept(a.u(), lfd, nullptr, nullptr);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(a.ifc.epoll_ctl(a.u(), ep, EPOLL_CTL_DEL, lfd, nullptr), 0);
  EXPECT_EQ(a.ifc.epoll_ctl(a.u(), ep, EPOLL_CTL_DEL, lfd, nullptr), -1);
  EXPECT_EQ(errno, ENOENT);

  // Edge-triggered: reported once per wakeup (new data), not while the bytes wait.
  ev.events = EPOLLIN | EPOLLET;
  ev.data.fd = fd;
  ASSERT_EQ(a.ifc.epoll_ctl(a.u(), ep, EPOLL_CTL_ADD, fd, &ev), 0);
  EXPECT_EQ(a.ifc.epoll_wait(a.u(), ep, out, 4, 0), 0) << "nothing to read yet";
  a.inject(kAck | kPsh, kPeerIsn + 1, synack->seq + 1, "abc", 512);
  ASSERT_EQ(a.ifc.epoll_wait(a.u(), ep, out, 4, 0), 1);
  EXPECT_EQ(out[0].events, static_cast<std::uint32_t>(EPOLLIN));
  EXPECT_EQ(out[0].data.fd, fd);
  EXPECT_EQ(a.ifc.epoll_wait(a.u(), ep, out, 4, 0), 0) << "no new wakeup";
  a.inject(kAck | kPsh, kPeerIsn + 4, synack->seq + 1, "def", 512);
  EXPECT_EQ(a.ifc.epoll_wait(a.u(), ep, out, 4, 0), 1);
  // Closing a socket takes it out of the set; closing the set closes its descriptor.
  EXPECT_EQ(a.ifc.close(a.u(), fd), 0);
  EXPECT_EQ(a.ifc.epoll_wait(a.u(), ep, out, 4, 0), 0);
  EXPECT_EQ(a.ifc.close(a.u(), ep), 0);
  EXPECT_EQ(fcntl(ep, F_GETFD), -1);
}

TEST(PacketdrillAdapter, BlockingCallOnTheMainThreadMovesVirtualTimeThroughTheTimers) {
  Adapter a(kFlags);
  // Nobody else can wake this thread: a blocking connect to a silent peer runs the SYN
  // retransmissions (1, 2, 4, 8, 16, 32 s: Linux's tcp_syn_retries 6) and then times out,
  // as it would on a kernel, in no time.
  const int fd = a.ifc.socket(a.u(), AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  peer.sin_addr.s_addr = htonl(kRemote);
  peer.sin_port = htons(kPeerPort);
  const long long start = a.now_usecs();
  errno = 0;
  EXPECT_EQ(a.ifc.connect(a.u(), fd, reinterpret_cast<sockaddr*>(&peer), sizeof(peer)), -1);
  EXPECT_EQ(errno, ETIMEDOUT);
  std::vector<long long> syn_times;
  while (syn_times.size() < 8) {
    const auto syn = a.receive();
    if (!syn) {
      break;
    }
    EXPECT_EQ(syn->flags, kSyn);
    syn_times.push_back(syn->time_usecs - start);
  }
  ASSERT_EQ(syn_times.size(), 7u) << "the SYN and its 6 retransmissions";
  for (std::size_t i = 1; i < syn_times.size(); ++i) {
    const long long gap = syn_times[i] - syn_times[i - 1];
    const long long want = 1'000'000LL << (i - 1);
    EXPECT_GE(gap, want) << "retransmission " << i;
    EXPECT_LT(gap, want + 2'000) << "retransmission " << i;
  }
  // With nothing at all to wait for, a blocking accept on the main thread fails with EAGAIN.
  const int lfd = a.listener();
  EXPECT_EQ(a.ifc.accept(a.u(), lfd, nullptr, nullptr), -1);
  EXPECT_EQ(errno, EAGAIN);
}

TEST(PacketdrillAdapterDeathTest, BadSoFlagsExitWithStatus2) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(Adapter("local=banana"), ::testing::ExitedWithCode(2), "local=banana");
  EXPECT_EXIT(Adapter("rcvbuf=65536"), ::testing::ExitedWithCode(2), "local=A.B.C.D is required");
  EXPECT_EXIT(Adapter("local=198.18.0.1,speed=9"), ::testing::ExitedWithCode(2), "unknown setting");
}

}  // namespace
