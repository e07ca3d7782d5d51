#!/bin/sh
# Builds xtcp in Release and runs every benchmark (see docs/benchmarks.md): per-segment engine
# costs (bench_segments), memory per connection (bench_memory) and, as root, the TUN bulk
# transfer xtcp vs kernel TCP (bench_tun_bulk, inside throwaway network namespaces).
#
#   tools/bench.sh [--no-tun] [bench_tun_bulk options, e.g. --size 256 --repeat 5]
#
# XTCP_BENCH_BUILD_DIR overrides the build directory (default: build-bench in the repo).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${XTCP_BENCH_BUILD_DIR:-$root/build-bench}
run_tun=1
if [ "${1:-}" = "--no-tun" ]; then
  run_tun=0
  shift
fi

# -Wno-error=stringop-overflow: GCC 12 at -O3 reports a false positive in
# stack/wire/ipv4.cc (format_ipv4); without it a Release build stops there.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DXTCP_TESTS=OFF \
         -DCMAKE_CXX_FLAGS=-Wno-error=stringop-overflow &&
       cmake --build "$build" -j"$(nproc)" --target bench_segments bench_memory bench_tun_bulk; } \
     >"$log" 2>&1; then
  cat "$log"
  echo "build failed" >&2
  exit 1
fi

echo "# Machine"
echo "nproc: $(nproc)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "kernel: $(uname -r)"
echo "load average: $(cat /proc/loadavg)"
echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo

echo "# bench_segments (median of 5 repetitions)"
"$build/bin/bench_segments" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_min_time=0.5 2>&1 | grep -v -e '_mean' -e '_stddev' -e '_cv'
echo

"$build/bin/bench_memory" --conns 100000
echo
"$build/bin/bench_memory" --conns 1000000
echo

if [ "$run_tun" -eq 1 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench_tun_bulk skipped: needs root"
  else
    "$build/bin/bench_tun_bulk" "$@"
  fi
fi
