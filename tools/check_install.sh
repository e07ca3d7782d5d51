#!/usr/bin/env bash
# tools/check_install.sh: the "outside program" check. Installs the build into a throwaway
# prefix, builds server_examples/outside_c/upper_server.c (from xtcp only <xtcp/xtcp.h>)
# twice against that prefix -- Makefile + pkg-config, and CMake + find_package(xtcp) -- runs
# each on a TUN in a network namespace, drives it with a kernel client, captures the traffic
# on the kernel side with tcpdump and checks with tshark that every request's ACK rides on
# its answer and that the server sends no pure ACK (handshake and FIN ACKs aside).
# It also checks the package itself: the programs xtcp-echo, xtcp-im and xtcp-backend are in
# <prefix>/bin and start from there, pkg-config gives consumers no rpath (so the outside
# program runs with LD_LIBRARY_PATH, as a user of a non-system prefix would), and every
# symbol libxtcp.so exports carries the version node XTCP_0.2 (api/xtcp.map).
# XTCP_BUILD_DIR picks the build dir (default build/). Needs root for the namespace part.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${XTCP_BUILD_DIR:-$ROOT/build}"
SRC="$ROOT/server_examples/outside_c"
WORK="$(mktemp -d /tmp/xtcp-check-install.XXXXXX)"
PREFIX="$WORK/prefix"
NS="xtcp-install-$$"
TUN=xtcp0
STACK_IP=198.18.0.2
KERNEL_CIDR=198.18.0.1/24
PORT=7007
LINES=40
PIDS=()

say() { printf '\n--- %s\n' "$*"; }
die() {
  printf 'check_install: FAIL: %s\n' "$*" >&2
  exit 1
}
in_ns() { ip netns exec "$NS" "$@"; }

cleanup() {
  local rc=$?
  local pid
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  ip netns del "$NS" 2>/dev/null || true
  if [ "$rc" -eq 0 ]; then
    rm -rf "$WORK"
  else
    echo "check_install: files kept in $WORK" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -f "$BUILD_DIR/CMakeCache.txt" ] || die "$BUILD_DIR is not a configured build directory"

say "cmake --install $BUILD_DIR --prefix $PREFIX"
cmake --install "$BUILD_DIR" --prefix "$PREFIX" >"$WORK/install.log" 2>&1 ||
  { cat "$WORK/install.log"; die "cmake --install failed"; }
[ -f "$PREFIX/include/xtcp/xtcp.h" ] || die "the install has no include/xtcp/xtcp.h"
PC_DIRS="$(find "$PREFIX" -name xtcp.pc -printf '%h:' 2>/dev/null)"
[ -n "$PC_DIRS" ] || die "the install has no xtcp.pc (pkg-config file)"
CMAKE_CFG="$(find "$PREFIX" \( -name xtcpConfig.cmake -o -name xtcp-config.cmake \) -print -quit)"
[ -n "$CMAKE_CFG" ] || die "the install has no xtcpConfig.cmake (CMake package)"
find "$PREFIX" -type f | sed "s|^$PREFIX/|  |" | sort

say "programs in $PREFIX/bin"
for prog in xtcp-echo xtcp-im xtcp-backend; do
  [ -f "$PREFIX/bin/$prog" ] && [ -x "$PREFIX/bin/$prog" ] || die "the install has no bin/$prog"
done
# No library path: the installed programs find libxtcp.so relative to themselves.
env -u LD_LIBRARY_PATH "$PREFIX/bin/xtcp-echo" --help >"$WORK/echo-help.log" 2>&1 ||
  { cat "$WORK/echo-help.log"; die "$PREFIX/bin/xtcp-echo --help failed"; }
echo "  xtcp-echo, xtcp-im, xtcp-backend installed; xtcp-echo --help exits 0"

say "exported symbols of the installed libxtcp.so"
LIB="$(find "$PREFIX" -name 'libxtcp.so.*' -type f -print -quit)"
[ -n "$LIB" ] || die "the install has no libxtcp.so.* file"
objdump -T "$LIB" >"$WORK/dynsym.txt" || die "objdump -T $LIB failed"
# Defined dynamic symbols (not *UND*): the last two fields are the version and the name.
# The version node itself appears as an absolute symbol named XTCP_0.2.
awk '$0 !~ /\*UND\*/ && / (g|w) / { print $(NF - 1), $NF }' "$WORK/dynsym.txt" \
  >"$WORK/exported.txt"
EXPORTED="$(awk '$2 != "XTCP_0.2"' "$WORK/exported.txt" | wc -l)"
[ "$EXPORTED" -gt 0 ] || { cat "$WORK/dynsym.txt"; die "libxtcp.so exports no symbols"; }
if awk '$2 != "XTCP_0.2" && ($1 != "XTCP_0.2" || $2 !~ /^(xtcp_|XTCP_)/)' "$WORK/exported.txt" |
  grep .; then
  die "the symbols above are exported without the version node XTCP_0.2 or are not xtcp_*/XTCP_*"
fi
echo "  $EXPORTED symbols, all xtcp_*/XTCP_* at version XTCP_0.2 ($(basename "$LIB"))"

# The program is built from a copy outside the source tree, so nothing but the installed
# package can satisfy its includes and libraries.
mkdir -p "$WORK/src"
cp "$SRC/upper_server.c" "$SRC/Makefile" "$SRC/CMakeLists.txt" "$WORK/src/"
if grep -n '#include' "$WORK/src/upper_server.c" | grep -v -E '<xtcp/xtcp.h>|<(errno|signal|stdio|stdlib|string|time)\.h>|<sys/socket\.h>'; then
  die "upper_server.c includes something besides <xtcp/xtcp.h> and libc"
fi

say "pkg-config: $(PKG_CONFIG_PATH="$PC_DIRS" pkg-config --cflags --libs xtcp)"
case "$(PKG_CONFIG_PATH="$PC_DIRS" pkg-config --cflags xtcp)" in
  *"$ROOT"*) die "pkg-config --cflags points into the source tree" ;;
esac
# The package must not force an rpath on its consumers; where the library is found at run
# time is the user's choice (ldconfig, LD_LIBRARY_PATH, their own -Wl,-rpath).
case "$(PKG_CONFIG_PATH="$PC_DIRS" pkg-config --libs xtcp)" in
  *rpath* | *-Wl,-R* | *" -R"*) die "pkg-config --libs xtcp adds an rpath" ;;
esac
XTCP_LIBDIR="$(PKG_CONFIG_PATH="$PC_DIRS" pkg-config --variable=libdir xtcp)"
[ -f "$XTCP_LIBDIR/libxtcp.so" ] || die "pkg-config's libdir $XTCP_LIBDIR has no libxtcp.so"
PKG_CONFIG_PATH="$PC_DIRS" make -s -C "$WORK/src" upper_server >"$WORK/make.log" 2>&1 ||
  { cat "$WORK/make.log"; die "the Makefile (pkg-config) build failed"; }
mv "$WORK/src/upper_server" "$WORK/upper_server_pkgconfig"
if readelf -d "$WORK/upper_server_pkgconfig" | grep -E 'RPATH|RUNPATH'; then
  die "the program built with pkg-config's flags has an rpath"
fi
echo "  built $WORK/upper_server_pkgconfig (no rpath: runs with LD_LIBRARY_PATH=$XTCP_LIBDIR)"

say "cmake: find_package(xtcp) with CMAKE_PREFIX_PATH=$PREFIX"
cmake -S "$WORK/src" -B "$WORK/cmake-build" -DCMAKE_PREFIX_PATH="$PREFIX" >"$WORK/cmake.log" 2>&1 &&
  cmake --build "$WORK/cmake-build" >>"$WORK/cmake.log" 2>&1 ||
  { cat "$WORK/cmake.log"; die "the CMake find_package(xtcp) build failed"; }
cp "$WORK/cmake-build/upper_server" "$WORK/upper_server_cmake"
echo "  built $WORK/upper_server_cmake"

if [ "$(id -u)" -ne 0 ]; then
  say "SKIPPED the run on a TUN: needs root (network namespace); the builds above passed"
  exit 0
fi
for tool in tcpdump tshark python3; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (./run.sh deps)"
done

# A kernel client: LINES request lines, one at a time, each answered in upper case, then
# a half-close; the server must close after it.
client() {
  in_ns python3 - "$STACK_IP" "$PORT" "$LINES" <<'EOF'
import socket, sys

host, port, lines = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, port), timeout=5)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
f = s.makefile("rb")
for i in range(lines):
    req = f"request {i} from a kernel client\n".encode()
    s.sendall(req)
    got = f.readline()
    if got != req.upper():
        sys.exit(f"request {i}: sent {req!r}, got {got!r}")
s.shutdown(socket.SHUT_WR)
if f.read() != b"":
    sys.exit("data after the last answer")
s.close()
print(f"  {lines} lines answered in upper case, closed cleanly")
EOF
}

# Reads the capture with tshark and audits it: per connection, the first server segment
# whose ACK covers a request must carry data; server segments without data, SYN or FIN
# must only acknowledge a client FIN.
audit() {
  local pcap="$1"
  tshark -r "$pcap" -T fields -E separator=, -e frame.number -e ip.src -e tcp.srcport \
    -e tcp.dstport -e tcp.seq_raw -e tcp.ack_raw -e tcp.len -e tcp.flags \
    -Y "tcp.port == $PORT" >"$pcap.txt" 2>"$pcap.tshark.log" ||
    { cat "$pcap.tshark.log"; die "tshark cannot read $pcap"; }
  python3 - "$pcap.txt" "$STACK_IP" <<'EOF'
import sys

path, server = sys.argv[1], sys.argv[2]
flows = {}
req = by_answer = pure = fin_acks = answers = 0
problems = []
for line in open(path):
    frame, src, sport, dport, seq, ack, length, flags = line.strip().split(",")
    seq, ack, length, flags = int(seq), int(ack), int(length), int(flags, 16)
    syn, fin, rst, has_ack = flags & 2, flags & 1, flags & 4, flags & 16
    key = dport if src == server else sport
    f = flows.setdefault(key, {"pending": [], "end": None, "fin": None})
    if src != server:
        if syn:
            flows[key] = {"pending": [], "end": None, "fin": None}
            continue
        end = (seq + length) % 2**32
        if length > 0 and (f["end"] is None or (end - f["end"]) % 2**32 < 2**31 and end != f["end"]):
            req += 1
            f["pending"].append(end)
            f["end"] = end
        if fin:
            f["fin"] = (end + 1) % 2**32
        continue
    if rst or not has_ack:
        continue
    covered = 0
    while f["pending"] and (ack - f["pending"][0]) % 2**32 < 2**31:
        f["pending"].pop(0)
        covered += 1
    if syn:
        continue
    if length > 0:
        answers += 1
        by_answer += covered
    elif fin:
        if covered:
            problems.append(f"frame {frame}: FIN without an answer acknowledges a request")
    elif covered == 0 and f["fin"] is not None and ack == f["fin"]:
        fin_acks += 1
    else:
        pure += 1
        problems.append(f"frame {frame}: pure ACK from the server (acknowledges {covered} request(s))")
never = sum(len(f["pending"]) for f in flows.values())
print(f"  capture: {req} requests, {by_answer} ACKed by their answer, {answers} answers, "
      f"{pure} pure ACKs from the server, {fin_acks} FIN ACKs, {never} never ACKed")
for p in problems[:10]:
    print("  " + p)
if req == 0 or by_answer != req or pure or never or problems:
    sys.exit("ACKs did not ride on the answers")
EOF
}

# run_one NAME BINARY: the server in a fresh namespace, a capture, a client, the audit.
run_one() {
  local name="$1" bin="$2"
  local log="$WORK/$name.log" pcap="$WORK/$name.pcap" dump_log="$WORK/$name.tcpdump.log"
  say "$name: $bin on $STACK_IP:$PORT in namespace $NS"
  ip netns add "$NS"
  ip -n "$NS" link set lo up
  in_ns sh -c 'echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6' 2>/dev/null || true
  env --default-signal=INT LD_LIBRARY_PATH="$XTCP_LIBDIR" \
    ip netns exec "$NS" "$bin" "$TUN" "$STACK_IP" "$KERNEL_CIDR" "$PORT" >"$log" 2>&1 &
  local server=$!
  PIDS+=("$server")
  local i
  for i in $(seq 1 100); do
    grep -q '^upper_server: .* on ' "$log" 2>/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$log"; die "$name: the server exited at start-up"; }
    sleep 0.1
  done
  grep -q '^upper_server: .* on ' "$log" || { cat "$log"; die "$name: no start-up line in 10 s"; }
  # The kernel's side of the TUN is up now: capture what the kernel really sends/receives.
  env --default-signal=INT ip netns exec "$NS" tcpdump -n -U --immediate-mode -i "$TUN" -w "$pcap" \
    "tcp port $PORT" >"$dump_log" 2>&1 &
  local dump=$!
  PIDS+=("$dump")
  for i in $(seq 1 100); do
    grep -q 'listening on' "$dump_log" 2>/dev/null && break
    kill -0 "$dump" 2>/dev/null || { cat "$dump_log"; die "$name: tcpdump exited"; }
    sleep 0.1
  done
  client || { cat "$log"; die "$name: the kernel client failed"; }
  # Let the closing handshake finish before the capture stops (bounded).
  for i in $(seq 1 30); do
    [ "$(in_ns ss -tanH "dport = :$PORT" 2>/dev/null | grep -cv TIME-WAIT || true)" -eq 0 ] && break
    sleep 0.1
  done
  kill -INT "$dump" 2>/dev/null || true
  wait "$dump" 2>/dev/null || true
  kill -INT "$server" 2>/dev/null || true
  local rc=0
  wait "$server" || rc=$?
  sed 's/^/  | /' "$log"
  [ "$rc" -eq 0 ] || die "$name: the server exited with status $rc"
  grep -q "^upper_server: 1 connections, $LINES lines answered" "$log" ||
    die "$name: the server did not report 1 connection and $LINES lines"
  audit "$pcap"
  ip netns del "$NS"
  echo "  PASS  $name"
}

run_one pkg-config "$WORK/upper_server_pkgconfig"
run_one find_package "$WORK/upper_server_cmake"
say "check_install: all checks passed"
