"""Fan-out: each channel has its own outbox; slow or broken channels are isolated and dropped."""

from __future__ import annotations

import asyncio

from tether.core.events import TranscriptAppended
from tether.core.policy import Policy
from tether.testing import RecordingChannel, fake_manager, settle
from tether.types import SessionState

POLICY = Policy(idle_timeout=600, warn_before=120, max_duration=1800, presence_timeout=60)
QUEUE_LIMIT = 1024  # Fanout's default outbox bound


async def test_held_channel_does_not_delay_other_channel() -> None:
    """A held channel does not delay another on the session; it catches up on release."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        slow, fast = RecordingChannel(), RecordingChannel()
        slow.hold()
        try:
            await kit.manager.attach(session.id, slow)
            await kit.manager.attach(session.id, fast)
            await kit.manager.append(session.id, "assistant", "one")
            await kit.manager.append(session.id, "assistant", "two")
            await settle()
            assert fast.types() == ["session.config", "transcript.message", "transcript.message"]
            assert slow.events == []
            slow.release()
            await settle()
            assert slow.types() == fast.types()
            assert [
                e.message.content for e in slow.events if isinstance(e, TranscriptAppended)
            ] == [
                "one",
                "two",
            ]
            assert slow.closed is None
        finally:
            slow.release()  # never leave the end pipeline waiting on a held send


async def test_failing_channel_is_dropped_closed_1011_and_uncounted() -> None:
    """A channel whose send raises is dropped, closed 1011 and uncounted in the store."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        broken, healthy = RecordingChannel(), RecordingChannel()
        await kit.manager.attach(session.id, broken)
        await kit.manager.attach(session.id, healthy)
        await settle()
        assert (await kit.manager.get(session.id)).connections == 2
        broken.fail = True
        await kit.manager.append(session.id, "assistant", "hello")
        await kit.manager.wait_idle()
        assert broken.closed is not None
        assert broken.closed[0] == 1011
        assert kit.manager.connections(session.id) == 1
        info = await kit.manager.get(session.id)
        assert info.connections == 1
        assert info.state is SessionState.ACTIVE
        assert healthy.types() == ["session.config", "transcript.message"]
        # The dropped channel gets nothing more.
        await kit.manager.append(session.id, "assistant", "again")
        await settle()
        assert healthy.types()[-1] == "transcript.message"
        assert len(healthy.events) == 3
        assert broken.types() == ["session.config"]


async def test_failing_last_channel_starts_presence_clock() -> None:
    """Dropping the only channel releases presence: the session ends client_gone after the grace."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        broken = RecordingChannel()
        await kit.manager.attach(session.id, broken)
        await kit.advance(100)
        broken.fail = True
        await kit.manager.update_config(session.id, {"x": 1})
        await kit.manager.wait_idle()
        assert broken.closed is not None
        assert broken.closed[0] == 1011
        await kit.advance(59.5)
        assert (await kit.manager.get(session.id)).state is SessionState.ACTIVE
        await kit.advance(0.5)
        await kit.manager.wait_idle()
        assert (await kit.manager.get(session.id)).end_reason == "client_gone"


async def test_outbox_overflow_drops_only_the_slow_channel() -> None:
    """A held channel is dropped (1011) on the event past its outbox bound; others get all."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        slow, fast = RecordingChannel(), RecordingChannel()
        await kit.manager.attach(session.id, fast)
        slow.hold()
        try:
            await kit.manager.attach(session.id, slow)
            await settle()  # slow's writer takes session.config and blocks on it
            for i in range(QUEUE_LIMIT):
                await kit.manager.append(session.id, "assistant", f"m{i}")
                await asyncio.sleep(0)  # a producer that yields: fast's writer keeps up
            assert slow.closed is None
            assert kit.manager.connections(session.id) == 2
            await kit.manager.append(session.id, "assistant", "overflow")
            await settle()  # not wait_idle(): it would wait for a held writer
            assert slow.closed is not None
            assert slow.closed[0] == 1011
            assert slow.events == []
            assert kit.manager.connections(session.id) == 1
            assert (await kit.manager.get(session.id)).connections == 1
            assert fast.closed is None
            assert len(fast.events) == 1 + QUEUE_LIMIT + 1
            assert fast.types().count("transcript.message") == QUEUE_LIMIT + 1
        finally:
            slow.release()  # never leave the end pipeline waiting on a held send


async def test_update_config_broadcasts_to_every_attached_channel() -> None:
    """update_config stores the config and sends session.config with it to every channel."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice", config={"v": 1})
        channels = [RecordingChannel() for _ in range(3)]
        for channel in channels:
            await kit.manager.attach(session.id, channel)
        info = await kit.manager.update_config(session.id, {"v": 2})
        await settle()
        assert info.config == {"v": 2}
        assert (await kit.manager.get(session.id)).config == {"v": 2}
        for channel in channels:
            assert channel.wire() == [
                {"type": "session.config", "config": {"v": 1}},
                {"type": "session.config", "config": {"v": 2}},
            ]


async def test_events_are_not_sent_to_other_sessions_channels() -> None:
    """A session's events reach only channels attached to that session."""
    async with fake_manager(policy=POLICY) as kit:
        one = await kit.manager.start("alice")
        two = await kit.manager.start("bob")
        mine, theirs = RecordingChannel(), RecordingChannel()
        await kit.manager.attach(one.id, mine)
        await kit.manager.attach(two.id, theirs)
        await kit.manager.append(one.id, "assistant", "hi")
        await kit.manager.end(one.id)
        await settle()
        assert mine.types() == ["session.config", "transcript.message", "session.ended"]
        assert theirs.types() == ["session.config"]
        assert theirs.closed is None


async def test_detached_channel_receives_nothing_more() -> None:
    """After detach a channel is neither sent events nor closed by the session's end."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await settle()
        await kit.manager.detach(session.id, channel)
        await kit.manager.append(session.id, "assistant", "hi")
        await kit.manager.end(session.id)
        await settle()
        assert channel.types() == ["session.config"]
        assert channel.closed is None


async def test_burst_of_appends_without_yielding_does_not_drop_healthy_channel() -> None:
    """A burst of appends past the outbox bound must not drop a channel that keeps up."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        healthy = RecordingChannel()  # never held, never failing
        await kit.manager.attach(session.id, healthy)
        await settle()
        for i in range(QUEUE_LIMIT + 1):
            await kit.manager.append(session.id, "assistant", f"m{i}")
        await kit.manager.wait_idle()
        assert healthy.closed is None
        assert kit.manager.connections(session.id) == 1
        assert healthy.types().count("transcript.message") == QUEUE_LIMIT + 1
