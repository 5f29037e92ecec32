"""End leases in the runtime: completed after the pipeline, renewed while it runs, adopted once."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tether.core.ids import new_session_id
from tether.core.policy import Policy
from tether.core.session import SessionRecord
from tether.runtime.leases import EndLeases, Periodic
from tether.store.base import Claim
from tether.store.memory import MemoryStore
from tether.testing import DEFAULT_START, FakeClock, RecordingChannel, fake_manager, settle
from tether.types import EndReason, UserId

T0 = DEFAULT_START
POLICY = Policy(idle_timeout=600, warn_before=120, max_duration=1800, presence_timeout=60)


async def ended(store: MemoryStore, now: float = T0) -> Claim:
    """A session created and ended at ``now``, not completed."""
    record = SessionRecord(new_session_id(), UserId("alice"), "chat", POLICY, now)
    await store.create(record, max_per_user=None)
    claim = await store.end(record.id, EndReason.ADMIN, now)
    assert claim is not None
    return claim


async def test_every_end_the_manager_runs_is_completed_in_the_store() -> None:
    """After end() returns, the store holds no lease for it: nothing is ever handed out again."""
    async with fake_manager(policy=POLICY) as kit:
        session = await kit.manager.start("alice")
        timed_out = await kit.manager.start("bob")
        await kit.manager.end(session.id)
        await kit.manager.attach(timed_out.id, RecordingChannel())
        await kit.advance(600)  # bob idles out through the scheduler
        await kit.manager.wait_idle()
        assert kit.store._leases == {}
        assert await kit.store.claim_due(kit.clock.now() + 10_000, 100) == []


async def test_a_pipeline_outliving_its_lease_runs_once_and_completes_the_new_fence() -> None:
    """On one process a re-claim of a still-running end is adopted: one pipeline, new fence."""
    async with fake_manager(policy=POLICY, cleanup_timeout=600) as kit:
        release = asyncio.Event()
        runs: list[str] = []

        async def slow_cleanup() -> None:
            runs.append("cleanup")
            await release.wait()

        slow = await kit.manager.start("alice")
        other = await kit.manager.start("bob")
        await kit.manager.heartbeat(other.id)  # its presence clock runs
        await kit.manager.add_cleanup(slow.id, slow_cleanup)
        ending = asyncio.ensure_future(kit.manager.end(slow.id))
        try:
            await settle()
            assert runs == ["cleanup"]
            # bob's presence running out makes the scheduler claim after alice's lease did
            await kit.advance(60)
            assert (await kit.manager.get(other.id)).end_reason is EndReason.CLIENT_GONE
            assert kit.store._leases[slow.id][0] == 2  # handed out again ...
            assert runs == ["cleanup"]  # ... and adopted, not run twice
        finally:
            release.set()  # a failed assertion must not leave aclose() waiting
        assert await ending
        assert kit.store._leases == {}


async def test_renewal_keeps_a_shared_stores_end_from_being_handed_out() -> None:
    """With renewal on, a held end is renewed every third of the lease and never re-claimed."""
    clock, store = FakeClock(), MemoryStore(end_lease=30.0)
    leases = EndLeases(store, clock, renew=True)
    claim = await ended(store)
    leases.hold(claim)
    for _ in range(10):
        await clock.advance(10)
        assert await store.claim_due(clock.now(), 100) == []
    await leases.complete(claim.session.id)
    assert store._leases == {}
    await leases.aclose()


async def test_completing_a_superseded_fence_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """If another claimant took the end over, complete only logs that the fence was spent."""
    clock, store = FakeClock(), MemoryStore(end_lease=30.0)
    leases = EndLeases(store, clock, renew=False)
    claim = await ended(store)
    leases.hold(claim)
    [again] = await store.claim_due(T0 + 30.0, 100)
    with caplog.at_level(logging.WARNING, logger="tether.runtime"):
        await leases.complete(claim.session.id)
    assert "handed out again" in caplog.text
    assert await store.complete(claim.session.id, again.fence)


async def test_holding_a_newer_claim_adopts_its_fence_and_holders() -> None:
    """hold() keeps the highest fence and the union of the nodes that held connections."""
    clock, store = FakeClock(), MemoryStore()
    leases = EndLeases(store, clock, renew=False)
    claim = await ended(store)
    leases.hold(Claim(claim.session, claim.transition, 1, ("n1",)))
    leases.hold(Claim(claim.session, claim.transition, 3, ("n2",)))
    leases.hold(Claim(claim.session, claim.transition, 2, ("n3",)))
    assert leases.holders(claim.session.id) == ("n1", "n2")
    assert len(leases) == 1


async def test_periodic_steps_on_the_clock_and_survives_a_failing_step(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Periodic runs every period of fake time; a step that raises is logged, the loop goes on."""
    clock = FakeClock()
    steps: list[float] = []

    async def step() -> None:
        steps.append(clock.now())
        if len(steps) == 2:
            raise RuntimeError("boom")

    loop = Periodic(clock, 5.0, step, name="test-periodic")
    loop.start()
    with caplog.at_level(logging.ERROR, logger="tether.runtime"):
        await clock.advance(16)
    assert steps == [T0 + 5, T0 + 10, T0 + 15]
    assert "test-periodic failed" in caplog.text
    await loop.stop()
    await clock.advance(20)
    assert len(steps) == 3
    assert not loop.running
