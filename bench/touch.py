"""Touch: ns per activity/heartbeat through the public async API, at 100k and 1M sessions.

A touch is the hottest path there is: every heartbeat and every user message
makes one. DESIGN.md promises it is O(1) and records a timestamp and nothing
else (the deadline heap is never touched). This bench measures what an
application actually pays: ``await manager.activity(sid)`` (and
``heartbeat``) in one coroutine looping over every live session, in a
shuffled order so the 1M case is not flattered by memory locality.

Contenders, over the same ids in the same order:

* ``cachetools.TTLCache`` with a touch as a re-set, ``cache[sid] = user``;
* the seeds' naive design: ``sessions[sid].last_accessed = time.time()``.

Sessions use long timeouts so no deadline comes due mid-measurement. Target:
tether touches at least twice as fast as TTLCache at 1M sessions.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from time import perf_counter_ns

from cachetools import TTLCache

from bench.common import FAR, NaiveSession, Row, Target, gc_paused, rows_vs
from tether.runtime.manager import SessionManager
from tether.store.memory import MemoryStore

TARGET = Target(">=", 2.0, on="ratio")


async def _measure(n: int, repeats: int, *, last: bool) -> list[Row]:
    manager = SessionManager(MemoryStore(), policy=FAR, max_sessions_per_user=None)
    # Opened, not entered: leaving ``async with`` would end (and run the end
    # pipeline of) every session, minutes of work at 1M that nobody measures.
    await manager.open()
    sids = [(await manager.start(f"u{i}")).id for i in range(n)]
    # Every contender is built in creation order and touched in one shuffled order.
    cache: TTLCache[str, str] = TTLCache(maxsize=n, ttl=600)
    sessions: dict[str, NaiveSession] = {}
    for i, sid in enumerate(sids):
        cache[sid] = sid
        sessions[sid] = NaiveSession(f"u{i}", time.time())
    random.Random(0).shuffle(sids)

    async def activity() -> None:
        for sid in sids:
            await manager.activity(sid)

    async def heartbeat() -> None:
        for sid in sids:
            await manager.heartbeat(sid)

    async def ttlcache() -> None:
        for sid in sids:
            cache[sid] = sid

    async def naive() -> None:
        for sid in sids:
            sessions[sid].last_accessed = time.time()

    contenders: dict[str, Callable[[], Awaitable[None]]] = {
        "tether.activity": activity,
        "tether.heartbeat": heartbeat,
        "TTLCache": ttlcache,
        "naive dict": naive,
    }
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            with gc_paused():
                t0 = perf_counter_ns()
                await run()
                samples[name].append((perf_counter_ns() - t0) / n)
    await manager.store.aclose()
    targets = {"tether.activity": TARGET, "tether.heartbeat": TARGET} if last else {}
    return rows_vs("touch", f"n={n:,}", "ns/touch", samples, "TTLCache", targets)


# n -> repeats: a pass over 100k sessions is short, so noise needs more of them.
SIZES = {100_000: 15, 1_000_000: 7}
QUICK_SIZES = {10_000: 9, 100_000: 5}


def run(quick: bool) -> list[Row]:
    sizes = QUICK_SIZES if quick else SIZES
    largest = max(sizes)
    rows: list[Row] = []
    for n, repeats in sizes.items():
        rows += asyncio.run(_measure(n, repeats, last=n == largest))
    return rows
