"""Memory: resident bytes per live session at 1M sessions.

A memory-mode node must hold a million live sessions in well under a
gigabyte, so each one may cost at most 600 bytes, everything included: the
record, its ids, the store's indexes and its heap entry. Each measurement runs
in a fresh interpreter (``python -m bench.memory CONTENDER N``) that reads its
RSS from ``/proc/self/statm`` (after ``gc.collect()``) before and after creating
N sessions for N distinct users; the figure is the delta / N.

tether starts its sessions with ``manager.start``. For context, the same ids
and users in a ``cachetools.TTLCache`` (id -> user) and in the seeds' dict of
session objects. Target: tether <= 600 bytes per session.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from cachetools import TTLCache

from bench.common import FAR, NaiveSession, Row, Target, rows_vs
from tether.runtime.manager import SessionManager
from tether.store.memory import MemoryStore

TARGET = Target("<=", 600.0)
CONTENDERS = ("tether", "TTLCache", "naive dict")


def _rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _tether(n: int) -> float:
    manager = SessionManager(MemoryStore(), policy=FAR, max_sessions_per_user=None)
    await manager.open()  # not entered: see touch.py
    before = _rss()
    for i in range(n):
        await manager.start(f"u{i}")
    after = _rss()
    await manager.store.aclose()
    return (after - before) / n


def _ttlcache(n: int) -> float:
    cache: TTLCache[str, str] = TTLCache(maxsize=n, ttl=600)
    before = _rss()
    for i in range(n):
        cache[secrets.token_hex(16)] = f"u{i}"
    return (_rss() - before) / n


def _naive(n: int) -> float:
    sessions: dict[str, NaiveSession] = {}
    before = _rss()
    for i in range(n):
        sessions[secrets.token_hex(16)] = NaiveSession(f"u{i}", time.time())
    return (_rss() - before) / n


def _child(contender: str, n: int) -> float:
    """Run one measurement in a fresh interpreter and return its bytes per session."""
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-m", "bench.memory", contender, str(n)],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(json.loads(out.stdout)["bytes_per_session"])


def run(quick: bool) -> list[Row]:
    n = 100_000 if quick else 1_000_000
    samples: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for _ in range(5):
        for name in CONTENDERS:
            samples[name].append(_child(name, n))
    return rows_vs("memory", f"n={n:,}", "B/session", samples, "TTLCache", {"tether": TARGET})


def main(contender: str, n: int) -> None:
    if contender == "tether":
        per = asyncio.run(_tether(n))
    else:
        per = {"TTLCache": _ttlcache, "naive dict": _naive}[contender](n)
    print(json.dumps({"contender": contender, "n": n, "bytes_per_session": per}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
