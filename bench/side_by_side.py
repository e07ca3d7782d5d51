#!/usr/bin/env python3
"""xtcp and the Linux kernel's TCP side by side, through TUN, with the same xtcp-loadgen work.

    sudo bench/side_by_side.py [--sizes 10000,100000,1000000] [--out /tmp/xtcp-side-by-side]

For every connection count N and every server, in a fresh network namespace of its own:

  xtcp:   xtcp-loadgen --tun xtcpl0 -> kernel (IPv4 forwarding) -> TUN xtcp0 -> xtcp-im
          (--presence watched) or xtcp-echo (--ip 198.18.0.2 --kernel-ip 198.18.0.1/24)
  kernel: xtcp-loadgen --tun xtcpl0 -> kernel TCP -> xtcp-kernel-server --protocol im
          --presence watched / --protocol echo, listening on 198.18.0.1 (on lo), with
          --processes ceil(N / 18000) so that no process passes the 20,000-descriptor limit

two workloads run: `im` (1 KB messages: 1000 bytes of text, at an offered load that suits a 2-core machine, see
--im-rate) and `burst` (every connection sends one echo at the same instant, --bursts times).
Before the runs, bench_tun_floor measures the raw TUN path (packets/s with no TCP), and the
figures of the runs are also given as fractions of it.

Memory per connection: xtcp = (server RSS after the ramp - RSS before any connection) / N;
kernel = (summed RSS of every kernel-server process after the ramp - before) / N + the growth
of Slab (/proc/meminfo) and of the TCP `mem` pages (/proc/net/sockstat) over the same period
/ N. Slab and sockstat's `mem` are machine-wide: whatever else runs on the machine adds noise.

Writes: the raw JSON of every run (and the servers' and load generator's logs) into --out, a
markdown section between the markers `<!-- side-by-side:begin -->` and
`<!-- side-by-side:end -->` of --doc (docs/benchmarks.md), and PNG plots (gnuplot, installed
with apt-get when missing) into --img-dir (docs/img). Nothing timing-related is asserted: a
run that failed is reported as such. Needs root. Every namespace, device and process it made
is removed at the end of each run, and on errors, SIGINT, SIGTERM and SIGHUP.

Python 3 standard library only.
"""

import argparse
import datetime
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NS_PREFIX = "xtcp-sbs-"
BEGIN = "<!-- side-by-side:begin -->"
END = "<!-- side-by-side:end -->"
XTCP_IP = "198.18.0.2"
KERNEL_IP = "198.18.0.1"
IM_PORT = 7000
ECHO_PORT = 7
PAGE = os.sysconf("SC_PAGE_SIZE")


class Stopped(Exception):
    """A stop signal (SIGINT, SIGTERM, SIGHUP) came: clean up and leave."""

    def __init__(self, signum):
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


def on_signal(signum, _frame):
    # Raised once: the cleanup that follows must not be interrupted by a second signal.
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    raise Stopped(signum)


def log(msg):
    print(f"side_by_side: {msg}", file=sys.stderr, flush=True)


# ---- /proc ------------------------------------------------------------------------------

def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def meminfo_kb(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def proc_status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_cpu_s(pid):
    """User + system CPU seconds a process has used so far (its own threads), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        pass
    out = []  # no CONFIG_PROC_CHILDREN: scan
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def sockstat(pid):
    """TCP inuse (the namespace of pid) and mem (pages, machine-wide) from /proc/PID/net/sockstat."""
    try:
        with open(f"/proc/{pid}/net/sockstat") as f:
            for line in f:
                if line.startswith("TCP:"):
                    v = line.split()[1:]
                    d = dict(zip(v[0::2], v[1::2]))
                    return int(d.get("inuse", 0)), int(d.get("mem", 0)), int(d.get("tw", 0))
    except (OSError, ValueError):
        pass
    return 0, 0, 0


def slabinfo():
    """Bytes per slab cache (active objects x object size); {} when unreadable."""
    out = {}
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                if line.startswith(("slabinfo", "#")):
                    continue
                p = line.split()
                out[p[0]] = int(p[1]) * int(p[3])
    except (OSError, ValueError, IndexError):
        pass
    return out


def memory_snapshot(server_pid, kernel_server):
    """The server's memory (every process of the kernel server) and the kernel's counters now."""
    pids = [server_pid] + (children(server_pid) if kernel_server else [])
    inuse, mem_pages, tw = sockstat(server_pid)
    return {
        "time": time.time(),
        "pids": pids,
        "rss_bytes": sum(proc_status_kb(p, "VmRSS") for p in pids) * 1024,
        "pss_bytes": sum(proc_pss_kb(p) for p in pids) * 1024,
        "slab_bytes": meminfo_kb("Slab") * 1024,
        "sockstat_tcp_mem_bytes": mem_pages * PAGE,
        "sockstat_tcp_inuse": inuse,
        "sockstat_tcp_tw": tw,
        "slabinfo": slabinfo(),
    }


# ---- processes and namespaces ----------------------------------------------------------

class Cleanup:
    """Everything this script started or made; undone in reverse on every way out."""

    def __init__(self):
        self.procs = []       # Popen objects, each the leader of its own session
        self.namespaces = []  # names

    def kill_proc(self, p, sig=signal.SIGTERM, grace=10.0):
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=10)
        if p in self.procs:
            self.procs.remove(p)

    def delete_ns(self, name):
        # Whatever still runs inside (started by us through `ip netns exec`) goes first.
        r = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        for _ in range(50):
            r = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
            if not r.stdout.split():
                break
            time.sleep(0.1)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        if name in self.namespaces:
            self.namespaces.remove(name)

    def all(self):
        for p in list(reversed(self.procs)):
            self.kill_proc(p)
        for ns in list(reversed(self.namespaces)):
            self.delete_ns(ns)


CLEANUP = Cleanup()


def remove_stale_namespaces():
    """Namespaces of earlier runs of this script whose process is gone (killed by SIGKILL)."""
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(re.escape(NS_PREFIX) + r"(\d+)-", name)
        if m and int(m.group(1)) != os.getpid() and not os.path.exists(f"/proc/{m.group(1)}"):
            log(f"removing namespace {name} left by a run that died")
            CLEANUP.delete_ns(name)


def make_namespace(index):
    name = f"{NS_PREFIX}{os.getpid()}-{index}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"ip netns add {name}: {r.stderr.strip()}")
    CLEANUP.namespaces.append(name)
    for cmd in (["ip", "link", "set", "lo", "up"],
                ["sysctl", "-qw", "net.ipv4.ip_forward=1"],
                # No IPv6 router solicitations on the new TUN devices: only our packets move.
                ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
                ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]):
        r = subprocess.run(["ip", "netns", "exec", name] + cmd, capture_output=True, text=True)
        if r.returncode != 0 and "ipv6" not in cmd[-1]:
            raise RuntimeError(f"{' '.join(cmd)} in {name}: {r.stderr.strip()}")
    return name


def start(argv, log_path, ns=None):
    """Starts argv (inside ns) in a session of its own, stdout+stderr to log_path."""
    full = (["ip", "netns", "exec", ns] if ns else []) + argv
    f = open(log_path, "w")
    p = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                         start_new_session=True)
    f.close()
    CLEANUP.procs.append(p)
    return p


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def wait_for_text(path, pattern, proc, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if re.search(pattern, read_text(path), re.M):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


# ---- one run ----------------------------------------------------------------------------

def processes_for(n, per_process):
    return max(1, math.ceil(n / per_process))


def im_interval_s(n, a):
    """The IM interval: N / --im-rate, within [--min-interval, --max-interval]."""
    return min(max(n / a.im_rate, a.min_interval), a.max_interval)


def loadgen_argv(a, workload, n, target, target_pid, json_path):
    argv = [a.bins["xtcp-loadgen"], "--tun", "xtcpl0", "--target", target, "--connections", str(n),
            "--ramp", str(a.ramp), "--json", json_path, "--progress", "500ms", "--drain", f"{a.drain}s",
            "--seed", str(a.seed)]
    if workload == "im":
        interval = im_interval_s(n, a)
        duration = a.duration if a.duration > 0 else max(a.min_duration, 1.2 * interval)
        argv += ["--workload", "im", "--message-size", a.message_size, "--interval", f"{int(interval * 1000)}ms",
                 "--duration", f"{int(duration * 1000)}ms"]
    else:
        # The measuring period ends when the last burst is answered; the duration only bounds it.
        bound = 60 + a.bursts * (a.burst_interval + max(10, n / 5000))
        argv += ["--workload", "burst", "--message-size", a.burst_size, "--bursts", str(a.bursts),
                 "--interval", f"{int(a.burst_interval * 1000)}ms", "--duration", f"{int(bound)}s"]
    if target_pid:
        argv += ["--target-pid", str(target_pid)]
    return argv


def run_one(a, index, n, server, workload):
    """One run in a fresh namespace; returns its record (also written to --out)."""
    tag = f"N{n}-{server}-{workload}"
    rec = {"tag": tag, "connections": n, "server": server, "workload": workload, "ok": False, "failure": None,
           "loadavg_before": loadavg()}
    paths = {k: os.path.join(a.out, f"{tag}.{k}") for k in ("server.log", "loadgen.log", "loadgen.json", "run.json")}
    for p in paths.values():
        if os.path.exists(p):
            os.remove(p)
    ns = None
    srv = None
    lg = None
    try:
        ns = make_namespace(index)
        rec["namespace"] = ns
        kernel = server == "kernel"
        if kernel:
            procs = processes_for(n, a.conns_per_process)
            rec["processes"] = procs
            r = subprocess.run(["ip", "netns", "exec", ns, "ip", "addr", "add", f"{KERNEL_IP}/32", "dev", "lo"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"ip addr add: {r.stderr.strip()}")
            port = IM_PORT if workload == "im" else ECHO_PORT
            argv = [a.bins["xtcp-kernel-server"], "--listen", f"{KERNEL_IP}:{port}", "--processes", str(procs)]
            argv += ["--protocol", "im", "--presence", "watched"] if workload == "im" else ["--protocol", "echo"]
            target = f"{KERNEL_IP}:{port}"
            ready = r"^xtcp-kernel-server: \w+ on "
        else:
            prog = "xtcp-im" if workload == "im" else "xtcp-echo"
            port = IM_PORT if workload == "im" else ECHO_PORT
            argv = [a.bins[prog], "--tun", "xtcp0", "--ip", XTCP_IP, "--kernel-ip", f"{KERNEL_IP}/24",
                    "--port", str(port)]
            if workload == "im":
                argv += ["--presence", "watched"]
            argv += shlex.split(a.xtcp_args)
            target = f"{XTCP_IP}:{port}"
            ready = rf"^{prog}: {re.escape(XTCP_IP)}:"
        rec["server_argv"] = argv
        srv = start(argv, paths["server.log"], ns)
        if not wait_for_text(paths["server.log"], ready, srv, 20):
            raise RuntimeError(f"the server did not start: {read_text(paths['server.log']).strip()[-400:]}")
        if kernel:
            deadline = time.time() + 10
            while len(children(srv.pid)) < rec["processes"] and time.time() < deadline:
                time.sleep(0.05)
        time.sleep(0.5)  # let it settle before the baseline
        before = memory_snapshot(srv.pid, kernel)
        rec["server_comm"] = read_text(f"/proc/{srv.pid}/comm").strip()  # the program, not `ip`
        argv = loadgen_argv(a, workload, n, target, 0 if kernel else srv.pid, paths["loadgen.json"])
        rec["loadgen_argv"] = argv
        lg_log = open(paths["loadgen.log"], "w")
        lg = subprocess.Popen(["ip", "netns", "exec", ns] + argv, stdin=subprocess.DEVNULL,
                              stdout=lg_log, stderr=subprocess.PIPE, text=True, start_new_session=True)
        CLEANUP.procs.append(lg)
        snaps = {}

        def follow():
            # Progress lines (one per 500 ms, not a terminal): the first one after the ramp
            # takes the memory "after the ramp"; the measuring period's largest RSS is kept too.
            for line in lg.stderr:
                lg_log.write(line)
                lg_log.flush()
                m = re.match(r"\s*[\d.]+s (\w+)", line)
                if not m:
                    continue
                if m.group(1) == "measure":
                    if "after_ramp" not in snaps:
                        snaps["after_ramp"] = memory_snapshot(srv.pid, kernel)
                        snaps["cpu_after_ramp"] = proc_cpu_s(srv.pid)
                    pids = [srv.pid] + (children(srv.pid) if kernel else [])
                    rss = sum(proc_status_kb(p, "VmRSS") for p in pids) * 1024
                    snaps["peak_rss_bytes"] = max(rss, snaps.get("peak_rss_bytes", 0))

        t = threading.Thread(target=follow, daemon=True)
        t.start()
        ramp_s = n / a.ramp if a.ramp > 0 else 0
        bound = ramp_s + 120 + a.drain + 120 + (
            (a.duration if a.duration > 0 else max(a.min_duration, 1.2 * im_interval_s(n, a))) if workload == "im"
            else 60 + a.bursts * (a.burst_interval + max(10, n / 5000)))
        try:
            lg.wait(timeout=bound)
        except subprocess.TimeoutExpired:
            rec["failure"] = f"xtcp-loadgen did not finish within {int(bound)} s (stopped)"
            CLEANUP.kill_proc(lg, signal.SIGINT, grace=30)
        t.join(timeout=10)
        lg_log.close()
        rec["loadgen_exit"] = lg.returncode
        if lg in CLEANUP.procs:
            CLEANUP.procs.remove(lg)
        try:
            with open(paths["loadgen.json"]) as f:
                rec["loadgen"] = json.load(f)
        except (OSError, ValueError) as e:
            rec["loadgen"] = None
            rec["failure"] = rec["failure"] or f"no JSON summary from xtcp-loadgen ({e}); exit {lg.returncode}: " + \
                read_text(paths["loadgen.log"]).strip()[-300:]
        server_alive = srv.poll() is None
        # The server's CPU over the measuring period (the bursts and the quiet between them),
        # the ramp left out; xtcp servers only (a kernel server's work is in softirq).
        cpu_end = proc_cpu_s(srv.pid) if server_alive and not kernel else None
        if cpu_end is not None and snaps.get("cpu_after_ramp") is not None:
            rec["server_cpu_s_measuring"] = cpu_end - snaps["cpu_after_ramp"]
        rec["memory_before"] = before
        rec["memory_after_ramp"] = snaps.get("after_ramp")
        rec["peak_rss_bytes_measuring"] = snaps.get("peak_rss_bytes")
        CLEANUP.kill_proc(srv, signal.SIGINT, grace=20)
        rec["server_exit"] = srv.returncode
        if not server_alive:
            rec["failure"] = rec["failure"] or f"the server died during the run (exit {srv.returncode})"
        elif srv.returncode not in (0, None):
            rec["failure"] = rec["failure"] or f"the server exited {srv.returncode} when stopped"
        lgj = rec.get("loadgen")
        if lgj is not None and not lgj.get("ok") and not rec["failure"]:
            rec["failure"] = (f"xtcp-loadgen: not ok (exit {lg.returncode}, errors {lgj.get('errors')}, "
                              f"{lgj['connections']['established']} of {n} up)")
        if rec["memory_after_ramp"] is None and not rec["failure"]:
            rec["failure"] = "no progress line after the ramp: no memory sample"
        rec["ok"] = rec["failure"] is None
    except Stopped:
        rec["failure"] = "stopped by a signal"
        raise
    except Exception as e:  # noqa: BLE001: a failed run is reported, the next one runs
        rec["failure"] = rec["failure"] or f"{type(e).__name__}: {e}"
    finally:
        for p in (lg, srv):
            if p is not None:
                CLEANUP.kill_proc(p)
        if ns:
            CLEANUP.delete_ns(ns)
        rec["loadavg_after"] = loadavg()
        rec["namespace_removed"] = ns is None or ns not in netns_list()
        figures(rec)
        slim = dict(rec)
        with open(paths["run.json"], "w") as f:
            json.dump(slim, f, indent=1)
    return rec


def netns_list():
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return [line.split()[0] for line in r.stdout.splitlines() if line.split()]


def slab_top(before, after, k=6):
    """The slab caches that grew most (bytes), for the record."""
    b, a2 = (before or {}).get("slabinfo", {}), (after or {}).get("slabinfo", {})
    grew = sorted(((a2[c] - b.get(c, 0), c) for c in a2), reverse=True)[:k]
    return [{"cache": c, "bytes": g} for g, c in grew if g > 0]


def figures(rec):
    """The derived figures of one run (rec['fig']); None where the data is missing."""
    n = rec["connections"]
    lgj = rec.get("loadgen") or {}
    b, s = rec.get("memory_before"), rec.get("memory_after_ramp")
    f = {}
    if b and s:
        proc = (s["rss_bytes"] - b["rss_bytes"]) / n
        pss = (s["pss_bytes"] - b["pss_bytes"]) / n
        slab = (s["slab_bytes"] - b["slab_bytes"]) / n
        sock = (s["sockstat_tcp_mem_bytes"] - b["sockstat_tcp_mem_bytes"]) / n
        f.update(rss_per_conn=proc, pss_per_conn=pss, slab_per_conn=slab, sockstat_per_conn=sock,
                 mem_per_conn=proc + slab + sock if rec["server"] == "kernel" else proc,
                 rss_before=b["rss_bytes"], rss_after=s["rss_bytes"],
                 sockstat_inuse_after=s["sockstat_tcp_inuse"], slab_top=slab_top(b, s))
    if lgj:
        c, m, lat, pk = lgj["connections"], lgj["messages"], lgj["latency_us"], lgj["packets"]
        f.update(peak=c["peak"], established=c["established"], setup_rate=c["setup_rate_per_s"],
                 ramp_seconds=c["ramp_seconds"], slowest_connect_ms=c["slowest_connect_ms"],
                 msgs_per_s=m["per_second"], answered=m["answered"], sent=m["sent"],
                 measure_seconds=m["measure_seconds"], p50=lat["p50"], p99=lat["p99"], p999=lat["p999"],
                 lat_count=lat["count"], per_exchange=pk["per_exchange"], packets=pk["out"] + pk["in"],
                 retransmits=pk["retransmits"], errors=lgj["errors"], bursts=lgj.get("bursts_seconds", []),
                 interval_ms=lgj["options"]["interval_ms"], duration_s=lgj["options"]["duration_s"],
                 message_size=lgj["options"]["message_size"])
        if m["measure_seconds"] > 0:
            # Per direction (each has its own writer, like the floor): the busier one.
            f["packets_per_s"] = (pk["out"] + pk["in"]) / m["measure_seconds"]
            f["busier_direction_pps"] = max(pk["out"], pk["in"]) / m["measure_seconds"]
        if f["bursts"]:
            # A burst carries at least one request packet per connection one way and one echo
            # the other way within the burst time.
            f["burst_echoes_per_s"] = c["peak"] / max(median(f["bursts"]), 1e-9)
    rec["fig"] = f


def median(v):
    v = sorted(v)
    if not v:
        return 0
    m = len(v) // 2
    return v[m] if len(v) % 2 else (v[m - 1] + v[m]) / 2


# ---- the TUN floor ----------------------------------------------------------------------

def tun_floor(a):
    path = os.path.join(a.out, "floor.json")
    if os.path.exists(path):
        os.remove(path)
    argv = [a.bins["bench_tun_floor"], "--duration", f"{int(a.floor_duration * 1000)}ms", "--json", path]
    p = start(argv, os.path.join(a.out, "floor.log"))
    try:
        p.wait(timeout=4 * a.floor_duration + 60)
    except subprocess.TimeoutExpired:
        pass
    CLEANUP.kill_proc(p)  # SIGTERM: it deletes its namespace itself
    try:
        with open(path) as f:
            floor = json.load(f)
    except (OSError, ValueError):
        log("bench_tun_floor failed: " + read_text(os.path.join(a.out, "floor.log")).strip()[-300:])
        return None
    floor["argv"] = argv
    return floor


# ---- output -----------------------------------------------------------------------------

def fmt_int(v):
    return "-" if v is None else f"{v:,.0f}"


def fmt_us(v):
    if v is None:
        return "-"
    if v < 1000:
        return f"{v:.0f} us"
    if v < 1_000_000:
        return f"{v / 1000:.1f} ms"
    return f"{v / 1e6:.2f} s"


def fmt_frac(v):
    return "-" if v is None else f"{v:.3f}"


def fmt_n(n):
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else (
        f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n))


def per_exchange_cell(f):
    if not f.get("per_exchange"):
        return "-"
    if f.get("per_exchange_no_resets") is None:
        return f"{f['per_exchange']:.2f}"
    return f"{f['per_exchange']:.2f} ({f['per_exchange_no_resets']:.2f})"


def status(rec):
    if rec["ok"]:
        return "ok"
    return "**FAILED**: " + (rec["failure"] or "?").replace("|", "/").replace("\n", " ")[:220]


def ratio(k, x):
    if k is None or x is None or x == 0:
        return "-"
    return f"{k / x:.2f}"


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), {meminfo_kb('MemTotal') / 1024 / 1024:.1f} GiB RAM, kernel {os.uname().release}"


def git_info():
    def git(*args):
        r = subprocess.run(["git", "-C", REPO] + list(args), capture_output=True, text=True)
        return r.stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "?"
    dirty = [line for line in git("status", "--porcelain", "--untracked-files=no").splitlines() if line]
    return head, len(dirty)


def build_type(bin_dir):
    cache = os.path.join(os.path.dirname(bin_dir.rstrip("/")), "CMakeCache.txt")
    m = re.search(r"^CMAKE_BUILD_TYPE:\w+=(.*)$", read_text(cache), re.M)
    return m.group(1) if m and m.group(1) else "?"


def markdown(a, recs, floor, started, finished, load_start, load_end, plots):
    head, dirty = git_info()
    fl_pps = floor["oneway"]["packets_per_s"] if floor else None
    fl_rtt = floor["pingpong"]["mean_rtt_us"] if floor else None
    by = {(r["connections"], r["server"], r["workload"]): r for r in recs}
    sizes = sorted({r["connections"] for r in recs})
    L = []
    L.append(BEGIN)
    L.append("### Results of the last run")
    L.append("")
    L.append("Written by `bench/side_by_side.py`; the command line of this run:")
    L.append("")
    L.append("```sh")
    L.append("sudo " + " ".join(shlex.quote(x) for x in [os.path.relpath(os.path.abspath(sys.argv[0]), REPO)] +
                                sys.argv[1:]))
    L.append("```")
    L.append("")
    L.append(f"- Run {started} to {finished} (UTC) at commit `{head}`"
             + (f" with uncommitted changes in {dirty} tracked files" if dirty else "")
             + f", `{build_type(a.bin_dir)}` build (`{os.path.relpath(a.bin_dir, REPO)}`).")
    L.append(f"- Machine: {machine()}. Load average (1/5/15 min) at the start {load_start}, at the end "
             f"{load_end}; per run below. Ratios come from this one run on this one machine.")
    L.append(f"- Raw JSON of every run, the servers' and the load generator's logs: `{a.out}` (not in the "
             "repository).")
    if max(sizes, default=0) < 1_000_000:
        L.append(f"- **A validation run at small sizes** ({', '.join(fmt_n(n) for n in sizes)} connections), not "
                 "the full run (10k, 100k, 1M: `sudo bench/side_by_side.py` with no `--sizes`, on a quiet "
                 "machine); at these sizes the fixed costs of the programs weigh on the memory figures.")
    L.append("")
    L.append("#### Set-up")
    L.append("")
    L.append("Every run has a fresh network namespace (`ip netns add`, `net.ipv4.ip_forward=1`, removed after "
             "the run) and the same clients: `xtcp-loadgen --tun xtcpl0` (an xtcp stack in client mode behind "
             "its own TUN device, sources 198.18.128.0/17).")
    L.append("")
    L.append(f"- **xtcp**: `xtcp-im --presence watched` / `xtcp-echo` with `--tun xtcp0 --ip {XTCP_IP} "
             f"--kernel-ip {KERNEL_IP}/24`" + (f" `{a.xtcp_args}`" if a.xtcp_args else "") +
             "; a packet crosses the load generator's TUN, the kernel's IPv4 forwarding and the server's TUN.")
    L.append(f"- **kernel**: `xtcp-kernel-server --protocol im --presence watched` / `--protocol echo` "
             f"listening on {KERNEL_IP} (an address on `lo`), `--processes` = ceil(N / {a.conns_per_process}) "
             "(at most 20,000 descriptors per process here); a packet crosses the load generator's TUN into "
             "the kernel's TCP.")
    im_cfg = ", ".join(f"{fmt_n(n)}: {im_interval_s(n, a):g} s" for n in sizes)
    L.append(f"- **im** workload: `--workload im --message-size {a.message_size}`, each connection logs in, "
             f"then sends a message to a random logged-in user every interval; interval = N / {a.im_rate:g} "
             f"(an offered load of about {a.im_rate:,.0f} messages/s, bounded to {a.min_interval:g}-"
             f"{a.max_interval:g} s: {im_cfg}), measured for "
             + (f"{a.duration:g} s" if a.duration > 0 else f"max({a.min_duration:g} s, 1.2 x interval)")
             + f" after the ramp; `--ramp {a.ramp}` connections/s, `--drain {a.drain}s`.")
    L.append(f"- **burst** workload (echo servers): `--workload burst --message-size {a.burst_size} --bursts "
             f"{a.bursts} --interval {a.burst_interval:g}s`: all connections send one echo message at the same "
             "instant; the time from the first send to the last answer is the burst time.")
    L.append("- Memory per connection: **xtcp** = (server RSS after the ramp - RSS before any connection) / N. "
             "**kernel** = (summed RSS of the parent and every worker after the ramp - before) / N, plus the "
             "growth of `Slab` (`/proc/meminfo`) and of the TCP `mem` pages (`/proc/net/sockstat`) over the "
             "same period / N (both machine-wide: other work on the machine moves them, and socket buffers "
             "allocated from slab may be counted in both). \"After the ramp\" is the first progress line of "
             "the measuring period (within 0.5 s of the last connection coming up).")
    if floor:
        o, pp = floor["oneway"], floor["pingpong"]
        L.append(f"- **TUN floor** (`bench_tun_floor --duration {a.floor_duration:g}s`, "
                 f"{floor['packet_bytes']}-byte IPv4/UDP packets, TUN -> kernel forwarding -> TUN, no TCP): "
                 f"**{o['packets_per_s']:,.0f} packets/s** one way (window {floor['window']}, writer "
                 f"{o['writer_cpu_us_per_packet']:.2f} us CPU/packet, reader {o['reader_cpu_us_per_packet']:.2f}), "
                 f"ping-pong **{pp['round_trips_per_s']:,.0f} round trips/s** (mean round trip "
                 f"{pp['mean_rtt_us']:.1f} us). Runs are set against it per direction, since each direction "
                 "has its own writer as in the floor's one-way measurement (see \"How to read it\").")
    else:
        L.append("- **TUN floor**: bench_tun_floor failed or did not run; no fractions of it.")
    L.append("")

    # im table
    L.append(f"#### IM, {a.message_size}-byte messages" if a.message_size.isdigit() else
             f"#### IM, {a.message_size} messages")
    L.append("")
    L.append("| N | server | status | peak conns | set-up /s | 2 x set-up of floor | memory / conn | "
             "offered msg/s | msg/s | p50 | p99 | p999 | p50 in floor RTTs | packets / exchange | packets/s of "
             "floor (busier direction) | errors | load before -> after |")
    L.append("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in sizes:
        for srv in a.servers:
            r = by.get((n, srv, "im"))
            if not r:
                continue
            f = r["fig"]
            name = srv if srv == "xtcp" else f"kernel ({r.get('processes', '?')} proc)"
            offered = n / im_interval_s(n, a)
            L.append("| " + " | ".join([
                fmt_n(n), name, status(r), fmt_int(f.get("peak")), fmt_int(f.get("setup_rate")),
                fmt_frac(2 * f["setup_rate"] / fl_pps) if fl_pps and f.get("setup_rate") else "-",
                (f"{f['mem_per_conn']:,.0f} B" if f.get("mem_per_conn") is not None else "-"),
                fmt_int(offered), fmt_int(f.get("msgs_per_s")), fmt_us(f.get("p50")), fmt_us(f.get("p99")),
                fmt_us(f.get("p999")),
                f"{f['p50'] / fl_rtt:.1f}" if fl_rtt and f.get("p50") else "-",
                per_exchange_cell(f),
                fmt_frac(f["busier_direction_pps"] / fl_pps) if fl_pps and f.get("busier_direction_pps") else "-",
                fmt_int(f.get("errors")), f"{r['loadavg_before']} -> {r['loadavg_after']}"]) + " |")
    L.append("")

    # burst table
    L.append(f"#### Burst, {a.burst_size}-byte echoes" if a.burst_size.isdigit() else f"#### Burst, {a.burst_size} echoes")
    L.append("")
    L.append("| N | server | status | peak conns | set-up /s | memory / conn | burst times | packets / exchange | "
             "echoes/s in the median burst, of floor | errors | load before -> after |")
    L.append("|---:|---|---|---:|---:|---:|---|---:|---:|---:|---|")
    for n in sizes:
        for srv in a.servers:
            r = by.get((n, srv, "burst"))
            if not r:
                continue
            f = r["fig"]
            name = srv if srv == "xtcp" else f"kernel ({r.get('processes', '?')} proc)"
            bursts = ", ".join(f"{x:.3g} s" for x in f.get("bursts", [])) or "-"
            L.append("| " + " | ".join([
                fmt_n(n), name, status(r), fmt_int(f.get("peak")), fmt_int(f.get("setup_rate")),
                (f"{f['mem_per_conn']:,.0f} B" if f.get("mem_per_conn") is not None else "-"), bursts,
                per_exchange_cell(f),
                fmt_frac(f["burst_echoes_per_s"] / fl_pps) if fl_pps and f.get("burst_echoes_per_s") else "-",
                fmt_int(f.get("errors")), f"{r['loadavg_before']} -> {r['loadavg_after']}"]) + " |")
    L.append("")

    # memory detail
    L.append("#### Memory per connection, in detail (bytes)")
    L.append("")
    L.append("| N | server | workload | process RSS growth | (PSS growth) | Slab growth | sockstat TCP mem growth "
             "| memory / conn | how | slab caches that grew most |")
    L.append("|---:|---|---|---:|---:|---:|---:|---:|---|---|")
    for n in sizes:
        for wl in a.workloads:
            for srv in a.servers:
                r = by.get((n, srv, wl))
                if not r or r["fig"].get("mem_per_conn") is None:
                    continue
                f = r["fig"]
                how = ("server RSS" if srv == "xtcp" else "processes' RSS + Slab + sockstat mem")
                top = ", ".join(f"{t['cache']} {t['bytes'] / n:,.0f}" for t in f.get("slab_top", [])[:4]) or "-"
                L.append("| " + " | ".join([
                    fmt_n(n), srv, wl, f"{f['rss_per_conn']:,.0f}", f"{f['pss_per_conn']:,.0f}",
                    f"{f['slab_per_conn']:,.0f}", f"{f['sockstat_per_conn']:,.0f}",
                    f"**{f['mem_per_conn']:,.0f}**", how, top]) + " |")
    L.append("")
    L.append("Slab and sockstat columns of xtcp runs are shown for comparison only (the TUN devices' queues, "
             "the load generator, and whatever else ran on the machine); they are not in xtcp's figure. "
             "\"Slab caches\": growth per connection of the caches that grew most (`/proc/slabinfo`, "
             "active objects x object size).")
    L.append("")

    # ratios
    if "xtcp" in a.servers and "kernel" in a.servers:
        L.append("#### Ratios kernel / xtcp (this run)")
        L.append("")
        L.append("| N | memory / conn (im) | memory / conn (burst) | set-up rate (im) | msg/s | p50 | p99 | "
                 "median burst time | packets / exchange (im) |")
        L.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n in sizes:
            xi, ki = by.get((n, "xtcp", "im")), by.get((n, "kernel", "im"))
            xb, kb = by.get((n, "xtcp", "burst")), by.get((n, "kernel", "burst"))

            def g(r, k):
                return r["fig"].get(k) if r and r["ok"] else None

            mb = lambda r: median(r["fig"]["bursts"]) if r and r["ok"] and r["fig"].get("bursts") else None  # noqa
            L.append("| " + " | ".join([
                fmt_n(n), ratio(g(ki, "mem_per_conn"), g(xi, "mem_per_conn")),
                ratio(g(kb, "mem_per_conn"), g(xb, "mem_per_conn")),
                ratio(g(ki, "setup_rate"), g(xi, "setup_rate")), ratio(g(ki, "msgs_per_s"), g(xi, "msgs_per_s")),
                ratio(g(ki, "p50"), g(xi, "p50")), ratio(g(ki, "p99"), g(xi, "p99")), ratio(mb(kb), mb(xb)),
                ratio(g(ki, "per_exchange"), g(xi, "per_exchange"))]) + " |")
        L.append("")
        L.append("Failed runs give no ratio (\"-\").")
        L.append("")
    L.append("How to read it:")
    L.append("")
    L.append("- `packets / exchange` is the load generator's `packets.per_exchange`: its own packets (out and in) "
             "during the measuring period, divided by the messages answered in it. Packets/s divide the same "
             "counts by the measuring period.")
    L.append("- Fractions of the floor, per direction: \"2 x set-up\" = the clients' two packets per handshake "
             "(SYN, ACK) at the set-up rate / the one-way floor (with a paced ramp the set-up rate is at most "
             "`--ramp`); \"packets/s of floor\" = the busier direction's packets (`packets.out` or "
             "`packets.in`) per second of the measuring period / the one-way floor; burst: connections / median "
             "burst time (one request packet one way and one echo the other way per connection, at least) / "
             "the one-way floor; \"p50 in floor RTTs\": the median latency / the floor's ping-pong round trip "
             "(a message crosses the path twice, as a floor round trip does). On the xtcp path every packet "
             "takes the floor's path; on the kernel path it crosses one TUN device only, so its fractions "
             "can pass 1.")
    L.append("- The xtcp path crosses two TUN devices and the kernel's forwarding per packet (the floor's path); "
             "the kernel path one TUN device into the kernel's TCP. Both share the machine's two cores with "
             "the load generator, which is an xtcp stack in one process.")
    L.append("")
    if plots:
        L.append("Plots (gnuplot):")
        L.append("")
        for title, p in plots:
            L.append(f"![{title}]({os.path.relpath(p, os.path.dirname(os.path.abspath(a.doc)))})")
        L.append("")
    elif a.plot_note:
        L.append(f"No plots: {a.plot_note}")
        L.append("")
    L.append(END)
    return "\n".join(L) + "\n"


def write_section(doc, text):
    content = read_text(doc)
    if BEGIN in content and END in content and content.index(BEGIN) < content.index(END):
        i, j = content.index(BEGIN), content.index(END) + len(END)
        j += 1 if content[j:j + 1] == "\n" else 0
        content = content[:i] + text + content[j:]
    else:
        content = content.rstrip("\n") + "\n\n" + text
    tmp = doc + ".tmp-side-by-side"
    with open(tmp, "w") as f:
        f.write(content)
    os.replace(tmp, doc)


def ensure_gnuplot():
    """The path of gnuplot, installing Debian's gnuplot-nox when missing; (None, why) when impossible."""
    g = shutil.which("gnuplot")
    if g:
        return g, None
    if not shutil.which("apt-get"):
        return None, "gnuplot is not installed and there is no apt-get to install gnuplot-nox"
    log("gnuplot missing: apt-get install gnuplot-nox")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "gnuplot-nox"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if r.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True, env=env, timeout=900)
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    g = shutil.which("gnuplot")
    if not g:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["?"]
        return None, f"apt-get install gnuplot-nox failed: {tail[0]}"
    return g, None


def plot(a, recs):
    """PNG plots into --img-dir; [(title, path)], with a.plot_note saying why when there are none."""
    a.plot_note = ""
    if a.no_plots:
        a.plot_note = "--no-plots"
        return []
    gp, why = ensure_gnuplot()
    if not gp:
        a.plot_note = why
        log(f"no plots: {why}")
        return []
    os.makedirs(a.img_dir, exist_ok=True)
    by = {(r["connections"], r["server"], r["workload"]): r for r in recs}
    sizes = sorted({r["connections"] for r in recs})
    data = {}
    for srv in a.servers:
        mem = [(n, by[(n, srv, "im")]["fig"]["mem_per_conn"]) for n in sizes
               if (n, srv, "im") in by and by[(n, srv, "im")]["ok"] and
               by[(n, srv, "im")]["fig"].get("mem_per_conn") is not None]
        lat = [(n, by[(n, srv, "im")]["fig"]["p50"], by[(n, srv, "im")]["fig"]["p99"]) for n in sizes
               if (n, srv, "im") in by and by[(n, srv, "im")]["ok"] and by[(n, srv, "im")]["fig"].get("p50")]
        for kind, rows in (("mem", mem), ("lat", lat)):
            path = os.path.join(a.out, f"plot-{kind}-{srv}.dat")
            with open(path, "w") as f:
                for row in rows:
                    f.write(" ".join(str(x) for x in row) + "\n")
            data[(kind, srv)] = (path, len(rows))
    mem_png = os.path.join(a.img_dir, "side_by_side_memory.png")
    lat_png = os.path.join(a.img_dir, "side_by_side_latency.png")
    colors = {"xtcp": "#1f77b4", "kernel": "#d62728"}
    script = ["set terminal pngcairo size 800,500 noenhanced" if terminal_ok(gp, "pngcairo")
              else "set terminal png size 800,500 noenhanced",
              "set logscale x", "set grid", "set key top left", "set xlabel 'connections'",
              f"set xrange [{min(sizes) / 1.5}:{max(sizes) * 1.5}]" if sizes else "",
              "set xtics (" + ", ".join(f"'{fmt_n(n)}' {n}" for n in sizes) + ")" if sizes else "",
              f"set output '{mem_png}'",
              "set title 'Memory per connection (im workload, after the ramp)'",
              "set ylabel 'bytes per connection'", "set yrange [0:*]", "set key left center"]
    curves = [f"'{data[('mem', s)][0]}' using 1:2 with linespoints lw 2 pt 7 lc rgb '{colors.get(s, 'black')}' "
              f"title '{s}'" for s in a.servers if data[("mem", s)][1] > 0]
    made = []
    if curves:
        script.append("plot " + ", ".join(curves))
        made.append(("Memory per connection vs connections, xtcp and kernel", mem_png))
    script += [f"set output '{lat_png}'", "set title 'IM latency (send to delivery), p50 and p99'", "set key top left",
               "set ylabel 'microseconds'", "set logscale y", "set yrange [*:*]"]
    curves = []
    for s in a.servers:
        if data[("lat", s)][1] > 0:
            c = colors.get(s, "black")
            curves.append(f"'{data[('lat', s)][0]}' using 1:2 with linespoints lw 2 pt 7 lc rgb '{c}' "
                          f"title '{s} p50'")
            curves.append(f"'{data[('lat', s)][0]}' using 1:3 with linespoints lw 2 pt 5 dt 2 lc rgb '{c}' "
                          f"title '{s} p99'")
    if curves:
        script.append("plot " + ", ".join(curves))
        made.append(("IM latency p50 and p99 vs connections, xtcp and kernel", lat_png))
    if not made:
        a.plot_note = "no successful run to plot"
        return []
    gp_path = os.path.join(a.out, "plots.gp")
    with open(gp_path, "w") as f:
        f.write("\n".join(x for x in script if x) + "\n")
    r = subprocess.run([gp, gp_path], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        a.plot_note = f"gnuplot failed: {r.stderr.strip()[-200:]}"
        log(a.plot_note)
        return []
    return made


def terminal_ok(gp, term):
    r = subprocess.run([gp, "-e", f"set terminal {term}"], capture_output=True, text=True)
    return r.returncode == 0 and "unknown" not in r.stderr.lower()


def summary_line(rec):
    f = rec["fig"]
    parts = [f"{rec['tag']}: {'ok' if rec['ok'] else 'FAILED (' + (rec['failure'] or '?') + ')'}"]
    if f.get("peak") is not None:
        parts.append(f"peak {f['peak']}")
    if f.get("mem_per_conn") is not None:
        parts.append(f"{f['mem_per_conn']:.0f} B/conn")
    if f.get("setup_rate"):
        parts.append(f"set-up {f['setup_rate']:.0f}/s")
    if rec["workload"] == "im" and f.get("msgs_per_s") is not None:
        parts.append(f"{f['msgs_per_s']:.0f} msg/s p50 {fmt_us(f.get('p50'))} p99 {fmt_us(f.get('p99'))}")
    if f.get("bursts"):
        parts.append("bursts " + ",".join(f"{x:.3g}s" for x in f["bursts"]))
    if f.get("per_exchange"):
        parts.append(f"{per_exchange_cell(f)} packets/exchange")
    if rec.get("server_cpu_s_measuring") is not None:
        parts.append(f"server CPU {rec['server_cpu_s_measuring']:.2f} s measuring")
    parts.append(f"load {rec['loadavg_before']} -> {rec['loadavg_after']}")
    return ", ".join(parts)


# ---- main -------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="side_by_side.py",
        description="Runs the same xtcp-loadgen workloads (im with 1 KB messages, burst) against xtcp-im/xtcp-echo "
                    "behind their TUN device and against xtcp-kernel-server on the kernel's TCP, each in a fresh "
                    "network namespace, measures the raw TUN floor with bench_tun_floor, and writes a markdown "
                    "section into docs/benchmarks.md, PNG plots into docs/img/ and the raw JSON into --out. "
                    "Needs root.")
    p.add_argument("--sizes", default="10000,100000,1000000",
                   help="connection counts, comma-separated (default: %(default)s); k and M suffixes work")
    p.add_argument("--servers", default="xtcp,kernel", help="xtcp, kernel or both (default: %(default)s)")
    p.add_argument("--workloads", default="im,burst", help="im, burst or both (default: %(default)s)")
    p.add_argument("--out", default="/tmp/xtcp-side-by-side", help="raw JSON and logs (default: %(default)s)")
    p.add_argument("--doc", default=os.path.join(REPO, "docs", "benchmarks.md"),
                   help="markdown file whose side-by-side section is (re)written (default: docs/benchmarks.md)")
    p.add_argument("--img-dir", default=os.path.join(REPO, "docs", "img"), help="PNG plots (default: docs/img)")
    p.add_argument("--no-doc", action="store_true", help="do not touch --doc; print the section on stdout")
    p.add_argument("--no-plots", action="store_true", help="no gnuplot, no PNGs")
    p.add_argument("--bin-dir", default=os.path.join(REPO, "build", "bin"),
                   help="where the programs are (default: build/bin)")
    p.add_argument("--im-rate", type=float, default=10000,
                   help="im: offered messages/s; interval = N / rate (default: %(default)s: 1M connections -> 100 s)")
    p.add_argument("--min-interval", type=float, default=1.0, help="im: shortest interval, s (default: %(default)s)")
    p.add_argument("--max-interval", type=float, default=120.0, help="im: longest interval, s (default: %(default)s)")
    p.add_argument("--duration", type=float, default=0,
                   help="im: measuring period, s (default 0: max(--min-duration, 1.2 x interval))")
    p.add_argument("--min-duration", type=float, default=20.0, help="im: shortest measuring period, s "
                   "(default: %(default)s)")
    p.add_argument("--message-size", default="1000",
                   help="im: MSG text bytes (default: %(default)s: 1K = 1024 would make the request line longer "
                        "than the IM protocol's 1024 bytes, and every message would be refused)")
    p.add_argument("--ramp", type=int, default=50000, help="connections opened per second (default: %(default)s)")
    p.add_argument("--drain", type=int, default=30, help="seconds to wait for late answers (default: %(default)s)")
    p.add_argument("--bursts", type=int, default=3, help="burst: bursts per run (default: %(default)s)")
    p.add_argument("--burst-interval", type=float, default=2.0, help="burst: s between bursts (default: %(default)s)")
    p.add_argument("--burst-size", default="64", help="burst: bytes per echo (default: %(default)s)")
    p.add_argument("--conns-per-process", type=int, default=18000,
                   help="kernel server: --processes = ceil(N / this) (default: %(default)s)")
    p.add_argument("--xtcp-args", default="", help="extra flags for xtcp-im and xtcp-echo (e.g. '--pool-size 16M')")
    p.add_argument("--floor-duration", type=float, default=2.0, help="bench_tun_floor --duration, s "
                   "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="xtcp-loadgen --seed (default: %(default)s)")
    a = p.parse_args(argv)

    def size(x):
        x = x.strip().lower()
        mult = 1_000_000 if x.endswith("m") else 1000 if x.endswith("k") else 1
        return int(float(x.rstrip("mk")) * mult)
    try:
        a.sizes = [size(x) for x in a.sizes.split(",") if x.strip()]
    except ValueError:
        p.error(f"--sizes: '{a.sizes}' is not a list of numbers")
    if not a.sizes or any(n < 1 or n > 16_000_000 for n in a.sizes):
        p.error("--sizes: each from 1 to 16,000,000")
    a.servers = [s.strip() for s in a.servers.split(",") if s.strip()]
    a.workloads = [w.strip() for w in a.workloads.split(",") if w.strip()]
    if not a.servers or any(s not in ("xtcp", "kernel") for s in a.servers):
        p.error("--servers: xtcp, kernel or xtcp,kernel")
    if not a.workloads or any(w not in ("im", "burst") for w in a.workloads):
        p.error("--workloads: im, burst or im,burst")
    if a.im_rate <= 0 or a.min_interval < 0.001 or a.max_interval < a.min_interval or a.ramp < 0 or a.bursts < 1:
        p.error("--im-rate > 0, 0.001 <= --min-interval <= --max-interval, --ramp >= 0, --bursts >= 1")
    if a.conns_per_process < 1 or a.conns_per_process > 19500:
        p.error("--conns-per-process: 1 to 19,500 (the descriptor limit is 20,000)")
    a.bin_dir = os.path.abspath(a.bin_dir)
    a.out = os.path.abspath(a.out)
    a.doc = os.path.abspath(a.doc)
    a.img_dir = os.path.abspath(a.img_dir)
    a.plot_note = ""
    return a


def main(argv):
    a = parse_args(argv)
    if os.geteuid() != 0:
        print("side_by_side.py: must run as root (network namespaces, TUN devices)", file=sys.stderr)
        return 1
    a.bins = {}
    for b in ("xtcp-im", "xtcp-echo", "xtcp-kernel-server", "xtcp-loadgen", "bench_tun_floor"):
        path = os.path.join(a.bin_dir, b)
        if not os.access(path, os.X_OK):
            print(f"side_by_side.py: {path} not found: build first (cmake --build build -j2)", file=sys.stderr)
            return 1
        a.bins[b] = path
    for tool in ("ip", "sysctl"):
        if not shutil.which(tool):
            print(f"side_by_side.py: `{tool}` not found", file=sys.stderr)
            return 1
    os.makedirs(a.out, exist_ok=True)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    recs = []
    rc = 0
    started = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M")
    load_start = loadavg()
    try:
        remove_stale_namespaces()
        log(f"TUN floor (bench_tun_floor, {a.floor_duration:g} s per measurement); load {load_start}")
        floor = tun_floor(a)
        if floor:
            log(f"floor: {floor['oneway']['packets_per_s']:,.0f} packets/s one way, "
                f"{floor['pingpong']['round_trips_per_s']:,.0f} round trips/s")
        index = 0
        for n in a.sizes:
            for wl in a.workloads:
                for srv in a.servers:
                    log(f"N={n} {srv} {wl}: load {loadavg()}")
                    rec = run_one(a, index, n, srv, wl)
                    index += 1
                    recs.append(rec)
                    log(summary_line(rec))
    except Stopped as e:
        log(f"{e}: cleaning up")
        CLEANUP.all()
        rc = 128 + e.signum
        return rc
    finally:
        CLEANUP.all()
    finished = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M")
    load_end = loadavg()
    plots = plot(a, recs)
    text = markdown(a, recs, floor, started, finished, load_start, load_end, plots)
    summary = {"tool": "side_by_side.py", "argv": sys.argv, "started": started, "finished": finished,
               "loadavg_start": load_start, "loadavg_end": load_end, "floor": floor,
               "runs": [r["tag"] for r in recs], "figures": {r["tag"]: r["fig"] for r in recs},
               "ok": {r["tag"]: r["ok"] for r in recs}, "failures": {r["tag"]: r["failure"] for r in recs}}
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(a.out, "section.md"), "w") as f:
        f.write(text)
    if a.no_doc:
        sys.stdout.write(text)
    else:
        write_section(a.doc, text)
        log(f"wrote the section into {a.doc}")
    left = [ns for ns in netns_list() if ns.startswith(f"{NS_PREFIX}{os.getpid()}-")]
    if left:
        log(f"namespaces still there: {left}")
        rc = 1
    log(f"{sum(r['ok'] for r in recs)} of {len(recs)} runs ok; raw JSON in {a.out}")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
