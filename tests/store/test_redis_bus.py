"""``RedisBroadcast``: the pub/sub transport keeps Redis failures at the store's seam."""

from __future__ import annotations

import logging

import pytest
import redis.asyncio

from tether.store.base import Broadcast, BroadcastStore
from tether.store.memory import MemoryStore
from tether.store.redis import RedisBroadcast, RedisStore

UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens on port 1


async def test_a_publish_to_an_unreachable_redis_is_dropped_and_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Publishing with Redis down raises nothing to the caller: the batch is logged as dropped."""
    broadcast = RedisBroadcast(redis.asyncio.from_url(UNREACHABLE), "t:bus", owns_client=True)
    with caplog.at_level(logging.WARNING, logger="tether.store"):
        broadcast.publish("one")
        broadcast.publish("two")
        await broadcast.flush()
        await broadcast.aclose()
    assert "event bus dropped 2 message(s)" in caplog.text


async def test_a_redis_store_offers_its_broadcast_on_the_prefix_bus_channel() -> None:
    """RedisStore is a BroadcastStore whose channel is '<prefix>bus'; MemoryStore is not."""
    store = RedisStore.from_url(UNREACHABLE, prefix="p2:")
    try:
        assert isinstance(store, BroadcastStore)
        broadcast: Broadcast = store.broadcast()
        assert broadcast.channel == "p2:bus"
        assert not broadcast.listening
        assert not isinstance(MemoryStore(), BroadcastStore)
    finally:
        await store.aclose()
