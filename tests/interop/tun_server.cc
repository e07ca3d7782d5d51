// Interop fixture implementation; see tun_server.h.
#include "tests/interop/tun_server.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
#include <set>

#include "server_examples/echo/echo_service.h"
#include "stack/netif/fault_link.h"
#include "stack/netif/pcap_tap.h"
#include "stack/netif/tun_link.h"
#include "stack/wire/ipv4.h"

namespace xtcp::test {

std::unique_ptr<TunLink> open_test_tun(std::uint32_t* stack_addr, std::string* error) {
  TunOptions tun_opts;
  tun_opts.name = "xtcp0";
  auto tun = TunLink::open(tun_opts, error);
  std::uint32_t kernel_addr = 0;
  wire::parse_ipv4("198.18.0.1", &kernel_addr);
  wire::parse_ipv4(kStackIp, stack_addr);
  if (!tun || configure_kernel_side("xtcp0", kernel_addr, 24, error) < 0) {
    return nullptr;
  }
  return tun;
}

bool wait_until_started(const std::atomic<int>& state) {
  for (int i = 0; i < 500 && state.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return state.load() == 1;
}

std::unique_ptr<TunServer> TunServer::start(const ServerOptions& options, std::string* skip_reason,
                                            std::string* error) {
  if (auto why = netns_unavailable_reason()) {
    *skip_reason = *why;
    return nullptr;
  }
  std::unique_ptr<TunServer> s(new TunServer());
  s->ns_ = NetNs::create(error);
  if (!s->ns_) {
    return nullptr;
  }
  TunServer* raw = s.get();
  s->thread_ = std::thread([raw, options] { raw->run(options); });
  if (!wait_until_started(raw->state_)) {
    *error = "server did not start: " + raw->error_;
    return nullptr;  // destructor stops the thread and removes the namespace
  }
  return s;
}

TunServer::~TunServer() {
  stop_ = true;
  if (thread_.joinable()) {
    thread_.join();
  }
}

void TunServer::in_namespace(const std::function<void()>& fn) const {
  std::string err;
  const int rc = ns_->run_in_thread(fn, &err);
  if (rc < 0) {
    ADD_FAILURE() << "cannot enter namespace: " << err;
  }
}

ServerReport TunServer::report() {
  std::lock_guard<std::mutex> lock(report_mu_);
  return report_;
}

void TunServer::run(const ServerOptions& options) {
  if (ns_->enter_on_this_thread(&error_) < 0) {
    state_ = -1;
    return;
  }
  std::uint32_t stack_addr = 0;
  auto tun = open_test_tun(&stack_addr, &error_);
  if (!tun) {
    state_ = -1;
    return;
  }
  SteadyClock clock;
  std::unique_ptr<FaultLink> faults;
  Link* link = tun.get();
  if (options.faults) {
    faults = std::make_unique<FaultLink>(*tun, clock, options.to_kernel, options.from_kernel);
    link = faults.get();
  }
  std::unique_ptr<PcapTap> tap;
  if (!options.pcap.empty()) {
    tap = PcapTap::open(*link, clock, options.pcap, &error_);
    if (!tap) {
      state_ = -1;
      return;
    }
    link = tap.get();
  }
  StreamBuffers buffers(options.rx_buffer, options.tx_buffer);
  StackConfig config;
  config.ip.local_addr = stack_addr;
  config.tcp.sack = options.sack;
  Stack stack(config, *link, clock, buffers.rx(), buffers.tx());
  EchoService echo(stack, buffers, kEchoPort);
  TcpLayer& tcp = stack.tcp();
  tcp.listen(kGreetClosePort);
  tcp.listen(kGreetAbortPort);
  std::set<ConnId> greeted;
  ServerReport local;
  state_ = 1;
  const wire::ByteSpan greeting = wire::as_bytes(kGreeting, std::strlen(kGreeting));
  while (!stop_.load()) {
    stack.poll();
    while (tcp.has_events()) {
      tcp.poll_events([&](const TcpEvent& e) {
        if (e.type == TcpEventType::kClosed) {
          ++local.closed_events;
          if (e.error == ECONNRESET) {
            ++local.closed_with_reset;
          }
        }
        if (echo.handle(e)) {
          return;
        }
        if (e.type == TcpEventType::kAcceptable) {
          for (std::int64_t c; (c = tcp.accept(e.port)) >= 0;) {
            const auto conn = static_cast<ConnId>(c);
            tcp.send(conn, greeting);
            if (e.port == kGreetAbortPort) {
              tcp.abort(conn);
            } else {
              greeted.insert(conn);
              tcp.shutdown(conn);  // FIN after the greeting; handle kept to see the end
            }
          }
        } else if (e.type == TcpEventType::kClosed && greeted.erase(e.conn) > 0) {
          tcp.close(e.conn);
        } else if (e.type == TcpEventType::kReadable && greeted.count(e.conn) > 0) {
          std::byte sink[4096];
          while (buffers.read(e.conn, wire::MutableByteSpan(sink, sizeof sink)) > 0) {
          }
          tcp.consumed(e.conn);
        }
      });
    }
    {
      std::lock_guard<std::mutex> lock(report_mu_);
      report_ = local;
      report_.accepted = echo.accepted();
      report_.echoed = echo.echoed_bytes();
      report_.retransmits = tcp.stats().retransmits;
      report_.rto_expirations = tcp.stats().rto_expirations;
      report_.fast_retransmits = tcp.stats().fast_retransmits;
      report_.tlp_probes = tcp.stats().tlp_probes;
      report_.drop_bad_checksum = tcp.stats().drop_bad_checksum + stack.ip().stats().drop_bad_checksum;
      report_.resets_in = tcp.stats().rst_in;
      report_.time_wait = tcp.connections_by_state()[static_cast<int>(TcpState::kTimeWait)];
      report_.live_connections = tcp.connection_count();
      if (faults) {
        const auto& a = faults->counters_to_inner();
        const auto& b = faults->counters_from_inner();
        report_.fault_lost = a.lost + b.lost;
        report_.fault_duplicated = a.duplicated + b.duplicated;
        report_.fault_reordered = a.reordered + b.reordered;
        report_.fault_corrupted = a.corrupted + b.corrupted;
      }
    }
    stack.wait(ms(5));
  }
}

int connect_tcp(std::uint16_t port, int timeout_ms) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    return -errno;
  }
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, kStackIp, &sa.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 && errno != EINPROGRESS) {
    const int err = errno;
    ::close(fd);
    return -err;
  }
  pollfd p{fd, POLLOUT, 0};
  if (::poll(&p, 1, timeout_ms) != 1) {
    ::close(fd);
    return -ETIMEDOUT;
  }
  int soerr = 0;
  socklen_t len = sizeof soerr;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
  if (soerr != 0) {
    ::close(fd);
    return -soerr;
  }
  return fd;
}

std::vector<std::uint8_t> echo_exchange(int fd, const std::vector<std::uint8_t>& data, int timeout_ms,
                                        std::string* error) {
  std::vector<std::uint8_t> got;
  got.reserve(data.size());
  std::size_t sent = 0;
  bool write_closed = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::vector<std::uint8_t> buf(256 * 1024);
  for (;;) {
    if (sent == data.size() && !write_closed) {
      ::shutdown(fd, SHUT_WR);
      write_closed = true;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      *error = "timed out after " + std::to_string(sent) + " bytes sent, " +
               std::to_string(got.size()) + " received";
      return {};
    }
    pollfd p{fd, static_cast<short>(POLLIN | (write_closed ? 0 : POLLOUT)), 0};
    ::poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 200)));
    if (!write_closed && (p.revents & POLLOUT) != 0) {
      const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<std::size_t>(n);
      } else if (n < 0 && errno != EAGAIN) {
        *error = std::string("send: ") + std::strerror(errno);
        return {};
      }
    }
    if ((p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n > 0) {
        got.insert(got.end(), buf.begin(), buf.begin() + n);
      } else if (n == 0) {
        return got;
      } else if (errno != EAGAIN) {
        *error = std::string("recv: ") + std::strerror(errno);
        return {};
      }
    }
  }
}

std::string sha256_hex(const std::vector<std::uint8_t>& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 0xf];
  }
  return out;
}

std::vector<std::uint8_t> random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; i += 8) {
    const std::uint64_t r = rng();
    std::memcpy(v.data() + i, &r, std::min<std::size_t>(8, n - i));
  }
  return v;
}

}  // namespace xtcp::test
