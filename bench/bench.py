#!/usr/bin/env python3
"""skiff benchmark driver (run by bench/run.sh after the Release build; stdlib only).

Targets: the bench backend directly, skiff (1 worker) and nghttpx (1 worker, h2c both sides),
all in front of the same backend. Load: h2load with gRPC framing, interleaved A/B runs in a
rotating order, repeated BENCH_RUNS times after an unmeasured warm-up per target; medians and
min-max reported. Per run: req/s, latency percentiles from h2load's per-request log, the measured
process's CPU (utime+stime from /proc/PID/stat, children included) per completed request, peak
RSS (VmHWM, reset through /proc/PID/clear_refs before each run), failures (h2load failures,
non-2xx, and requests answered by the proxy itself: h2load successes that the backend never
answered). Every process is started here, tracked by PID and stopped by PID on exit.

Environment (defaults in brackets; BENCH_QUICK=1 shortens everything):
  BENCH_BUILD_DIR [build-release]  BENCH_QUICK [0]  BENCH_RUNS [5; quick 3]
  BENCH_SECONDS [3; quick 0.7] length of a closed-loop run for the slowest target
  BENCH_RATE_SECONDS [6; quick 1.5] length of a fixed-rate run
  BENCH_SCENARIOS [all]       comma list of scenario names (see SCENARIOS below)
  BENCH_PIN [1]               pin the measured process to the last CPU, the rest elsewhere
  BENCH_OUT [bench/results]   BENCH_DATE [today]
"""

import datetime
import json
import os
import re
import resource
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, os.environ.get("BENCH_BUILD_DIR", "build-release"))
QUICK = os.environ.get("BENCH_QUICK", "0") == "1"
RUNS = max(1, int(os.environ.get("BENCH_RUNS", "3" if QUICK else "5")))
SECONDS = float(os.environ.get("BENCH_SECONDS", "0.7" if QUICK else "3"))
RATE_SECONDS = float(os.environ.get("BENCH_RATE_SECONDS", "1.5" if QUICK else "6"))
WARMUP_SECONDS = 0.3 if QUICK else 1.0
SETTLE_SECONDS = 1.0 if QUICK else 2.0
PIN = os.environ.get("BENCH_PIN", "1") == "1"
OUT_DIR = os.path.join(ROOT, os.environ.get("BENCH_OUT", "bench/results"))
DATE = os.environ.get("BENCH_DATE", datetime.date.today().isoformat())
HZ = os.sysconf("SC_CLK_TCK")

SKIFF = os.path.join(BUILD, "src", "skiff")
BACKEND = os.path.join(BUILD, "bench", "bench_backend")
RELAY = os.path.join(BUILD, "bench", "bench_relay")
GRPC_LOAD = os.path.join(BUILD, "bench", "grpc_load")
GRPC_PATH = "/skiffbench.Echo/Unary"

# Scenarios run in this order. size = gRPC message bytes (request; the backend mirrors it in the
# response); clients x streams = h2load -c x -m; the rest are per-scenario switches.
SCENARIOS = [
    dict(name="sat-64", title="Saturation, 64 B unary (c16 x m10, closed loop)",
         size=64, clients=16, streams=10, plain_too=True),
    dict(name="sat-1k", title="Saturation, 1 KiB unary (c16 x m10, closed loop)",
         size=1024, clients=16, streams=10, plain_too=True),
    dict(name="rate-4k", title="Fixed rate 4,000 req/s, 1 KiB unary (c4 x m1, --rps 1000 each)",
         size=1024, clients=4, streams=1, rps_per_client=1000, relay=True),
    dict(name="payload-64k", title="Payload 64 KiB request + 64 KiB response (c4 x m4)",
         size=65536, clients=4, streams=4, shared_direct=True),
    dict(name="payload-1m", title="Payload 1 MiB request + 1 MiB response (c4 x m4)",
         size=1 << 20, clients=4, streams=4, shared_direct=True, relay=True),
    dict(name="streams-10k", title="10,000 concurrent streams, 1 KiB (c100 x m100, backend holds "
         "each response 100 ms; max_concurrent_streams 10000 on both proxies)",
         size=1024, clients=100, streams=100, backend_delay_ms=100, max_streams=10000),
    dict(name="policy", title="Policies configured but not triggering, each variant vs the plain "
         "route: a route timeout (30 s); retry + rate limit + message rate limit + breaker; "
         "admin + tracing at 1%. 1 KiB unary (c16 x m10)", size=1024, clients=16, streams=10,
         policy=True),
    dict(name="mtls", title="mTLS between two sidecars (h2load -> proxy A -> mTLS -> proxy B -> "
         "backend), 1 KiB unary (c16 x m10)", size=1024, clients=16, streams=10, mtls=True),
    dict(name="grpc-bidi", title="grpc++ bidi streaming through each target, grpc++ echo server: "
         "throughput with 32 streams x 32 messages in flight, then ping-pong (1 stream, 1 "
         "message in flight); 64 B messages", grpc=True, size=64, streams=32, window=32),
    dict(name="grpc-1m", title="grpc++ bidi streaming, 1 MiB messages (4 streams x 4 messages in "
         "flight, then ping-pong), grpc++ echo server; skiff with the bar's features on",
         grpc=True, size=1 << 20, streams=4, window=4, shared_direct=True, bar=True),
]

PROCS = []  # every process we started: subprocess.Popen


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- processes -------------------------------------------------------------------------------

def children_of(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def pid_tree(pid):
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += children_of(p)
    return pids


def start(argv, cpus, logpath, env=None):
    if PIN and cpus:
        argv = ["taskset", "-c", cpus] + argv
    f = open(logpath, "wb")
    p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env=env)
    f.close()
    p.argv = argv
    p.cmd = shlex.join(argv)
    p.logpath = logpath
    PROCS.append(p)
    return p


def stop(p, timeout=5.0):
    """SIGTERM, wait, SIGKILL; then any child process it left behind, by PID."""
    if p not in PROCS:
        return
    kids = [k for k in pid_tree(p.pid) if k != p.pid]
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    for k in kids:
        try:
            os.kill(k, signal.SIGKILL)
        except ProcessLookupError:
            pass
    PROCS.remove(p)


def stop_all():
    for p in list(reversed(PROCS)):
        try:
            stop(p, 3.0)
        except Exception as e:  # keep stopping the others
            print(f"bench: stopping {p.pid}: {e}", file=sys.stderr)


def on_signal(signum, _frame):
    raise SystemExit(f"bench: interrupted by signal {signum}")


def wait_log(p, pattern, timeout=10.0):
    rx = re.compile(pattern)
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(p.logpath, "r", errors="replace") as f:
            m = rx.search(f.read())
        if m:
            return m
        if p.poll() is not None:
            break
        time.sleep(0.02)
    with open(p.logpath, "r", errors="replace") as f:
        tail = f.read()[-2000:]
    raise RuntimeError(f"{' '.join(p.argv)}: no /{pattern}/ in its output:\n{tail}")


def wait_port(port, p, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if p.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{' '.join(p.argv)}: port {port} never opened")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- /proc -------------------------------------------------------------------------------

def cpu_seconds(pids):
    """utime+stime of every process (all threads) in |pids| (seconds)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
        except OSError:
            pass
    return total / HZ


def sched_seconds(pids):
    """On-CPU time from /proc/PID/task/*/schedstat (ns resolution), a cross-check."""
    total = 0
    for pid in pids:
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e9


def mem_kb(pids, key):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def reset_peak(pids):
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


# ---- the measured things -------------------------------------------------------------------

class Backend:
    """bench_backend; stats() asks it for its counters over SIGUSR1."""

    def __init__(self, work, name, cpus, delay_ms=0):
        self.argv = [BACKEND, "--listen", "127.0.0.1:0", "--threads", "1"]
        if delay_ms:
            self.argv += ["--delay-ms", str(delay_ms)]
        self.p = start(self.argv, cpus, os.path.join(work, f"{name}.log"))
        self.cmd = self.p.cmd
        self.port = int(wait_log(self.p, r"listening on [\d.]+:(\d+)").group(1))
        self.seq = 0

    def stats(self):
        self.seq += 1
        self.p.send_signal(signal.SIGUSR1)
        rx = re.compile(rf"stats seq={self.seq} (.*)")
        deadline = time.time() + 5
        while time.time() < deadline:
            with open(self.p.logpath, errors="replace") as f:
                m = rx.search(f.read())
            if m:
                return {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
            time.sleep(0.005)
        raise RuntimeError("backend did not answer SIGUSR1")


class Target:
    """A process (tree) that h2load or grpc_load talks to, measured over each run."""

    def __init__(self, name, port, procs, backend, label=None, commands=None):
        self.name = name
        self.label = label or name
        self.port = port
        self.procs = procs        # Popen objects whose CPU/RSS is "the target's"
        self.backend = backend    # Backend answering behind it (or the target itself)
        self.commands = commands or []

    def pids(self):
        out = []
        for p in self.procs:
            out += pid_tree(p.pid)
        return out


# The "policy" scenario's variants: every resilience policy configured on the route but none
# triggering, and metrics scraped + tracing at 1% (spans to a closed port: export attempts fail).
POLICY_ROUTE = ["        retry: { max_attempts: 3 }",
                "        rate_limit: { rps: 1e9, burst: 1000000 }",
                "        circuit_breaker: { consecutive_failures: 1000 }",
                "        message_rate_limit: { rps: 1e9, burst: 1000000 }"]


# Issue 6 measures skiff "with routing, deadlines, metrics and trace propagation on": the main
# skiff target of the h2load scenarios has a route timeout, the admin listener and tracing
# (W3C traceparent and x-request-id on every call, 1% sampled, no span export). The policy
# scenario's reference is the plain route instead, so each variant's cost shows against it.
BAR_TIMEOUT = "30s"
BAR_TOP = ["admin: { address: 127.0.0.1:0 }", "tracing: { sample_rate: 0.01 }"]


def observed_top(work):
    return ["admin: { address: 127.0.0.1:0 }",
            f"tracing: {{ sample_rate: 0.01, zipkin_url: \"http://127.0.0.1:{free_port()}"
            "/api/v2/spans\" }"]


def skiff_config(work, name, backend_port, max_streams=None, timeout=None, listener_tls=None,
                 cluster_tls=None, route_lines=(), top_lines=()):
    lines = ["workers: 1", "drain_timeout: 1s", *top_lines]
    if max_streams:
        lines += ["http2:", f"  max_concurrent_streams: {max_streams}"]
    lines += ["listeners:", "  - name: bench", "    address: 127.0.0.1:0"]
    if listener_tls:
        lines.append(f"    tls: {listener_tls}")
    lines += ["    routes:",
              "      - match: { service: skiffbench.Echo, method: Unary }",
              "        cluster: backend"]
    if timeout:
        lines.append(f"        timeout: {timeout}")
    lines += list(route_lines)
    lines += ["      - match: { service: skiffbench.Echo }", "        cluster: backend",
              "clusters:", "  - name: backend",
              f"    endpoints: [ \"127.0.0.1:{backend_port}\" ]"]
    if max_streams:
        # The cluster thresholds (Envoy-like defaults: 1024 active / pending requests) would
        # otherwise answer the streams above 1024 locally instead of carrying them to the backend.
        limit = max(2 * max_streams, 20000)
        lines.append(f"    circuit_breaker: {{ max_requests: {limit}, "
                     f"max_pending_requests: {limit}, max_connections: {limit} }}")
    if cluster_tls:
        lines.append(f"    tls: {cluster_tls}")
    path = os.path.join(work, f"{name}.yaml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def start_skiff(work, name, cpus, config):
    argv = [SKIFF, "--config", config, "--workers", "1", "--log-level", "info"]
    p = start(argv, cpus, os.path.join(work, f"{name}.log"))
    port = int(wait_log(p, r"listening on \S*:(\d+)").group(1))
    wait_port(port, p)
    return p, port, p.cmd


NGHTTPX_WINDOWS = ["--frontend-http2-window-size=262144",
                   "--frontend-http2-connection-window-size=1048576",
                   "--backend-http2-window-size=262144",
                   "--backend-http2-connection-window-size=1048576"]


def start_nghttpx(work, name, cpus, backend_port, max_streams=None, front_tls=None,
                  backend_tls=None):
    port = free_port()
    front = f"127.0.0.1,{port}" + ("" if front_tls else ";no-tls")
    # The server certificate names DNS:localhost; nghttpx checks the SNI name against it.
    back = f"127.0.0.1,{backend_port};;proto=h2" + (";tls;sni=localhost" if backend_tls else "")
    argv = ["nghttpx", f"--frontend={front}", f"--backend={back}", "--workers=1",
            "--conf=/dev/null", f"--errorlog-file={os.path.join(work, name + '.err')}",
            "--no-ocsp"] + NGHTTPX_WINDOWS
    if max_streams:
        argv.append(f"--frontend-http2-max-concurrent-streams={max_streams}")
    if front_tls:
        argv += front_tls
    if backend_tls:
        argv += backend_tls
    p = start(argv, cpus, os.path.join(work, f"{name}.log"))
    wait_port(port, p)
    time.sleep(0.2)  # the worker process is forked after the listener opens
    return p, port, p.cmd


def h2load_argv(sc, port, body, n=None, duration=None, logfile=None, scheme="http"):
    argv = ["h2load", "-t1", "-c", str(sc["clients"]), "-m", str(sc["streams"]),
            "-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers"]
    if sc.get("rps_per_client"):
        argv += ["--rps", str(sc["rps_per_client"])]
    if duration is not None:
        argv += ["-D", str(max(1, round(duration)))]
    else:
        argv += ["-n", str(n)]
    if logfile:
        argv += ["--log-file", logfile]
    argv.append(f"{scheme}://127.0.0.1:{port}{GRPC_PATH}")
    return argv


def parse_h2load(text):
    r = {}
    m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s, ([\d.]+)([KMG]?B)/s", text)
    if m:
        secs = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
        r["seconds"] = secs
        r["rps"] = float(m.group(3))
        unit = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[m.group(5)]
        r["bytes_per_s"] = float(m.group(4)) * unit
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    if m:
        (r["total"], r["started"], r["done"], r["succeeded"], r["failed"], r["errored"],
         r["timeout"]) = map(int, m.groups())
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if m:
        r["non2xx"] = sum(map(int, m.groups()[1:]))
    return r


def percentiles(logfile):
    lat = []
    try:
        with open(logfile) as f:
            for line in f:
                parts = line.split("\t")
                if len(parts) >= 3 and parts[1] == "200":
                    lat.append(int(parts[2]))
    except OSError:
        return {}
    if not lat:
        return {}
    lat.sort()
    n = len(lat)

    def pct(p):
        return lat[min(n - 1, int(p * n))]
    return {"p50_us": pct(0.50), "p90_us": pct(0.90), "p99_us": pct(0.99),
            "p999_us": pct(0.999), "max_us": lat[-1]}


def run_h2load(argv, timeout):
    t0 = time.monotonic()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = (["taskset", "-c", LOAD_CPUS] if PIN and LOAD_CPUS else []) + argv
    try:
        cp = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, timeout=timeout, text=True)
        out = cp.stdout
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (
            e.stdout or "")
        out += f"\nbench: h2load killed after {timeout:.0f} s"
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.monotonic() - t0
    load_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    return out, wall, load_cpu


def measure_h2load(sc, t, body, n, work, tag, measure_cpu=True):
    logfile = os.path.join(work, f"lat-{sc['name']}-{t.name}-{tag}.tsv")
    argv = h2load_argv(sc, t.port, body, n=n, logfile=logfile)
    pids = t.pids()
    backend_pids = pid_tree(t.backend.p.pid)
    reset_peak(pids)
    b0 = t.backend.stats()
    c0, s0, bc0 = cpu_seconds(pids), sched_seconds(pids), cpu_seconds(backend_pids)
    if sc.get("rps_per_client"):
        expected = n / (sc["rps_per_client"] * sc["clients"])
    else:
        expected = SECONDS  # n was sized so that the slowest target takes about this long
    out, wall, load_cpu = run_h2load(argv, timeout=max(30.0, expected * 6 + 20))
    c1, s1, bc1 = cpu_seconds(pids), sched_seconds(pids), cpu_seconds(backend_pids)
    b1 = t.backend.stats()
    r = parse_h2load(out)
    r.update(percentiles(logfile))
    try:
        os.unlink(logfile)
    except OSError:
        pass
    ok = r.get("succeeded", 0)
    answered = b1["responses"] - b0["responses"]
    r["backend_answered"] = answered
    r["local_replies"] = max(0, ok - answered)
    r["failures"] = (r.get("failed", 0) + r.get("errored", 0) + r.get("timeout", 0) +
                     r.get("non2xx", 0) + r["local_replies"] +
                     (0 if "rps" in r else n))
    r["backend_resets"] = b1["resets"] - b0["resets"]
    r["backend_peak_open"] = b1["peak_open"]
    r["wall"] = wall
    r["cpu_s"] = c1 - c0
    r["cpu_us_per_req"] = (c1 - c0) * 1e6 / ok if ok else None
    r["sched_us_per_req"] = (s1 - s0) * 1e6 / ok if ok else None
    r["core_busy"] = (c1 - c0) / wall
    r["backend_busy"] = (bc1 - bc0) / wall
    r["load_busy"] = load_cpu / wall
    r["peak_rss_kb"] = mem_kb(pids, "VmHWM")
    r["argv"] = argv
    if "rps" not in r:
        r["error"] = out[-500:]
    return r


# ---- scenarios --------------------------------------------------------------------------------

def write_body(work, size):
    path = os.path.join(work, f"body-{size}.bin")
    if not os.path.exists(path):
        with open(path, "wb") as f:
            # bytes field 1 of skiffbench.Payload, so the grpc++ echo server could parse it too
            payload_len = max(0, size - 1 - len(varint(size)))
            payload = b"\x0a" + varint(payload_len) + b"x" * payload_len
            f.write(b"\x00" + len(payload).to_bytes(4, "big") + payload)
    return path


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def make_certs(work):
    """A CA, a server cert for proxy B (SPIFFE URI SAN + 127.0.0.1) and a client cert for A."""
    d = os.path.join(work, "certs")
    os.makedirs(d, exist_ok=True)

    def ossl(*args):
        subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30)
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt", "-days", "2", "-subj", "/CN=bench-ca")
    for name, san in (("server", "URI:spiffe://bench.local/ns/bench/sa/server,IP:127.0.0.1,"
                                 "DNS:localhost"),
                      ("client", "URI:spiffe://bench.local/ns/bench/sa/client")):
        ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr", "-subj", f"/CN={name}")
        ext = f"{d}/{name}.ext"
        with open(ext, "w") as f:
            f.write(f"subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth\n"
                    "basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n")
        ossl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.crt", "-CAkey",
             f"{d}/ca.key", "-CAcreateserial", "-out", f"{d}/{name}.crt", "-days", "2",
             "-extfile", ext)
    return d


def skiff_tls_keys(certs):
    listener = (f"{{ cert: {certs}/server.crt, key: {certs}/server.key, "
                f"client_ca: {certs}/ca.crt }}")
    cluster = (f"{{ ca: {certs}/ca.crt, cert: {certs}/client.crt, key: {certs}/client.key, "
               f"identities: [ \"spiffe://bench.local/ns/bench/sa/server\" ] }}")
    return listener, cluster


def skiff_supports_tls(work, certs):
    lt, ct = skiff_tls_keys(certs)
    cfg = skiff_config(work, "tls-check", 1, listener_tls=lt, cluster_tls=ct)
    cp = subprocess.run([SKIFF, "--config", cfg, "--check-config"], stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True, timeout=10)
    return cp.returncode == 0, cp.stdout.strip()


def mtls_skip_reason(work):
    """None when skiff's config accepts the `tls:` keys (docs/DESIGN.md shape), else why not.
    BENCH_MTLS_FORCE=1 runs the scenario with nghttpx only (to test the harness)."""
    if os.environ.get("BENCH_MTLS_FORCE") == "1":
        return None
    ok, msg = skiff_supports_tls(work, make_certs(work))
    if ok:
        return None
    last = (msg.splitlines()[-1] if msg else "?").replace(work + "/", "")
    return ("skiff does not accept `tls:` keys on listeners/clusters yet (`skiff "
            f"--check-config` on a config with them said: `{last}`); re-run `make bench` once "
            "mTLS lands.")


def setup_targets(sc, work):
    """Starts the processes of one scenario; returns (targets, backends, notes)."""
    notes = []
    delay = sc.get("backend_delay_ms", 0)
    # "direct": the backend alone on the measured core. Proxies: the proxy on the measured core,
    # their shared backend on the load core with h2load.
    direct_be = Backend(work, "backend-direct", SUT_CPUS, delay)
    be = Backend(work, "backend", LOAD_CPUS, delay)
    targets = [Target("direct", direct_be.port, [direct_be.p], direct_be,
                      commands=[direct_be.cmd])]
    if sc.get("shared_direct"):
        # The proxies' backend, straight: client and backend on the load core as in the proxy
        # runs, the measured core idle. Against it, a proxy's throughput shows what the hop costs
        # (against "direct", the backend also gets the measured core to itself).
        targets.append(Target("direct-1core", be.port, [be.p], be,
                              label="direct, endpoints on one core", commands=[be.cmd]))
    ms = sc.get("max_streams")
    if sc.get("mtls"):
        certs = make_certs(work)
        ok, msg = skiff_supports_tls(work, certs)
        # nghttpx pair: A (h2c front, TLS + client cert to B), B (TLS front, verifies client)
        b_p, b_port, b_argv = start_nghttpx(
            work, "nghttpx-b", SUT_CPUS, be.port,
            front_tls=[f"{certs}/server.key", f"{certs}/server.crt", "--verify-client",
                       f"--verify-client-cacert={certs}/ca.crt"])
        a_p, a_port, a_argv = start_nghttpx(
            work, "nghttpx-a", SUT_CPUS, b_port,
            backend_tls=[f"--client-private-key-file={certs}/client.key",
                         f"--client-cert-file={certs}/client.crt", f"--cacert={certs}/ca.crt"])
        targets.append(Target("nghttpx", a_port, [a_p, b_p], be, label="nghttpx A+B",
                              commands=[b_argv, a_argv]))
        if ok:
            lt, ct = skiff_tls_keys(certs)
            cfg_b = skiff_config(work, "skiff-b", be.port, listener_tls=lt)
            sb, sb_port, sb_argv = start_skiff(work, "skiff-b", SUT_CPUS, cfg_b)
            cfg_a = skiff_config(work, "skiff-a", sb_port, cluster_tls=ct)
            sa, sa_port, sa_argv = start_skiff(work, "skiff-a", SUT_CPUS, cfg_a)
            targets.insert(1, Target("skiff", sa_port, [sa, sb], be, label="skiff A+B",
                                     commands=[sb_argv, sa_argv]))
        else:
            notes.append("skiff does not accept `tls:` keys yet (`skiff --check-config` said: "
                         f"`{msg.splitlines()[-1] if msg else '?'}`); only nghttpx ran.")
        return targets, [direct_be, be], notes
    plain = sc.get("policy")
    cfg = skiff_config(work, f"skiff-{sc['name']}", be.port, max_streams=ms,
                       timeout=None if plain else BAR_TIMEOUT, top_lines=() if plain else BAR_TOP)
    s, s_port, s_argv = start_skiff(work, "skiff", SUT_CPUS, cfg)
    targets.append(Target("skiff", s_port, [s], be, commands=[s_argv]))
    if sc.get("plain_too"):
        cfg_pl = skiff_config(work, f"skiff-{sc['name']}-plain", be.port)
        sp, sp_port, sp_argv = start_skiff(work, "skiff-plain", SUT_CPUS, cfg_pl)
        targets.append(Target("skiff-plain", sp_port, [sp], be, label="skiff, plain route",
                              commands=[sp_argv]))
    if sc.get("relay"):
        r_argv = [RELAY, "--listen", "127.0.0.1:0", "--backend", f"127.0.0.1:{be.port}"]
        r = start(r_argv, SUT_CPUS, os.path.join(work, "relay.log"))
        r_port = int(wait_log(r, r"listening on [\d.]+:(\d+)").group(1))
        targets.append(Target("relay", r_port, [r], be, label="TCP relay (floor)",
                              commands=[r.cmd]))
    if sc.get("policy"):
        cfg_t = skiff_config(work, "skiff-timeout", be.port, timeout="30s")
        st, st_port, st_argv = start_skiff(work, "skiff-timeout", SUT_CPUS, cfg_t)
        targets.append(Target("skiff-timeout", st_port, [st], be, label="skiff + route timeout",
                              commands=[st_argv]))
        cfg_p = skiff_config(work, "skiff-policies", be.port, route_lines=POLICY_ROUTE)
        sp, sp_port, sp_argv = start_skiff(work, "skiff-policies", SUT_CPUS, cfg_p)
        targets.append(Target("skiff-policies", sp_port, [sp], be,
                              label="skiff + retry, rate limits, breaker", commands=[sp_argv]))
        cfg_o = skiff_config(work, "skiff-observed", be.port, top_lines=observed_top(work))
        so, so_port, so_argv = start_skiff(work, "skiff-observed", SUT_CPUS, cfg_o)
        targets.append(Target("skiff-observed", so_port, [so], be,
                              label="skiff + admin, tracing 1%", commands=[so_argv]))
    else:
        n_p, n_port, n_argv = start_nghttpx(work, "nghttpx", SUT_CPUS, be.port, max_streams=ms)
        targets.append(Target("nghttpx", n_port, [n_p], be, commands=[n_argv]))
    return targets, [direct_be, be], notes


def run_h2load_scenario(sc, work):
    body = write_body(work, sc["size"])
    targets, backends, notes = setup_targets(sc, work)
    time.sleep(0.3)
    idle = {t.name: mem_kb(t.pids(), "VmRSS") for t in targets}
    # Warm-up (not measured): connections, allocator, caches; also sizes the runs.
    rates = {}
    for t in targets:
        scheme = "http"
        argv = h2load_argv(sc, t.port, write_body(work, sc["size"]), duration=WARMUP_SECONDS,
                           scheme=scheme)
        out, _, _ = run_h2load(argv, timeout=WARMUP_SECONDS * 5 + 30)
        r = parse_h2load(out)
        rates[t.name] = r.get("rps", 0.0)
        if not r.get("succeeded"):
            status = re.search(r"status codes: .*", out)
            notes.append(f"warm-up against {t.name} completed no request "
                         f"(h2load: `{status.group(0) if status else out.strip()[-200:]}`)")
    if sc.get("rps_per_client"):
        n = int(sc["rps_per_client"] * sc["clients"] * RATE_SECONDS)
    else:
        slowest = min([r for r in rates.values() if r > 0] or [1000.0])
        n = int(slowest * SECONDS)
        n = max(n, sc["clients"] * sc["streams"] * 8)
        n = min(n, 5_000_000)
    n -= n % sc["clients"]
    runs = {t.name: [] for t in targets}
    for i in range(RUNS):
        order = targets[i % len(targets):] + targets[:i % len(targets)]
        for t in order:
            r = measure_h2load(sc, t, body, n, work, str(i))
            runs[t.name].append(r)
            log(f"  {sc['name']} run {i + 1}/{RUNS} {t.name:14s} {r.get('rps', 0):10.0f} req/s "
                f"cpu {fmt(r.get('cpu_us_per_req'), 2):>7s} us/req  p50 {r.get('p50_us', '-')} "
                f"p99 {r.get('p99_us', '-')} us  fail {r['failures']}")
    time.sleep(SETTLE_SECONDS)
    after = {t.name: mem_kb(t.pids(), "VmRSS") for t in targets}
    result = dict(name=sc["name"], title=sc["title"], kind="h2load", requests_per_run=n,
                  notes=notes, targets=[])
    for t in targets:
        result["targets"].append(dict(
            name=t.name, label=t.label, idle_rss_kb=idle[t.name], after_rss_kb=after[t.name],
            runs=runs[t.name], commands=t.commands,
            h2load=shlex.join(runs[t.name][0]["argv"]) if runs[t.name] else ""))
    for b in backends:
        stop(b.p)
    for t in targets:
        for p in t.procs:
            stop(p)
    return result


def run_grpc_scenario(sc, work):
    """grpc++ bidi streaming (messages/s) and a unary status check through each target."""
    notes = []
    direct = start([GRPC_LOAD, "serve"], SUT_CPUS, os.path.join(work, "echo-direct.log"))
    d_port = int(wait_log(direct, r"listening on [\d.]+:(\d+)").group(1))
    echo = start([GRPC_LOAD, "serve"], LOAD_CPUS, os.path.join(work, "echo.log"))
    e_port = int(wait_log(echo, r"listening on [\d.]+:(\d+)").group(1))
    bar = sc.get("bar")
    cfg = skiff_config(work, f"skiff-{sc['name']}", e_port, timeout=BAR_TIMEOUT if bar else None,
                       top_lines=BAR_TOP if bar else ())
    s, s_port, s_argv = start_skiff(work, f"skiff-{sc['name']}", SUT_CPUS, cfg)
    n_p, n_port, n_argv = start_nghttpx(work, f"nghttpx-{sc['name']}", SUT_CPUS, e_port)
    # (name, label, port, processes measured, commands)
    targets = [("direct", "direct", d_port, [direct], [direct.cmd])]
    if sc.get("shared_direct"):
        # The echo server the proxies forward to, called directly: client and server share the
        # load core exactly as in the proxy runs (the payload scenarios' baseline, see Method).
        targets.append(("direct-1core", "direct, endpoints on one core", e_port, [echo],
                        [echo.cmd]))
    targets += [("skiff", "skiff", s_port, [s], [s_argv]),
                ("nghttpx", "nghttpx", n_port, [n_p], [n_argv])]
    time.sleep(0.3)
    idle = {name: mem_kb(sum((pid_tree(p.pid) for p in procs), []), "VmRSS")
            for name, _, _, procs, _ in targets}
    secs = max(0.5, SECONDS)

    def client(argv, timeout):
        cmd = (["taskset", "-c", LOAD_CPUS] if PIN and LOAD_CPUS else []) + argv
        try:
            cp = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                timeout=timeout, stdin=subprocess.DEVNULL)
            line = (cp.stdout.strip().splitlines() or ["{}"])[-1]
            return json.loads(line), cp.returncode
        except (subprocess.TimeoutExpired, json.JSONDecodeError) as e:
            return {"error": str(e)[:200]}, -1

    checks, runs = {}, {name: [] for name, *_ in targets}
    for name, _, port, procs, _ in targets:
        # Unary check with the real stack (also the warm-up): every call must end with status 0.
        res, rc = client([GRPC_LOAD, "unary", "--target", f"127.0.0.1:{port}", "--requests",
                          "500" if QUICK else "2000", "--concurrency", "16", "--seconds", "20"],
                         60)
        checks[name] = res
        if rc != 0:
            notes.append(f"grpc++ unary check through {name} failed: {json.dumps(res)}")
    bidi_args = ["--streams", str(sc["streams"]), "--window", str(sc["window"]),
                 "--size", str(sc["size"]), "--seconds", str(secs)]
    pp_secs = max(0.5, secs / 2)
    pp_args = ["--streams", "1", "--window", "1", "--size", str(sc["size"]),
               "--seconds", str(pp_secs)]
    for i in range(RUNS):
        order = targets[i % len(targets):] + targets[:i % len(targets)]
        for name, _, port, procs, _ in order:
            pids = sum((pid_tree(p.pid) for p in procs), [])
            reset_peak(pids)
            c0 = cpu_seconds(pids)
            t0 = time.monotonic()
            argv = [GRPC_LOAD, "bidi", "--target", f"127.0.0.1:{port}"] + bidi_args
            res, rc = client(argv, secs + 60)
            wall = time.monotonic() - t0
            c1 = cpu_seconds(pids)
            total = res.get("messages_total") or 0
            peak = mem_kb(pids, "VmHWM")
            # Ping-pong: one stream, one message in flight: the message round trip.
            pp_argv = [GRPC_LOAD, "bidi", "--target", f"127.0.0.1:{port}"] + pp_args
            pp, pp_rc = client(pp_argv, pp_secs + 60)
            status = dict(res.get("status") or {})
            for k, v in (pp.get("status") or {}).items():
                status[k] = status.get(k, 0) + v
            bad = sum(v for k, v in status.items() if k != "0")
            r = dict(msgs_per_s=res.get("msgs_per_s"), messages=total, status=status,
                     failures=bad + (1 if (rc != 0 or pp_rc != 0) and not bad else 0),
                     cpu_us_per_msg=(c1 - c0) * 1e6 / total if total else None,
                     core_busy=(c1 - c0) / wall, peak_rss_kb=peak,
                     pingpong_rtt_us=1e6 / pp["msgs_per_s"] if pp.get("msgs_per_s") else None,
                     argv=argv, pp_argv=pp_argv, raw=res, pp_raw=pp)
            runs[name].append(r)
            log(f"  {sc['name']} run {i + 1}/{RUNS} {name:12s} {r['msgs_per_s'] or 0:10.0f} msg/s "
                f"cpu {fmt(r['cpu_us_per_msg'], 2):>7s} us/msg  ping-pong "
                f"{fmt(r['pingpong_rtt_us'])} us  status {r['status']}")
    time.sleep(SETTLE_SECONDS)
    after = {name: mem_kb(sum((pid_tree(p.pid) for p in procs), []), "VmRSS")
             for name, _, _, procs, _ in targets}
    result = dict(name=sc["name"], title=sc["title"], kind="grpc", size=sc["size"], notes=notes,
                  targets=[])
    for name, label, port, procs, cmds in targets:
        result["targets"].append(dict(name=name, label=label, idle_rss_kb=idle[name],
                                      after_rss_kb=after[name], runs=runs[name], commands=cmds,
                                      unary_check=checks[name],
                                      client=(shlex.join(runs[name][0]["argv"]) + "\n" +
                                              shlex.join(runs[name][0]["pp_argv"]))
                                      if runs[name] else ""))
    for p in (s, n_p, direct, echo):
        stop(p)
    return result


# ---- report -----------------------------------------------------------------------------------

def fmt(v, digits=0):
    if v is None:
        return "-"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def spread(values, digits=0):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    m = statistics.median(values)
    if len(values) == 1:
        return fmt(m, digits)
    return f"{fmt(m, digits)} ({fmt(min(values), digits)}–{fmt(max(values), digits)})"


def signed(v):
    return "-" if v is None else f"{v:+,.0f}"


def ratio(a, b, digits=2):
    if a is None or b is None or b <= 0 or a < 0:
        return "-"
    return f"{a / b:.{digits}f}×"


def mb(kb):
    return "-" if kb is None else f"{kb / 1024:.1f}"


def summarize(t, key):
    return med([r.get(key) for r in t["runs"]])


def find(result, name):
    for t in result["targets"]:
        if t["name"] == name:
            return t
    return None


def h2load_table(res):
    lines = []
    d = find(res, "direct")
    ng = find(res, "nghttpx")
    ref_name = "skiff" if res["name"] == "policy" else "nghttpx"
    ref = find(res, ref_name)
    lines.append(f"| target | req/s median (min–max) | req/s ÷ direct | req/s ÷ {ref_name} | "
                 "p50 µs | p99 µs | p99.9 µs | CPU µs/req median (min–max) | CPU ÷ "
                 f"{ref_name} | measured core busy | idle RSS MB | peak RSS MB | RSS after MB |"
                 " failures |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for t in res["targets"]:
        runs = t["runs"]
        rps = summarize(t, "rps")
        cpu = summarize(t, "cpu_us_per_req")
        cpu_label = spread([r.get("cpu_us_per_req") for r in runs], 2)
        is_direct = t["name"].startswith("direct")  # no proxy: nothing to hold against ref
        if is_direct:
            cpu_label += " (backend)"
        vs_ref = ref and t is not ref and not is_direct
        lines.append(
            f"| {t['label']} | {spread([r.get('rps') for r in runs])} | "
            f"{ratio(rps, summarize(d, 'rps')) if t is not d else '1.00×'} | "
            f"{ratio(rps, summarize(ref, 'rps')) if vs_ref else '-'}"
            f" | {fmt(summarize(t, 'p50_us'))} | {fmt(summarize(t, 'p99_us'))} | "
            f"{fmt(summarize(t, 'p999_us'))} | {cpu_label} | "
            f"{ratio(cpu, summarize(ref, 'cpu_us_per_req')) if vs_ref else '-'}"
            f" | {fmt((summarize(t, 'core_busy') or 0) * 100)}% | {mb(t['idle_rss_kb'])} | "
            f"{mb(med([r.get('peak_rss_kb') for r in runs]))} | {mb(t['after_rss_kb'])} | "
            f"{sum(r.get('failures', 0) for r in runs)} |")
    if res["name"] == "rate-4k" and d:
        lines.append("")
        lines.append("Added latency over direct (median percentile of the target minus median "
                     "percentile of direct; the tails are dominated by scheduling noise on a "
                     "shared VM, compare p50 first):")
        lines.append("")
        lines.append("| target | added p50 µs | added p99 µs | added p99.9 µs | added p50 ÷ "
                     "nghttpx's | added p99 ÷ nghttpx's |")
        lines.append("|---|---|---|---|---|---|")
        dp = {k: summarize(d, k) for k in ("p50_us", "p99_us", "p999_us")}
        added = {}
        for t in res["targets"]:
            if t is d:
                continue
            added[t["name"]] = {k: (summarize(t, k) - dp[k]) if summarize(t, k) is not None
                                and dp[k] is not None else None for k in dp}
        for t in res["targets"]:
            if t is d:
                continue
            a = added[t["name"]]
            an = added.get("nghttpx", {})
            lines.append(f"| {t['label']} | {signed(a['p50_us'])} | {signed(a['p99_us'])} | "
                         f"{signed(a['p999_us'])} | "
                         f"{ratio(a['p50_us'], an.get('p50_us')) if t is not ng else '-'} | "
                         f"{ratio(a['p99_us'], an.get('p99_us')) if t is not ng else '-'} |")
    if res["name"].startswith("payload") and d:
        lines.append("")
        thr = []
        d1 = find(res, "direct-1core")
        for t in res["targets"]:
            bps = summarize(t, "bytes_per_s")
            vs = f"{ratio(bps, summarize(d, 'bytes_per_s'))} direct"
            if d1 and t is not d1 and t is not d:
                vs += f", {ratio(bps, summarize(d1, 'bytes_per_s'))} direct on one core"
            thr.append(f"{t['label']} {fmt((bps or 0) / (1 << 20))} MiB/s ({vs})")
        lines.append("Throughput (h2load traffic, both directions counted by h2load as received "
                      "bytes): " + "; ".join(thr) + ".")
    if res["name"] == "streams-10k":
        lines.append("")
        peaks = [f"{t['label']} {max((r.get('backend_peak_open') or 0) for r in t['runs'])}"
                 for t in res["targets"] if t["runs"]]
        lines.append("Streams open at the backend at once (max over runs; the backend holds each "
                     "response 100 ms, so this is the concurrency that crossed the proxy): " +
                     ", ".join(peaks) + ".")
    busy = []
    for t in res["targets"]:
        lb = summarize(t, "load_busy")
        bb = summarize(t, "backend_busy")
        busy.append(f"{t['label']}: h2load {fmt((lb or 0) * 100)}%"
                    + (f", backend {fmt((bb or 0) * 100)}%" if t["name"] not in
                       ("direct", "direct-1core") else ""))
    lines.append("")
    lines.append("Load-side CPU (median share of one core during the measured runs; near 100% "
                 "means the load core, not the target, set the pace): " + "; ".join(busy) + ".")
    return lines


def grpc_table(res):
    lines = ["| target | msgs/s median (min–max) | msgs/s ÷ direct | CPU µs/msg median "
             "(min–max) | CPU ÷ nghttpx | measured core busy | ping-pong round trip µs | added "
             "vs direct µs | idle RSS MB | peak RSS MB | RSS after MB | bidi grpc-status | "
             "unary check (calls, status, p50/p99 µs) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    d, ng, d1 = find(res, "direct"), find(res, "nghttpx"), find(res, "direct-1core")
    for t in res["targets"]:
        runs = t["runs"]
        st = {}
        for r in runs:
            for k, v in (r.get("status") or {}).items():
                st[k] = st.get(k, 0) + v
        u = t.get("unary_check") or {}
        cpu = summarize(t, "cpu_us_per_msg")
        rtt, drtt = summarize(t, "pingpong_rtt_us"), summarize(d, "pingpong_rtt_us")
        lines.append(
            f"| {t['label']} | {spread([r.get('msgs_per_s') for r in runs])} | "
            f"{ratio(summarize(t, 'msgs_per_s'), summarize(d, 'msgs_per_s'))} | "
            f"{spread([r.get('cpu_us_per_msg') for r in runs], 2)}"
            f"{' (echo server)' if t in (d, d1) else ''} | "
            f"{ratio(cpu, summarize(ng, 'cpu_us_per_msg')) if t not in (d, d1, ng) else '-'} | "
            f"{fmt((summarize(t, 'core_busy') or 0) * 100)}% | "
            f"{spread([r.get('pingpong_rtt_us') for r in runs])} | "
            f"{signed(rtt - drtt) if t is not d and rtt and drtt else '-'} | "
            f"{mb(t['idle_rss_kb'])} | "
            f"{mb(med([r.get('peak_rss_kb') for r in runs]))} | {mb(t['after_rss_kb'])} | "
            f"{json.dumps(st)} | {u.get('calls', '-')}, {json.dumps(u.get('status'))}, "
            f"{fmt(u.get('p50_us'))}/{fmt(u.get('p99_us'))} |")
    if res.get("size", 0) >= 64 * 1024:
        parts = []
        for t in res["targets"]:
            m = summarize(t, "msgs_per_s")
            if m is None:
                continue
            vs = [f"{ratio(m, summarize(b, 'msgs_per_s'))} {b['label']}"
                  for b in (d, d1) if b and b is not t]
            parts.append(f"{t['label']} {fmt(m * res['size'] / (1 << 20))} MiB/s"
                         + (f" ({', '.join(vs)})" if vs else ""))
        lines += ["", "Throughput (messages echoed, so this many MiB/s each way): "
                  + "; ".join(parts) + "."]
    return lines


def bar_lines(results):
    by = {r["name"]: r for r in results}
    rows = []

    def row(what, target, value, ok):
        rows.append(f"| {what} | {target} | {value} | "
                    f"{'-' if ok is None else ('met' if ok else '**not met**')} |")

    if "sat-64" in by:
        s, n = find(by["sat-64"], "skiff"), find(by["sat-64"], "nghttpx")
        if s and n:
            a, b = summarize(s, "cpu_us_per_req"), summarize(n, "cpu_us_per_req")
            plain = find(by["sat-64"], "skiff-plain")
            also = ""
            if plain:
                c = summarize(plain, "cpu_us_per_req")
                also = f" (the plain route without them: {fmt(c, 2)} µs = {ratio(c, b)})"
            row("CPU/request at saturation, 64 B", "≤ 0.8× nghttpx",
                f"skiff with deadlines, metrics and tracing on {fmt(a, 2)} µs vs nghttpx "
                f"{fmt(b, 2)} µs = {ratio(a, b)}{also}",
                None if a is None or b is None else a <= 0.8 * b)
    if "rate-4k" in by:
        r = by["rate-4k"]
        d, s, n = find(r, "direct"), find(r, "skiff"), find(r, "nghttpx")
        if d and s and n:
            for k, lbl in (("p50_us", "p50"), ("p99_us", "p99")):
                dv, sv, nv = summarize(d, k), summarize(s, k), summarize(n, k)
                if None in (dv, sv, nv):
                    continue
                ad, an = sv - dv, nv - dv
                noise = ad < 0 or an <= 0
                floor = ""
                relay = find(r, "relay")
                if relay and summarize(relay, k) is not None:
                    af = summarize(relay, k) - dv
                    floor = (f"; the TCP relay's floor {signed(af)} µs = {ratio(af, an)} "
                             "nghttpx's")
                row(f"Added latency at 4,000 req/s, {lbl}", "≤ 0.5× nghttpx's",
                    f"skiff {signed(ad)} µs vs nghttpx {signed(an)} µs = {ratio(ad, an)}"
                    + floor
                    + (" (a negative difference: noise exceeds the effect, no verdict)"
                       if noise else ""),
                    None if noise else ad <= 0.5 * an)
    idle = [find(r, "skiff")["idle_rss_kb"] for r in results if find(r, "skiff")
            and r["name"] not in ("mtls",)]
    if idle:
        v = med(idle)
        row("Idle RSS", "≤ 8 MB", f"{mb(v)} MB (median over scenarios' fresh processes)",
            v <= 8 * 1024)
    if "streams-10k" in by:
        r = by["streams-10k"]
        s, n = find(r, "skiff"), find(r, "nghttpx")
        if s and n:
            a = med([x.get("peak_rss_kb") for x in s["runs"]])
            b = med([x.get("peak_rss_kb") for x in n["runs"]])
            row("RSS at 10,000 concurrent streams", "≤ 0.5× nghttpx",
                f"skiff {mb(a)} MB vs nghttpx {mb(b)} MB = {ratio(a, b)}",
                None if not a or not b else a <= 0.5 * b)
            row("Memory returns after load", "RSS after ≈ idle",
                f"skiff idle {mb(s['idle_rss_kb'])} → peak {mb(a)} → after "
                f"{mb(s['after_rss_kb'])} MB (nghttpx {mb(n['idle_rss_kb'])} → {mb(b)} → "
                f"{mb(n['after_rss_kb'])} MB)",
                s["after_rss_kb"] <= s["idle_rss_kb"] + 0.25 * max(0, (a or 0) - s["idle_rss_kb"])
                + 1024)
    if "payload-1m" in by:
        r = by["payload-1m"]
        d, s = find(r, "direct"), find(r, "skiff")
        d1 = find(r, "direct-1core")
        if d and s:
            a, b = summarize(s, "bytes_per_s"), summarize(d, "bytes_per_s")
            if d1:
                # The bar is read against the direct run that gives client and backend the same
                # core they have in the proxy runs (see Method).
                b1 = summarize(d1, "bytes_per_s")
                relay = find(r, "relay")
                rb = summarize(relay, "bytes_per_s") if relay else None
                floor = (f"; the TCP relay {fmt(rb / (1 << 20))} MiB/s = {ratio(rb, b1)}"
                         if rb else "")
                row("1 MiB messages throughput, h2load", "≥ 0.9× direct",
                    f"skiff {fmt((a or 0) / (1 << 20))} MiB/s vs direct with the endpoints on one "
                    f"core {fmt((b1 or 0) / (1 << 20))} MiB/s = {ratio(a, b1)} (vs direct with "
                    f"the backend on its own core {fmt((b or 0) / (1 << 20))} MiB/s: "
                    f"{ratio(a, b)}){floor}", None if not a or not b1 else a >= 0.9 * b1)
            else:
                row("1 MiB messages throughput, h2load", "≥ 0.9× direct",
                    f"skiff {fmt((a or 0) / (1 << 20))} MiB/s vs direct "
                    f"{fmt((b or 0) / (1 << 20))} MiB/s = {ratio(a, b)}",
                    None if not a or not b else a >= 0.9 * b)
    if "grpc-1m" in by:
        r = by["grpc-1m"]
        s, d1 = find(r, "skiff"), find(r, "direct-1core")
        d, n = find(r, "direct"), find(r, "nghttpx")
        if s and d1:
            a, b1 = summarize(s, "msgs_per_s"), summarize(d1, "msgs_per_s")
            mib = r["size"] / (1 << 20)
            also = ""
            if d and summarize(d, "msgs_per_s"):
                also += (f" (vs direct with the echo server on its own core: "
                         f"{ratio(a, summarize(d, 'msgs_per_s'))})")
            if n and summarize(n, "msgs_per_s"):
                also += f"; nghttpx {ratio(summarize(n, 'msgs_per_s'), b1)}"
            row("1 MiB messages throughput, grpc++ client and server", "≥ 0.9× direct",
                f"skiff {fmt((a or 0) * mib)} MiB/s each way vs direct with the endpoints on one "
                f"core {fmt((b1 or 0) * mib)} MiB/s = {ratio(a, b1)}{also}",
                None if not a or not b1 else a >= 0.9 * b1)
    if not rows:
        return []
    return ["| target from issue 6 | bar | measured (medians) | |", "|---|---|---|---|"] + rows


def machine_info():
    info = {"nproc": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            info["cpu"] = m.group(1).strip() if m else "?"
    except OSError:
        info["cpu"] = "?"
    info["kernel"] = os.uname().release
    try:
        with open("/proc/loadavg") as f:
            info["loadavg"] = " ".join(f.read().split()[:3])
    except OSError:
        pass

    def cmd(*argv):
        try:
            return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, timeout=10, cwd=ROOT).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"
    rev = cmd("git", "rev-parse", "--short", "HEAD")
    dirty = cmd("git", "status", "--porcelain", "--", "src", "CMakeLists.txt")
    info["skiff_rev"] = rev + (" (+ uncommitted changes in src/)" if dirty else "")
    info["skiff_version"] = cmd(SKIFF, "--version")
    info["nghttpx"] = cmd("nghttpx", "--version")
    info["h2load"] = cmd("h2load", "--version")
    info["libnghttp2"] = cmd("dpkg-query", "-W", "-f=${Version}", "libnghttp2-14")
    info["libuv"] = cmd("dpkg-query", "-W", "-f=${Version}", "libuv1")
    info["grpc"] = cmd("dpkg-query", "-W", "-f=${Version}", "libgrpc++1.51")
    info["gcc"] = cmd("gcc", "-dumpfullversion")
    return info


def write_plot(results, png, work):
    if not shutil_which("gnuplot"):
        return "gnuplot not found; no plot"
    by = {r["name"]: r for r in results if r["kind"] == "h2load"}
    names = ["direct", "skiff", "nghttpx"]
    data = os.path.join(work, "plot")
    os.makedirs(data, exist_ok=True)
    panels = []
    for sc in ("rate-4k", "sat-1k"):
        if sc not in by:
            continue
        path = os.path.join(data, f"lat-{sc}.dat")
        with open(path, "w") as f:
            f.write("# target p50 p99 p999\n")
            for t in by[sc]["targets"]:
                f.write(f"{t['name']} {summarize(t, 'p50_us') or 0} {summarize(t, 'p99_us') or 0} "
                        f"{summarize(t, 'p999_us') or 0}\n")
        panels.append(
            f"set title 'Latency percentiles, {sc} (µs, median of runs)'\n"
            "set logscale y\nset ylabel 'µs'\n"
            f"plot '{path}' using 2:xtic(1) title 'p50', '' using 3 title 'p99', "
            "'' using 4 title 'p99.9'\nunset logscale y\n")
    cpu_path = os.path.join(data, "cpu.dat")
    scs = [s for s in ("sat-64", "sat-1k", "rate-4k", "payload-64k", "payload-1m",
                       "streams-10k", "mtls") if s in by]
    if scs:
        with open(cpu_path, "w") as f:
            f.write("# scenario " + " ".join(names) + "\n")
            for s in scs:
                vals = []
                for n in names:
                    t = find(by[s], n)
                    vals.append(str((summarize(t, "cpu_us_per_req") if t else None) or 0))
                f.write(s + " " + " ".join(vals) + "\n")
        panels.append(
            "set title 'CPU µs per request (direct = backend itself; mtls = proxies A+B; median "
            "of runs)'\n"
            "set logscale y\nset ylabel 'µs/request'\nset xtics rotate by -25\n"
            f"plot '{cpu_path}' using 2:xtic(1) title 'direct (backend)', '' using 3 title "
            "'skiff', '' using 4 title 'nghttpx'\nunset logscale y\nset xtics norotate\n")
    if "streams-10k" in by:
        path = os.path.join(data, "rss.dat")
        top = 1.0
        with open(path, "w") as f:
            f.write("# target idle peak after\n")
            for t in by["streams-10k"]["targets"]:
                vals = (t["idle_rss_kb"] / 1024,
                        (med([r.get("peak_rss_kb") for r in t["runs"]]) or 0) / 1024,
                        t["after_rss_kb"] / 1024)
                top = max(top, *vals)
                f.write(f"{t['name']} {vals[0]:.2f} {vals[1]:.2f} {vals[2]:.2f}\n")
        panels.append(
            "set title 'RSS, 10,000 concurrent streams scenario (MB)'\nset ylabel 'MB'\n"
            f"set yrange [0:{top * 1.15:.0f}]\n"
            f"plot '{path}' using 2:xtic(1) title 'idle (fresh)', '' using 3 title 'peak', "
            f"'' using 4 title 'after load (+{SETTLE_SECONDS:g} s)'\nset yrange [0:*]\n")
    if not panels:
        return "no data to plot"
    rows = (len(panels) + 1) // 2
    script = os.path.join(data, "plot.gp")
    with open(script, "w") as f:
        f.write(f"set terminal pngcairo size 1400,{520 * rows} font 'sans,10'\n"
                f"set output '{png}'\n"
                "set style data histograms\nset style histogram clustered gap 1\n"
                "set style fill solid 0.8 border -1\nset boxwidth 0.9\nset key top left\n"
                "set grid ytics\nset yrange [0:*]\nset xtics nomirror\n"
                f"set multiplot layout {rows},2 title 'skiff bench {DATE}'\n")
        for p in panels:
            f.write(p.replace("set logscale y\n", "set logscale y\nset yrange [1:*]\n")
                    .replace("unset logscale y\n", "unset logscale y\nset yrange [0:*]\n"))
        f.write("unset multiplot\n")
    cp = subprocess.run(["gnuplot", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        text=True, timeout=60)
    return None if cp.returncode == 0 else cp.stdout[-500:]


def shutil_which(name):
    for d in os.environ.get("PATH", "").split(":"):
        if os.access(os.path.join(d, name), os.X_OK):
            return True
    return False


def write_report(results, info, minutes, md, png, work, skiff_cfg, plot_dir=None):
    plot_err = write_plot(results, png, plot_dir or work)
    L = []
    L.append(f"# skiff benchmark results, {DATE}" + (" (quick mode)" if QUICK else ""))
    L.append("")
    L.append(f"Generated by `make bench` (`bench/run.sh` → `bench/bench.py`) in "
             f"{minutes:.1f} min of measuring; raw per-run numbers are in "
             f"[`{os.path.basename(md)[:-3]}.json`]({os.path.basename(md)[:-3]}.json). "
             f"Plot: [`{os.path.basename(png)}`]({os.path.basename(png)}).")
    L.append("")
    L.append("## Machine and versions")
    L.append("")
    L.append(f"- {info['nproc']} CPUs, `{info['cpu']}`, Linux {info['kernel']}; load average "
             f"(1/5/15 min) when the run started: {info.get('loadavg_start', '?')}, when it "
             f"ended: {info.get('loadavg', '?')} (a shared VM: expect noise)")
    L.append(f"- skiff {info['skiff_rev']} — `{info['skiff_version']}`, Release build in "
             f"`{os.path.relpath(BUILD, ROOT)}/` (GCC {info['gcc']}, `-O2 -DNDEBUG`, as Debian builds nghttpx)")
    L.append(f"- {info['nghttpx']} (Debian nghttp2-proxy), {info['h2load']}, libnghttp2 "
             f"{info['libnghttp2']}, libuv {info['libuv']}, grpc++ {info['grpc']}")
    L.append("")
    L.append("## Method")
    L.append("")
    L.append(f"- Targets: **direct** (the bench's nghttp2 backend, `bench/backend.cc`, 1 thread), "
             "**skiff** (`--workers 1`) and **nghttpx** (`--workers=1`, h2c both sides) in front "
             "of the same backend. nghttpx's HTTP/2 windows are set to skiff's defaults "
             "(256 KiB per stream, 1 MiB per connection) on both sides; it writes no access log.")
    L.append("- skiff runs as the bar asks, with routing, deadlines, metrics and trace propagation "
             f"on: a route timeout ({BAR_TIMEOUT}), the admin listener, and tracing (W3C "
             "`traceparent` and `x-request-id` sent on every call, 1% sampled, no span export). "
             "The saturation scenarios also run **skiff, plain route** (none of these features). "
             "Exceptions: the policy scenario's reference is the plain route (each variant's "
             "cost shows against it), and the mTLS and grpc-bidi scenarios run the plain route "
             "(grpc-1m runs with the features; grpc_load sends no trace headers, so skiff starts "
             "each trace).")
    L.append("- Two more targets where they answer a question. rate-4k and payload-1m: **TCP relay "
             "(floor)** (`bench/relay.cc`: libuv, moves bytes between each client connection and "
             "its own backend connection, parses nothing), i.e. what any user-space proxy on these "
             "cores adds before doing any work of its own. payload-*: **direct, endpoints on one "
             "core** (h2load and the backend share the load core exactly as in the proxy runs, the "
             "measured core stays idle): the throughput baseline that isolates the proxy hop, "
             "since plain **direct** also hands the backend a core of its own that it does not "
             "have behind a proxy. The 1 MiB bar is read against it; both ratios are shown. "
             "grpc-1m has the same baseline with grpc_load and the grpc++ echo server: the 1 MiB "
             "bar once more, with a real gRPC stack at both ends.")
    if PIN and SUT_CPUS:
        L.append(f"- Pinning (`taskset`): the measured process (proxy, or the backend for direct) "
                 f"runs alone on CPU {SUT_CPUS}; h2load / grpc_load and the proxies' backend share "
                 f"CPU(s) {LOAD_CPUS}. So req/s through a proxy is often capped by the load core "
                 "(see the load-side CPU line under each table) and **CPU µs per request is the "
                 "primary figure**.")
    else:
        L.append("- No pinning (single CPU, or BENCH_PIN=0).")
    L.append(f"- Each scenario starts fresh processes, measures idle RSS, runs one unmeasured "
             f"warm-up per target ({WARMUP_SECONDS:g} s, which also sizes the runs: the slowest "
             f"target's rate × {SECONDS:g} s, same request count for every target), then "
             f"{RUNS} rounds of interleaved runs (order rotated each round). Medians, with "
             "min–max in brackets.")
    L.append("- h2load 1.52 `-t1`, gRPC framing: body file = 5-byte prefix + protobuf "
             "`skiffbench.Payload{data}`, `-H 'content-type: application/grpc' -H 'te: trailers'`, "
             f"path `{GRPC_PATH}`; h2load's default (huge) windows. Latency percentiles come from "
             "`--log-file` (request start to end of response, successful requests).")
    L.append("- CPU: utime+stime of the measured process and its children (nghttpx forks its "
             "worker) from `/proc/PID/stat` over the h2load run, ÷ requests completed; 10 ms tick "
             "resolution (the JSON also has a `/proc/PID/task/*/schedstat` cross-check, "
             "`sched_us_per_req`). \"Measured core busy\" = that CPU time ÷ wall time.")
    L.append("- RSS: idle = VmRSS of the fresh process before any load; peak = VmHWM, reset via "
             "`/proc/PID/clear_refs` before each run (median of runs); after = VmRSS "
             f"{SETTLE_SECONDS:g} s after the scenario's last run. nghttpx = both processes.")
    L.append("- Failures = h2load failed + errored + timeout + non-2xx + calls the proxy answered "
             "itself (h2load successes minus responses the backend sent: h2load does not read "
             "grpc-status, the backend always sends `grpc-status: 0`).")
    L.append("")
    bars = bar_lines(results)
    if bars:
        L.append("## Issue 6 bar (this run)")
        L.append("")
        L += bars
        L.append("")
    for res in results:
        L.append(f"## {res['name']}: {res['title']}")
        L.append("")
        if res.get("skipped"):
            L.append(f"Skipped: {res['skipped']}")
            L.append("")
            continue
        if res["kind"] == "h2load":
            L.append(f"{res['requests_per_run']:,} requests per run.")
            L.append("")
            L += h2load_table(res)
        else:
            L += grpc_table(res)
        for n in res.get("notes", []):
            L.append("")
            L.append(f"Note: {n}")
        L.append("")
    L.append("## Exact commands")
    L.append("")
    L.append("Run from the repository root. Ports are picked at run time; `{tmp}` is the run's "
             "temporary directory. "
             + (f"Every process is prefixed with `taskset -c {SUT_CPUS}` (measured) or "
                f"`taskset -c {LOAD_CPUS}` (load)." if PIN and SUT_CPUS else ""))
    L.append("")
    L.append("```sh")
    seen = set()
    for res in results:
        if res.get("skipped"):
            continue
        L.append(f"# {res['name']}")
        for t in res["targets"]:
            for c in t.get("commands", []):
                c = strip_taskset(c).replace(work, "{tmp}").replace(ROOT + "/", "")
                if c not in seen:
                    seen.add(c)
                    L.append(c)
            load = strip_taskset(t.get("h2load") or t.get("client") or "").replace(
                work, "{tmp}").replace(ROOT + "/", "")
            if load:
                L.append(load)
    L.append("```")
    L.append("")
    if isinstance(skiff_cfg, str):  # older JSON
        skiff_cfg = {"skiff-sat-64": skiff_cfg} if skiff_cfg else {}
    about = {"skiff-sat-64": "scenario sat-64 (the bar's features on); the other single-proxy "
                             "scenarios differ only in `http2.max_concurrent_streams` "
                             "(streams-10k) and the backend port",
             "skiff-policy": "scenario policy, the plain route (the variants' reference)",
             "skiff-timeout": "scenario policy, the route timeout variant",
             "skiff-b": "scenario mtls, proxy B (terminates mTLS)",
             "skiff-a": "scenario mtls, proxy A (originates mTLS)"}
    for name, text in skiff_cfg.items():
        L.append(f"skiff config, {about.get(name, name)}:")
        L.append("")
        L.append("```yaml")
        L.append(text.rstrip())
        L.append("```")
        L.append("")
    if plot_err:
        L.append("")
        L.append(f"Plot: {plot_err}")
    with open(md, "w") as f:
        f.write("\n".join(L) + "\n")


def strip_taskset(c):
    return re.sub(r"^taskset -c \S+ ", "", c)


# ---- main -------------------------------------------------------------------------------------

def report_only(path):
    """Re-renders <date>.md and .png from a run's JSON (after a change to the report code)."""
    global QUICK, RUNS, SECONDS, RATE_SECONDS, WARMUP_SECONDS, SETTLE_SECONDS, PIN, DATE
    global SUT_CPUS, LOAD_CPUS, BUILD
    with open(path) as f:
        d = json.load(f)
    QUICK, RUNS, SECONDS, RATE_SECONDS = d["quick"], d["runs"], d["seconds"], d["rate_seconds"]
    WARMUP_SECONDS = d.get("warmup_seconds", WARMUP_SECONDS)
    SETTLE_SECONDS = d.get("settle_seconds", SETTLE_SECONDS)
    PIN, DATE = d.get("pin", PIN), d["date"]
    SUT_CPUS, LOAD_CPUS = d["sut_cpus"], d["load_cpus"]
    BUILD = os.path.join(ROOT, d.get("build", "build-release"))
    base = path[:-5]
    with tempfile.TemporaryDirectory(prefix="skiff-bench-report-") as tmp:
        write_report(d["results"], d["machine"], d.get("measure_minutes", 0), base + ".md",
                     base + ".png", d.get("work", tmp), d.get("skiff_config", ""), plot_dir=tmp)
    log(f"wrote {base}.md and {base}.png")


def main():
    global SUT_CPUS, LOAD_CPUS
    if len(sys.argv) == 3 and sys.argv[1] == "--report":
        return report_only(sys.argv[2])
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    cpus = sorted(os.sched_getaffinity(0))
    if PIN and len(cpus) >= 2:
        SUT_CPUS = str(cpus[-1])
        LOAD_CPUS = ",".join(str(c) for c in cpus[:-1])
    else:
        SUT_CPUS = LOAD_CPUS = ""
    wanted = os.environ.get("BENCH_SCENARIOS", "")
    scenarios = [s for s in SCENARIOS if not wanted or s["name"] in wanted.split(",")]
    for exe in (SKIFF, BACKEND, RELAY, GRPC_LOAD):
        if not os.access(exe, os.X_OK):
            sys.exit(f"bench: {exe} missing; run bench/run.sh (it builds them)")
    os.makedirs(OUT_DIR, exist_ok=True)
    suffix = "-quick" if QUICK else ""
    md = os.path.join(OUT_DIR, f"{DATE}{suffix}.md")
    png = os.path.join(OUT_DIR, f"{DATE}{suffix}.png")
    js = os.path.join(OUT_DIR, f"{DATE}{suffix}.json")
    started = time.time()
    with open("/proc/loadavg") as f:
        loadavg_start = " ".join(f.read().split()[:3])
    results = []
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as work:
        try:
            for sc in scenarios:
                log(f"scenario {sc['name']}: {sc['title']}")
                try:
                    skip = mtls_skip_reason(work) if sc.get("mtls") else None
                    if skip:
                        log(f"scenario {sc['name']} skipped: {skip}")
                        res = dict(name=sc["name"], title=sc["title"], kind="skipped",
                                   skipped=skip, targets=[])
                    elif sc.get("grpc"):
                        res = run_grpc_scenario(sc, work)
                    else:
                        res = run_h2load_scenario(sc, work)
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    log(f"scenario {sc['name']} failed: {e}")
                    res = dict(name=sc["name"], title=sc["title"], kind="error",
                               skipped=f"failed: {e}", targets=[])
                finally:
                    stop_all()
                results.append(res)
            info = machine_info()
            info["loadavg_start"] = loadavg_start
            minutes = (time.time() - started) / 60
            skiff_cfg = {}
            for name in ("skiff-sat-64", "skiff-policy", "skiff-timeout", "skiff-a", "skiff-b"):
                cfg = os.path.join(work, f"{name}.yaml")
                if os.path.exists(cfg):
                    with open(cfg) as f:
                        skiff_cfg[name] = f.read().replace(work, "{tmp}")
            with open(js, "w") as f:
                json.dump(dict(date=DATE, quick=QUICK, runs=RUNS, seconds=SECONDS,
                               rate_seconds=RATE_SECONDS, warmup_seconds=WARMUP_SECONDS,
                               settle_seconds=SETTLE_SECONDS, pin=PIN, sut_cpus=SUT_CPUS,
                               load_cpus=LOAD_CPUS, build=os.path.relpath(BUILD, ROOT),
                               work=work, measure_minutes=minutes, skiff_config=skiff_cfg,
                               machine=info, results=results), f, indent=1)
            write_report(results, info, minutes, md, png, work, skiff_cfg)
        finally:
            stop_all()
    log(f"wrote {os.path.relpath(md, ROOT)}, {os.path.relpath(png, ROOT)} and "
        f"{os.path.relpath(js, ROOT)} in {(time.time() - started) / 60:.1f} min")


SUT_CPUS = LOAD_CPUS = ""

if __name__ == "__main__":
    main()
