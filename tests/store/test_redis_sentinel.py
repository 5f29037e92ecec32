"""Sentinel failover under writes: the store follows the new primary, no restart, losses counted.

A real primary, a replica and three Sentinels (``redis-server --sentinel``,
what Debian's ``redis-sentinel`` runs) on loopback ports. Appends run
against a ``redis+sentinel://`` store while the primary is killed and the
Sentinels promote the replica: calls during the switch fail as ``StoreUnavailable`` (503 at
the edge), calls after it succeed on the same store object, and every
message acknowledged before or after is checked on the new primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Iterator
from pathlib import Path

import redis.asyncio
from bench.redis_server import BenchRedis
from bench.sentinel_server import SERVICE
from bench.sentinel_server import sentinel_set as _sentinel_set

from tether.core.policy import Policy
from tether.core.session import SessionRecord
from tether.core.transcript import Role
from tether.errors import StoreUnavailable
from tether.store.redis import RedisStore
from tether.testing import eventually
from tether.types import SessionId, UserId

SESSIONS = 20


@contextlib.contextmanager
def sentinel_set(directory: Path) -> Iterator[tuple[BenchRedis, BenchRedis, list[int]]]:
    """A primary, its replica and three Sentinels (see ``bench.sentinel_server``)."""
    with _sentinel_set(directory) as sentinels:
        yield sentinels.primary, sentinels.replica, sentinels.ports


async def test_a_sentinel_failover_under_appends_is_followed_without_restart(
    tmp_path: Path,
) -> None:
    """The primary killed mid-load: 503s during the switch, writes resume, no session ended."""
    with sentinel_set(tmp_path) as (primary, replica, ports):
        sentinel = redis.asyncio.Redis(port=ports[0])
        replica_client = redis.asyncio.Redis(port=replica.port)

        async def synced() -> bool:
            info = await replica_client.info("replication")
            known = await sentinel.execute_command("SENTINEL", "REPLICAS", SERVICE)
            return info.get("master_link_status") == "up" and bool(known)

        await eventually(synced, within=20.0)
        url = "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in ports) + f"/{SERVICE}"
        store = RedisStore.from_url(url, socket_timeout=1.0)
        now = time.time()
        ids = []
        for i in range(SESSIONS):
            record = SessionRecord(
                SessionId(f"{i:032x}"), UserId(f"u{i}"), "chat", Policy(), now, {}
            )
            await store.create(record, max_per_user=None)
            ids.append(record.id)
        acked: dict[str, list[str]] = {sid: [] for sid in ids}
        refused = 0
        after_switch = 0
        switched = asyncio.Event()
        stop = asyncio.Event()

        async def load() -> None:
            nonlocal refused, after_switch
            rng = random.Random(0)
            n = 0
            while not stop.is_set():
                sid = rng.choice(ids)
                content = f"m{n}"
                n += 1
                try:
                    await store.append(sid, Role.USER, content, None, time.time())
                    await store.touch(sid, time.time(), activity=False)
                except StoreUnavailable:
                    refused += 1
                    await asyncio.sleep(0.005)
                    continue
                acked[sid].append(content)
                if switched.is_set():
                    after_switch += 1
                await asyncio.sleep(0.002)

        runner = asyncio.create_task(load())
        await eventually(lambda: sum(map(len, acked.values())) >= 50, within=30.0)
        primary.process.kill()  # the primary dies: the Sentinels agree and promote the replica

        async def promoted() -> bool:
            addr = await sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            return int(addr[1]) == replica.port

        await eventually(promoted, within=30.0)
        switched.set()
        await eventually(lambda: after_switch >= 20, within=30.0)
        stop.set()
        await runner
        # Every session is still live, on the new primary, through the same store.
        lost = 0
        for sid in ids:
            info = await store.get(SessionId(sid))
            assert info is not None
            assert info.end_reason is None
            stored = [m.content for m in await store.transcript(SessionId(sid))]
            lost += len(set(acked[sid]) - set(stored))
        print(
            f"\nsentinel failover: {sum(map(len, acked.values()))} appends acknowledged, "
            f"{refused} refused (503) during the switch, {lost} acknowledged and lost"
        )
        assert after_switch >= 20
        assert refused > 0  # the writes of the switch were refused, not hung or lost silently
        await store.aclose()
        await sentinel.aclose()
        await replica_client.aclose()
