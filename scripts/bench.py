#!/usr/bin/env python3
"""The benchmark suite: Warren next to the physical ceiling and a peer, side
by side in one run on one machine. Called by scripts/bench.sh (which builds
the release binaries first); see BENCHMARKS.md for what it measures and the
last results.

Targets, each driven by the same warren-bots:
  direct    a minimal tokio-tungstenite echo server (the ceiling)
  broker    RabbitMQ alone through lapin (examples/broker_ceiling; no bots)
  inproc    Warren, in-process bus (the embedded default, one process)
  rabbitmq  Warren on RabbitMQ: connector and game as separate processes
  redis     Warren on Redis: connector and game as separate processes
  zmq       Warren on ZeroMQ, layout 1 (pubsub): connector and game as
            separate processes, no broker
  grpc      Warren on the gRPC gateway: the game registers with the
            connector's gateway; no broker
  http      Warren in-process, called over HTTP (POST /v1/call/1001, JSON;
            warren-bots --scenario http-echo, one keep-alive connection per
            bot) instead of a websocket
  rabbitmq-http  the same through `warren http` and `warren game` on RabbitMQ
  colyseus  Colyseus 0.18 echo room (benches/colyseus/server.mjs)
Loads: 1,000 bots at 1, 10 and 20 requests/s, 10,000 bots at 1/s, and a
closed loop with 1,000 bots; 100-byte payloads; warm-up, a measured window,
several repetitions; median and spread; CPU-µs per round trip of every
server process (from /proc). Plus the idle-connection ramp (--idle).

Environment: BENCH_REPS (3), BENCH_WARMUP (10), BENCH_WINDOW (20),
BENCH_TARGETS (direct,broker,inproc,rabbitmq,redis,zmq,grpc,http,rabbitmq-http,colyseus), BENCH_LOADS
(1k@1,1k@10,1k@20,10k@1,1k@max), BENCH_IDLE (100000: bots of the idle
ramp), BENCH_IDLE_CONNECTORS (6), BENCH_SERVER_ENV (K=V,... added to the
environment of every server process), BENCH_WORKER_THREADS (1: runtime
threads of each Warren process, in process as on a bus; 0 = one per core;
empty: not set), AMQP_URL, REDIS_URL.
"""

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_DIR = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
WARREN = TARGET_DIR / "warren"
BOTS = TARGET_DIR / "warren-bots"
DIRECT = TARGET_DIR / "examples" / "direct_echo"
CEILING = TARGET_DIR / "examples" / "broker_ceiling"
COLYSEUS = ROOT / "benches" / "colyseus"

REPS = int(os.environ.get("BENCH_REPS", "3"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "10"))
WINDOW = int(os.environ.get("BENCH_WINDOW", "20"))
TARGETS = [t for t in os.environ.get("BENCH_TARGETS", "direct,broker,inproc,rabbitmq,redis,zmq,grpc,http,rabbitmq-http,colyseus").split(",") if t]
LOADS = os.environ.get("BENCH_LOADS", "1k@1,1k@10,1k@20,10k@1,1k@max").split(",")
AMQP = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")
REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
WORKER_THREADS = os.environ.get("BENCH_WORKER_THREADS", "1")

def worker_threads():
    """WARREN_WORKER_THREADS for every Warren process of a target. One
    runtime thread by default, as Colyseus has one: on this two-core host
    the bots, the broker and Warren's service threads share the cores, and
    one runtime thread per process spends less CPU per round trip than one
    per core, whose threads park and wake each other (BENCHMARKS.md, issue
    21: in process 89 -> 55 µs at 1,000 x 1/s, the closed loop no slower)."""
    return {"WARREN_WORKER_THREADS": WORKER_THREADS} if WORKER_THREADS else {}


# Benches lift the per-socket flood limits: a closed-loop bot sends far
# more than a real player, and the default limit (100 frames/s) would kick it.
UNLIMITED = {
    "WARREN_CONNECTOR__RATE_LIMIT_PER_SEC": "1000000",
    "WARREN_CONNECTOR__RATE_LIMIT_BURST": "1000000",
    "WARREN_CONNECTOR__BYTE_LIMIT_PER_SEC": "1000000000",
    "WARREN_CONNECTOR__BYTE_LIMIT_BURST": "1000000000",
    # Every HTTP bot calls from 127.0.0.1, far faster than a player.
    "WARREN_HTTP__UID_RATE_PER_SEC": "1000000",
    "WARREN_HTTP__UID_RATE_BURST": "1000000",
    "WARREN_HTTP__ADDRESS_RATE_PER_SEC": "1000000000",
    "WARREN_HTTP__ADDRESS_RATE_BURST": "1000000000",
    "RUST_LOG": "warn",
}
# Extra environment for every server process (Warren's, the direct echo,
# Colyseus), for experiments: BENCH_SERVER_ENV="TOKIO_WORKER_THREADS=1".
SERVER_ENV = dict(kv.split("=", 1) for kv in os.environ.get("BENCH_SERVER_ENV", "").split(",") if kv)


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def parse_load(load):
    bots, rate = load.split("@")
    n = int(bots[:-1]) * 1000 if bots.endswith("k") else int(bots)
    return n, (0.0 if rate == "max" else float(rate))


class Proc:
    """A server process, its output in a log file."""

    def __init__(self, name, args, env=None, cwd=None, wait_for=None, out=None, ready=False):
        """wait_for: a line the process prints when it serves (the direct
        echo and Colyseus servers); ready: a Warren process, waited for
        through its ready file (the contract in src/ready.rs)."""
        self.name = name
        self.log = open(out / f"{name}.log", "w") if out else subprocess.DEVNULL
        full_env = dict(os.environ)
        full_env.update(SERVER_ENV)
        full_env.update(env or {})
        self.ready = None
        if ready:
            self.ready = Path(tempfile.mkdtemp(prefix="warren-bench-ready-")) / f"{name}.json"
            args = [args[0], "--ready-file", str(self.ready), *args[1:]]
        self.p = subprocess.Popen(args, env=full_env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        self.path = out / f"{name}.log" if out else None
        if wait_for:
            self.wait_line(wait_for)
        if self.ready:
            self.listeners = self.wait_ready()

    def wait_ready(self, timeout=60):
        """The listeners of the process's ready file, once it is written."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.p.returncode}); see {self.path}")
            if self.ready.exists():
                return json.loads(self.ready.read_text())["listeners"]
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: not ready within {timeout} s; see {self.path}")

    def wait_line(self, text, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.p.returncode}); see {self.path}")
            if self.path and text in self.path.read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: no {text!r} within {timeout} s; see {self.path}")

    @property
    def pid(self):
        return self.p.pid

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if self.ready:
            shutil.rmtree(self.ready.parent, ignore_errors=True)


def broker_pid():
    out = subprocess.run(["pgrep", "-f", "beam.smp"], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


def redis_cli(*args):
    return subprocess.run(["redis-cli", "-u", REDIS, *args], check=True, capture_output=True, text=True).stdout


def redis_pid():
    info = redis_cli("info", "server")
    return next((int(l.split(":")[1]) for l in info.splitlines() if l.startswith("process_id:")), None)


def rabbitmqctl(*args):
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True)


def bots(out, name, args, watch):
    """Runs warren-bots; returns its JSON report."""
    report = out / f"{name}.json"
    cmd = [str(BOTS), "--json", str(report), "--plot", str(out / f"{name}.svg"), "-q",
           "--warmup", f"{WARMUP}s", "--duration", f"{WINDOW}s", "--ramp", "2000",
           "--payload", "100", *args]
    for wname, pid in watch:
        cmd += ["--watch", f"{wname}={pid}"]
    with open(out / f"{name}.txt", "w") as table:
        r = subprocess.run(cmd, stdout=table, stderr=subprocess.STDOUT)
    if not report.exists():
        raise RuntimeError(f"warren-bots failed ({r.returncode}); see {out / (name + '.txt')}")
    return json.loads(report.read_text())


class Target:
    """Starts a server, returns how bots reach it and which pids to watch."""

    def __init__(self, kind, out):
        self.kind = kind
        self.out = out
        self.procs = []
        self.dir = Path(tempfile.mkdtemp(prefix=f"warren-bench-{kind}-"))
        self.vhost = None
        self.namespace = None

    def start(self):
        k = self.kind
        if k == "direct":
            self.procs.append(Proc("direct", [str(DIRECT), "127.0.0.1:7101"], wait_for="direct echo on", out=self.out))
            self.args = ["--no-login", "--url", "ws://127.0.0.1:7101/ws"]
            self.watch = [("direct", self.procs[0].pid)]
        elif k == "colyseus":
            self.procs.append(Proc("colyseus", ["node", "server.mjs", "7201"], cwd=COLYSEUS,
                                   wait_for="colyseus echo on", out=self.out))
            self.args = ["--colyseus", "http://127.0.0.1:7201"]
            self.watch = [("colyseus", self.procs[0].pid)]
        elif k == "inproc":
            env = dict(UNLIMITED, WARREN_DATA_DIR=str(self.dir), **worker_threads())
            p = Proc("warren", [str(WARREN)], env=env, cwd=self.dir, ready=True, out=self.out)
            self.procs.append(p)
            self.args = ["--key", str(self.dir / "jwt-private.pem")]
            self.watch = [("warren", p.pid)]
        elif k == "http":
            env = dict(UNLIMITED, WARREN_DATA_DIR=str(self.dir), **worker_threads())
            p = Proc("warren", [str(WARREN)], env=env, cwd=self.dir, ready=True, out=self.out)
            self.procs.append(p)
            self.args = ["--scenario", "http-echo", "--url", "http://127.0.0.1:7006",
                         "--key", str(self.dir / "jwt-private.pem")]
            self.watch = [("warren", p.pid)]
        elif k == "rabbitmq-http":
            bus, env, game = self.start_game()
            gateway = Proc("http", [str(WARREN), "http", *bus, "--id=bench-http"], env=env, cwd=self.dir,
                           ready=True, out=self.out)
            self.procs.append(gateway)
            self.args = ["--scenario", "http-echo", "--url", "http://127.0.0.1:7006",
                         "--key", str(self.dir / "jwt-private.pem")]
            self.watch = [("http", gateway.pid), ("game", game.pid)]
            if broker_pid():
                self.watch.append(("rabbitmq", broker_pid()))
        elif k in ("rabbitmq", "redis", "zmq", "grpc"):
            bus, env, game = self.start_game()
            conn = Proc("connector", [str(WARREN), "connector", *bus, "--id=bench"], env=env, cwd=self.dir,
                        ready=True, out=self.out)
            self.procs.append(conn)
            self.args = ["--key", str(self.dir / "jwt-private.pem")]
            self.watch = [("connector", conn.pid), ("game", game.pid)]
            server = {"rabbitmq": broker_pid, "redis": redis_pid}.get(k, lambda: None)()
            if server:
                self.watch.append((k, server))
        return self

    def start_game(self):
        """A vhost (RabbitMQ) or namespace (Redis) of its own, the key
        pair, and `warren game` on it; returns the bus flags, the
        processes' environment and the game."""
        env = {}
        if self.kind == "redis":
            self.namespace = f"warren-bench-{os.getpid()}-{time.monotonic_ns()}"
            env["WARREN_BUS__NAMESPACE"] = self.namespace
            bus = ["--redis", REDIS]
        elif self.kind == "zmq":
            # No broker: the game binds its two sockets on loopback.
            env.update(WARREN_BUS__KIND="zmq", WARREN_BUS__ZMQ__REQUESTS='["tcp://127.0.0.1:7111"]',
                       WARREN_BUS__ZMQ__PUSHES='["tcp://127.0.0.1:7112"]')
            bus = []
        elif self.kind == "grpc":
            # No broker: the connector serves the gateway, the game
            # registers with it (started first: it tries until it is up).
            env.update(WARREN_BUS__KIND="grpc", WARREN_BUS__GRPC__GATEWAYS='["http://127.0.0.1:7105"]')
            bus = []
        else:
            self.vhost = f"warren-bench-{self.kind}-{os.getpid()}"
            rabbitmqctl("add_vhost", self.vhost)
            rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
            bus = ["--amqp", f"{AMQP}/{self.vhost}"]
        env.update(UNLIMITED, WARREN_DATA_DIR=str(self.dir), WARREN_CONFIG_SVC__URL="")
        env.update(worker_threads())
        subprocess.run([str(WARREN), "token", "--uid", "1"], env=dict(os.environ, **env), cwd=self.dir,
                       check=True, capture_output=True)
        game = Proc("game", [str(WARREN), "game", *bus], env=env, cwd=self.dir,
                    ready=True, out=self.out)
        self.procs.append(game)
        return bus, env, game

    def stop(self):
        for p in reversed(self.procs):
            p.stop()
        if self.vhost:
            rabbitmqctl("delete_vhost", self.vhost)
        if self.namespace:
            keys = redis_cli("--scan", "--pattern", f"{{{self.namespace}}}*").split()
            if keys:
                redis_cli("del", *keys)
        shutil.rmtree(self.dir, ignore_errors=True)


def summarize(runs):
    """Median and spread of a list of bots reports."""
    tp = [r["throughput"] for r in runs]
    p99 = [max(g["latency"]["p99_ms"] for g in r["groups"]) for r in runs]
    p50 = [r["groups"][0]["latency"]["p50_ms"] for r in runs]
    cpu = {}
    switches = {}
    for r in runs:
        for w in r["watched"]:
            cpu.setdefault(w["name"], []).append(w["cpu_us_per_request"])
            switches.setdefault(w["name"], []).append(w.get("switches_per_request", 0.0))
    problems = [sum(r["errors"].values()) + sum(r["kicks"].values()) + sum(r["failures"].values()) for r in runs]
    return {
        "throughput": statistics.median(tp), "throughput_min": min(tp), "throughput_max": max(tp),
        "throughputs": tp,
        "p50_ms": statistics.median(p50), "p99_ms": statistics.median(p99),
        "p99_min": min(p99), "p99_max": max(p99),
        "cpu_us": {k: statistics.median(v) for k, v in cpu.items()},
        "switches": {k: statistics.median(v) for k, v in switches.items()},
        "problems": sum(problems), "reps": len(runs),
    }


def run_broker(out):
    results = []
    for rep in range(REPS):
        r = subprocess.run([str(CEILING), str(WINDOW), "100", "100"], capture_output=True, text=True,
                           env=dict(os.environ, AMQP_URL=f"{AMQP}/%2f"))
        (out / f"broker-{rep}.txt").write_text(r.stdout + r.stderr)
        line = next((l for l in r.stdout.splitlines() if l.startswith("JSON ")), None)
        if line is None:
            raise RuntimeError(f"broker_ceiling failed; see {out / f'broker-{rep}.txt'}")
        results.append(json.loads(line[5:]))
        log(f"broker rep {rep + 1}: {results[-1]}")
    med = lambda k: statistics.median(x[k] for x in results)
    return {"publish_consume_per_s": med("publish_consume_per_s"),
            "request_reply_per_s": med("request_reply_per_s"),
            "request_reply_p99_ms": med("request_reply_p99_ms"),
            "spread": [min(x["request_reply_per_s"] for x in results), max(x["request_reply_per_s"] for x in results)]}


def run_idle(out, total, connectors):
    """Ramps `total` idle bots over `connectors` connectors on RabbitMQ; a fit
    of each connector's RSS against its players online gives the memory per
    connection."""
    t = Target("idle", out)
    try:
        bus, env, _ = t.start_game()
        urls = []
        for i in range(connectors):
            port = 7301 + i
            cenv = dict(env, WARREN_CONNECTOR__LISTEN=f"127.0.0.1:{port}",
                        WARREN_CONNECTOR__ADMIN_LISTEN=f"127.0.0.1:{port + 100}",
                        WARREN_CONNECTOR__MAX_CONNECTIONS="19500")
            t.procs.append(Proc(f"connector{i}", [str(WARREN), "connector", *bus, f"--id=idle{i}"],
                                env=cenv, cwd=t.dir, ready=True, out=out))
            urls += ["--url", f"ws://127.0.0.1:{port}/ws"]
        conns = [p for p in t.procs if p.name.startswith("connector")]
        token = (t.dir / "admin-token").read_text().strip()
        time.sleep(1)
        watch = [(p.name, p.pid) for p in conns]
        cmd = [str(BOTS), "--json", str(out / "idle.json"), "-q", "--scenario", "idle", "--bots", str(total),
               "--ramp", "4000", "--warmup", "5s", "--duration", "20s", "--heartbeat", "20s",
               "--connect-timeout", "30s", "--key", str(t.dir / "jwt-private.pem"), *urls]
        for n, pid in watch:
            cmd += ["--watch", f"{n}={pid}"]
        # While the bots ramp and hold, sample every connector's players
        # online (its admin endpoint) and RSS; the slope of a least-squares
        # fit is the memory per connection.
        samples = {p.name: [] for p in conns}
        with open(out / "idle.txt", "w") as table:
            b = subprocess.Popen(cmd, stdout=table, stderr=subprocess.STDOUT)
            while b.poll() is None:
                for i, p in enumerate(conns):
                    try:
                        req = urllib.request.Request(f"http://127.0.0.1:{7401 + i}/v1/stats",
                                                     headers={"Authorization": f"Bearer {token}"})
                        online = json.load(urllib.request.urlopen(req, timeout=5))["online"]
                        samples[p.name].append((online, rss_kib(p.pid)))
                    except (OSError, ValueError, KeyError):
                        pass
                time.sleep(2)
        report = json.loads((out / "idle.json").read_text())
        slopes = [fit(v) for v in samples.values() if len(v) >= 3]
        (out / "idle-samples.json").write_text(json.dumps(samples))
        return {"bots": total, "connectors": connectors, "logged_in": report["logged_in"],
                "connected_at_end": report["connected_at_end"], "connect_p99_ms": report["connect"]["p99_ms"],
                "connect_p50_ms": report["connect"]["p50_ms"],
                "kib_per_connection": statistics.median(slopes) if slopes else float("nan"),
                "slopes": slopes,
                "rss_mib": [w["rss_mib"] for w in report["watched"]],
                "failures": report["failures"]}
    finally:
        t.stop()


def fit(points):
    """Slope of the least-squares line through (x, y) points."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else float("nan")


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main():
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = ROOT / "bench-results" / stamp
    out.mkdir(parents=True)
    log(f"results in {out}")
    results = {"machine": machine(), "reps": REPS, "warmup_s": WARMUP, "window_s": WINDOW, "loads": {}, "broker": None}
    if "broker" in TARGETS:
        log("broker ceiling")
        results["broker"] = run_broker(out)
    servers = [t for t in TARGETS if t != "broker"]
    # Targets take turns within each repetition, so a machine that speeds
    # up or slows down during the run (a shared host does) moves every
    # target's figures alike, and the ratios stay fair.
    for load in LOADS:
        n, rate = parse_load(load)
        runs = {target: [] for target in servers}
        for rep in range(REPS):
            for target in servers:
                t = Target(target, out)
                try:
                    t.start()
                    name = f"{target}-{load.replace('@', 'x')}-{rep}"
                    r = bots(out, name, ["--bots", str(n), "--rate", str(rate), *t.args], t.watch)
                    runs[target].append(r)
                    log(f"{name}: {r['throughput']:.0f}/s p99 {max(g['latency']['p99_ms'] for g in r['groups']):.2f} ms")
                finally:
                    t.stop()
        for target in servers:
            results["loads"].setdefault(load, {})[target] = summarize(runs[target])
        (out / "results.json").write_text(json.dumps(results, indent=2))
    idle = int(os.environ.get("BENCH_IDLE", "0"))
    if idle:
        log(f"idle ramp to {idle}")
        results["idle"] = run_idle(out, idle, int(os.environ.get("BENCH_IDLE_CONNECTORS", "6")))
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "summary.md").write_text(markdown(results))
    print(markdown(results))


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), "?")
    mem = next((l.split()[1] for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")), "0")
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(int(mem) / 1024 / 1024, 1),
            "kernel": os.uname().release}


def markdown(res):
    m = res["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, Linux {m['kernel']}; "
             f"{res['reps']} repetitions, {res['warmup_s']} s warm-up, {res['window_s']} s window, 100-byte payloads.", ""]
    names = {"direct": "direct echo (ceiling)", "inproc": "Warren in-process", "rabbitmq": "Warren on RabbitMQ",
             "redis": "Warren on Redis", "zmq": "Warren on ZeroMQ", "grpc": "Warren on the gRPC gateway", "http": "Warren in-process, HTTP calls",
             "rabbitmq-http": "Warren on RabbitMQ, HTTP calls", "colyseus": "Colyseus 0.18"}
    lines.append("| load | target | round trips/s (median, min–max) | p50 ms | p99 ms (median, min–max) | CPU µs per round trip | context switches per round trip | errors |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for load, targets in res["loads"].items():
        for t, s in targets.items():
            cpu = ", ".join(f"{k} {v:.1f}" for k, v in s["cpu_us"].items())
            sw = ", ".join(f"{k} {v:.1f}" for k, v in s.get("switches", {}).items())
            lines.append(f"| {load} | {names.get(t, t)} | {s['throughput']:,.0f} ({s['throughput_min']:,.0f}–{s['throughput_max']:,.0f}) "
                         f"| {s['p50_ms']:.2f} | {s['p99_ms']:.2f} ({s['p99_min']:.2f}–{s['p99_max']:.2f}) | {cpu} | {sw} | {s['problems']} |")
    if res.get("broker"):
        b = res["broker"]
        lines += ["", f"Broker ceiling (RabbitMQ alone, lapin, 100 B): publish → consume {b['publish_consume_per_s']:,.0f} messages/s; "
                      f"request → reply {b['request_reply_per_s']:,.0f} round trips/s "
                      f"({b['spread'][0]:,.0f}–{b['spread'][1]:,.0f}), p99 {b['request_reply_p99_ms']:.2f} ms."]
    mx = res["loads"].get("1k@max", {})

    def ratio(t, base):
        """Median and spread of the ratios of runs made side by side (the
        same repetition), then the ratio of the medians."""
        pairs = [a / b for a, b in zip(mx[t].get("throughputs", []), mx[base].get("throughputs", []))]
        paired = (f"; per repetition {statistics.median(pairs):.2f}× ({min(pairs):.2f}–{max(pairs):.2f})"
                  if pairs else "")
        return f"{mx[t]['throughput'] / mx[base]['throughput']:.2f}×{paired}"

    if "direct" in mx:
        lines.append("")
        for t in ("inproc", "rabbitmq", "redis", "zmq", "grpc", "colyseus"):
            if t in mx:
                lines.append(f"- closed loop, 1,000 bots: {names[t]} = {ratio(t, 'direct')} the direct-echo ceiling"
                             f" (p99 {mx[t]['p99_ms']:.1f} ms)")
    pairs = [("http", "inproc"), ("rabbitmq-http", "rabbitmq")]
    if any(h in targets and w in targets for targets in res["loads"].values() for h, w in pairs):
        lines += ["", "HTTP calls next to websocket echo (same run; CPU-µs per call summed over the server processes):"]
        for load, targets in res["loads"].items():
            for h, w in pairs:
                if h in targets and w in targets:
                    cpu = lambda t: sum(targets[t]["cpu_us"].values())
                    lines.append(f"- {load}: {names[h]} {cpu(h):.0f} µs, p99 {targets[h]['p99_ms']:.2f} ms; "
                                 f"{names[w]} over a websocket {cpu(w):.0f} µs, p99 {targets[w]['p99_ms']:.2f} ms")
    if "colyseus" in mx:
        lines.append("")
        for t in ("inproc", "rabbitmq", "redis", "zmq", "grpc"):
            if t in mx:
                lines.append(f"- {names[t]} = {ratio(t, 'colyseus')} Colyseus")
    for t in ("zmq", "grpc"):
        if t not in mx or "rabbitmq" not in mx:
            continue
        lines += ["", f"- closed loop, {names[t]} over {names['rabbitmq']}: {ratio(t, 'rabbitmq')}"]
        for load, targets in res["loads"].items():
            if t in targets and "rabbitmq" in targets:
                lines.append(f"- {load}: p99 {names[t]} {targets[t]['p99_ms']:.2f} ms, "
                             f"{names['rabbitmq']} {targets['rabbitmq']['p99_ms']:.2f} ms")
    if res.get("idle"):
        i = res["idle"]
        lines += ["", f"Idle: {i['connected_at_end']:,} of {i['bots']:,} bots held over {i['connectors']} connectors; "
                      f"{i['kib_per_connection']:.1f} KiB RSS per connection (median slope of a least-squares fit of RSS against players online, per connector); "
                      f"connect p50 {i['connect_p50_ms']:.1f} ms, p99 {i['connect_p99_ms']:.1f} ms; failures {i['failures'] or 'none'}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
