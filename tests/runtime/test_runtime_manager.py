"""SessionManager commands: append, per-user limits, shutdown, metrics, cleanup registration."""

from __future__ import annotations

import pytest

from tether.core.events import TranscriptAppended
from tether.core.policy import Policy
from tether.core.transcript import Role
from tether.errors import InvalidInput, SessionEnded, SessionNotFound, TetherError
from tether.testing import DEFAULT_START, RecordingChannel, fake_manager, settle
from tether.types import EndReason, SessionId, SessionState

T0 = DEFAULT_START
POLICY = Policy(idle_timeout=600, warn_before=120, max_duration=1800, presence_timeout=60)
UNKNOWN = SessionId("0" * 32)


async def _noop() -> None:
    return None


async def test_append_numbers_messages_from_one_and_fans_them_out() -> None:
    """append returns messages with seq 1, 2, 3 and sends each to attached channels."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await kit.advance(5)
        first = await kit.manager.append(session.id, "user", "hi")
        second = await kit.manager.append(session.id, "assistant", "hello", {"model": "m"})
        third = await kit.manager.append(session.id, "system", "note")
        await settle()
        assert [m.seq for m in (first, second, third)] == [1, 2, 3]
        assert first.role is Role.USER
        assert first.ts == T0 + 5
        assert second.metadata == {"model": "m"}
        sent = [e.message for e in channel.events if isinstance(e, TranscriptAppended)]
        assert sent == [first, second, third]
        assert await kit.manager.transcript(session.id) == [first, second, third]
        assert (await kit.manager.get(session.id)).message_count == 3


async def test_user_append_is_activity_and_clears_warning() -> None:
    """A user-role append during an idle warning sends session.active and postpones the idle end."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await kit.advance(500)
        await kit.manager.append(session.id, "user", "still here")
        await settle()
        assert channel.types() == [
            "session.config",
            "session.warning",
            "session.active",
            "transcript.message",
        ]
        info = await kit.manager.get(session.id)
        assert info.state is SessionState.ACTIVE
        assert info.last_activity == T0 + 500


async def test_assistant_append_is_not_activity() -> None:
    """An assistant append neither clears an idle warning nor postpones the idle end."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await kit.advance(500)
        await kit.manager.append(session.id, "assistant", "are you there?")
        await settle()
        assert "session.active" not in channel.types()
        info = await kit.manager.get(session.id)
        assert info.state is SessionState.WARNING
        assert info.last_activity == T0
        await kit.advance(100)
        await kit.manager.wait_idle()
        assert (await kit.manager.get(session.id)).end_reason is EndReason.IDLE_TIMEOUT


@pytest.mark.parametrize("role", ["user", "assistant"])
async def test_append_to_ended_session_raises_session_ended(role: str) -> None:
    """Appending to an ended session raises SessionEnded with its reason and stores nothing."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        await kit.manager.end(session.id, EndReason.ADMIN)
        with pytest.raises(SessionEnded) as caught:
            await kit.manager.append(session.id, role, "late")
        assert caught.value.reason is EndReason.ADMIN
        assert await kit.manager.transcript(session.id) == []


@pytest.mark.parametrize("role", ["robot", "", "USER", None])
async def test_bad_role_raises_invalid_input_and_changes_nothing(role: object) -> None:
    """An unknown role raises InvalidInput; no message is stored and no activity recorded."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await kit.advance(10)
        with pytest.raises(InvalidInput):
            await kit.manager.append(session.id, role, "x")  # type: ignore[arg-type]
        await settle()
        info = await kit.manager.get(session.id)
        assert info.message_count == 0
        assert info.last_activity == T0
        assert channel.types() == ["session.config"]


async def test_max_sessions_per_user_replaces_oldest_with_4003() -> None:
    """With max_sessions_per_user=2 a third start ends the oldest as replaced (4003)."""
    async with fake_manager(policy=POLICY, max_sessions_per_user=2) as kit:
        oldest = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(oldest.id, channel)
        await kit.advance(1)
        middle = await kit.manager.start("alice")
        other = await kit.manager.start("bob")
        other_channel = RecordingChannel()
        await kit.manager.attach(other.id, other_channel)
        await kit.advance(1)
        newest = await kit.manager.start("alice")
        await kit.manager.wait_idle()
        assert channel.wire()[-1] == {"type": "session.ended", "reason": "replaced"}
        assert channel.closed is not None
        assert channel.closed[0] == 4003
        assert (await kit.manager.get(oldest.id)).end_reason is EndReason.REPLACED
        live = {s.id for s in await kit.manager.list()}
        assert live == {middle.id, newest.id, other.id}
        assert other_channel.closed is None
        metrics = await kit.manager.metrics()
        assert metrics.ended_by_reason[EndReason.REPLACED] == 1
        assert metrics.total_ended == 1


async def test_aclose_ends_every_session_with_server_shutdown() -> None:
    """aclose ends live sessions as server_shutdown, closes channels 1001, runs cleanups, waits."""
    async with fake_manager(policy=POLICY, max_sessions_per_user=None) as kit:
        ended = []
        kit.manager.on_ended(ended.append)
        cleaned = []
        channels = []
        sessions = []
        for user in ("alice", "bob", "alice"):
            session = await kit.manager.start(user)
            channel = RecordingChannel()
            await kit.manager.attach(session.id, channel)
            sessions.append(session)
            channels.append(channel)

            async def cleanup(sid: SessionId = session.id) -> None:
                cleaned.append(sid)

            await kit.manager.add_cleanup(session.id, cleanup)
        already = await kit.manager.start("carol")
        await kit.manager.end(already.id)
        await kit.manager.aclose()
        for channel in channels:
            assert channel.wire()[-1] == {"type": "session.ended", "reason": "server_shutdown"}
            assert channel.closed == (1001, "server_shutdown")
        assert sorted(cleaned) == sorted(s.id for s in sessions)
        assert sorted(s.id for s in ended[1:]) == sorted(s.id for s in sessions)
        assert {s.end_reason for s in ended[1:]} == {EndReason.SERVER_SHUTDOWN}
        metrics = await kit.manager.metrics()
        assert metrics.active == 0
        assert metrics.ended_by_reason[EndReason.SERVER_SHUTDOWN] == 3
        assert metrics.ended_by_reason[EndReason.CLIENT_ENDED] == 1
        assert kit.clock.pending() == []


async def test_start_and_attach_after_aclose_raise_tether_error() -> None:
    """Once the manager is closed, start() and attach() raise TetherError."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        await kit.manager.aclose()
        with pytest.raises(TetherError):
            await kit.manager.start("alice")
        with pytest.raises(TetherError):
            await kit.manager.attach(session.id, RecordingChannel())
        assert (await kit.manager.metrics()).total_created == 1


async def test_metrics_counts_and_ages_follow_fake_clock() -> None:
    """metrics() reports live count, totals by reason and oldest/newest ages on the fake clock."""
    async with fake_manager(policy=POLICY, max_sessions_per_user=None) as kit:
        empty = await kit.manager.metrics()
        assert empty.active == 0
        assert empty.oldest_age_s is None
        assert empty.newest_age_s is None
        first = await kit.manager.start("alice")
        await kit.manager.attach(first.id, RecordingChannel())
        await kit.advance(10)
        second = await kit.manager.start("bob")
        await kit.manager.attach(second.id, RecordingChannel())
        await kit.advance(5)
        metrics = await kit.manager.metrics()
        assert metrics.active == 2
        assert metrics.total_created == 2
        assert metrics.total_ended == 0
        assert metrics.oldest_age_s == 15
        assert metrics.newest_age_s == 5
        await kit.manager.end(first.id)
        await kit.advance(20)
        metrics = await kit.manager.metrics()
        assert metrics.active == 1
        assert metrics.total_ended == 1
        assert metrics.ended_by_reason[EndReason.CLIENT_ENDED] == 1
        assert metrics.ended_by_reason[EndReason.IDLE_TIMEOUT] == 0
        assert metrics.oldest_age_s == 25
        assert metrics.newest_age_s == 25


async def test_add_cleanup_on_ended_session_raises_session_ended() -> None:
    """add_cleanup after the end raises SessionEnded carrying the end reason."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        await kit.manager.end(session.id, EndReason.ADMIN)
        with pytest.raises(SessionEnded) as caught:
            await kit.manager.add_cleanup(session.id, _noop)
        assert caught.value.reason is EndReason.ADMIN


async def test_add_cleanup_on_unknown_session_raises_not_found() -> None:
    """add_cleanup for an id that never existed raises SessionNotFound."""
    async with fake_manager(policy=POLICY) as kit:
        with pytest.raises(SessionNotFound):
            await kit.manager.add_cleanup(UNKNOWN, _noop)


async def test_commands_on_unknown_session_raise_not_found() -> None:
    """activity, heartbeat, attach, append and end on an unknown id raise SessionNotFound."""
    async with fake_manager(policy=POLICY) as kit:
        with pytest.raises(SessionNotFound):
            await kit.manager.activity(UNKNOWN)
        with pytest.raises(SessionNotFound):
            await kit.manager.heartbeat(UNKNOWN)
        with pytest.raises(SessionNotFound):
            await kit.manager.attach(UNKNOWN, RecordingChannel())
        with pytest.raises(SessionNotFound):
            await kit.manager.append(UNKNOWN, "assistant", "x")
        with pytest.raises(SessionNotFound):
            await kit.manager.end(UNKNOWN)
        assert kit.manager.connections(UNKNOWN) == 0


async def test_cleanups_run_once_on_idle_end() -> None:
    """Cleanups registered on a session run exactly once when the scheduler ends it."""
    async with fake_manager(policy=POLICY) as kit:
        runs = []

        async def cleanup() -> None:
            runs.append(kit.clock.now())

        session = await kit.manager.start("alice")
        await kit.manager.attach(session.id, RecordingChannel())
        await kit.manager.add_cleanup(session.id, cleanup)
        await kit.advance(600)
        await kit.manager.wait_idle()
        assert runs == [T0 + 600]
        assert await kit.manager.end(session.id) is False
        assert runs == [T0 + 600]
