"""What uvloop saves tether: the ``replies`` load on asyncio's own loop and on uvloop.

``python -m bench.replies_loops [--sessions N] [--repeats R]``: tether only,
``N`` sessions (default 1,000) each streamed a reply at 50 pieces/s, measured
as ``bench/replies.py`` measures (its :func:`~bench.replies.measure`, a 6 s
window), once with uvicorn's ``loop="asyncio"`` and once with ``auto``
(uvloop, what ``tether serve`` runs on), alternating, ``R`` times each
(default 2). The client workers run on uvloop both times.

At 1,000 sessions the server is short of CPU on either loop, so what differs
is how many frames it gets out (fewer pieces merged per frame) and the
latency. Below that, server CPU is no measure of cost on asyncio's loop: at
300 sessions it reads 100 % while every piece still leaves within a
millisecond (its loop wakes for each of 15,000 timers a second), against
about 60 % on uvloop. Results in ``bench/results/replies_loops.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.common import Row, rows_vs, table, write_json
from bench.replies import RATE, Sample, Timing, measure

RESULTS = Path(__file__).parent / "results" / "replies_loops.json"
LOOPS = {"asyncio": "asyncio", "uvloop": "auto"}


def run(sessions: int, repeats: int) -> list[Row]:
    samples: dict[str, list[Sample]] = {name: [] for name in LOOPS}
    timing = Timing(window=6.0)
    for repeat in range(repeats):
        order = list(LOOPS) if repeat % 2 == 0 else list(reversed(LOOPS))
        for name in order:
            os.environ["BENCH_LOOP"] = LOOPS[name]
            one = measure("tether", sessions, timing)
            samples[name].append(one)
            print(
                f"  {name:7} server CPU {one.cpu:.1f} %, p50 {one.p50:.2f} ms, "
                f"p99 {one.p99:.2f} ms, {one.share:.1f} % delivered, {one.frames:,} frames",
                file=sys.stderr,
                flush=True,
            )
    os.environ.pop("BENCH_LOOP", None)
    case = f"{sessions:,} sessions x {RATE:g}/s"
    per_piece = {
        name: [s.cpu / 100 / (sessions * RATE) * 1e6 for s in got] for name, got in samples.items()
    }
    return [
        *rows_vs("replies_loops", case, "server CPU %", _of(samples, "cpu"), "asyncio"),
        *rows_vs("replies_loops", case, "server µs per piece", per_piece, "asyncio"),
        *rows_vs("replies_loops", case, "client CPU %", _of(samples, "client_cpu"), "asyncio"),
        *rows_vs("replies_loops", case, "ms added p99", _of(samples, "p99"), "asyncio"),
    ]


def _of(samples: dict[str, list[Sample]], name: str) -> dict[str, list[float]]:
    return {loop: [getattr(s, name) for s in got] for loop, got in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rows = run(args.sessions, args.repeats)
    print(table(rows))
    meta = {"sessions": args.sessions, "repeats": args.repeats, "rate": RATE}
    write_json(rows, meta, RESULTS)


if __name__ == "__main__":
    main()
