"""CPU per Redis touch, client and server apart: ``python -m bench.touch_cpu NAME``.

Wall-clock touch rates swing with whatever else the machine runs; CPU time
per touch does not, much. This walks 20,000 sessions with 1,000 coroutines
(as ``bench.redis_touch`` does, heartbeats only) five times and prints the
medians of: this process's CPU per touch (``time.process_time``) and
redis-server's (``used_cpu_user + used_cpu_sys`` from ``INFO cpu``). Run it
from two trees in turn (``PYTHONPATH=<tree>/src:<tree>``) to compare them.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time

import redis.asyncio

from bench.common import FAR
from bench.redis_server import load_sessions, redis_server
from tether.runtime.manager import SessionManager
from tether.store.redis import RedisStore
from tether.types import SessionId

SESSIONS = 20_000
WALKERS = 1_000
REPEATS = 5


async def _redis_cpu(url: str) -> float:
    client = redis.asyncio.Redis.from_url(url)
    try:
        info = await client.info("cpu")
    finally:
        await client.aclose()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _measure(url: str) -> tuple[float, float]:
    store = RedisStore.from_url(url)
    manager = SessionManager(store, policy=FAR, max_sessions_per_user=None)
    await manager.open()
    try:
        sids = [SessionId(s) for s in await load_sessions(store, FAR, time.time(), SESSIONS)]
        random.Random(0).shuffle(sids)
        shares = [sids[i::WALKERS] for i in range(WALKERS)]

        async def walk() -> None:
            async def one(share: list[SessionId]) -> None:
                for sid in share:
                    await manager.heartbeat(sid)

            await asyncio.gather(*(one(share) for share in shares))

        await walk()  # warm-up: every session's first heartbeat takes the slow path
        client, server = [], []
        for _ in range(REPEATS):
            r0, c0 = await _redis_cpu(url), time.process_time()
            await walk()
            client.append((time.process_time() - c0) / SESSIONS * 1e6)
            server.append((await _redis_cpu(url) - r0) / SESSIONS * 1e6)
        return statistics.median(client), statistics.median(server)
    finally:
        await manager.aclose()


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "tree"
    with redis_server() as server:
        client, redis_side = asyncio.run(_measure(server.url))
    print(f"{name}: client {client:.1f} us/touch, redis-server {redis_side:.1f} us/touch")


if __name__ == "__main__":
    main()
