"""Session-owned tasks and removable cleanups: stopped before the archive on every end path."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tether import InvalidInput, SessionEnded, SessionManager, TooManyTasks
from tether.archive.yaml_archive import YamlArchive
from tether.core.policy import Policy
from tether.testing import RecordingChannel, fake_manager, settle
from tether.types import EndReason, SessionId

POLICY = Policy(idle_timeout=600, warn_before=120, max_duration=1800, presence_timeout=60)


def archived_text(root: Path) -> str:
    """The one YAML archive written under ``root``."""
    (path,) = root.glob("users/*/dialogs/archived/*.yaml")
    return path.read_text()


async def _goodbye(manager: Any, sid: SessionId, started: asyncio.Event) -> None:
    try:
        started.set()
        await asyncio.Event().wait()  # runs until the session's end cancels it
    finally:
        await manager.append(sid, "assistant", "goodbye from a cancelled task")


async def test_an_ended_sessions_task_is_cancelled_and_its_finally_reaches_the_archive(
    tmp_path: Path,
) -> None:
    """end(): the task is cancelled before the archive, and what its finally appends is archived."""
    async with fake_manager(policy=POLICY, archiver=YamlArchive(tmp_path)) as kit:
        session = await kit.manager.start("alice")
        started = asyncio.Event()
        task = kit.manager.spawn(session.id, _goodbye(kit.manager, session.id, started))
        await started.wait()
        await kit.manager.end(session.id)
        assert task.cancelled()
        assert "goodbye from a cancelled task" in archived_text(tmp_path)


async def test_an_idle_timeout_stops_the_sessions_tasks_before_the_archive(tmp_path: Path) -> None:
    """The idle end path (the scheduler's) also cancels tasks first; their finally is archived."""
    async with fake_manager(policy=POLICY, archiver=YamlArchive(tmp_path)) as kit:
        session = await kit.manager.start("alice")
        await kit.manager.attach(session.id, RecordingChannel())
        started = asyncio.Event()
        task = kit.manager.spawn(session.id, _goodbye(kit.manager, session.id, started))
        await started.wait()
        await kit.advance(600)
        await kit.manager.wait_idle()
        assert task.cancelled()
        assert (await kit.manager.get(session.id)).end_reason is EndReason.IDLE_TIMEOUT
        assert "goodbye from a cancelled task" in archived_text(tmp_path)


async def test_closing_the_manager_stops_the_tasks_before_the_archive(tmp_path: Path) -> None:
    """server_shutdown: closing the manager cancels each session's tasks before archiving it."""
    async with fake_manager(policy=POLICY, archiver=YamlArchive(tmp_path)) as kit:
        session = await kit.manager.start("alice")
        started = asyncio.Event()
        task = kit.manager.spawn(session.id, _goodbye(kit.manager, session.id, started))
        await started.wait()
    assert task.cancelled()
    assert "goodbye from a cancelled task" in archived_text(tmp_path)


async def test_spawn_past_the_limit_raises_too_many_tasks_and_starts_nothing() -> None:
    """max_session_tasks bounds live tasks per session; the refused coroutine never runs."""
    async with fake_manager(policy=POLICY, max_session_tasks=2) as kit:
        session = await kit.manager.start("alice")
        ran: list[int] = []

        async def work(n: int) -> None:
            ran.append(n)
            await asyncio.Event().wait()

        kit.manager.spawn(session.id, work(1))
        kit.manager.spawn(session.id, work(2))
        with pytest.raises(TooManyTasks):
            kit.manager.spawn(session.id, work(3))
        await settle()
        assert sorted(ran) == [1, 2]
        other = await kit.manager.start("bob")
        kit.manager.spawn(other.id, work(4))  # the bound is per session
        await settle()
        assert 4 in ran


async def test_a_task_limit_below_one_is_refused() -> None:
    """SessionManager(max_session_tasks=0) raises InvalidInput before anything is built."""
    with pytest.raises(InvalidInput, match="max_session_tasks"):
        SessionManager(max_session_tasks=0)


async def test_spawn_for_a_session_whose_end_ran_raises_session_ended() -> None:
    """A task for an ended session is refused with SessionEnded, not left running."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        await kit.manager.end(session.id)

        async def work() -> None:
            raise AssertionError("never runs")

        with pytest.raises(SessionEnded):
            kit.manager.spawn(session.id, work())


async def test_a_task_that_ignores_cancellation_holds_the_end_only_for_cleanup_timeout() -> None:
    """A stubborn task delays the end by at most cleanup_timeout (fake time), then it goes on."""
    async with fake_manager(policy=POLICY, cleanup_timeout=5) as kit:
        session = await kit.manager.start("alice")
        stop = asyncio.Event()

        async def stubborn() -> None:
            while not stop.is_set():
                try:
                    await stop.wait()
                except asyncio.CancelledError:
                    continue

        kit.manager.spawn(session.id, stubborn())
        await settle()
        ending = asyncio.ensure_future(kit.manager.end(session.id))
        await settle()
        assert not ending.done()
        await kit.advance(5)
        assert await asyncio.wait_for(ending, 1)
        stop.set()


async def test_a_removed_cleanup_does_not_run() -> None:
    """add_cleanup returns a handle; removing it unregisters the callback."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        ran: list[str] = []

        async def kept() -> None:
            ran.append("kept")

        async def dropped() -> None:
            ran.append("dropped")

        await kit.manager.add_cleanup(session.id, kept)
        handle = await kit.manager.add_cleanup(session.id, dropped)
        assert kit.manager.remove_cleanup(handle)
        assert not handle.remove()  # a second removal is a no-op
        await kit.manager.end(session.id)
        assert ran == ["kept"]


async def test_ten_thousand_per_reply_cleanups_removed_leave_nothing_behind() -> None:
    """10k cleanups added and removed one by one: the session holds none (no pile-up)."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")

        async def release() -> None:
            raise AssertionError("removed: never runs")

        for _ in range(10_000):
            handle = await kit.manager.add_cleanup(session.id, release)
            handle.remove()
        assert kit.manager._cleanups.count(session.id) == 0
        assert session.id not in kit.manager._cleanups.sessions()
        await kit.manager.end(session.id)
