// Shared benchmark helpers; see bench_util.h.
#include "bench/bench_util.h"

#include <unistd.h>

#include <cstdio>

#include "stack/wire/checksum.h"
#include "stack/wire/ipv4.h"

namespace xtcp::bench {

using namespace wire::tcp_flags;  // NOLINT

int SinkLink::send(std::span<const std::byte> p) {
  ++packets;
  bytes += p.size();
  if (p.size() < 40 || wire::load_u8(p.data() + 9) != wire::kProtoTcp) {
    return 0;
  }
  const std::size_t ihl = static_cast<std::size_t>(wire::load_u8(p.data()) & 0x0f) * 4;
  const std::byte* t = p.data() + ihl;
  const std::size_t doff = static_cast<std::size_t>(wire::load_u8(t + 12) >> 4) * 4;
  const std::size_t total = wire::load_be16(p.data() + 2);
  last.seq = wire::load_be32(t + 4);
  last.ack = wire::load_be32(t + 8);
  last.flags = wire::load_u8(t + 13);
  last.window = wire::load_be16(t + 14);
  last.payload_len = static_cast<std::uint32_t>(total - ihl - doff);
  last.has_ts = false;
  // Fast path: the NOP NOP TS layout every stack uses on non-SYN segments.
  if (doff >= 32 && wire::load_be32(t + 20) == 0x0101080a) {
    last.has_ts = true;
    last.ts_val = wire::load_be32(t + 24);
  } else if (doff > 20) {
    wire::TcpOptions o;
    if (wire::parse_tcp_options(wire::ByteSpan(t + 20, doff - 20), &o) == wire::TcpError::kNone &&
        o.has_timestamp) {
      last.has_ts = true;
      last.ts_val = o.ts_val;
    }
  }
  if (last.payload_len > 0) {
    ++data_segments;
    if (record_ends) {
      ends.push_back(last.seq + last.payload_len);
    }
  }
  return 0;
}

std::size_t BenchPeer::build(std::byte* out, std::uint8_t flags, std::uint32_t seq,
                             std::uint32_t ack, std::uint16_t window, wire::ByteSpan payload,
                             bool syn_options) const {
  wire::TcpOptions o;
  if (syn_options) {
    o.has_mss = true;
    o.mss = opts.mss;
    o.sack_permitted = opts.sack;
    o.has_timestamp = opts.timestamps;
    o.ts_val = ts_val;
    o.ts_ecr = ts_ecr;
    if (opts.window_scale >= 0) {
      o.has_window_scale = true;
      o.window_scale = static_cast<std::uint8_t>(opts.window_scale);
    }
  } else if (ts_ok) {
    o.has_timestamp = true;
    o.ts_val = ts_val;
    o.ts_ecr = ts_ecr;
  }
  wire::TcpFields f;
  f.src_port = port;
  f.dst_port = stack_port;
  f.seq = wire::SeqNum(seq);
  f.ack = wire::SeqNum((flags & kAck) != 0 ? ack : 0);
  f.flags = flags;
  f.window = window;
  std::byte* tcp = out + wire::kIpv4HeaderMin;
  const std::size_t hdr = wire::emit_tcp_header(tcp, f, o);
  std::copy(payload.begin(), payload.end(), tcp + hdr);
  wire::fill_tcp_checksum(wire::MutableByteSpan(tcp, hdr + payload.size()), addr, kStackAddr);
  wire::Ipv4Fields ipf;
  ipf.total_length = static_cast<std::uint16_t>(wire::kIpv4HeaderMin + hdr + payload.size());
  ipf.id = 1;
  ipf.protocol = wire::kProtoTcp;
  ipf.src = addr;
  ipf.dst = kStackAddr;
  wire::emit_ipv4_header(out, ipf);
  return ipf.total_length;
}

std::size_t BenchPeer::build_ack(std::byte* out) const {
  return build(out, kAck, snd_nxt, rcv_nxt, opts.window, {});
}

void restamp(std::byte* p, std::uint32_t seq, std::uint32_t ts_val) {
  std::byte* t = p + wire::kIpv4HeaderMin;
  std::uint16_t sum = wire::load_be16(t + 16);
  sum = wire::checksum_update32(sum, wire::load_be32(t + 4), seq);
  wire::store_be32(t + 4, seq);
  if (wire::load_be32(t + 20) == 0x0101080a) {
    sum = wire::checksum_update32(sum, wire::load_be32(t + 24), ts_val);
    wire::store_be32(t + 24, ts_val);
  }
  wire::store_be16(t + 16, sum);
}

namespace {
StackConfig stack_config(const TcpConfig& tcp) {
  StackConfig c;
  c.ip.local_addr = kStackAddr;
  c.tcp = tcp;
  return c;
}
}  // namespace

BenchStack::BenchStack(const TcpConfig& tcp, std::size_t rx_capacity, std::size_t tx_capacity)
    : buffers(rx_capacity, tx_capacity),
      stack(stack_config(tcp), link, clock, buffers.rx(), buffers.tx()),
      scratch_(2048) {}

void BenchStack::drop_events() {
  while (tcp().has_events()) {
    tcp().poll_events([](const TcpEvent&) {});
  }
}

std::int64_t BenchStack::establish(BenchPeer& peer) {
  std::byte* buf = scratch_.data();
  const std::uint32_t isn = peer.snd_nxt;
  peer.ts_ecr = 0;
  std::size_t n = peer.build(buf, kSyn, isn, 0, peer.opts.window, {}, true);
  const std::uint64_t before = link.packets;
  input(buf, n);
  if (link.packets != before + 1 || link.last.flags != (kSyn | kAck) || link.last.ack != isn + 1) {
    return -1;
  }
  peer.snd_nxt = isn + 1;
  peer.rcv_nxt = link.last.seq + 1;
  peer.ts_ok = peer.opts.timestamps && link.last.has_ts;
  peer.ts_ecr = link.last.ts_val;
  ++peer.ts_val;
  n = peer.build_ack(buf);
  input(buf, n);
  const std::int64_t c = tcp().accept(peer.stack_port);
  drop_events();
  return c;
}

std::size_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) {
    return 0;
  }
  unsigned long size = 0;
  unsigned long resident = 0;
  const int got = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return got == 2 ? resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

}  // namespace xtcp::bench
