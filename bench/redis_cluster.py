"""Redis Cluster against one Redis, side by side: touches/s and the claim of 10k due sessions.

The same tether code on the same machine, two topologies: one
``redis-server`` (the store's one-shard layout) and a local 3-master Redis
Cluster (``redis+cluster://``, 64 shards; ``redis-cli --cluster create``).

* touches/s: ``manager.heartbeat`` over every live session from
  ``CONCURRENCY`` coroutines (as ``redis_touch``); on the cluster a batch of
  touches is one ``touch.lua`` call per shard, pipelined per master.
* claim: 10k sessions due out of ``N`` live (1 M; 100k with ``--quick``),
  all handed out by ``claim_due`` (on the cluster, in as many passes as the
  shares of the limit need: usually two), timed to the last claim.

The machine has 2 cores shared with the Redis processes (one for one Redis,
three for the cluster), so the cluster cannot win here; the target is the
cluster within 0.7x of one Redis.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Callable, Coroutine
from time import perf_counter
from typing import Any

from bench.common import FAR, Row, Target, gc_paused, rows_vs
from bench.redis_claim import NEAR
from bench.redis_server import load_sessions, load_sessions_sharded, redis_cluster, redis_server
from tether.runtime.manager import SessionManager
from tether.store.redis import RedisStore
from tether.types import SessionId

CONCURRENCY = 1000
DUE = 10_000
ONE = "one Redis"
CLUSTER = "Redis Cluster, 3 masters"
WITHIN = Target(">=", 0.7, on="ratio")

Loader = Callable[..., Coroutine[Any, Any, list[str]]]


def _loader(store: RedisStore) -> Loader:
    return load_sessions_sharded if store.shards > 1 else load_sessions


async def _touches(url: str, n: int, repeats: int) -> list[float]:
    store = RedisStore.from_url(url)
    manager = SessionManager(store, policy=FAR, max_sessions_per_user=None)
    await manager.open()
    try:
        sids = [SessionId(s) for s in await _loader(store)(store, FAR, time.time(), n)]
        random.Random(0).shuffle(sids)
        shares = [sids[i::CONCURRENCY] for i in range(CONCURRENCY)]

        async def one(share: list[SessionId]) -> None:
            for sid in share:
                await manager.heartbeat(sid)

        async def walk() -> None:
            await asyncio.gather(*(one(share) for share in shares))

        await walk()  # warm-up
        out = []
        for _ in range(repeats):
            with gc_paused():
                t0 = perf_counter()
                await walk()
                out.append(n / (perf_counter() - t0))
        return out
    finally:
        await manager.aclose()
        await store.aclose()


async def _claims(url: str, n: int, repeats: int) -> tuple[list[float], list[int]]:
    store = RedisStore.from_url(url)
    load = _loader(store)
    try:
        t0 = perf_counter()
        await load(store, FAR, time.time(), n - DUE)
        print(
            f"  {url}: loaded {n - DUE:,} sessions in {perf_counter() - t0:.0f} s", file=sys.stderr
        )
        times, passes = [], []
        for i in range(repeats + 1):
            await load(store, NEAR, time.time() - 10.0, DUE)  # due 9 s ago
            now = time.time()
            got, rounds = 0, 0
            with gc_paused():
                t0 = perf_counter()
                while got < DUE and rounds < 20:
                    got += len(await store.claim_due(now, DUE))
                    rounds += 1
                elapsed = (perf_counter() - t0) * 1000
            if got != DUE:
                raise RuntimeError(f"claimed {got}, not {DUE}")
            if i:  # the first repeat warms up: scripts loaded
                times.append(elapsed)
                passes.append(rounds)
        return times, passes
    finally:
        await store.aclose()


def run(quick: bool) -> list[Row]:
    n_touch, n_claim, repeats = (20_000, 100_000, 3) if quick else (100_000, 1_000_000, 3)
    touches: dict[str, list[float]] = {}
    claims: dict[str, list[float]] = {}
    with redis_server() as server:
        touches[ONE] = asyncio.run(_touches(server.url, n_touch, repeats))
    with redis_cluster() as cluster:
        touches[CLUSTER] = asyncio.run(_touches(cluster.url, n_touch, repeats))
    with redis_server() as server:
        claims[ONE], one_passes = asyncio.run(_claims(server.url, n_claim, repeats))
    with redis_cluster() as cluster:
        claims[CLUSTER], cluster_passes = asyncio.run(_claims(cluster.url, n_claim, repeats))
    print(f"  claim passes: one Redis {one_passes}, cluster {cluster_passes}", file=sys.stderr)
    rows = rows_vs(
        "redis_cluster",
        f"touches, n={n_touch:,}",
        "touches/s",
        touches,
        ONE,
        {CLUSTER: WITHIN},
        higher_is_better=True,
    )
    rows += rows_vs(
        "redis_cluster",
        f"claim {DUE:,} due of {n_claim:,}",
        "ms",
        claims,
        ONE,
        {CLUSTER: WITHIN},
    )
    return rows
