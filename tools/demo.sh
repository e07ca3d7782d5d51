#!/usr/bin/env bash
# tools/demo.sh: runs the xtcp echo server on a TUN device inside a throwaway network
# namespace and talks to it with ordinary kernel clients (ping, nc, Python sockets).
# Everything stays inside the namespace (198.18.0.0/24); it is deleted on exit.
# XTCP_BUILD_DIR picks the build dir (default build/); XTCP_ECHO_BIN another server binary.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${XTCP_BUILD_DIR:-$ROOT/build}"
ECHO_BIN="${XTCP_ECHO_BIN:-$BUILD_DIR/bin/xtcp-echo}"

NS="xtcp-demo-$$"
TUN=xtcp0
STACK_IP=198.18.0.2          # the address xtcp answers on, behind the TUN
KERNEL_CIDR=198.18.0.1/24    # the kernel's end of the TUN; clients use it as source
PORT=7
PCAP=/tmp/xtcp-demo.pcap
SERVER_LOG="$(mktemp /tmp/xtcp-demo-server.XXXXXX)"
SERVER_PID=""
FAILURES=0

say() { printf '\n--- %s\n' "$*"; }
pass() { printf '  PASS  %s\n' "$*"; }
fail() {
  printf '  FAIL  %s\n' "$*"
  FAILURES=$((FAILURES + 1))
}
in_ns() { ip netns exec "$NS" "$@"; }

cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  ip netns del "$NS" 2>/dev/null || true
  rm -f "$SERVER_LOG"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

create_namespace() {
  say "namespace $NS with TUN device $TUN"
  ip netns add "$NS"
  ip -n "$NS" link set lo up
  # IPv4 only: keep IPv6 chatter (router solicitations, MLD) off the TUN.
  in_ns sh -c 'echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6' 2>/dev/null || true
  ip -n "$NS" tuntap add dev "$TUN" mode tun
  ip -n "$NS" link show "$TUN"
}

check_build() {
  if [ ! -x "$ECHO_BIN" ]; then
    echo
    echo "The echo server is not built yet: $ECHO_BIN does not exist."
    echo "(The namespace and the TUN device were set up; the demo needs xtcp-echo to go on.)"
    exit 1
  fi
}

start_server() {
  say "starting $(basename "$ECHO_BIN") on $STACK_IP:$PORT (pcap: $PCAP)"
  # A background job of a script starts with SIGINT ignored; env restores the default so
  # the server can be stopped with SIGINT like from a terminal.
  env --default-signal=INT ip netns exec "$NS" "$ECHO_BIN" --tun "$TUN" --ip "$STACK_IP" \
    --kernel-ip "$KERNEL_CIDR" --port "$PORT" --pcap "$PCAP" >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
}

# Waits (up to 10 s) until the server accepts TCP connections.
wait_until_up() {
  local i
  for i in $(seq 1 50); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "the server exited during start-up:"
      cat "$SERVER_LOG"
      exit 1
    fi
    if in_ns nc -z -w 1 "$STACK_IP" "$PORT" 2>/dev/null; then
      echo "  up after $i attempt(s)"
      return 0
    fi
    sleep 0.2
  done
  echo "the server did not accept connections within 10 s; its output:"
  cat "$SERVER_LOG"
  exit 1
}

# The clients: each is an ordinary kernel TCP/IP peer inside the namespace.
drive_clients() {
  say "ping -c 3 $STACK_IP"
  if in_ns ping -c 3 -W 2 "$STACK_IP"; then
    pass "ICMP echo"
  else
    fail "ICMP echo"
  fi

  say "nc: one line to $STACK_IP:$PORT and back"
  local sent="hello xtcp from nc"
  local got
  got="$(printf '%s\n' "$sent" | in_ns nc -N -w 3 "$STACK_IP" "$PORT" || true)"
  printf '  sent: %s\n  got:  %s\n' "$sent" "$got"
  if [ "$got" = "$sent" ]; then
    pass "nc echo"
  else
    fail "nc echo"
  fi

  say "curl: an HTTP request to the echo port comes back verbatim (read as HTTP/0.9)"
  local reply
  # The echo server answers with the request itself and closes only after curl's FIN,
  # so curl stops at --max-time; what it printed is what counts.
  reply="$(in_ns curl -s --http0.9 --max-time 2 "http://$STACK_IP:$PORT/hello-xtcp" || true)"
  printf '  got: %s\n' "$(printf '%s' "$reply" | head -n 1 | tr -d '\r')"
  if printf '%s' "$reply" | head -n 1 | grep -q '^GET /hello-xtcp HTTP/1.1'; then
    pass "curl echo"
  else
    fail "curl echo"
  fi

  say "python3: 3 connections x 20 messages"
  if in_ns python3 - "$STACK_IP" "$PORT" <<'EOF'; then
import socket, sys

host, port = sys.argv[1], int(sys.argv[2])
conns = [socket.create_connection((host, port), timeout=5) for _ in range(3)]
for i in range(20):
    for n, c in enumerate(conns):
        msg = f"conn {n} message {i}\n".encode()
        c.sendall(msg)
        got = b""
        while len(got) < len(msg):
            chunk = c.recv(len(msg) - len(got))
            if not chunk:
                sys.exit(f"conn {n}: closed early after {got!r}")
            got += chunk
        if got != msg:
            sys.exit(f"conn {n}: sent {msg!r}, got {got!r}")
for c in conns:
    c.shutdown(socket.SHUT_WR)
    if c.recv(1) != b"":
        sys.exit("expected the server to close after our FIN")
    c.close()
print("  60 messages echoed on 3 connections, all closed cleanly")
EOF
    pass "python3 echo"
  else
    fail "python3 echo"
  fi
}

stop_server() {
  say "stopping the server (SIGINT)"
  kill -INT "$SERVER_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 50); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    fail "server still running 5 s after SIGINT; killing it"
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  local rc=0
  wait "$SERVER_PID" || rc=$?
  SERVER_PID=""
  echo "  exit status $rc; server output and counters:"
  sed 's/^/  | /' "$SERVER_LOG"
  if [ -s "$PCAP" ] && command -v tshark >/dev/null 2>&1; then
    say "first packets of $PCAP"
    tshark -n -r "$PCAP" 2>/dev/null | head -n 12 || true
  fi
}

print_manual() {
  say "try it by hand"
  cat <<EOF
  ip netns add xtcp-demo
  ip -n xtcp-demo link set lo up
  ip -n xtcp-demo tuntap add dev $TUN mode tun
  ip netns exec xtcp-demo $ECHO_BIN --tun $TUN --ip $STACK_IP \\
      --kernel-ip $KERNEL_CIDR --port $PORT --pcap $PCAP &
  ip netns exec xtcp-demo ping -c 3 $STACK_IP
  ip netns exec xtcp-demo nc $STACK_IP $PORT        # type lines, they come back
  kill -INT %1                                       # counters are printed on exit
  tshark -r $PCAP
  ip netns del xtcp-demo
EOF
}

main() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "demo.sh: needs root (it creates a network namespace and a TUN device)" >&2
    exit 1
  fi
  create_namespace
  check_build
  start_server
  wait_until_up
  drive_clients
  stop_server
  print_manual
  if [ "$FAILURES" -ne 0 ]; then
    say "$FAILURES check(s) failed"
    exit 1
  fi
  say "all checks passed"
}

main "$@"
