#!/usr/bin/env bash
# A burst from kernel TCP clients against xtcp-echo behind its TUN device, in a network
# namespace made for the run (removed at the end): N connections of the kernel's own TCP
# (xtcp-kernel-clients, worker processes of at most 18,000 connections), every one sends one
# message at the same instant, every echo is checked; per burst: time to the last answer,
# latencies, the clients' retransmissions and the TUN queue's drops.
#
#   sudo bench/kernel_burst.sh [--connections N] [--bursts N] [--message-size SIZE]
#                              [--ramp RATE] [--server-args "ARGS"] [--json FILE]
# Environment: BIN (default build/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
N=100000
BURSTS=3
SIZE=64
RAMP=20000
SERVER_ARGS=""
JSON=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --connections) N=$2; shift 2 ;;
    --bursts) BURSTS=$2; shift 2 ;;
    --message-size) SIZE=$2; shift 2 ;;
    --ramp) RAMP=$2; shift 2 ;;
    --server-args) SERVER_ARGS=$2; shift 2 ;;
    --json) JSON=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "kernel_burst.sh: unknown argument '$1'" >&2; echo "Try 'bench/kernel_burst.sh --help'." >&2; exit 2 ;;
  esac
done
[[ $(id -u) -eq 0 ]] || { echo "kernel_burst.sh: needs root (network namespace, TUN device)" >&2; exit 1; }
for b in xtcp-echo xtcp-kernel-clients; do
  [[ -x $BIN/$b ]] || { echo "kernel_burst.sh: $BIN/$b missing: cmake --build build -j2" >&2; exit 1; }
done

NS=xtcp-kburst-$$
SERVER_PID=""
cleanup() {
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
# Every address of the clients' range is local (AnyIP): no per-address set-up for 2+ sources.
ip netns exec "$NS" ip route add local 198.18.64.0/18 dev lo
# The kernel's defaults for many sockets in one namespace (the accept side is xtcp's).
ip netns exec "$NS" sysctl -qw net.ipv4.tcp_max_orphans=4000000 net.core.somaxconn=65535 2>/dev/null || true

LOG=$(mktemp /tmp/xtcp-kburst-server.XXXXXX)
# shellcheck disable=SC2086
ip netns exec "$NS" "$BIN/xtcp-echo" --tun xtcpb0 --ip 198.18.0.2 --kernel-ip 198.18.0.1/24 --port 7 \
    --max-connections $((N + 1024)) $SERVER_ARGS >"$LOG" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
  ip netns exec "$NS" ip link show xtcpb0 >/dev/null 2>&1 && ip netns exec "$NS" ip addr show xtcpb0 | grep -q 198.18.0.1 && break
  sleep 0.1
done
QLEN=$(ip netns exec "$NS" cat /sys/class/net/xtcpb0/tx_queue_len)
echo "kernel_burst.sh: $N kernel clients -> xtcp-echo $SERVER_ARGS (TUN queue $QLEN packets), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
ARGS=(--target 198.18.0.2:7 --src 198.18.64.1/18 --connections "$N" --bursts "$BURSTS" --message-size "$SIZE"
      --ramp "$RAMP" --tun-dev xtcpb0)
[[ -n $JSON ]] && ARGS+=(--json "$JSON")
set +e
ip netns exec "$NS" "$BIN/xtcp-kernel-clients" "${ARGS[@]}"
RC=$?
set -e
kill -USR1 "$SERVER_PID"; sleep 1
kill -INT "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""
echo "xtcp-echo: $(grep -E '^(tcp\.(crossed_duplicates|answers_from_cache|segs_in|segs_out|retransmits|fast_retransmits|rto_expirations|dsack_blocks_in|spurious_undone|sack_blocks_invalid|drop_no_memory)|link\.(errors|backlog_polls)|tcp\.retransmits_syn_ack|conn\.[a-z_]+|pool\.rx_dropped_full) ' "$LOG" | tr '\n' ' ')"
rm -f "$LOG"
exit $RC
