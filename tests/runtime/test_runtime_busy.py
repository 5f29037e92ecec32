"""Busy time through the manager on a fake clock: the idle clock does not run out while busy."""

from __future__ import annotations

import asyncio

import pytest

from tether.core.events import SessionEndedEvent, SessionWarning
from tether.core.ids import new_session_id
from tether.core.policy import Policy
from tether.errors import SessionEnded, SessionNotFound
from tether.testing import DEFAULT_START, FakeKit, RecordingChannel, fake_manager, settle
from tether.types import EndReason, SessionId, SessionState

T0 = DEFAULT_START
POLICY = Policy(idle_timeout=10, warn_before=2, max_duration=1000, presence_timeout=60)


async def attached(kit: FakeKit) -> tuple[SessionId, RecordingChannel]:
    """A new session with a channel attached (it holds presence: only idle and lifetime run)."""
    session = await kit.manager.start("alice")
    channel = RecordingChannel()
    await kit.manager.attach(session.id, channel)
    return session.id, channel


async def test_busy_from_5_to_30_warns_at_38_and_ends_idle_at_40() -> None:
    """Idle 10 s, warn 2 s, busy 5..30: nothing until 30+8 warns, 30+10 ends idle_timeout."""
    async with fake_manager(policy=POLICY) as kit:
        sid, channel = await attached(kit)
        await kit.advance(5)
        await kit.manager.set_busy(sid, True)
        for _ in range(25):  # t = 6 .. 30, past the old warning (8) and end (10)
            await kit.advance(1)
            assert channel.types() == ["session.config"]
        info = await kit.manager.get(sid)
        assert (info.state, info.busy) == (SessionState.ACTIVE, True)
        await kit.manager.set_busy(sid, False)
        assert (await kit.manager.get(sid)).last_activity == T0 + 30
        await kit.advance(7.5)
        assert channel.types() == ["session.config"]
        await kit.advance(0.5)  # t = 38
        assert channel.types() == ["session.config", "session.warning"]
        warning = channel.events[-1]
        assert isinstance(warning, SessionWarning)
        assert (warning.reason, warning.ends_at, warning.seconds_left) == (
            EndReason.IDLE_TIMEOUT,
            T0 + 40,
            2,
        )
        await kit.advance(1.5)
        assert channel.closed is None
        await kit.advance(0.5)  # t = 40
        await kit.manager.wait_idle()
        assert channel.wire()[-1] == {"type": "session.ended", "reason": "idle_timeout"}
        assert channel.closed is not None
        assert channel.closed[0] == 4001
        info = await kit.manager.get(sid)
        assert (info.end_reason, info.ended_at) == (EndReason.IDLE_TIMEOUT, T0 + 40)


async def test_busy_during_an_idle_warning_sends_active() -> None:
    """Becoming busy in an idle warning clears it as activity does: session.active."""
    async with fake_manager(policy=POLICY) as kit:
        sid, channel = await attached(kit)
        await kit.advance(9)
        assert channel.types() == ["session.config", "session.warning"]
        await kit.manager.set_busy(sid, True)
        await settle()
        assert channel.types() == ["session.config", "session.warning", "session.active"]
        await kit.advance(100)
        assert (await kit.manager.get(sid)).state is SessionState.ACTIVE


async def test_max_duration_still_ends_a_busy_session() -> None:
    """Busy from t=1 for good: the lifetime warning comes at 18 and the end at 20 (4002)."""
    async with fake_manager(policy=Policy(10, 2, 20, 60)) as kit:
        sid, channel = await attached(kit)
        await kit.advance(1)
        await kit.manager.set_busy(sid, True)
        await kit.advance(16.5)
        assert channel.types() == ["session.config"]
        await kit.advance(0.5)
        warning = channel.events[-1]
        assert isinstance(warning, SessionWarning)
        assert warning.reason is EndReason.MAX_DURATION
        await kit.advance(2)
        await kit.manager.wait_idle()
        assert isinstance(channel.events[-1], SessionEndedEvent)
        assert channel.events[-1].reason is EndReason.MAX_DURATION
        assert (await kit.manager.get(sid)).ended_at == T0 + 20


async def test_the_busy_block_nests_with_set_busy_and_closes_on_error() -> None:
    """A block inside an open mark leaves it busy; the last close restarts idle (errors too)."""
    async with fake_manager(policy=POLICY) as kit:
        sid, channel = await attached(kit)
        await kit.manager.set_busy(sid, True)  # the app's speech

        async def failing_reply() -> None:
            async with kit.manager.busy(sid):  # a reply
                await kit.advance(20)
                raise RuntimeError("reply failed")

        with pytest.raises(RuntimeError, match="reply failed"):
            await failing_reply()
        assert (await kit.manager.get(sid)).busy is True  # the speech's mark is still open
        await kit.advance(20)
        assert channel.types() == ["session.config"]
        await kit.manager.set_busy(sid, False)
        info = await kit.manager.get(sid)
        assert (info.busy, info.last_activity) == (False, T0 + 40)
        await kit.advance(8)
        assert channel.types() == ["session.config", "session.warning"]


async def test_a_cancelled_busy_block_closes_its_mark() -> None:
    """A task cancelled inside ``busy()`` (a barged-in reply) still closes its mark."""
    async with fake_manager(policy=POLICY) as kit:
        sid, _ = await attached(kit)
        entered = asyncio.Event()

        async def reply() -> None:
            async with kit.manager.busy(sid):
                entered.set()
                await asyncio.Event().wait()

        task = asyncio.create_task(reply())
        await entered.wait()
        assert (await kit.manager.get(sid)).busy is True
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await kit.manager.get(sid)).busy is False


async def test_a_busy_block_outlived_by_its_session_exits_quietly() -> None:
    """The session ends inside the block: leaving it raises nothing; set_busy after raises."""
    async with fake_manager(policy=POLICY) as kit:
        sid, _ = await attached(kit)
        async with kit.manager.busy(sid):
            await kit.manager.end(sid)
        with pytest.raises(SessionEnded):
            await kit.manager.set_busy(sid, True)
        with pytest.raises(SessionNotFound):
            await kit.manager.set_busy(new_session_id(), True)


async def test_a_streaming_reply_keeps_the_idle_clock_from_running_out() -> None:
    """A reply streaming 5..30 (idle 10, warn 2): no warning while it streams, warning at 38."""
    async with fake_manager(policy=POLICY) as kit:
        sid, channel = await attached(kit)
        await kit.advance(5)
        async with kit.manager.reply(sid) as reply:
            assert (await kit.manager.get(sid)).busy is True
            for n in range(25):  # one piece a second, t = 6 .. 30
                await reply.delta(f"w{n} ")
                await kit.advance(1)
            assert "session.warning" not in channel.types()
        info = await kit.manager.get(sid)
        assert (info.busy, info.last_activity) == (False, T0 + 30)
        assert [m.content for m in await kit.manager.transcript(sid)] == [
            "".join(f"w{n} " for n in range(25))
        ]
        await kit.advance(7.5)
        assert "session.warning" not in channel.types()
        await kit.advance(0.5)  # t = 38
        assert channel.types()[-1] == "session.warning"


async def test_a_reply_cut_by_the_end_leaves_no_busy_mark_behind() -> None:
    """A reply open when max_duration ends the session: sent partial, the end raises nothing."""
    async with fake_manager(policy=Policy(10, 2, 20, 60)) as kit:
        sid, channel = await attached(kit)

        async def stream() -> None:
            async with kit.manager.reply(sid) as reply:
                await reply.delta("half an answer")
                await asyncio.Event().wait()  # never finishes by itself

        task = kit.manager.spawn(sid, stream())
        await settle()
        await kit.advance(20)
        await kit.manager.wait_idle()
        assert task.cancelled()
        info = await kit.manager.get(sid)
        assert (info.end_reason, info.busy) == (EndReason.MAX_DURATION, False)
        stored = [e.to_wire() for e in channel.events if e.type == "transcript.message"]
        assert [(m["message"]["content"], m["message"]["metadata"]["partial"]) for m in stored] == [
            ("half an answer", True)
        ]
        assert channel.types()[-1] == "session.ended"
