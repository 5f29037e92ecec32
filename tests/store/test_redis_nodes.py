"""RedisStore's node registry: connections are counted per node, and a dead node's are released.

Each RedisStore instance is one node. A node proves it is alive with
``keepalive``; once its lease has run out, ``claim_due`` on any other node
releases the connections it counted, so a SIGKILLed node cannot hold its
sessions' presence forever: they end ``client_gone`` one presence timeout
after the dead node's last keepalive, unless their clients came back.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from redis_kit import RedisServer, flush
from tether.core.ids import new_session_id
from tether.core.policy import Policy
from tether.core.session import Ended, SessionRecord
from tether.store.redis import RedisStore
from tether.types import EndReason, SessionId, UserId

T0 = 1_700_000_000.0
BIG = 10_000
LEASE = 15.0
PRESENCE = Policy(idle_timeout=600.0, warn_before=0.0, max_duration=1800.0, presence_timeout=60.0)


@pytest.fixture
def url(redis_server: RedisServer) -> str:
    """The session-wide server's URL."""
    return redis_server.url


@asynccontextmanager
async def cluster(url: str, count: int, **options: Any) -> AsyncIterator[list[RedisStore]]:
    """``count`` stores (nodes) sharing one prefix, each registered at T0."""
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    options.setdefault("node_lease", LEASE)
    stores = [RedisStore.from_url(url, prefix=prefix, **options) for _ in range(count)]
    try:
        for store in stores:
            assert await store.keepalive(T0)
        yield stores
    finally:
        for store in stores:
            await store.aclose()
        await flush(url)


async def add(store: RedisStore, user: str = "u1", policy: Policy = PRESENCE) -> SessionId:
    """Create one session at T0."""
    record = SessionRecord(new_session_id(), UserId(user), "chat", policy, T0)
    await store.create(record, max_per_user=None)
    return record.id


async def connections(store: RedisStore, session_id: SessionId) -> int:
    """The session's total connection count."""
    info = await store.get(session_id)
    assert info is not None
    return info.connections


async def test_each_node_counts_its_own_connections(url: str) -> None:
    """Attaches on two nodes add up; a node detaching a connection it never counted is a no-op."""
    async with cluster(url, 3) as [a, b, c]:
        sid = await add(a)
        await a.attach(sid, T0 + 1.0)
        await b.attach(sid, T0 + 1.0)
        await b.attach(sid, T0 + 1.0)
        assert await connections(a, sid) == 3
        assert await c.detach(sid, T0 + 2.0) is None  # c holds none: nothing changes
        assert await connections(a, sid) == 3
        await b.detach(sid, T0 + 2.0)
        await b.detach(sid, T0 + 2.0)
        assert await b.detach(sid, T0 + 2.0) is None  # a duplicate close
        assert await connections(a, sid) == 1


async def test_an_end_names_the_nodes_holding_connections(url: str) -> None:
    """The end's claim lists every node that counted a connection, so it can close them."""
    async with cluster(url, 3) as [a, b, c]:
        sid = await add(a)
        await a.attach(sid, T0 + 1.0)
        await c.attach(sid, T0 + 1.0)
        await c.attach(sid, T0 + 1.0)
        await a.detach(sid, T0 + 2.0)
        claim = await b.end(sid, EndReason.ADMIN, T0 + 3.0)
        assert claim is not None
        assert claim.holders == (c.node_id,)


async def test_a_dead_nodes_connections_are_released_after_its_lease(url: str) -> None:
    """Presence held only by a dead node runs out one presence timeout after its last keepalive."""
    async with cluster(url, 2) as [dead, alive]:
        sid = await add(dead)
        await dead.attach(sid, T0 + 1.0)
        assert await dead.keepalive(T0 + 5.0)  # its last sign of life: lease until +20
        assert await alive.keepalive(T0 + 19.0)
        assert await alive.claim_due(T0 + 19.0, BIG) == []
        assert await connections(alive, sid) == 1
        assert await alive.claim_due(T0 + 20.0, BIG) == []  # reaped; presence runs from +5
        assert await connections(alive, sid) == 0
        info = await alive.get(sid)
        assert info is not None
        assert info.last_seen == T0 + 5.0
        assert await alive.next_due() == T0 + 65.0
        assert await alive.claim_due(T0 + 64.9, BIG) == []
        [claim] = await alive.claim_due(T0 + 65.0, BIG)
        assert (claim.session.id, claim.transition) == (sid, Ended(EndReason.CLIENT_GONE))
        assert claim.holders == ()


async def test_a_dead_node_does_not_release_other_nodes_connections(url: str) -> None:
    """Reaping a dead node leaves the presence held by a live node's connection intact."""
    async with cluster(url, 2) as [dead, alive]:
        sid = await add(dead)
        await dead.attach(sid, T0 + 1.0)
        await alive.attach(sid, T0 + 2.0)
        assert await alive.keepalive(T0 + 30.0)
        await alive.claim_due(T0 + 30.0, BIG)
        assert await connections(alive, sid) == 1
        assert await alive.claim_due(T0 + 500.0, BIG) == []  # idle 600 not reached
        info = await alive.get(sid)
        assert info is not None
        assert info.end_reason is None


async def test_a_reaped_node_comes_back_under_a_new_identity(url: str) -> None:
    """keepalive after being reaped answers False; attaching again counts once, not twice."""
    async with cluster(url, 2) as [slow, alive]:
        sid = await add(slow)
        await slow.attach(sid, T0 + 1.0)
        old_id = slow.node_id
        assert await alive.keepalive(T0 + 16.0)
        await alive.claim_due(T0 + 16.0, BIG)  # slow's lease ran out at +15
        assert await connections(alive, sid) == 0
        assert not await slow.keepalive(T0 + 17.0)
        assert slow.node_id != old_id
        await slow.attach(sid, T0 + 17.0)  # the node re-attaches what it still holds
        assert await connections(alive, sid) == 1
        assert await slow.keepalive(T0 + 20.0)
        await slow.detach(sid, T0 + 21.0)
        assert await connections(alive, sid) == 0


async def test_an_attach_by_a_reaped_node_re_registers_it_first(url: str) -> None:
    """A reaped node attaching before its next keepalive registers anew; keepalive then says so."""
    async with cluster(url, 2) as [slow, alive]:
        sid = await add(slow)
        assert await alive.keepalive(T0 + 16.0)
        await alive.claim_due(T0 + 16.0, BIG)
        old_id = slow.node_id
        await slow.attach(sid, T0 + 17.0)
        assert slow.node_id != old_id
        assert not await slow.keepalive(T0 + 18.0)  # tells the runtime to re-attach the rest
        assert await slow.keepalive(T0 + 19.0)
        assert await connections(alive, sid) == 1


async def test_a_node_never_reaps_itself(url: str) -> None:
    """A claim on a node whose own lease looks expired (a late keepalive) keeps its connections."""
    async with cluster(url, 1) as [only]:
        sid = await add(only)
        await only.attach(sid, T0 + 1.0)
        await only.claim_due(T0 + 100.0, BIG)
        assert await connections(only, sid) == 1
        assert await only.keepalive(T0 + 100.0)


async def test_leave_releases_this_nodes_connections_as_of_now(url: str) -> None:
    """A node leaving releases its connections at once: presence runs from the leave."""
    async with cluster(url, 2) as [leaving, staying]:
        sid = await add(leaving)
        await leaving.attach(sid, T0 + 1.0)
        await leaving.leave(T0 + 10.0)
        assert await connections(staying, sid) == 0
        info = await staying.get(sid)
        assert info is not None
        assert info.last_seen == T0 + 10.0
        assert await staying.claim_due(T0 + 10.0, BIG) == []  # re-armed at its true deadline
        assert await staying.next_due() == T0 + 70.0


async def test_a_dead_node_with_many_sessions_is_released_in_bounded_steps(url: str) -> None:
    """Releasing a dead node's 1200 sessions takes several bounded claims; none is missed."""
    async with cluster(url, 2) as [dead, alive]:
        ids = [await add(dead, user=f"u{i}") for i in range(1200)]
        for sid in ids:
            await dead.attach(sid, T0 + 1.0)
        assert await alive.keepalive(T0 + 16.0)
        passes = 0
        while True:
            await alive.claim_due(T0 + 16.0, 500)
            passes += 1
            due = await alive.next_due()
            if due is None or due > T0 + 16.0:
                break
        assert passes >= 3
        assert all([await connections(alive, sid) == 0 for sid in ids])
        assert await alive.next_due() == T0 + 61.0
