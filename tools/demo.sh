#!/usr/bin/env bash
# tools/demo.sh: runs the xtcp echo server (xtcp-echo) and then the instant-messaging
# server (xtcp-im), both on the xtcp API, on a TUN device inside a throwaway network
# namespace, and talks to them with ordinary kernel clients (ping, nc, curl, Python); then
# xtcp-im again in forwarding mode, its clients' requests answered by xtcp-backend through
# NetPDU over the namespace's loopback; and last a 20-second xtcp-loadgen run of 10,000 IM
# users against xtcp-im, through TUN. Everything stays inside the namespace
# (198.18.0.0/24 and its own 127.0.0.1); it is deleted on exit. XTCP_BUILD_DIR picks the
# build dir (default build/); XTCP_ECHO_BIN / XTCP_IM_BIN / XTCP_BACKEND_BIN /
# XTCP_LOADGEN_BIN other binaries.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${XTCP_BUILD_DIR:-$ROOT/build}"
ECHO_BIN="${XTCP_ECHO_BIN:-$BUILD_DIR/bin/xtcp-echo}"
IM_BIN="${XTCP_IM_BIN:-$BUILD_DIR/bin/xtcp-im}"
BACKEND_BIN="${XTCP_BACKEND_BIN:-$BUILD_DIR/bin/xtcp-backend}"
LOADGEN_BIN="${XTCP_LOADGEN_BIN:-$BUILD_DIR/bin/xtcp-loadgen}"
LOAD_USERS=10000             # the closing load run: IM users, each its own connection
LOAD_JSON=/tmp/xtcp-demo-loadgen.json

NS="xtcp-demo-$$"
TUN=xtcp0
STACK_IP=198.18.0.2          # the address xtcp answers on, behind the TUN
KERNEL_CIDR=198.18.0.1/24    # the kernel's end of the TUN; clients use it as source
PORT=7
IM_PORT=5222
PCAP=/tmp/xtcp-demo.pcap
IM_PCAP=/tmp/xtcp-demo-im.pcap
FORWARD_PCAP=/tmp/xtcp-demo-im-forward.pcap
BACKEND_ADDR=127.0.0.1:7400  # the namespace's own loopback
SERVER_LOG="$(mktemp /tmp/xtcp-demo-server.XXXXXX)"
BACKEND_LOG="$(mktemp /tmp/xtcp-demo-backend.XXXXXX)"
SERVER_PID=""
BACKEND_PID=""
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
  if [ -n "$BACKEND_PID" ] && kill -0 "$BACKEND_PID" 2>/dev/null; then
    kill -KILL "$BACKEND_PID" 2>/dev/null || true
    wait "$BACKEND_PID" 2>/dev/null || true
  fi
  ip netns del "$NS" 2>/dev/null || true
  rm -f "$SERVER_LOG" "$BACKEND_LOG"
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
  local bin
  for bin in "$ECHO_BIN" "$IM_BIN" "$BACKEND_BIN" "$LOADGEN_BIN"; do
    if [ ! -x "$bin" ]; then
      echo
      echo "The server is not built yet: $bin does not exist."
      echo "(The namespace and the TUN device were set up; the demo needs it to go on.)"
      exit 1
    fi
  done
}

# start_server BINARY PORT PCAP [MORE FLAGS...]
start_server() {
  local bin="$1" port="$2" pcap="$3"
  shift 3
  say "starting $(basename "$bin") $* on $STACK_IP:$port (pcap: $pcap)"
  # A background job of a script starts with SIGINT ignored; env restores the default so
  # the server can be stopped with SIGINT like from a terminal.
  env --default-signal=INT ip netns exec "$NS" "$bin" --tun "$TUN" --ip "$STACK_IP" \
    --kernel-ip "$KERNEL_CIDR" --port "$port" --pcap "$pcap" "$@" >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
}

# The IM backend on the namespace's loopback; waits (up to 10 s) for its start-up line.
start_backend() {
  say "starting xtcp-backend on $BACKEND_ADDR (inside the namespace)"
  env --default-signal=INT ip netns exec "$NS" "$BACKEND_BIN" --listen "$BACKEND_ADDR" \
    >"$BACKEND_LOG" 2>&1 &
  BACKEND_PID=$!
  local i
  for i in $(seq 1 50); do
    if grep -q '^xtcp-backend: listening' "$BACKEND_LOG"; then
      return 0
    fi
    if ! kill -0 "$BACKEND_PID" 2>/dev/null; then
      break
    fi
    sleep 0.2
  done
  echo "xtcp-backend did not start; its output:"
  cat "$BACKEND_LOG"
  exit 1
}

stop_backend() {
  say "stopping xtcp-backend (SIGINT)"
  kill -INT "$BACKEND_PID" 2>/dev/null || true
  local rc=0
  wait "$BACKEND_PID" || rc=$?
  BACKEND_PID=""
  sed 's/^/  | /' "$BACKEND_LOG"
  if [ "$rc" -eq 0 ]; then
    pass "backend stopped cleanly on SIGINT"
  else
    fail "backend exit status $rc after SIGINT"
  fi
}

# wait_until_up PORT: waits (up to 10 s) until the server accepts TCP connections.
wait_until_up() {
  local port="$1"
  local i
  for i in $(seq 1 50); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "the server exited during start-up:"
      cat "$SERVER_LOG"
      exit 1
    fi
    if in_ns nc -z -w 1 "$STACK_IP" "$port" 2>/dev/null; then
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

# Two Python clients chat through xtcp-im; the conversation is printed as it happens.
drive_im_clients() {
  say "python3: alice and bob chat through xtcp-im on $STACK_IP:$IM_PORT"
  if in_ns python3 - "$STACK_IP" "$IM_PORT" <<'EOF'; then
import socket, sys

host, port = sys.argv[1], int(sys.argv[2])

class Client:
    def __init__(self, name):
        self.name = name
        self.sock = socket.create_connection((host, port), timeout=5)
        self.file = self.sock.makefile("rb")

    def send(self, line):
        print(f"  {self.name:5} > {line}")
        self.sock.sendall(line.encode() + b"\n")

    def expect(self, want):
        got = self.file.readline().decode().rstrip("\n")
        print(f"  {self.name:5} < {got}")
        if got != want:
            sys.exit(f"{self.name}: expected {want!r}, got {got!r}")

alice, bob = Client("alice"), Client("bob")
alice.send("LOGIN alice"); alice.expect("OK")
bob.send("LOGIN bob");     bob.expect("OK")
alice.expect("ONLINE bob")
alice.send("LIST");        alice.expect("USERS alice bob")
alice.send("MSG bob hi bob, lunch at noon?"); alice.expect("OK")
bob.expect("FROM alice hi bob, lunch at noon?")
bob.send("MSG alice yes! see you there"); bob.expect("OK")
alice.expect("FROM bob yes! see you there")
bob.send("MSG carol are you there?"); bob.expect("ERR offline")
bob.send("HELLO");         bob.expect("ERR unknown-command")
bob.send("QUIT");          bob.expect("BYE")
alice.expect("OFFLINE bob")
if bob.file.read() != b"":
    sys.exit("bob: expected the server to close after BYE")
alice.sock.shutdown(socket.SHUT_WR)
if alice.file.read() != b"":
    sys.exit("alice: expected the server to close after our FIN")
print("  conversation complete; both connections closed by the server")
EOF
    pass "python3 IM chat (LOGIN, presence, LIST, MSG, errors, QUIT)"
  else
    fail "python3 IM chat"
  fi
}

# show_counters PROGRAM: SIGUSR1 makes the running server print every counter (engine,
# API, memory and its own) at once; a few of them are shown here.
show_counters() {
  local prog="$1"
  local header="$prog: counters at unix time"
  say "kill -USR1: $prog prints every counter and keeps running"
  kill -USR1 "$SERVER_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 50); do
    grep -q "^$header" "$SERVER_LOG" && break
    sleep 0.1
  done
  if ! grep -q "^$header" "$SERVER_LOG"; then
    fail "no counters within 5 s of SIGUSR1"
    return
  fi
  local block
  block="$(awk -v h="$header" 'index($0, h) == 1 { on = 1; next }
    on && /^[a-z0-9_.]+ [0-9]+$/ { print; next } { on = 0 }' "$SERVER_LOG")"
  printf '%s\n' "$block" | grep -E '^(tcp\.passive_opens|tcp\.segs_in|tcp\.retransmits|api\.acks_on_answers|api\.acks_alone|mem\.total|im\.logins|im\.messages) ' |
    sed 's/^/  | /'
  echo "  ($(printf '%s\n' "$block" | wc -l) counters in all; --stats-interval 5s prints them every 5 s,"
  echo "   --stats-json as one JSON object per line)"
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    pass "counters on SIGUSR1, server still running"
  else
    fail "the server stopped on SIGUSR1"
  fi
}

# stop_server PCAP: SIGINT, the server's counters, the first packets of its capture.
stop_server() {
  local pcap="$1"
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
  echo "  exit status $rc; server output and counters (the SIGUSR1 print left out):"
  awk '/: counters at unix time/ { skip = 1; next } skip && /^[a-z0-9_.]+ [0-9]+$/ { next }
    { skip = 0; print }' "$SERVER_LOG" | sed 's/^/  | /'
  if [ "$rc" -eq 0 ]; then
    pass "server stopped cleanly on SIGINT"
  else
    fail "server exit status $rc after SIGINT"
  fi
  if [ -s "$pcap" ] && command -v tshark >/dev/null 2>&1; then
    say "first packets of $pcap"
    tshark -n -r "$pcap" 2>/dev/null | head -n 12 || true
  fi
}

# A short load run: xtcp-loadgen (an xtcp stack in client mode behind its own TUN device,
# sources 198.18.128.0/17) logs in LOAD_USERS users and has each send a message to a random
# other user every second for 20 s; the kernel routes between the two TUN devices. Every
# message must arrive once, in order, at its target.
load_run() {
  say "xtcp-loadgen: $LOAD_USERS IM users against xtcp-im for 20 s, through TUN"
  in_ns sysctl -qw net.ipv4.ip_forward=1
  env --default-signal=INT ip netns exec "$NS" "$IM_BIN" --tun "$TUN" --ip "$STACK_IP" \
    --kernel-ip "$KERNEL_CIDR" --port "$IM_PORT" --presence watched >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  wait_until_up "$IM_PORT"
  local rc=0
  in_ns "$LOADGEN_BIN" --target "$STACK_IP:$IM_PORT" --workload im --connections "$LOAD_USERS" \
    --ramp 5000 --interval 1s --duration 20s --progress 2s --target-pid "$SERVER_PID" \
    --json "$LOAD_JSON" || rc=$?
  echo "  the JSON summary (latency percentiles, packets, memory): $LOAD_JSON"
  if [ "$rc" -eq 0 ]; then
    pass "$LOAD_USERS users logged in, every message delivered once and in order"
  else
    fail "xtcp-loadgen exited with status $rc"
  fi
  kill -INT "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
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
  kill -USR1 %1                                      # every counter now; it keeps running
  kill -INT %1                                       # counters are printed on exit
  tshark -r $PCAP
  ip netns exec xtcp-demo $IM_BIN --tun $TUN --ip $STACK_IP \\
      --kernel-ip $KERNEL_CIDR --port $IM_PORT &      # docs/im-protocol.md
  ip netns exec xtcp-demo nc $STACK_IP $IM_PORT     # LOGIN me, LIST, MSG me hi, QUIT
  kill -INT %2
  ip netns exec xtcp-demo $BACKEND_BIN --listen $BACKEND_ADDR &
  ip netns exec xtcp-demo $IM_BIN --tun $TUN --ip $STACK_IP \\
      --kernel-ip $KERNEL_CIDR --port $IM_PORT --backend $BACKEND_ADDR &   # forwarding mode
  ip netns exec xtcp-demo nc $STACK_IP $IM_PORT     # the same protocol, answered by the backend
  kill -INT %4; kill -INT %3
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
  start_server "$ECHO_BIN" "$PORT" "$PCAP"
  wait_until_up "$PORT"
  drive_clients
  stop_server "$PCAP"
  start_server "$IM_BIN" "$IM_PORT" "$IM_PCAP"
  wait_until_up "$IM_PORT"
  drive_im_clients
  show_counters xtcp-im
  stop_server "$IM_PCAP"
  start_backend
  start_server "$IM_BIN" "$IM_PORT" "$FORWARD_PCAP" --backend "$BACKEND_ADDR"
  wait_until_up "$IM_PORT"
  drive_im_clients
  stop_server "$FORWARD_PCAP"
  stop_backend
  load_run
  print_manual
  if [ "$FAILURES" -ne 0 ]; then
    say "$FAILURES check(s) failed"
    exit 1
  fi
  say "all checks passed"
}

main "$@"
