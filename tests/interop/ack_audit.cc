// AckAudit: pcap records -> IPv4/TCP views (stack/wire) -> per-connection bookkeeping of
// client requests not yet acknowledged and of what each server segment acknowledges.
#include "tests/interop/ack_audit.h"

#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <utility>

#include "stack/wire/ipv4.h"
#include "stack/wire/tcp.h"

namespace xtcp::test {
namespace {

using wire::SeqNum;

constexpr std::uint32_t kLinkRaw = 101;
constexpr std::uint32_t kLinkIpv4 = 228;
constexpr std::uint32_t kLinkEthernet = 1;
constexpr std::uint32_t kLinkSll = 113;
constexpr std::uint32_t kLinkRawBsd = 12;  // DLT_RAW as some writers store it

std::uint32_t load32(const unsigned char* p, bool swap) {
  std::uint32_t v = 0;
  std::memcpy(&v, p, 4);
  return swap ? __builtin_bswap32(v) : v;
}

struct Flow {
  std::deque<SeqNum> pending;      // end of each unacknowledged request, in order
  std::optional<SeqNum> data_end;  // highest client sequence number carrying data so far
  std::optional<SeqNum> fin_end;   // client FIN + 1
};

std::string tuple_text(std::uint32_t ip, std::uint16_t port) {
  return wire::format_ipv4(ip) + ":" + std::to_string(port);
}

void problem(AckAudit* a, std::string what) {
  if (a->problems.size() < 20) {
    a->problems.push_back(std::move(what));
  }
}

void audit_packet(const std::byte* data, std::size_t len, std::uint32_t server_ip,
                  std::uint16_t server_port, std::map<std::pair<std::uint32_t, std::uint16_t>, Flow>& flows,
                  std::uint64_t frame, AckAudit* a) {
  const auto ip = wire::Ipv4View::parse(wire::ByteSpan(data, len));
  if (!ip || ip->protocol() != 6 || ip->is_fragment()) {
    return;
  }
  wire::TcpError err{};
  const wire::TcpView tcp = wire::TcpView::parse(ip->payload(), &err);
  if (!tcp.ok()) {
    return;
  }
  const bool from_server = ip->src() == server_ip && tcp.src_port() == server_port;
  const bool to_server = ip->dst() == server_ip && tcp.dst_port() == server_port;
  if (!from_server && !to_server) {
    return;
  }
  ++a->packets;
  const auto key = from_server ? std::make_pair(ip->dst(), tcp.dst_port())
                               : std::make_pair(ip->src(), tcp.src_port());
  auto [it, inserted] = flows.try_emplace(key);
  if (inserted) {
    ++a->connections;
  }
  Flow& f = it->second;
  const std::size_t payload = tcp.payload().size();
  const bool syn = tcp.has(wire::tcp_flags::kSyn);
  const bool fin = tcp.has(wire::tcp_flags::kFin);
  const bool rst = tcp.has(wire::tcp_flags::kRst);
  const std::string where = "frame " + std::to_string(frame) + " (" + tuple_text(key.first, key.second) + ")";

  if (to_server) {
    if (syn || rst) {
      if (syn) {
        f = Flow{};  // a new connection on a reused 4-tuple
      }
      return;
    }
    const SeqNum end = tcp.seq() + static_cast<std::uint32_t>(payload);
    if (payload > 0 && (!f.data_end || end > *f.data_end)) {
      ++a->requests;
      f.pending.push_back(end);
      f.data_end = end;
    }
    if (fin) {
      f.fin_end = end + 1;
    }
    return;
  }
  // From the server.
  if (rst || !tcp.has(wire::tcp_flags::kAck)) {
    return;
  }
  const SeqNum ack = tcp.ack();
  std::uint64_t covered = 0;
  while (!f.pending.empty() && f.pending.front() <= ack) {
    f.pending.pop_front();
    ++covered;
  }
  if (syn) {
    if (covered > 0) {
      problem(a, where + ": SYN-ACK acknowledges request data");
    }
    return;
  }
  if (payload > 0) {
    ++a->answers;
    a->acked_by_answer += covered;
    return;
  }
  if (fin) {
    if (covered > 0) {
      problem(a, where + ": a FIN without answer data acknowledges " + std::to_string(covered) +
                     " request(s)");
    }
    return;
  }
  if (covered == 0 && f.fin_end && ack == *f.fin_end) {
    ++a->fin_acks;
    return;
  }
  ++a->pure_acks;
  problem(a, where + ": pure ACK " + std::to_string(ack.raw()) +
                 (covered > 0 ? " acknowledging " + std::to_string(covered) + " request(s)"
                              : " acknowledging no request"));
}

}  // namespace

bool audit_acks(const std::string& path, std::uint32_t server_ip, std::uint16_t server_port,
                AckAudit* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot open " + path;
    return false;
  }
  const std::vector<unsigned char> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (file.size() < 24) {
    *error = path + ": shorter than a pcap header";
    return false;
  }
  std::uint32_t magic = 0;
  std::memcpy(&magic, file.data(), 4);
  bool swap = false;
  if (magic == 0xa1b2c3d4 || magic == 0xa1b23c4d) {
    swap = false;
  } else if (magic == 0xd4c3b2a1 || magic == 0x4d3cb2a1) {
    swap = true;
  } else {
    *error = path + ": not a pcap file (pcapng is not read here)";
    return false;
  }
  const std::uint32_t link = load32(file.data() + 20, swap) & 0x0fffffff;
  std::size_t skip = 0;
  if (link == kLinkEthernet) {
    skip = 14;
  } else if (link == kLinkSll) {
    skip = 16;
  } else if (link != kLinkRaw && link != kLinkIpv4 && link != kLinkRawBsd) {
    *error = path + ": link type " + std::to_string(link) + " is not supported";
    return false;
  }
  AckAudit a;
  std::map<std::pair<std::uint32_t, std::uint16_t>, Flow> flows;
  std::size_t off = 24;
  std::uint64_t frame = 0;
  // Bounded by the file size: every record advances off by at least 16 bytes.
  while (off + 16 <= file.size()) {
    const std::uint32_t caplen = load32(file.data() + off + 8, swap);
    off += 16;
    if (caplen > file.size() - off) {
      *error = path + ": truncated record " + std::to_string(frame + 1);
      return false;
    }
    ++frame;
    if (caplen > skip) {
      audit_packet(reinterpret_cast<const std::byte*>(file.data() + off + skip), caplen - skip,
                   server_ip, server_port, flows, frame, &a);
    }
    off += caplen;
  }
  for (const auto& [key, f] : flows) {
    if (!f.pending.empty()) {
      a.unacked_requests += f.pending.size();
      problem(&a, tuple_text(key.first, key.second) + ": " + std::to_string(f.pending.size()) +
                      " request(s) never acknowledged");
    }
  }
  *out = std::move(a);
  return true;
}

std::string describe(const AckAudit& a) {
  char line[400];
  std::snprintf(line, sizeof line,
                "%llu packets, %llu connections, %llu requests, %llu acked by an answer, "
                "%llu answers, %llu pure ACKs, %llu FIN ACKs, %llu never acked",
                static_cast<unsigned long long>(a.packets),
                static_cast<unsigned long long>(a.connections),
                static_cast<unsigned long long>(a.requests),
                static_cast<unsigned long long>(a.acked_by_answer),
                static_cast<unsigned long long>(a.answers),
                static_cast<unsigned long long>(a.pure_acks),
                static_cast<unsigned long long>(a.fin_acks),
                static_cast<unsigned long long>(a.unacked_requests));
  std::string s = line;
  for (const std::string& p : a.problems) {
    s += "\n  " + p;
  }
  return s;
}

}  // namespace xtcp::test
