#!/usr/bin/env bash
# run.sh: one entry point for setting up, building, testing and demonstrating xtcp on
# Debian 12 (as root).  ./run.sh deps | build | test | demo
# Build directories can be moved with XTCP_BUILD_DIR, XTCP_RELEASE_DIR, XTCP_ASAN_DIR,
# XTCP_FUZZ_DIR. Every configure here turns warnings into errors (-DXTCP_WERROR=ON).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

BUILD_DIR="${XTCP_BUILD_DIR:-$ROOT/build}"
RELEASE_DIR="${XTCP_RELEASE_DIR:-$ROOT/build-release}"
ASAN_DIR="${XTCP_ASAN_DIR:-$ROOT/build-asan}"
FUZZ_DIR="${XTCP_FUZZ_DIR:-$ROOT/build-fuzz}"
FUZZ_SECONDS="${XTCP_FUZZ_SECONDS:-60}"
JOBS="$(nproc)"

# Debian packages the build, the tests, the demo and the fuzzers need.
PACKAGES=(
  cmake g++ clang make pkg-config
  libtins-dev libpcap-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  iproute2 tshark tcpdump netcat-openbsd curl python3 iputils-ping nftables
  liburing-dev
  haproxy  # the proxy_bench_smoke test runs it beside xtcp-proxy
  libclang-rt-14-dev
)

log() { printf '\n=== %s\n' "$*"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

usage() {
  cat <<'EOF'
usage: ./run.sh <command>

  deps    install the missing Debian packages (apt-get; needs root)
  build   configure and build build/ (RelWithDebInfo, tests on); programs in build/bin/
  test    deps + build + ctest + tools/check_install.sh (an outside C program built
          against the installed package, run on a TUN, its capture checked), then a
          Release build (-O3, NDEBUG) + ctest (build-release/), then an ASan/UBSan
          build + ctest (build-asan/), then a bounded libFuzzer run of every fuzz
          target (build-fuzz/, needs clang)
  demo    deps + build + tools/demo.sh (echo and IM servers on a TUN in a namespace)

Every build here treats compiler warnings as errors (-DXTCP_WERROR=ON; a plain cmake
configure leaves it off). Build directories: XTCP_BUILD_DIR, XTCP_RELEASE_DIR,
XTCP_ASAN_DIR, XTCP_FUZZ_DIR; fuzzing time per target: XTCP_FUZZ_SECONDS (60).
Network tests and the demo need root: they create their own network namespaces.
EOF
}

is_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

cmd_deps() {
  local missing=()
  local pkg
  for pkg in "${PACKAGES[@]}"; do
    if ! is_installed "$pkg"; then
      missing+=("$pkg")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    echo "deps: all ${#PACKAGES[@]} packages already installed"
    return 0
  fi
  log "deps: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    die "missing packages (${missing[*]}); run as root to install them"
  fi
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer it up front (no) so the
  # install never stops at a debconf prompt.
  echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
}

# configure_and_build <dir> [cmake options...]
configure_and_build() {
  local dir="$1"
  shift
  cmake -S "$ROOT" -B "$dir" "$@"
  cmake --build "$dir" -j"$JOBS"
}

cmd_build() {
  log "build: $BUILD_DIR"
  local type=()
  # Keep the build type of an existing build dir; default to optimized with debug info.
  if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    type=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
  fi
  configure_and_build "$BUILD_DIR" "${type[@]}" -DXTCP_TESTS=ON -DXTCP_WERROR=ON
  echo "build: programs are in $BUILD_DIR/bin/"
}

run_ctest() {
  local dir="$1"
  log "ctest: $dir"
  ctest --test-dir "$dir" --output-on-failure
}

# The outside-program check of issue 3: install, build against the package (pkg-config and
# find_package), run on a TUN, verify on the captured traffic that ACKs ride on answers.
stage_check_install() {
  log "install check: tools/check_install.sh ($BUILD_DIR)"
  XTCP_BUILD_DIR="$BUILD_DIR" "$ROOT/tools/check_install.sh"
}

# The optimized build users get from a plain configure (-O3, NDEBUG: assert() compiled out),
# with its own warnings (GCC finds more at -O3) and the whole test suite.
stage_release() {
  log "release: Release build in $RELEASE_DIR"
  local start=$SECONDS
  configure_and_build "$RELEASE_DIR" -DCMAKE_BUILD_TYPE=Release -DXTCP_WERROR=ON -DXTCP_TESTS=ON
  local built=$SECONDS
  log "release: configure + build took $((built - start)) s"
  run_ctest "$RELEASE_DIR"
  log "release: ctest took $((SECONDS - built)) s"
}

stage_sanitizers() {
  log "sanitizers: ASan + UBSan build in $ASAN_DIR"
  configure_and_build "$ASAN_DIR" -DXTCP_SANITIZE=ON -DXTCP_BENCH=OFF -DXTCP_TESTS=ON \
    -DXTCP_WERROR=ON
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}" \
    UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
    run_ctest "$ASAN_DIR"
}

stage_fuzz() {
  if ! command -v clang++ >/dev/null 2>&1; then
    log "fuzz: clang++ not found, fuzzing skipped"
    return 0
  fi
  log "fuzz: libFuzzer build in $FUZZ_DIR"
  # Only the fuzz targets: the rest of the tree (the shared C API library linked with
  # --no-undefined, the programs) is not meant to link against fuzzer-instrumented objects.
  CC=clang CXX=clang++ cmake -S "$ROOT" -B "$FUZZ_DIR" -DXTCP_FUZZ=ON -DXTCP_TESTS=OFF \
    -DXTCP_BENCH=OFF -DXTCP_WERROR=ON
  local names=()
  local src
  for src in "$ROOT"/fuzz/fuzz_*.cc; do
    [ -f "$src" ] && names+=("$(basename "$src" .cc)")
  done
  if [ "${#names[@]}" -gt 0 ]; then
    cmake --build "$FUZZ_DIR" -j"$JOBS" --target "${names[@]}"
  fi

  local targets=()
  local f
  for f in "$FUZZ_DIR"/bin/fuzz_*; do
    if [ -f "$f" ] && [ -x "$f" ]; then
      targets+=("$f")
    fi
  done
  if [ "${#targets[@]}" -eq 0 ]; then
    log "fuzz: no fuzz targets built yet (nothing matches $FUZZ_DIR/bin/fuzz_*)"
    return 0
  fi
  for f in "${targets[@]}"; do
    local name corpus artifacts
    name="$(basename "$f")"
    corpus="$FUZZ_DIR/corpus/$name"
    artifacts="$FUZZ_DIR/artifacts/$name"
    mkdir -p "$corpus" "$artifacts"
    # Seeds checked in under fuzz/corpus/<target>/ start the corpus; new finds stay in
    # the build dir so the source tree is not modified.
    if [ -d "$ROOT/fuzz/corpus/$name" ]; then
      cp -n "$ROOT/fuzz/corpus/$name"/* "$corpus"/ 2>/dev/null || true
    fi
    log "fuzz: $name for ${FUZZ_SECONDS}s"
    "$f" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus"
  done
  log "fuzz: ${#targets[@]} target(s) ran ${FUZZ_SECONDS}s each without a finding"
}

cmd_test() {
  cmd_deps
  cmd_build
  run_ctest "$BUILD_DIR"
  stage_check_install
  stage_release
  stage_sanitizers
  stage_fuzz
  log "test: all stages passed"
}

cmd_demo() {
  cmd_deps
  cmd_build
  log "demo: tools/demo.sh"
  XTCP_BUILD_DIR="$BUILD_DIR" exec "$ROOT/tools/demo.sh"
}

if [ "$#" -ne 1 ]; then
  usage >&2
  exit 2
fi
case "$1" in
  deps) cmd_deps ;;
  build) cmd_build ;;
  test) cmd_test ;;
  demo) cmd_demo ;;
  -h | --help | help) usage ;;
  *)
    printf 'run.sh: unknown command "%s"\n\n' "$1" >&2
    usage >&2
    exit 2
    ;;
esac
