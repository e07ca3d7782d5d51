// The in-process target: the XTCP API's runtime, installed as the process runtime, on one
// end of an in-memory link in virtual time; xtcp-echo's or xtcp-im's server logic on it.
// Replay holds the other end. A FaultyServerLink between the runtime and the link breaks
// the server's answers on request (--inject-fault).
#include <xtcp/xtcp.h>

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <vector>

#include "api/src/runtime.h"
#include "server_examples/echo/echo_server.h"
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

class InProcessTarget final : public Target {
 public:
  explicit InProcessTarget(const InProcessOptions& o)
      : options_(o), clock_(o.start), pair_(clock_), faulty_(pair_.a(), o.fault) {}
  ~InProcessTarget() override {
    if (installed_) {
      if (echo_gd_ > 0) {
        xtcp_close_group(echo_gd_);
      }
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
    std::string what;
    if (options_.service == Service::kEcho) {
      echo_gd_ = xtcp_examples::open_echo_group(options_.server.port, &what);
      if (echo_gd_ < 0) {
        *error = "cannot open the echo service: " + what + std::string(": ") + xtcp_last_error();
        return echo_gd_;
      }
      echo_.emplace(echo_gd_, xtcp_examples::echo_piece());
      return 0;
    }
    im_.set_presence(options_.im_presence_all ? xtcp_examples::ImCore::Presence::kAll
                                              : xtcp_examples::ImCore::Presence::kWatched);
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
      echo_->run_once(0);
    } else {
      im_.run_once(0);
    }
  }

  InProcessOptions options_;
  ManualClock clock_;
  MemLinkPair pair_;
  FaultyServerLink faulty_;
  bool installed_ = false;
  int echo_gd_ = -1;
  std::optional<xtcp_examples::EchoServer> echo_;  // xtcp-echo's own loop
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
