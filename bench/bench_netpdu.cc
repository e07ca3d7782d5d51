// bench_netpdu: NetPDU aggregation against one send per message, side by side in one run,
// over a socketpair and loopback TCP. A sender thread pushes N messages of many sessions, a
// receiver thread takes them; each thread counts its own data system calls (the counted
// wrappers in netpdu/io.h) and its poll calls. Reports messages/s, system calls per
// message on each side, wire / header bytes per message and, on loopback TCP, the TCP
// data segments the kernel sent per message (each costs 52 bytes of IPv4+TCP headers with
// timestamps on the wire, and a trip through the network stack at both ends).
//
//   aggregated v1: Aggregator --writev(NetPDU..)--> fd --readv--> Deaggregator
//   aggregated v2: SplitAggregator --writev--> 2 data fds + control fd --> SplitDeaggregator
//   per message:   writev([TLPDU header, payload]) per message --> fd --> read(64 KiB) + parse
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/tcp.h>  // tcp_info with tcpi_data_segs_out (glibc's copy lacks it)
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "netpdu/aggregator.h"
#include "netpdu/deaggregator.h"
#include "netpdu/io.h"
#include "netpdu/split_aggregator.h"
#include "netpdu/split_deaggregator.h"
#include "tools/cli/cli.h"

namespace {

using namespace xtcp::netpdu;

struct Side {
  IoCounters io;
  std::uint64_t polls = 0;
};

struct Result {
  double seconds = 0;
  std::uint64_t tcp_segments = 0;  // sender's data segments (loopback TCP only)
  Side tx;
  Side rx;
  std::uint64_t delivered = 0;
  std::uint64_t payload_bytes = 0;
  bool ok = true;
};

struct Options {
  std::uint64_t messages = 1'000'000;
  std::vector<std::size_t> sizes{64, 512};
  std::size_t sessions = 10'000;
  std::uint32_t latency_us = 200;
};

enum class Mode { kAggregatedV1, kAggregatedV2, kPerMessage };
const char* name(Mode m) {
  switch (m) {
    case Mode::kAggregatedV1:
      return "NetPDU variant 1";
    case Mode::kAggregatedV2:
      return "NetPDU variant 2 (2 data)";
    case Mode::kPerMessage:
      return "one send per message";
  }
  return "?";
}

// Connected pairs: [0] sender side, [1] receiver side.
struct Pair {
  int fd[2];
};

Pair socket_pair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    std::perror("socketpair");
    std::exit(1);
  }
  return {{sv[0], sv[1]}};
}

Pair tcp_pair() {
  const int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(l, 4) != 0 ||
      ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    std::perror("loopback listen");
    std::exit(1);
  }
  const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    std::perror("connect 127.0.0.1");
    std::exit(1);
  }
  const int s = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
  ::close(l);
  const int one = 1;
  ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return {{c, s}};
}

void wait_fd(int fd, short ev, Side* side) {
  pollfd p{fd, ev, 0};
  ++side->polls;
  ::poll(&p, 1, 100);
}

void wait_fds(std::vector<pollfd>& p, Side* side) {
  if (p.empty()) {
    return;
  }
  ++side->polls;
  ::poll(p.data(), p.size(), 100);
}

double now_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

std::uint64_t session_of(std::uint64_t i, std::size_t sessions) { return (i * 2654435761u) % sessions + 1; }

AggregatorConfig agg_config(const Options& o) {
  AggregatorConfig c;
  c.max_pdu_bytes = 256 * 1024;
  c.flush_bytes = 64 * 1024;
  c.latency_us = o.latency_us;
  return c;
}

ReceiverConfig rx_config() {
  ReceiverConfig c;
  c.limits.max_pdu_bytes = 256 * 1024;
  return c;
}

// The sender of both aggregated modes: submit until refused, let the aggregator write,
// wait for the descriptors only when it cannot go on.
template <typename Agg, typename WantsWrite, typename OnWritable>
void aggregated_sender(Agg& agg, const Options& o, std::size_t size, const std::vector<std::byte>& buf,
                       const std::vector<int>& fds, WantsWrite wants_write, OnWritable on_writable, Side* side) {
  std::uint64_t sent = 0;
  std::vector<std::uint32_t> seq(o.sessions + 1);
  while (sent < o.messages) {
    bool refused = false;
    for (int k = 0; k < 1024 && sent < o.messages; ++k) {
      TlpduMeta m;
      m.session = session_of(sent, o.sessions);
      m.seq = seq[m.session]++;
      if (agg.submit(m, Payload{ByteSpan(buf.data() + (sent % 1024), size), nullptr}) != 0) {
        --seq[m.session];
        refused = true;
        break;
      }
      ++sent;
    }
    agg.poll();
    if (refused) {
      std::vector<pollfd> p;
      for (std::size_t i = 0; i < fds.size(); ++i) {
        if (wants_write(i)) {
          p.push_back({fds[i], POLLOUT, 0});
        }
      }
      wait_fds(p, side);
      for (std::size_t i = 0; i < fds.size(); ++i) {
        if (wants_write(i)) {
          on_writable(i);
        }
      }
    }
  }
  agg.flush();
  for (int guard = 0; !agg.idle() && guard < 1'000'000; ++guard) {
    std::vector<pollfd> p;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (wants_write(i)) {
        p.push_back({fds[i], POLLOUT, 0});
      }
    }
    wait_fds(p, side);
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (wants_write(i)) {
        on_writable(i);
      }
    }
  }
}

Result run(Mode mode, bool tcp, const Options& o, std::size_t size) {
  const int lanes = mode == Mode::kAggregatedV2 ? 2 : 0;
  std::vector<Pair> pairs;
  for (int i = 0; i < 1 + lanes; ++i) {
    pairs.push_back(tcp ? tcp_pair() : socket_pair());
    set_nonblocking(pairs.back().fd[0]);
    set_nonblocking(pairs.back().fd[1]);
  }
  std::vector<std::byte> buf(size + 1024);
  for (std::size_t i = 0; i < buf.size(); ++i) {
    buf[i] = static_cast<std::byte>(i * 7);
  }
  Result r;
  std::atomic<bool> failed{false};
  const double t0 = now_s();

  std::thread rx_thread([&] {
    Side& side = r.rx;
    const IoCounters before = io_counters();
    std::uint64_t got = 0;
    std::uint64_t bytes = 0;
    if (mode == Mode::kPerMessage) {
      std::vector<std::byte> in(64 * 1024);
      std::size_t have = 0;
      const bool sock = true;
      (void)sock;
      while (got < o.messages) {
        const ssize_t n = counted_read(pairs[0].fd[1], in.data() + have, in.size() - have);
        if (n == -EAGAIN) {
          wait_fd(pairs[0].fd[1], POLLIN, &side);
          continue;
        }
        if (n <= 0) {
          failed = true;
          break;
        }
        have += static_cast<std::size_t>(n);
        std::size_t at = 0;
        while (have - at >= kTlpduHeaderLen) {
          WireError e;
          const auto h = TlpduHeader::parse(ByteSpan(in.data() + at, kTlpduHeaderLen), &e);
          if (!h) {
            failed = true;
            break;
          }
          if (have - at < kTlpduHeaderLen + h->size) {
            break;
          }
          at += kTlpduHeaderLen + h->size;
          bytes += h->size;
          ++got;
        }
        std::memmove(in.data(), in.data() + at, have - at);
        have -= at;
      }
    } else {
      TlpduSink sink = [&](const Tlpdu& t) {
        ++got;
        bytes += t.payload.size();
        return Verdict::kAccept;
      };
      if (mode == Mode::kAggregatedV1) {
        FdIo io(pairs[0].fd[1]);
        Deaggregator d(io, rx_config(), sink);
        while (got < o.messages && d.on_readable() == RxState::kOpen) {
          if (got < o.messages) {
            wait_fd(pairs[0].fd[1], POLLIN, &side);
          }
        }
      } else {
        FdIo ctl(pairs[0].fd[1]);
        std::vector<std::unique_ptr<FdIo>> data;
        std::vector<ByteSource*> src;
        for (int i = 1; i <= lanes; ++i) {
          data.push_back(std::make_unique<FdIo>(pairs[static_cast<std::size_t>(i)].fd[1]));
          src.push_back(data.back().get());
        }
        SplitDeaggregator d(ctl, src, rx_config(), sink);
        while (got < o.messages && d.on_readable() == RxState::kOpen) {
          std::vector<pollfd> p;
          if (d.wants_read_control()) {
            p.push_back({pairs[0].fd[1], POLLIN, 0});
          }
          for (int i = 0; i < lanes; ++i) {
            if (d.wants_read_data(static_cast<std::size_t>(i))) {
              p.push_back({pairs[static_cast<std::size_t>(i) + 1].fd[1], POLLIN, 0});
            }
          }
          if (got < o.messages) {
            wait_fds(p, &side);
          }
        }
      }
    }
    if (got != o.messages) {
      failed = true;
    }
    r.delivered = got;
    r.payload_bytes = bytes;
    side.io = io_counters() - before;
  });

  {
    Side& side = r.tx;
    const IoCounters before = io_counters();
    if (mode == Mode::kPerMessage) {
      const int fd = pairs[0].fd[0];
      std::vector<std::uint32_t> seq(o.sessions + 1);
      for (std::uint64_t i = 0; i < o.messages; ++i) {
        TlpduHeader h;
        h.meta.session = session_of(i, o.sessions);
        h.meta.seq = seq[h.meta.session]++;
        h.size = static_cast<std::uint32_t>(size);
        std::byte hdr[kTlpduHeaderLen];
        h.emit(hdr);
        iovec iov[2] = {{hdr, kTlpduHeaderLen}, {const_cast<std::byte*>(buf.data() + (i % 1024)), size}};
        std::size_t done = 0;
        const std::size_t total = kTlpduHeaderLen + size;
        while (done < total) {
          iovec v[2];
          int n = 0;
          std::size_t skip = done;
          for (auto& x : iov) {
            if (skip >= x.iov_len) {
              skip -= x.iov_len;
              continue;
            }
            v[n++] = {static_cast<std::byte*>(x.iov_base) + skip, x.iov_len - skip};
            skip = 0;
          }
          const ssize_t w = counted_writev(fd, v, n, true);
          if (w == -EAGAIN) {
            wait_fd(fd, POLLOUT, &side);
            continue;
          }
          if (w < 0) {
            failed = true;
            break;
          }
          done += static_cast<std::size_t>(w);
        }
      }
    } else if (mode == Mode::kAggregatedV1) {
      SteadyClock clock;
      FdIo io(pairs[0].fd[0]);
      Aggregator agg(io, agg_config(o), clock);
      aggregated_sender(
          agg, o, size, buf, {pairs[0].fd[0]}, [&](std::size_t) { return agg.wants_write(); },
          [&](std::size_t) { agg.on_writable(); }, &side);
    } else {
      SteadyClock clock;
      FdIo ctl(pairs[0].fd[0]);
      std::vector<std::unique_ptr<FdIo>> data;
      std::vector<ByteSink*> sinks;
      std::vector<int> fds{pairs[0].fd[0]};
      for (int i = 1; i <= lanes; ++i) {
        data.push_back(std::make_unique<FdIo>(pairs[static_cast<std::size_t>(i)].fd[0]));
        sinks.push_back(data.back().get());
        fds.push_back(pairs[static_cast<std::size_t>(i)].fd[0]);
      }
      SplitAggregator agg(ctl, sinks, agg_config(o), clock);
      aggregated_sender(
          agg, o, size, buf, fds,
          [&](std::size_t i) { return i == 0 ? agg.wants_write_control() : agg.wants_write_data(i - 1); },
          [&](std::size_t i) {
            if (i == 0) {
              agg.on_writable_control();
            } else {
              agg.on_writable_data(i - 1);
            }
          },
          &side);
    }
    side.io = io_counters() - before;
  }
  rx_thread.join();
  r.seconds = now_s() - t0;
  if (tcp) {
    for (auto& p : pairs) {
      tcp_info ti{};
      socklen_t len = sizeof ti;
      if (::getsockopt(p.fd[0], IPPROTO_TCP, TCP_INFO, &ti, &len) == 0) {
        r.tcp_segments += ti.tcpi_data_segs_out;
      }
    }
  }
  r.ok = !failed && r.delivered == o.messages && r.payload_bytes == o.messages * size;
  for (auto& p : pairs) {
    ::close(p.fd[0]);
    ::close(p.fd[1]);
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  namespace cli = xtcp::cli;
  Options o;
  std::uint64_t messages = o.messages;
  std::uint64_t sessions = o.sessions;
  cli::Micros latency(o.latency_us);
  std::string sizes_shown;
  for (const std::size_t size : o.sizes) {
    if (!sizes_shown.empty()) {
      sizes_shown += ',';
    }
    sizes_shown += std::to_string(size);
  }
  cli::Flags flags("bench_netpdu", "[OPTION]...",
                   "NetPDU aggregation against one send per message, side by side, over a socketpair and "
                   "over loopback TCP (127.0.0.1 of the namespace it runs in): a sender thread pushes the "
                   "messages of many sessions, a receiver thread takes them. Reports messages/s, system "
                   "calls per message on each side, wire and header bytes per message and, on TCP, the "
                   "data segments per message.");
  flags.number("--messages", "N", "messages per table row", &messages, 1, 1'000'000'000);
  flags.custom("--sizes", "SIZE,SIZE,...", "payload sizes, one table row per size and mode (0 to 64K each)",
               sizes_shown, [&](const std::string& v) {
                 std::vector<std::size_t> sizes;
                 std::size_t at = 0;
                 while (at <= v.size()) {
                   const std::size_t comma = std::min(v.find(',', at), v.size());
                   std::string why;
                   const auto n = cli::parse_size(v.substr(at, comma - at), 1, &why);
                   if (!n || *n > 65536) {
                     std::string problem = "'" + v + "' is not a list of sizes from 0 to 64K";
                     if (!n) {
                       problem += ": ";
                       problem += why;
                     }
                     return problem;
                   }
                   sizes.push_back(static_cast<std::size_t>(*n));
                   at = comma + 1;
                 }
                 o.sizes = sizes;
                 return std::string();
               });
  flags.number("--sessions", "N", "sessions the messages are spread over", &sessions, 1, 10'000'000);
  flags.duration("--latency-us", "the aggregators' latency bound; a plain number is microseconds", &latency,
                 cli::Micros(0), std::chrono::seconds(1), cli::Micros(1));
  flags.epilog("Exit status: 0 every message arrived, 1 a row lost or corrupted messages (marked FAILED), "
               "2 a bad, unknown or missing flag.\n");
  flags.parse(argc, argv);
  o.messages = messages;
  o.sessions = static_cast<std::size_t>(sessions);
  o.latency_us = static_cast<std::uint32_t>(latency.count());
  std::printf("bench_netpdu: %llu messages per row, %zu sessions, latency bound %u us, 2 threads "
              "(sender, receiver)\n\n",
              static_cast<unsigned long long>(o.messages), o.sessions, o.latency_us);
  std::printf("| transport | size | way | messages/s | send calls/msg | receive calls/msg | poll calls/msg | "
              "wire bytes/msg | header bytes/msg | TCP segments/msg |\n");
  std::printf("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
  bool all_ok = true;
  for (bool tcp : {false, true}) {
    for (std::size_t size : o.sizes) {
      for (Mode m : {Mode::kAggregatedV1, Mode::kAggregatedV2, Mode::kPerMessage}) {
        const Result r = run(m, tcp, o, size);
        all_ok &= r.ok;
        const double n = static_cast<double>(o.messages);
        const double wire = static_cast<double>(r.tx.io.bytes_written) / n;
        char segs[32] = "-";
        if (tcp) {
          std::snprintf(segs, sizeof segs, "%.4f", static_cast<double>(r.tcp_segments) / n);
        }
        std::printf("| %s | %zu | %s | %.0f | %.4f | %.4f | %.4f | %.2f | %.2f | %s |%s\n",
                    tcp ? "loopback TCP" : "socketpair", size, name(m), n / r.seconds,
                    static_cast<double>(r.tx.io.calls()) / n, static_cast<double>(r.rx.io.calls()) / n,
                    static_cast<double>(r.tx.polls + r.rx.polls) / n, wire, wire - static_cast<double>(size), segs,
                    r.ok ? "" : " FAILED");
        std::fflush(stdout);
      }
    }
  }
  return all_ok ? 0 : 1;
}
