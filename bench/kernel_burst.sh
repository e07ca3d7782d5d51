#!/usr/bin/env bash
# Bursts from kernel TCP clients against an echo server, side by side in one run: xtcp-echo
# behind its TUN device, and the kernel's own TCP (xtcp-kernel-server --protocol echo) behind
# a veth pair, each in network namespaces made for the run (removed at the end). N
# connections of the kernel's TCP (xtcp-kernel-clients, worker processes of at most 18,000
# connections) each send one message at the same instant, every echo is checked; per burst:
# time to the last answer, latencies, the clients' retransmissions, the device's drops.
#
#   sudo bench/kernel_burst.sh [--connections N] [--bursts N] [--message-size SIZE]
#                              [--ramp RATE] [--servers xtcp,xtcp2,kernel] [--server-args "ARGS"]
#                              [--out DIR]
# --servers: xtcp (one stack), xtcpN (xtcp-echo --shards N), kernel. --server-args go to
# every xtcp-echo. Environment: BIN (default build/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
N=100000
BURSTS=3
SIZE=64
RAMP=20000
SERVERS=xtcp,kernel
SERVER_ARGS=""
OUT=/tmp/xtcp-kernel-burst
while [[ $# -gt 0 ]]; do
  case "$1" in
    --connections) N=$2; shift 2 ;;
    --bursts) BURSTS=$2; shift 2 ;;
    --message-size) SIZE=$2; shift 2 ;;
    --ramp) RAMP=$2; shift 2 ;;
    --servers) SERVERS=$2; shift 2 ;;
    --server-args) SERVER_ARGS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "kernel_burst.sh: unknown argument '$1'" >&2; echo "Try 'bench/kernel_burst.sh --help'." >&2; exit 2 ;;
  esac
done
[[ $N =~ ^[0-9]+$ && $N -ge 1 ]] || { echo "kernel_burst.sh: --connections: '$N' is not a positive number" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "kernel_burst.sh: needs root (network namespaces, TUN device)" >&2; exit 1; }
for b in xtcp-echo xtcp-kernel-server xtcp-kernel-clients; do
  [[ -x $BIN/$b ]] || { echo "kernel_burst.sh: $BIN/$b missing: cmake --build build -j2" >&2; exit 1; }
done
mkdir -p "$OUT"

TAG=$$
NAMESPACES=()
SERVER_PID=""
cleanup() {
  if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

new_ns() {
  ip netns add "$1"
  NAMESPACES+=("$1")
  ip netns exec "$1" ip link set lo up
}

clients() {  # clients NS SERVER_ADDR DEVICE NAME
  local args=(--target "$2:7" --src 198.18.64.1/18 --connections "$N" --bursts "$BURSTS" --message-size "$SIZE"
              --ramp "$RAMP" --json "$OUT/$4.json")
  [[ -n $3 ]] && args+=(--tun-dev "$3")
  # Every address of the clients' range is local (AnyIP): no per-address set-up.
  ip netns exec "$1" ip route add local 198.18.64.0/18 dev lo
  set +e
  ip netns exec "$1" "$BIN/xtcp-kernel-clients" "${args[@]}" | tee "$OUT/$4.txt"
  local rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}

stop_server() {  # prints the counters: SIGUSR1 first (the stack's too), then SIGINT
  kill -USR1 "$SERVER_PID" 2>/dev/null || true; sleep 1
  kill -INT "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
}

run_xtcp() {  # run_xtcp SHARDS
  local ns=xtcp-kb-x$TAG name=xtcp shards=()
  if [[ $1 -gt 1 ]]; then name=xtcp$1; shards=(--shards "$1"); fi
  new_ns "$ns"
  # shellcheck disable=SC2086
  ip netns exec "$ns" "$BIN/xtcp-echo" --tun xtcpb0 --ip 198.18.0.2 --kernel-ip 198.18.0.1/24 --port 7 \
      --max-connections $((N + 1024)) "${shards[@]}" $SERVER_ARGS >"$OUT/$name-server.txt" 2>&1 &
  SERVER_PID=$!
  # The start line comes once every shard (of --shards) has its queue: flows must not start
  # before, or the kernel would move them to a queue added later.
  for _ in $(seq 300); do
    grep -q '^xtcp-echo: 198.18.0.2:7' "$OUT/$name-server.txt" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/$name-server.txt" >&2; return 1; }
    sleep 0.1
  done
  echo "== $name: $N kernel clients -> xtcp-echo ${shards[*]} $SERVER_ARGS behind TUN (queue $(ip netns exec "$ns" cat /sys/class/net/xtcpb0/tx_queue_len) packets); load $(cut -d' ' -f1-3 /proc/loadavg)"
  local rc=0
  clients "$ns" 198.18.0.2 xtcpb0 "$name" || rc=$?
  stop_server
  echo "xtcp-echo: $(grep -E '^(tcp\.(segs_in|segs_out|retransmits|rto_expirations|dsack_blocks_in|answers_from_cache|crossed_duplicates)|link\.(errors|backlog_polls)) ' "$OUT/$name-server.txt" | tr '\n' ' ')"
  ip netns del "$ns"
  return "$rc"
}

# Packets the kernel dropped because a CPU's input backlog (net.core.netdev_max_backlog) was
# full: where a veth pair drops in a burst (second column of softnet_stat, hex, per CPU).
softnet_drops() {
  local total=0 line
  while read -r -a line; do total=$((total + 0x${line[1]})); done </proc/net/softnet_stat
  echo "$total"
}

run_kernel() {
  local cns=xtcp-kb-c$TAG sns=xtcp-kb-s$TAG
  new_ns "$cns"
  new_ns "$sns"
  ip link add kbc$TAG netns "$cns" type veth peer name kbs$TAG netns "$sns"
  ip netns exec "$cns" ip addr add 198.18.0.1/24 dev kbc$TAG
  ip netns exec "$sns" ip addr add 198.18.0.2/24 dev kbs$TAG
  ip netns exec "$cns" ip link set kbc$TAG up
  ip netns exec "$sns" ip link set kbs$TAG up
  ip netns exec "$sns" ip route add 198.18.64.0/18 via 198.18.0.1
  ip netns exec "$sns" sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535
  local procs=$(( (N + 17999) / 18000 ))
  ip netns exec "$sns" "$BIN/xtcp-kernel-server" --protocol echo --listen 198.18.0.2:7 --processes "$procs" \
      >"$OUT/kernel-server.txt" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    ip netns exec "$sns" ss -ltn 2>/dev/null | grep -q 198.18.0.2:7 && break
    sleep 0.1
  done
  local before
  before=$(softnet_drops)
  echo "== kernel: $N kernel clients -> xtcp-kernel-server --protocol echo ($procs processes) behind a veth pair; load $(cut -d' ' -f1-3 /proc/loadavg)"
  local rc=0
  clients "$cns" 198.18.0.2 "" kernel || rc=$?
  echo "kernel: input backlog drops during the run (softnet_stat, machine-wide) $(( $(softnet_drops) - before )); server namespace: TcpExt ListenOverflows $(ip netns exec "$sns" nstat -az TcpExtListenOverflows | awk '/ListenOverflows/ {print $2}'), RetransSegs $(ip netns exec "$sns" nstat -az TcpRetransSegs | awk '/RetransSegs/ {print $2}')"
  stop_server
  ip netns del "$cns"; ip netns del "$sns"
  return "$rc"
}

STATUS=0
IFS=, read -r -a LIST <<<"$SERVERS"
for s in "${LIST[@]}"; do
  case "$s" in
    xtcp) run_xtcp 1 || STATUS=1 ;;
    xtcp[1-9]|xtcp[1-9][0-9]) run_xtcp "${s#xtcp}" || STATUS=1 ;;
    kernel) run_kernel || STATUS=1 ;;
    *) echo "kernel_burst.sh: --servers: '$s' is not xtcp, xtcpN (N shards) or kernel" >&2; exit 2 ;;
  esac
done
echo "results (JSON, text, server logs): $OUT"
exit $STATUS
