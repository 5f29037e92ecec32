"""The test kit for work that waits on a network: eventually, idle, and quiescent fake time."""

from __future__ import annotations

import asyncio

import pytest

from tether.testing import FakeClock, eventually, fake_manager, idle


async def test_eventually_returns_once_the_check_holds_and_never_moves_fake_time() -> None:
    """eventually polls a (sync or async) check in real time; the fake clock stays put."""
    clock = FakeClock()
    flag: list[bool] = []
    asyncio.get_running_loop().call_later(0.01, flag.append, True)
    start = clock.now()
    await eventually(lambda: flag)

    async def async_check() -> bool:
        return True

    await eventually(async_check)
    assert clock.now() == start


async def test_eventually_fails_after_its_real_time_bound() -> None:
    """A check that never holds fails with AssertionError once ``within`` real seconds pass."""
    with pytest.raises(AssertionError, match="never"):
        await eventually(lambda: False, within=0.02, message="never")


async def test_idle_fails_when_a_manager_stays_busy() -> None:
    """idle() is bounded: a manager with a task that never ends fails it, it does not hang."""
    async with fake_manager() as kit:
        stuck = asyncio.Event()
        task = kit.manager._tasks.spawn(stuck.wait())
        with pytest.raises(AssertionError, match="busy"):
            await idle(kit.manager, within=0.02)
        stuck.set()
        await task
        await idle(kit.manager)


async def test_advance_awaits_quiesce_after_every_step() -> None:
    """With quiesce, each fired timer's consequences are awaited before time moves on."""
    clock = FakeClock()
    seen: list[float] = []
    for delay in (1.0, 2.0, 3.0):
        clock.call_later(delay, lambda: None)

    async def quiesce() -> None:
        seen.append(clock.now())

    await clock.advance(5.0, quiesce=quiesce)
    start = clock.now() - 5.0
    assert seen == [start, start + 1, start + 2, start + 3, start + 5]
