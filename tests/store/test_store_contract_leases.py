"""The ``SessionStore`` contract for end leases, run against every implementation.

Whoever gets an end back owns its pipeline: the end carries a fence (1 for
the first claimant) and a lease of ``store.end_lease`` seconds. ``complete``
with the fence acknowledges it; an end not completed in time is handed out
again by ``claim_due`` with the original reason and the next fence, so a node
that died mid-pipeline is replaced; a superseded fence completes nothing.
Stores never read a clock: every ``now`` below is fake time passed in.
"""

from __future__ import annotations

import asyncio
import math

from tether.core.ids import new_session_id
from tether.core.policy import Policy
from tether.core.session import Ended, SessionRecord
from tether.core.transcript import Role
from tether.store.base import Claim, SessionStore
from tether.types import EndReason, SessionId, SessionState, UserId

T0 = 1_700_000_000.0
U1 = UserId("u1")
BIG = 10_000
QUIET = Policy(idle_timeout=600.0, warn_before=0.0, max_duration=1800.0, presence_timeout=0.0)
SHORT_IDLE = Policy(idle_timeout=100.0, warn_before=0.0, max_duration=1800.0, presence_timeout=0.0)


async def new_session(
    store: SessionStore, *, user: UserId = U1, policy: Policy = QUIET, now: float = T0
) -> SessionId:
    """Create a session with no per-user limit; returns its id."""
    record = SessionRecord(new_session_id(), user, "chat", policy, now)
    await store.create(record, max_per_user=None)
    return record.id


async def ended(store: SessionStore, reason: EndReason = EndReason.ADMIN, at: float = T0) -> Claim:
    """A new session, ended at ``at`` and not completed."""
    session_id = await new_session(store)
    claim = await store.end(session_id, reason, at)
    assert claim is not None
    return claim


def summary(claims: list[Claim]) -> list[tuple[SessionId, Ended | object, int]]:
    """``(session, transition, fence)`` of each claim."""
    return [(c.session.id, c.transition, c.fence) for c in claims]


class TestEndLeaseContract:
    """Behaviour of end leases, fences and ``complete`` every store must show."""

    async def test_every_kind_of_end_is_handed_out_with_fence_one(
        self, store: SessionStore
    ) -> None:
        """Ends from end(), a late touch, claim_due and a replacing create all carry fence 1."""
        by_end = await ended(store, at=T0 + 90.0)
        touched = await new_session(store, policy=SHORT_IDLE)
        by_touch = await store.touch(touched, T0 + 100.0, activity=True)
        timed_out = await new_session(store, policy=SHORT_IDLE, user=UserId("u2"))
        by_claim = await store.claim_due(T0 + 100.0, BIG)
        old = await new_session(store, user=UserId("u3"))
        record = SessionRecord(new_session_id(), UserId("u3"), "chat", QUIET, T0 + 101.0)
        by_create = (await store.create(record, max_per_user=1)).replaced
        assert by_touch is not None
        assert summary([by_end, by_touch, *by_claim, *by_create]) == [
            (by_end.session.id, Ended(EndReason.ADMIN), 1),
            (touched, Ended(EndReason.IDLE_TIMEOUT), 1),
            (timed_out, Ended(EndReason.IDLE_TIMEOUT), 1),
            (old, Ended(EndReason.REPLACED), 1),
        ]

    async def test_warnings_carry_no_fence(self, store: SessionStore) -> None:
        """Only ends are leased: a claimed warning has fence 0."""
        policy = Policy(idle_timeout=100.0, warn_before=20.0, presence_timeout=0.0)
        await new_session(store, policy=policy)
        [warned] = await store.claim_due(T0 + 80.0, BIG)
        assert warned.fence == 0

    async def test_complete_with_the_fence_acknowledges_exactly_once(
        self, store: SessionStore
    ) -> None:
        """complete(fence) is True the first time and False after; other fences are False."""
        claim = await ended(store)
        sid = claim.session.id
        assert not await store.complete(sid, claim.fence + 1)
        assert await store.complete(sid, claim.fence)
        assert not await store.complete(sid, claim.fence)
        assert not await store.complete(new_session_id(), 1)

    async def test_a_completed_end_is_never_handed_out_again(self, store: SessionStore) -> None:
        """After complete, no claim_due at any later time returns the session."""
        claim = await ended(store)
        assert await store.complete(claim.session.id, claim.fence)
        for later in (store.end_lease, 10 * store.end_lease, 10_000.0):
            assert await store.claim_due(T0 + later, BIG) == []

    async def test_an_uncompleted_end_is_handed_out_again_after_its_lease(
        self, store: SessionStore
    ) -> None:
        """Not before the lease runs out; then with the original reason and the next fence."""
        claim = await ended(store, EndReason.CLIENT_ENDED, T0 + 1.0)
        sid, lease = claim.session.id, store.end_lease
        assert await store.claim_due(T0 + 1.0 + lease - 0.001, BIG) == []
        again = await store.claim_due(T0 + 1.0 + lease, BIG)
        assert summary(again) == [(sid, Ended(EndReason.CLIENT_ENDED), 2)]
        session = again[0].session
        assert (session.state, session.end_reason, session.ended_at) == (
            SessionState.ENDED,
            EndReason.CLIENT_ENDED,
            T0 + 1.0,
        )
        # the new claimant holds a fresh lease of its own
        assert await store.claim_due(T0 + 1.0 + 2 * lease - 0.001, BIG) == []
        third = await store.claim_due(T0 + 1.0 + 2 * lease, BIG)
        assert summary(third) == [(sid, Ended(EndReason.CLIENT_ENDED), 3)]

    async def test_a_superseded_fence_completes_nothing(self, store: SessionStore) -> None:
        """After a re-claim the first claimant's complete is a no-op; the new fence completes."""
        claim = await ended(store)
        sid = claim.session.id
        [again] = await store.claim_due(T0 + store.end_lease, BIG)
        assert not await store.complete(sid, claim.fence)  # the dead claimant, back late
        assert await store.claim_due(T0 + 2 * store.end_lease, BIG) != []  # still pending
        assert not await store.complete(sid, again.fence)  # superseded in turn
        assert await store.complete(sid, again.fence + 1)
        assert await store.claim_due(T0 + 10_000.0, BIG) == []

    async def test_ends_decided_every_way_are_handed_out_again_with_their_reasons(
        self, store: SessionStore
    ) -> None:
        """Touch, claim_due and create ends not completed come back with their own reasons."""
        touched = await new_session(store, policy=SHORT_IDLE)
        await store.touch(touched, T0 + 100.0, activity=False)
        timed_out = await new_session(store, policy=SHORT_IDLE, user=UserId("u2"))
        await store.claim_due(T0 + 100.0, BIG)
        old = await new_session(store, user=UserId("u3"))
        record = SessionRecord(new_session_id(), UserId("u3"), "chat", QUIET, T0 + 100.0)
        await store.create(record, max_per_user=1)
        again = await store.claim_due(T0 + 100.0 + store.end_lease, BIG)
        assert sorted(summary(again)) == sorted(
            [
                (touched, Ended(EndReason.IDLE_TIMEOUT), 2),
                (timed_out, Ended(EndReason.IDLE_TIMEOUT), 2),
                (old, Ended(EndReason.REPLACED), 2),
            ]
        )

    async def test_renew_extends_only_leases_the_fence_still_holds(
        self, store: SessionStore
    ) -> None:
        """A renewed lease runs from the renewal; a wrong or completed fence renews nothing."""
        claim = await ended(store)
        done = await ended(store)
        sid, lease = claim.session.id, store.end_lease
        assert await store.complete(done.session.id, done.fence)
        renewed = await store.renew(
            [(sid, claim.fence), (sid, claim.fence + 1), (done.session.id, done.fence)],
            T0 + 20.0,
        )
        assert renewed == [True, False, False]
        assert await store.claim_due(T0 + 20.0 + lease - 0.001, BIG) == []
        again = await store.claim_due(T0 + 20.0 + lease, BIG)
        assert summary(again) == [(sid, Ended(EndReason.ADMIN), 2)]
        assert await store.renew([(sid, claim.fence)], T0 + 60.0) == [False]
        assert await store.renew([], T0 + 60.0) == []

    async def test_next_due_covers_end_leases_on_shared_stores(self, store: SessionStore) -> None:
        """A shared store wakes schedulers when an end lease runs out; none after completion."""
        claim = await ended(store, at=T0 + 5.0)
        expiry = T0 + 5.0 + store.end_lease
        if store.shared:  # another node may have to take the end over
            assert await store.next_due() == expiry
        assert await store.complete(claim.session.id, claim.fence)
        assert (await store.next_due() or math.inf) > expiry  # stale entries may linger later

    async def test_a_handed_out_end_still_has_its_transcript(self, store: SessionStore) -> None:
        """The next claimant can archive from the store: the transcript outlives the lease."""
        sid = await new_session(store)
        for i in range(3):
            await store.append(sid, Role.USER, f"m{i}", None, T0 + i)
        await store.end(sid, EndReason.CLIENT_ENDED, T0 + 10.0)
        [again] = await store.claim_due(T0 + 10.0 + store.end_lease, BIG)
        assert again.session.message_count == 3
        assert [m.content for m in await store.transcript(sid)] == ["m0", "m1", "m2"]

    async def test_handing_ends_out_again_respects_the_limit(self, store: SessionStore) -> None:
        """claim_due returns at most ``limit`` ends per call; repeated calls drain them all."""
        ids = {(await ended(store)).session.id for _ in range(5)}
        seen: list[SessionId] = []
        for _ in range(5):
            batch = await store.claim_due(T0 + store.end_lease, 2)
            assert len(batch) <= 2
            seen += [c.session.id for c in batch]
        assert sorted(seen) == sorted(ids)

    async def test_concurrent_claims_hand_an_expired_end_out_once(
        self, store: SessionStore
    ) -> None:
        """Racing claim_due calls after the lease: exactly one of them gets each end."""
        ids = {(await ended(store)).session.id for _ in range(10)}
        batches = await asyncio.gather(
            *(store.claim_due(T0 + store.end_lease, 3) for _ in range(8))
        )
        claimed = [c.session.id for batch in batches for c in batch]
        rest = await store.claim_due(T0 + store.end_lease, BIG)
        claimed += [c.session.id for c in rest]
        assert sorted(claimed) == sorted(ids)
        assert all(c.fence == 2 for batch in [*batches, rest] for c in batch)

    async def test_an_end_is_never_both_live_and_handed_out(self, store: SessionStore) -> None:
        """A re-claim never revives the session: writes still refuse it as ended."""
        claim = await ended(store, EndReason.CLIENT_ENDED)
        sid = claim.session.id
        await store.claim_due(T0 + store.end_lease, BIG)
        assert await store.end(sid, EndReason.ADMIN, T0 + store.end_lease) is None
        info = await store.get(sid)
        assert info is not None
        assert info.end_reason is EndReason.CLIENT_ENDED
        assert await store.list() == []
