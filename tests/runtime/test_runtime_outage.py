"""Store outages: no session ends because the store was unreachable (fake clock, no sleeps).

The store here is a MemoryStore behind a switch that makes every call raise
``StoreUnavailable`` while it is down (and hides ``touch_nowait``, as a
network store would). The manager notices the outage through its scheduler
and its clients' calls, and once the store answers again it restarts every
presence clock before it claims or writes anything.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tether.core.policy import Policy
from tether.errors import SessionEnded, StoreUnavailable
from tether.runtime.manager import SessionManager
from tether.store.memory import MemoryStore
from tether.testing import DEFAULT_START, FakeClock, settle
from tether.types import EndReason, SessionId, SessionState

T0 = DEFAULT_START
POLICY = Policy(idle_timeout=600, warn_before=0, max_duration=1800, presence_timeout=60)


class SwitchedStore:
    """A MemoryStore that can be switched off: every call then raises ``StoreUnavailable``."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.down = False
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name == "touch_nowait":
            raise AttributeError(name)  # a store on the network always awaits
        attr = getattr(self.inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.down and name != "aclose":
                raise StoreUnavailable("switched off")
            self.calls.append(name)
            return await attr(*args, **kwargs)

        return call

    def after(self, mark: int) -> list[str]:
        """The calls since ``mark``, without the scheduler's ``next_due`` reads."""
        return [c for c in self.calls[mark:] if c != "next_due"]


@asynccontextmanager
async def switched_manager(**options: Any) -> AsyncIterator[tuple[SessionManager, SwitchedStore]]:
    """A running manager on a SwitchedStore and a fake clock (reachable as ``manager.clock``)."""
    store = SwitchedStore()
    manager = SessionManager(store, policy=POLICY, clock=FakeClock(T0), **options)
    async with manager:
        await settle()
        yield manager, store
        store.down = False


def advance(manager: SessionManager) -> Callable[[float], Any]:
    """The fake clock's ``advance`` of ``manager``."""
    clock = manager.clock
    assert isinstance(clock, FakeClock)
    return clock.advance


async def test_a_heartbeating_session_survives_an_outage_longer_than_its_presence() -> None:
    """Heartbeats fail for 140 s (presence 60 s); after recovery the session is still active."""
    async with switched_manager() as (manager, store):
        session = await manager.start("bob")
        await advance(manager)(30)
        await manager.heartbeat(session.id)
        store.down = True
        for _ in range(6):  # T0+55 .. T0+180: every heartbeat fails
            await advance(manager)(25)
            with pytest.raises(StoreUnavailable):
                await manager.heartbeat(session.id)
        store.down = False
        await advance(manager)(2)  # the scheduler retries, resumes, claims: nothing ends
        assert (await manager.get(session.id)).state is SessionState.ACTIVE
        await manager.heartbeat(session.id)
        assert (await manager.get(session.id)).state is SessionState.ACTIVE


async def test_after_an_outage_the_scheduler_resumes_presence_before_it_claims() -> None:
    """The first store calls of the scheduler after recovery: resume_presence, then claim_due."""
    async with switched_manager() as (manager, store):
        session = await manager.start("bob")
        await manager.heartbeat(session.id)  # its presence clock runs
        store.down = True
        await advance(manager)(100)  # the presence deadline (T0+60) fell during the outage
        store.down = False
        mark = len(store.calls)
        await advance(manager)(1)
        assert store.after(mark)[:2] == ["resume_presence", "claim_due"]
        assert (await manager.get(session.id)).state is SessionState.ACTIVE
        # Presence now counts from the recovery: 60 s of silence after it ends the session.
        recovered = (await manager.get(session.id)).last_seen
        assert T0 + 100 <= recovered <= T0 + 101
        await advance(manager)(recovered + 59 - manager.clock.now())
        assert (await manager.get(session.id)).state is SessionState.ACTIVE
        await advance(manager)(2)
        assert (await manager.get(session.id)).end_reason is EndReason.CLIENT_GONE


async def test_a_client_call_right_after_recovery_resumes_presence_first() -> None:
    """A heartbeat that reaches the store before the scheduler does is presence, not a late end."""
    async with switched_manager() as (manager, store):
        session = await manager.start("bob")
        await manager.heartbeat(session.id)  # its presence clock runs
        store.down = True
        await advance(manager)(100)
        with pytest.raises(StoreUnavailable):
            await manager.heartbeat(session.id)
        store.down = False
        mark = len(store.calls)
        await manager.heartbeat(session.id)  # the clock has not moved: the scheduler slept
        assert store.after(mark)[:2] == ["resume_presence", "touch"]
        assert (await manager.get(session.id)).state is SessionState.ACTIVE


async def test_every_kind_of_client_write_waits_for_the_resume() -> None:
    """attach, append and end after an outage each run after resume_presence, once."""
    async with switched_manager() as (manager, store):
        session = await manager.start("bob")
        await manager.heartbeat(session.id)  # its presence clock runs
        store.down = True
        await advance(manager)(100)
        store.down = False
        mark = len(store.calls)
        await manager.append(session.id, "assistant", "still here?")
        await manager.end(session.id)
        calls = store.after(mark)
        assert calls.count("resume_presence") == 1
        assert calls.index("resume_presence") < calls.index("append") < calls.index("end")
        assert (await manager.get(session.id)).end_reason is EndReason.CLIENT_ENDED


async def test_a_resume_that_meets_the_store_still_down_is_tried_again() -> None:
    """A client call during the outage gets StoreUnavailable; the resume runs once it is back."""
    async with switched_manager() as (manager, store):
        session = await manager.start("bob")
        await manager.heartbeat(session.id)  # its presence clock runs
        store.down = True
        await advance(manager)(100)
        with pytest.raises(StoreUnavailable):
            await manager.activity(session.id)
        store.down = False
        await advance(manager)(1)
        assert store.calls.count("resume_presence") == 1
        assert (await manager.get(session.id)).state is SessionState.ACTIVE


async def test_without_an_outage_presence_is_never_resumed() -> None:
    """A store that never failed is never asked to resume: silence ends a session on time."""
    async with switched_manager() as (manager, store):
        session = await manager.start("bob")
        await manager.heartbeat(session.id)  # its presence clock runs
        await advance(manager)(61)
        assert (await manager.get(session.id)).end_reason is EndReason.CLIENT_GONE
        assert "resume_presence" not in store.calls
        with pytest.raises(SessionEnded):
            await manager.heartbeat(session.id)


async def test_an_idle_end_that_fell_during_the_outage_still_ends_the_session() -> None:
    """Only presence is excused: the idle clock ran during the outage and ends it after."""
    async with switched_manager() as (manager, store):
        idle = Policy(idle_timeout=100, warn_before=0, max_duration=1800, presence_timeout=600)
        session = await manager.start("bob", policy=idle)
        store.down = True
        await advance(manager)(150)
        store.down = False
        await advance(manager)(1)
        assert (await manager.get(session.id)).end_reason is EndReason.IDLE_TIMEOUT


async def _after_an_outage(manager: SessionManager, store: SwitchedStore) -> tuple[SessionId, int]:
    """A session whose presence deadline fell during a 100 s outage; the store is back."""
    session = await manager.start("bob")
    await manager.heartbeat(session.id)  # its presence clock runs
    store.down = True
    await advance(manager)(100)
    store.down = False
    return session.id, len(store.calls)


async def test_update_config_during_an_outage_records_it_and_resumes_first_after() -> None:
    """update_config fails with StoreUnavailable while down; after, it runs after the resume."""
    async with switched_manager() as (manager, store):
        session = await manager.start("bob")
        store.down = True
        with pytest.raises(StoreUnavailable):
            await manager.update_config(session.id, {"topic": "x"})
        store.down = False
        mark = len(store.calls)
        info = await manager.update_config(session.id, {"topic": "y"})
        assert store.after(mark)[:2] == ["resume_presence", "update_config"]
        assert info.config == {"topic": "y"}


async def test_update_config_right_after_recovery_resumes_presence_first() -> None:
    """The first call after an outage being update_config: presence is resumed, nothing ends."""
    async with switched_manager() as (manager, store):
        session_id, mark = await _after_an_outage(manager, store)
        await manager.update_config(session_id, {"topic": "y"})
        assert store.after(mark)[:2] == ["resume_presence", "update_config"]
        assert (await manager.get(session_id)).state is SessionState.ACTIVE


async def test_transcript_during_an_outage_records_it_and_resumes_first_after() -> None:
    """transcript fails with StoreUnavailable while down; after, it runs after the resume."""
    async with switched_manager() as (manager, store):
        session = await manager.start("bob")
        await manager.append(session.id, "assistant", "hello")
        store.down = True
        with pytest.raises(StoreUnavailable):
            await manager.transcript(session.id)
        store.down = False
        mark = len(store.calls)
        messages = await manager.transcript(session.id)
        assert store.after(mark)[:2] == ["resume_presence", "transcript"]
        assert [m.content for m in messages] == ["hello"]


async def test_transcript_right_after_recovery_resumes_presence_first() -> None:
    """The first call after an outage being transcript: presence is resumed, nothing ends."""
    async with switched_manager() as (manager, store):
        session_id, mark = await _after_an_outage(manager, store)
        await manager.transcript(session_id)
        assert store.after(mark)[:2] == ["resume_presence", "transcript"]
        assert (await manager.get(session_id)).state is SessionState.ACTIVE


async def test_add_cleanup_during_an_outage_records_it_and_registers_nothing() -> None:
    """add_cleanup fails with StoreUnavailable while down and its callback is never run."""
    ran: list[str] = []

    async def cleanup() -> None:
        ran.append("cleanup")

    async with switched_manager() as (manager, store):
        session = await manager.start("bob")
        store.down = True
        with pytest.raises(StoreUnavailable):
            await manager.add_cleanup(session.id, cleanup)
        store.down = False
        mark = len(store.calls)
        await manager.end(session.id)
        assert store.after(mark)[0] == "resume_presence"
        assert ran == []


async def test_add_cleanup_right_after_recovery_resumes_presence_first() -> None:
    """The first call after an outage being add_cleanup: presence is resumed, the cleanup runs."""
    ran: list[str] = []

    async def cleanup() -> None:
        ran.append("cleanup")

    async with switched_manager() as (manager, store):
        session_id, mark = await _after_an_outage(manager, store)
        await manager.add_cleanup(session_id, cleanup)
        assert store.after(mark)[:2] == ["resume_presence", "get"]
        assert (await manager.get(session_id)).state is SessionState.ACTIVE
        await manager.end(session_id)
        assert ran == ["cleanup"]
