"""End pipelines run once each, a bounded number at a time; ``end_many`` ends in bulk."""

from __future__ import annotations

import asyncio

import pytest

from tether.core.policy import Policy
from tether.core.session import SessionInfo
from tether.errors import InvalidInput
from tether.runtime.pipelines import PipelineQueue
from tether.runtime.tasks import TaskSet
from tether.testing import fake_manager, settle
from tether.types import EndReason, SessionId, SessionState, UserId

POLICY = Policy(idle_timeout=600, warn_before=120, max_duration=1800, presence_timeout=60)
UNKNOWN = SessionId("0" * 32)


def _info(n: int) -> SessionInfo:
    """A stand-in ended session: the queue only reads ``id``."""

    class _Stub:
        id = SessionId(f"{n:032x}")
        user = UserId("alice")

    return _Stub()  # type: ignore[return-value]


class _Gate:
    """A pipeline that records what runs and holds each run until released."""

    def __init__(self) -> None:
        self.running: set[SessionId] = set()
        self.peak = 0
        self.runs: list[SessionId] = []
        self.release = asyncio.Event()

    async def __call__(self, info: SessionInfo) -> None:
        self.running.add(info.id)
        self.peak = max(self.peak, len(self.running))
        self.runs.append(info.id)
        try:
            await self.release.wait()
        finally:
            self.running.discard(info.id)


async def test_pipeline_queue_runs_each_once_and_never_more_than_the_limit() -> None:
    """With limit 3 and 10 queued pipelines, at most 3 run at once and each runs exactly once."""
    gate, tasks = _Gate(), TaskSet()
    queue = PipelineQueue(tasks, gate, limit=3)
    futures = [queue.submit(_info(n)) for n in range(10)]
    await settle()
    assert len(gate.running) == 3
    assert len(queue) == 10
    gate.release.set()
    await asyncio.gather(*futures)
    assert gate.peak == 3
    assert sorted(gate.runs) == sorted(_info(n).id for n in range(10))
    assert len(queue) == 0
    await tasks.join()


async def test_pipeline_queue_pending_names_the_future_of_a_queued_session() -> None:
    """pending() returns the submitted future until the pipeline has run, then None."""
    gate, tasks = _Gate(), TaskSet()
    queue = PipelineQueue(tasks, gate, limit=1)
    first, second = _info(1), _info(2)
    queue.submit(first)
    done = queue.submit(second)
    assert queue.pending(second.id) is done
    gate.release.set()
    await done
    assert queue.pending(second.id) is None
    await tasks.join()


async def test_a_crashing_pipeline_resolves_its_future_and_the_rest_still_run() -> None:
    """A pipeline that raises is logged; its waiter is released and later pipelines run."""
    ran: list[SessionId] = []

    async def pipeline(info: SessionInfo) -> None:
        ran.append(info.id)
        if info.id == _info(0).id:
            raise RuntimeError("bug")

    tasks = TaskSet()
    queue = PipelineQueue(tasks, pipeline, limit=1)
    futures = [queue.submit(_info(n)) for n in range(3)]
    await asyncio.gather(*futures)
    assert ran == [_info(n).id for n in range(3)]
    await tasks.join()


def test_pipeline_queue_refuses_a_limit_below_one() -> None:
    """A limit of 0 would never run anything, so it is refused at construction."""
    with pytest.raises(ValueError, match="at least 1"):
        PipelineQueue(TaskSet(), _Gate(), limit=0)


async def test_end_many_ends_each_session_once_and_counts_only_its_own_ends() -> None:
    """end_many ends the live ones, skips unknown and already ended ids, and counts its ends."""
    async with fake_manager(policy=POLICY) as kit:
        ids = [(await kit.manager.start(f"user{n}")).id for n in range(5)]
        await kit.manager.end(ids[0])
        ended = await kit.manager.end_many([*ids, UNKNOWN, ids[1]], EndReason.ADMIN)
        assert ended == 4
        for session_id in ids[1:]:
            info = await kit.manager.get(session_id)
            assert info.state is SessionState.ENDED
            assert info.end_reason is EndReason.ADMIN
        counts = (await kit.manager.metrics()).ended_by_reason
        assert {reason: n for reason, n in counts.items() if n} == {
            EndReason.CLIENT_ENDED: 1,
            EndReason.ADMIN: 4,
        }


async def test_end_many_returns_after_every_pipeline_ran() -> None:
    """When end_many returns, each session's cleanup has already run."""
    async with fake_manager(policy=POLICY, max_concurrent_ends=2) as kit:
        cleaned: list[SessionId] = []
        ids = [(await kit.manager.start(f"user{n}")).id for n in range(7)]
        for session_id in ids:

            async def cleanup(session_id: SessionId = session_id) -> None:
                cleaned.append(session_id)

            await kit.manager.add_cleanup(session_id, cleanup)
        await kit.manager.end_many(ids)
        assert sorted(cleaned) == sorted(ids)


async def test_end_many_refuses_an_unknown_reason_before_ending_anything() -> None:
    """A bad reason raises InvalidInput and leaves every session live."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        with pytest.raises(InvalidInput):
            await kit.manager.end_many([session.id], "bogus")  # type: ignore[arg-type]
        assert (await kit.manager.get(session.id)).state is not SessionState.ENDED
