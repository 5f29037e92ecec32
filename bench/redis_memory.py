"""Redis memory: bytes of Redis memory per live session.

What a deployment's Redis must hold per live session: the session's hash,
its entries in the deadline index, the live index (chunked: see
``prelude.lua``) and its user's index.
Measured as the growth of ``INFO memory`` ``used_memory`` over N sessions
(100k; 20k in quick mode), each for its own user (the common case, and the
dearer one: one user index each), kind ``chat`` and tether's default policy,
created by the store's own ``create.lua`` (in bulk: the same script and
fields as ``store.create``) in a fresh ``redis-server`` with persistence off.
``used_memory`` is read after the store has loaded its scripts and created
one session, and again after the N more. Two typical small configs: a
language (``{"lang":"en"}``, 13 bytes of JSON) and a voice interview's model,
voice, language and topic (88 bytes: more than the 64 bytes a Redis hash
value may have and stay compact, so the store interns it: stored once, under
``<prefix>cfg:<ref>``, for every live session that has it; here all N share
it, as sessions of one deployment's few kinds do, and the hash holds a
16-character reference).

Baseline: the seeds' design as a Redis application would write it, one hash
per session with the seeds' three fields (``user``, ``created_at``,
``last_accessed``) and a TTL on it, written with redis-py (it has no deadline
index: Redis expires idle sessions itself, without warnings or end reasons).

Target: <= 600 bytes per live session.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any

import redis.asyncio

from bench.common import Row, Target, rows_vs, session_ids
from bench.redis_server import load_sessions, redis_server
from tether.core.policy import Policy
from tether.store.redis import RedisStore

TARGET = Target("<=", 600.0)
BASELINE = "redis-py hash+TTL (seeds)"
CONFIGS: dict[str, dict[str, str]] = {
    "config 13 B": {"lang": "en"},
    "config 88 B": {
        "model": "gpt-4o-mini",
        "voice": "alloy",
        "lang": "en-US",
        "topic": "system design interview",
    },
}


async def _used(client: redis.asyncio.Redis) -> int:
    info: dict[str, Any] = await client.info("memory")
    return int(info["used_memory"])


async def _tether(url: str, n: int, config: dict[str, str]) -> float:
    store = RedisStore.from_url(url, prefix="tether:")
    raw = redis.asyncio.Redis.from_url(url)
    try:
        await raw.flushall()
        policy = Policy()
        await load_sessions(store, policy, time.time(), 1, config=config)
        before = await _used(raw)
        await load_sessions(store, policy, time.time(), n, config=config)
        return (await _used(raw) - before) / n
    finally:
        await store.aclose()
        await raw.aclose()


async def _seeds(url: str, n: int) -> float:
    raw = redis.asyncio.Redis.from_url(url)
    try:
        await raw.flushall()
        before = await _used(raw)
        now = repr(time.time())
        ids = session_ids(n)
        for start in range(0, n, 1000):
            async with raw.pipeline(transaction=False) as pipe:
                for i in range(start, min(n, start + 1000)):
                    key = "seeds:s:" + ids[i]
                    pipe.hset(
                        key, mapping={"user": f"u{i}", "created_at": now, "last_accessed": now}
                    )
                    pipe.expire(key, 600)
                await pipe.execute()
        return (await _used(raw) - before) / n
    finally:
        await raw.aclose()


def run(quick: bool) -> list[Row]:
    n, repeats = (20_000, 3) if quick else (100_000, 3)
    rows: list[Row] = []
    with redis_server() as server:
        seeds = [asyncio.run(_seeds(server.url, n)) for _ in range(repeats)]
        for case, config in CONFIGS.items():
            ours = [asyncio.run(_tether(server.url, n, config)) for _ in range(repeats)]
            spread = max(ours) - min(ours)
            if spread > 0.05 * statistics.median(ours):
                print(f"  redis_memory: {case}: samples spread {spread:.0f} B", file=sys.stderr)
            rows += rows_vs(
                "redis_memory",
                f"n={n:,}, {case}",
                "B/session",
                {"tether": ours, BASELINE: seeds},
                BASELINE,
                {"tether": TARGET},
            )
    return rows
