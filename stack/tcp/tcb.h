// The transmission control block: what one connection keeps between segments. Only state
// is here, no bytes (those live in RxStore/TxStore), and rarely needed parts (out-of-order
// queue, SACK scoreboard) live in a side table so an idle connection stays small.
#pragma once

#include <cstdint>

#include "stack/buffer/stores.h"
#include "stack/core/flow_table.h"
#include "stack/wire/seq.h"

namespace xtcp {

using wire::SeqNum;

// The eleven RFC 9293 states; the API's own lifecycle lives above the engine.
enum class TcpState : std::uint8_t {
  kClosed,
  kListen,
  kSynSent,
  kSynReceived,
  kEstablished,
  kFinWait1,
  kFinWait2,
  kCloseWait,
  kClosing,
  kLastAck,
  kTimeWait,
};
inline constexpr int kTcpStateCount = 11;
const char* to_string(TcpState s);

// Milliseconds since the layer started, wrapping every 49 days. Deadlines are always within
// days of now, so they compare by signed difference like sequence numbers. 0 means unset.
using Tick = std::uint32_t;
inline bool tick_before_eq(Tick a, Tick b) { return static_cast<std::int32_t>(a - b) <= 0; }

namespace tcb_flag {
inline constexpr std::uint32_t kSackOk = 1u << 0;        // both sides offered SACK
inline constexpr std::uint32_t kTimestampsOk = 1u << 1;  // both sides sent timestamps
inline constexpr std::uint32_t kWindowScaleOk = 1u << 2;
inline constexpr std::uint32_t kNagle = 1u << 3;
inline constexpr std::uint32_t kDelayedAck = 1u << 4;
inline constexpr std::uint32_t kFinQueued = 1u << 5;     // app closed its sending side
inline constexpr std::uint32_t kAckNow = 1u << 6;        // an ACK must go out this round
inline constexpr std::uint32_t kInRecovery = 1u << 7;    // NewReno fast recovery
inline constexpr std::uint32_t kPersist = 1u << 8;       // rto timer is the persist timer
inline constexpr std::uint32_t kRttTiming = 1u << 9;     // rtt_seq is being timed (no TS)
inline constexpr std::uint32_t kAppOwned = 1u << 10;     // handed to the application
inline constexpr std::uint32_t kAppClosed = 1u << 11;    // application released its handle
inline constexpr std::uint32_t kReadableQueued = 1u << 12;
inline constexpr std::uint32_t kWritableWanted = 1u << 13;
inline constexpr std::uint32_t kHasExtra = 1u << 14;     // entry in the side table
inline constexpr std::uint32_t kKeepalive = 1u << 15;
inline constexpr std::uint32_t kPeerFin = 1u << 16;      // FIN received (rcv_nxt counts it)
inline constexpr std::uint32_t kPassive = 1u << 17;      // came from a listener
inline constexpr std::uint32_t kAccepted = 1u << 18;     // taken by accept()
inline constexpr std::uint32_t kEventDone = 1u << 19;    // kClosed event already queued
inline constexpr std::uint32_t kSynFromCookie = 1u << 20;
inline constexpr std::uint32_t kInAcceptQueue = 1u << 21;
inline constexpr std::uint32_t kAppAck = 1u << 22;       // ACKs follow the application (XTCP)
inline constexpr std::uint32_t kTlpArmed = 1u << 23;     // rto_at is a tail loss probe timeout
inline constexpr std::uint32_t kTlpOut = 1u << 24;       // a probe went out, not yet answered
inline constexpr std::uint32_t kTlpResent = 1u << 25;    // ... and it resent the last segment
inline constexpr std::uint32_t kUndoArmed = 1u << 26;    // a reduction may prove spurious (D-SACK)
}  // namespace tcb_flag

struct Tcb {
  FlowKey key;                 // local/remote address and port
  TcpState state = TcpState::kClosed;
  std::uint8_t snd_wscale = 0;  // shift applied to windows the peer sends
  std::uint8_t rcv_wscale = 0;  // shift the peer applies to windows we send
  std::uint8_t backoff = 0;     // consecutive RTO expirations (RFC 6298 5.5)
  std::uint32_t flags = 0;
  ConnId self = kNoConn;        // the connection this block belongs to (timers find it)
  std::uint16_t snd_mss = 536;  // payload bytes per segment, options excluded
  std::uint16_t listen_port = 0;
  std::uint8_t dupacks = 0;
  std::uint8_t probes = 0;      // keepalive or zero-window probes sent without answer
  std::uint16_t unacked_segments = 0;  // received but not yet ACKed (delayed ACK)
  std::uint16_t challenge_acks = 0;    // sent in the current one-second window
  std::int16_t error = 0;              // errno reported when the connection failed

  // Send sequence space, RFC 9293 3.3.1. snd_max is the highest sequence sent so far
  // (snd_nxt falls back to snd_una on RTO); snd_end is one past the last queued byte.
  SeqNum iss, snd_una, snd_nxt, snd_max, snd_end, snd_wl1, snd_wl2, recover, rtt_seq;
  std::uint32_t snd_wnd = 0;
  std::uint32_t max_snd_wnd = 0;
  std::uint32_t cwnd = 0;
  std::uint32_t ssthresh = 0;
  // Undo of a spurious reduction (RFC 2883 section 4, RFC 3708): the window before the
  // episode's reduction, and the segments resent in it that no D-SACK has shown to be
  // duplicates yet. All resent segments reported duplicate: nothing was lost.
  std::uint32_t prior_cwnd = 0;
  std::uint32_t prior_ssthresh = 0;
  SeqNum undo_marker;    // SND.UNA when the episode began
  SeqNum undo_high;      // SND.MAX when it began
  std::uint16_t undo_retrans = 0;
  std::uint32_t undo_tsval = 0;  // TSval of the episode's first resend (Eifel, RFC 3522)
  Tick undo_until = 0;           // once all is acknowledged: how long a D-SACK may still come

  // Receive sequence space. rcv_adv is the right edge we have advertised; it never moves left.
  SeqNum irs, rcv_nxt, rcv_adv, last_ack_sent;
  // With application-controlled ACKs (kAppAck): the highest sequence number ACKed so far;
  // [rcv_ack, rcv_nxt) was received and stored but the application has not released it.
  SeqNum rcv_ack;

  // RFC 7323: ts_recent is the peer's latest valid TSval; ts_offset randomizes our clock.
  std::uint32_t ts_recent = 0;
  std::uint32_t ts_offset = 0;
  Tick ts_recent_tick = 0;

  // RFC 6298 estimator, microseconds.
  std::uint32_t srtt_us = 0;
  std::uint32_t rttvar_us = 0;
  std::uint32_t rto_us = 0;
  Tick rtt_start = 0;

  Tick rto_at = 0;       // retransmission or persist
  Tick delack_at = 0;
  Tick keepalive_at = 0;
  Tick linger_at = 0;    // FIN-WAIT-2 orphan timeout
  Tick challenge_window = 0;
  Tick last_activity = 0;

  // Accept-queue link (next connection waiting on the same listener).
  ConnId accept_next = kNoConn;

  bool synchronized() const { return state >= TcpState::kSynReceived; }
  // Sequence number of the oldest unacknowledged data byte (what TxStore offset 0 is).
  // "Our SYN is still unacknowledged" is snd_una == iss: an ordering test such as
  // seq_max(snd_una, iss + 1) breaks once snd_una is 2^31 past the ISS (2 GiB sent).
  SeqNum oldest_data() const { return snd_una == iss ? iss + 1 : snd_una; }
  bool has(std::uint32_t f) const { return (flags & f) != 0; }
  void set(std::uint32_t f) { flags |= f; }
  void clear(std::uint32_t f) { flags &= ~f; }
};

// What an idle ESTABLISHED connection keeps between events, 64 bytes: nothing in flight,
// nothing queued, nothing held by the application, no timer, no loss or reordering state.
// Everything else of its Tcb then has a value that follows from these fields (see
// TcpLayer::unpack), so while a connection is quiet only this record exists; the full Tcb is
// made again from it when the next segment, call or timer needs it.
struct TcbHot {
  FlowKey key;                       // 12; the flow index reads keys from here
  TcpState state = TcpState::kListen;  // kListen marks a free slot
  std::uint8_t wscales = 0;          // snd_wscale << 4 | rcv_wscale
  std::uint16_t snd_mss = 0;
  std::uint32_t flags = 0;
  std::uint16_t snd_wnd_field = 0;   // the peer's window: snd_wnd >> snd_wscale
  std::uint16_t max_snd_wnd_field = 0;
  std::uint16_t ts_recent_age = 0;   // ts_recent_tick >> 16: only its 24-day age matters
  std::uint16_t reserved = 0;
  SeqNum snd_una;                    // = snd_nxt = snd_max = snd_end (nothing in flight)
  SeqNum rcv_nxt;                    // = ack point = last ACK sent (nothing owed)
  SeqNum rcv_adv;
  std::uint32_t ts_recent = 0;
  std::uint32_t srtt_us = 0;
  std::uint32_t rttvar_us = 0;
  std::uint32_t cwnd = 0;
  std::uint32_t ssthresh = 0;
  std::uint32_t cold = 0;            // cold slot + 1 while the full Tcb exists, else 0
};
static_assert(sizeof(TcbHot) == 64, "an idle connection's record is meant to stay at 64 bytes");

}  // namespace xtcp
