#!/usr/bin/env python3
"""Memory per idle connection of an xtcp server, through the real API and TUN.

    sudo bench/idle_memory.py [--connections 1000000] [--server echo|im] [--ramp 10000]

In a network namespace of its own (removed at the end): xtcp-echo (or xtcp-im) behind TUN
xtcp0 at 198.18.0.2, and xtcp-loadgen --workload connect-only behind TUN xtcpl0, the kernel
routing between them. The server's resident set (VmRSS) is read before any connection and
again once every connection is ESTABLISHED and idle; its own memory counters (mem.*, from
--stats-json on SIGUSR1) are read at the same two moments. Prints a markdown table:

    (RSS with N - RSS with none) / N, the engine's count of the same, and the count by part.

The load generator then resets every connection and exits; nothing is asserted. Needs root.
Python 3 standard library only.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_IP = "198.18.0.2"


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Server:
    """The server process and its --stats-json lines (stdout, read on demand)."""

    def __init__(self, argv, out_path):
        self.out_path = out_path
        self.out = open(out_path, "w+")
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT)

    def counters(self, timeout=10.0):
        """Asks for the counters (SIGUSR1) and returns the newest JSON line's counters."""
        before = self._lines()
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self._lines()
            if len(lines) > len(before):
                return lines[-1]["counters"]
            time.sleep(0.1)
        raise RuntimeError("the server printed no counters after SIGUSR1")

    def _lines(self):
        self.out.flush()
        with open(self.out_path) as f:
            rows = []
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass  # a line being written
            return rows

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=1_000_000)
    p.add_argument("--server", choices=["echo", "im"], default="echo")
    p.add_argument("--ramp", type=int, default=10_000, help="connections opened per second (default: %(default)s)")
    p.add_argument("--settle", type=float, default=15.0,
                   help="seconds to wait after the last connection came up, so every one is idle (default: %(default)s)")
    p.add_argument("--bin-dir", default=os.path.join(REPO, "build", "bin"))
    p.add_argument("--out", default="/tmp/xtcp-idle-memory", help="logs (default: %(default)s)")
    args = p.parse_args()
    if args.connections < 1 or args.ramp < 1 or args.settle < 0:
        p.error("--connections and --ramp must be at least 1, --settle at least 0")
    if os.geteuid() != 0:
        print("idle_memory.py: needs root (network namespace, TUN devices)", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    ns = f"xtcp-mem-{os.getpid()}"
    port = 7 if args.server == "echo" else 7000
    inns = ["ip", "netns", "exec", ns]
    server = None
    loadgen = None
    stopping = []

    def on_signal(signum, _frame):
        stopping.append(signum)
        raise KeyboardInterrupt

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(inns + ["ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(inns + ["sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
        argv = inns + [os.path.join(args.bin_dir, f"xtcp-{args.server}"), "--tun", "xtcp0", "--ip", SERVER_IP,
                       "--kernel-ip", "198.18.0.1/24", "--port", str(port), "--stats-json",
                       "--max-connections", str(args.connections + args.connections // 8 + 1024)]
        if args.server == "im":
            argv += ["--presence", "watched"]
        server = Server(argv, os.path.join(args.out, "server.jsonl"))
        # The device is up once the server answers SIGUSR1 with its counters.
        time.sleep(1.0)
        base_counters = server.counters()
        base_rss = rss_bytes(server.proc.pid)

        ramp_s = args.connections / args.ramp
        hold_s = ramp_s + args.settle + 60
        lg_argv = inns + [os.path.join(args.bin_dir, "xtcp-loadgen"), "--target", f"{SERVER_IP}:{port}",
                          "--workload", "connect-only" if args.server == "echo" else "im",
                          "--connections", str(args.connections), "--ramp", str(args.ramp),
                          "--duration", f"{int(hold_s)}s", "--progress", "10s",
                          "--json", os.path.join(args.out, "loadgen.json")]
        if args.server == "im":
            lg_argv += ["--interval", f"{int(hold_s * 4)}s"]  # logged in, then idle
        loadgen = subprocess.Popen(lg_argv, stdout=open(os.path.join(args.out, "loadgen.log"), "w"),
                                   stderr=subprocess.STDOUT)
        started = time.monotonic()
        established = 0
        while time.monotonic() - started < ramp_s * 3 + 120:
            time.sleep(2.0)
            established = server.counters()["tcp.state.established"]
            if established >= args.connections or loadgen.poll() is not None:
                break
        up_s = time.monotonic() - started
        time.sleep(args.settle)
        counters = server.counters()
        rss = rss_bytes(server.proc.pid)
        n = counters["tcp.state.established"]
        if n == 0:
            print("no connection came up; see", args.out, file=sys.stderr)
            return 1

        def per(key):
            return (counters[key] - base_counters[key]) / n

        rss_per = (rss - base_rss) / n
        count_per = per("mem.total")
        print(f"## xtcp-{args.server}: {n:,} idle ESTABLISHED connections through TUN "
              f"(up in {up_s:.0f} s, busy {counters.get('api.busy_connections', 0)})\n")
        print("| measure | bytes per connection |\n|---|---:|")
        print(f"| resident set: (RSS with N - RSS with none) / N "
              f"({rss / 1e6:.1f} MB - {base_rss / 1e6:.1f} MB) | {rss_per:.1f} |")
        print(f"| the library's own count: mem.total growth / N | {count_per:.1f} |")
        for key in ("mem.tcp", "mem.tcp_hot_blocks", "mem.tcp_busy_blocks", "mem.tcp_flow_index",
                    "mem.tcp_time_wait", "mem.tcp_timers", "mem.rx_pools", "mem.tx_cache", "mem.api"):
            if key in counters:
                print(f"| of which {key} | {per(key):.1f} |")
        print(f"\ncount / RSS: {count_per / rss_per:.3f}" if rss_per > 0 else "")
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        for proc in (loadgen,):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if server is not None:
            server.stop()
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    sys.exit(main())
