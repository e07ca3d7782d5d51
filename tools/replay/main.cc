// xtcp-replay: plays the client side of every TCP flow of a pcap against an xtcp server
// (in this process over the in-memory link in virtual time, or a running program behind a
// TUN device) and checks that the server answers with the captured bytes and ends each flow
// the same way. docs/replay.md.
#include <xtcp/xtcp.h>

#include <cstdio>
#include <memory>
#include <string>

#include "stack/netif/pcap_writer.h"
#include "stack/wire/ipv4.h"
#include "tools/cli/cli.h"
#include "tools/replay/capture.h"
#include "tools/replay/replayer.h"
#include "tools/replay/report.h"
#include "tools/replay/target.h"

namespace {

namespace cli = xtcp::cli;
using namespace xtcp::replay;  // NOLINT

constexpr const char* kProgram = "xtcp-replay";
// Exit codes as diff(1)'s, so that a script tells a difference from trouble: 1 only when
// flows were replayed and differ; 2 for a bad flag (cli::kExitUsage) and for a replay that
// could not run (unreadable capture, no target).
constexpr int kExitDifferent = 1;
constexpr int kExitTrouble = 2;

struct Plan {
  std::string capture;
  std::string target = "in-process";
  std::string service = "echo";
  std::string presence = "all";
  std::string server;
  std::string server_ip;
  std::string client_ip;
  std::string tun;
  std::string pace = "fast";
  std::string write;
  std::string fault = "none";
  cli::Micros wait{1'000'000};
  cli::Micros linger{5'000'000};
  bool json = false;
};

std::string one_of(const std::string& v, std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (v == a) {
      return "";
    }
    list += list.empty() ? std::string(a) : std::string(", ") + a;
  }
  return "must be one of " + list;
}

std::string check_address(const std::string& v) {
  std::uint32_t a = 0;
  return xtcp::wire::parse_ipv4(v, &a) ? "" : "not an IPv4 address";
}

bool parse_endpoint(const std::string& v, Endpoint* out) {
  const auto colon = v.rfind(':');
  if (colon == std::string::npos) {
    return false;
  }
  std::uint32_t a = 0;
  if (!xtcp::wire::parse_ipv4(v.substr(0, colon), &a)) {
    return false;
  }
  const std::string port = v.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  const unsigned long p = std::stoul(port);
  if (p == 0 || p > 65535) {
    return false;
  }
  *out = Endpoint{a, static_cast<std::uint16_t>(p)};
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Plan plan;
  cli::Flags flags(kProgram, "--capture FILE [OPTION]...",
                   "Plays the client side of every TCP flow in a pcap against an xtcp server and checks "
                   "its answers: the same bytes in the same order as the captured server sent, and the "
                   "same end (FIN, RST, or neither) on every flow. Sequence and acknowledgement numbers, "
                   "SACK blocks and timestamp echoes are moved into the live connection's space; "
                   "checksums are recomputed (a wrong one stays wrong).");
  flags.library_version(xtcp_version());
  flags.text("--capture", "FILE", "the pcap to replay (raw IP, Ethernet or Linux cooked)", &plan.capture)
      .required();
  flags.custom("--target", "in-process|tun",
               "in-process: an xtcp server in this process, over the in-memory link in virtual time; "
               "tun: a running xtcp program behind the TUN device --tun, from the kernel's side",
               "in-process", [&](const std::string& v) {
                 plan.target = v;
                 return one_of(v, {"in-process", "tun"});
               });
  flags.custom("--service", "echo|im", "in-process: the server's logic (xtcp-echo's or xtcp-im's)", "echo",
               [&](const std::string& v) {
                 plan.service = v;
                 return one_of(v, {"echo", "im"});
               });
  flags.custom("--presence", "all|watched", "in-process im: as xtcp-im --presence", "all",
               [&](const std::string& v) {
                 plan.presence = v;
                 return one_of(v, {"all", "watched"});
               });
  flags.custom("--server", "ADDR:PORT",
               "the server's end of the captured flows (default: where the first SYN went)", "",
               [&](const std::string& v) {
                 plan.server = v;
                 Endpoint e;
                 return parse_endpoint(v, &e) ? "" : "not ADDR:PORT";
               });
  flags.custom("--server-ip", "ADDR", "the live server's address (default: the captured server's)", "",
               [&](const std::string& v) {
                 plan.server_ip = v;
                 return check_address(v);
               });
  flags.custom("--client-ip", "ADDR",
               "move the clients to ADDR, ADDR+1, ... (tun: addresses the kernel does not own)", "",
               [&](const std::string& v) {
                 plan.client_ip = v;
                 return check_address(v);
               });
  flags.text("--tun", "NAME", "tun: the TUN device the live server sits behind", &plan.tun);
  flags.custom("--pace", "capture|fast",
               "capture: keep the capture's timing; fast: send the next client packet once the "
               "server has answered the previous one (or --wait passed)",
               "fast", [&](const std::string& v) {
                 plan.pace = v;
                 return one_of(v, {"capture", "fast"});
               });
  flags.duration("--wait", "fast: the longest wait for the server's answer (a plain number is in ms)", &plan.wait, cli::Micros(1000),
                 cli::Micros(60'000'000), cli::Micros(1000));
  flags.duration("--linger", "after the last client packet: the longest wait for the flows' ends (a plain number is in ms)", &plan.linger,
                 cli::Micros(0), cli::Micros(600'000'000), cli::Micros(1000));
  flags.text("--write", "FILE", "write the live exchange (both directions) to this pcap", &plan.write);
  flags.custom("--inject-fault", "none|change-byte|fin-to-rst",
               "in-process: break the server on purpose (change-byte: its first data byte sent is "
               "altered; fin-to-rst: it sends RST where it would send FIN)",
               "none", [&](const std::string& v) {
                 plan.fault = v;
                 return one_of(v, {"none", "change-byte", "fin-to-rst"});
               });
  flags.toggle("--json", "print a JSON summary on stdout (the plain report goes to stderr)", &plan.json);
  flags.epilog(
      "Exit codes, as diff(1): 0 every flow the same, 1 a difference, 2 a bad flag or a replay that could not run.");
  flags.parse(argc, argv);

  const bool tun = plan.target == "tun";
  if (tun && plan.tun.empty()) {
    flags.fail("--target tun needs --tun NAME");
  }
  if (!tun && !plan.tun.empty()) {
    flags.fail("--tun: only with --target tun");
  }
  if (tun && plan.fault != "none") {
    flags.fail("--inject-fault: only with --target in-process");
  }

  std::string error;
  auto packets = read_pcap(plan.capture, &error);
  if (!packets) {
    std::fprintf(stderr, "%s: %s\n", kProgram, error.c_str());
    return kExitTrouble;
  }
  std::optional<Endpoint> server;
  if (!plan.server.empty()) {
    Endpoint e;
    parse_endpoint(plan.server, &e);
    server = e;
  }
  auto capture = extract_flows(std::move(*packets), server, &error);
  if (!capture) {
    std::fprintf(stderr, "%s: %s: %s\n", kProgram, plan.capture.c_str(), error.c_str());
    return kExitTrouble;
  }

  ReplayOptions options;
  options.pace = plan.pace == "capture" ? Pace::kCapture : Pace::kFast;
  options.answer_wait = plan.wait.count() * xtcp::kNsPerUs;
  options.linger = plan.linger.count() * xtcp::kNsPerUs;
  if (!plan.server_ip.empty()) {
    std::uint32_t a = 0;
    xtcp::wire::parse_ipv4(plan.server_ip, &a);
    options.addresses.server_addr = a;
  }
  if (!plan.client_ip.empty()) {
    std::uint32_t a = 0;
    xtcp::wire::parse_ipv4(plan.client_ip, &a);
    options.addresses.client_base = a;
  }
  Endpoint live_server = capture->server;
  if (options.addresses.server_addr) {
    live_server.addr = *options.addresses.server_addr;
  }

  std::unique_ptr<Target> target;
  std::string target_name;
  if (tun) {
    // The kernel must not own a replayed client's address, or it answers the flow itself.
    AddressMap probe = options.addresses;
    for (const Flow& f : capture->flows) {
      const std::uint32_t a = probe.client(f.client.addr);
      if (kernel_owns_address(a)) {
        std::fprintf(stderr,
                     "%s: the kernel of this network namespace owns the client address %s and would "
                     "answer the replayed flows itself: move the clients with --client-ip ADDR (an "
                     "address it does not own, e.g. in 198.19.0.0/16)\n",
                     kProgram, xtcp::wire::format_ipv4(a).c_str());
        return kExitTrouble;
      }
    }
    TunOptions to;
    to.device = plan.tun;
    target = make_tun_target(to, live_server, &error);
    target_name = "tun " + plan.tun + std::string(" (") + format_endpoint(live_server) + ")";
  } else {
    InProcessOptions io;
    io.service = plan.service == "im" ? Service::kIm : Service::kEcho;
    io.server = live_server;
    io.im_presence_all = plan.presence == "all";
    io.fault = plan.fault == "change-byte" ? Fault::kChangeByte
               : plan.fault == "fin-to-rst" ? Fault::kFinToRst
                                            : Fault::kNone;
    target = make_in_process_target(io, &error);
    target_name = "in-process " + plan.service + std::string(" (") + format_endpoint(live_server) + ")" +
                  (plan.fault == "none" ? "" : ", fault " + plan.fault);
  }
  if (!target) {
    std::fprintf(stderr, "%s: %s\n", kProgram, error.c_str());
    return kExitTrouble;
  }

  std::unique_ptr<xtcp::PcapWriter> writer;
  if (!plan.write.empty()) {
    writer = xtcp::PcapWriter::open(plan.write, xtcp::kPcapLinkTypeRaw, xtcp::kPcapSnapLen, &error);
    if (!writer) {
      std::fprintf(stderr, "%s: %s\n", kProgram, error.c_str());
      return kExitTrouble;
    }
  }
  const ReplayOutcome outcome = replay(*capture, *target, options, writer.get());
  writer.reset();
  Report report = compare(*capture, outcome);
  report.capture_path = plan.capture;
  report.target = target_name + ", pace " + plan.pace;
  report.server_counters = target->server_counters();
  target.reset();
  const std::string text = format_text(report);
  if (plan.json) {
    std::fputs(text.c_str(), stderr);
    std::fputs(format_json(report).c_str(), stdout);
  } else {
    std::fputs(text.c_str(), stdout);
  }
  return report.same() ? cli::kExitOk : kExitDifferent;
}
