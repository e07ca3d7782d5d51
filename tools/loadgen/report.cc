// Progress lines, the soak verdict and the JSON summary of xtcp-loadgen (see report.h).
#include "tools/loadgen/report.h"

#include <algorithm>
#include <cinttypes>
#include <cstring>
#include <fstream>
#include <sstream>

namespace xtcp::loadgen {

std::uint64_t process_rss(int pid) {
  if (pid <= 0) {
    return 0;
  }
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;  // "VmRSS:   1234 kB"
    }
  }
  return 0;
}

SoakVerdict judge_soak(const std::vector<MemorySample>& samples, double ramp_end_s, double max_growth) {
  SoakVerdict v;
  std::size_t after = 0;
  for (const MemorySample& s : samples) {
    if (s.t_s < ramp_end_s || s.rss == 0) {
      continue;
    }
    if (after++ == 0) {
      v.baseline = s.rss;
      v.peak = s.rss;
    }
    v.peak = std::max(v.peak, s.rss);
  }
  v.checked = after >= 3;
  if (v.checked && v.baseline > 0) {
    v.growth = static_cast<double>(v.peak - v.baseline) / static_cast<double>(v.baseline);
    v.ok = v.growth <= max_growth;
  }
  return v;
}

std::string format_us(std::uint64_t us) {
  char b[32];
  if (us < 1000) {
    std::snprintf(b, sizeof b, "%" PRIu64 "us", us);
  } else if (us < 1'000'000) {
    std::snprintf(b, sizeof b, "%.1fms", static_cast<double>(us) / 1e3);
  } else {
    std::snprintf(b, sizeof b, "%.2fs", static_cast<double>(us) / 1e6);
  }
  return b;
}

ProgressPrinter::ProgressPrinter(std::FILE* out, bool tty, int target_pid)
    : out_(out), tty_(tty), target_pid_(target_pid) {}

void ProgressPrinter::print(const Progress& p) {
  char mem[48] = "";
  if (target_pid_ > 0) {
    std::snprintf(mem, sizeof mem, " | target rss %.1f MB", static_cast<double>(process_rss(target_pid_)) / 1e6);
  }
  char line[320];
  std::snprintf(line, sizeof line,
                "%7.1fs %-7s conns %" PRIu64 "/%u | %.0f msg/s | p50 %s p99 %s p999 %s | errors %" PRIu64
                " | rexmit %" PRIu64 "%s",
                p.elapsed_s, p.phase, p.established, p.target, p.messages_per_s, format_us(p.p50_us).c_str(),
                format_us(p.p99_us).c_str(), format_us(p.p999_us).c_str(), p.errors, p.retransmits, mem);
  if (tty_) {
    std::fprintf(out_, "\r\033[K%s", line);
    open_line_ = true;
  } else {
    std::fprintf(out_, "%s\n", line);
  }
  std::fflush(out_);
}

void ProgressPrinter::finish() {
  if (open_line_) {
    std::fputc('\n', out_);
    open_line_ = false;
    std::fflush(out_);
  }
}

namespace {

void field(std::ostringstream& o, const char* name, std::uint64_t v, bool last = false) {
  o << "    \"" << name << "\": " << v << (last ? "\n" : ",\n");
}
void field(std::ostringstream& o, const char* name, double v, bool last = false) {
  char b[64];
  std::snprintf(b, sizeof b, "%.6g", v);
  o << "    \"" << name << "\": " << b << (last ? "\n" : ",\n");
}
void field(std::ostringstream& o, const char* name, const std::string& v, bool last = false) {
  o << "    \"" << name << "\": \"" << v << "\"" << (last ? "\n" : ",\n");
}

void histogram(std::ostringstream& o, const char* name, const Histogram& h, bool last) {
  o << "  \"" << name << "\": {\n";
  field(o, "count", h.count());
  field(o, "min", h.min());
  field(o, "mean", h.mean());
  field(o, "p50", h.percentile(50));
  field(o, "p90", h.percentile(90));
  field(o, "p99", h.percentile(99));
  field(o, "p999", h.percentile(99.9));
  field(o, "max", h.max(), true);
  o << "  }" << (last ? "\n" : ",\n");
}

std::string ipv4(std::uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." + std::to_string((a >> 8) & 255) +
         "." + std::to_string(a & 255);
}

}  // namespace

std::string summary_json(const Results& r, const SummaryContext& ctx) {
  const Options& o = ctx.options;
  std::ostringstream j;
  j << "{\n  \"tool\": \"xtcp-loadgen\",\n  \"schema\": 1,\n";
  j << "  \"workload\": \"" << to_string(r.workload) << "\",\n";
  j << "  \"target\": \"" << ctx.target << "\",\n";
  j << "  \"attach\": \"" << ctx.attach << "\",\n";
  j << "  \"ok\": " << (r.errors() == 0 && ctx.soak.ok && !ctx.stopped_early ? "true" : "false") << ",\n";
  j << "  \"stopped_early\": " << (ctx.stopped_early ? "true" : "false") << ",\n";
  j << "  \"options\": {\n";
  field(j, "connections", std::uint64_t{o.connections});
  field(j, "ramp_per_s", o.ramp_per_s);
  field(j, "message_size", std::uint64_t{o.message_size});
  field(j, "interval_ms", static_cast<double>(o.interval) / 1e6);
  field(j, "duration_s", static_cast<double>(o.duration) / 1e9);
  field(j, "lifetime_s", static_cast<double>(o.lifetime) / 1e9);
  field(j, "bursts", std::uint64_t{o.bursts});
  field(j, "seed", o.seed);
  field(j, "source", ipv4(o.src_addr) + " +" + std::to_string(o.src_count), true);
  j << "  },\n";
  j << "  \"connections\": {\n";
  field(j, "target", std::uint64_t{r.target_connections});
  field(j, "started", r.connects_started);
  field(j, "established", r.connects_ok);
  field(j, "failed", r.connects_failed);
  field(j, "peak", r.peak_established);
  field(j, "resets", r.resets);
  field(j, "churn_closes", r.churn_closes);
  field(j, "logins", r.logins);
  field(j, "ramp_seconds", r.ramp_seconds);
  field(j, "setup_rate_per_s", r.ramp_seconds > 0 ? static_cast<double>(r.connects_ok) / r.ramp_seconds : 0.0);
  field(j, "slowest_connect_ms", r.slowest_connect_ms, true);
  j << "  },\n";
  j << "  \"messages\": {\n";
  field(j, "sent", r.messages_sent);
  field(j, "answered", r.messages_answered);
  field(j, "lost", r.messages_lost);
  field(j, "duplicated", r.messages_duplicated);
  field(j, "reordered", r.messages_reordered);
  field(j, "dropped_by_churn", r.messages_dropped_by_churn);
  field(j, "offline_answers", r.offline_answers);
  field(j, "bad_answers", r.bad_answers);
  field(j, "sends_refused", r.sends_refused);
  field(j, "measure_seconds", r.measure_seconds);
  field(j, "answered_in_measure", r.answered_in_measure);
  field(j, "per_second", r.measure_seconds > 0 ? static_cast<double>(r.answered_in_measure) / r.measure_seconds : 0.0,
        true);
  j << "  },\n";
  histogram(j, "latency_us", r.latency, false);
  histogram(j, "connect_us", r.connect_latency, false);
  j << "  \"bursts_seconds\": [";
  for (std::size_t i = 0; i < r.burst_seconds.size(); ++i) {
    char b[32];
    std::snprintf(b, sizeof b, "%.6g", r.burst_seconds[i]);
    j << (i ? ", " : "") << b;
  }
  j << "],\n";
  j << "  \"packets\": {\n";
  field(j, "out", r.packets_out);
  field(j, "in", r.packets_in);
  field(j, "retransmits", r.retransmits);
  const double exchanges = static_cast<double>(r.answered_in_measure);
  field(j, "per_exchange", exchanges > 0 ? static_cast<double>(r.packets_out + r.packets_in) / exchanges : 0.0, true);
  j << "  },\n";
  j << "  \"errors\": " << r.errors() << ",\n";
  j << "  \"memory\": {\n";
  field(j, "target_pid", static_cast<std::uint64_t>(std::max(ctx.target_pid, 0)));
  field(j, "samples", static_cast<std::uint64_t>(ctx.memory.size()));
  field(j, "first_rss", ctx.memory.empty() ? std::uint64_t{0} : ctx.memory.front().rss);
  field(j, "last_rss", ctx.memory.empty() ? std::uint64_t{0} : ctx.memory.back().rss);
  field(j, "soak_checked", std::uint64_t{ctx.soak.checked ? 1u : 0u});
  field(j, "soak_baseline_rss", ctx.soak.baseline);
  field(j, "soak_peak_rss", ctx.soak.peak);
  field(j, "soak_growth", ctx.soak.growth, true);
  j << "  }\n}\n";
  return j.str();
}

}  // namespace xtcp::loadgen
