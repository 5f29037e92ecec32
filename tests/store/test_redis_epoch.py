"""RedisStore's epoch: seeded once at first use, kept while the data lives, gone with it."""

from __future__ import annotations

import asyncio
import uuid

from redis_kit import RedisServer, flush
from tether.store.redis import RedisStore


async def test_the_first_caller_seeds_the_epoch_and_later_callers_read_it(
    redis_server: RedisServer,
) -> None:
    """None (and the candidate is stored) on an empty store; then that epoch for everyone."""
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    a = RedisStore.from_url(redis_server.url, prefix=prefix)
    b = RedisStore.from_url(redis_server.url, prefix=prefix)
    try:
        assert await a.swap_epoch("first") is None
        assert await b.swap_epoch("second") == "first"
        assert await a.swap_epoch("third") == "first"
    finally:
        await a.aclose()
        await b.aclose()
        await flush(redis_server.url)


async def test_of_nodes_racing_on_an_empty_store_exactly_one_seeds_it(
    redis_server: RedisServer,
) -> None:
    """Many concurrent first looks: one gets None, all others read that one's epoch."""
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    stores = [RedisStore.from_url(redis_server.url, prefix=prefix) for _ in range(8)]
    try:
        reads = await asyncio.gather(*(s.swap_epoch(f"e{n}") for n, s in enumerate(stores)))
        seeded = [n for n, read in enumerate(reads) if read is None]
        assert len(seeded) == 1
        assert {read for read in reads if read is not None} <= {f"e{seeded[0]}"}
    finally:
        for store in stores:
            await store.aclose()
        await flush(redis_server.url)


async def test_a_flushed_store_has_no_epoch_any_more(redis_server: RedisServer) -> None:
    """FLUSHDB takes the epoch with the data: the next look finds none and seeds anew."""
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    store = RedisStore.from_url(redis_server.url, prefix=prefix)
    try:
        assert await store.swap_epoch("old") is None
        await flush(redis_server.url)
        assert await store.swap_epoch("new") is None
        assert await store.swap_epoch("newer") == "new"
    finally:
        await store.aclose()
        await flush(redis_server.url)
