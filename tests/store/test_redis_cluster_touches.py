"""Touches on a real 3-master Redis Cluster: one pipeline per master, and slots that move."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import redis.asyncio
from bench.redis_server import BenchCluster
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from redis_kit import flush_cluster, start_redis_cluster
from tether.core.policy import Policy
from tether.core.session import SessionRecord
from tether.errors import SessionEnded, SessionNotFound
from tether.store.redis import RedisStore
from tether.store.redis.masters import Masters
from tether.types import EndReason, SessionId, UserId

T0 = 1_700_000_000.0


def record() -> SessionRecord:
    """A new session record with a fresh random id."""
    return SessionRecord(SessionId(uuid.uuid4().hex), UserId("u1"), "chat", Policy(), T0, {})


def masters_of(store: RedisStore) -> Masters:
    """The store's per-master touch sender (a cluster store has one)."""
    masters = store.touch_masters
    assert masters is not None
    return masters


async def touch_together(store: RedisStore, touches: list[tuple[SessionId, float]]) -> list[object]:
    """Touch every ``(id, now)`` in one loop iteration (so in one batch); each reply or error."""
    before = store.touches.batches
    replies = await asyncio.gather(
        *(store.touch(sid, now, activity=False) for sid, now in touches), return_exceptions=True
    )
    assert store.touches.batches == before + 1, "the touches were not one batch"
    return replies


async def creates(store: RedisStore, n: int) -> list[SessionId]:
    """``n`` new sessions, each heartbeating once already (so its next touch is recorded in Lua)."""
    sids = []
    for _ in range(n):
        new = record()
        await store.create(new, max_per_user=None)
        sids.append(new.id)
    await asyncio.gather(*(store.touch(sid, T0 + 0.5, activity=False) for sid in sids))
    return sids


async def test_a_batch_spanning_every_master_is_answered_per_touch_in_order(
    redis_cluster: BenchCluster,
) -> None:
    """One batch over all 3 masters: each touch gets its own reply, its own ``now`` recorded."""
    store = RedisStore.from_url(redis_cluster.url, prefix="order:")
    try:
        sids = await creates(store, 200)
        ended = sids[::10]
        for sid in ended:
            await store.end(sid, EndReason.ADMIN, T0 + 0.6)
        unknown = [SessionId(uuid.uuid4().hex) for _ in range(20)]
        batch: list[SessionId] = []
        for i, sid in enumerate(sids):
            batch.append(sid)
            if i % 10 == 5:
                batch.append(unknown[i // 10])
        touches = [(sid, T0 + 1 + i / 1000) for i, sid in enumerate(batch)]
        assert len(await masters_holding(redis_cluster, store, batch)) == 3
        resent = masters_of(store).resent  # the first batch met NOSCRIPT: not this one
        replies = await touch_together(store, touches)
        for (sid, now), reply in zip(touches, replies, strict=True):
            if sid in unknown:
                assert isinstance(reply, SessionNotFound), (sid, reply)
            elif sid in ended:
                assert isinstance(reply, SessionEnded), (sid, reply)
                assert "admin" in str(reply)
            else:
                assert reply is None, (sid, reply)
                info = await store.get(sid)
                assert info is not None
                assert info.last_seen == now
        assert masters_of(store).resent == resent  # every call went straight to its master
    finally:
        await store.aclose()
        await flush_cluster(redis_cluster)


async def masters_holding(
    cluster: BenchCluster, store: RedisStore, sids: list[SessionId]
) -> set[str]:
    """The masters (by address) serving the slots of ``sids``' shards."""
    client = RedisCluster.from_url(cluster.masters[0].url.removesuffix("/0"))
    try:
        await client.initialize()
        return {client.get_node_from_key(store.keys_of(sid).prefix).name for sid in sids}
    finally:
        await client.aclose()


async def cluster_command(cluster: BenchCluster, master: int, *args: object) -> Any:
    """Run ``args`` on master number ``master`` of ``cluster``."""
    client = redis.asyncio.from_url(cluster.masters[master].url, decode_responses=True)
    try:
        return await client.execute_command(*args)
    finally:
        await client.aclose()


async def start_migration(cluster: BenchCluster, slot: int) -> tuple[int, int]:
    """Mark ``slot`` migrating to the next master and move its keys there: (source, target)."""
    masters = range(len(cluster.masters))
    counts = [
        await cluster_command(cluster, m, "CLUSTER", "COUNTKEYSINSLOT", slot) for m in masters
    ]
    source = next(m for m in masters if counts[m] > 0)
    target = (source + 1) % len(cluster.masters)
    source_id = await cluster_command(cluster, source, "CLUSTER", "MYID")
    target_id = await cluster_command(cluster, target, "CLUSTER", "MYID")
    await cluster_command(cluster, target, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    await cluster_command(cluster, source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
    keys = await cluster_command(cluster, source, "CLUSTER", "GETKEYSINSLOT", slot, 100_000)
    port = cluster.masters[target].port
    await cluster_command(cluster, source, "MIGRATE", "127.0.0.1", port, "", 0, 5000, "KEYS", *keys)
    return source, target


async def finish_migration(cluster: BenchCluster, slot: int, target: int) -> None:
    """Hand ``slot`` to master ``target`` on every master."""
    target_id = await cluster_command(cluster, target, "CLUSTER", "MYID")
    for m in range(len(cluster.masters)):
        await cluster_command(cluster, m, "CLUSTER", "SETSLOT", slot, "NODE", target_id)


async def test_touches_of_a_slot_moved_to_another_master_follow_it(tmp_path: Path) -> None:
    """A slot moved to another master: its touches meet MOVED and land; then go there directly."""
    cluster = start_redis_cluster(tmp_path)
    try:
        store = RedisStore.from_url(cluster.url, prefix="moved:")
        try:
            sids = await creates(store, 64)
            moving = sids[0]
            slot = key_slot(store.keys_of(moving).prefix.encode())
            same_slot = [s for s in sids if store.keys_of(s).prefix == store.keys_of(moving).prefix]
            masters = masters_of(store)

            _, target = await start_migration(cluster, slot)
            await finish_migration(cluster, slot, target)
            resent = masters.resent
            touches = [(sid, T0 + 2 + i / 1000) for i, sid in enumerate(sids)]
            assert await touch_together(store, touches) == [None] * len(sids)
            assert masters.resent == resent + 1  # that call met MOVED, and only that one
            for sid, now in touches:
                info = await store.get(sid)
                assert info is not None
                assert info.last_seen == now

            resent = masters.resent  # the slot map is refreshed: straight to the new master
            touches = [(sid, T0 + 3 + i / 1000) for i, sid in enumerate(same_slot)]
            assert await touch_together(store, touches) == [None] * len(same_slot)
            assert masters.resent == resent
        finally:
            await store.aclose()
    finally:
        cluster.stop()
