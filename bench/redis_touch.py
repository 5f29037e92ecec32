"""Redis touches: heartbeats and activity per second through the manager, from one process.

The Redis store's hottest write. Every heartbeat and every user message of
every session makes one, from many requests and connections at once. This
bench measures what one tether process sustains: ``await
manager.heartbeat(sid)`` (and ``activity``) on a ``SessionManager`` over a
``RedisStore``, from ``CONCURRENCY`` coroutines each walking its share of the
live sessions in a shuffled order. The store coalesces the touches issued in
one event-loop iteration into one ``touch.lua`` call (``store/redis/batch.py``),
so the figure is touches per second, not round trips.

Baseline, the raw ceiling: redis-py itself, pipelined, as an application that
writes its own session hashes would do it: per session ``HSET <hash>
last_seen <now>`` plus ``ZADD <deadlines> <now> <id>`` (a timestamp and an
index entry), 100 sessions per pipeline, one pipeline after another. Same
Redis (a fresh ``redis-server``, persistence off), same sessions, contenders
alternating within each repeat; figures are medians over the repeats.

Sessions use long timeouts so none comes due mid-measurement (a touch then
never falls back to Python's decision). Targets: >= 30k touches/s and >= 0.7x
the raw ceiling.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Awaitable, Callable
from time import perf_counter

import redis.asyncio

from bench.common import FAR, Row, Target, gc_paused, rows_vs
from bench.redis_server import load_sessions, redis_server
from tether.runtime.manager import SessionManager
from tether.store.redis import RedisStore
from tether.types import SessionId

CONCURRENCY = 1000
PIPELINE = 100
RATE = Target(">=", 30_000.0)
CEILING = Target(">=", 0.7, on="ratio")
BASELINE = "redis-py pipeline (ceiling)"


async def _measure(url: str, n: int, repeats: int) -> dict[str, list[float]]:
    store = RedisStore.from_url(url)
    manager = SessionManager(store, policy=FAR, max_sessions_per_user=None)
    await manager.open()
    raw = redis.asyncio.Redis.from_url(url)
    try:
        sids = [SessionId(s) for s in await load_sessions(store, FAR, time.time(), n)]
        random.Random(0).shuffle(sids)
        shares = [sids[i::CONCURRENCY] for i in range(CONCURRENCY)]
        hashes = [store.prefix + "s:" + sid for sid in sids]
        deadlines = "bench:raw-due"

        async def walk(touch: Callable[[SessionId], Awaitable[None]]) -> None:
            async def one(share: list[SessionId]) -> None:
                for sid in share:
                    await touch(sid)

            await asyncio.gather(*(one(share) for share in shares))

        async def heartbeat() -> None:
            await walk(manager.heartbeat)

        async def activity() -> None:
            await walk(manager.activity)

        async def ceiling() -> None:
            for start in range(0, n, PIPELINE):
                now = time.time()
                async with raw.pipeline(transaction=False) as pipe:
                    for i in range(start, min(n, start + PIPELINE)):
                        pipe.hset(hashes[i], "last_seen", repr(now))
                        pipe.zadd(deadlines, {sids[i]: now})
                    await pipe.execute()

        contenders: dict[str, Callable[[], Awaitable[None]]] = {
            "tether.heartbeat": heartbeat,
            "tether.activity": activity,
            BASELINE: ceiling,
        }
        for run in contenders.values():  # warm-up: scripts loaded, pools filled
            await run()
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        batches = items = 0
        for _ in range(repeats):
            for name, run in contenders.items():
                b0, i0 = store.touches.batches, store.touches.items
                with gc_paused():
                    t0 = perf_counter()
                    await run()
                    samples[name].append(n / (perf_counter() - t0))
                batches += store.touches.batches - b0
                items += store.touches.items - i0
        print(
            f"  n={n:,}: {items / max(1, batches):.0f} touches per touch.lua call on average",
            file=sys.stderr,
        )
        return samples
    finally:
        await manager.aclose()  # on a shared store: ends nothing, leaves the deployment
        await raw.aclose()


def run(quick: bool) -> list[Row]:
    n, repeats = (20_000, 3) if quick else (100_000, 5)
    with redis_server() as server:
        samples = asyncio.run(_measure(server.url, n, repeats))
    case = f"n={n:,}"
    rows = rows_vs(
        "redis_touch",
        case,
        "touches/s",
        samples,
        BASELINE,
        {"tether.heartbeat": RATE, "tether.activity": RATE},
        higher_is_better=True,
    )
    # The second target, on the ratio to the ceiling, as rows of their own.
    rows += [
        r
        for r in rows_vs(
            "redis_touch",
            case + " vs ceiling",
            "touches/s",
            samples,
            BASELINE,
            {"tether.heartbeat": CEILING, "tether.activity": CEILING},
            higher_is_better=True,
        )
        if r.contender != BASELINE
    ]
    return rows
