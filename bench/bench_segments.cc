// Per-segment CPU cost of the engine, in memory and virtual time (no kernel, no device):
// receive path, send path, pure ACKs, and connection lookup among many connections.
// Packets go straight into Ipv4Layer::input (what Stack::poll does per packet); what the
// stack sends is counted and dropped by SinkLink. Every connection is opened by a real
// handshake of crafted segments (bench_util.h).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "bench/bench_util.h"
#include "stack/core/flow_table.h"

namespace xtcp::bench {
namespace {

using namespace wire::tcp_flags;  // NOLINT

constexpr std::size_t kSlot = 2048;  // bytes reserved per pre-built packet

TcpConfig default_tcp() { return TcpConfig{}; }

// Payload bytes per full segment with the peer's options (timestamps: 1460 - 12).
std::uint32_t full_payload(const BenchPeer& p) { return p.ts_ok ? 1448u : 1460u; }

void fail(benchmark::State& state, const char* why) { state.SkipWithError(why); }

// (a) In-order full-size data segments received on one established connection. The
// application drains the StreamBuffers every `drain_every` segments (a poll batch) and
// calls consumed(), which may send a window update. ACKs the stack sends (delayed ACK: one per
// two full segments) and window updates are part of the cost.
void BM_RxDataSegment(benchmark::State& state) {
  const auto drain_every = static_cast<std::size_t>(state.range(0));
  BenchStack s(default_tcp(), 1 << 20, 64 * 1024);
  s.tcp().listen(kServerPort);
  BenchPeer peer;
  const std::int64_t c = s.establish(peer);
  if (c < 0) {
    return fail(state, "handshake failed");
  }
  const auto conn = static_cast<ConnId>(c);
  const std::uint32_t mss = full_payload(peer);
  constexpr std::size_t kRing = 4096;  // pre-built packets, restamped when all were used
  std::vector<std::byte> ring(kRing * kSlot);
  std::vector<std::size_t> lens(kRing);
  std::vector<std::byte> payload(mss);
  for (std::size_t i = 0; i < mss; ++i) {
    payload[i] = static_cast<std::byte>(i * 7);
  }
  std::uint32_t seq = peer.snd_nxt;
  for (std::size_t i = 0; i < kRing; ++i) {
    lens[i] = peer.build(&ring[i * kSlot], kAck | kPsh, seq, peer.rcv_nxt, 65535, payload);
    seq += mss;
  }
  std::vector<std::byte> sink(256 * 1024);
  const std::uint64_t out0 = s.link.packets;
  const std::uint64_t in0 = s.tcp().stats().bytes_in;
  std::size_t i = 0;
  std::uint64_t segments = 0;
  for (auto _ : state) {
    s.input(&ring[i * kSlot], lens[i]);
    ++segments;
    if (segments % drain_every == 0) {
      while (s.buffers.read(conn, wire::MutableByteSpan(sink.data(), sink.size())) > 0) {
      }
      s.tcp().consumed(conn);
      s.drop_events();
    }
    if (++i == kRing) {
      state.PauseTiming();
      ++peer.ts_val;
      for (std::size_t k = 0; k < kRing; ++k) {
        restamp(&ring[k * kSlot], seq, peer.ts_val);
        seq += mss;
      }
      i = 0;
      state.ResumeTiming();
    }
  }
  const std::uint64_t accepted = s.tcp().stats().bytes_in - in0;
  if (accepted != segments * mss) {
    char msg[160];
    std::snprintf(msg, sizeof msg, "stack accepted %llu bytes of %llu sent",
                  static_cast<unsigned long long>(accepted),
                  static_cast<unsigned long long>(segments * mss));
    return fail(state, msg);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(segments));
  state.SetBytesProcessed(static_cast<std::int64_t>(accepted));
  state.counters["pkts_out_per_seg"] =
      static_cast<double>(s.link.packets - out0) / static_cast<double>(segments);
}
BENCHMARK(BM_RxDataSegment)->ArgName("drain_every")->Arg(1)->Arg(16)->Arg(64);

// Sends stop after 2 GiB on one connection (engine bug, see docs/benchmarks.md), so the
// send benchmarks move to a fresh connection (new peer port) well before, untimed.
constexpr std::uint64_t kMaxBytesPerConn = 1ull << 30;

std::int64_t reconnect(BenchStack& s, BenchPeer& peer, std::int64_t old) {
  if (old >= 0) {
    s.tcp().abort(static_cast<ConnId>(old));
  }
  ++peer.port;
  peer.snd_nxt += 1'000'000;
  return s.establish(peer);
}

// (b) The application sends MSS-sized chunks; the stack copies them into the TxStore, builds
// each segment (copy back out of the TxStore, headers, checksum) and hands it to the link.
// The peer ACKs everything sent every `ack_every` data segments, or at once when a send()
// could not go out (cwnd); building and processing those ACKs is included.
void BM_TxDataSegment(benchmark::State& state) {
  const auto ack_every = static_cast<std::uint64_t>(state.range(0));
  BenchStack s(default_tcp(), 64 * 1024, 4 << 20);
  s.tcp().listen(kServerPort);
  BenchPeer peer;
  std::int64_t c = reconnect(s, peer, -1);
  if (c < 0) {
    return fail(state, "handshake failed");
  }
  const std::uint32_t mss = full_payload(peer);
  std::vector<std::byte> chunk(mss, std::byte{0x5a});
  std::vector<std::byte> ack(kSlot);
  std::uint64_t segs = 0;
  std::uint64_t acks = 0;
  std::uint64_t conn_bytes = 0;
  std::uint64_t unacked = 0;
  for (auto _ : state) {
    const std::uint64_t before = s.link.data_segments;
    if (s.tcp().send(static_cast<ConnId>(c), chunk) <= 0) {
      return fail(state, "send refused");
    }
    const std::uint64_t emitted = s.link.data_segments - before;
    segs += emitted;
    unacked += emitted;
    if (unacked >= ack_every || (emitted == 0 && unacked > 0)) {
      unacked = 0;
      peer.rcv_nxt = s.link.last.seq + s.link.last.payload_len;
      peer.ts_ecr = s.link.last.ts_val;
      ++peer.ts_val;
      const std::size_t n = peer.build_ack(ack.data());
      s.input(ack.data(), n);
      s.drop_events();
      ++acks;
      segs += s.link.data_segments - before - emitted;  // sent when the ACK opened cwnd
    }
    conn_bytes += mss;
    if (conn_bytes >= kMaxBytesPerConn) {
      state.PauseTiming();
      c = reconnect(s, peer, c);
      conn_bytes = 0;
      unacked = 0;
      if (c < 0) {
        return fail(state, "handshake failed");
      }
      state.ResumeTiming();
    }
  }
  if (s.tcp().stats().retransmits != 0) {
    return fail(state, "retransmissions");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(segs));
  state.SetBytesProcessed(static_cast<std::int64_t>(segs * mss));
  state.counters["segs_per_send"] =
      static_cast<double>(segs) / static_cast<double>(state.iterations());
  state.counters["acks_per_seg"] = static_cast<double>(acks) / static_cast<double>(segs);
}
BENCHMARK(BM_TxDataSegment)->ArgName("ack_every")->Arg(2)->Arg(32);

double thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// (c) Pure ACKs that acknowledge new data (one segment each) when nothing is left to send:
// the application queued exactly one batch, the stack sent it all, and each ACK frees TxStore
// bytes, takes an RTT sample, grows cwnd and rearms (finally cancels) the RTO. Queuing and
// sending the batch and building the ACKs is untimed; the ACKs are timed on the thread's CPU
// clock (manual time: the figure is CPU time, not wall time).
void BM_AckNewData(benchmark::State& state) {
  constexpr std::uint32_t kBatch = 256;
  BenchStack s(default_tcp(), 64 * 1024, 4 << 20);
  s.tcp().listen(kServerPort);
  BenchPeer peer;
  std::int64_t c = -1;
  ConnId conn = 0;
  std::uint32_t mss = 0;
  std::vector<std::byte> chunk;
  std::vector<std::byte> buf(kSlot);
  constexpr std::size_t kAckSlot = 128;
  std::vector<std::byte> acks(kBatch * kAckSlot);
  std::vector<std::size_t> ack_lens(kBatch);
  std::uint64_t acks_fed = 0;
  std::uint64_t out_timed = 0;
  double timed_ns = 0;
  s.link.record_ends = true;
  auto ack_all = [&]() {
    peer.rcv_nxt = s.link.last.seq + s.link.last.payload_len;
    peer.ts_ecr = s.link.last.ts_val;
    ++peer.ts_val;
    const std::size_t n = peer.build_ack(buf.data());
    s.input(buf.data(), n);
  };
  // A fresh connection (the engine breaks after 2 GiB on one), then slow start until cwnd
  // takes a whole batch at once.
  auto fresh = [&]() {
    c = reconnect(s, peer, c);
    if (c < 0) {
      return false;
    }
    conn = static_cast<ConnId>(c);
    mss = full_payload(peer);
    chunk.assign(static_cast<std::size_t>(kBatch) * mss, std::byte{0x11});
    for (int i = 0; i < 1000; ++i) {
      ConnInfo ci;
      s.tcp().info(conn, &ci);
      if (ci.cwnd >= 2 * chunk.size() && s.buffers.tx_queued(conn) == 0) {
        return true;
      }
      if (s.buffers.tx_queued(conn) == 0) {
        s.tcp().send(conn, chunk);
      }
      ack_all();
    }
    return false;
  };
  if (!fresh()) {
    return fail(state, "handshake or warm-up failed");
  }
  std::uint64_t conn_bytes = 0;
  for (auto _ : state) {
    if (conn_bytes >= kMaxBytesPerConn) {
      if (!fresh()) {
        return fail(state, "handshake or warm-up failed");
      }
      conn_bytes = 0;
    }
    // Untimed: one batch queued and sent, one ACK per segment built.
    s.link.ends.clear();
    s.tcp().send(conn, chunk);
    if (s.link.ends.size() != kBatch || s.buffers.tx_queued(conn) != chunk.size()) {
      return fail(state, "batch not sent at once");
    }
    conn_bytes += chunk.size();
    peer.ts_ecr = s.link.last.ts_val;
    for (std::size_t k = 0; k < kBatch; ++k) {
      ++peer.ts_val;
      ack_lens[k] = peer.build(&acks[k * kAckSlot], kAck, peer.snd_nxt, s.link.ends[k],
                               peer.opts.window, {});
    }
    const std::uint64_t out_before = s.link.packets;
    const double t0 = thread_cpu_ns();
    for (std::size_t k = 0; k < kBatch; ++k) {
      s.input(&acks[k * kAckSlot], ack_lens[k]);
    }
    const double t1 = thread_cpu_ns();
    out_timed += s.link.packets - out_before;
    acks_fed += kBatch;
    s.drop_events();
    if (s.buffers.tx_queued(conn) != 0) {
      return fail(state, "ACKs did not free the TxStore");
    }
    timed_ns += t1 - t0;
    state.SetIterationTime((t1 - t0) * 1e-9);
  }
  if (s.tcp().stats().retransmits != 0) {
    return fail(state, "retransmissions");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(acks_fed));
  state.counters["pkts_out_per_ack"] =
      static_cast<double>(out_timed) / static_cast<double>(std::max<std::uint64_t>(acks_fed, 1));
  state.counters["ns_per_ack"] = timed_ns / static_cast<double>(std::max<std::uint64_t>(acks_fed, 1));
}
BENCHMARK(BM_AckNewData)->UseManualTime();

// Peers of the many-connection fixtures: 198.19.0.1 upwards, 60,000 ports per address.
BenchPeer many_peer(std::size_t i) {
  BenchPeer p;
  p.addr = 0xC6130001u + static_cast<std::uint32_t>(i / 60000);
  p.port = static_cast<std::uint16_t>(1024 + i % 60000);
  p.snd_nxt = 1'000'000u + static_cast<std::uint32_t>(i) * 7919u;
  return p;
}

// N idle established connections and, for each, a pure ACK (seq = what the stack expects,
// ack = all it sent, timestamps) that changes nothing; the packets are stored in a random
// order of connections so each input hits a cold connection while the packet array itself is
// read sequentially (as a packet fresh from a device would be in cache).
struct IdleFleet {
  explicit IdleFleet(std::size_t n) : stack(TcpConfig{}, 64 * 1024, 64 * 1024), packets(n * 64) {
    stack.tcp().listen(kServerPort);
    std::vector<BenchPeer> peers;
    peers.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      peers.push_back(many_peer(i));
      if (stack.establish(peers.back()) < 0) {
        ok = false;
        return;
      }
    }
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937_64(42));
    lens.resize(n);
    for (std::size_t k = 0; k < n; ++k) {
      lens[k] = static_cast<std::uint8_t>(peers[order[k]].build_ack(&packets[k * 64]));
    }
  }
  BenchStack stack;
  std::vector<std::byte> packets;
  std::vector<std::uint8_t> lens;
  bool ok = true;
};

IdleFleet& fleet(std::size_t n) {
  static std::unique_ptr<IdleFleet> f;
  if (!f || f->lens.size() != n) {
    f.reset();
    f = std::make_unique<IdleFleet>(n);
  }
  return *f;
}

// (c) Pure ACKs that acknowledge nothing new on idle connections (the common segment of a
// mostly idle fleet: a peer's ACK of a push, a keepalive answer): parse, checksum, flow
// lookup, PAWS, RFC 9293 checks. With 1 connection everything is hot; with 1M connections
// every ACK lands on a connection not touched for a million packets (cold flow-table slot
// and control block).
void BM_AckIdle(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  IdleFleet& f = fleet(n);
  if (!f.ok) {
    return fail(state, "handshake failed");
  }
  const std::uint64_t out0 = f.stack.link.packets;
  const std::uint64_t in0 = f.stack.tcp().stats().segs_in;
  const std::uint64_t dup0 = f.stack.tcp().stats().dup_acks;
  std::size_t k = 0;
  for (auto _ : state) {
    f.stack.input(&f.packets[k * 64], f.lens[k]);
    if (++k == n) {
      k = 0;
    }
  }
  const auto iters = static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.counters["pkts_out_per_ack"] = static_cast<double>(f.stack.link.packets - out0) / iters;
  state.counters["dupacks_counted"] = static_cast<double>(f.stack.tcp().stats().dup_acks - dup0);
  state.counters["segs_in_per_ack"] =
      static_cast<double>(f.stack.tcp().stats().segs_in - in0) / iters;
}
BENCHMARK(BM_AckIdle)->ArgName("conns")->Arg(1)->Arg(1000)->Arg(100000)->Arg(1000000);

// (d) FlowTable::find alone: N random 4-tuples, looked up in a random order (cold when the
// table, 16 bytes a slot, is far bigger than the caches: 1M entries = 32 MiB of slots).
void BM_FlowLookup(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  FlowTable table(n, 12345);
  std::vector<FlowKey> keys;
  keys.reserve(n);
  std::mt19937_64 rng(7);
  while (keys.size() < n) {
    const std::uint64_t r = rng();
    FlowKey k{kStackAddr, static_cast<std::uint32_t>(r >> 32), 443,
              static_cast<std::uint16_t>(r)};
    if (table.insert(k, static_cast<std::uint32_t>(keys.size()))) {
      keys.push_back(k);
    }
  }
  std::shuffle(keys.begin(), keys.end(), rng);
  std::size_t i = 0;
  std::uint64_t found = 0;
  for (auto _ : state) {
    auto v = table.find(keys[i]);
    benchmark::DoNotOptimize(v);
    found += v.has_value() ? 1 : 0;
    if (++i == n) {
      i = 0;
    }
  }
  if (found != static_cast<std::uint64_t>(state.iterations())) {
    return fail(state, "lookup missed");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.counters["table_MiB"] = static_cast<double>(table.memory_bytes()) / (1 << 20);
}
BENCHMARK(BM_FlowLookup)->ArgName("entries")->Arg(1000)->Arg(1000000)->Arg(10000000);

}  // namespace
}  // namespace xtcp::bench

BENCHMARK_MAIN();
