"""manager.send_error: ``error {code, message}`` to every connection of a session, nothing else."""

from __future__ import annotations

import pytest

from tether.core.events import ErrorNotice
from tether.errors import SessionEnded, SessionNotFound
from tether.runtime.bus import Publish, decode, encode
from tether.testing import RecordingChannel, fake_manager, settle
from tether.types import SessionId


async def test_every_connection_of_the_session_gets_the_error_frame() -> None:
    """Each attached channel receives error {code, message}; another session's does not."""
    async with fake_manager() as kit:
        session = await kit.manager.start("alice")
        other = await kit.manager.start("bob")
        first, second, bystander = RecordingChannel(), RecordingChannel(), RecordingChannel()
        await kit.manager.attach(session.id, first)
        await kit.manager.attach(session.id, second)
        await kit.manager.attach(other.id, bystander)
        await kit.manager.send_error(session.id, "reply_failed", "the assistant could not answer")
        await settle()
        frame = {
            "type": "error",
            "code": "reply_failed",
            "message": "the assistant could not answer",
        }
        assert first.wire()[-1] == frame
        assert second.wire()[-1] == frame
        assert "error" not in bystander.types()


async def test_an_error_frame_is_not_activity_and_changes_nothing() -> None:
    """The session's state, activity clock and transcript are as they were."""
    async with fake_manager() as kit:
        session = await kit.manager.start("alice")
        await kit.advance(30)
        before = await kit.manager.get(session.id)
        await kit.manager.send_error(session.id, "reply_failed", "x")
        after = await kit.manager.get(session.id)
        assert (after.state, after.last_activity) == (before.state, before.last_activity)
        assert await kit.manager.transcript(session.id) == []


async def test_an_ended_or_unknown_session_refuses_and_sends_nothing() -> None:
    """After the end: SessionEnded; an unknown id: SessionNotFound; no channel gets a frame."""
    async with fake_manager() as kit:
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await kit.manager.end(session.id)
        with pytest.raises(SessionEnded):
            await kit.manager.send_error(session.id, "reply_failed", "x")
        with pytest.raises(SessionNotFound):
            await kit.manager.send_error(SessionId("cd" * 16), "reply_failed", "x")
        await settle()
        assert "error" not in channel.types()


def test_the_error_frame_travels_on_the_cluster_bus() -> None:
    """An ErrorNotice published on one node decodes to the same notice on another."""
    message = Publish(SessionId("ab" * 16), ErrorNotice("reply_failed", "could not answer"))
    assert decode(encode(message, "node-1"), 0.0) == ("node-1", message)
