"""Redis claim: 10k due sessions claimed out of 1M live ones.

When many sessions come due at once (a deploy drained every client at the
same moment, a lifetime cap reached by a cohort), the scheduler claims them in
batches. DESIGN.md promises the claim costs O(k log n) for k due out of n,
never a scan. This bench times ``store.claim_due(now, limit=10_000)`` on a
``RedisStore``: ``claim.lua`` leases the due sessions, Python advances each
one with the core, and the decided transitions (here: ends, ``idle_timeout``)
are committed. It returns 10k claims, each a transition handed to exactly
one caller.

Setup: 1M sessions (100k in quick mode) in a fresh ``redis-server``
(persistence off), written by ``create.lua`` itself in bulk (not timed),
each for its own user; 10k of them have a short idle timeout and are due.
Each repeat adds 10k fresh due sessions and claims them; one untimed claim
first loads the scripts.

A second row shows the part of that time Redis spent running the claim's
scripts (``claim.lua`` and ``apply.lua``: ``INFO commandstats``), the rest
being Python's (redis-py and the core's decisions) and the round trips.

Baseline, the raw floor of the same work's reads: redis-py fetching 10k due
ids (``ZRANGEBYSCORE ... LIMIT 0 10000``) and their hashes (``HGETALL``,
pipelined) from an index of the same size, with no lease, decision or commit.

A third row, ``Lua floor``, is the least any one-script claim that looks at
each due session can cost on this machine: one script that reads the 10k due
ids and one field of each session's hash (``HMGET``), and does nothing else.
It does not lease, decide, write or return anything, so a claim that decides
inside Lua, as fast as it could be, costs more than this.

Target: <= 15 ms for the 10k claim.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from time import perf_counter
from typing import Any, cast

import redis.asyncio

from bench.common import FAR, Row, Target, gc_paused, rows_vs
from bench.redis_server import load_sessions, redis_server
from tether.core.policy import Policy
from tether.store.redis import RedisStore
from tether.store.redis.codec import Field

DUE = 10_000
TARGET = Target("<=", 15.0)
BASELINE = "redis-py ZRANGEBYSCORE+HGETALL"
IN_REDIS = "  of which in Redis"
LUA_FLOOR = "Lua floor: ZRANGEBYSCORE + HMGET each"
FLOOR_SCRIPT = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(due) do
  redis.call('HMGET', ARGV[1] .. 's:' .. id, ARGV[4])
end
return #due
"""
NEAR = Policy(idle_timeout=1.0, warn_before=0.0, max_duration=86400.0, presence_timeout=86400.0)


async def _script_us(client: redis.asyncio.Redis) -> int:
    """Microseconds Redis has spent running scripts so far (``INFO commandstats``)."""
    stats: dict[str, Any] = await client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("usec", 0))


async def _measure(url: str, n: int, repeats: int) -> dict[str, list[float]]:
    store = RedisStore.from_url(url)
    raw = redis.asyncio.Redis.from_url(url)
    due_key = store.prefix + "due"
    try:
        t0 = perf_counter()
        await load_sessions(store, FAR, time.time(), n - DUE)
        print(f"  loaded {n - DUE:,} sessions in {perf_counter() - t0:.0f} s", file=sys.stderr)
        samples: dict[str, list[float]] = {
            "tether.claim_due": [],
            BASELINE: [],
            LUA_FLOOR: [],
            IN_REDIS: [],
        }
        floor = raw.register_script(FLOOR_SCRIPT)
        counts: list[int] = []
        for i in range(repeats + 1):
            created = time.time() - 10.0  # their idle timeout ran out 9 s ago
            await load_sessions(store, NEAR, created, DUE)
            now = time.time()

            async def baseline(now: float = now) -> None:
                ids = cast(
                    list[bytes], await raw.zrangebyscore(due_key, "-inf", now, start=0, num=DUE)
                )
                async with raw.pipeline(transaction=False) as pipe:
                    for sid in ids:
                        pipe.hgetall(store.prefix.encode() + b"s:" + sid)
                    await pipe.execute()

            with gc_paused():
                t0 = perf_counter()
                await baseline()
                base_ms = (perf_counter() - t0) * 1000
                t0 = perf_counter()
                seen = await floor(keys=[due_key], args=[store.prefix, now, DUE, Field.STATE])
                floor_ms = (perf_counter() - t0) * 1000
                scripts_us = await _script_us(raw)
                t0 = perf_counter()
                claims = await store.claim_due(now, DUE)
                tether_ms = (perf_counter() - t0) * 1000
                scripts_us = await _script_us(raw) - scripts_us
            if i == 0:
                continue  # warm-up: scripts loaded
            samples["tether.claim_due"].append(tether_ms)
            samples[BASELINE].append(base_ms)
            samples[LUA_FLOOR].append(floor_ms)
            if seen != DUE:
                raise RuntimeError(f"the Lua floor read {seen} due sessions, not {DUE}")
            samples[IN_REDIS].append(scripts_us / 1000)
            counts.append(len(claims))
        print(f"  claims per repeat: {counts} (of {DUE:,} due)", file=sys.stderr)
        if any(c != DUE for c in counts):
            raise RuntimeError(f"claim_due returned {counts}, not {DUE} each time")
        return samples
    finally:
        await store.aclose()
        await raw.aclose()


def run(quick: bool) -> list[Row]:
    n, repeats = (100_000, 3) if quick else (1_000_000, 5)
    with redis_server() as server:
        samples = asyncio.run(_measure(server.url, n, repeats))
    scripts = samples.pop(IN_REDIS)
    case = f"{DUE:,} due of {n:,}"
    rows = rows_vs("redis_claim", case, "ms", samples, BASELINE, {"tether.claim_due": TARGET})
    # The share of the claim Redis spent running claim.lua and apply.lua.
    rows.insert(1, Row("redis_claim", case, IN_REDIS, statistics.median(scripts), "ms", scripts))
    return rows
