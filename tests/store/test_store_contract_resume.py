"""The ``SessionStore`` contract for ``resume_presence``, run against every implementation.

After a store outage the runtime restarts every live session's presence clock
at the recovery time: ``last_seen`` becomes ``max(last_seen, at)``, so no
session ends ``client_gone`` on a deadline that fell while nobody could reach
the store. Only presence is excused: idle and lifetime deadlines stand.
Stores never read a clock: every ``now`` below is fake time passed in.
"""

from __future__ import annotations

import pytest

from tether.core.ids import new_session_id
from tether.core.policy import Policy
from tether.core.session import Ended, SessionRecord
from tether.store.base import SessionStore
from tether.store.redis import RedisStore
from tether.store.redis import nodes as redis_nodes_module
from tether.types import EndReason, SessionId, SessionState, UserId

T0 = 1_700_000_000.0
BIG = 10_000
PRESENCE = Policy(idle_timeout=600.0, warn_before=0.0, max_duration=1800.0, presence_timeout=60.0)


async def new_session(
    store: SessionStore, *, user: str = "u1", policy: Policy = PRESENCE, now: float = T0
) -> SessionId:
    """Create a session with no per-user limit; returns its id."""
    record = SessionRecord(new_session_id(), UserId(user), "chat", policy, now)
    record.touch(now, activity=False)  # a client that signals presence
    await store.create(record, max_per_user=None)
    return record.id


def ends(claims: list[object]) -> dict[SessionId, EndReason]:
    """The ends among ``claims``, by session."""
    out = {}
    for claim in claims:
        transition = claim.transition  # type: ignore[attr-defined]
        if isinstance(transition, Ended):
            out[claim.session.id] = transition.reason  # type: ignore[attr-defined]
    return out


class TestResumePresenceContract:
    """Behaviour of ``resume_presence`` every store must show."""

    async def test_presence_that_ran_out_during_the_outage_restarts_at_the_recovery(
        self, store: SessionStore
    ) -> None:
        """A session unseen past its presence deadline is not ended; it ends timeout after `at`."""
        sid = await new_session(store)
        assert await store.resume_presence(T0 + 200.0) == 1
        assert await store.claim_due(T0 + 200.0, BIG) == []
        assert await store.claim_due(T0 + 259.0, BIG) == []
        info = await store.get(sid)
        assert info is not None
        assert info.state is SessionState.ACTIVE
        assert info.last_seen == T0 + 200.0
        assert ends(await store.claim_due(T0 + 260.0, BIG)) == {sid: EndReason.CLIENT_GONE}

    async def test_a_touch_after_the_resume_is_presence_not_a_late_end(
        self, store: SessionStore
    ) -> None:
        """A heartbeat inside the timeout counted from `at` keeps the session."""
        sid = await new_session(store)
        await store.resume_presence(T0 + 200.0)
        assert await store.touch(sid, T0 + 230.0, activity=False) is None
        assert await store.claim_due(T0 + 280.0, BIG) == []
        assert ends(await store.claim_due(T0 + 290.0, BIG)) == {sid: EndReason.CLIENT_GONE}

    async def test_last_seen_never_moves_back(self, store: SessionStore) -> None:
        """A resume at a time before a session's last sign of life changes nothing for it."""
        sid = await new_session(store)
        await store.touch(sid, T0 + 50.0, activity=False)
        assert await store.resume_presence(T0 + 40.0) == 0
        info = await store.get(sid)
        assert info is not None
        assert info.last_seen == T0 + 50.0

    async def test_resume_is_idempotent(self, store: SessionStore) -> None:
        """Several nodes resuming (at the same or different times) leave the latest `at`."""
        sid = await new_session(store)
        assert await store.resume_presence(T0 + 200.0) == 1
        assert await store.resume_presence(T0 + 200.0) == 0
        assert await store.resume_presence(T0 + 190.0) == 0
        info = await store.get(sid)
        assert info is not None
        assert info.last_seen == T0 + 200.0

    async def test_idle_and_lifetime_deadlines_are_not_excused(self, store: SessionStore) -> None:
        """An idle end that fell during the outage still ends the session as idle_timeout."""
        idle = await new_session(store, policy=Policy(60.0, 0.0, 1800.0, 600.0))
        longest = await new_session(store, user="u2", policy=Policy(600.0, 0.0, 90.0, 600.0))
        await store.resume_presence(T0 + 100.0)
        assert ends(await store.claim_due(T0 + 100.0, BIG)) == {
            idle: EndReason.IDLE_TIMEOUT,
            longest: EndReason.MAX_DURATION,
        }

    async def test_ended_sessions_are_left_alone(self, store: SessionStore) -> None:
        """A session ended before the resume keeps its end and is not counted."""
        sid = await new_session(store)
        claim = await store.end(sid, EndReason.ADMIN, T0 + 10.0)
        assert claim is not None
        assert await store.complete(sid, claim.fence)
        assert await store.resume_presence(T0 + 200.0) == 0
        info = await store.get(sid)
        assert info is not None
        assert info.end_reason is EndReason.ADMIN
        assert info.last_seen == T0

    async def test_a_connected_session_stays_held(self, store: SessionStore) -> None:
        """A session with a connection keeps it; its presence starts when it closes, as ever."""
        sid = await new_session(store)
        await store.attach(sid, T0 + 1.0)
        await store.resume_presence(T0 + 200.0)
        await store.detach(sid, T0 + 300.0)
        assert await store.claim_due(T0 + 359.0, BIG) == []
        assert ends(await store.claim_due(T0 + 360.0, BIG)) == {sid: EndReason.CLIENT_GONE}


@pytest.mark.parametrize("chunk", [1, 3])
async def test_redis_resume_walks_every_session_in_chunks(
    redis_store_factory: object, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """RedisStore resumes in chunks of RESUME_CHUNK script calls and still reaches every session."""
    monkeypatch.setattr(redis_nodes_module, "RESUME_CHUNK", chunk)
    async with redis_store_factory() as store:  # type: ignore[operator]
        assert isinstance(store, RedisStore)
        sids = [await new_session(store, user=f"u{i}") for i in range(7)]
        gone = sids.pop(3)
        claim = await store.end(gone, EndReason.ADMIN, T0 + 1.0)
        assert claim is not None
        assert await store.complete(gone, claim.fence)
        assert await store.resume_presence(T0 + 200.0) == len(sids)
        assert await store.claim_due(T0 + 259.0, BIG) == []
        for sid in sids:
            info = await store.get(sid)
            assert info is not None
            assert info.last_seen == T0 + 200.0


async def test_redis_resume_counts_as_a_keepalive_of_every_node(
    redis_store_factory: object,
) -> None:
    """A node whose lease ran out during the outage is not reaped right after the resume."""
    async with redis_store_factory() as store:  # type: ignore[operator]
        assert isinstance(store, RedisStore)
        other = RedisStore(store.client, prefix=store.prefix, node_lease=15.0)
        await other.keepalive(T0)
        sid = await new_session(other)
        await other.attach(sid, T0)
        await store.keepalive(T0)
        # Both leases ran out while Redis was down (T0 + 15); it answers again at T0 + 100.
        await store.resume_presence(T0 + 100.0)
        assert await store.claim_due(T0 + 100.0, BIG) == []
        info = await store.get(sid)
        assert info is not None
        assert info.connections == 1
        # The other node really is gone: reaped one lease after the resume, its
        # session's presence counted from the resume.
        assert await store.claim_due(T0 + 115.0, BIG) == []
        info = await store.get(sid)
        assert info is not None
        assert info.connections == 0
        assert ends(await store.claim_due(T0 + 160.0, BIG)) == {sid: EndReason.CLIENT_GONE}
        await other.aclose()
