// How xtcp-loadgen shows a run: a live progress line on a terminal (rewritten in place),
// plain periodic lines otherwise, and the JSON summary at the end (schema in
// docs/loadgen.md). Memory of the target comes from /proc when it is a local process.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "tools/loadgen/loadgen.h"

namespace xtcp::loadgen {

// Resident memory of a process in bytes (VmRSS), or 0 when it cannot be read.
std::uint64_t process_rss(int pid);

struct MemorySample {
  double t_s = 0;        // seconds since the start
  std::uint64_t rss = 0; // bytes
  std::uint64_t established = 0;
};

// Soak verdict: memory after the ramp must not grow by more than max_growth (0.02 = 2%)
// while the connection count is steady. The baseline is the first sample taken after the
// ramp; growth is measured to the largest later sample.
struct SoakVerdict {
  bool checked = false;   // enough samples after the ramp to judge
  bool ok = true;
  std::uint64_t baseline = 0;
  std::uint64_t peak = 0;
  double growth = 0;      // (peak - baseline) / baseline
};
SoakVerdict judge_soak(const std::vector<MemorySample>& samples, double ramp_end_s, double max_growth);

class ProgressPrinter {
 public:
  // tty: rewrite one line in place; else one line per call. target_pid 0: no memory column.
  ProgressPrinter(std::FILE* out, bool tty, int target_pid);
  void print(const Progress& p);
  void finish();  // ends the in-place line

 private:
  std::FILE* out_;
  bool tty_;
  int target_pid_;
  bool open_line_ = false;
};

// The summary as one JSON object (pretty, ends with a newline).
struct SummaryContext {
  std::string target;            // "198.18.0.2:7000"
  std::string attach;            // "tun", "shm", "in-process"
  Options options;
  int target_pid = 0;
  std::vector<MemorySample> memory;
  SoakVerdict soak;
  bool stopped_early = false;
};
std::string summary_json(const Results& r, const SummaryContext& ctx);

// "1.2ms", "850us", "3.40s"
std::string format_us(std::uint64_t us);

}  // namespace xtcp::loadgen
