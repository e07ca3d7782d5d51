// Congestion control behind a small static interface: the rest of the engine calls it at
// the moments the RFCs name and never touches cwnd or ssthresh itself, so another
// algorithm can replace NewReno without touching loss recovery. NewReno: RFC 5681 slow
// start and congestion avoidance with fast recovery, RFC 6582's partial and full ACKs, the
// RFC 6928 initial window, RFC 7661's rule that only a window in use grows.
#pragma once

#include <algorithm>
#include <cstdint>

#include "stack/tcp/tcb.h"

namespace xtcp {

struct NewReno {
  // The handshake is complete (RFC 6928: initial_segments segments; RFC 5681: ssthresh
  // arbitrarily high).
  static void on_established(Tcb& tcb, std::uint32_t initial_segments) {
    tcb.cwnd = initial_segments * tcb.snd_mss;
    tcb.ssthresh = UINT32_MAX / 2;
  }

  // New data acknowledged outside recovery; flight_before: bytes in flight before this ACK.
  static void on_ack(Tcb& tcb, std::uint32_t acked, std::uint64_t flight_before) {
    const std::uint32_t mss = tcb.snd_mss;
    // RFC 7661 (Linux tcp_is_cwnd_limited): grow only when the flight was using the window; a
    // sender limited by its application or the peer's window would otherwise inflate cwnd
    // without bound until the 32-bit value wraps and collapses it.
    const bool cwnd_limited = tcb.cwnd < tcb.ssthresh ? 2 * flight_before >= tcb.cwnd
                                                      : flight_before + mss >= tcb.cwnd;
    if (!cwnd_limited) {
      return;
    }
    if (tcb.cwnd < tcb.ssthresh) {
      tcb.cwnd += std::min(acked, mss);  // slow start, RFC 5681 3.1 (with RFC 3465 L = 1)
    } else {
      tcb.cwnd += std::max<std::uint32_t>(1, mss * mss / std::max<std::uint32_t>(tcb.cwnd, 1));
    }
  }

  // Fast retransmit: entering recovery (RFC 5681 3.2 steps 2-3).
  static void on_enter_recovery(Tcb& tcb, std::uint32_t flight) {
    tcb.ssthresh = std::max(flight / 2, 2u * tcb.snd_mss);
    tcb.cwnd = tcb.ssthresh + 3 * tcb.snd_mss;
  }

  // A duplicate ACK during recovery: a segment left the network (RFC 5681 3.2 step 4).
  static void on_dupack_in_recovery(Tcb& tcb) { tcb.cwnd += tcb.snd_mss; }

  // A partial ACK during recovery (RFC 6582 3.2 step 5): deflate by what it acknowledged,
  // and add back one MSS if that was at least one.
  static void on_partial_ack(Tcb& tcb, std::uint32_t acked) {
    const std::uint32_t mss = tcb.snd_mss;
    tcb.cwnd = tcb.cwnd > acked ? tcb.cwnd - acked : mss;
    if (acked >= mss) {
      tcb.cwnd += mss;
    }
  }

  // A full ACK ends recovery (RFC 6582 3.2 step 3): deflate the window.
  static void on_exit_recovery(Tcb& tcb, std::uint32_t flight) {
    const std::uint32_t mss = tcb.snd_mss;
    tcb.cwnd = std::min(tcb.ssthresh, std::max(flight, mss) + mss);
  }

  // The retransmission timer expired (RFC 5681 3.1 equation 4, and the loss window).
  static void on_rto(Tcb& tcb, std::uint32_t flight) {
    tcb.ssthresh = std::max(flight / 2, 2u * tcb.snd_mss);
    tcb.cwnd = tcb.snd_mss;
  }

  // A tail loss probe that resent data was answered: without D-SACK the original's fate is
  // unknown, so reduce as fast recovery would (RFC 8985 7.4.2; Linux does so).
  static void on_probe_repaired(Tcb& tcb, std::uint32_t flight) {
    tcb.ssthresh = std::max(std::max(flight, tcb.cwnd) / 2, 2u * tcb.snd_mss);
    tcb.cwnd = tcb.ssthresh;
  }
};

using CongestionControl = NewReno;

}  // namespace xtcp
