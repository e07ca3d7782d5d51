// IPv4 host input/output: validation and martian filtering, fragment reassembly, ICMP echo,
// ICMP errors (sent with a token bucket, received ones mapped to IcmpErrorInfo for TCP).
// input(): parse -> address checks -> [reassemble] -> deliver() -> TCP / ICMP / unreachable.
#include "stack/ip/ipv4_layer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>

#include "stack/wire/checksum.h"
#include "stack/wire/icmp.h"
#include "stack/wire/ipv4.h"

namespace xtcp {

// Fragment reassembly: what is kept, what is refused, and why.
//
// - Key: (src, dst, protocol, id), RFC 791 section 3.2.
// - Timeout: a fixed 30 s from the first fragment, never extended by later ones. RFC 1122
//   3.3.2 requires a fixed value (not taken from TTL) and recommends 60-120 s; RFC 791's
//   example uses 15 s. We follow Linux's ipfrag_time (30 s): long enough for any real path,
//   and it halves how long a flood of incomplete datagrams pins memory. On expiry, if the
//   offset-0 fragment had arrived, an ICMP time exceeded (code 1) is sent (RFC 1122 3.3.2
//   MUST), subject to the usual ICMP error restrictions and the rate limit.
// - Limits: at most reassembly_max_datagrams (64) datagrams and reassembly_max_bytes
//   (256 KiB) in flight; each fragment is charged its payload plus kFragmentOverhead so that
//   floods of tiny fragments are bounded by count as well as by bytes. When a limit is hit
//   the NEW fragment is refused (counted in drop_fragment_limit) and datagrams in progress
//   are kept, as Linux does since 4.17: evicting old datagrams would let a flood destroy
//   every legitimate reassembly in progress, refusing new ones at least lets those finish.
//   Lookup is a linear scan over at most 64 entries; fragments are rare for a TCP server
//   (TCP avoids fragmentation with DF + PMTUD), so this is not on the hot path.
// - Overlap: any fragment sharing a byte with one already held abandons the whole datagram
//   (drop_fragment_overlap) and the key is remembered until its deadline, so fragments
//   still in flight for it are dropped too (drop_fragment_abandoned). This is RFC 5722 /
//   RFC 8200 section 4.5 applied to IPv4: overlaps have no legitimate use and resolving them
//   differently from a firewall or IDS is the classic evasion (teardrop, Ptacek-Newsham).
//   An exact duplicate (same offset, length and bytes) is dropped alone, as RFC 8200 4.5
//   allows, since networks do duplicate packets.
// - Malformed fragments are dropped alone (drop_fragment_bad): empty payload, MF set with a
//   length not a multiple of 8 (RFC 791 3.2), end beyond 65535 - 20 (the ping of death).
//   Fragments inconsistent with the known end (data past the MF=0 fragment, or a second
//   different end) abandon the datagram, like an overlap.
// - The reassembled datagram (first fragment's header with MF/offset cleared, length and
//   checksum rewritten) is re-parsed and dispatched exactly like an unfragmented packet.
namespace {

constexpr std::size_t kFragmentOverhead = 64;       // bookkeeping charged per fragment
constexpr std::uint8_t kTosInternetControl = 0xc0;  // precedence 6 / DSCP CS6

}  // namespace

Ipv4Layer::Ipv4Layer(const IpConfig& config, Link& link, const Clock& clock)
    : config_(config), link_(link), clock_(clock), next_id_(config.first_id) {
  if (config_.icmp_rate_per_sec != 0) {
    token_cost_ns_ = std::max<TimeNs>(1, kNsPerSec / config_.icmp_rate_per_sec);
    bucket_capacity_ns_ = token_cost_ns_ * static_cast<TimeNs>(config_.icmp_burst);
  }
  bucket_credit_ns_ = bucket_capacity_ns_;
  bucket_updated_ = clock_.now();
  // RFC 791: every host must handle 68-byte datagrams; anything larger than 65535 is moot.
  const std::size_t mtu = std::clamp<std::size_t>(link_.mtu(), 68, wire::kIpv4MaxPacket);
  tx_.resize(mtu);
  transport_tx_.resize(wire::kIpv4MaxPacket);
  reassembly_scratch_.resize(wire::kIpv4MaxPacket);
  reassembly_.reserve(config_.reassembly_max_datagrams);
}

Ipv4Layer::~Ipv4Layer() = default;

void Ipv4Layer::input(wire::ByteSpan packet) {
  ++stats_.packets_in;
  stats_.bytes_in += packet.size();
  wire::Ipv4Error err = wire::Ipv4Error::kNone;
  const auto ip = wire::Ipv4View::parse(packet, &err);
  if (!ip) {
    switch (err) {
      case wire::Ipv4Error::kTruncated:
        ++stats_.drop_truncated;
        break;
      case wire::Ipv4Error::kBadVersion:
        ++stats_.drop_bad_version;
        break;
      case wire::Ipv4Error::kBadHeaderLength:
        ++stats_.drop_bad_header_len;
        break;
      case wire::Ipv4Error::kBadTotalLength:
        ++stats_.drop_bad_total_len;
        break;
      case wire::Ipv4Error::kBadChecksum:
        ++stats_.drop_bad_checksum;
        break;
      case wire::Ipv4Error::kBadOptions:
        ++stats_.drop_bad_options;
        break;
      case wire::Ipv4Error::kNone:
        break;
    }
    return;
  }
  // A host, not a router: only datagrams for our address are accepted (RFC 1122 3.3.4.2,
  // "strong" model). This also drops broadcast and multicast, which we do not join.
  if (!is_local(ip->dst())) {
    ++stats_.drop_not_for_us;
    return;
  }
  // RFC 1122 3.2.1.3: silently discard datagrams with a source that is not a single remote
  // host. Our own address as source is a spoof (the "land" attack); Linux drops it too.
  if (wire::is_martian_source(ip->src()) || is_local(ip->src())) {
    ++stats_.drop_bad_source;
    return;
  }
  if (ip->is_fragment()) {
    fragment_input(*ip);
    return;
  }
  deliver(*ip);
}

void Ipv4Layer::deliver(const wire::Ipv4View& ip) {
  switch (ip.protocol()) {
    case wire::kProtoTcp:
      if (upper_ == nullptr) {
        ++stats_.drop_no_upper;
        return;
      }
      upper_->tcp_input(ip.src(), ip.dst(), ip.tos(), ip.payload());
      return;
    case wire::kProtoIcmp:
      icmp_input(ip);
      return;
    case wire::kProtoUdp:
      // No UDP service: RFC 1122 4.1.3.1 says a host SHOULD answer port unreachable.
      ++stats_.drop_udp;
      send_icmp_error(wire::kIcmpDestUnreachable, wire::kUnreachPort, ip.packet(), ip.src());
      return;
    default:
      // RFC 1122 3.2.2.1: a host SHOULD generate protocol unreachable.
      ++stats_.drop_unknown_protocol;
      send_icmp_error(wire::kIcmpDestUnreachable, wire::kUnreachProtocol, ip.packet(), ip.src());
      return;
  }
}

int Ipv4Layer::send_transport(std::uint32_t src, std::uint32_t dst, std::uint8_t protocol, std::size_t len,
                              std::uint8_t tos) {
  const std::size_t total = wire::kIpv4HeaderMin + len;
  if (total > transport_tx_.size()) {
    ++stats_.drop_out_invalid;
    return -EMSGSIZE;
  }
  wire::Ipv4Fields f;
  f.tos = tos;
  f.total_length = static_cast<std::uint16_t>(total);
  f.id = next_id();
  f.ttl = config_.default_ttl;
  f.protocol = protocol;
  f.src = src;
  f.dst = dst;
  wire::emit_ipv4_header(transport_tx_.data(), f);
  return send(wire::ByteSpan(transport_tx_.data(), total));
}

int Ipv4Layer::send(wire::ByteSpan packet) {
  if (packet.size() < wire::kIpv4HeaderMin) {
    ++stats_.drop_out_invalid;
    return -EINVAL;
  }
  if (packet.size() > link_.mtu() || packet.size() > wire::kIpv4MaxPacket) {
    ++stats_.drop_out_invalid;
    return -EMSGSIZE;
  }
  const int rc = link_.send(packet);
  if (rc < 0) {
    ++stats_.drop_link_error;
    if (config_.logger != nullptr) {
      config_.logger->report(LogKind::kLinkSend, LogLevel::kWarning, clock_.now(),
                             "link: a packet could not be sent: %s (counted in ip.drop_link_error)",
                             std::strerror(-rc));
    }
    return rc;
  }
  ++stats_.packets_out;
  stats_.bytes_out += packet.size();
  return rc;
}

// ---------------------------------------------------------------------------------------
// ICMP

void Ipv4Layer::icmp_input(const wire::Ipv4View& ip) {
  ++stats_.icmp_in;
  const auto icmp = wire::IcmpView::parse(ip.payload());
  if (!icmp) {
    ++stats_.icmp_bad;  // RFC 1122 3.2.2: bad checksum or too short -> silently discarded
    return;
  }
  switch (icmp->type()) {
    case wire::kIcmpEchoRequest:
      ++stats_.icmp_echo_in;
      echo_reply(ip, *icmp);
      return;
    case wire::kIcmpDestUnreachable:
    case wire::kIcmpSourceQuench:
    case wire::kIcmpRedirect:
    case wire::kIcmpTimeExceeded:
    case wire::kIcmpParameterProblem:
      icmp_error_received(ip, *icmp);
      return;
    default:
      // Echo replies (we send no requests), timestamps (RFC 1122 3.2.2.8: MAY), unknown
      // types (RFC 1122 3.2.2: MUST be silently discarded).
      ++stats_.icmp_other_in;
      return;
  }
}

void Ipv4Layer::echo_reply(const wire::Ipv4View& ip, const wire::IcmpView& icmp) {
  // RFC 1122 3.2.2.6: same identifier, sequence number and data; truncated to what the link
  // carries when the request (e.g. reassembled) is larger. Options such as Record Route are
  // not reflected (a SHOULD there): xtcp never emits IP options. TOS is copied from the
  // request, as Linux does (icmp_reply). DF is clear, as for Linux's ICMP socket, so a
  // smaller path MTU fragments rather than loses the reply.
  const std::size_t len = wire::emit_icmp_echo_reply(
      wire::MutableByteSpan(tx_.data() + wire::kIpv4HeaderMin, tx_.size() - wire::kIpv4HeaderMin),
      icmp);
  if (len == 0) {
    return;
  }
  wire::Ipv4Fields f;
  f.tos = ip.tos();
  f.total_length = static_cast<std::uint16_t>(wire::kIpv4HeaderMin + len);
  f.id = next_id();
  f.dont_fragment = false;
  f.ttl = config_.default_ttl;
  f.protocol = wire::kProtoIcmp;
  f.src = ip.dst();  // the address that was pinged
  f.dst = ip.src();
  wire::emit_ipv4_header(tx_.data(), f);
  if (send(wire::ByteSpan(tx_.data(), f.total_length)) >= 0) {
    ++stats_.icmp_echo_replies;
  }
}

void Ipv4Layer::icmp_error_received(const wire::Ipv4View& ip, const wire::IcmpView& icmp) {
  ++stats_.icmp_errors_in;
  const std::uint8_t type = icmp.type();
  // Source quench: RFC 6633 says hosts MUST ignore it. Redirect: we keep no routing table
  // (one link, one next hop), so there is nothing to redirect.
  if (type != wire::kIcmpDestUnreachable && type != wire::kIcmpTimeExceeded &&
      type != wire::kIcmpParameterProblem) {
    ++stats_.icmp_errors_ignored;
    return;
  }
  const auto quote = wire::parse_icmp_quote(icmp.payload());
  // Only errors about TCP segments we sent interest the upper layer; the quote must start
  // at the transport header for the ports and sequence number to mean anything.
  if (!quote || quote->protocol != wire::kProtoTcp || !is_local(quote->src) ||
      quote->fragment_offset != 0 || upper_ == nullptr) {
    ++stats_.icmp_errors_ignored;
    return;
  }
  IcmpErrorInfo info;
  info.type = type;
  info.code = icmp.code();
  info.quoted_src = quote->src;
  info.quoted_dst = quote->dst;
  info.quoted_protocol = quote->protocol;
  info.quoted_src_port = quote->src_port;
  info.quoted_dst_port = quote->dst_port;
  info.quoted_tcp_seq = quote->tcp_seq;
  if (type == wire::kIcmpDestUnreachable && info.code == wire::kUnreachFragNeeded) {
    info.next_hop_mtu = icmp.next_hop_mtu();  // RFC 1191 section 4
  }
  if (type == wire::kIcmpParameterProblem) {
    info.param_pointer = icmp.pointer();
  }
  info.reporter = ip.src();
  ++stats_.icmp_errors_delivered;
  upper_->icmp_error_input(info);
}

bool Ipv4Layer::take_icmp_token(TimeNs now) {
  if (token_cost_ns_ == 0) {
    return false;
  }
  const TimeNs elapsed = now - bucket_updated_;
  if (elapsed > 0) {
    bucket_credit_ns_ = elapsed >= bucket_capacity_ns_ - bucket_credit_ns_
                            ? bucket_capacity_ns_
                            : bucket_credit_ns_ + elapsed;
    bucket_updated_ = now;
  }
  if (bucket_credit_ns_ < token_cost_ns_) {
    return false;
  }
  bucket_credit_ns_ -= token_cost_ns_;
  return true;
}

bool Ipv4Layer::send_icmp_error(std::uint8_t type, std::uint8_t code, wire::ByteSpan original,
                                std::uint32_t original_src) {
  // RFC 1122 3.2.2 (and RFC 1812 4.3.2.7): never about an ICMP error, a datagram to a
  // broadcast/multicast address (input() accepts only local_addr), a non-initial fragment
  // (callers pass complete datagrams or the offset-0 fragment), or a datagram whose source
  // is not a single host.
  if (wire::is_martian_source(original_src) || is_local(original_src)) {
    return false;
  }
  if (original.size() < wire::kIpv4HeaderMin) {
    return false;
  }
  const std::size_t header_len = (wire::load_u8(original.data()) & 0xfu) * 4u;
  if (wire::load_u8(original.data() + 9) == wire::kProtoIcmp) {
    // An ICMP message too short to show its type is treated as an error: stay silent.
    if (original.size() <= header_len ||
        wire::icmp_is_error(wire::load_u8(original.data() + header_len))) {
      return false;
    }
  }
  if (!take_icmp_token(clock_.now())) {
    ++stats_.icmp_rate_limited;
    return false;
  }
  const std::size_t room = std::min(tx_.size(), wire::kIcmpErrorMaxLen) - wire::kIpv4HeaderMin;
  const std::size_t len = wire::emit_icmp_error(
      wire::MutableByteSpan(tx_.data() + wire::kIpv4HeaderMin, room), type, code, 0, original);
  if (len == 0) {
    return false;
  }
  wire::Ipv4Fields f;
  // RFC 1812 4.3.2.5: ICMP errors SHOULD carry precedence 6 (internetwork control); Linux
  // keeps the original's low TOS bits, we simply use CS6.
  f.tos = kTosInternetControl;
  f.total_length = static_cast<std::uint16_t>(wire::kIpv4HeaderMin + len);
  f.id = next_id();
  f.dont_fragment = false;
  f.ttl = config_.default_ttl;
  f.protocol = wire::kProtoIcmp;
  // From the address the original was sent to (input() accepted it as one of ours).
  const std::uint32_t original_dst = wire::load_be32(original.data() + 16);
  f.src = is_local(original_dst) ? original_dst : config_.local_addr;
  f.dst = original_src;
  wire::emit_ipv4_header(tx_.data(), f);
  if (send(wire::ByteSpan(tx_.data(), f.total_length)) < 0) {
    return false;
  }
  if (type == wire::kIcmpDestUnreachable) {
    ++stats_.icmp_unreach_sent;
  } else if (type == wire::kIcmpTimeExceeded) {
    ++stats_.icmp_time_exceeded_sent;
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Fragment reassembly (policy in the comment block at the top of this file)

void Ipv4Layer::fragment_input(const wire::Ipv4View& ip) {
  ++stats_.fragments_in;
  const wire::ByteSpan data = ip.payload();
  const std::uint32_t offset = ip.fragment_offset();
  const auto length = static_cast<std::uint32_t>(data.size());
  const std::uint32_t end = offset + length;
  const bool last = !ip.more_fragments();
  if (length == 0 || (!last && length % 8 != 0) ||
      end > wire::kIpv4MaxPacket - wire::kIpv4HeaderMin) {
    ++stats_.drop_fragment_bad;
    return;
  }

  std::size_t index = 0;
  while (index < reassembly_.size()) {
    const Reassembly& r = reassembly_[index];
    if (r.id == ip.id() && r.src == ip.src() && r.dst == ip.dst() && r.protocol == ip.protocol()) {
      break;
    }
    ++index;
  }
  if (index == reassembly_.size()) {
    const std::size_t charge = length + kFragmentOverhead;
    if (reassembly_.size() >= config_.reassembly_max_datagrams ||
        reassembly_bytes_ + charge > config_.reassembly_max_bytes) {
      ++stats_.drop_fragment_limit;
      return;
    }
    Reassembly& r = reassembly_.emplace_back();
    r.src = ip.src();
    r.dst = ip.dst();
    r.id = ip.id();
    r.protocol = ip.protocol();
    r.deadline = clock_.now() + config_.reassembly_timeout;
  }
  Reassembly& r = reassembly_[index];
  if (r.abandoned) {
    ++stats_.drop_fragment_abandoned;
    return;
  }

  // Consistency with the end of the datagram, once known.
  const std::uint32_t held_end =
      r.frags.empty() ? 0 : r.frags.back().offset + r.frags.back().length;
  if ((r.have_last && (end > r.total || (last && end != r.total))) ||
      (last && !r.have_last && held_end > end)) {
    ++stats_.drop_fragment_bad;
    abandon_reassembly(r);
    return;
  }

  // First fragment that starts at or after this one; the one before it may reach into us.
  auto pos = std::lower_bound(r.frags.begin(), r.frags.end(), offset,
                              [](const Fragment& f, std::uint32_t off) { return f.offset < off; });
  if (pos != r.frags.end() && pos->offset == offset && pos->length == length &&
      std::memcmp(pos->data.data(), data.data(), length) == 0) {
    ++stats_.drop_fragment_duplicate;
    if (last && !r.have_last) {
      r.have_last = true;  // a duplicate body, but now we know it is the end
      r.total = end;
      if (r.received == r.total) {
        complete_reassembly(index);
      }
    }
    return;
  }
  const bool overlaps_next = pos != r.frags.end() && pos->offset < end;
  const bool overlaps_prev =
      pos != r.frags.begin() && std::prev(pos)->offset + std::prev(pos)->length > offset;
  if (overlaps_next || overlaps_prev) {
    ++stats_.drop_fragment_overlap;
    abandon_reassembly(r);
    return;
  }

  const std::size_t charge = length + kFragmentOverhead;
  if (reassembly_bytes_ + charge > config_.reassembly_max_bytes) {
    ++stats_.drop_fragment_limit;
    if (r.frags.empty()) {
      remove_reassembly(index);
    }
    return;
  }
  Fragment frag;
  frag.offset = offset;
  frag.length = length;
  frag.data.assign(data.begin(), data.end());
  r.frags.insert(pos, std::move(frag));
  r.received += length;
  r.charged += charge;
  reassembly_bytes_ += charge;
  if (offset == 0) {
    const wire::ByteSpan h = ip.header();
    std::memcpy(r.first_header.data(), h.data(), h.size());
    r.first_header_len = static_cast<std::uint8_t>(h.size());
  }
  if (last) {
    r.have_last = true;
    r.total = end;
  }
  // Fragments never overlap and all lie below total, so full byte count means no holes.
  if (r.have_last && r.received == r.total) {
    complete_reassembly(index);
  }
}

void Ipv4Layer::complete_reassembly(std::size_t index) {
  Reassembly& r = reassembly_[index];
  const std::size_t header_len = r.first_header_len;
  if (header_len == 0 || header_len + r.total > wire::kIpv4MaxPacket) {
    // The first header's options pushed the datagram past 65535 bytes.
    ++stats_.drop_fragment_bad;
    remove_reassembly(index);
    return;
  }
  std::byte* out = reassembly_scratch_.data();
  std::memcpy(out, r.first_header.data(), header_len);
  for (const Fragment& f : r.frags) {
    std::memcpy(out + header_len + f.offset, f.data.data(), f.length);
  }
  const auto total_length = static_cast<std::uint16_t>(header_len + r.total);
  // Clear MF and the offset, keep DF and the reserved bit as the sender set them.
  wire::store_be16(out + 2, total_length);
  wire::store_be16(out + 6, static_cast<std::uint16_t>(wire::load_be16(out + 6) & 0xc000));
  wire::store_be16(out + 10, 0);
  wire::store_be16(out + 10, wire::internet_checksum(wire::ByteSpan(out, header_len)));
  remove_reassembly(index);
  ++stats_.reassembled;
  const auto ip = wire::Ipv4View::parse(wire::ByteSpan(out, total_length));
  if (!ip) {
    ++stats_.drop_fragment_bad;  // cannot happen: the header was valid when it arrived
    return;
  }
  deliver(*ip);
}

void Ipv4Layer::abandon_reassembly(Reassembly& r) {
  reassembly_bytes_ -= r.charged;
  r.charged = 0;
  r.received = 0;
  r.frags.clear();
  r.frags.shrink_to_fit();
  r.abandoned = true;
}

void Ipv4Layer::remove_reassembly(std::size_t index) {
  reassembly_bytes_ -= reassembly_[index].charged;
  if (index + 1 != reassembly_.size()) {
    reassembly_[index] = std::move(reassembly_.back());
  }
  reassembly_.pop_back();
}

void Ipv4Layer::send_reassembly_time_exceeded(const Reassembly& r) {
  // Quote the offset-0 fragment as it arrived: its header, then as much data as fits.
  if (r.first_header_len == 0 || r.frags.empty() || r.frags.front().offset != 0) {
    return;
  }
  const Fragment& first = r.frags.front();
  const std::size_t data_len =
      std::min<std::size_t>(first.length, wire::kIcmpErrorQuoteMax - r.first_header_len);
  std::byte* out = reassembly_scratch_.data();
  std::memcpy(out, r.first_header.data(), r.first_header_len);
  std::memcpy(out + r.first_header_len, first.data.data(), data_len);
  send_icmp_error(wire::kIcmpTimeExceeded, wire::kTimeExceededReassembly,
                  wire::ByteSpan(out, r.first_header_len + data_len), r.src);
}

void Ipv4Layer::poll_timers(TimeNs now) {
  std::size_t i = 0;
  while (i < reassembly_.size()) {
    Reassembly& r = reassembly_[i];
    if (r.deadline > now) {
      ++i;
      continue;
    }
    if (!r.abandoned) {
      // RFC 1122 3.3.2: discard, and send time exceeded if fragment zero was received.
      ++stats_.drop_fragment_timeout;
      send_reassembly_time_exceeded(r);
    }
    remove_reassembly(i);  // moves the last entry into i: look at i again
  }
}

TimeNs Ipv4Layer::next_deadline() const {
  TimeNs next = kNever;
  for (const Reassembly& r : reassembly_) {
    next = std::min(next, r.deadline);
  }
  return next;
}

}  // namespace xtcp
