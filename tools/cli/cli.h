// The command line of every xtcp program (xtcp-echo, xtcp-im, xtcp-backend, the benchmarks):
// one flag parser (getopt_long underneath) with the same conventions everywhere, size and
// duration values with suffixes, --help and --version, the exit codes, signal flags that
// the main loop reads, and the counter prints (text or JSON lines) with their interval.
//
//   Flags f("xtcp-echo", "--tun NAME --ip ADDR [OPTION]...", "An echo server ...");
//   f.text("--tun", "NAME", "the TUN device", &tun).required();
//   f.size("--pool-size,--rx-buffer", "the receive buffer", &pool, 4096, 1ull << 34);
//   f.parse(argc, argv);   // exits 0 after --help/--version, 2 after a bad or missing flag
//
// Conventions: --flag=value and --flag value both work; --help prints every flag with what
// it does and its default on stdout and exits 0; --version prints the version and exits
// 0; a bad, unknown or missing flag prints "<program>: <flag>: <what is wrong>" and a
// hint to --help on stderr and exits 2. Sizes take K, M, G, T (powers of 1024; a plain
// number is bytes unless the flag says otherwise); durations take us, ms, s, m, h (a plain
// number keeps the unit the flag always had).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xtcp::cli {

// ---- exit codes -----------------------------------------------------------------------
inline constexpr int kExitOk = 0;       // done, or stopped by SIGINT/SIGTERM
inline constexpr int kExitFailure = 1;  // a run-time failure (device, file, peer, ...)
inline constexpr int kExitUsage = 2;    // a bad, unknown or missing flag

// ---- values ---------------------------------------------------------------------------
using Micros = std::chrono::microseconds;

// "4096", "64K", "64M", "1G", "2T" (also "64KiB", "64k", "64KB": all powers of 1024). A
// plain number is multiplied by plain_unit. nullopt with *why on a malformed value or one
// past 2^64.
std::optional<std::uint64_t> parse_size(std::string_view text, std::uint64_t plain_unit, std::string* why);
// "250ms", "2s", "5m", "1h", "100us"; a plain number is multiplied by plain_unit.
std::optional<Micros> parse_duration(std::string_view text, Micros plain_unit, std::string* why);
// The shortest exact spelling: 4194304 -> "4M", 1536 -> "1536", 0 -> "0".
std::string format_size(std::uint64_t bytes);
// 200000us -> "200ms", 5000000us -> "5s", 0 -> "0".
std::string format_duration(Micros d);
// A size in plain_unit (e.g. MiB) as the user wrote it: 256 with unit 1M -> "256M".
std::string format_plain(std::uint64_t value, std::uint64_t plain_unit);

// ---- the parser -----------------------------------------------------------------------
class Flags;

// One flag, as added; its setters return the flag for chaining.
class Flag {
 public:
  // The flag must be given; the help shows "(required)" instead of a default.
  Flag& required();
  // What the help shows as the default (instead of the value the flag started with).
  Flag& default_text(std::string text);

 private:
  friend class Flags;
  std::vector<std::string> names;  // "--pool-size", "--rx-buffer": the first is shown first
  std::string value_name;          // "SIZE"; empty for a switch
  std::string help;
  std::string shown_default;       // "" : none shown
  bool is_required = false;
  bool seen = false;
  // Takes the value; returns "" or what is wrong with it (without the flag's name).
  std::function<std::string(const std::string&)> set;
};

class Flags {
 public:
  // synopsis: what follows "usage: <program> " (e.g. "--tun NAME --ip ADDR [OPTION]...");
  // about: one paragraph shown under it.
  Flags(std::string program, std::string synopsis, std::string about);

  // names: one flag name or several separated by commas ("--pool-size,--rx-buffer").
  Flag& text(std::string_view names, std::string value_name, std::string help, std::string* out);
  // A whole number in [lo, hi].
  Flag& number(std::string_view names, std::string value_name, std::string help, std::uint64_t* out,
               std::uint64_t lo, std::uint64_t hi);
  Flag& number(std::string_view names, std::string value_name, std::string help, int* out, int lo, int hi);
  // A size in bytes in [lo, hi] (in bytes); a plain number counts plain_unit bytes. The
  // value is stored in bytes.
  Flag& size(std::string_view names, std::string help, std::uint64_t* out, std::uint64_t lo, std::uint64_t hi,
             std::uint64_t plain_unit = 1);
  // A duration in [lo, hi]; a plain number counts plain_unit.
  Flag& duration(std::string_view names, std::string help, Micros* out, Micros lo, Micros hi, Micros plain_unit);
  // A switch (no value).
  Flag& toggle(std::string_view names, std::string help, bool* out);
  // Anything else: check returns "" or what is wrong with the value.
  Flag& custom(std::string_view names, std::string value_name, std::string help, std::string shown_default,
               std::function<std::string(const std::string&)> check);

  // Text shown after the flags in --help (signals, exit codes, examples); may be called
  // more than once (paragraphs).
  void epilog(std::string text);
  // The library the program runs with, shown by --version next to the project's version
  // (xtcp_version() for programs on the xtcp API).
  void library_version(std::string text) { library_version_ = std::move(text); }

  // Parses argv (argv[0] is skipped): --help/-h prints help() on stdout and exits 0,
  // --version prints version_line() and exits 0, anything wrong exits 2 (see fail()).
  void parse(int argc, char** argv);
  // Whether the flag (any of its names) was on the command line.
  bool given(std::string_view name) const;

  // "<program>: <what>" and a hint to --help on stderr, then exit 2. For checks a program
  // makes across flags after parse().
  [[noreturn]] void fail(const std::string& what) const;
  std::string help() const;
  std::string version_line() const;
  const std::string& program() const { return program_; }

 private:
  Flag& add(std::string_view names, std::string value_name, std::string help, std::string shown_default,
            std::function<std::string(const std::string&)> set);
  const Flag* find(std::string_view name) const;

  std::string program_;
  std::string synopsis_;
  std::string about_;
  std::vector<std::string> epilog_;
  std::string library_version_;
  std::deque<Flag> flags_;  // a deque: the Flag& handed out stay valid
};

// The epilog paragraphs every server program shows (signals and exit codes).
std::string server_signals_help();
std::string exit_codes_help();

// ---- signals --------------------------------------------------------------------------
// Handlers only set flags (async-signal-safe); the main loop looks at them. No SA_RESTART:
// a blocking poll/select returns EINTR so the loop sees the signal at once.

// signals (e.g. SIGINT, SIGTERM) ask the program to stop: stop_requested() turns true and
// stop_signal() tells which came first.
void on_stop_signals(std::initializer_list<int> signals);
// sig (SIGUSR1) asks for the counters now: take_stats_request() returns true once per signal.
void on_stats_signal(int sig);
void ignore_signal(int sig);
bool stop_requested();
int stop_signal();  // 0 while no stop signal came
bool take_stats_request();
// The flag itself, for threads that poll it.
const std::atomic<int>& stop_flag();

// ---- counters -------------------------------------------------------------------------
struct Counter {
  std::string name;  // "tcp.segs_in", "im.online", ...
  std::uint64_t value = 0;
};

// "<name> <value>" per line, the format of every program's end-of-run counters.
void print_counters_text(std::FILE* out, const std::vector<Counter>& counters);
// One line: {"time": <unix seconds>, "program": "<program>", "counters": {"<name>": <value>, ...}}
void print_counters_json(std::FILE* out, std::string_view program, const std::vector<Counter>& counters);
// s as a JSON string literal, quotes included; control bytes and bytes from 0x7f up are
// written as \u00XX escapes, so any bytes make valid (ASCII) JSON.
std::string json_string(std::string_view s);

// --stats-interval DURATION and --stats-json, the same in every program that has counters.
struct StatsOptions {
  Micros interval{0};  // 0: no periodic print
  bool json = false;
};
// counted: what the prints hold, for --help ("every counter: the stack's, ...").
void add_stats_flags(Flags& flags, StatsOptions* options, const std::string& counted);

// Prints counters every interval and on SIGUSR1 (install on_stats_signal first), from the
// main loop: call poll() after every wait, and bound waits by ms_until_due().
class StatsPrinter {
 public:
  using Collect = std::function<void(std::vector<Counter>*)>;
  StatsPrinter(std::string program, StatsOptions options, Collect collect);
  // Milliseconds until the next periodic print (INT32_MAX when there is none).
  int ms_until_due() const;
  // Prints when the interval passed or SIGUSR1 came. True when it printed.
  bool poll();
  // Prints now: JSON with --stats-json, else a block of "name value" lines under a header.
  void print();
  // From now on print() hands the counters to sink instead of printing them (a shard process
  // hands them to its supervisor, which prints the sum of all shards).
  using Sink = std::function<void(const std::vector<Counter>&)>;
  void redirect(Sink sink) { sink_ = std::move(sink); }

 private:
  std::string program_;
  StatsOptions options_;
  Collect collect_;
  Sink sink_;
  std::chrono::steady_clock::time_point next_;
};

}  // namespace xtcp::cli
