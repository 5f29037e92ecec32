"""Idle WebSockets: 5k and 19.5k sessions held by one server process, heartbeating.

Setup, per measurement: a fresh server in its own process (``python -m
bench.ws_idle_server``) on a free loopback port, both contenders under the
same uvicorn with tether's own options (h11, the ``websockets`` sans-I/O
protocol, no compression, 64 KiB frames, server keepalive pings every 20 s,
one process, asyncio loop). Clients run in separate worker processes
(``python -m bench.ws_idle_client``; one per CPU but one, two to four), so the
server's RSS and CPU are its own. Each process lifts its soft open-files limit
to the hard one.

1. Warm-up: 50 clients connect, ``hello``, ``start``, and disconnect; after a
   pause the server's RSS is the baseline.
2. Connect-and-start: N connections, at most 200 in flight in all, each
   ``hello {token}`` (an HS256 JWT for its own user) then ``start``, done when
   the started reply is in. The rate is the connections started over the
   seconds from the first connect attempt to the last reply (or failure). The
   server's CPU time over this phase, per connection, is reported as well (a
   figure that does not depend on how fast the client library is).
3. Idle: every connection sends a heartbeat each 25 s (``ping``, answered
   ``pong``; for socket.io a ``heartbeat`` event answered with ``pong``), the
   phases spread evenly. After a 3 s pause the server's CPU time (user + sys)
   is read over a 25 s window, one whole heartbeat period, and its RSS at the
   window's end gives (RSS - baseline) / N per connection.
4. Errors: failed connects plus connections dropped before the end of the
   window. A drop or failure of any connection counts.

Contenders, interleaved (tether 5k, socketio 5k, tether 19.5k, socketio 19.5k):

* ``tether``: the real service (``create_app`` from ``TETHER_*``) under
  ``TetherServer``, with tether's defaults (memory store, ``fsync=always``
  journals in a temp dir) except: one user per connection, long idle,
  presence and max-duration timeouts, a 60 s hello timeout, and log level
  warning. Client: ``websockets``, no client pings (the server pings).
* ``python-socketio``: ``AsyncServer(async_mode="asgi")`` in ``ASGIApp``,
  whose handlers do the same work (JWT check, a session record in a dict,
  a ``last_seen`` stamp per heartbeat). Engine.IO's own ping is stretched to
  an hour so that both servers see exactly one heartbeat round trip per
  connection per 25 s; its other defaults stand. Client: ``socketio.AsyncClient``,
  WebSocket transport only (the baseline).

One repeat in quick mode (500 and 1,000 connections, a 5 s window) and in a
full run too: connecting 19.5k clients takes a minute or more, so a full run
takes about 5 min on two CPUs and three repeats would take about 16, over the
10 minutes a bench may take. With ``REPEATS`` raised, figures are medians and
errors the worst repeat. On a shared two-CPU machine the clients, the server
and other load compete for the CPUs: the rate moves by up to 2x from run to
run, and python-socketio's rate at 19.5k is partly its own client's (its server
is then about half busy). The server's CPU per connection is the steadier
figure and does not depend on the client library.

Targets: 19.5k held with 0 errors; <= 30 KiB per connection; a connect-and-start
rate >= 1.5x python-socketio's; idle CPU <= 0.5x python-socketio's (the ratio
column is oriented so that above 1 beats the baseline, so that is ``>= 2x``).
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil

from bench.common import Row, Target, loopback_listener, rows_vs
from bench.ws_idle_server import raise_nofile

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = os.environ.get("TETHER_BENCH_DIR")
CONTENDERS = {"tether": "tether", "python-socketio": "socketio"}
BASELINE = "python-socketio"
HEARTBEAT = 25.0
INFLIGHT = 200
WARMUP = 50
CONNECT_TIMEOUT = 60.0
REPEATS = 1
WORKERS = max(2, min(4, (os.cpu_count() or 2) - 1))


@dataclass
class Sample:
    rate: float  # connections started per second
    kib: float  # server RSS per held connection
    idle_ms_per_s: float  # server CPU ms per wall second while idle
    connect_ms: float  # server CPU ms per connection while connecting
    errors: int


class Child:
    """A child process with its stdout read line by line on a thread."""

    def __init__(self, argv: list[str], env: dict[str, str], **kwargs: Any) -> None:
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            **kwargs,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        """The next line, which must be ``event`` (a bare word or a JSON object)."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"no {event!r} from pid {self.proc.pid} in {timeout:g} s") from None
        if line is None:
            raise RuntimeError(f"pid {self.proc.pid} exited ({self.proc.wait()}) before {event!r}")
        data: dict[str, Any] = json.loads(line) if line.startswith("{") else {"event": line.strip()}
        if data.get("event") != event:
            raise RuntimeError(f"expected {event!r} from pid {self.proc.pid}, got {line!r}")
        return data

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def _env(contender: str, secret: str, data_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    if contender == "tether":
        env.update(
            TETHER_SECRET=secret,
            TETHER_DATA_DIR=data_dir,
            TETHER_LOG_LEVEL="warning",
            TETHER_IDLE_TIMEOUT="1h",
            TETHER_MAX_DURATION="1d",
            TETHER_PRESENCE_TIMEOUT="1d",
            TETHER_HEARTBEAT_INTERVAL=str(HEARTBEAT),
            TETHER_HELLO_TIMEOUT="60s",
        )
    else:
        env.update(WS_IDLE_SECRET=secret, WS_IDLE_HEARTBEAT=str(HEARTBEAT))
    return env


def _clients(
    contender: str, url: str, secret: str, prefix: str, n: int, env: dict[str, str]
) -> list[Child]:
    """Worker processes sharing ``n`` connections, each ready for ``go``."""
    workers = min(WORKERS, n)
    children = []
    for w in range(workers):
        args = {
            "contender": contender,
            "url": url,
            "secret": secret,
            "prefix": f"{prefix}{w}x",
            "count": n // workers + (w < n % workers),
            "inflight": INFLIGHT // workers,
            "heartbeat": HEARTBEAT,
            "timeout": CONNECT_TIMEOUT,
        }
        argv = [sys.executable, "-m", "bench.ws_idle_client", json.dumps(args)]
        children.append(Child(argv, env))
    for child in children:
        child.expect("ready", 120)
    return children


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _measure(contender: str, n: int, window: float, settle: float) -> Sample:
    secret = secrets.token_hex(32)
    children: list[Child] = []
    with tempfile.TemporaryDirectory(prefix="tether-bench-", dir=BENCH_DIR) as data_dir:
        env = _env(contender, secret, data_dir)
        listener = loopback_listener()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        fd = listener.fileno()
        log = open(Path(data_dir) / "server.log", "w+")  # noqa: SIM115
        argv = [sys.executable, "-m", "bench.ws_idle_server", contender, str(fd)]
        server = Child(argv, env, pass_fds=[fd], stderr=log)
        listener.close()
        try:
            server.expect("ready", 60)
            proc = psutil.Process(server.proc.pid)

            warm = _clients(contender, url, secret, "warm", WARMUP, env)
            children += warm
            for child in warm:
                child.send("go")
            for child in warm:
                if (warmed := child.expect("held", CONNECT_TIMEOUT + 30))["errors"]:
                    raise RuntimeError(f"warm-up failed: {warmed['errors']}")
                child.send("close")
                child.expect("closed", 30)
            time.sleep(settle)
            baseline = proc.memory_info().rss

            clients = _clients(contender, url, secret, "u", n, env)
            children += clients
            cpu0 = _cpu(proc)
            for child in clients:
                child.send("go")
            held = [child.expect("held", CONNECT_TIMEOUT * n / INFLIGHT + 60) for child in clients]
            connect_cpu = _cpu(proc) - cpu0
            ok = sum(h["ok"] for h in held)
            errors = sum(sum(h["errors"].values()) for h in held)
            seconds = max(h["last"] for h in held) - min(h["first"] for h in held)
            kinds: dict[str, int] = {}
            for h in held:
                for kind, count in h["errors"].items():
                    kinds[kind] = kinds.get(kind, 0) + count

            time.sleep(settle)
            cpu1, t1 = _cpu(proc), time.perf_counter()
            time.sleep(window)
            idle_cpu, elapsed = _cpu(proc) - cpu1, time.perf_counter() - t1
            rss = proc.memory_info().rss

            for child in clients:
                child.send("report")
            reports = [child.expect("report", 60) for child in clients]
            dropped = sum(r["dropped"] for r in reports)
            beats, pongs = sum(r["beats"] for r in reports), sum(r["pongs"] for r in reports)
        except Exception:
            log.seek(0)
            print(f"  {contender} server log:\n{log.read()[-3000:]}", file=sys.stderr)
            raise
        finally:
            server.kill()
            for child in children:
                child.kill()
            log.seek(0)
            tail = log.read()[-2000:]
            log.close()
    sample = Sample(
        rate=ok / seconds if seconds > 0 else 0.0,
        kib=(rss - baseline) / 1024 / max(1, ok),
        idle_ms_per_s=idle_cpu * 1000 / elapsed,
        connect_ms=connect_cpu * 1000 / max(1, ok),
        errors=errors + dropped,
    )
    print(
        f"  {contender:8} n={n:>6,}: {ok:,} held in {seconds:.1f} s ({sample.rate:,.0f}/s, "
        f"server CPU {connect_cpu:.1f} s), {sample.kib:.1f} KiB/conn "
        f"(baseline {baseline / 2**20:.0f} MiB, held {rss / 2**20:.0f} MiB), "
        f"idle {sample.idle_ms_per_s:.0f} ms/s, {beats:,} beats / {pongs:,} pongs, "
        f"errors {errors} {kinds or ''}, dropped {dropped}",
        file=sys.stderr,
        flush=True,
    )
    if sample.errors and tail.strip():
        lines = tail.strip().splitlines()[-3:]
        print("  server log ends:\n    " + "\n    ".join(lines), file=sys.stderr, flush=True)
    return sample


def run(quick: bool) -> list[Row]:
    ns, window, settle = ((500, 1000), 5.0, 1.0) if quick else ((5000, 19_500), 25.0, 3.0)
    repeats = 1 if quick else REPEATS
    limit = raise_nofile()
    if limit < max(ns) + 1100:
        print(
            f"  ws_idle: the open-files limit is {limit}: {max(ns):,} sockets"
            " plus a server's other files may not fit",
            file=sys.stderr,
        )
    results: dict[int, dict[str, list[Sample]]] = {n: {c: [] for c in CONTENDERS} for n in ns}
    for _ in range(repeats):
        for n in ns:
            for name, contender in CONTENDERS.items():
                results[n][name].append(_measure(contender, n, window, settle))

    rows: list[Row] = []
    for n in ns:
        case = f"{n:,} held"
        got = results[n]

        def samples(field: str, got: dict[str, list[Sample]] = got) -> dict[str, list[float]]:
            return {name: [float(getattr(s, field)) for s in got[name]] for name in CONTENDERS}

        top = n == max(ns)
        rows += rows_vs(
            "ws_idle",
            case,
            "conn+start/s",
            samples("rate"),
            BASELINE,
            {"tether": Target(">=", 1.5, on="ratio")},
            higher_is_better=True,
        )
        rows += rows_vs(
            "ws_idle", case, "KiB/conn", samples("kib"), BASELINE, {"tether": Target("<=", 30.0)}
        )
        rows += rows_vs(
            "ws_idle",
            case,
            "idle CPU ms/s",
            samples("idle_ms_per_s"),
            BASELINE,
            {"tether": Target(">=", 2.0, on="ratio")},
        )
        rows += rows_vs("ws_idle", case, "server CPU ms/conn", samples("connect_ms"), BASELINE)
        errors = rows_vs(
            "ws_idle",
            case,
            "errors",
            samples("errors"),
            BASELINE,
            {"tether": Target("<=", 0.0)} if top else None,
        )
        for row in errors:
            row.value = max(row.samples)  # the worst repeat, not the median
        rows += errors
    return rows
