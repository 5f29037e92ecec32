"""Session lifecycle as attached channels see it: config, warnings, ends, presence."""

from __future__ import annotations

import pytest

from tether.core.events import SessionEndedEvent, SessionWarning
from tether.core.policy import Policy
from tether.errors import SessionEnded
from tether.testing import DEFAULT_START, RecordingChannel, fake_manager, settle
from tether.types import EndReason, SessionState

T0 = DEFAULT_START
POLICY = Policy(idle_timeout=600, warn_before=120, max_duration=1800, presence_timeout=60)


async def test_attach_sends_config_first() -> None:
    """A channel attached to a fresh session receives session.config with its config first."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice", config={"voice": "calm"})
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await settle()
        assert channel.wire() == [{"type": "session.config", "config": {"voice": "calm"}}]


async def test_attach_during_warning_gets_config_then_current_warning() -> None:
    """Attaching during an idle warning sends config, then the warning with the time left."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        await kit.manager.attach(session.id, RecordingChannel())  # holds presence
        await kit.advance(500)
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await settle()
        assert channel.types() == ["session.config", "session.warning"]
        warning = channel.events[1]
        assert isinstance(warning, SessionWarning)
        assert warning.reason is EndReason.IDLE_TIMEOUT
        assert warning.ends_at == T0 + 600
        assert warning.seconds_left == 100


async def test_idle_warning_fires_exactly_at_idle_timeout_minus_warn_before() -> None:
    """No warning just before idle_timeout - warn_before; at it, one with warn_before left."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await kit.advance(479.5)
        assert channel.types() == ["session.config"]
        assert (await kit.manager.get(session.id)).state is SessionState.ACTIVE
        await kit.advance(0.5)
        assert channel.types() == ["session.config", "session.warning"]
        warning = channel.events[-1]
        assert isinstance(warning, SessionWarning)
        assert warning.reason is EndReason.IDLE_TIMEOUT
        assert warning.seconds_left == 120
        assert warning.ends_at == T0 + 600
        assert (await kit.manager.get(session.id)).state is SessionState.WARNING
        assert (await kit.manager.metrics()).warnings == 1


async def test_activity_during_warning_sends_active_and_counts_extension() -> None:
    """Activity during an idle warning sends session.active and counts one extension."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await kit.advance(500)
        await kit.manager.activity(session.id)
        await settle()
        assert channel.types() == ["session.config", "session.warning", "session.active"]
        info = await kit.manager.get(session.id)
        assert info.state is SessionState.ACTIVE
        assert info.warning is None
        assert (await kit.manager.metrics()).extended_after_warning == 1
        # The idle end moved: nothing ends at the old deadline.
        await kit.advance(100)
        assert (await kit.manager.get(session.id)).state is SessionState.ACTIVE


async def test_idle_end_at_exact_deadline_sends_ended_then_closes_4001() -> None:
    """At idle_timeout the channel gets session.ended{idle_timeout} and then close code 4001."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await kit.advance(599.5)
        assert channel.closed is None
        assert (await kit.manager.get(session.id)).state is SessionState.WARNING
        await kit.advance(0.5)
        await kit.manager.wait_idle()
        assert channel.wire()[-1] == {"type": "session.ended", "reason": "idle_timeout"}
        assert channel.closed is not None
        assert channel.closed[0] == 4001
        info = await kit.manager.get(session.id)
        assert info.state is SessionState.ENDED
        assert info.end_reason is EndReason.IDLE_TIMEOUT
        assert info.ended_at == T0 + 600


async def test_max_duration_ends_busy_session_with_4002_at_created_plus_max() -> None:
    """Despite activity, a lifetime warning comes at max - warn_before and the end at max."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        for _ in range(17):  # activity every 100 s up to t = 1700
            await kit.advance(100)
            await kit.manager.activity(session.id)
        await settle()
        warnings = [e for e in channel.events if isinstance(e, SessionWarning)]
        assert len(warnings) == 1
        assert warnings[0].reason is EndReason.MAX_DURATION
        assert warnings[0].ends_at == T0 + 1800
        assert warnings[0].seconds_left == 120  # sent at t = 1680
        assert "session.active" not in channel.types()  # activity cannot clear it
        await kit.advance(99.5)
        assert channel.closed is None
        await kit.advance(0.5)
        await kit.manager.wait_idle()
        assert isinstance(channel.events[-1], SessionEndedEvent)
        assert channel.events[-1].reason is EndReason.MAX_DURATION
        assert channel.closed is not None
        assert channel.closed[0] == 4002
        assert (await kit.manager.get(session.id)).ended_at == T0 + 1800


async def test_an_http_only_session_under_defaults_warns_then_ends_idle_timeout() -> None:
    """No connection, no heartbeat (plain HTTP requests): warned at 480 s, idle_timeout at 600 s."""
    async with fake_manager() as kit:  # the default Policy: presence_timeout 60
        session = await kit.manager.start("alice")
        warned: list[float] = []
        kit.manager.on_warning(lambda info: _record(warned, kit.clock.now()))
        await kit.advance(120)
        await kit.manager.activity(session.id)  # a request at T0 + 120
        await kit.advance(479)
        assert (await kit.manager.get(session.id)).state is SessionState.ACTIVE
        await kit.advance(1)
        await kit.manager.wait_idle()
        assert warned == [T0 + 600]
        assert (await kit.manager.get(session.id)).state is SessionState.WARNING
        await kit.advance(120)
        await kit.manager.wait_idle()
        info = await kit.manager.get(session.id)
        assert info.end_reason is EndReason.IDLE_TIMEOUT
        assert info.ended_at == T0 + 720


async def test_a_first_heartbeat_starts_presence_and_silence_then_ends_client_gone() -> None:
    """Heartbeats signal presence: after the last one, client_gone at presence_timeout."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        await kit.advance(10)
        await kit.manager.heartbeat(session.id)  # arms T0 + 70, before the idle warning
        await kit.advance(59.5)
        assert (await kit.manager.get(session.id)).state is SessionState.ACTIVE
        await kit.advance(0.5)
        await kit.manager.wait_idle()
        info = await kit.manager.get(session.id)
        assert info.end_reason is EndReason.CLIENT_GONE
        assert info.ended_at == T0 + 70
        with pytest.raises(SessionEnded) as caught:
            await kit.manager.heartbeat(session.id)
        assert caught.value.reason is EndReason.CLIENT_GONE


async def test_a_session_started_present_ends_client_gone_if_never_attached() -> None:
    """start(present=True), a WebSocket's start, runs presence from the start: client_gone at 60."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice", present=True)
        await kit.advance(59.5)
        assert (await kit.manager.get(session.id)).state is SessionState.ACTIVE
        await kit.advance(0.5)
        await kit.manager.wait_idle()
        info = await kit.manager.get(session.id)
        assert info.end_reason is EndReason.CLIENT_GONE
        assert info.ended_at == T0 + 60


async def _record(into: list[float], at: float) -> None:
    into.append(at)


async def test_heartbeats_hold_presence_but_do_not_postpone_idle_end() -> None:
    """Heartbeats every 30 s outlive presence_timeout, yet the session still idles out at 600 s."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        for _ in range(19):  # heartbeats up to t = 570
            await kit.advance(30)
            await kit.manager.heartbeat(session.id)
        info = await kit.manager.get(session.id)
        assert info.state is SessionState.WARNING  # alive well past presence_timeout
        assert info.warning is not None
        assert info.warning.reason is EndReason.IDLE_TIMEOUT
        await kit.advance(30)
        await kit.manager.wait_idle()
        info = await kit.manager.get(session.id)
        assert info.end_reason is EndReason.IDLE_TIMEOUT
        assert info.ended_at == T0 + 600


async def test_detach_starts_presence_clock_and_reattach_within_grace_keeps_session() -> None:
    """After the last detach the session lives presence_timeout; reattaching inside it keeps it."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        first = RecordingChannel()
        await kit.manager.attach(session.id, first)
        await kit.advance(100)  # attached: well past presence_timeout, still alive
        assert (await kit.manager.get(session.id)).state is SessionState.ACTIVE
        await kit.manager.detach(session.id, first)
        await kit.advance(59.5)
        second = RecordingChannel()
        await kit.manager.attach(session.id, second)
        await kit.advance(60)
        assert (await kit.manager.get(session.id)).state is SessionState.ACTIVE
        await kit.manager.detach(session.id, second)
        await kit.advance(60)
        await kit.manager.wait_idle()
        info = await kit.manager.get(session.id)
        assert info.end_reason is EndReason.CLIENT_GONE
        assert info.ended_at == T0 + 100 + 59.5 + 60 + 60


async def test_presence_zero_ends_when_last_channel_detaches_without_time_passing() -> None:
    """presence_timeout=0 ends the session client_gone the moment its last channel detaches."""
    policy = Policy(idle_timeout=600, warn_before=120, max_duration=1800, presence_timeout=0)
    async with fake_manager(policy=policy) as kit:
        ended = []
        kit.manager.on_ended(ended.append)
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await kit.advance(10)
        assert (await kit.manager.get(session.id)).state is SessionState.ACTIVE
        await kit.manager.detach(session.id, channel)
        await settle()  # no clock movement: only an early wake-up can end it
        await kit.manager.wait_idle()
        info = await kit.manager.get(session.id)
        assert info.end_reason is EndReason.CLIENT_GONE
        assert info.ended_at == T0 + 10
        assert [s.end_reason for s in ended] == [EndReason.CLIENT_GONE]


async def test_presence_zero_session_never_attached_is_not_ended_by_presence() -> None:
    """presence_timeout=0 does not end a session nobody has attached to yet."""
    policy = Policy(idle_timeout=600, warn_before=120, max_duration=1800, presence_timeout=0)
    async with fake_manager(policy=policy) as kit:
        session = await kit.manager.start("alice")
        await kit.advance(100)
        assert (await kit.manager.get(session.id)).state is SessionState.ACTIVE


async def test_detaching_one_of_two_channels_does_not_start_presence_clock() -> None:
    """With another channel still attached, a detach never ends the session (presence_timeout=0)."""
    policy = Policy(idle_timeout=600, warn_before=120, max_duration=1800, presence_timeout=0)
    async with fake_manager(policy=policy) as kit:
        session = await kit.manager.start("alice")
        staying, leaving = RecordingChannel(), RecordingChannel()
        await kit.manager.attach(session.id, staying)
        await kit.manager.attach(session.id, leaving)
        await kit.manager.detach(session.id, leaving)
        await kit.advance(300)
        info = await kit.manager.get(session.id)
        assert info.state is SessionState.ACTIVE
        assert info.connections == 1
        assert kit.manager.connections(session.id) == 1
        assert staying.closed is None
