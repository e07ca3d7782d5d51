// The shared command line of the xtcp programs; see cli.h. The parser sits on getopt_long
// (long options only, plus -h), with opterr off so that every message has the same form.
#include "tools/cli/cli.h"

#include <getopt.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>

#ifndef XTCP_PROJECT_VERSION
#define XTCP_PROJECT_VERSION "unknown"
#endif

namespace xtcp::cli {

namespace {

constexpr std::uint64_t kKi = 1024;
constexpr int kHelpWidth = 80;
constexpr int kHelpColumn = 30;  // where flag descriptions start

bool parse_digits(std::string_view s, std::uint64_t* out) {
  if (s.empty() || s[0] < '0' || s[0] > '9') {
    return false;
  }
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// Splits "12ms" into the digits and the rest.
std::pair<std::string_view, std::string_view> split_number(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    ++i;
  }
  return {s.substr(0, i), s.substr(i)};
}

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

// Concatenation by appending: GCC 12 at -O3 warns falsely (-Wrestrict, GCC bug 105329) on
// "literal" + std::string temporaries.
std::string cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (const std::string_view p : parts) {
    out.append(p);
  }
  return out;
}

std::string quoted(std::string_view s) { return cat({"'", s, "'"}); }

// Word-wraps text to width columns, every line after the first indented by indent spaces
// (the first continues where the caller's text ends, at column first_column).
std::string wrap(std::string_view text, int first_column, int indent, int width) {
  std::string out;
  int column = first_column;
  bool line_empty = true;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ') {
      ++i;
      continue;
    }
    std::size_t j = text.find(' ', i);
    if (j == std::string_view::npos) {
      j = text.size();
    }
    const std::string_view word = text.substr(i, j - i);
    const int need = static_cast<int>(word.size()) + (line_empty ? 0 : 1);
    if (!line_empty && column + need > width) {
      out += '\n';
      out.append(static_cast<std::size_t>(indent), ' ');
      column = indent;
      line_empty = true;
    }
    if (!line_empty) {
      out += ' ';
      ++column;
    }
    out += word;
    column += static_cast<int>(word.size());
    line_empty = false;
    i = j;
  }
  return out;
}

std::string unix_time_now() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now).count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld.%03lld", static_cast<long long>(ms / 1000), static_cast<long long>(ms % 1000));
  return buf;
}

// ---- signal flags --------------------------------------------------------------------
static_assert(std::atomic<int>::is_always_lock_free, "signal handlers need lock-free atomics");
std::atomic<int> g_stop{0};
std::atomic<int> g_stop_signal{0};
std::atomic<int> g_stats{0};

void on_stop(int sig) {
  int none = 0;
  g_stop_signal.compare_exchange_strong(none, sig);
  g_stop.store(1);
}
void on_stats(int) { g_stats.store(1); }

void install(int sig, void (*handler)(int)) {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: waits end with EINTR
  sigaction(sig, &sa, nullptr);
}

}  // namespace

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

// ---- values ---------------------------------------------------------------------------

std::optional<std::uint64_t> parse_size(std::string_view text, std::uint64_t plain_unit, std::string* why) {
  const auto [digits, suffix] = split_number(text);
  std::uint64_t n = 0;
  if (!parse_digits(digits, &n)) {
    *why = quoted(text) + " is not a size (a whole number, optionally with K, M, G or T)";
    return std::nullopt;
  }
  std::uint64_t unit = plain_unit;
  if (!suffix.empty()) {
    // "B" alone is bytes; K, M, G, T may be followed by "iB" or "B".
    static constexpr std::string_view kLetters = "KMGT";
    const char letter = suffix[0] >= 'a' && suffix[0] <= 'z' ? static_cast<char>(suffix[0] - 'a' + 'A') : suffix[0];
    const std::size_t power = kLetters.find(letter);
    const std::string_view rest = suffix.substr(1);
    const bool bytes = iequal(suffix, "B");
    if (!bytes && (power == std::string_view::npos || !(rest.empty() || iequal(rest, "iB") || iequal(rest, "B")))) {
      *why = quoted(text) + " is not a size: the suffix must be K, M, G or T (powers of 1024)";
      return std::nullopt;
    }
    unit = 1;
    for (std::size_t i = 0; !bytes && i <= power; ++i) {
      unit *= kKi;
    }
  }
  if (unit != 0 && n > std::numeric_limits<std::uint64_t>::max() / unit) {
    *why = quoted(text) + " is too large";
    return std::nullopt;
  }
  return n * unit;
}

std::optional<Micros> parse_duration(std::string_view text, Micros plain_unit, std::string* why) {
  const auto [digits, suffix] = split_number(text);
  std::uint64_t n = 0;
  if (!parse_digits(digits, &n)) {
    *why = quoted(text) + " is not a duration (a whole number, optionally with us, ms, s, m or h)";
    return std::nullopt;
  }
  std::int64_t unit = plain_unit.count();
  if (suffix == "us") {
    unit = 1;
  } else if (suffix == "ms") {
    unit = 1000;
  } else if (suffix == "s") {
    unit = 1'000'000;
  } else if (suffix == "m") {
    unit = 60'000'000;
  } else if (suffix == "h") {
    unit = 3'600'000'000;
  } else if (!suffix.empty()) {
    *why = quoted(text) + " is not a duration: the unit must be us, ms, s, m or h";
    return std::nullopt;
  }
  if (unit > 0 && n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max() / unit)) {
    *why = quoted(text) + " is too long";
    return std::nullopt;
  }
  return Micros(static_cast<std::int64_t>(n) * unit);
}

std::string format_size(std::uint64_t bytes) {
  if (bytes == 0) {
    return "0";
  }
  static constexpr struct {
    std::uint64_t unit;
    const char* suffix;
  } kUnits[] = {{kKi * kKi * kKi * kKi, "T"}, {kKi * kKi * kKi, "G"}, {kKi * kKi, "M"}, {kKi, "K"}};
  for (const auto& u : kUnits) {
    if (bytes % u.unit == 0) {
      return std::to_string(bytes / u.unit) + u.suffix;
    }
  }
  return std::to_string(bytes);
}

std::string format_duration(Micros d) {
  const std::int64_t us = d.count();
  if (us == 0) {
    return "0";
  }
  static constexpr struct {
    std::int64_t unit;
    const char* suffix;
  } kUnits[] = {{3'600'000'000, "h"}, {60'000'000, "m"}, {1'000'000, "s"}, {1000, "ms"}};
  for (const auto& u : kUnits) {
    if (us % u.unit == 0) {
      return std::to_string(us / u.unit) + u.suffix;
    }
  }
  return std::to_string(us) + "us";
}

std::string format_plain(std::uint64_t value, std::uint64_t plain_unit) { return format_size(value * plain_unit); }

// ---- the parser -----------------------------------------------------------------------

Flag& Flag::required() {
  is_required = true;
  return *this;
}

Flag& Flag::default_text(std::string text) {
  shown_default = std::move(text);
  return *this;
}

Flags::Flags(std::string program, std::string synopsis, std::string about)
    : program_(std::move(program)), synopsis_(std::move(synopsis)), about_(std::move(about)) {}

Flag& Flags::add(std::string_view names, std::string value_name, std::string help, std::string shown_default,
                 std::function<std::string(const std::string&)> set) {
  Flag f;
  std::size_t at = 0;
  while (at <= names.size()) {
    const std::size_t comma = std::min(names.find(',', at), names.size());
    f.names.emplace_back(names.substr(at, comma - at));
    at = comma + 1;
  }
  f.value_name = std::move(value_name);
  f.help = std::move(help);
  f.shown_default = std::move(shown_default);
  f.set = std::move(set);
  flags_.push_back(std::move(f));
  return flags_.back();
}

Flag& Flags::text(std::string_view names, std::string value_name, std::string help, std::string* out) {
  return add(names, std::move(value_name), std::move(help), *out, [out](const std::string& v) {
    if (v.empty()) {
      return std::string("is empty");
    }
    *out = v;
    return std::string();
  });
}

Flag& Flags::number(std::string_view names, std::string value_name, std::string help, std::uint64_t* out,
                    std::uint64_t lo, std::uint64_t hi) {
  return add(names, std::move(value_name), std::move(help), std::to_string(*out), [=](const std::string& v) {
    std::uint64_t n = 0;
    if (!parse_digits(v, &n) || n < lo || n > hi) {
      return quoted(v) + " is not a whole number from " + std::to_string(lo) + " to " + std::to_string(hi);
    }
    *out = n;
    return std::string();
  });
}

Flag& Flags::number(std::string_view names, std::string value_name, std::string help, int* out, int lo, int hi) {
  return add(names, std::move(value_name), std::move(help), std::to_string(*out), [=](const std::string& v) {
    std::uint64_t n = 0;
    if (lo < 0 || !parse_digits(v, &n) || n < static_cast<std::uint64_t>(lo) || n > static_cast<std::uint64_t>(hi)) {
      return quoted(v) + " is not a whole number from " + std::to_string(lo) + " to " + std::to_string(hi);
    }
    *out = static_cast<int>(n);
    return std::string();
  });
}

Flag& Flags::size(std::string_view names, std::string help, std::uint64_t* out, std::uint64_t lo, std::uint64_t hi,
                  std::uint64_t plain_unit) {
  return add(names, "SIZE", std::move(help), format_size(*out), [=](const std::string& v) {
    std::string why;
    const auto n = parse_size(v, plain_unit, &why);
    if (!n) {
      return why;
    }
    if (*n < lo || *n > hi) {
      return quoted(v) + " is outside " + format_size(lo) + " to " + format_size(hi) + " bytes";
    }
    *out = *n;
    return std::string();
  });
}

Flag& Flags::duration(std::string_view names, std::string help, Micros* out, Micros lo, Micros hi,
                      Micros plain_unit) {
  return add(names, "DURATION", std::move(help), format_duration(*out), [=](const std::string& v) {
    std::string why;
    const auto d = parse_duration(v, plain_unit, &why);
    if (!d) {
      return why;
    }
    if (*d < lo || *d > hi) {
      return quoted(v) + " is outside " + format_duration(lo) + " to " + format_duration(hi);
    }
    *out = *d;
    return std::string();
  });
}

Flag& Flags::toggle(std::string_view names, std::string help, bool* out) {
  return add(names, "", std::move(help), *out ? "on" : "off", [out](const std::string&) {
    *out = true;
    return std::string();
  });
}

Flag& Flags::custom(std::string_view names, std::string value_name, std::string help, std::string shown_default,
                    std::function<std::string(const std::string&)> check) {
  return add(names, std::move(value_name), std::move(help), std::move(shown_default), std::move(check));
}

void Flags::epilog(std::string text) { epilog_.push_back(std::move(text)); }

const Flag* Flags::find(std::string_view name) const {
  for (const Flag& f : flags_) {
    for (const std::string& n : f.names) {
      if (n == name) {
        return &f;
      }
    }
  }
  return nullptr;
}

bool Flags::given(std::string_view name) const {
  const Flag* f = find(name);
  return f != nullptr && f->seen;
}

void Flags::fail(const std::string& what) const {
  std::fflush(stdout);
  std::fprintf(stderr, "%s: %s\nTry '%s --help' for the list of flags.\n", program_.c_str(), what.c_str(),
               program_.c_str());
  std::exit(kExitUsage);
}

std::string Flags::help() const {
  std::string out = "usage: " + program_ + " " + synopsis_ + "\n\n";
  out += wrap(about_, 0, 0, kHelpWidth);
  out += "\n\nFlags (--flag=value and --flag value both work):\n";
  auto row = [&](const std::string& left, const std::string& text) {
    std::string line = "  " + left;
    int column = static_cast<int>(line.size());
    if (column + 2 > kHelpColumn) {
      line += "\n";
      column = 0;
    }
    line += std::string(static_cast<std::size_t>(kHelpColumn - column), ' ');
    std::string wrapped = wrap(text, kHelpColumn, kHelpColumn, kHelpWidth);
    std::replace(wrapped.begin(), wrapped.end(), '\x01', ' ');
    out += line + wrapped + "\n";
  };
  for (const Flag& f : flags_) {
    std::string left;
    for (const std::string& n : f.names) {
      left += (left.empty() ? "" : ", ") + n;
    }
    if (!f.value_name.empty()) {
      left += " " + f.value_name;
    }
    std::string text = f.help;
    if (f.is_required) {
      text += " (required)";
    } else if (!f.shown_default.empty()) {
      text += " (default:\x01" + f.shown_default + ")";  // \x01: a blank the wrap keeps
    }
    row(left, text);
  }
  row("-h, --help", "print this help on stdout and exit 0");
  row("--version", "print the version and exit 0");
  bool sizes = false;
  bool durations = false;
  for (const Flag& f : flags_) {
    sizes |= f.value_name.find("SIZE") != std::string::npos;
    durations |= f.value_name.find("DURATION") != std::string::npos;
  }
  if (sizes) {
    out += '\n';
    out += wrap("SIZE values take K, M, G or T (powers of 1024: 64K, 4M, 1G); a plain number is bytes unless "
                "the flag says otherwise.",
                0, 0, kHelpWidth);
    out += '\n';
  }
  if (durations) {
    if (!sizes) {
      out += '\n';
    }
    out += wrap("DURATION values take us, ms, s, m or h (200ms, 5s, 2m); a plain number is in the unit the "
                "flag names.",
                0, 0, kHelpWidth);
    out += '\n';
  }
  for (const std::string& e : epilog_) {
    out += '\n';
    std::size_t at = 0;
    while (at < e.size()) {  // each line of the paragraph wrapped on its own
      const std::size_t nl = std::min(e.find('\n', at), e.size());
      out += wrap(std::string_view(e).substr(at, nl - at), 0, 0, kHelpWidth);
      out += '\n';
      at = nl + 1;
    }
  }
  return out;
}

std::string Flags::version_line() const {
  std::string v = program_ + " (xtcp) " XTCP_PROJECT_VERSION;
  if (!library_version_.empty()) {
    v += ", libxtcp " + library_version_;
  }
  return v;
}

void Flags::parse(int argc, char** argv) {
  constexpr int kHelp = 'h';
  constexpr int kVersion = 1;
  constexpr int kFirst = 1000;
  std::vector<option> opts;
  for (std::size_t k = 0; k < flags_.size(); ++k) {
    for (const std::string& n : flags_[k].names) {
      opts.push_back(option{n.c_str() + 2, flags_[k].value_name.empty() ? no_argument : required_argument, nullptr,
                            kFirst + static_cast<int>(k)});
    }
  }
  opts.push_back(option{"help", no_argument, nullptr, kHelp});
  opts.push_back(option{"version", no_argument, nullptr, kVersion});
  opts.push_back(option{nullptr, 0, nullptr, 0});

  // The flag as the user typed it ("--rx-buffer" for "--rx-buffer=1X" or "--rx"), spelled
  // out in full when it was an abbreviation.
  auto typed = [&](const char* token, const Flag* f) {
    std::string t = token;
    t = t.substr(0, t.find('='));
    if (f != nullptr) {
      for (const std::string& n : f->names) {
        if (n.compare(0, t.size(), t) == 0) {
          return n;
        }
      }
    }
    return t;
  };

  // --help and --version win over everything else on the line (a bad flag before them
  // included), as far as "--" (the end of the flags).
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--") {
      break;
    }
    if (a == "--help" || a == "-h") {
      std::fputs(help().c_str(), stdout);
      std::exit(kExitOk);
    }
    if (a == "--version") {
      std::printf("%s\n", version_line().c_str());
      std::exit(kExitOk);
    }
  }
  opterr = 0;
  optind = 0;  // glibc: a full reset
  int c = 0;
  while ((c = getopt_long(argc, argv, "+:h", opts.data(), nullptr)) != -1) {
    if (c == kHelp) {
      std::fputs(help().c_str(), stdout);
      std::exit(kExitOk);
    }
    if (c == kVersion) {
      std::printf("%s\n", version_line().c_str());
      std::exit(kExitOk);
    }
    const char* last = argv[optind - 1];
    if (c == ':') {
      const Flag* f = optopt >= kFirst ? &flags_[static_cast<std::size_t>(optopt - kFirst)] : nullptr;
      fail(typed(last, f) + " needs a value" + (f != nullptr ? " (" + f->value_name + ")" : std::string()));
    }
    if (c == '?') {
      if (optopt >= kFirst || optopt == kHelp || optopt == kVersion) {
        const Flag* f = optopt >= kFirst ? &flags_[static_cast<std::size_t>(optopt - kFirst)] : nullptr;
        fail(typed(last, f) + " takes no value");
      }
      if (optopt != 0) {
        const char c1[2] = {static_cast<char>(optopt), '\0'};
        fail(cat({"unknown flag -", c1}));
      }
      const std::string t = typed(last, nullptr);
      int matches = 0;
      for (const Flag& f : flags_) {
        for (const std::string& n : f.names) {
          matches += n.compare(0, t.size(), t) == 0 ? 1 : 0;
        }
      }
      fail((matches > 1 ? "ambiguous flag " : "unknown flag ") + t);
    }
    Flag& f = flags_[static_cast<std::size_t>(c - kFirst)];
    // The flag's own token: "--x=v" is one argument, "--x v" two.
    const char* token = f.value_name.empty() || optarg != last ? last : argv[optind - 2];
    const std::string problem = f.set(optarg != nullptr ? std::string(optarg) : std::string());
    if (!problem.empty()) {
      fail(typed(token, &f) + ": " + problem);
    }
    f.seen = true;
  }
  if (optind < argc) {
    fail(cat({"unexpected argument ", quoted(argv[optind]), " (flags start with --)"}));
  }
  for (const Flag& f : flags_) {
    if (f.is_required && !f.seen) {
      fail(f.names.front() + " " + f.value_name + " is required");
    }
  }
}

std::string server_signals_help() {
  return "Signals: SIGINT and SIGTERM stop the program (it prints its counters and exits 0); "
         "SIGUSR1 prints every counter at once.\n";
}

std::string exit_codes_help() {
  return "Exit status: 0 success (or stopped by a signal as above), 1 a run-time failure (the "
         "message says which), 2 a bad, unknown or missing flag.\n";
}

// ---- signals --------------------------------------------------------------------------

void on_stop_signals(std::initializer_list<int> signals) {
  for (const int sig : signals) {
    install(sig, on_stop);
  }
}

void on_stats_signal(int sig) { install(sig, on_stats); }

void ignore_signal(int sig) {
  struct sigaction sa {};
  sa.sa_handler = SIG_IGN;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, nullptr);
}

bool stop_requested() { return g_stop.load() != 0; }
int stop_signal() { return g_stop_signal.load(); }
bool take_stats_request() { return g_stats.exchange(0) != 0; }
const std::atomic<int>& stop_flag() { return g_stop; }

// ---- counters -------------------------------------------------------------------------

void print_counters_text(std::FILE* out, const std::vector<Counter>& counters) {
  for (const Counter& c : counters) {
    std::fprintf(out, "%s %llu\n", c.name.c_str(), static_cast<unsigned long long>(c.value));
  }
}

void print_counters_json(std::FILE* out, std::string_view program, const std::vector<Counter>& counters) {
  std::string line = cat({"{\"time\": ", unix_time_now(), ", \"program\": ", json_string(program), ", \"counters\": {"});
  bool first = true;
  for (const Counter& c : counters) {
    line += cat({first ? "" : ", ", json_string(c.name), ": ", std::to_string(c.value)});
    first = false;
  }
  line += "}}\n";
  std::fputs(line.c_str(), out);
}

void add_stats_flags(Flags& flags, StatsOptions* options, const std::string& counted) {
  flags.custom("--stats-interval", "DURATION",
               "print " + counted + " this often; 0: never; a plain number is seconds; at least 10ms",
               "0", [options](const std::string& v) {
                 std::string why;
                 const auto d = parse_duration(v, std::chrono::seconds(1), &why);
                 if (!d) {
                   return why;
                 }
                 if (d->count() != 0 && (*d < std::chrono::milliseconds(10) || *d > std::chrono::hours(24))) {
                   return quoted(v) + " is outside 10ms to 24h (0: never)";
                 }
                 options->interval = *d;
                 return std::string();
               });
  flags.toggle("--stats-json",
               "print the counters (periodic, on SIGUSR1 and at exit) as one JSON object per line: "
               "{\"time\": UNIX_SECONDS, \"program\": NAME, \"counters\": {NAME: VALUE, ...}}; "
               "stdout then carries only these lines, other messages go to stderr",
               &options->json);
}

StatsPrinter::StatsPrinter(std::string program, StatsOptions options, Collect collect)
    : program_(std::move(program)), options_(options), collect_(std::move(collect)),
      next_(std::chrono::steady_clock::now() + options.interval) {}

int StatsPrinter::ms_until_due() const {
  if (options_.interval.count() == 0) {
    return INT32_MAX;
  }
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(next_ - std::chrono::steady_clock::now());
  return static_cast<int>(std::clamp<std::int64_t>(left.count() + 1, 0, INT32_MAX));
}

bool StatsPrinter::poll() {
  bool due = false;
  if (options_.interval.count() != 0) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_) {
      due = true;
      next_ += options_.interval;
      if (next_ <= now) {
        next_ = now + options_.interval;  // the loop was late: no burst of catch-up prints
      }
    }
  }
  const bool asked = take_stats_request();
  if (due || asked) {
    print();
  }
  return due || asked;
}

void StatsPrinter::print() {
  std::vector<Counter> counters;
  collect_(&counters);
  if (sink_) {
    sink_(counters);
    return;
  }
  if (options_.json) {
    print_counters_json(stdout, program_, counters);
  } else {
    std::printf("%s: counters at unix time %s\n", program_.c_str(), unix_time_now().c_str());
    print_counters_text(stdout, counters);
  }
  std::fflush(stdout);
}

}  // namespace xtcp::cli
