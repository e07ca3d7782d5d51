#include "tools/replay/rewrite.h"

#include <algorithm>

#include "stack/wire/bytes.h"
#include "stack/wire/seq.h"
#include "stack/wire/tcp.h"

namespace xtcp::replay {

namespace tf = wire::tcp_flags;
using wire::load_be32;
using wire::store_be32;

namespace {

bool seq_gt(std::uint32_t a, std::uint32_t b) { return static_cast<std::int32_t>(a - b) > 0; }

}  // namespace

void AdvertisedWindow::take(const TcpFacts& f) {
  if (f.has(tf::kRst) || !f.has(tf::kAck)) {
    return;
  }
  if (f.has(tf::kSyn)) {
    shift = f.has_wscale ? f.wscale : 0;
  }
  // The window of a SYN segment is never scaled (RFC 7323 section 2.2).
  const std::uint32_t window = f.has(tf::kSyn) ? f.window : (static_cast<std::uint32_t>(f.window) << shift);
  right_edge = f.ack + window;
  known = true;
}

bool AdvertisedWindow::covers(std::uint32_t end) const {
  return known && !seq_gt(end, right_edge);
}

void LiveFlow::take(std::span<const std::byte> ip, const TcpFacts& f) {
  ++packets;
  window.take(f);
  if (f.has(tf::kSyn) && !syn) {
    syn = true;
    iss = f.seq;
    stream.set_base(f.seq + 1);
  }
  if (f.has(tf::kRst)) {
    end.rst = true;
  }
  if (f.has(tf::kFin)) {
    end.fin = true;
  }
  if (f.has_tsval) {
    has_tsval = true;
    tsval = f.tsval;
  }
  if (!f.has(tf::kRst)) {
    const std::uint32_t seg_end = f.seq + f.seq_length();
    if (!has_high || seq_gt(seg_end, high)) {
      high = seg_end;
      has_high = true;
    }
  }
  if (f.header_ok && f.payload_length > 0) {
    stream.add(f.has(tf::kSyn) ? f.seq + 1 : f.seq, ip.subspan(f.payload_offset, f.payload_length));
  }
}

ServerProgress LiveFlow::progress() const {
  ServerProgress p;
  p.syn = syn;
  p.data_high = stream.high();
  p.fin = end.fin;
  p.rst = end.rst;
  return p;
}

void CapturedServerState::take(std::span<const std::byte> /*ip*/, const TcpFacts& f, const Flow& flow) {
  window.take(f);
  if (f.has(tf::kSyn)) {
    progress.syn = true;
  }
  if (f.has(tf::kRst)) {
    progress.rst = true;
    return;
  }
  if (f.has(tf::kFin)) {
    progress.fin = true;
  }
  const std::uint32_t seg_end = f.seq + f.seq_length();
  if (!has_high || seq_gt(seg_end, high)) {
    high = seg_end;
    has_high = true;
  }
  if (flow.server_syn && f.header_ok && f.payload_length > 0) {
    const std::uint32_t first = f.has(tf::kSyn) ? f.seq + 1 : f.seq;
    const auto rel = static_cast<std::int64_t>(static_cast<std::int32_t>(first - (flow.server_isn + 1)));
    if (rel >= 0) {
      progress.data_high = std::max<std::uint64_t>(progress.data_high,
                                                   static_cast<std::uint64_t>(rel) + f.payload_length);
    }
  }
}

std::uint32_t AddressMap::client(std::uint32_t captured) {
  if (!client_base) {
    return captured;
  }
  auto it = std::find(seen_clients.begin(), seen_clients.end(), captured);
  if (it == seen_clients.end()) {
    seen_clients.push_back(captured);
    it = seen_clients.end() - 1;
  }
  return *client_base + static_cast<std::uint32_t>(it - seen_clients.begin());
}

namespace {

// A server sequence number of the capture, in the live server's space (see rewrite.h).
std::uint32_t map_server_seq(std::uint32_t captured, const Flow& flow, const CapturedServerState& cs,
                             const LiveFlow& live) {
  const std::uint32_t live_high = live.has_high ? live.high : live.iss + 1;
  const std::uint32_t cap_high = cs.has_high ? cs.high : flow.server_isn + 1;
  if (seq_gt(captured, cap_high)) {
    return live_high + (captured - cap_high);
  }
  const std::uint32_t mapped = captured - flow.server_isn + live.iss;
  return seq_gt(mapped, live_high) ? live_high : mapped;
}

// Malformed options are replayed as captured.
void rewrite_options(std::span<std::byte> opts, const Flow& flow, const CapturedServerState& cs,
                     const LiveFlow& live) {
  for_each_tcp_option(std::span<const std::byte>(opts), [&](std::uint8_t kind, std::size_t at, std::size_t len) {
    std::byte* o = opts.data() + at;
    if (kind == wire::tcp_option::kTimestamp && len == 10 && live.has_tsval && load_be32(o + 6) != 0) {
      store_be32(o + 6, live.tsval);
    }
    if (kind == wire::tcp_option::kSack && len >= 10 && (len - 2) % 8 == 0) {
      for (std::size_t b = 2; b + 8 <= len; b += 8) {
        store_be32(o + b, map_server_seq(load_be32(o + b), flow, cs, live));
        store_be32(o + b + 4, map_server_seq(load_be32(o + b + 4), flow, cs, live));
      }
    }
  });
}

}  // namespace

std::vector<std::byte> rewrite_client_packet(const CapturedPacket& p, const Flow& flow,
                                             const CapturedServerState& captured_server, const LiveFlow& live,
                                             AddressMap& addresses) {
  std::vector<std::byte> out = p.ip;
  const TcpFacts& f = p.facts;
  const bool ip_ok = ip_checksum_ok(p.ip, f);
  const bool tcp_ok = tcp_checksum_ok(p.ip, f);
  store_be32(out.data() + 12, addresses.client(f.src.addr));
  if (addresses.server_addr) {
    store_be32(out.data() + 16, *addresses.server_addr);
  }
  if (addresses.server_port) {
    wire::store_be16(out.data() + f.tcp_offset + 2, *addresses.server_port);
  }
  const bool mapped = flow.server_syn && live.syn;
  if (mapped && f.has(tf::kAck)) {
    store_be32(out.data() + f.tcp_offset + 8, map_server_seq(f.ack, flow, captured_server, live));
  }
  if (mapped && f.header_ok && f.header_length > wire::kTcpHeaderMin) {
    rewrite_options(std::span<std::byte>(out).subspan(f.tcp_offset + wire::kTcpHeaderMin,
                                                      f.header_length - wire::kTcpHeaderMin),
                    flow, captured_server, live);
  }
  TcpFacts nf = f;  // same offsets and lengths
  set_checksums(out, nf, ip_ok, tcp_ok);
  return out;
}

}  // namespace xtcp::replay
