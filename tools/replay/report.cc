#include "tools/replay/report.h"

#include "tools/cli/cli.h"

#include <algorithm>
#include <cstdio>

namespace xtcp::replay {

using cli::json_string;

namespace {

constexpr std::size_t kShown = 64;

std::vector<std::byte> window_of(const std::vector<std::byte>& b, std::uint64_t from) {
  if (from >= b.size()) {
    return {};
  }
  const auto end = std::min<std::uint64_t>(b.size(), from + kShown);
  return {b.begin() + static_cast<std::ptrdiff_t>(from), b.begin() + static_cast<std::ptrdiff_t>(end)};
}

std::string shown(const std::vector<std::byte>& b) {
  if (b.empty()) {
    return "(nothing)";
  }
  return std::string("\"") + escape_bytes(b, kShown) + std::string("\" [") + hex_bytes(b, kShown) + "]";
}

std::string end_key(const FlowEnd& e) {
  if (e.fin && e.rst) {
    return "fin+rst";
  }
  return e.fin ? "fin" : e.rst ? "rst" : "open";
}

}  // namespace

std::size_t Report::differing_flows() const {
  return static_cast<std::size_t>(
      std::count_if(flows.begin(), flows.end(), [](const FlowReport& f) { return !f.differences.empty(); }));
}

Report compare(const Capture& capture, const ReplayOutcome& outcome) {
  Report r;
  r.client_packets_sent = outcome.client_packets_sent;
  r.server_packets = outcome.server_packets;
  r.stray_packets = outcome.stray_packets;
  r.ignored_packets = capture.ignored_packets;
  r.error = outcome.error_text;
  for (std::size_t i = 0; i < capture.flows.size(); ++i) {
    const Flow& flow = capture.flows[i];
    const FlowOutcome& fo = outcome.flows[i];
    FlowReport fr;
    fr.name = format_endpoint(flow.client) + std::string(" -> ") + format_endpoint(flow.server);
    const std::vector<std::byte>& want = flow.server_bytes;
    const std::vector<std::byte>& got = fo.live.stream.bytes();
    fr.expected_bytes = want.size();
    fr.got_bytes = got.size();
    fr.expected_end = flow.end;
    fr.got_end = fo.live.end;
    fr.client_packets = fo.client_packets_sent;
    fr.server_packets = fo.live.packets;
    fr.capture_gap = flow.server_bytes_gap;
    const std::size_t common = std::min(want.size(), got.size());
    std::size_t at = 0;
    while (at < common && want[at] == got[at]) {
      ++at;
    }
    if (at < common || want.size() != got.size()) {
      Difference d;
      d.kind = Difference::Kind::kBytes;
      d.offset = at;
      d.expected_length = want.size();
      d.got_length = got.size();
      d.expected = window_of(want, at);
      d.got = window_of(got, at);
      fr.differences.push_back(std::move(d));
    }
    if (!(flow.end == fo.live.end)) {
      Difference d;
      d.kind = Difference::Kind::kEnd;
      d.expected_end = flow.end;
      d.got_end = fo.live.end;
      fr.differences.push_back(std::move(d));
    }
    r.flows.push_back(std::move(fr));
  }
  return r;
}

std::string format_text(const Report& r) {
  std::string out = "xtcp-replay: " + r.capture_path + " against " + r.target + std::string(": ") + std::to_string(r.flows.size()) +
                    std::string(" flows, ") + std::to_string(r.client_packets_sent) + std::string(" client packets sent, ") +
                    std::to_string(r.server_packets) + " server packets received\n";
  for (const FlowReport& f : r.flows) {
    if (f.differences.empty()) {
      out += "flow " + f.name + std::string(": same (") + std::to_string(f.got_bytes) + std::string(" bytes from the server, ends ") +
             describe(f.got_end) + ")\n";
      continue;
    }
    out += "flow " + f.name + ": DIFFERENT\n";
    for (const Difference& d : f.differences) {
      if (d.kind == Difference::Kind::kBytes) {
        const bool shorter = d.offset == std::min(d.expected_length, d.got_length);
        out += std::string("  bytes from the server differ at offset ") + std::to_string(d.offset) + std::string(" (expected ") +
               std::to_string(d.expected_length) + std::string(" bytes in all, got ") + std::to_string(d.got_length) + ")" +
               (shorter ? (d.got_length < d.expected_length ? ": the server sent less\n" : ": the server sent more\n")
                        : "\n");
        out += std::string("    expected: ") + shown(d.expected) + "\n";
        out += std::string("    got:      ") + shown(d.got) + "\n";
      } else {
        out += std::string("  the flow ends differently: expected ") + describe(d.expected_end) + std::string(" from the server, got ") +
               describe(d.got_end) + "\n";
      }
    }
    if (f.capture_gap) {
      out += "  (the capture misses some of the server's bytes: compared up to the hole)\n";
    }
  }
  if (r.stray_packets > 0) {
    out += std::to_string(r.stray_packets) + " server packets belonged to no replayed flow\n";
  }
  if (!r.server_counters.empty()) {
    out += "server drops and challenges:\n";
    std::size_t start = 0;
    while (start < r.server_counters.size()) {
      const std::size_t nl = r.server_counters.find('\n', start);
      out += "  " + r.server_counters.substr(start, nl - start) + "\n";
      start = nl == std::string::npos ? r.server_counters.size() : nl + 1;
    }
  }
  if (!r.error.empty()) {
    out += "error: " + r.error + "\n";
  }
  out += r.same() ? std::string("result: same (") + std::to_string(r.flows.size()) + " flows)\n"
                  : std::string("result: DIFFERENT (") + std::to_string(r.differing_flows()) + std::string(" of ") +
                        std::to_string(r.flows.size()) + " flows differ)\n";
  return out;
}

std::string format_json(const Report& r) {
  std::uint64_t expected = 0;
  std::uint64_t got = 0;
  for (const FlowReport& f : r.flows) {
    expected += f.expected_bytes;
    got += f.got_bytes;
  }
  std::string out = std::string("{\"capture\": ") + json_string(r.capture_path) + std::string(", \"target\": ") + json_string(r.target) +
                    std::string(", \"flows\": ") + std::to_string(r.flows.size()) +
                    std::string(", \"flows_different\": ") + std::to_string(r.differing_flows()) +
                    std::string(", \"client_packets_sent\": ") + std::to_string(r.client_packets_sent) +
                    std::string(", \"server_packets\": ") + std::to_string(r.server_packets) +
                    std::string(", \"bytes_expected\": ") + std::to_string(expected) + std::string(", \"bytes_got\": ") + std::to_string(got) +
                    ", \"differences\": [";
  bool first = true;
  for (const FlowReport& f : r.flows) {
    for (const Difference& d : f.differences) {
      out += first ? "" : ", ";
      first = false;
      if (d.kind == Difference::Kind::kBytes) {
        out += std::string("{\"flow\": ") + json_string(f.name) + std::string(", \"kind\": \"bytes\", \"offset\": ") + std::to_string(d.offset) +
               std::string(", \"expected_length\": ") + std::to_string(d.expected_length) +
               std::string(", \"got_length\": ") + std::to_string(d.got_length) +
               std::string(", \"expected\": ") + json_string(escape_bytes(d.expected, kShown)) +
               std::string(", \"got\": ") + json_string(escape_bytes(d.got, kShown)) + "}";
      } else {
        out += std::string("{\"flow\": ") + json_string(f.name) + std::string(", \"kind\": \"end\", \"expected\": \"") + end_key(d.expected_end) +
               std::string("\", \"got\": \"") + end_key(d.got_end) + "\"}";
      }
    }
  }
  out += std::string("], \"error\": ") + json_string(r.error) + ", \"result\": \"" + (r.same() ? "same" : "different") + "\"}\n";
  return out;
}

}  // namespace xtcp::replay
