#include "tools/replay/capture.h"

#include <tins/tins.h>

#include <algorithm>
#include <iterator>
#include <map>

#include "stack/wire/tcp.h"

namespace xtcp::replay {

namespace tf = wire::tcp_flags;

std::string describe(const FlowEnd& end) {
  if (end.fin && end.rst) {
    return "FIN, then RST";
  }
  if (end.fin) {
    return "FIN";
  }
  if (end.rst) {
    return "RST";
  }
  return "neither FIN nor RST";
}

namespace {

// DLT values (pcap-linktype(7)) that carry IPv4 and how many bytes come before it.
std::optional<std::span<const std::byte>> ip_of_frame(int link_type, std::span<const std::byte> frame) {
  auto ethertype_ipv4 = [&](std::size_t at) {
    return frame.size() > at + 2 && static_cast<std::uint8_t>(frame[at]) == 0x08 &&
           static_cast<std::uint8_t>(frame[at + 1]) == 0x00;
  };
  switch (link_type) {
    case 101:  // LINKTYPE_RAW
    case 12:   // DLT_RAW on most systems
    case 14:   // DLT_RAW on some BSDs
    case 228:  // LINKTYPE_IPV4
      return frame;
    case 1:  // Ethernet
      if (ethertype_ipv4(12)) {
        return frame.subspan(14);
      }
      return std::nullopt;
    case 113:  // Linux cooked (SLL)
      if (ethertype_ipv4(14)) {
        return frame.subspan(16);
      }
      return std::nullopt;
    case 276:  // Linux cooked v2 (SLL2)
      if (frame.size() > 20 && ethertype_ipv4(0)) {
        return frame.subspan(20);
      }
      return std::nullopt;
    case 0:     // BSD loopback (host-order AF_INET = 2)
    case 108:   // OpenBSD loopback
      if (frame.size() > 4) {
        return frame.subspan(4);
      }
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

}  // namespace

std::optional<std::vector<CapturedPacket>> read_pcap(const std::string& path, std::string* error) {
  std::vector<CapturedPacket> out;
  try {
    Tins::FileSniffer sniffer(path);
    sniffer.set_extract_raw_pdus(true);
    const int link_type = sniffer.link_type();
    for (;;) {
      Tins::Packet packet = sniffer.next_packet();
      if (!packet) {
        break;
      }
      const auto* raw = packet.pdu()->find_pdu<Tins::RawPDU>();
      if (raw == nullptr) {
        continue;
      }
      const auto& payload = raw->payload();
      const std::span<const std::byte> frame(reinterpret_cast<const std::byte*>(payload.data()), payload.size());
      const auto ip = ip_of_frame(link_type, frame);
      CapturedPacket p;
      p.time = static_cast<TimeNs>(packet.timestamp().seconds()) * kNsPerSec +
               static_cast<TimeNs>(packet.timestamp().microseconds()) * kNsPerUs;
      if (ip) {
        p.ip.assign(ip->begin(), ip->end());
        p.facts = read_tcp_facts(p.ip);
      }
      out.push_back(std::move(p));
    }
  } catch (const std::exception& e) {
    *error = "cannot read pcap file '" + path + "': " + e.what();
    return std::nullopt;
  }
  return out;
}

void StreamAssembler::add(std::uint32_t seq, std::span<const std::byte> data) {
  if (data.empty() || !has_base_) {
    return;
  }
  const auto rel = static_cast<std::int32_t>(seq - base_);
  std::uint64_t offset = 0;
  std::size_t skip = 0;
  if (rel < 0) {
    // Starts before the first data byte (cannot happen for a sane sender): keep the rest.
    skip = static_cast<std::size_t>(-static_cast<std::int64_t>(rel));
    if (skip >= data.size()) {
      return;
    }
  } else {
    offset = static_cast<std::uint64_t>(rel);
  }
  data = data.subspan(skip);
  high_ = std::max<std::uint64_t>(high_, offset + data.size());
  if (offset + data.size() <= bytes_.size()) {
    return;  // all of it seen already
  }
  // A copy at the same offset that is no longer than one already waiting adds nothing.
  // (Each one kept at an offset is longer than those before it: the last is the longest.)
  const auto [first_same, past_same] = pending_.equal_range(offset);
  if (first_same != past_same && std::prev(past_same)->second.size() >= data.size()) {
    return;
  }
  pending_.emplace(offset, std::vector<std::byte>(data.begin(), data.end()));
  drain();
}

void StreamAssembler::drain() {
  while (!pending_.empty() && pending_.begin()->first <= bytes_.size()) {
    const auto node = pending_.extract(pending_.begin());
    const std::uint64_t end = node.key() + node.mapped().size();
    if (end > bytes_.size()) {
      const auto from = static_cast<std::ptrdiff_t>(bytes_.size() - node.key());
      bytes_.insert(bytes_.end(), node.mapped().begin() + from, node.mapped().end());
    }
  }
}

std::optional<Capture> extract_flows(std::vector<CapturedPacket> packets, const std::optional<Endpoint>& server,
                                     std::string* error) {
  Capture cap;
  if (server) {
    cap.server = *server;
  } else {
    bool found = false;
    for (const auto& p : packets) {
      if (p.facts.valid && p.facts.has(tf::kSyn) && !p.facts.has(tf::kAck)) {
        cap.server = p.facts.dst;
        found = true;
        break;
      }
    }
    if (!found) {
      *error = "no SYN in the capture to tell the server by: name it with --server ADDR:PORT";
      return std::nullopt;
    }
  }
  cap.packets = std::move(packets);
  cap.flow_of.assign(cap.packets.size(), SIZE_MAX);
  cap.from_client.assign(cap.packets.size(), false);
  auto key = [](const Endpoint& e) { return (static_cast<std::uint64_t>(e.addr) << 16) | e.port; };
  std::map<std::uint64_t, std::size_t> current;  // client endpoint -> its latest flow
  std::vector<StreamAssembler> streams;
  for (std::size_t i = 0; i < cap.packets.size(); ++i) {
    const TcpFacts& f = cap.packets[i].facts;
    const bool to_server = f.valid && f.dst == cap.server;
    const bool from_server = f.valid && f.src == cap.server;
    if (!to_server && !from_server) {
      ++cap.ignored_packets;
      continue;
    }
    const Endpoint client = to_server ? f.src : f.dst;
    auto it = current.find(key(client));
    bool new_flow = it == current.end();
    if (!new_flow && to_server && f.has(tf::kSyn) && !f.has(tf::kAck)) {
      const Flow& old = cap.flows[it->second];
      // Port reuse: a SYN with another ISN once the old flow has ended (RFC 9293 3.10.7.4
      // TIME-WAIT reuse) or had no handshake at all.
      new_flow = (!old.client_syn || old.client_isn != f.seq) && (old.end.fin || old.end.rst || !old.client_syn);
    }
    if (new_flow) {
      Flow fl;
      fl.client = client;
      fl.server = cap.server;
      cap.flows.push_back(std::move(fl));
      streams.emplace_back();
      current[key(client)] = cap.flows.size() - 1;
      it = current.find(key(client));
    }
    const std::size_t idx = it->second;
    Flow& fl = cap.flows[idx];
    fl.packets.push_back(i);
    cap.flow_of[i] = idx;
    cap.from_client[i] = to_server;
    if (to_server) {
      ++fl.client_packets;
      if (f.has(tf::kSyn) && !f.has(tf::kAck) && !fl.client_syn) {
        fl.client_syn = true;
        fl.client_isn = f.seq;
      }
      continue;
    }
    ++fl.server_packets;
    StreamAssembler& s = streams[idx];
    if (f.has(tf::kSyn) && !fl.server_syn) {
      fl.server_syn = true;
      fl.server_isn = f.seq;
      s.set_base(f.seq + 1);
    }
    if (f.has(tf::kRst)) {
      fl.end.rst = true;
    }
    if (f.has(tf::kFin)) {
      fl.end.fin = true;
    }
    if (f.header_ok && f.payload_length > 0) {
      s.add(f.has(tf::kSyn) ? f.seq + 1 : f.seq,
            std::span<const std::byte>(cap.packets[i].ip).subspan(f.payload_offset, f.payload_length));
    }
  }
  for (std::size_t i = 0; i < cap.flows.size(); ++i) {
    cap.flows[i].server_bytes = streams[i].bytes();
    cap.flows[i].server_bytes_gap = streams[i].gap();
  }
  return cap;
}

}  // namespace xtcp::replay
