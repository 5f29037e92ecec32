"""``make soak``: session churn against a real server for a long time; does anything leak?

``python -m bench.soak [--seconds N] [--rate N] [--warmup N] [--window N]``
(``SOAK_SECONDS``, ``SOAK_RATE``, ``SOAK_WARMUP`` in the environment too).

1. A real tether server (:mod:`bench.fuzz_server`, memory store) with short
   policies (idle 10 s with a warning 3 s before, presence 8 s, heartbeat 2 s),
   so idle and presence ends happen all through the run.
2. Warm-up: ``--warmup`` seconds of churn (default 300), then a pause until no
   session and no connection is left: the server's open fds and asyncio tasks
   (the ``tether_asyncio_tasks`` gauge) at rest are the baseline.
3. Churn: ``--rate`` sessions a second (default 50) for ``--seconds`` (default
   1,800) from worker processes (:mod:`bench.soak_client`); every session
   has a fate and must end for the reason it implies. The server's RSS is
   sampled every second.
4. Rest again: fds and tasks must be back to the baseline.

Targets: RSS growth <= 5 % (median of the last ``--window`` seconds, default
300, against the median of the first window after warm-up), 0 leaked fds, 0
leaked tasks, 0 client-side errors, every session's end accounted for, 0
ERROR lines and 0 tracebacks in the log, and the clients on schedule (a start
at most 2 s late; otherwise the machine, not the server, failed the run).
Results: ``bench/results/soak.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import soak_client
from bench.common import Row, Target, table, write_json
from bench.fuzz_server import TRACEMALLOC_ENV, Server, metrics, scan_log, serve, wait_idle

RESULTS = Path(__file__).parent / "results" / "soak.json"
RSS_GROWTH_PCT = 5.0
MAX_CLIENT_LAG_S = 2.0
"""Worst delay of a session start behind its schedule: beyond it the clients, not the server,
set the pace (a machine too busy for the run), and timeouts may end sessions early."""
POLICY = {"idle_timeout": 10.0, "warn_before": 3.0, "presence_timeout": 8.0, "heartbeat": 2.0}
"""Short enough that idle and presence ends happen all through the run; presence long enough
that a client process lagging a few seconds on a busy machine does not lose a REST session."""
SERVER_ENV = {
    "TETHER_IDLE_TIMEOUT": f"{POLICY['idle_timeout']:g}s",
    "TETHER_WARN_BEFORE": f"{POLICY['warn_before']:g}s",
    "TETHER_PRESENCE_TIMEOUT": f"{POLICY['presence_timeout']:g}s",
    "TETHER_HEARTBEAT_INTERVAL": f"{POLICY['heartbeat']:g}s",
    "TETHER_MAX_DURATION": "1d",
    "TETHER_MAX_MESSAGES_PER_MINUTE": "10000000",
    "TETHER_MESSAGE_BURST": "100000",
    "TETHER_MAX_REQUESTS_PER_MINUTE": "10000000",
    "TETHER_REQUEST_BURST": "100000",
    "TETHER_MAX_CONNECTIONS_PER_USER": "1000",
    "TETHER_MAX_SESSIONS_PER_USER": "1000",
    "TETHER_LOG_LEVEL": "warning",
}
"""Users are many and sessions per user few, but a slow run must not turn into ``replaced``."""


def _progress(text: str) -> None:
    print(f"soak: {text}", file=sys.stderr, flush=True)


class Sampler:
    """The server's RSS every second, on a thread."""

    def __init__(self, server: Server) -> None:
        self.proc = server.ps
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.wait(1.0):
            try:
                self.samples.append((time.monotonic() - t0, self.proc.memory_info().rss))
            except Exception:  # the server is gone; the run reports it
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def between(self, start: float, end: float) -> list[int]:
        return [rss for t, rss in self.samples if start <= t < end]

    def now(self) -> float:
        return self.samples[-1][0] if self.samples else 0.0


def _at_rest(server: Server) -> dict[str, Any]:
    """Open fds, tasks and RSS once no session and no connection is left."""
    settled = wait_idle(server, POLICY["idle_timeout"] + 60)
    time.sleep(2.0)  # end pipelines and archive writes finish after the session is gone
    proc = server.ps
    fds = proc.num_fds()  # before the scrape, whose own socket would count
    files = sorted(f.path for f in proc.open_files())
    sockets = len(proc.net_connections())
    m = metrics(server)
    return {
        "settled": settled,
        "fds": fds,
        "files": files,
        "sockets": sockets,
        "tasks": m.get("tether_asyncio_tasks"),
        "rss": server.ps.memory_info().rss,
    }


def _churn(server: Server, seconds: float, rate: float, workers: int, seed: int) -> dict[str, Any]:
    jobs = [
        {
            "ws": server.ws,
            "http": server.http,
            "secret": server.secret,
            "prefix": f"soak{seed}w{i}u",
            "users": 2000,
            "rate": rate / workers,
            "seconds": seconds,
            "seed": seed * 100 + i,
            "idle_timeout": POLICY["idle_timeout"],
            "presence_timeout": POLICY["presence_timeout"],
            "heartbeat": POLICY["heartbeat"],
        }
        for i in range(workers)
    ]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        results = pool.map(soak_client.worker, jobs)
    ends: dict[str, Counter[str]] = {}
    errors: Counter[str] = Counter()
    samples: list[str] = []
    for r in results:
        for fate, counts in r["ends"].items():
            ends.setdefault(fate, Counter()).update(counts)
        errors.update(r["errors"])
        samples += r["samples"]
    return {
        "started": sum(r["started"] for r in results),
        "rate_achieved": sum(r["started"] / max(r["spawn_seconds"], 1e-9) for r in results),
        "max_lateness_s": max(r["max_lateness_s"] for r in results),
        "unfinished": sum(r["unfinished"] for r in results),
        "ends": {fate: dict(c) for fate, c in ends.items()},
        "errors": dict(errors),
        "error_samples": samples[:60],
    }


class Snapshots:
    """Tracemalloc snapshots of the server (see :data:`bench.fuzz_server.TRACEMALLOC_ENV`).

    ``take`` asks for one now and waits until it is written; after ``start``,
    a thread asks for one every ``every`` seconds until ``stop``. Files:
    ``snap-N.tm`` in ``directory``, compared with ``python -m bench.leaks DIRECTORY``.
    """

    def __init__(self, server: Server, directory: Path) -> None:
        self.server = server
        self.directory = directory
        self.taken = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, every: float) -> None:
        if every > 0:
            self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
            self._thread.start()

    def take(self, label: str) -> None:
        with self._lock:
            path = self.directory / f"snap-{self.taken}.tm"
            self.server.proc.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 300
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            _progress(f"tracemalloc snapshot {path.name}: {label}")
            self.taken += 1

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.take("during churn")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(310)


def soak(
    seconds: float,
    rate: float,
    warmup: float,
    window: float,
    workers: int,
    seed: int,
    *,
    tracemalloc: Path | None = None,
    snapshot_every: float = 0.0,
    server_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Warm-up, rest, churn, rest; every figure as a dict.

    With ``tracemalloc`` (a directory), the server runs under tracemalloc and
    snapshots land there: at rest after the warm-up, every ``snapshot_every``
    seconds of churn, and at rest after it. Its RSS is then no figure to keep.
    ``server_env`` overrides :data:`SERVER_ENV` (for experiments only).
    """
    window = min(window, seconds / 2)
    env = {**SERVER_ENV, **(server_env or {})}
    if tracemalloc is not None:
        tracemalloc.mkdir(parents=True, exist_ok=True)
        env[TRACEMALLOC_ENV] = str(tracemalloc.resolve())
    with serve(env) as server:
        sampler = Sampler(server)
        _progress(f"server pid {server.proc.pid}; warm-up {warmup:.0f} s at {rate:g}/s")
        warm = _churn(server, warmup, rate, workers, seed) if warmup > 0 else None
        baseline = _at_rest(server)
        _progress(f"baseline at rest: {baseline}; churn {seconds:.0f} s at {rate:g}/s")
        snaps = None
        if tracemalloc is not None:
            snaps = Snapshots(server, tracemalloc)
            snaps.take("at rest after the warm-up")
            snaps.start(snapshot_every)
        mark = server.log_size()
        t_start = sampler.now()
        churn = _churn(server, seconds, rate, workers, seed + 1)
        t_end = sampler.now()
        final = _at_rest(server)
        _progress(f"at rest after churn: {final}")
        if snaps is not None:
            snaps.stop()
            snaps.take("at rest after the churn")
        sampler.stop()
        first = sampler.between(t_start, t_start + window)
        last = sampler.between(t_end - window, t_end)
        rss_first = statistics.median(first) if first else 0
        rss_last = statistics.median(last) if last else 0
        log_churn = scan_log(server.log_path, mark)
        log_all = scan_log(server.log_path)
        alive = server.alive()
    unaccounted = sum(
        count
        for fate, reasons in churn["ends"].items()
        for reason, count in reasons.items()
        if reason != soak_client.EXPECTED[fate]
    )
    return {
        "seconds": seconds,
        "rate": rate,
        "warmup": warmup,
        "window_s": window,
        "warmup_churn": warm,
        "churn": churn,
        "baseline": baseline,
        "final": final,
        "rss_first_window_mib": rss_first / 2**20,
        "rss_last_window_mib": rss_last / 2**20,
        "rss_growth_pct": (rss_last / rss_first - 1) * 100 if rss_first else None,
        "rss_series_mib": [(round(t), round(rss / 2**20, 1)) for t, rss in sampler.samples[::10]],
        "leaked_fds": final["fds"] - baseline["fds"],
        "leaked_tasks": (final["tasks"] or 0) - (baseline["tasks"] or 0),
        "unaccounted_ends": unaccounted,
        "log_churn": log_churn.as_dict(),
        "log_whole_run": log_all.as_dict(),
        "server_alive": alive,
    }


def rows(result: dict[str, Any]) -> list[Row]:
    """The figures as bench rows, each with its target."""
    churn = result["churn"]
    zero = Target("<=", 0.0)
    log = result["log_whole_run"]

    def row(case: str, value: float | None, unit: str, target: Target | None = None) -> Row:
        return Row(
            "soak", case, "tether", float(value if value is not None else -1), unit, target=target
        )

    return [
        row("sessions started", churn["started"], "sessions"),
        row("client lag (worst)", churn["max_lateness_s"], "s", Target("<=", MAX_CLIENT_LAG_S)),
        row(
            "start rate achieved",
            churn["rate_achieved"],
            "sessions/s",
            Target(">=", result["rate"] * 0.9),
        ),
        row("RSS first window", result["rss_first_window_mib"], "MiB"),
        row("RSS last window", result["rss_last_window_mib"], "MiB"),
        row("RSS growth", result["rss_growth_pct"], "%", Target("<=", RSS_GROWTH_PCT)),
        row("leaked fds", result["leaked_fds"], "fds", zero),
        row("leaked asyncio tasks", result["leaked_tasks"], "tasks", zero),
        row("client errors", sum(churn["errors"].values()), "errors", zero),
        row("ends unaccounted", result["unaccounted_ends"], "sessions", zero),
        row("log ERROR lines", log["error_lines"], "lines", zero),
        row("log tracebacks", log["tracebacks"], "tracebacks", zero),
        row("server alive", 1.0 if result["server_alive"] else 0.0, "bool", Target(">=", 1.0)),
    ]


def run(quick: bool) -> list[Row]:
    """For ``python -m bench soak``: 30 minutes, or 60 s with ``--quick``."""
    seconds, warmup, window = (60.0, 20.0, 20.0) if quick else (1800.0, 300.0, 300.0)
    result = soak(seconds, 50.0, warmup, window, 2, 1)
    table_rows = rows(result)
    write_json(table_rows, {"seconds": seconds, "warmup": warmup, "quick": quick}, RESULTS, result)
    return table_rows


def main() -> None:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(env("SOAK_SECONDS", 1800)))
    parser.add_argument("--rate", type=float, default=float(env("SOAK_RATE", 50)))
    parser.add_argument("--warmup", type=float, default=float(env("SOAK_WARMUP", 300)))
    parser.add_argument("--window", type=float, default=float(env("SOAK_WINDOW", 300)))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"results file (default {RESULTS.name})"
    )
    parser.add_argument(
        "--tracemalloc",
        type=Path,
        metavar="DIR",
        help="run the server under tracemalloc, snapshots in DIR (compare: python -m bench.leaks)",
    )
    parser.add_argument(
        "--snapshot-every", type=float, default=0.0, metavar="S", help="also every S s of churn"
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a TETHER_* setting over the soak's own (experiments; repeatable)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    result = soak(
        args.seconds,
        args.rate,
        args.warmup,
        args.window,
        args.workers,
        args.seed,
        tracemalloc=args.tracemalloc,
        snapshot_every=args.snapshot_every,
        server_env=dict(item.split("=", 1) for item in args.server_env),
    )
    table_rows = rows(result)
    meta = {**vars(args), "wall_s": round(time.perf_counter() - started, 1)}
    path = write_json(table_rows, meta, args.out, result)
    print(table(table_rows))
    churn = result["churn"]
    print(f"\nends by fate: {json.dumps(churn['ends'])}")
    print(f"client errors: {churn['errors']}")
    print(f"at rest: baseline {result['baseline']}, final {result['final']}")
    for message in result["log_whole_run"]["top_messages"][:6]:
        print(f"log x{message['count']}: {message['message']}")
    missed = sum(r.passed is False for r in table_rows)
    print(f"\n{missed} target(s) missed; wall time {meta['wall_s']:.0f} s; results in {path}")
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
