// The replay itself: walks the capture in order and sends every client packet to the
// target, rewritten into the live connection's sequence space (rewrite.h), paced by the
// capture's timing or as fast as the server answers; collects what the live server sends on
// each flow. The comparison with the capture is report.h's.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "stack/netif/pcap_writer.h"
#include "tools/replay/capture.h"
#include "tools/replay/rewrite.h"
#include "tools/replay/target.h"

namespace xtcp::replay {

enum class Pace {
  kCapture,  // each client packet leaves as long after the first as it did in the capture
  kFast,     // as soon as the server has sent (on that flow) what it had sent by then in the
             // capture, or answer_wait has passed
};

struct ReplayOptions {
  Pace pace = Pace::kFast;
  TimeNs answer_wait = seconds(1);  // kFast: the longest wait for the server's answer
  // After the last client packet: the longest wait for every flow to reach its captured end,
  // then `settle` more to see anything the server sends beyond it.
  TimeNs linger = seconds(5);
  TimeNs settle = ms(200);
  AddressMap addresses;
};

struct FlowOutcome {
  LiveFlow live;
  std::uint64_t client_packets_sent = 0;
  std::uint64_t send_errors = 0;
};

struct ReplayOutcome {
  std::vector<FlowOutcome> flows;  // one per Capture::flows entry
  std::uint64_t client_packets_sent = 0;
  std::uint64_t server_packets = 0;
  std::uint64_t stray_packets = 0;  // from the server to no flow replay knows
  int error = 0;                    // a target failure (negative errno), with error_text
  std::string error_text;
};

// writer (may be null) receives every packet sent and received, at the capture's time base.
ReplayOutcome replay(const Capture& capture, Target& target, ReplayOptions options, PcapWriter* writer);

}  // namespace xtcp::replay
