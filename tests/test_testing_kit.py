"""The public test kit: FakeClock, settle, RecordingChannel and fake_manager."""

from __future__ import annotations

import asyncio

import pytest

from tether.core.events import SessionActive, SessionConfig
from tether.core.policy import Policy
from tether.testing import DEFAULT_START, FakeClock, RecordingChannel, fake_manager, settle


def test_fake_clock_starts_at_given_wall_time_with_zero_monotonic() -> None:
    """A new FakeClock reads its start as wall time and 0 as monotonic time."""
    clock = FakeClock(1000.0)
    assert clock.now() == 1000.0
    assert clock.monotonic() == 0.0
    assert FakeClock().now() == DEFAULT_START


async def test_advance_moves_wall_and_monotonic_together() -> None:
    """advance(s) moves both wall and monotonic time forward by exactly s."""
    clock = FakeClock(1000.0)
    await clock.advance(5)
    await clock.advance(2.5)
    assert clock.now() == 1007.5
    assert clock.monotonic() == 7.5


async def test_advance_fires_timers_in_deadline_order_each_at_its_time() -> None:
    """Timers fire in deadline order, each seeing the clock at its own deadline."""
    clock = FakeClock(1000.0)
    fired: list[tuple[str, float, float]] = []
    for name, delay in (("c", 3), ("a", 1), ("b", 2), ("late", 10)):
        clock.call_later(delay, lambda n=name: fired.append((n, clock.now(), clock.monotonic())))
    await clock.advance(5)
    assert fired == [("a", 1001.0, 1.0), ("b", 1002.0, 2.0), ("c", 1003.0, 3.0)]
    assert clock.now() == 1005.0
    assert clock.pending() == [1010.0]


async def test_timers_with_equal_deadlines_fire_in_registration_order() -> None:
    """Two timers due at the same instant fire in the order they were registered."""
    clock = FakeClock(0.0)
    fired: list[str] = []
    clock.call_later(1, lambda: fired.append("first"))
    clock.call_later(1, lambda: fired.append("second"))
    await clock.advance(1)
    assert fired == ["first", "second"]


async def test_timer_due_exactly_at_target_fires() -> None:
    """A timer due exactly at the advance target fires; one a moment later does not."""
    clock = FakeClock(0.0)
    fired: list[float] = []
    clock.call_later(2, lambda: fired.append(clock.now()))
    clock.call_later(2.5, lambda: fired.append(clock.now()))
    await clock.advance(2)
    assert fired == [2.0]


async def test_cancelled_timer_does_not_fire_and_is_not_pending() -> None:
    """A cancelled timer never fires and disappears from pending()."""
    clock = FakeClock(0.0)
    fired: list[str] = []
    keep = clock.call_later(1, lambda: fired.append("keep"))
    drop = clock.call_later(2, lambda: fired.append("drop"))
    drop.cancel()
    assert clock.pending() == [1.0]
    await clock.advance(10)
    assert fired == ["keep"]
    keep.cancel()  # cancelling a fired timer is harmless
    assert clock.pending() == []


async def test_negative_delay_fires_at_now() -> None:
    """call_later with a negative delay is due at once, not in the past."""
    clock = FakeClock(100.0)
    fired: list[float] = []
    clock.call_later(-5, lambda: fired.append(clock.now()))
    assert clock.pending() == [100.0]
    await clock.advance(0)
    assert fired == [100.0]


async def test_timer_scheduled_by_a_timer_fires_within_same_advance() -> None:
    """A timer set from a firing callback fires in the same advance if due before the target."""
    clock = FakeClock(0.0)
    fired: list[tuple[str, float]] = []

    def outer() -> None:
        fired.append(("outer", clock.now()))
        clock.call_later(1, lambda: fired.append(("inner", clock.now())))

    clock.call_later(1, outer)
    await clock.advance(3)
    assert fired == [("outer", 1.0), ("inner", 2.0)]


async def test_sleep_wakes_at_the_right_fake_time() -> None:
    """sleep(d) returns only once the fake clock has advanced d seconds."""
    clock = FakeClock(0.0)
    woke: list[float] = []

    async def sleeper() -> None:
        await clock.sleep(10)
        woke.append(clock.now())

    task = asyncio.ensure_future(sleeper())
    await settle()
    await clock.advance(9.5)
    assert not task.done()
    await clock.advance(0.5)
    assert task.done()
    await task
    assert woke == [10.0]


async def test_cancelled_sleep_leaves_no_pending_timer() -> None:
    """Cancelling a task in clock.sleep() cancels its timer."""
    clock = FakeClock(0.0)
    task = asyncio.ensure_future(clock.sleep(10))
    await settle()
    assert clock.pending() == [10.0]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.pending() == []


async def test_advance_negative_raises() -> None:
    """advance() with a negative duration raises ValueError and leaves time unchanged."""
    clock = FakeClock(0.0)
    with pytest.raises(ValueError, match="forward"):
        await clock.advance(-1)
    assert clock.now() == 0.0
    assert clock.monotonic() == 0.0


async def test_settle_runs_ready_task_chains_to_completion() -> None:
    """settle() returns only after a chain of immediately runnable steps has finished."""
    steps: list[int] = []

    async def chain() -> None:
        for i in range(50):
            steps.append(i)
            await asyncio.sleep(0)

    task = asyncio.ensure_future(chain())
    await settle()
    assert task.done()
    assert steps == list(range(50))


async def test_settle_raises_when_loop_never_settles() -> None:
    """settle() raises RuntimeError instead of hanging when something reschedules forever."""
    spins = 0

    async def spinner() -> None:
        nonlocal spins
        for _ in range(1000):  # far more rounds than settle() is allowed below
            spins += 1
            await asyncio.sleep(0)

    task = asyncio.ensure_future(spinner())
    with pytest.raises(RuntimeError, match="did not settle"):
        await settle(max_rounds=50)
    assert spins < 1000
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_recording_channel_records_events_types_and_wire() -> None:
    """send() records events in order; types() and wire() reflect them."""
    channel = RecordingChannel()
    await channel.send(SessionConfig({"a": 1}))
    await channel.send(SessionActive())
    assert channel.types() == ["session.config", "session.active"]
    assert channel.wire() == [
        {"type": "session.config", "config": {"a": 1}},
        {"type": "session.active"},
    ]


async def test_recording_channel_hold_blocks_sends_until_release() -> None:
    """After hold() a send blocks and records nothing until release()."""
    channel = RecordingChannel()
    channel.hold()
    task = asyncio.ensure_future(channel.send(SessionActive()))
    await settle()
    assert not task.done()
    assert channel.events == []
    channel.release()
    await settle()
    assert task.done()
    await task
    assert channel.types() == ["session.active"]


async def test_recording_channel_fail_makes_sends_raise() -> None:
    """With fail = True a send raises ConnectionError and records nothing."""
    channel = RecordingChannel()
    channel.fail = True
    with pytest.raises(ConnectionError):
        await channel.send(SessionActive())
    assert channel.events == []
    channel.fail = False
    await channel.send(SessionActive())
    assert channel.types() == ["session.active"]


async def test_recording_channel_close_records_first_close_and_refuses_sends() -> None:
    """close() records only the first code and reason; a send after close raises."""
    channel = RecordingChannel()
    await channel.close(4001, "idle_timeout")
    await channel.close(1000, "again")
    assert channel.closed == (4001, "idle_timeout")
    with pytest.raises(ConnectionError):
        await channel.send(SessionActive())
    assert channel.events == []


async def test_fake_manager_wires_manager_to_fake_clock_and_store() -> None:
    """fake_manager gives a running manager on its FakeClock and MemoryStore, options applied."""
    policy = Policy(idle_timeout=60, warn_before=10, max_duration=600, presence_timeout=0)
    async with fake_manager(policy=policy, start=5000.0, max_sessions_per_user=1) as kit:
        assert kit.manager.clock is kit.clock
        assert kit.manager.store is kit.store
        assert kit.manager.policy is policy
        assert kit.manager.max_sessions_per_user == 1
        session = await kit.manager.start("alice")
        assert session.created_at == 5000.0
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await kit.advance(50)
        assert channel.types()[-1] == "session.warning"
        await kit.advance(10)
        await kit.manager.wait_idle()
        assert channel.closed is not None
        assert channel.closed[0] == 4001


async def test_fake_manager_exit_closes_the_manager() -> None:
    """Leaving fake_manager ends live sessions as server_shutdown."""
    channel = RecordingChannel()
    async with fake_manager() as kit:
        session = await kit.manager.start("alice")
        await kit.manager.attach(session.id, channel)
    assert channel.closed == (1001, "server_shutdown")
