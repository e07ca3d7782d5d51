#include "tools/replay/replayer.h"

#include <cerrno>
#include <map>

#include "stack/wire/ipv4.h"

namespace xtcp::replay {

namespace {

bool reached(const ServerProgress& live, const ServerProgress& want) {
  return (!want.syn || live.syn) && live.data_high >= want.data_high && (!want.fin || live.fin) &&
         (!want.rst || live.rst);
}

std::uint64_t key_of(const Endpoint& e) { return (static_cast<std::uint64_t>(e.addr) << 16) | e.port; }

class Replay {
 public:
  Replay(const Capture& capture, Target& target, ReplayOptions options, PcapWriter* writer)
      : cap_(capture), target_(target), options_(std::move(options)), writer_(writer) {
    out_.flows.resize(cap_.flows.size());
    captured_.resize(cap_.flows.size());
    live_server_ = cap_.server;
    if (options_.addresses.server_addr) {
      live_server_.addr = *options_.addresses.server_addr;
    }
    if (options_.addresses.server_port) {
      live_server_.port = *options_.addresses.server_port;
    }
  }

  ReplayOutcome run() {
    if (cap_.packets.empty()) {
      return out_;
    }
    cap_start_ = cap_.packets.front().time;
    live_start_ = target_.now();
    for (std::size_t i = 0; i < cap_.packets.size() && out_.error == 0; ++i) {
      const std::size_t f = cap_.flow_of[i];
      if (f == SIZE_MAX) {
        continue;
      }
      const CapturedPacket& p = cap_.packets[i];
      if (!cap_.from_client[i]) {
        captured_[f].take(p.ip, p.facts, cap_.flows[f]);
        continue;
      }
      if (options_.pace == Pace::kCapture) {
        wait_until(live_start_ + (p.time - cap_start_), nullptr);
        // The capture's timing, but never an acknowledgement of a SYN the live server has not
        // sent yet: without its ISN there is no live sequence space to move the ACK into.
        if (captured_[f].progress.syn && !out_.flows[f].live.syn) {
          wait_until(target_.now() + options_.answer_wait, [&] { return out_.flows[f].live.syn; });
        }
      } else {
        const ServerProgress want = captured_[f].progress;
        wait_until(target_.now() + options_.answer_wait,
                   [&] { return reached(out_.flows[f].live.progress(), want); });
      }
      // The captured client kept inside the captured server's window; the live server's may
      // open later (the capture's client saw it open first): never send past it, or the bytes
      // the live server trims would never come again (replay is no TCP and retransmits
      // nothing of its own).
      const std::uint32_t data_end = p.facts.seq + static_cast<std::uint32_t>(p.facts.payload_length);
      if (p.facts.payload_length > 0 && captured_[f].window.covers(data_end) &&
          !out_.flows[f].live.window.covers(data_end)) {
        wait_until(target_.now() + options_.answer_wait,
                   [&] { return out_.flows[f].live.window.covers(data_end); });
      }
      send_client_packet(f, p);
    }
    // Every flow's captured end, then a little more to catch what goes beyond it.
    wait_until(target_.now() + options_.linger, [&] {
      for (std::size_t f = 0; f < cap_.flows.size(); ++f) {
        if (!reached(out_.flows[f].live.progress(), captured_[f].progress)) {
          return false;
        }
      }
      return true;
    });
    wait_until(target_.now() + options_.settle, nullptr);
    return std::move(out_);
  }

 private:
  void send_client_packet(std::size_t f, const CapturedPacket& p) {
    FlowOutcome& fo = out_.flows[f];
    std::vector<std::byte> live =
        rewrite_client_packet(p, cap_.flows[f], captured_[f], fo.live, options_.addresses);
    const TcpFacts lf = read_tcp_facts(live);
    flow_by_live_client_[key_of(lf.src)] = f;
    record(live);
    const int rc = target_.send(live);
    ++out_.client_packets_sent;
    ++fo.client_packets_sent;
    if (rc < 0) {
      ++fo.send_errors;
    }
    if (const int prc = target_.poll([&](std::span<const std::byte> sp) { on_server_packet(sp); }); prc < 0) {
      out_.error = prc;
      out_.error_text = "the target failed while reading the server's packets";
    }
  }

  void on_server_packet(std::span<const std::byte> p) {
    const TcpFacts f = read_tcp_facts(p);
    if (!f.valid || !(f.src == live_server_)) {
      return;
    }
    record(p);
    ++out_.server_packets;
    const auto it = flow_by_live_client_.find(key_of(f.dst));
    if (it == flow_by_live_client_.end()) {
      ++out_.stray_packets;
      return;
    }
    out_.flows[it->second].live.take(p, f);
  }

  // Runs the target until `until`, or until done() holds (checked after every packet).
  template <typename Done>
  void wait_until(TimeNs until, const Done& done) {
    auto is_done = [&] {
      if constexpr (std::is_same_v<Done, std::nullptr_t>) {
        return false;
      } else {
        return done();
      }
    };
    // A server that answers every round without its clock moving would hold the loop for
    // ever: that many rounds at one instant is a failure of the run.
    constexpr int kMaxRoundsAtOneInstant = 1'000'000;
    int rounds = 0;
    TimeNs last = target_.now();
    while (!is_done() && target_.now() < until) {
      const int rc = target_.run(until, [&](std::span<const std::byte> p) { on_server_packet(p); });
      if (rc < 0) {
        out_.error = rc;
        out_.error_text = "the target failed while waiting for the server's packets";
        return;
      }
      rounds = target_.now() == last ? rounds + 1 : 0;
      last = target_.now();
      if (rounds > kMaxRoundsAtOneInstant) {
        out_.error = -ELOOP;
        out_.error_text = "the server kept sending without its clock moving";
        return;
      }
    }
  }

  void record(std::span<const std::byte> p) {
    if (writer_ == nullptr) {
      return;
    }
    const TimeNs t = cap_start_ + (target_.now() - live_start_);
    writer_->write(static_cast<std::uint64_t>(t / kNsPerUs), p);
  }

  const Capture& cap_;
  Target& target_;
  ReplayOptions options_;
  PcapWriter* writer_;
  ReplayOutcome out_;
  std::vector<CapturedServerState> captured_;
  std::map<std::uint64_t, std::size_t> flow_by_live_client_;
  Endpoint live_server_;
  TimeNs cap_start_ = 0;
  TimeNs live_start_ = 0;
};

}  // namespace

ReplayOutcome replay(const Capture& capture, Target& target, ReplayOptions options, PcapWriter* writer) {
  return Replay(capture, target, std::move(options), writer).run();
}

}  // namespace xtcp::replay
