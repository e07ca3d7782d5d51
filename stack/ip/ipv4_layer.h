// The IPv4 layer of a host: validates every received packet, reassembles fragments, answers
// pings, sends rate-limited ICMP errors, and hands TCP segments and ICMP errors about our TCP
// up. Link -> input() -> [reassembly] -> ICMP here / TCP to IpUpperLayer; TCP -> send() -> Link.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "stack/core/clock.h"
#include "stack/core/log.h"
#include "stack/netif/link.h"
#include "stack/wire/bytes.h"
#include "stack/wire/ipv4.h"

namespace xtcp {

namespace wire {
class Ipv4View;
class IcmpView;
}  // namespace wire

// An ICMP error (destination unreachable, time exceeded, parameter problem) whose quoted
// datagram is a TCP segment we sent. The TCP layer must still check that quoted_tcp_seq lies
// in SND.UNA..SND.NXT before acting (RFC 5927 section 4.1); this layer only checks that the
// quote claims to come from our address and carries TCP.
struct IcmpErrorInfo {
  std::uint8_t type = 0;
  std::uint8_t code = 0;
  std::uint32_t quoted_src = 0;  // our address
  std::uint32_t quoted_dst = 0;  // the peer
  std::uint8_t quoted_protocol = 0;
  std::uint16_t quoted_src_port = 0;  // our port
  std::uint16_t quoted_dst_port = 0;  // the peer's port
  std::uint32_t quoted_tcp_seq = 0;
  std::uint16_t next_hop_mtu = 0;  // destination unreachable / fragmentation needed only
  std::uint8_t param_pointer = 0;  // parameter problem only
  std::uint32_t reporter = 0;      // source of the ICMP message (a router or the peer)
};

class IpUpperLayer {  // implemented by the TCP layer
 public:
  virtual ~IpUpperLayer() = default;
  // segment = IP payload (TCP header + data), already length-trimmed; src/dst host order.
  // The span is valid only during the call.
  virtual void tcp_input(std::uint32_t src, std::uint32_t dst, std::uint8_t tos,
                         wire::ByteSpan segment) = 0;
  virtual void icmp_error_input(const IcmpErrorInfo& info) = 0;
};

struct IpConfig {
  std::uint32_t local_addr = 0;  // host order; the first (usually only) address we own
  // The stack owns local_addr .. local_addr + local_addr_count - 1: a load generator's
  // clients come from a whole range of addresses on one stack.
  std::uint32_t local_addr_count = 1;
  std::uint8_t default_ttl = 64;  // RFC 1700 / RFC 1122 3.2.1.7 recommended value
  std::uint16_t first_id = 1;     // first value of next_id()

  // Reassembly limits (see the comment block in ipv4_layer.cc for the reasoning).
  std::size_t reassembly_max_datagrams = 64;
  std::size_t reassembly_max_bytes = 256 * 1024;  // payload + per-fragment overhead
  TimeNs reassembly_timeout = seconds(30);

  // Token bucket for ICMP errors we originate (RFC 1812 4.3.2.8, RFC 1122 3.2.2).
  // 0 tokens/s means: never send ICMP errors.
  std::uint32_t icmp_rate_per_sec = 100;
  std::uint32_t icmp_burst = 50;

  // Where device errors are reported; nullptr: nowhere.
  Logger* logger = nullptr;
};

// X-macro keeps the counter fields and their printed names in one list.
#define XTCP_IP_STATS(X)                                                                  \
  X(packets_in)             /* every packet handed to input() */                         \
  X(bytes_in)                                                                             \
  X(packets_out)            /* packets the link accepted */                              \
  X(bytes_out)                                                                            \
  X(drop_truncated)                                                                       \
  X(drop_bad_version)                                                                     \
  X(drop_bad_header_len)                                                                  \
  X(drop_bad_total_len)                                                                   \
  X(drop_bad_checksum)                                                                    \
  X(drop_bad_options)                                                                     \
  X(drop_not_for_us)        /* destination is not one of our addresses */                \
  X(drop_bad_source)        /* martian: 0/8, loopback, multicast, 240/4, ourselves */     \
  X(drop_unknown_protocol)  /* answered with protocol unreachable when allowed */         \
  X(drop_udp)               /* no UDP service: answered with port unreachable */          \
  X(drop_no_upper)          /* TCP arrived before set_upper() */                          \
  X(drop_link_error)        /* link send() failed */                                      \
  X(drop_out_invalid)       /* send() given < 20 bytes or more than the link MTU */       \
  X(fragments_in)                                                                         \
  X(reassembled)                                                                          \
  X(drop_fragment_timeout)  /* datagrams abandoned incomplete */                          \
  X(drop_fragment_overlap)  /* datagrams abandoned because fragments overlapped */        \
  X(drop_fragment_abandoned) /* fragments of a datagram already abandoned for overlap */  \
  X(drop_fragment_duplicate) /* exact duplicates, ignored (RFC 8200 4.5 allows this) */   \
  X(drop_fragment_limit)    /* fragments refused: datagram or byte limit reached */       \
  X(drop_fragment_bad)      /* empty, misaligned, beyond 65535, inconsistent end */       \
  X(icmp_in)                                                                              \
  X(icmp_bad)               /* short or bad checksum */                                   \
  X(icmp_echo_in)                                                                         \
  X(icmp_echo_replies)                                                                    \
  X(icmp_errors_in)                                                                       \
  X(icmp_errors_delivered)  /* passed to the upper layer */                               \
  X(icmp_errors_ignored)    /* not about a TCP segment from us, or unusable quote */      \
  X(icmp_other_in)          /* echo replies, timestamps, unknown types: ignored */        \
  X(icmp_unreach_sent)                                                                    \
  X(icmp_time_exceeded_sent)                                                              \
  X(icmp_rate_limited)

struct IpStats {
#define XTCP_IP_STAT_FIELD(name) std::uint64_t name = 0;
  XTCP_IP_STATS(XTCP_IP_STAT_FIELD)
#undef XTCP_IP_STAT_FIELD

  // Calls f("name", value) for every counter, in declaration order.
  template <class F>
  void for_each(F f) const {
#define XTCP_IP_STAT_VISIT(name) f(#name, name);
    XTCP_IP_STATS(XTCP_IP_STAT_VISIT)
#undef XTCP_IP_STAT_VISIT
  }
};

class Ipv4Layer {
 public:
  Ipv4Layer(const IpConfig& config, Link& link, const Clock& clock);
  ~Ipv4Layer();
  Ipv4Layer(const Ipv4Layer&) = delete;
  Ipv4Layer& operator=(const Ipv4Layer&) = delete;

  void set_upper(IpUpperLayer* upper) { upper_ = upper; }

  // Full validation, then ICMP/TCP dispatch; everything bad is dropped and counted.
  // The packet is not retained after the call (fragments are copied). Not re-entrant: the
  // upper layer may call send() from tcp_input(), but not input().
  void input(wire::ByteSpan packet);

  // A complete IPv4 packet built by the caller. Counts it and passes it to the link.
  // Returns the link's result, or -EMSGSIZE / -EINVAL (counted in drop_out_invalid)
  // without calling the link.
  int send(wire::ByteSpan packet);

  // Datagrams of the upper layer: it writes its header and payload into transport_buffer()
  // (room for the largest datagram after a 20-byte IPv4 header), then send_transport()
  // puts the IPv4 header in front (our address, TTL from IpConfig, a fresh ID, DF set:
  // xtcp never fragments what it sends, RFC 1191) and sends it like send().
  wire::MutableByteSpan transport_buffer() {
    return wire::MutableByteSpan(transport_tx_.data() + wire::kIpv4HeaderMin,
                                 transport_tx_.size() - wire::kIpv4HeaderMin);
  }
  // src: one of our addresses (is_local).
  int send_transport(std::uint32_t src, std::uint32_t dst, std::uint8_t protocol, std::size_t len,
                     std::uint8_t tos = 0);

  // IP identification for outgoing packets. xtcp sends only atomic datagrams (DF set, never
  // fragmented), for which RFC 6864 section 4.1 gives the ID no meaning; a counter suffices.
  std::uint16_t next_id() { return next_id_++; }

  // Expires fragment reassembly (RFC 1122 3.3.2). Cheap when nothing is pending.
  void poll_timers(TimeNs now);
  // Earliest reassembly deadline, or kNever.
  TimeNs next_deadline() const;

  const IpStats& stats() const { return stats_; }
  std::uint32_t local_addr() const { return config_.local_addr; }
  bool is_local(std::uint32_t addr) const { return addr - config_.local_addr < config_.local_addr_count; }
  const IpConfig& config() const { return config_; }
  // Datagrams currently being reassembled and the bytes charged for them.
  std::size_t reassembly_datagrams() const { return reassembly_.size(); }
  std::size_t reassembly_bytes() const { return reassembly_bytes_; }

 private:
  // One received fragment's payload, kept until its datagram completes or is dropped.
  struct Fragment {
    std::uint32_t offset = 0;  // bytes
    std::uint32_t length = 0;
    std::vector<std::byte> data;
  };
  // A datagram being reassembled, keyed by (src, dst, protocol, id) as RFC 791 3.2 says.
  struct Reassembly {
    std::uint32_t src = 0;
    std::uint32_t dst = 0;
    std::uint16_t id = 0;
    std::uint8_t protocol = 0;
    bool abandoned = false;  // overlap seen: later fragments are dropped until the deadline
    bool have_last = false;  // the MF=0 fragment arrived, so total is known
    std::uint32_t total = 0;     // payload length, valid when have_last
    std::uint32_t received = 0;  // payload bytes held (fragments never overlap)
    std::size_t charged = 0;     // counted against reassembly_max_bytes
    TimeNs deadline = 0;
    std::uint8_t first_header_len = 0;  // 0 until the offset-0 fragment arrives
    std::array<std::byte, 60> first_header{};
    std::vector<Fragment> frags;  // sorted by offset
  };

  void deliver(const wire::Ipv4View& ip);
  void fragment_input(const wire::Ipv4View& ip);
  void icmp_input(const wire::Ipv4View& ip);
  void icmp_error_received(const wire::Ipv4View& ip, const wire::IcmpView& icmp);
  void echo_reply(const wire::Ipv4View& ip, const wire::IcmpView& icmp);
  // Sends an ICMP error about `original` (a complete datagram from its IP header on, or the
  // first fragment for reassembly timeouts), applying the RFC 1122 3.2.2 restrictions and
  // the rate limit. Returns true if it went to the link.
  bool send_icmp_error(std::uint8_t type, std::uint8_t code, wire::ByteSpan original,
                       std::uint32_t original_src);
  bool take_icmp_token(TimeNs now);
  void complete_reassembly(std::size_t index);
  void abandon_reassembly(Reassembly& r);
  void remove_reassembly(std::size_t index);
  void send_reassembly_time_exceeded(const Reassembly& r);

  IpConfig config_;
  Link& link_;
  const Clock& clock_;
  IpUpperLayer* upper_ = nullptr;
  IpStats stats_;
  std::uint16_t next_id_;

  // ICMP error token bucket, kept as time credit in ns: one token costs token_cost_ns_.
  TimeNs token_cost_ns_ = 0;
  TimeNs bucket_capacity_ns_ = 0;
  TimeNs bucket_credit_ns_ = 0;
  TimeNs bucket_updated_ = 0;

  // Output buffer for ICMP messages we build (link MTU, at most 65535); allocated once.
  std::vector<std::byte> tx_;
  // Output buffer of the upper layer's datagrams (65535 bytes); allocated once.
  std::vector<std::byte> transport_tx_;
  // Reassembled datagrams are built here (65535 bytes); allocated once.
  std::vector<std::byte> reassembly_scratch_;
  std::vector<Reassembly> reassembly_;
  std::size_t reassembly_bytes_ = 0;
};

}  // namespace xtcp
