"""``get_or_start``: concurrent first requests of one user share one session, on any store."""

from __future__ import annotations

import asyncio
import uuid

from redis_kit import RedisServer, flush
from tether.core.ids import new_session_id
from tether.core.policy import Policy
from tether.core.session import Ended, SessionRecord
from tether.runtime.manager import SessionManager
from tether.store.memory import MemoryStore
from tether.store.redis import RedisStore
from tether.testing import fake_manager
from tether.types import EndReason, UserId

CALLS = 50
T0 = 1_700_000_000.0
IDLE = EndReason.IDLE_TIMEOUT
POLICY = Policy(idle_timeout=600, warn_before=120, max_duration=1800, presence_timeout=60)


async def test_concurrent_first_calls_share_one_session_on_the_memory_store() -> None:
    """Fifty concurrent get_or_start calls for one user start exactly one session."""
    async with fake_manager(policy=POLICY) as kit:
        infos = await asyncio.gather(
            *(kit.manager.get_or_start("alice", kind="chat") for _ in range(CALLS))
        )
        assert len({info.id for info in infos}) == 1
        assert len(await kit.manager.list(user="alice")) == 1
        other = await kit.manager.get_or_start("alice", kind="voice")
        assert other.id != infos[0].id  # one session per kind
        assert (await kit.manager.get_or_start("alice", kind="chat")).id == infos[0].id


async def test_a_session_whose_clock_ran_out_is_ended_not_reused() -> None:
    """Past its idle end (not yet applied), create(reuse) ends it idle_timeout and starts anew."""
    store = MemoryStore()
    first = SessionRecord(new_session_id(), UserId("alice"), "chat", POLICY, T0)
    await store.create(first, max_per_user=None, reuse=True)
    later = SessionRecord(new_session_id(), UserId("alice"), "chat", POLICY, T0 + 700)
    created = await store.create(later, max_per_user=None, reuse=True)
    assert not created.reused
    assert created.session.id == later.id
    assert [(c.session.id, c.transition) for c in created.replaced] == [(first.id, Ended(IDLE))]


async def test_concurrent_first_calls_share_one_session_on_redis(redis_server: RedisServer) -> None:
    """On RedisStore, one manager: concurrent calls share one session."""
    store = RedisStore.from_url(redis_server.url, prefix=f"test-{uuid.uuid4().hex[:12]}:")
    try:
        async with SessionManager(store, policy=POLICY, journal=None) as manager:
            infos = await asyncio.gather(*(manager.get_or_start("bob") for _ in range(CALLS)))
            assert len({info.id for info in infos}) == 1
            assert len(await manager.list(user="bob")) == 1
    finally:
        await flush(redis_server.url)


async def test_two_managers_on_one_redis_share_one_session(redis_server: RedisServer) -> None:
    """Two nodes racing on one Redis: every call of both gets the same single session."""
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    a = SessionManager(RedisStore.from_url(redis_server.url, prefix=prefix), policy=POLICY)
    b = SessionManager(RedisStore.from_url(redis_server.url, prefix=prefix), policy=POLICY)
    try:
        async with a, b:
            calls = [m.get_or_start("carol") for _ in range(CALLS // 2) for m in (a, b)]
            infos = await asyncio.gather(*calls)
            assert len({info.id for info in infos}) == 1
            assert len(await a.list(user="carol")) == 1
    finally:
        await flush(redis_server.url)
