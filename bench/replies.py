"""Streamed replies: 1,000 sessions each getting a reply at 50 pieces/s, tether vs python-socketio.

``python -m bench replies`` (part of ``make bench``), or ``python -m
bench.replies [--quick] [--sessions N] [--window S] [--repeats R]``.

Setup, per measurement: a fresh server in its own process (``python -m
bench.replies_server``, the same uvicorn options for both, those of
``bench/ws_idle.py``) on a free loopback port; clients in worker processes
(``python -m bench.replies_client``, as many as ``ws_idle`` uses: one per CPU
but one, two to four), each with its share of the sessions, one WebSocket per
session.

1. Every client connects and gets a session of its own (tether: ``hello``,
   ``start``; socket.io: the namespace joined).
2. The bench picks ``T0`` (``LEAD`` seconds ahead) and each client asks for its
   reply: ``WARM + window + TAIL`` seconds of pieces at ``RATE``/s, session
   ``i`` of ``n`` starting at ``T0 + i / n / RATE`` so that the offered load is
   smooth: ``n * RATE`` pieces/s (50,000 at full size). Each piece says when it
   was due (``"<k>@<due µs>|"``), the schedule both servers follow (see
   ``bench/replies_server.py``; overdue pieces go at once).
3. The window is ``[T0 + WARM, T0 + WARM + window)`` (same for both contenders,
   10 s full, 5 s quick), on the machine clock that servers and clients share:

   * delivered: pieces *received* inside the window, per second, and as a share
     of the pieces offered in it (a server that falls behind delivers less);
   * added latency p50/p99: receive time minus due time of every piece *due*
     inside the window; a piece not received by the end counts as at least the time
     from its due time to the end of the run (so it can only raise p99);
   * server CPU (user + sys) over the window, per wall second (and the client
     workers', to show when they, not the server, were short of CPU), and
     the time each spent runnable but waiting for a CPU (``/proc`` schedstat:
     on a loaded machine, the part of the latency that is the scheduler's);
   * undelivered at end: pieces of the whole replies still missing ``grace`` s
     after the last one was due (plus sessions that failed to open, counted in
     pieces): a server far behind has not lost them, but has not sent them.

4. tether only: each session's transcript over REST must hold exactly one
   assistant message whose content is every piece in order, with a
   ``reply_id`` and not ``partial`` (sessions that fail this are counted).

Contenders, interleaved per repeat (tether, then python-socketio):

* ``tether``: the real service with tether's defaults (memory store,
  ``fsync=always`` journals in a temp dir; long idle, presence and max
  timeouts as in ``ws_idle``), an ``on_message`` hook streaming with
  ``manager.reply()`` / ``reply.delta()`` (pieces of one loop turn leave as one
  frame, which clients split back).
* ``python-socketio``: ``AsyncServer(async_mode="asgi")``, one
  ``emit("delta", piece, to=sid)`` per piece.

Both read by the same ``websockets`` client code (see
``bench/replies_client.py``), so what differs is the server.

Targets (tether): every offered piece delivered (>= 99 % of the offered rate
inside the window: pieces in flight at its edges), p99 added latency <= 20 ms,
0 pieces undelivered at the end, 0 transcripts without exactly one complete reply,
and, where python-socketio falls behind (< 99 % delivered), >= 1.5x its
delivered rate. Full run: 3 repeats, medians (the worst repeat for counts);
about 4 minutes on two CPUs. On a shared two-CPU machine the server and the
client workers compete for the CPUs with each other and other load: the
server CPU figure is the steadier one.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from bench.common import Row, Target, loopback_listener, rows_vs, table, write_json
from bench.ws_idle import WORKERS, Child, _env
from bench.ws_idle_server import raise_nofile

RESULTS = Path(__file__).parent / "results" / "replies.json"
CONTENDERS = {"tether": "tether", "python-socketio": "socketio"}
BASELINE = "python-socketio"
RATE = 50.0
INFLIGHT = 200
CONNECT_TIMEOUT = 60.0
DELIVERED_SHARE = 99.0
"""% of the offered rate a server must deliver inside the window to count as keeping up."""


@dataclass(frozen=True)
class Timing:
    """Seconds: request to first piece, warm-up, window, pieces after it, wait after the last."""

    lead: float = 3.0
    warm: float = 2.0
    window: float = 10.0
    tail: float = 1.0
    grace: float = 3.0

    @property
    def pieces(self) -> int:
        return int((self.warm + self.window + self.tail) * RATE)


@dataclass
class Sample:
    offered: float  # pieces/s offered inside the window
    delivered: float  # pieces/s received inside the window
    share: float  # delivered / offered, %
    p50: float  # added latency, ms
    p99: float
    cpu: float  # server CPU, % of one CPU over the window
    client_cpu: float  # the client workers' CPU, % of one CPU over the window, in all
    wait: float  # ms per s the server was runnable but waiting for a CPU
    client_wait: float  # the same for the client workers, in all
    missing: int  # pieces undelivered at the end (whole replies)
    disorder: int
    errors: int  # failed opens, error frames, dropped connections
    bad_transcripts: int | None  # tether: sessions without exactly one complete reply
    frames: int  # frames received in all (tether merges pieces)


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _waited(pids: list[int]) -> float:
    """Seconds the processes' threads spent runnable but waiting for a CPU (Linux schedstat).

    On a loaded machine this says how much of a latency is the scheduler's:
    a server that waits 500 ms a second for a CPU cannot answer in 20 ms.
    0 where ``/proc/PID/task/*/schedstat`` is missing.
    """
    total = 0
    for pid in pids:
        for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            try:
                total += int(stat.read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue  # a thread that ended meanwhile
    return total / 1e9


def _client_cpu(children: list[Child]) -> float:
    """The client workers' CPU seconds so far, in all."""
    return sum(_cpu(psutil.Process(child.proc.pid)) for child in children)


def _sleep_until(when: float) -> None:
    delay = when - time.time()
    if delay > 0:
        time.sleep(delay)


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _clients(
    contender: str, url: str, secret: str, n: int, workers: int, env: dict[str, str], pieces: int
) -> list[Child]:
    workers = max(1, min(workers, n))
    children, first = [], 0
    for w in range(workers):
        count = n // workers + (w < n % workers)
        args = {
            "contender": contender,
            "url": url,
            "secret": secret,
            "prefix": f"r{w}x",
            "count": count,
            "first": first,
            "total": n,
            "rate": RATE,
            "pieces": pieces,
            "inflight": max(1, INFLIGHT // workers),
            "timeout": CONNECT_TIMEOUT,
        }
        first += count
        argv = [sys.executable, "-m", "bench.replies_client", json.dumps(args)]
        children.append(Child(argv, env))
    return children  # each says ``ready`` once it has started


def measure(contender: str, n: int, timing: Timing, workers: int = WORKERS) -> Sample:
    """One contender, ``n`` sessions, one run (see the module docstring)."""
    secret = secrets.token_hex(32)
    children: list[Child] = []
    with tempfile.TemporaryDirectory(
        prefix="tether-bench-", dir=os.environ.get("TETHER_BENCH_DIR")
    ) as data_dir:
        env = _env(contender, secret, data_dir)
        listener = loopback_listener()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        fd = listener.fileno()
        log = open(Path(data_dir) / "server.log", "w+")  # noqa: SIM115
        argv = [sys.executable, "-m", "bench.replies_server", contender, str(fd)]
        server = Child(argv, env, pass_fds=[fd], stderr=log)
        listener.close()
        try:
            # The clients start while the server does: both take seconds to import.
            children = _clients(contender, url, secret, n, workers, env, timing.pieces)
            server.expect("ready", 60)
            for child in children:
                child.expect("ready", 120)
            proc = psutil.Process(server.proc.pid)
            for child in children:
                child.send("go")
            held = [child.expect("held", CONNECT_TIMEOUT * n / INFLIGHT + 60) for child in children]
            opened = sum(h["ok"] for h in held)

            t0 = time.time() + timing.lead
            w0, w1 = t0 + timing.warm, t0 + timing.warm + timing.window
            for child in children:
                child.send(f"stream {t0:.6f} {w0:.6f} {w1:.6f}")
            for child in children:
                child.expect("streaming", timing.lead + 60)
            _sleep_until(w0)
            pids = [child.proc.pid for child in children]
            cpu0, c0, client0 = _cpu(proc), time.time(), _client_cpu(children)
            wait0, client_wait0 = _waited([proc.pid]), _waited(pids)
            _sleep_until(w1)
            elapsed = time.time() - c0
            cpu = (_cpu(proc) - cpu0) / elapsed * 100
            client_cpu = (_client_cpu(children) - client0) / elapsed * 100
            wait = (_waited([proc.pid]) - wait0) / elapsed * 1000
            client_wait = (_waited(pids) - client_wait0) / elapsed * 1000
            end = t0 + timing.pieces / RATE + timing.grace  # the last session's last piece, + grace
            _sleep_until(end)
            for child in children:
                child.send("report")
            reports = [child.expect("report", 120) for child in children]
            checked = None
            if contender == "tether":
                for child in children:
                    child.send("check 15")
                checked = [child.expect("checked", 300) for child in children]
            for child in children:
                child.send("close")
            for child in children:
                child.expect("closed", 60)
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

    offered = n * RATE
    in_window = sum(r["in_window"] for r in reports)
    latencies = [x for r in reports for x in r["latencies"]]
    unreceived = sum(r["unreceived_in_window"] for r in reports)
    latencies += [(end - w1) * 1000] * unreceived  # a lower bound for each, see the docstring
    latencies.sort()
    undelivered = sum(r["missing"] for r in reports) + (n - opened) * timing.pieces
    errors = sum(sum(h["errors"].values()) for h in held)
    errors += sum(sum(r["errors"].values()) + r["dropped"] for r in reports)
    sample = Sample(
        offered=offered,
        delivered=in_window / timing.window,
        share=in_window / timing.window / offered * 100,
        p50=_percentile(latencies, 0.50),
        p99=_percentile(latencies, 0.99),
        cpu=cpu,
        client_cpu=client_cpu,
        wait=wait,
        client_wait=client_wait,
        missing=undelivered,
        disorder=sum(r["disorder"] for r in reports),
        errors=errors,
        bad_transcripts=None if checked is None else n - sum(c["ok"] for c in checked),
        frames=sum(r["frames"] for r in reports),
    )
    problems: dict[str, int] = {}
    for c in checked or []:
        for why, count in c["problems"].items():
            problems[why] = problems.get(why, 0) + count
    print(
        f"  {contender:8} n={n:,}: {sample.delivered:,.0f} of {offered:,.0f} pieces/s delivered "
        f"({sample.share:.1f} %), added latency p50 {sample.p50:.1f} ms p99 {sample.p99:.1f} ms, "
        f"server CPU {cpu:.0f} %, clients' {client_cpu:.0f} %, waits for a CPU: server "
        f"{wait:.0f} ms/s, clients' {client_wait:.0f} ms/s, {sample.frames:,} frames for "
        f"{sum(r['received'] for r in reports):,} pieces, undelivered at end {undelivered:,}, "
        f"out of order {sample.disorder}, errors {errors}"
        + (f", transcripts bad {sample.bad_transcripts} {problems or ''}" if checked else ""),
        file=sys.stderr,
        flush=True,
    )
    if (errors or undelivered) and tail.strip():
        lines = tail.strip().splitlines()[-3:]
        print("  server log ends:\n    " + "\n    ".join(lines), file=sys.stderr, flush=True)
    return sample


def compare(
    n: int, timing: Timing, repeats: int, workers: int = WORKERS
) -> dict[str, list[Sample]]:
    """Both contenders, interleaved, ``repeats`` times each."""
    limit = raise_nofile()
    if limit < n * 2 + 200:
        print(
            f"  replies: the open-files limit is {limit}, low for {n:,} sessions", file=sys.stderr
        )
    results: dict[str, list[Sample]] = {name: [] for name in CONTENDERS}
    for _ in range(repeats):
        for name, contender in CONTENDERS.items():
            results[name].append(measure(contender, n, timing, workers))
    return results


def rows(n: int, results: dict[str, list[Sample]]) -> list[Row]:
    """The table rows of one :func:`compare`."""
    case = f"{n:,} sessions x {RATE:g}/s"

    def samples(name: str) -> dict[str, list[float]]:
        return {c: [float(getattr(s, name)) for s in results[c]] for c in CONTENDERS}

    behind = statistics.median(samples("share")[BASELINE]) < DELIVERED_SHARE
    out = rows_vs(
        "replies",
        case,
        "pieces/s delivered",
        samples("delivered"),
        BASELINE,
        {"tether": Target(">=", 1.5, on="ratio")} if behind else None,
        higher_is_better=True,
    )
    out += rows_vs(
        "replies",
        case,
        "% of offered",
        samples("share"),
        BASELINE,
        {"tether": Target(">=", DELIVERED_SHARE)},
        higher_is_better=True,
    )
    out += rows_vs("replies", case, "ms added p50", samples("p50"), BASELINE)
    out += rows_vs(
        "replies", case, "ms added p99", samples("p99"), BASELINE, {"tether": Target("<=", 20.0)}
    )
    out += rows_vs("replies", case, "server CPU %", samples("cpu"), BASELINE)
    out += rows_vs("replies", case, "client CPU %", samples("client_cpu"), BASELINE)
    out += rows_vs("replies", case, "server CPU wait ms/s", samples("wait"), BASELINE)
    out += rows_vs("replies", case, "client CPU wait ms/s", samples("client_wait"), BASELINE)
    for name, unit in (("missing", "undelivered at end"), ("errors", "errors")):
        counts = rows_vs(
            "replies", case, unit, samples(name), BASELINE, {"tether": Target("<=", 0)}
        )
        for row in counts:
            row.value = max(row.samples)  # the worst repeat, not the median
        out += counts
    bad = [float(s.bad_transcripts or 0) for s in results["tether"]]
    out.append(
        Row("replies", case, "tether", max(bad), "bad transcripts", bad, target=Target("<=", 0))
    )
    return out


def run(
    quick: bool, repeats: int | None = None, n: int | None = None, window: float | None = None
) -> list[Row]:
    """For ``python -m bench replies``: 1,000 sessions and a 10 s window, or 200 and 5 s quick."""
    size = n if n is not None else 200 if quick else 1000
    timing = Timing(window=window if window is not None else 5.0 if quick else 10.0)
    if quick:
        timing = Timing(lead=2.0, warm=1.0, window=timing.window)
    times = repeats if repeats is not None else 1 if quick else 3
    started = time.perf_counter()
    results = compare(size, timing, times)
    table_rows = rows(size, results)
    meta = {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "sessions": size,
        "rate": RATE,
        "repeats": times,
        "timing": asdict(timing),
        "workers": WORKERS,
        "wall_s": round(time.perf_counter() - started, 1),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    detail = {name: [asdict(s) for s in samples] for name, samples in results.items()}
    write_json(table_rows, meta, RESULTS, detail)
    return table_rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replies", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200 sessions, a 5 s window, once")
    parser.add_argument("--sessions", type=int, help="sessions (default 1000, quick 200)")
    parser.add_argument("--window", type=float, help="seconds measured (default 10, quick 5)")
    parser.add_argument("--repeats", type=int, help="repeats (default 3, quick 1)")
    args = parser.parse_args()
    table_rows = run(args.quick, args.repeats, args.sessions, args.window)
    print(table(table_rows))
    missed = sum(row.passed is False for row in table_rows)
    print(f"\n{missed} target(s) missed; results in {RESULTS}")


if __name__ == "__main__":
    main()
