// The in-process target: the XTCP API's runtime, installed as the process runtime, on one
// end of an in-memory link in virtual time; xtcp-echo's or xtcp-im's server logic on it.
// Replay holds the other end. A FaultyServerLink between the runtime and the link breaks
// the server's answers on request (--inject-fault).
#include <xtcp/xtcp.h>

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "api/src/runtime.h"
#include "server_examples/im/im_server.h"
#include "stack/netif/mem_link.h"
#include "stack/wire/bytes.h"
#include "stack/wire/tcp.h"
#include "tools/replay/target.h"

namespace xtcp::replay {

namespace {

namespace tf = wire::tcp_flags;

// Passes the server's packets on, broken as the fault says.
class FaultyServerLink final : public Link {
 public:
  FaultyServerLink(Link& inner, Fault fault) : inner_(inner), fault_(fault) {}
  int send(std::span<const std::byte> packet) override {
    if (fault_ == Fault::kNone) {
      return inner_.send(packet);
    }
    std::vector<std::byte> p(packet.begin(), packet.end());
    const TcpFacts f = read_tcp_facts(p);
    if (f.valid && f.header_ok) {
      if (fault_ == Fault::kChangeByte && !changed_ && f.payload_length > 0) {
        p[f.payload_offset] ^= std::byte{0x01};
        changed_ = true;
        set_checksums(p, f, true, true);
      } else if (fault_ == Fault::kFinToRst && f.has(tf::kFin)) {
        // RST|ACK at the FIN's place: RFC 9293 3.10.7.4 makes the peer take it.
        p.resize(f.payload_offset);
        p[f.tcp_offset + 13] = std::byte{tf::kRst | tf::kAck};
        wire::store_be32(p.data() + f.tcp_offset + 4, f.seq + static_cast<std::uint32_t>(f.payload_length));
        wire::store_be16(p.data() + 2, static_cast<std::uint16_t>(p.size()));
        const TcpFacts nf = read_tcp_facts(p);
        set_checksums(p, nf, true, true);
      }
    }
    return inner_.send(p);
  }
  int receive_batch(int max_packets, PacketHandler on_packet) override {
    return inner_.receive_batch(max_packets, on_packet);
  }
  std::size_t mtu() const override { return inner_.mtu(); }

 private:
  Link& inner_;
  Fault fault_;
  bool changed_ = false;
};

// xtcp-echo's loop (server_examples/echo/main.cc): whole echoes with the ACK riding on
// them, the server's FIN after the client's and the last echo, a reset connection closed.
class EchoLogic {
 public:
  int open(std::uint16_t port) {
    gd_ = xtcp_open_group(PF_INET, SOCK_STREAM, 0, port);
    if (gd_ < 0) {
      return gd_;
    }
    return xtcp_setopt(gd_, XTCP_OPT_SEND_ALL, 1);
  }
  void close() {
    if (gd_ > 0) {
      xtcp_close_group(gd_);
      gd_ = -1;
    }
  }
  void run_once() {
    xtcp_set r;
    xtcp_set a;
    XTCP_ZERO(&r);
    XTCP_ZERO(&a);
    XTCP_SET(gd_, &r);
    XTCP_SET(gd_, &a);
    timeval zero{0, 0};
    if (xtcp_select(gd_ + 1, &r, &a, &zero) <= 0) {
      return;
    }
    while (XTCP_ISSET(gd_, &a) && xtcp_accept(gd_) > 0) {
    }
    for (int i = 0; i < 8192; ++i) {
      int cd = -1;
      const int n = xtcp_recv(gd_, &cd, buf_.data(), buf_.size());
      if (n == -EAGAIN) {
        break;
      }
      if (n > 0) {
        xtcp_send(gd_, cd, static_cast<std::size_t>(n), buf_.data(), static_cast<std::size_t>(n));
        continue;
      }
      if (cd > 0) {
        xtcp_close(gd_, cd);  // the client's FIN (n == 0) or a reset: our FIN follows the last echo
        continue;
      }
      break;
    }
  }

 private:
  int gd_ = -1;
  std::vector<char> buf_ = std::vector<char>(64 * 1024);
};

class InProcessTarget final : public Target {
 public:
  explicit InProcessTarget(const InProcessOptions& o)
      : options_(o), clock_(o.start), pair_(clock_), faulty_(pair_.a(), o.fault) {}
  ~InProcessTarget() override {
    if (installed_) {
      echo_.close();
      im_.close();
      xtcp_finalize();
    }
  }

  int open(std::string* error) {
    if (api::process_runtime() != nullptr) {
      *error = "an XTCP runtime already exists in this process";
      return -EBUSY;
    }
    api::RuntimeConfig config;
    config.stack.ip.local_addr = options_.server.addr;
    config.tx_cache_size = 16u << 20;
    api::set_process_runtime(std::make_unique<api::Runtime>(config, faulty_, clock_));
    installed_ = true;
    // The programs' default receive pools: xtcp-echo 256 KiB, xtcp-im 4 MiB.
    int rc = xtcp_initialize(options_.service == Service::kEcho ? (256u << 10) : (4u << 20));
    if (rc < 0) {
      *error = std::string("xtcp_initialize: ") + xtcp_last_error();
      return rc;
    }
    if (options_.service == Service::kEcho) {
      rc = echo_.open(options_.server.port);
      if (rc < 0) {
        *error = std::string("cannot open the echo service: ") + xtcp_last_error();
      }
      return rc;
    }
    im_.set_presence(options_.im_presence_all ? xtcp_examples::ImCore::Presence::kAll
                                              : xtcp_examples::ImCore::Presence::kWatched);
    std::string what;
    rc = im_.open(options_.server.port, &what);
    if (rc < 0) {
      *error = "cannot open the IM service: " + what + std::string(": ") + xtcp_last_error();
    }
    return rc;
  }

  TimeNs now() const override { return clock_.now(); }

  int send(std::span<const std::byte> ip) override { return pair_.b().send(ip); }

  int run(TimeNs until, const PacketFn& on_packet) override {
    if (serve_now(on_packet) > 0) {
      return 0;
    }
    // Nothing came: move virtual time to the server's next deadline (or until).
    const TimeNs next = std::min(until, api::process_runtime()->next_deadline());
    clock_.set(std::max(clock_.now() + kMinStep, next));
    return 0;
  }

  int poll(const PacketFn& on_packet) override {
    serve_now(on_packet);
    return 0;
  }

  std::string server_counters() const override {
    const int n = xtcp_counters(nullptr, 0);
    if (n <= 0) {
      return {};
    }
    std::vector<xtcp_counter> c(static_cast<std::size_t>(n));
    xtcp_counters(c.data(), c.size());
    std::string out;
    for (const auto& e : c) {
      const std::string name = e.name;
      // What a replay of malformed or hostile input shows: drops and challenge ACKs.
      if (e.value != 0 && (name.find("bad") != std::string::npos || name.find("drop") != std::string::npos ||
                           name.find("challenge") != std::string::npos || name.find("invalid") != std::string::npos ||
                           name.find("ignored") != std::string::npos)) {
        out += name + std::string(" ") + std::to_string(e.value) + "\n";
      }
    }
    return out;
  }

 private:
  // The smallest step of virtual time when nothing is due (keeps the loop moving).
  static constexpr TimeNs kMinStep = us(100);

  // Serves what waits now (two rounds: answers made in the first leave in the second's
  // drive); returns how many packets the server sent.
  int serve_now(const PacketFn& on_packet) {
    int got = 0;
    for (int round = 0; round < 2; ++round) {
      serve_once();
      api::process_runtime()->drive();
      while (pair_.b().receive_batch(64, [&](std::span<const std::byte> p) {
        on_packet(p);
        ++got;
      }) > 0) {
      }
    }
    return got;
  }

  void serve_once() {
    if (options_.service == Service::kEcho) {
      echo_.run_once();
    } else {
      im_.run_once(0);
    }
  }

  InProcessOptions options_;
  ManualClock clock_;
  MemLinkPair pair_;
  FaultyServerLink faulty_;
  bool installed_ = false;
  EchoLogic echo_;
  xtcp_examples::ImServer im_;
};

}  // namespace

std::unique_ptr<Target> make_in_process_target(const InProcessOptions& options, std::string* error) {
  auto t = std::make_unique<InProcessTarget>(options);
  if (t->open(error) < 0) {
    return nullptr;
  }
  return t;
}

}  // namespace xtcp::replay
