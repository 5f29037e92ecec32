"""Races: touches and ends at the deadline instant, concurrent ends, failing cleanups."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from tether.core.events import SessionEndedEvent
from tether.core.policy import Policy
from tether.errors import SessionEnded
from tether.testing import DEFAULT_START, FakeKit, RecordingChannel, fake_manager, settle
from tether.types import EndReason, SessionId, SessionState

T0 = DEFAULT_START
QUIET = Policy(idle_timeout=600, warn_before=0, max_duration=1800, presence_timeout=0)
T = TypeVar("T")


class BeforeScheduler:
    """Runs ``action(session_id)`` at the idle deadline instant, ahead of the scheduler.

    The timer is registered before the session exists, so at the shared instant
    it fires first and the action's task runs before the scheduler's pass.
    ``seen`` records the session's state at the moment the action began.
    """

    def __init__(self, kit: FakeKit, action: Callable[[SessionId], Awaitable[T]]) -> None:
        self.kit = kit
        self.action = action
        self.tasks: list[asyncio.Task[T]] = []
        self.seen: list[SessionState] = []
        self.session_id: SessionId | None = None
        kit.clock.call_later(600, lambda: self.tasks.append(asyncio.ensure_future(self._run())))

    async def _run(self) -> T:
        assert self.session_id is not None
        info = await self.kit.store.get(self.session_id)  # same loop step as the action
        assert info is not None
        self.seen.append(info.state)
        return await self.action(self.session_id)

    async def start(self) -> tuple[SessionId, RecordingChannel]:
        """Start the session and attach a channel; the action is armed at its idle end."""
        session = await self.kit.manager.start("alice")
        self.session_id = session.id
        channel = RecordingChannel()
        await self.kit.manager.attach(session.id, channel)
        return session.id, channel


async def test_activity_after_scheduler_at_deadline_instant_raises_idle_timeout() -> None:
    """Scheduler first: activity at the idle deadline instant finds it ended as idle_timeout."""
    async with fake_manager(policy=QUIET) as kit:
        session = await kit.manager.start("alice")
        await kit.advance(599.5)
        assert (await kit.manager.get(session.id)).state is SessionState.ACTIVE
        await kit.advance(0.5)
        with pytest.raises(SessionEnded) as caught:
            await kit.manager.activity(session.id)
        assert caught.value.reason is EndReason.IDLE_TIMEOUT
        await kit.manager.wait_idle()
        info = await kit.manager.get(session.id)
        assert info.end_reason is EndReason.IDLE_TIMEOUT
        assert info.ended_at == T0 + 600
        assert (await kit.manager.metrics()).total_ended == 1


async def test_activity_before_scheduler_at_deadline_instant_still_ends_idle() -> None:
    """Activity first: a touch at the exact idle deadline ends the session as idle_timeout."""
    async with fake_manager(policy=QUIET) as kit:
        ended = []
        kit.manager.on_ended(ended.append)
        race = BeforeScheduler(kit, kit.manager.activity)
        session_id, channel = await race.start()
        await kit.advance(599.5)
        assert (await kit.manager.get(session_id)).state is SessionState.ACTIVE
        await kit.advance(0.5)
        assert race.seen == [SessionState.ACTIVE]  # the touch really came before the scheduler
        with pytest.raises(SessionEnded) as caught:
            await race.tasks[0]
        assert caught.value.reason is EndReason.IDLE_TIMEOUT
        await kit.manager.wait_idle()
        assert [s.end_reason for s in ended] == [EndReason.IDLE_TIMEOUT]
        assert channel.types().count("session.ended") == 1
        assert channel.closed is not None
        assert channel.closed[0] == 4001
        assert (await kit.manager.metrics()).total_ended == 1


async def test_activity_just_before_deadline_keeps_session_alive() -> None:
    """Activity a moment before the idle deadline moves the end a full idle_timeout later."""
    async with fake_manager(policy=QUIET) as kit:
        session = await kit.manager.start("alice")
        await kit.advance(599.5)
        await kit.manager.activity(session.id)
        await kit.advance(0.5)
        await kit.advance(599)
        assert (await kit.manager.get(session.id)).state is SessionState.ACTIVE
        await kit.advance(0.5)
        await kit.manager.wait_idle()
        info = await kit.manager.get(session.id)
        assert info.end_reason is EndReason.IDLE_TIMEOUT
        assert info.ended_at == T0 + 1199.5


async def test_fifty_concurrent_ends_end_exactly_once() -> None:
    """Of 50 concurrent end() calls one returns True; one event, one close, one hook, one count."""
    async with fake_manager(policy=QUIET) as kit:
        ended = []
        kit.manager.on_ended(ended.append)
        cleanups = []

        async def cleanup() -> None:
            cleanups.append(1)

        session = await kit.manager.start("alice")
        await kit.manager.add_cleanup(session.id, cleanup)
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        results = await asyncio.gather(*(kit.manager.end(session.id) for _ in range(50)))
        assert results.count(True) == 1
        assert results.count(False) == 49
        await kit.manager.wait_idle()
        assert channel.types().count("session.ended") == 1
        assert channel.wire()[-1] == {"type": "session.ended", "reason": "client_ended"}
        assert channel.closed == (1000, "client_ended")
        assert len(ended) == 1
        assert ended[0].end_reason is EndReason.CLIENT_ENDED
        assert cleanups == [1]
        metrics = await kit.manager.metrics()
        assert metrics.total_ended == 1
        assert metrics.ended_by_reason[EndReason.CLIENT_ENDED] == 1


async def test_end_false_callers_wait_for_the_running_pipeline() -> None:
    """A losing end() returns only after the winner's pipeline (cleanups included) finished."""
    async with fake_manager(policy=QUIET, cleanup_timeout=10) as kit:
        release = asyncio.Event()
        done = []

        async def slow_cleanup() -> None:
            await release.wait()
            done.append(1)

        session = await kit.manager.start("alice")
        await kit.manager.add_cleanup(session.id, slow_cleanup)
        try:
            winner = asyncio.ensure_future(kit.manager.end(session.id))
            loser = asyncio.ensure_future(kit.manager.end(session.id))
            await settle()
            assert not winner.done()
            assert not loser.done()
            release.set()
            assert await winner is True
            assert await loser is False
            assert done == [1]
        finally:
            release.set()  # a failed assertion must not leave aclose() waiting


async def test_raising_cleanup_does_not_stop_the_others() -> None:
    """Every cleanup runs newest first even when one raises; the failure is counted once."""
    async with fake_manager(policy=QUIET) as kit:
        order = []

        def make(name: str, *, fail: bool = False):
            async def cleanup() -> None:
                order.append(name)
                if fail:
                    raise RuntimeError(f"{name} broke")

            return cleanup

        session = await kit.manager.start("alice")
        for name in ("a", "b", "c", "d"):
            await kit.manager.add_cleanup(session.id, make(name, fail=name == "c"))
        assert await kit.manager.end(session.id) is True
        assert order == ["d", "c", "b", "a"]
        metrics = await kit.manager.metrics()
        assert metrics.cleanup_failures == 1
        assert metrics.total_ended == 1


async def test_cleanup_raising_synchronously_is_contained() -> None:
    """A cleanup that raises when called (not awaitable) is counted and the others still run."""
    async with fake_manager(policy=QUIET) as kit:
        order = []

        def broken():  # type: ignore[no-untyped-def]
            order.append("broken")
            raise RuntimeError("not even a coroutine")

        async def fine() -> None:
            order.append("fine")

        session = await kit.manager.start("alice")
        await kit.manager.add_cleanup(session.id, fine)
        await kit.manager.add_cleanup(session.id, broken)
        assert await kit.manager.end(session.id) is True
        assert order == ["broken", "fine"]
        assert (await kit.manager.metrics()).cleanup_failures == 1


async def test_hanging_cleanup_is_abandoned_after_cleanup_timeout() -> None:
    """A hanging cleanup holds the pipeline exactly cleanup_timeout, then earlier ones still run."""
    async with fake_manager(policy=QUIET, cleanup_timeout=5) as kit:
        order = []
        hung_cancelled = []

        async def first() -> None:
            order.append("first")

        async def hang() -> None:
            order.append("hang")
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                hung_cancelled.append(1)
                raise

        async def last() -> None:
            order.append("last")

        session = await kit.manager.start("alice")
        await kit.manager.add_cleanup(session.id, first)
        await kit.manager.add_cleanup(session.id, hang)
        await kit.manager.add_cleanup(session.id, last)
        try:
            ending = asyncio.ensure_future(kit.manager.end(session.id))
            await settle()
            assert order == ["last", "hang"]
            await kit.advance(4.5)
            assert order == ["last", "hang"]
            assert not ending.done()
            await kit.advance(0.5)
            assert await ending is True
            assert order == ["last", "hang", "first"]
            assert hung_cancelled == [1]
            metrics = await kit.manager.metrics()
            assert metrics.cleanup_failures == 1
            assert metrics.total_ended == 1
        finally:
            await kit.advance(60)  # a failed assertion must not leave aclose() waiting


async def test_explicit_end_before_scheduler_at_idle_instant_ends_once() -> None:
    """end() running before the scheduler at the idle instant still ends it as idle_timeout."""
    async with fake_manager(policy=QUIET) as kit:
        ended = []
        kit.manager.on_ended(ended.append)
        race = BeforeScheduler(kit, kit.manager.end)
        session_id, channel = await race.start()
        await kit.advance(600)
        await kit.manager.wait_idle()
        assert race.seen == [SessionState.ACTIVE]  # end() really came before the scheduler
        assert await race.tasks[0] is True
        reasons = [e.reason for e in channel.events if isinstance(e, SessionEndedEvent)]
        assert reasons == [EndReason.IDLE_TIMEOUT]  # deadlines are inclusive
        assert [s.end_reason for s in ended] == reasons
        assert (await kit.manager.get(session_id)).end_reason is reasons[0]
        metrics = await kit.manager.metrics()
        assert metrics.total_ended == 1
        assert metrics.ended_by_reason[reasons[0]] == 1


async def test_scheduler_idle_end_before_explicit_end_at_same_instant_ends_once() -> None:
    """Scheduler first at the idle instant: end() returns False; the one reason is idle_timeout."""
    async with fake_manager(policy=QUIET) as kit:
        ended = []
        kit.manager.on_ended(ended.append)
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await kit.advance(600)
        assert await kit.manager.end(session.id) is False
        await kit.manager.wait_idle()
        assert [s.end_reason for s in ended] == [EndReason.IDLE_TIMEOUT]
        assert channel.types().count("session.ended") == 1
        assert channel.closed is not None
        assert channel.closed[0] == 4001
        assert (await kit.manager.metrics()).total_ended == 1
