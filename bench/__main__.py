"""Run the benches: ``python -m bench [--quick] [BENCH ...]`` (names below).

With no names, every bench runs but ``fuzz`` and ``soak`` (``make fuzz``,
``make soak``), which run only when named. ``--quick`` is a smoke run:
smaller n and fewer repeats, so its verdicts are only indicative. Progress goes to stderr;
the table to stdout and, with the raw samples, to ``bench/results/lifecycle.json``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import (
    archiving,
    expiry,
    fuzz,
    journal,
    lateness,
    memory,
    redis_claim,
    redis_cluster,
    redis_end,
    redis_memory,
    redis_touch,
    replies,
    responder,
    shard_balance,
    soak,
    touch,
    ws_idle,
)
from bench.common import Row, table, write_json

BENCHES: dict[str, Callable[[bool], list[Row]]] = {
    "touch": touch.run,
    "expiry": expiry.run,
    "lateness": lateness.run,
    "memory": memory.run,
    "journal": journal.run,
    "archiving": archiving.run,
    "ws_idle": ws_idle.run,
    "replies": replies.run,
    "redis_touch": redis_touch.run,
    "redis_claim": redis_claim.run,
    "redis_end": redis_end.run,
    "redis_memory": redis_memory.run,
    "responder": responder.run,
}

ON_DEMAND: dict[str, Callable[[bool], list[Row]]] = {
    "fuzz": fuzz.run,
    "soak": soak.run,
    "shard_balance": shard_balance.run,
    "redis_cluster": redis_cluster.run,
}
"""Long runs (``make fuzz``, ``make soak``, each with a result file of its own): only when named."""


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    every = ", ".join([*BENCHES, *ON_DEMAND])
    parser.add_argument("benches", nargs="*", metavar="BENCH", help=every)
    parser.add_argument("--quick", action="store_true", help="smaller n, fewer repeats")
    parser.add_argument("--out", type=Path, default=None, help="the results file to write")
    args = parser.parse_args()
    names = args.benches or list(BENCHES)
    runners = {**BENCHES, **ON_DEMAND}
    unknown = sorted(set(names) - set(runners))
    if unknown:
        parser.error(f"unknown bench(es): {', '.join(unknown)} (choose from {', '.join(runners)})")

    started = time.perf_counter()
    rows: list[Row] = []
    for name in names:
        print(f"bench: {name}...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        rows += runners[name](args.quick)
        print(f"bench: {name} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    wall = time.perf_counter() - started

    meta = {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "benches": names,
        "quick": args.quick,
        "wall_s": round(wall, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    kind = "QUICK smoke run (small n: verdicts indicative only)" if args.quick else "full run"
    print(f"tether benchmarks, {kind}; ratio > 1 beats the baseline (costs and rates alike)")
    print(table(rows))
    path = write_json(rows, meta) if args.out is None else write_json(rows, meta, args.out)
    missed = sum(row.passed is False for row in rows)
    print(f"\n{missed} target(s) missed; wall time {wall:.0f} s; results in {path}")


if __name__ == "__main__":
    main()
