#!/usr/bin/env bash
# pcaps/record.sh: regenerates the recorded suites (pcaps/echo/, pcaps/im/) and the crafted
# one (pcaps/adversarial/). Each recorded capture is one run of xtcp-echo or xtcp-im on a
# TUN device in a throwaway network namespace (198.18.0.0/24: the kernel 198.18.0.1, the
# server 198.18.0.2), recorded with the program's own --pcap whole-link mirror while one
# scenario of pcaps/clients.py (Linux kernel TCP clients, Python sockets) talks to it. The
# namespace's sysctls vary the clients' SYN options. For the lossy capture the clients sit
# in a second namespace (198.18.1.2, behind a veth pair) and the server's namespace routes
# between them, dropping packets at random with nftables in its forward chain: the
# senders cannot tell (a drop on the sending host itself is reported to its TCP, which then
# just sends again in order), so the server meets real holes and out-of-order data. Needs root, /dev/net/tun, ip, nft (Debian: nftables), python3, and the
# programs built (XTCP_BUILD_DIR, default build/). Usage: pcaps/record.sh [NAME...]
# (default: every capture).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${XTCP_BUILD_DIR:-$ROOT/build}"
PCAPS="$ROOT/pcaps"
NS="xtcp-record-$$"
TUN=xrec0
SERVER_PID=""
LOG="$(mktemp /tmp/xtcp-record.XXXXXX)"

in_ns() { ip netns exec "$NS" "$@"; }

stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -INT "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}

cleanup() {
  local rc=$?
  stop_server
  ip netns del "$NS" 2>/dev/null || true
  ip netns del "$NS-c" 2>/dev/null || true
  rm -f "$LOG"
  exit "$rc"
}
trap cleanup EXIT

# record OUT PROGRAM PORT SCENARIO [sysctl=value | loss=PERCENT]...
record() {
  local out="$1" program="$2" port="$3" scenario="$4"
  shift 4
  ip netns add "$NS"
  in_ns ip link set lo up
  # IPv4 only: no router solicitations from the new TUN in the captures.
  in_ns sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  local loss=""
  for setting in "$@"; do
    case "$setting" in
      loss=*) loss="${setting#loss=}" ;;
      *) in_ns sysctl -q -w "$setting" ;;
    esac
  done
  rm -f "$out"
  ip netns exec "$NS" "$BUILD_DIR/bin/$program" --tun "$TUN" --ip 198.18.0.2 --kernel-ip 198.18.0.1/24 --port "$port" \
    --pcap "$out" >"$LOG" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    grep -q "^$program: " "$LOG" && break
    sleep 0.1
  done
  grep -q "^$program: " "$LOG" || { cat "$LOG"; echo "record.sh: $program did not start" >&2; exit 1; }
  local client_ns="$NS"
  if [ -n "$loss" ]; then
    # The clients behind a router: this namespace forwards between the veth and the TUN and
    # drops loss% of the packets both ways.
    client_ns="$NS-c"
    ip netns add "$client_ns"
    ip -n "$client_ns" link set lo up
    ip link add xrecv0 netns "$NS" type veth peer name xrecv1 netns "$client_ns"
    in_ns ip addr add 198.18.1.1/24 dev xrecv0
    in_ns ip link set xrecv0 up
    ip -n "$client_ns" addr add 198.18.1.2/24 dev xrecv1
    ip -n "$client_ns" link set xrecv1 up
    ip -n "$client_ns" route add default via 198.18.1.1
    in_ns sysctl -q -w net.ipv4.ip_forward=1
    in_ns nft -f - <<NFT
table inet xtcp_loss {
  chain drop_some {
    type filter hook forward priority 0; policy accept;
    tcp sport $port numgen random mod 100 < $loss drop
    tcp dport $port numgen random mod 100 < $loss drop
  }
}
NFT
  fi
  if ! ip netns exec "$client_ns" python3 "$PCAPS/clients.py" "$scenario" "$port"; then
    echo "record.sh: scenario $scenario failed; $out not kept" >&2
    stop_server
    rm -f "$out"
    exit 1
  fi
  stop_server
  ip netns del "$NS"
  [ "$client_ns" = "$NS" ] || ip netns del "$client_ns"
  printf '%-45s %6d bytes\n' "${out#"$ROOT"/}" "$(stat -c %s "$out")"
}

want() { [ "${#SELECTED[@]}" -eq 0 ] || printf '%s\n' "${SELECTED[@]}" | grep -qx "$1"; }
SELECTED=("$@")

mkdir -p "$PCAPS/echo" "$PCAPS/im" "$PCAPS/adversarial"
E="$PCAPS/echo"
I="$PCAPS/im"
want handshake-default && record "$E/handshake-default.pcap" xtcp-echo 7 echo-hello
want handshake-no-sack && record "$E/handshake-no-sack.pcap" xtcp-echo 7 echo-hello net.ipv4.tcp_sack=0
want handshake-no-timestamps && record "$E/handshake-no-timestamps.pcap" xtcp-echo 7 echo-hello net.ipv4.tcp_timestamps=0
want handshake-no-wscale && record "$E/handshake-no-wscale.pcap" xtcp-echo 7 echo-hello net.ipv4.tcp_window_scaling=0
want handshake-bare && record "$E/handshake-bare.pcap" xtcp-echo 7 echo-hello net.ipv4.tcp_sack=0 \
  net.ipv4.tcp_timestamps=0 net.ipv4.tcp_window_scaling=0
want bulk && record "$E/bulk.pcap" xtcp-echo 7 echo-bulk
want interleaved && record "$E/interleaved.pcap" xtcp-echo 7 echo-interleaved
want lossy && record "$E/lossy.pcap" xtcp-echo 7 echo-lossy loss=15
want zero-window && record "$E/zero-window.pcap" xtcp-echo 7 echo-zero-window
want closes && record "$E/closes.pcap" xtcp-echo 7 echo-closes
want im-chat && record "$I/chat.pcap" xtcp-im 5222 im-chat
want im-errors && record "$I/errors.pcap" xtcp-im 5222 im-errors
want im-resets && record "$I/resets.pcap" xtcp-im 5222 im-resets
if want adversarial; then
  "$BUILD_DIR/bin/xtcp-replay-craft" --out "$PCAPS/adversarial"
fi
