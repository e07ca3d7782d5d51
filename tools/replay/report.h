// The comparison of a replay with its capture, per flow: the live server's byte stream
// against the captured server's (same bytes, same order) and how each flow ended (FIN, RST,
// neither), told in plain words or as JSON.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tools/replay/capture.h"
#include "tools/replay/replayer.h"

namespace xtcp::replay {

struct Difference {
  enum class Kind { kBytes, kEnd };
  Kind kind = Kind::kBytes;
  std::uint64_t offset = 0;  // kBytes: the first byte that differs (or where one stream ends)
  std::uint64_t expected_length = 0;
  std::uint64_t got_length = 0;
  std::vector<std::byte> expected;  // kBytes: up to 64 bytes from offset
  std::vector<std::byte> got;
  FlowEnd expected_end;
  FlowEnd got_end;
};

struct FlowReport {
  std::string name;  // "198.18.0.1:40000 -> 198.18.0.2:7" (the captured addresses)
  std::uint64_t expected_bytes = 0;
  std::uint64_t got_bytes = 0;
  FlowEnd expected_end;
  FlowEnd got_end;
  std::uint64_t client_packets = 0;
  std::uint64_t server_packets = 0;
  bool capture_gap = false;  // the capture misses some of the server's bytes (compared up to the hole)
  std::vector<Difference> differences;
};

struct Report {
  std::string capture_path;
  std::string target;  // "in-process echo", "tun xtcp0", ...
  std::vector<FlowReport> flows;
  std::uint64_t client_packets_sent = 0;
  std::uint64_t server_packets = 0;
  std::uint64_t stray_packets = 0;
  std::size_t ignored_packets = 0;
  std::string server_counters;  // the in-process server's drop counters ("name value" lines)
  std::string error;            // a failure of the run itself
  std::size_t differing_flows() const;
  bool same() const { return error.empty() && differing_flows() == 0; }
};

Report compare(const Capture& capture, const ReplayOutcome& outcome);

// Plain words, one block per flow (differences in full, same flows in one line).
std::string format_text(const Report& r);
// {"capture": ..., "flows": N, "differences": [...], "result": "same"|"different", ...}
std::string format_json(const Report& r);

}  // namespace xtcp::replay
