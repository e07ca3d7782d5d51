#!/usr/bin/env python3
"""xtcp-proxy beside HAProxy (TCP mode) in one run: same kernel clients, same kernel backends.

    sudo bench/proxy_bench.py [--sizes 10000,100000] [--bulk-bytes 1GiB] [--many-pairs 100]
                              [--many-bytes 10MB] [--short-connections 20000] [--repeat 3]
                              [--proxies xtcp,haproxy] [--json FILE] [--out DIR]
    sudo bench/proxy_bench.py --smoke     (200 pairs, a few MB; exit 1 on any wrong byte)

Each measurement runs once per proxy, the proxies in turn, each in namespaces made for it
(removed right after, and on errors, SIGINT, SIGTERM and SIGHUP):

  xtcp:    namespace P: kernel clients (198.18.64.0/18, 198.18.128.0/18 on lo) -> TUN xpb0 ->
           xtcp-proxy --ip 198.18.0.2 --kernel-ip 198.18.0.1/24 --port 8000 -> the same TUN ->
           8 backends (xtcp-kernel-server --protocol echo on 198.18.3.1:9000-9007, on lo)
  haproxy: the same namespace P, clients and backends; HAProxy in namespace H behind a veth
           pair (198.18.1.1 in P, 198.18.1.2 in H): clients -> veth -> haproxy (mode tcp,
           balance roundrobin, the same 8 backends) -> veth -> backends. A process may open at
           most 20,000 descriptors and a HAProxy pair holds 2, so ceil(N / 8,000) processes
           (maxconn 9,000 each, nbthread 1) share the listening address (SO_REUSEPORT); their
           RSS and CPU are summed. Bulk and set-up rate use one HAProxy process, one thread,
           as xtcp-proxy is one thread.

Measures:
  idle   memory per proxied pair at each --sizes N: xtcp-kernel-clients opens N connections
         (workers of at most 18,000), the pairs sit idle, the proxy's RSS (and for HAProxy the
         growth of Slab in /proc/meminfo) is read against the baseline before any connection,
         then one 64-byte echo through every pair checks that each pair carries data. Slab is
         machine-wide: in the xtcp run it holds the clients' and backends' sockets only, in the
         HAProxy run those plus HAProxy's two sockets per pair, so HAProxy's kernel share is
         (Slab growth in its run - Slab growth in the xtcp run) / N.
  bulk   one pair carrying --bulk-bytes each way (the backends echo), and --many-pairs pairs
         carrying --many-bytes each way at once; every byte is compared with what was sent at
         its offset, and the lengths must match. MB/s is each direction's payload over the wall
         time; CPU per MB is the proxy processes' utime+stime (/proc/PID/stat) over the MB
         carried in both directions.
  rate   --short-connections connections, --concurrency at a time: connect, a 64-byte request,
         its echo, close. Connections/s and the proxy's CPU per connection.

Writes a table (text, markdown) to stdout, --json FILE, and logs into --out. Needs root,
/dev/net/tun, xtcp-proxy, xtcp-kernel-server and xtcp-kernel-clients in --bin-dir, and
haproxy (installed with apt-get when missing). Python 3 standard library only.
"""

import argparse
import datetime
import json
import math
import os
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The clean-up, /proc and log-reading helpers of the other side-by-side benchmark.
from side_by_side import (PAGE, Cleanup, loadavg, meminfo_kb, proc_status_kb, read_text, slabinfo,  # noqa: E402
                          sockstat, wait_for_text)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NS_PREFIX = "xtcp-pb-"
PROXY_IP = "198.18.0.2"          # xtcp-proxy's stack on the TUN
TUN_KERNEL_IP = "198.18.0.1"     # the kernel's side of the TUN
VETH_P_IP = "198.18.1.1"         # the clients' namespace's end of the veth pair
HAPROXY_IP = "198.18.1.2"        # HAProxy's end
BACKEND_IP = "198.18.3.1"        # the backends, on lo of the clients' namespace
BACKEND_PORTS = list(range(9000, 9008))
PROXY_PORT = 8000
IDLE_SRC = "198.18.64.0/18"      # xtcp-kernel-clients' sources (local: route local ... dev lo)
SHORT_SRC_BASE = "198.18.128.1"  # the short connections' sources (198.18.128.0/18, local too)
SHORT_SRC_COUNT = 4096
HAPROXY_PAIRS_PER_PROCESS = 8000
HAPROXY_MAXCONN = 9000
BACKEND_CONNS_PER_PROCESS = 16000
PATTERN_PERIOD = 1_048_583       # a prime: the sent stream is a random block of this length, repeated
CHUNK = 256 * 1024
REQUEST = 64


def log(msg):
    print(f"proxy_bench: {msg}", file=sys.stderr, flush=True)


class Stopped(Exception):
    pass


def on_signal(signum, _frame):
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    raise Stopped(f"stopped by signal {signum}")


# ---- /proc ----------------------------------------------------------------------------------

def rss_bytes(pid):
    return proc_status_kb(pid, "VmRSS") * 1024


def tcp_mem_bytes():
    """sockstat's TCP `mem` (pages of socket buffers; machine-wide, whichever namespace reads it)."""
    return sockstat(os.getpid())[1] * PAGE


def cpu_seconds(pid):
    """(utime, stime) of a process (all its threads) so far, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0


# ---- processes and namespaces ---------------------------------------------------------------

CLEANUP = Cleanup()
TEMP_DIRS = []  # HAProxy's configurations


def remove_stale_namespaces():
    """Namespaces of earlier runs of this script whose process is gone (killed by SIGKILL)."""
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        m = re.match(re.escape(NS_PREFIX) + r"(\d+)-\S+", line)
        if m and int(m.group(1)) != os.getpid() and not os.path.exists(f"/proc/{m.group(1)}"):
            log(f"removing namespace {m.group(0)} left by a run that died")
            CLEANUP.delete_ns(m.group(0))


def sh(argv, ns=None, check=True):
    full = (["ip", "netns", "exec", ns] if ns else []) + argv
    r = subprocess.run(full, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}{' in ' + ns if ns else ''}: {(r.stderr or r.stdout).strip()}")
    return r


def make_namespace(suffix):
    name = f"{NS_PREFIX}{os.getpid()}-{suffix}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    sh(["ip", "netns", "add", name])
    CLEANUP.namespaces.append(name)
    sh(["ip", "link", "set", "lo", "up"], name)
    for setting in ("net.core.somaxconn=65535", "net.ipv4.tcp_max_syn_backlog=65535",
                    "net.ipv4.ip_local_port_range=1024 65535"):
        sh(["sysctl", "-qw", setting], name)
    # Only our packets move: no IPv6 router solicitations on the new devices.
    for setting in ("net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"):
        sh(["sysctl", "-qw", setting], name, check=False)
    return name


def start(argv, log_path, ns):
    """argv inside ns (ip netns exec execs it: the pid is the program's), in its own session."""
    f = open(log_path, "w")
    p = subprocess.Popen(["ip", "netns", "exec", ns] + argv, stdin=subprocess.DEVNULL, stdout=f,
                         stderr=subprocess.STDOUT, start_new_session=True)
    f.close()
    CLEANUP.procs.append(p)
    return p


def run_self(ns, args, timeout):
    """This script's client part (below) inside ns; returns its JSON answer."""
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__), "--client"] + args,
                       capture_output=True, text=True, timeout=timeout)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return {"ok": False, "error": f"client exited {r.returncode}: {(r.stderr or r.stdout).strip()[-300:]}"}


# ---- the test bed ---------------------------------------------------------------------------

class Bed:
    """One proxy in namespaces of its own, with the backends and the clients' namespace."""

    def __init__(self, a, kind, pairs, tag):
        self.a, self.kind, self.tag = a, kind, tag
        self.procs = []      # the proxy's processes (what RSS and CPU are read from)
        self.backends = []
        self.namespaces = []
        self.log_prefix = os.path.join(a.out, tag)
        self.ns = make_namespace(f"{tag}-p")
        self.namespaces.append(self.ns)
        sh(["ip", "addr", "add", f"{BACKEND_IP}/32", "dev", "lo"], self.ns)
        sh(["ip", "route", "add", "local", IDLE_SRC, "dev", "lo"], self.ns)
        sh(["ip", "route", "add", "local", "198.18.128.0/18", "dev", "lo"], self.ns)
        per_backend = math.ceil(max(pairs, 1) / len(BACKEND_PORTS))
        for port in BACKEND_PORTS:
            procs = max(1, math.ceil(per_backend / BACKEND_CONNS_PER_PROCESS))
            argv = [a.bins["xtcp-kernel-server"], "--protocol", "echo", "--listen", f"{BACKEND_IP}:{port}",
                    "--processes", str(procs)]
            path = f"{self.log_prefix}.backend{port}.log"
            p = start(argv, path, self.ns)
            if not wait_for_text(path, r"^xtcp-kernel-server: \w+ on ", p, 20):
                raise RuntimeError(f"backend {port} did not start: {read_text(path).strip()[-300:]}")
            self.backends.append(p)
        if kind == "xtcp":
            self.start_xtcp(pairs)
        else:
            self.start_haproxy(pairs)
        self.wait_ready()

    def start_xtcp(self, pairs):
        argv = [self.a.bins["xtcp-proxy"], "--tun", "xpb0", "--ip", PROXY_IP, "--kernel-ip", f"{TUN_KERNEL_IP}/24",
                "--port", str(PROXY_PORT), "--balance", "round-robin",
                "--max-connections", str(2 * pairs + 1024), "--stats-json"]
        for port in BACKEND_PORTS:
            argv += ["--server", f"{BACKEND_IP}:{port}"]
        argv += self.a.xtcp_args.split()
        self.argv = argv
        self.procs.append(start(argv, f"{self.log_prefix}.proxy.log", self.ns))
        self.target = f"{PROXY_IP}:{PROXY_PORT}"

    def start_haproxy(self, pairs):
        h = make_namespace(f"{self.tag}-h")
        self.namespaces.append(h)
        sh(["ip", "link", "add", "pbv0", "type", "veth", "peer", "name", "pbv1", "netns", h], self.ns)
        sh(["ip", "addr", "add", f"{VETH_P_IP}/24", "dev", "pbv0"], self.ns)
        sh(["ip", "link", "set", "pbv0", "up"], self.ns)
        sh(["ip", "addr", "add", f"{HAPROXY_IP}/24", "dev", "pbv1"], h)
        sh(["ip", "link", "set", "pbv1", "up"], h)
        for net in (IDLE_SRC, "198.18.128.0/18", f"{BACKEND_IP}/32"):
            sh(["ip", "route", "add", net, "via", VETH_P_IP], h)
        self.instances = max(1, math.ceil(pairs / HAPROXY_PAIRS_PER_PROCESS))
        d = tempfile.mkdtemp(prefix="xtcp-pb-haproxy-")
        TEMP_DIRS.append(d)
        cfg = os.path.join(d, "haproxy.cfg")
        servers = "".join(f"    server b{i} {BACKEND_IP}:{port}\n" for i, port in enumerate(BACKEND_PORTS))
        with open(cfg, "w") as f:
            f.write(f"""# proxy_bench.py: HAProxy in TCP mode, the same backends as xtcp-proxy
global
    maxconn {HAPROXY_MAXCONN}
    nbthread 1
defaults
    mode tcp
    timeout connect 5s
    timeout client 30m
    timeout server 30m
frontend fe
    bind {HAPROXY_IP}:{PROXY_PORT} backlog 16384
    maxconn {HAPROXY_MAXCONN}
    default_backend be
backend be
    balance roundrobin
{servers}""")
        with open(f"{self.log_prefix}.haproxy.cfg", "w") as f:
            f.write(read_text(cfg))
        self.argv = [self.a.haproxy, "-f", cfg, "-db"]
        for i in range(self.instances):
            self.procs.append(start(self.argv, f"{self.log_prefix}.haproxy{i}.log", h))
        self.target = f"{HAPROXY_IP}:{PROXY_PORT}"

    def wait_ready(self):
        deadline = time.monotonic() + 20
        answer = None
        while time.monotonic() < deadline:
            for i, p in enumerate(self.procs):
                if p.poll() is not None:
                    name = "proxy" if self.kind == "xtcp" else f"haproxy{i}"
                    raise RuntimeError(f"{self.kind} exited {p.returncode}: "
                                       f"{read_text(f'{self.log_prefix}.{name}.log').strip()[-500:]}")
            answer = run_self(self.ns, ["probe", self.target], 10)
            if answer.get("ok"):
                time.sleep(0.5)  # every HAProxy process has bound its listener by now too
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.kind} never answered at {self.target}: {answer}")

    def rss(self):
        return sum(rss_bytes(p.pid) for p in self.procs)

    def cpu(self):
        """(user, system) seconds of the proxy's processes."""
        times = [cpu_seconds(p.pid) for p in self.procs]
        return sum(t[0] for t in times), sum(t[1] for t in times)

    def own_counters(self, timeout=10.0):
        """xtcp-proxy's counters (SIGUSR1, one JSON line on stdout); {} for HAProxy or none."""
        if self.kind != "xtcp":
            return {}
        path = f"{self.log_prefix}.proxy.log"

        def lines():
            return [line for line in read_text(path).splitlines() if line.startswith("{") and line.endswith("}")]

        before = len(lines())
        self.procs[0].send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = lines()
            if len(now) > before:
                try:
                    return json.loads(now[-1]).get("counters", {})
                except json.JSONDecodeError:
                    pass
            time.sleep(0.1)
        return {}

    def backend_pairs(self):
        """ESTABLISHED connections the backends accepted (one per proxied pair)."""
        r = sh(["ss", "-Htn", "state", "established", f"src {BACKEND_IP} and ( sport >= :{BACKEND_PORTS[0]} and "
                f"sport <= :{BACKEND_PORTS[-1]} )"], self.ns, check=False)
        return sum(1 for line in r.stdout.splitlines() if line.strip())

    def close(self):
        for p in self.procs:
            CLEANUP.kill_proc(p, signal.SIGINT, grace=20)
        for p in self.backends:
            CLEANUP.kill_proc(p, signal.SIGINT, grace=20)
        for ns in reversed(self.namespaces):
            CLEANUP.delete_ns(ns)


# ---- measurements -----------------------------------------------------------------------------

def settle_slab(seconds=3.0):
    """Slab after freed sockets have gone back (RCU, namespace clean-up are asynchronous)."""
    time.sleep(seconds)
    return meminfo_kb("Slab") * 1024


def measure_idle(a, kind, n):
    tag = f"idle{n}-{kind}"
    rec = {"measure": "idle", "proxy": kind, "pairs_asked": n, "ok": False}
    bed = None
    clients = None
    try:
        bed = Bed(a, kind, n, tag)
        rec["proxy_argv"] = bed.argv
        rec["proxy_processes"] = len(bed.procs)
        base_slab = settle_slab()
        base_rss, base_tcp_mem, base_caches = bed.rss(), tcp_mem_bytes(), slabinfo()
        base_counters = bed.own_counters()
        argv = [a.bins["xtcp-kernel-clients"], "--target", bed.target, "--src", IDLE_SRC, "--connections", str(n),
                "--ramp", str(a.ramp), "--message-size", "64", "--bursts", "1",
                "--interval", f"{a.idle_hold}s", "--timeout", f"{int(n / a.ramp) + 120}s",
                "--json", f"{bed.log_prefix}.clients.json"]
        path = f"{bed.log_prefix}.clients.log"
        clients = start(argv, path, bed.ns)
        bound = n / a.ramp + 180
        if not wait_for_text(path, r"connections up in", clients, bound):
            raise RuntimeError(f"the clients did not come up: {read_text(path).strip()[-400:]}")
        up = re.search(r"(\d+) of (\d+) connections up in ([\d.]+) s", read_text(path))
        rec["clients_up"] = int(up.group(1)) if up else 0
        rec["setup_s"] = float(up.group(3)) if up else None
        deadline = time.monotonic() + a.idle_hold / 2
        pairs = bed.backend_pairs()
        while pairs < n and time.monotonic() < deadline:
            time.sleep(0.5)
            pairs = bed.backend_pairs()
        time.sleep(2)  # idle: the last handshakes' ACKs are through
        pairs = bed.backend_pairs()
        rss, slab, tcp_mem, caches = bed.rss(), meminfo_kb("Slab") * 1024, tcp_mem_bytes(), slabinfo()
        counters = bed.own_counters()
        if counters and base_counters:
            # The program's own count of its memory, beside the RSS (xtcp-proxy only).
            rec["own_pairs_open"] = counters.get("proxy.pairs_open")
            rec["own_count_per_pair"] = {k: round((v - base_counters.get(k, 0)) / max(pairs, 1), 1)
                                         for k, v in counters.items() if k.startswith("mem.")}
        growth = {k: v - base_caches.get(k, 0) for k, v in caches.items()}
        rec["slab_caches_per_pair"] = {k: round(v / max(pairs, 1)) for k, v in
                                       sorted(growth.items(), key=lambda kv: -kv[1])[:10]}
        rec.update(pairs=pairs, base_rss_bytes=base_rss, rss_bytes=rss, rss_per_pair=(rss - base_rss) / max(pairs, 1),
                   slab_growth_bytes=slab - base_slab, slab_growth_per_pair=(slab - base_slab) / max(pairs, 1),
                   tcp_mem_growth_bytes=tcp_mem - base_tcp_mem)
        try:
            clients.wait(timeout=a.idle_hold + n / 2000 + 120)
        except subprocess.TimeoutExpired:
            CLEANUP.kill_proc(clients, signal.SIGINT, grace=30)
        CLEANUP.kill_proc(clients)
        burst = re.search(r"burst 1: (\d+) of (\d+) answered", read_text(path))
        rec["echo_answered"] = int(burst.group(1)) if burst else 0
        rec["clients_exit"] = clients.returncode
        rec["ok"] = clients.returncode == 0 and pairs == n and rec["echo_answered"] == n
        if not rec["ok"]:
            rec["failure"] = (f"{pairs} of {n} pairs at the backends, {rec['echo_answered']} echoes answered, "
                              f"clients exit {clients.returncode}: {read_text(path).strip()[-300:]}")
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        rec["failure"] = str(e)
    finally:
        if clients is not None:
            CLEANUP.kill_proc(clients)
        if bed is not None:
            bed.close()
    return rec


def measure_traffic(a, kind, rep):
    """Bulk through one pair, bulk through many, and the set-up rate, in one test bed."""
    tag = f"traffic{rep}-{kind}"
    out = []
    bed = None
    try:
        bed = Bed(a, kind, max(a.many_pairs, a.concurrency), tag)
        runs = [("bulk1", ["bulk", bed.target, "1", str(a.bulk_bytes)]),
                ("bulkN", ["bulk", bed.target, str(a.many_pairs), str(a.many_bytes)]),
                ("rate", ["rate", bed.target, str(a.short_connections), str(a.concurrency)])]
        for name, args in runs:
            rec = {"measure": name, "proxy": kind, "repeat": rep, "proxy_argv": bed.argv}
            cpu0 = bed.cpu()
            rec.update(run_self(bed.ns, args, a.client_timeout))
            cpu1 = bed.cpu()
            rec["proxy_user_s"], rec["proxy_sys_s"] = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
            rec["proxy_cpu_s"] = rec["proxy_user_s"] + rec["proxy_sys_s"]
            rec["proxy_sys_share"] = rec["proxy_sys_s"] / rec["proxy_cpu_s"] if rec["proxy_cpu_s"] > 0 else None
            if rec.get("ok") and name != "rate":
                rec["mb_per_s"] = rec["bytes_each_way"] / rec["seconds"] / 1e6
                rec["cpu_ms_per_mb"] = rec["proxy_cpu_s"] * 1e3 / (2 * rec["bytes_each_way"] / 1e6)
            elif rec.get("ok"):
                rec["conn_per_s"] = rec["connections"] / rec["seconds"]
                rec["cpu_us_per_conn"] = rec["proxy_cpu_s"] * 1e6 / rec["connections"]
            elif "failure" not in rec:
                rec["failure"] = rec.get("error", "failed")
            out.append(rec)
            log(f"{kind} {name}: {summary_of(rec)}")
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        out.append({"measure": "bed", "proxy": kind, "repeat": rep, "ok": False, "failure": str(e)})
    finally:
        if bed is not None:
            bed.close()
    return out


def summary_of(rec):
    if not rec.get("ok"):
        return f"FAILED: {rec.get('failure') or rec.get('error')}"
    if "mb_per_s" in rec:
        return f"{rec['mb_per_s']:.1f} MB/s each way, {rec['cpu_ms_per_mb']:.2f} ms CPU/MB"
    if "conn_per_s" in rec:
        return f"{rec['conn_per_s']:.0f} connections/s, {rec['cpu_us_per_conn']:.0f} us CPU/connection"
    return "ok"


# ---- the client part (runs inside the namespace) ---------------------------------------------

def client_main(argv):
    mode = argv[0]
    host, port = argv[1].rsplit(":", 1)
    target = (host, int(port))
    try:
        if mode == "probe":
            with socket.create_connection(target, timeout=2) as s:
                s.sendall(b"probe\n")
                got = b""
                s.settimeout(2)
                while len(got) < 6:
                    chunk = s.recv(64)
                    if not chunk:
                        break
                    got += chunk
            ans = {"ok": got == b"probe\n"}
        elif mode == "bulk":
            ans = client_bulk(target, int(argv[2]), int(argv[3]))
        elif mode == "rate":
            ans = client_rate(target, int(argv[2]), int(argv[3]))
        else:
            ans = {"ok": False, "error": f"unknown client mode {mode}"}
    except OSError as e:
        ans = {"ok": False, "error": str(e)}
    print(json.dumps(ans), flush=True)
    return 0 if ans.get("ok") else 1


def client_bulk(target, pairs, nbytes, timeout=600.0):
    """pairs connections each send nbytes of a repeated random block and read them back: every
    received byte is compared with the sent stream at its offset, and the lengths must match."""
    block = os.urandom(PATTERN_PERIOD)
    pattern = memoryview(block + block)
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(pairs):
        s = socket.create_connection(target, timeout=10)
        s.setblocking(False)
        c = {"s": s, "sent": 0, "got": 0, "start": (i * 7919) % PATTERN_PERIOD, "shut": False}
        conns.append(c)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    open_conns = pairs
    t0 = time.monotonic()
    deadline = t0 + timeout
    while open_conns and time.monotonic() < deadline:
        for key, events in sel.select(timeout=1.0):
            c = key.data
            s = c["s"]
            if events & selectors.EVENT_WRITE and c["sent"] < nbytes:
                off = (c["start"] + c["sent"]) % PATTERN_PERIOD
                n = min(CHUNK, nbytes - c["sent"], PATTERN_PERIOD)
                try:
                    c["sent"] += s.send(pattern[off:off + n])
                except BlockingIOError:
                    pass
                if c["sent"] == nbytes:
                    sel.modify(s, selectors.EVENT_READ, c)
            if events & selectors.EVENT_READ:
                try:
                    n = s.recv_into(buf)
                except BlockingIOError:
                    continue
                if n == 0 or c["got"] + n > nbytes:
                    return {"ok": False, "error": f"pair {conns.index(c)}: the stream ended at {c['got']} of "
                            f"{nbytes} bytes" if n == 0 else f"pair {conns.index(c)}: more bytes than sent"}
                off = (c["start"] + c["got"]) % PATTERN_PERIOD
                if view[:n].tobytes() != pattern[off:off + n].tobytes():
                    first = next(k for k in range(n) if buf[k] != pattern[off + k])
                    return {"ok": False, "error": f"pair {conns.index(c)}: wrong byte at offset {c['got'] + first}"}
                c["got"] += n
                if c["got"] == nbytes:
                    sel.unregister(s)
                    s.close()
                    open_conns -= 1
    seconds = time.monotonic() - t0
    if open_conns:
        return {"ok": False, "error": f"{open_conns} of {pairs} pairs unfinished after {timeout:.0f} s"}
    return {"ok": True, "pairs": pairs, "bytes_each_way": pairs * nbytes, "seconds": seconds, "checked": True}


def client_rate(target, count, concurrency, timeout=600.0):
    """count short connections, concurrency at a time: connect, a 64-byte request, its echo,
    close. Sources spread over SHORT_SRC_COUNT local addresses (ports chosen at connect)."""
    base = int.from_bytes(socket.inet_aton(SHORT_SRC_BASE), "big")
    ip_bind_address_no_port = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
    sel = selectors.DefaultSelector()
    started = done = 0
    t0 = time.monotonic()
    deadline = t0 + timeout

    def open_one(i):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IP, ip_bind_address_no_port, 1)
        s.bind((socket.inet_ntoa((base + i % SHORT_SRC_COUNT).to_bytes(4, "big")), 0))
        s.setblocking(False)
        s.connect_ex(target)
        req = (b"%08d" % i) * (REQUEST // 8 - 1) + b"request\n"
        sel.register(s, selectors.EVENT_WRITE, {"s": s, "req": req, "got": b"", "t": time.monotonic()})

    while started < min(concurrency, count):
        open_one(started)
        started += 1
    while done < count and time.monotonic() < deadline:
        for key, events in sel.select(timeout=1.0):
            c = key.data
            s = c["s"]
            try:
                if events & selectors.EVENT_WRITE:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        return {"ok": False, "error": f"connect: {os.strerror(err)} after {done} connections"}
                    s.send(c["req"])  # 64 bytes into an empty socket: all of it
                    sel.modify(s, selectors.EVENT_READ, c)
                    continue
                chunk = s.recv(REQUEST)
            except BlockingIOError:
                continue
            except OSError as e:
                return {"ok": False, "error": f"{e} after {done} connections"}
            if not chunk:
                return {"ok": False, "error": f"closed before the answer after {done} connections"}
            c["got"] += chunk
            if len(c["got"]) < REQUEST:
                continue
            if c["got"] != c["req"]:
                return {"ok": False, "error": f"wrong answer after {done} connections"}
            sel.unregister(s)
            s.close()
            done += 1
            if started < count:
                open_one(started)
                started += 1
    seconds = time.monotonic() - t0
    if done < count:
        return {"ok": False, "error": f"{done} of {count} connections done after {timeout:.0f} s"}
    return {"ok": True, "connections": count, "seconds": seconds, "concurrency": concurrency}


# ---- report -----------------------------------------------------------------------------------

def parse_size(text):
    m = re.fullmatch(r"(\d+)\s*(|k|K|KB|KiB|M|MB|MiB|G|GB|GiB)", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size (e.g. 10MB, 1GiB)")
    mult = {"": 1, "k": 1000, "K": 1000, "KB": 1000, "KiB": 1024, "M": 10**6, "MB": 10**6, "MiB": 2**20,
            "G": 10**9, "GB": 10**9, "GiB": 2**30}[m.group(2)]
    value = int(m.group(1)) * mult
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive size")
    return value


def median_of(recs, key):
    vals = [r[key] for r in recs if r.get("ok") and key in r]
    if not vals:
        return None, None, None
    return statistics.median(vals), min(vals), max(vals)


def fmt(v, spec):
    return "failed" if v is None else format(v, spec)


def fmt_range(m, lo, hi, spec):
    if m is None:
        return "failed"
    return format(m, spec) if lo == hi else f"{format(m, spec)} ({format(lo, spec)}-{format(hi, spec)})"


def table(a, results):
    kinds = a.proxies
    lines = ["| measure | " + " | ".join(KIND_NAMES[k] for k in kinds) + " |",
             "|---|" + "---:|" * len(kinds)]
    idle = {(r["proxy"], r["pairs_asked"]): r for r in results if r["measure"] == "idle"}
    for n in a.sizes:
        row = [f"bytes per idle pair at {n:,} pairs: proxy RSS growth / pairs"]
        for k in kinds:
            r = idle.get((k, n), {})
            row.append(fmt(r.get("rss_per_pair"), ",.0f") if r.get("ok") else "failed")
        lines.append("| " + " | ".join(row) + " |")
        x, h = idle.get(("xtcp", n), {}), idle.get(("haproxy", n), {})
        if "xtcp" in kinds:
            own = x.get("own_count_per_pair", {}) if x.get("ok") else {}
            row = [f"... xtcp-proxy's own count at {n:,}: mem.total growth / pairs (of it busy blocks)"]
            for k in kinds:
                if k != "xtcp":
                    row.append("")
                elif "mem.total" in own:
                    row.append(f"{own['mem.total']:,.0f} ({own.get('mem.tcp_busy_blocks', 0):,.0f})")
                else:
                    row.append("failed")
            lines.append("| " + " | ".join(row) + " |")
        if "haproxy" in kinds:
            row = [f"... plus the proxy's kernel sockets at {n:,}: (Slab growth - xtcp run's) / pairs"]
            kern = None
            if x.get("ok") and h.get("ok"):
                kern = (h["slab_growth_bytes"] - x["slab_growth_bytes"]) / h["pairs"]
            for k in kinds:
                if k == "xtcp":
                    row.append("0 (none)")
                else:
                    row.append(fmt(kern, ",.0f") if kern is not None or not h.get("ok") else "needs the xtcp run")
            lines.append("| " + " | ".join(row) + " |")
            row = [f"**total bytes per idle pair at {n:,}**"]
            for k in kinds:
                r = idle.get((k, n), {})
                if not r.get("ok"):
                    row.append("failed")
                elif k == "xtcp":
                    row.append(f"**{r['rss_per_pair']:,.0f}**")
                else:
                    row.append("failed" if kern is None else f"**{r['rss_per_pair'] + kern:,.0f}**")
            lines.append("| " + " | ".join(row) + " |")
        row = [f"Slab growth / pair at {n:,} (clients' and backends' sockets{', HAProxy' if 'haproxy' in kinds else ''})"]
        for k in kinds:
            r = idle.get((k, n), {})
            row.append(fmt(r.get("slab_growth_per_pair"), ",.0f") if r.get("ok") else "failed")
        lines.append("| " + " | ".join(row) + " |")
    traffic = [r for r in results if r["measure"] in ("bulk1", "bulkN", "rate")]
    labels = {"bulk1": f"one pair, {a.bulk_bytes / 1e6:,.0f} MB each way",
              "bulkN": f"{a.many_pairs} pairs x {a.many_bytes / 1e6:,.0f} MB each way"}
    for m in ("bulk1", "bulkN"):
        for key, what, spec in (("mb_per_s", "MB/s each way", ",.0f"), ("cpu_ms_per_mb", "proxy CPU ms per MB carried", ".2f"),
                                ("proxy_sys_share", "share of that CPU in the kernel (stime)", ".2f")):
            row = [f"{labels[m]}: {what}"]
            for k in kinds:
                row.append(fmt_range(*median_of([r for r in traffic if r["measure"] == m and r["proxy"] == k], key), spec))
            lines.append("| " + " | ".join(row) + " |")
    for key, what, spec in (("conn_per_s", "connections/s", ",.0f"), ("cpu_us_per_conn", "proxy CPU us per connection", ",.0f")):
        row = [f"{a.short_connections:,} short connections ({a.concurrency} at a time): {what}"]
        for k in kinds:
            row.append(fmt_range(*median_of([r for r in traffic if r["measure"] == "rate" and r["proxy"] == k], key), spec))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


KIND_NAMES = {"xtcp": "xtcp-proxy (TUN)", "haproxy": "HAProxy (veth)"}


def find_haproxy(a):
    path = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if path is None:
        log("haproxy is missing: apt-get install -y haproxy")
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "haproxy"],
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), check=False)
        path = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if path is None:
        raise RuntimeError("haproxy is not installed and apt-get could not install it")
    # Debian's package starts a system service; this benchmark runs its own processes only.
    return path


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        return client_main(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true",
                   help="small correctness run: 200 pairs, 4 MB through one pair, 10 x 1 MB, 500 short connections")
    p.add_argument("--sizes", default="10000,100000",
                   help="idle pair counts, or none: bulk and rate only (default: %(default)s)")
    p.add_argument("--proxies", default="xtcp,haproxy", help="xtcp, haproxy or both (default: %(default)s)")
    p.add_argument("--bulk-bytes", type=parse_size, default=2**30, help="through one pair, each way (default: 1GiB)")
    p.add_argument("--many-pairs", type=int, default=100, help="pairs of the many-pair bulk run (default: %(default)s)")
    p.add_argument("--many-bytes", type=parse_size, default=10**7, help="each way per pair (default: 10MB)")
    p.add_argument("--short-connections", type=int, default=20000,
                   help="connections of the set-up rate run (default: %(default)s)")
    p.add_argument("--concurrency", type=int, default=32, help="short connections at a time (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=3, help="bulk and rate runs per proxy, in turn (default: %(default)s)")
    p.add_argument("--ramp", type=int, default=10000, help="idle connections opened per second (default: %(default)s)")
    p.add_argument("--idle-hold", type=int, default=30,
                   help="seconds the idle pairs are held before their one echo (default: %(default)s)")
    p.add_argument("--xtcp-args", default="", help="more flags for xtcp-proxy")
    p.add_argument("--bin-dir", default=os.environ.get("BIN", os.path.join(REPO, "build", "bin")))
    p.add_argument("--json", help="write every record and the table as JSON to this file ('-': stdout)")
    p.add_argument("--out", default="/tmp/xtcp-proxy-bench", help="logs (default: %(default)s)")
    a = p.parse_args()
    if a.smoke:
        a.sizes, a.bulk_bytes, a.many_pairs, a.many_bytes = "200", 4 * 10**6, 10, 10**6
        a.short_connections, a.concurrency, a.repeat, a.idle_hold, a.ramp = 500, 16, 1, 4, 2000
    try:
        a.sizes = [] if a.sizes == "none" else [int(x) for x in a.sizes.split(",")]
    except ValueError:
        p.error(f"--sizes: '{a.sizes}' is not a list of numbers")
    a.proxies = [x for x in a.proxies.split(",") if x]
    bad = [x for x in a.proxies if x not in KIND_NAMES]
    if bad or not a.proxies:
        p.error(f"--proxies: '{','.join(bad)}' is not xtcp or haproxy")
    if any(n < 1 or n > 400_000 for n in a.sizes):
        p.error("--sizes: each from 1 to 400,000")
    for name in ("many_pairs", "short_connections", "concurrency", "repeat", "ramp", "idle_hold"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if a.concurrency > 4000 or a.many_pairs > 4000:
        p.error("--concurrency and --many-pairs: at most 4,000 (one client process)")
    if os.geteuid() != 0:
        print("proxy_bench.py: needs root (network namespaces, TUN device)", file=sys.stderr)
        return 2
    a.client_timeout = 900
    a.bins = {}
    need = ["xtcp-kernel-server", "xtcp-kernel-clients"] + (["xtcp-proxy"] if "xtcp" in a.proxies else [])
    for b in need:
        path = os.path.join(a.bin_dir, b)
        if not os.access(path, os.X_OK):
            print(f"proxy_bench.py: {path} missing: cmake --build build -j2 --target {b}", file=sys.stderr)
            return 1
        a.bins[b] = path
    os.makedirs(a.out, exist_ok=True)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    results = []
    started = datetime.datetime.now(datetime.timezone.utc)
    status = 0
    try:
        remove_stale_namespaces()
        if "haproxy" in a.proxies:
            a.haproxy = find_haproxy(a)
            a.haproxy_version = subprocess.run([a.haproxy, "-v"], capture_output=True, text=True).stdout.split("\n")[0]
        for n in a.sizes:
            for kind in a.proxies:
                log(f"idle {n:,} pairs through {kind} (load {loadavg()})")
                rec = measure_idle(a, kind, n)
                results.append(rec)
                log(f"  {'ok' if rec['ok'] else 'FAILED: ' + str(rec.get('failure'))}: "
                    f"{rec.get('pairs', 0):,} pairs, RSS {rec.get('rss_per_pair', 0):,.0f} B/pair, "
                    f"Slab {rec.get('slab_growth_per_pair', 0):,.0f} B/pair")
        for rep in range(1, a.repeat + 1):
            for kind in a.proxies:
                log(f"bulk and rate, round {rep}, {kind} (load {loadavg()})")
                results.extend(measure_traffic(a, kind, rep))
    except Stopped as e:
        log(str(e))
        status = 130
    except RuntimeError as e:  # haproxy missing and not installable
        log(str(e))
        status = 1
    finally:
        CLEANUP.all()
        for d in TEMP_DIRS:
            shutil.rmtree(d, ignore_errors=True)
    if status == 0 and not results:
        status = 1
    if status == 0 and not all(r.get("ok") for r in results):
        status = 1
        for r in results:
            if not r.get("ok"):
                log(f"FAILED {r['measure']} {r['proxy']}: {r.get('failure') or r.get('error')}")
    text = table(a, results)
    header = (f"xtcp-proxy beside {getattr(a, 'haproxy_version', 'HAProxy')}, {started:%Y-%m-%d %H:%M} UTC, "
              f"{os.cpu_count()} CPUs, load at the end {loadavg()}")
    print(header + "\n\n" + text)
    if a.json:
        doc = json.dumps({"started": started.isoformat(), "argv": sys.argv, "header": header, "table": text,
                          "results": results}, indent=1, default=str)
        if a.json == "-":
            print(doc)
        else:
            with open(a.json, "w") as f:
                f.write(doc + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
