"""Ending hooks and ``send_event``: what an app sends as a session ends arrives before the end."""

from __future__ import annotations

from tether.core.events import CallStatusChanged, SessionEndedEvent
from tether.core.policy import Policy
from tether.core.session import SessionInfo
from tether.runtime.bus import Publish, decode, encode
from tether.testing import RecordingChannel, fake_manager
from tether.types import EndReason, SessionId


async def test_an_ending_hook_speaks_before_session_ended_on_every_end_path() -> None:
    """client_ended and idle_timeout alike: the hook's event precedes session.ended."""
    policy = Policy(idle_timeout=60, warn_before=0, max_duration=3600)
    async with fake_manager(policy=policy) as kit:
        manager = kit.manager
        seen: list[tuple[str, EndReason | None]] = []

        @manager.on_ending
        async def announce(session: SessionInfo) -> None:
            seen.append((session.id, session.end_reason))
            event = CallStatusChanged("ended", session.id, "MZ1")
            await manager.send_event(session.id, event)

        ended_here = await manager.start("alice")
        idle = await manager.start("bob")
        channels = {ended_here.id: RecordingChannel(), idle.id: RecordingChannel()}
        for sid, channel in channels.items():
            await manager.attach(sid, channel)
        await manager.end(ended_here.id)
        await kit.advance(60)
        await manager.wait_idle()

        assert seen == [
            (ended_here.id, EndReason.CLIENT_ENDED),
            (idle.id, EndReason.IDLE_TIMEOUT),
        ]
        for sid, channel in channels.items():
            tail = channel.events[-2:]
            assert tail[0] == CallStatusChanged("ended", sid, "MZ1")
            assert isinstance(tail[1], SessionEndedEvent)


async def test_send_event_reaches_every_connection_of_the_session() -> None:
    """send_event delivers to each attached channel of that session and no other."""
    async with fake_manager() as kit:
        manager = kit.manager
        one, other = await manager.start("alice"), await manager.start("bob")
        a, b, c = RecordingChannel(), RecordingChannel(), RecordingChannel()
        await manager.attach(one.id, a)
        await manager.attach(one.id, b)
        await manager.attach(other.id, c)
        event = CallStatusChanged("in-progress", one.id, "MZ1")
        await manager.send_event(one.id, event)
        await manager.wait_idle()
        assert event in a.events
        assert event in b.events
        assert event not in c.events


def test_call_status_travels_on_the_bus() -> None:
    """A call.status_changed published on one node decodes to the same event on another."""
    sid = SessionId("cd" * 16)
    message = Publish(sid, CallStatusChanged("ended", sid, "MZ" + "2" * 32))
    assert decode(encode(message, "node-1"), 0.0) == ("node-1", message)
    wire = message.event.to_wire()
    assert wire == {
        "type": "call.status_changed",
        "status": "ended",
        "session_id": sid,
        "stream_sid": "MZ" + "2" * 32,
    }
