"""The deadline scheduler: one timer at the earliest deadline, no polling, early wake-ups."""

from __future__ import annotations

from tether.core.policy import Policy
from tether.testing import DEFAULT_START, RecordingChannel, fake_manager, settle
from tether.types import EndReason, SessionState

T0 = DEFAULT_START
# No warnings and no presence clock for a never-attached session: the only deadline is idle.
QUIET = Policy(idle_timeout=600, warn_before=0, max_duration=1800, presence_timeout=0)


async def test_nothing_pending_without_sessions() -> None:
    """With no sessions the scheduler arms no timer at all."""
    async with fake_manager(policy=QUIET) as kit:
        await settle()
        assert kit.clock.pending() == []


async def test_one_session_arms_exactly_one_timer_at_its_deadline() -> None:
    """A session due in 600 s leaves exactly one pending timer, at that time: no polling."""
    async with fake_manager(policy=QUIET) as kit:
        await kit.manager.start("alice")
        await settle()
        assert kit.clock.pending() == [T0 + 600]
        await kit.advance(300)
        assert kit.clock.pending() == [T0 + 600]


async def test_touch_does_not_rearm_timer_and_due_entry_rearms_lazily() -> None:
    """Activity leaves the armed timer alone; when it fires the timer moves to the true deadline."""
    async with fake_manager(policy=QUIET) as kit:
        session = await kit.manager.start("alice")
        await kit.advance(100)
        await kit.manager.activity(session.id)
        await settle()
        assert kit.clock.pending() == [T0 + 600]
        await kit.advance(500)
        assert (await kit.manager.get(session.id)).state is SessionState.ACTIVE
        assert kit.clock.pending() == [T0 + 700]


async def test_earlier_session_wakes_scheduler_and_rearms_earlier() -> None:
    """A session with an earlier deadline replaces the pending timer with an earlier one."""
    async with fake_manager(policy=QUIET) as kit:
        await kit.manager.start("alice")
        await settle()
        assert kit.clock.pending() == [T0 + 600]
        short = Policy(idle_timeout=100, warn_before=0, max_duration=1800, presence_timeout=0)
        quick = await kit.manager.start("bob", policy=short)
        await settle()
        assert kit.clock.pending() == [T0 + 100]
        await kit.advance(100)
        await kit.manager.wait_idle()
        assert (await kit.manager.get(quick.id)).end_reason is EndReason.IDLE_TIMEOUT
        assert kit.clock.pending() == [T0 + 600]


async def test_later_session_does_not_rearm_timer() -> None:
    """Starting a session due later than the current sleep keeps the one existing timer."""
    async with fake_manager(policy=QUIET) as kit:
        await kit.manager.start("alice")
        await settle()
        long = Policy(idle_timeout=900, warn_before=0, max_duration=1800, presence_timeout=0)
        await kit.manager.start("bob", policy=long)
        await settle()
        assert kit.clock.pending() == [T0 + 600]


async def test_last_detach_with_presence_timeout_arms_earlier_timer() -> None:
    """The last channel closing arms a timer at last_seen + presence_timeout, before idle."""
    policy = Policy(idle_timeout=600, warn_before=0, max_duration=1800, presence_timeout=30)
    async with fake_manager(policy=policy) as kit:
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await kit.advance(30)  # the creation-time presence entry comes due and re-arms at idle
        assert kit.clock.pending() == [T0 + 600]
        await kit.advance(70)
        await kit.manager.detach(session.id, channel)
        await settle()
        assert kit.clock.pending() == [T0 + 130]


async def test_shorter_policy_takes_effect_at_once() -> None:
    """A shorter idle_timeout via update_policy wakes the scheduler; the end is at the new time."""
    async with fake_manager(policy=QUIET) as kit:
        session = await kit.manager.start("alice")
        await kit.advance(50)
        short = Policy(idle_timeout=60, warn_before=0, max_duration=1800, presence_timeout=0)
        await kit.manager.update_policy(session.id, short)
        await settle()
        assert kit.clock.pending() == [T0 + 60]
        await kit.advance(10)
        await kit.manager.wait_idle()
        info = await kit.manager.get(session.id)
        assert info.end_reason is EndReason.IDLE_TIMEOUT
        assert info.ended_at == T0 + 60


async def test_many_sessions_due_together_all_end_in_one_wakeup() -> None:
    """Sessions sharing one deadline all end at it, with a single timer armed beforehand."""
    async with fake_manager(policy=QUIET, max_sessions_per_user=None) as kit:
        sessions = [await kit.manager.start(f"user{i}") for i in range(20)]
        await settle()
        assert kit.clock.pending() == [T0 + 600]
        await kit.advance(600)
        await kit.manager.wait_idle()
        for session in sessions:
            assert (await kit.manager.get(session.id)).end_reason is EndReason.IDLE_TIMEOUT
        assert (await kit.manager.metrics()).active == 0
        assert kit.clock.pending() == []
