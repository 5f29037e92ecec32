"""Expiry: cost per expired session when 1% of 10k / 100k / 1M sessions are due.

DESIGN.md promises expiry is O(k log n) for k due sessions out of n: the
deadline heap yields the due ones and nothing scans the rest. The seeds'
``cleanup()`` scans all n to find them. This bench builds n sessions of which
exactly 1% are past their idle end at time ``T`` and times one sweep:

* tether: ``await store.claim_due(T, limit=n)`` on a ``MemoryStore`` (the claim
  applies the ends; the runtime's end pipeline is not included);
* ``cachetools.TTLCache.expire(T)`` with an injected timer (its entries expire
  in insertion order, so its due 1% are the oldest);
* the naive full scan of a dict of session objects.

Each repeat rebuilds all three from scratch so every sweep sees the same state.
The figure is sweep time / expired count. Targets: tether <= 1 us per expired
session at 1M, and roughly flat in n: at most 2x from 10k to 1M, where log n
alone accounts for 1.5x.
"""

from __future__ import annotations

import asyncio
import random
from time import perf_counter_ns

from cachetools import TTLCache

from bench.common import (
    FAR,
    NaiveSession,
    Row,
    Target,
    gc_paused,
    naive_cleanup,
    rows_vs,
    session_ids,
)
from tether.core.policy import Policy
from tether.core.session import SessionRecord
from tether.store.memory import MemoryStore
from tether.types import SessionId, UserId

T0 = 1_700_000_000.0
IDLE = 60.0  # due sessions were last active in [T0, T0 + 10), the rest in [T0 + 20, T0 + 30)
T = T0 + IDLE + 10  # every due idle end is before T, every other one long after
DUE = Policy(idle_timeout=IDLE, warn_before=0.0, max_duration=86400.0, presence_timeout=86400.0)
TTL = 600.0  # TTLCache: due entries set in [T0, T0 + 10) expire before T_TTL, the rest after
T_TTL = T0 + TTL + 15
TARGET = Target("<=", 1.0)
GROWTH = Target("<=", 2.0)


async def _tether(ids: list[str], due: set[str], times: list[float]) -> MemoryStore:
    store = MemoryStore()
    for sid, at in zip(ids, times, strict=True):
        policy = DUE if sid in due else FAR
        record = SessionRecord(SessionId(sid), UserId(f"u{sid}"), "chat", policy, at)
        await store.create(record, max_per_user=None)
    return store


def _ttlcache(ids: list[str], times: list[float]) -> TTLCache[str, str]:
    clock = [T0]
    cache: TTLCache[str, str] = TTLCache(maxsize=len(ids), ttl=TTL, timer=lambda: clock[0])
    # Insertion order is expiry order in a TTLCache: the due entries go first.
    for sid, at in sorted(zip(ids, times, strict=True), key=lambda pair: pair[1]):
        clock[0] = at
        cache[sid] = sid
    return cache


def _naive(ids: list[str], times: list[float]) -> dict[str, NaiveSession]:
    return {sid: NaiveSession(f"u{sid}", at) for sid, at in zip(ids, times, strict=True)}


async def _one_repeat(n: int, rng: random.Random, samples: dict[str, list[float]]) -> None:
    ids = session_ids(n)
    k = n // 100
    due = set(rng.sample(ids, k))
    times = [T0 + (0 if sid in due else 20) + 10 * rng.random() for sid in ids]
    store = await _tether(ids, due, times)
    cache = _ttlcache(ids, times)
    sessions = _naive(ids, times)

    with gc_paused():
        t0 = perf_counter_ns()
        claimed = await store.claim_due(T, limit=n)
        samples["tether"].append((perf_counter_ns() - t0) / 1000 / k)
    with gc_paused():
        t0 = perf_counter_ns()
        expired = cache.expire(T_TTL)
        samples["TTLCache"].append((perf_counter_ns() - t0) / 1000 / k)
    with gc_paused():
        t0 = perf_counter_ns()
        removed = naive_cleanup(sessions, T, IDLE)
        samples["naive scan"].append((perf_counter_ns() - t0) / 1000 / k)
    assert len(claimed) == len(expired) == removed == k, (len(claimed), len(expired), removed)


# n -> repeats: small sweeps take well under a millisecond, so they get more repeats.
SIZES = {10_000: 15, 100_000: 9, 1_000_000: 5}
QUICK_SIZES = {10_000: 9, 100_000: 5}


def run(quick: bool) -> list[Row]:
    sizes = QUICK_SIZES if quick else SIZES
    rng = random.Random(0)
    rows: list[Row] = []
    for n, repeats in sizes.items():
        samples: dict[str, list[float]] = {"tether": [], "TTLCache": [], "naive scan": []}
        for _ in range(repeats):
            asyncio.run(_one_repeat(n, rng, samples))
        targets = {"tether": TARGET} if n == max(sizes) else {}
        rows += rows_vs("expiry", f"n={n:,}", "us/expired", samples, "TTLCache", targets)
    return rows + _growth(rows, min(sizes), max(sizes))


def _growth(rows: list[Row], smallest: int, largest: int) -> list[Row]:
    """How much each contender's per-expired cost grows from the smallest n to the largest."""
    small, large = f"n={smallest:,}", f"n={largest:,}"
    by_case = {(r.case, r.contender): r.value for r in rows}
    out = []
    for name in ("tether", "TTLCache", "naive scan"):
        growth = by_case[large, name] / by_case[small, name]
        target = GROWTH if name == "tether" else None
        case = f"{large} / {small}"
        out.append(Row("expiry", case, f"{name} growth", growth, "x", [growth], target=target))
    return out
