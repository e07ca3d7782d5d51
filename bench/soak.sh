#!/usr/bin/env bash
# Soak: N IM users with churn against xtcp-im through TUN, for a long time, with the
# server's memory sampled every 30 s; xtcp-loadgen --soak fails the run if the resident set
# grows by more than 2% after the ramp while the connection count is steady.
#
#   sudo bench/soak.sh [--connections N] [--duration 30m] [--lifetime 600s] [--interval 120s]
#                      [--ramp 10000] [--out DIR]
#
# Each connection logs in as its own user, sends a message to a random logged-in user every
# --interval, and is closed and reopened after a lifetime drawn around --lifetime (churn:
# TIME-WAIT fills on the client side, the server's connection slots are reused). Everything
# runs in a network namespace made for the run and removed on every way out. Writes the
# loadgen's JSON summary, its progress lines and the server's counters into --out.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${XTCP_BIN_DIR:-$ROOT/build/bin}"
CONNS=1000000
DURATION=30m
LIFETIME=600s
INTERVAL=120s
RAMP=10000
OUT=/tmp/xtcp-soak

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --connections) CONNS="${2:?}"; shift 2 ;;
    --duration) DURATION="${2:?}"; shift 2 ;;
    --lifetime) LIFETIME="${2:?}"; shift 2 ;;
    --interval) INTERVAL="${2:?}"; shift 2 ;;
    --ramp) RAMP="${2:?}"; shift 2 ;;
    --out) OUT="${2:?}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "soak.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "soak.sh: needs root (network namespace, TUN devices)" >&2; exit 2; }

NS="xtcp-soak-$$"
SERVER_PID=""
cleanup() {
  trap - EXIT INT TERM HUP PIPE
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -INT "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

mkdir -p "$OUT"
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" sysctl -qw net.ipv4.ip_forward=1
# Room for the churn: connections being replaced are briefly counted twice.
ip netns exec "$NS" "$BIN/xtcp-im" --tun xtcp0 --ip 198.18.0.2 --kernel-ip 198.18.0.1/24 --port 7000 \
  --presence watched --pool-size 64M --max-connections $((CONNS + CONNS / 4 + 1024)) \
  --stats-json --stats-interval 60s >"$OUT/server.jsonl" 2>"$OUT/server.err" &
SERVER_PID=$!
sleep 1
kill -0 "$SERVER_PID" || { cat "$OUT/server.err" >&2; exit 1; }
echo "soak.sh: $CONNS users, churn lifetime $LIFETIME, message interval $INTERVAL, for $DURATION (logs in $OUT)"
status=0
ip netns exec "$NS" "$BIN/xtcp-loadgen" --target 198.18.0.2:7000 --workload im --connections "$CONNS" \
  --ramp "$RAMP" --interval "$INTERVAL" --lifetime "$LIFETIME" --duration "$DURATION" --drain 30s \
  --target-pid "$SERVER_PID" --soak --progress 60s --json "$OUT/loadgen.json" 2>&1 | tee "$OUT/loadgen.log" \
  || status=$?
ip netns exec "$NS" ip -s link show xtcp0 >"$OUT/tun.txt" 2>&1 || true
exit "$status"
