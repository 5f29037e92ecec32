"""The Redis store on a real 3-master Redis Cluster: keys on every master, one slot per script."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
import redis.asyncio
from bench.redis_server import BenchCluster
from redis.crc import key_slot

from redis_kit import flush_cluster
from tether.core.policy import Policy
from tether.core.session import SessionRecord
from tether.errors import ConfigError
from tether.store.redis import RedisStore
from tether.store.redis.shards import CLUSTER_SHARDS, prefixes, shard_of, tags
from tether.store.redis.urls import parse
from tether.types import EndReason, SessionId, UserId

T0 = 1_700_000_000.0


def record(user: str = "u1", now: float = T0) -> SessionRecord:
    """A new session record with a fresh random id."""
    return SessionRecord(SessionId(uuid.uuid4().hex), UserId(user), "chat", Policy(), now, {})


async def slots_of(cluster: BenchCluster) -> list[set[int]]:
    """The slots each master of ``cluster`` holds keys in."""
    out = []
    for master in cluster.masters:
        client = redis.asyncio.from_url(master.url)
        try:
            keys = [key async for key in client.scan_iter(count=1000)]
        finally:
            await client.aclose()
        out.append({key_slot(key) for key in keys})
    return out


async def test_sessions_spread_over_every_master_of_the_cluster(
    redis_cluster: BenchCluster,
) -> None:
    """300 sessions on the cluster leave keys on all three masters, in many slots of each."""
    store = RedisStore.from_url(redis_cluster.url, prefix="spread:")
    try:
        assert store.shards == CLUSTER_SHARDS
        for _ in range(300):
            await store.create(record(), max_per_user=None)
        assert (await store.stats()).live == 300
        per_master = await slots_of(redis_cluster)
        assert all(len(slots) >= 15 for slots in per_master), [len(s) for s in per_master]
    finally:
        await store.aclose()
        await flush_cluster(redis_cluster)


def test_each_shard_tag_hashes_into_its_own_band_so_masters_get_equal_shares() -> None:
    """Shard i's tag lies in slot band i: an even 3-way slot split gives 21/22/21 shards."""
    bands = [key_slot(t.encode()) * CLUSTER_SHARDS // 16384 for t in tags(CLUSTER_SHARDS)]
    assert bands == list(range(CLUSTER_SHARDS))
    thirds = Counter(min(2, key_slot(t.encode()) // 5462) for t in tags(CLUSTER_SHARDS))
    assert sorted(thirds.values()) == [21, 21, 22]


def test_a_prefix_holding_a_hash_tag_is_refused_for_a_sharded_store() -> None:
    """A sharded layout adds its own tags; a prefix with braces is a clear error."""
    with pytest.raises(ValueError, match="hash tag"):
        prefixes("{tether}:", CLUSTER_SHARDS)
    assert prefixes("{tether}:", 1) == ["{tether}:"]


def test_session_ids_spread_evenly_over_the_shards() -> None:
    """64k random ids: no shard holds over 1.1x its fair share."""
    counts = Counter(shard_of(uuid.uuid4().hex, CLUSTER_SHARDS) for _ in range(64_000))
    assert len(counts) == CLUSTER_SHARDS
    assert max(counts.values()) <= 1.1 * 1000


async def test_a_user_cap_across_shards_replaces_the_oldest(redis_cluster: BenchCluster) -> None:
    """With max_per_user=2, the third create ends the user's oldest, whatever shard it is in."""
    store = RedisStore.from_url(redis_cluster.url, prefix="cap:")
    try:
        first = await store.create(record(now=T0), max_per_user=2)
        second = await store.create(record(now=T0 + 1.0), max_per_user=2)
        third = await store.create(record(now=T0 + 2.0), max_per_user=2)
        assert [c.session.id for c in third.replaced] == [first.session.id]
        assert [c.transition.reason for c in third.replaced] == [EndReason.REPLACED]  # type: ignore[union-attr]
        listed = [s.id for s in await store.list(user=UserId("u1"))]
        assert listed == [second.session.id, third.session.id]
    finally:
        await store.aclose()
        await flush_cluster(redis_cluster)


async def test_the_bus_carries_payloads_between_nodes_on_sharded_pubsub(
    redis_cluster: BenchCluster,
) -> None:
    """A payload published by one node's store reaches another node's listener (SSUBSCRIBE)."""
    one = RedisStore.from_url(redis_cluster.url, prefix="bus:")
    two = RedisStore.from_url(redis_cluster.url, prefix="bus:")
    heard: list[str | bytes] = []
    got = asyncio.Event()

    def on_payload(payload: str | bytes) -> None:
        heard.append(payload)
        got.set()

    sender, listener = one.broadcast(), two.broadcast()
    try:
        await listener.start(on_payload, lambda: None)
        sender.publish("hello")
        await sender.flush()
        await asyncio.wait_for(got.wait(), timeout=10.0)
        assert heard == [b"hello"]
    finally:
        await sender.aclose()
        await listener.aclose()
        await one.aclose()
        await two.aclose()


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:6379/0", "single"),
        ("redis+cluster://127.0.0.1:7000", "cluster"),
        ("rediss+cluster://u:p@10.0.0.1:7000", "cluster"),
        ("redis+sentinel://127.0.0.1:26379,127.0.0.2:26380/mymaster", "sentinel"),
    ],
)
def test_the_url_scheme_names_the_topology(url: str, kind: str) -> None:
    """redis://, redis+cluster://, redis+sentinel:// name one Redis, a cluster, Sentinels."""
    assert parse(url).kind == kind


def test_a_sentinel_url_lists_its_sentinels_service_and_db() -> None:
    """Every host:port, the service name and the db come out of a redis+sentinel:// URL."""
    target = parse("redis+sentinel://:secret@h1:26379,h2:26380/primary/2")
    assert target.sentinels == (("h1", 26379), ("h2", 26380))
    assert (target.service, target.db, target.password) == ("primary", 2, "secret")


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://h1:26379",
        "redis+sentinel://h1/primary",
        "redis+sentinel://h1:26379/primary/x",
        "127.0.0.1:6379",
    ],
)
def test_a_malformed_redis_url_is_a_config_error(url: str) -> None:
    """A URL without Sentinel ports, service name or scheme is refused with a ConfigError."""
    with pytest.raises(ConfigError):
        parse(url)
