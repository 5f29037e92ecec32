"""Redis claim: 10k due sessions claimed out of 1M live ones.

When many sessions come due at once (a deploy drained every client at the
same moment, a lifetime cap reached by a cohort), the scheduler claims them in
batches. DESIGN.md promises the claim costs O(k log n) for k due out of n,
never a scan. A claim on ``RedisStore`` has two steps, timed separately:

* ``lease_due`` is the claim proper: ``claim.lua`` moves the 10k due index
  entries, in bulk, into one batch leased to the caller; from then on no
  other node sees them until the lease runs out. It reads no session.
* ``settle`` then reads the 10k sessions (``read.lua``), advances each one
  with the core and commits the decided transitions (here: ends,
  ``idle_timeout``) with ``apply.lua``, each exactly once. The row
  ``claim_due`` is the two together: what ``store.claim_due(now, 10_000)``
  costs the scheduler from the first script to the 10k committed ends.

Setup: 1M sessions (100k in quick mode) in a fresh ``redis-server``
(persistence off), written by ``create.lua`` itself in bulk (not timed),
each for its own user; 10k of them have a short idle timeout and are due.
Each repeat adds 10k fresh due sessions and claims them; one untimed claim
first loads the scripts. Before each contender the bench collects Redis's Lua
garbage (untimed, ``LUA_GC``), so none pays for the scripts run before it.

Another row shows the part of ``claim_due`` Redis spent running scripts
(``INFO commandstats``), the rest being Python's (redis-py and the core's
decisions) and the round trips.

Baseline, the raw floor of reading the same work: redis-py fetching 10k due
ids (``ZRANGEBYSCORE ... LIMIT 0 10000``) and their hashes (``HGETALL``,
pipelined) from an index of the same size, with no lease, decision or commit.

A last row, ``Lua floor``, is the least any one-script claim that looks at
each due session can cost on this machine: one script that reads the 10k due
ids and one field of each session's hash (``HMGET``), and does nothing else.
It is why the lease reads no session: a claim that decided inside Lua would
cost more than this.

Target: <= 15 ms for the 10k claim (``lease_due``).
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
from tether.store.redis.codec import Field, num

DUE = 10_000
TARGET = Target("<=", 15.0)
BASELINE = "redis-py ZRANGEBYSCORE+HGETALL"
LEASE = "tether lease_due (the claim)"
CLAIM_DUE = "tether claim_due (lease + settle)"
IN_REDIS = "  of which in Redis"
LUA_FLOOR = "Lua floor: ZRANGEBYSCORE + HMGET each"
FLOOR_SCRIPT = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(due) do
  redis.call('HMGET', ARGV[1] .. 's:' .. id, ARGV[4])
end
return #due
"""
LUA_GC = "collectgarbage('collect') return 0"
"""Run before each contender (untimed): Redis's Lua heap collects garbage
incrementally as scripts allocate, so without it a contender pays for the
garbage the scripts before it left (the bulk loader's, another contender's),
as a Python contender would pay for a collection without ``gc_paused``."""
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
            LEASE: [],
            CLAIM_DUE: [],
            BASELINE: [],
            LUA_FLOOR: [],
            IN_REDIS: [],
        }
        floor = raw.register_script(FLOOR_SCRIPT)
        lua_gc = raw.register_script(LUA_GC)
        counts: list[int] = []
        for i in range(repeats + 1):
            created = time.time() - 10.0  # their idle timeout ran out 9 s ago
            await load_sessions(store, NEAR, created, DUE)
            now = time.time()

            async def baseline(now: float = now) -> None:
                ids = cast(
                    list[bytes],
                    await raw.zrangebyscore(due_key, "-inf", num(now), start=0, num=DUE),
                )
                async with raw.pipeline(transaction=False) as pipe:
                    for sid in ids:
                        pipe.hgetall(store.prefix.encode() + b"s:" + sid)
                    await pipe.execute()

            with gc_paused():
                await lua_gc()
                t0 = perf_counter()
                await baseline()
                base_ms = (perf_counter() - t0) * 1000
                await lua_gc()
                t0 = perf_counter()
                seen = await floor(keys=[due_key], args=[store.prefix, num(now), DUE, Field.STATE])
                floor_ms = (perf_counter() - t0) * 1000
                await lua_gc()
                scripts_us = await _script_us(raw)
                t0 = perf_counter()
                lease = await store.lease_due(now, DUE)
                lease_ms = (perf_counter() - t0) * 1000
                claims = await store.settle(lease, now)
                tether_ms = (perf_counter() - t0) * 1000
                scripts_us = await _script_us(raw) - scripts_us
            if i == 0:
                continue  # warm-up: scripts loaded
            samples[LEASE].append(lease_ms)
            samples[CLAIM_DUE].append(tether_ms)
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
    rows = rows_vs("redis_claim", case, "ms", samples, BASELINE, {LEASE: TARGET})
    # The share of claim_due Redis spent running its scripts.
    rows.insert(2, Row("redis_claim", case, IN_REDIS, statistics.median(scripts), "ms", scripts))
    return rows
