"""MemoryStore's own promises: the hot paths never scan, and its indexes stay small.

The contract suite (test_store_contract.py) proves what MemoryStore does; these
tests look inside it (``_index``, ``_live``, ``_by_user``) to prove how cheaply:
a touch is O(1) and never touches the deadline index, a claim of k due sessions
out of n advances only those k, stale index entries are compacted away, and
ended sessions are forgotten once their retention has run out.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import pytest

from tether.core.ids import new_session_id
from tether.core.policy import Policy
from tether.core.session import Ended, SessionInfo, SessionRecord, Transition
from tether.core.transcript import Role
from tether.errors import SessionNotFound
from tether.store.memory import MemoryStore, _Live
from tether.types import EndReason, SessionId, SessionState, UserId

T0 = 1_700_000_000.0
U1 = UserId("u1")
U2 = UserId("u2")
BIG = 100_000

# presence_timeout=0: no presence clock until a connection came and went
QUIET = Policy(idle_timeout=600.0, warn_before=0.0, max_duration=1800.0, presence_timeout=0.0)
SHORT_IDLE = Policy(idle_timeout=100.0, warn_before=0.0, max_duration=1800.0, presence_timeout=0.0)


async def add(
    store: MemoryStore, *, user: UserId = U1, policy: Policy = QUIET, now: float = T0
) -> SessionInfo:
    """Create one session with no per-user limit."""
    record = SessionRecord(new_session_id(), user, "chat", policy, now)
    record.touch(now, activity=False)  # a client that signals presence
    return (await store.create(record, max_per_user=None)).session


async def end_done(
    store: MemoryStore, session_id: SessionId, reason: EndReason, now: float
) -> None:
    """End the session and complete its end, as the runtime does after the pipeline."""
    claim = await store.end(session_id, reason, now)
    assert claim is not None
    assert await store.complete(session_id, claim.fence)


async def add_many(store: MemoryStore, n: int, *, policy: Policy = QUIET) -> list[SessionId]:
    """Create ``n`` sessions, one user each, and return their ids."""
    return [(await add(store, user=UserId(f"user{i}"), policy=policy)).id for i in range(n)]


@pytest.fixture
def store() -> MemoryStore:
    """A fresh MemoryStore with the default retention."""
    return MemoryStore()


@pytest.fixture
def advanced(monkeypatch: pytest.MonkeyPatch) -> list[SessionId]:
    """The ids of every ``advance`` call the store makes, in order."""
    calls: list[SessionId] = []
    original = SessionRecord.advance

    def counting(self: SessionRecord, now: float) -> Transition | None:
        calls.append(self.id)
        return original(self, now)

    monkeypatch.setattr(_Live, "advance", counting)
    return calls


# -- no scans ------------------------------------------------------------------------


async def test_claim_due_advances_only_the_due_sessions(
    store: MemoryStore, advanced: list[SessionId]
) -> None:
    """With 10k live sessions of which 10 are due, a claim advances those 10 and no other."""
    await add_many(store, 10_000)
    due = await add_many(store, 10, policy=SHORT_IDLE)
    claims = await store.claim_due(T0 + 100.0, BIG)
    assert sorted(c.session.id for c in claims) == sorted(due)
    assert sorted(advanced) == sorted(due)


async def test_claim_due_re_arms_touched_sessions_without_scanning(
    store: MemoryStore, advanced: list[SessionId]
) -> None:
    """A due entry of a touched session is re-armed: only the due entries are advanced."""
    everyone = await add_many(store, 10_000)
    due = await add_many(store, 10, policy=SHORT_IDLE)
    for session_id in everyone + due:
        await store.touch(session_id, T0 + 50.0, activity=True)
    assert await store.claim_due(T0 + 100.0, BIG) == []
    assert sorted(advanced) == sorted(due)
    assert len(store._index) == len(store._live)
    assert await store.next_due() == T0 + 150.0


async def test_touch_before_the_armed_deadline_does_no_deadline_work(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch, advanced: list[SessionId]
) -> None:
    """1000 touches push no heap entry and never compute a deadline (O(1) fast path)."""
    ids = await add_many(store, 100, policy=SHORT_IDLE)
    heap_before = sorted(store._index.entries())
    computed: list[SessionId] = []
    original = SessionRecord.governing_end

    def counting(self: SessionRecord) -> tuple[float, EndReason]:
        computed.append(self.id)
        return original(self)

    monkeypatch.setattr(_Live, "governing_end", counting)
    for i in range(1000):
        await store.touch(ids[i % 100], T0 + i * 0.05, activity=i % 2 == 0)
    assert sorted(store._index.entries()) == heap_before
    assert computed == []
    assert advanced == []


async def test_one_index_entry_per_live_session(store: MemoryStore) -> None:
    """After creates, touches and re-arming claims the heap holds one entry per live session."""
    ids = await add_many(store, 500, policy=SHORT_IDLE)
    assert len(store._index) == len(store._live) == 500
    for session_id in ids:
        await store.touch(session_id, T0 + 60.0, activity=True)
        await store.touch(session_id, T0 + 70.0, activity=False)
    assert len(store._index) == 500
    assert await store.claim_due(T0 + 100.0, BIG) == []  # every entry re-armed
    assert len(store._index) == 500
    assert sorted(at for at, _ in store._index.entries()) == [T0 + 160.0] * 500


async def test_claim_due_examines_at_most_limit_entries_stale_ones_included(
    store: MemoryStore,
) -> None:
    """``limit`` bounds the heap entries one call pops, even when they are all stale."""
    ids = await add_many(store, 50, policy=SHORT_IDLE)
    for session_id in ids[:40]:
        await end_done(store, session_id, EndReason.ADMIN, T0 + 1.0)
    assert len(store._index) == 50  # ended entries linger until they surface
    claims = await store.claim_due(T0 + 100.0, 10)
    assert len(store._index) == 40
    assert len(claims) <= 10
    # an all-stale batch comes back empty: next_due, not an empty batch, says when to stop
    for _ in range(10):
        next_due = await store.next_due()
        if next_due is None or next_due > T0 + 100.0:
            break
        await store.claim_due(T0 + 100.0, 10)
    assert store._live == {}
    assert store._index.entries() == []


async def test_superseded_entries_are_dropped_without_advancing(
    store: MemoryStore, advanced: list[SessionId]
) -> None:
    """An entry replaced by an earlier one is skipped when it surfaces, never advanced."""
    info = await add(store, policy=QUIET)  # entry at +600
    assert (
        await store.update_policy(
            info.id, Policy(idle_timeout=300.0, warn_before=0.0, presence_timeout=0.0), T0
        )
        == T0 + 300.0
    )
    await store.touch(info.id, T0 + 250.0, activity=True)  # true end +550
    await store.claim_due(T0 + 300.0, BIG)  # re-armed at +550
    await store.touch(info.id, T0 + 500.0, activity=True)  # true end +800
    await store.claim_due(T0 + 550.0, BIG)  # re-armed at +800
    assert len(advanced) == 2
    assert await store.claim_due(T0 + 600.0, BIG) == []  # the superseded +600 entry
    assert len(advanced) == 2
    assert store._index.entries() == [(T0 + 800.0, info.id)]


# -- compaction --------------------------------------------------------------------------


async def test_stale_entries_are_compacted_as_sessions_end(store: MemoryStore) -> None:
    """Ending 5000 of 6000 sessions keeps the heap within 2 * live + 1024 and loses no one."""
    ids = await add_many(store, 6000)
    for i, session_id in enumerate(ids[:5000]):
        await end_done(store, session_id, EndReason.ADMIN, T0 + i * 0.001)
        assert len(store._index) <= 2 * len(store._live) + 1024
    assert len(store._live) == 1000
    assert len(store._index) < 6000  # the rebuild happened
    claims = await store.claim_due(T0 + 600.0, BIG)
    assert sorted(c.session.id for c in claims) == sorted(ids[5000:])
    assert all(c.transition == Ended(EndReason.IDLE_TIMEOUT) for c in claims)


async def test_entries_superseded_by_earlier_deadlines_are_compacted(
    store: MemoryStore, advanced: list[SessionId]
) -> None:
    """Entries pushed by deadline-shortening changes are compacted too: the heap stays bounded."""
    info = await add(store)  # idle 600
    idle = 600.0
    for _ in range(2000):
        # each shorter idle timeout pushes one earlier entry and supersedes the last
        idle -= 0.25
        policy = Policy(idle_timeout=idle, warn_before=0.0, presence_timeout=0.0)
        assert await store.update_policy(info.id, policy, T0) == T0 + idle
        assert len(store._index) <= 2 * len(store._live) + 1024
    assert len(store._index) < 2000  # the rebuild happened
    assert await store.claim_due(T0 + idle - 0.1, BIG) == []
    claims = await store.claim_due(T0 + idle, BIG)
    assert [(c.session.id, c.transition) for c in claims] == [
        (info.id, Ended(EndReason.IDLE_TIMEOUT))
    ]
    assert advanced == [info.id]


async def test_compaction_inside_claim_due_loses_and_repeats_nothing(store: MemoryStore) -> None:
    """A heap rebuild triggered while claim_due is ending sessions keeps exactly-once claims."""
    due = await add_many(store, 2000, policy=SHORT_IDLE)
    victims = await add_many(store, 3023, policy=QUIET)
    for session_id in victims:
        await end_done(store, session_id, EndReason.ADMIN, T0 + 1.0)
    # just below the rebuild threshold: the next two ends inside claim_due cross it
    assert len(store._index) == 2 * len(store._live) + 1023
    claims = await store.claim_due(T0 + 100.0, BIG)
    claimed = [c.session.id for c in claims]
    assert sorted(claimed) == sorted(due)
    for claim in claims:
        assert await store.complete(claim.session.id, claim.fence)
    assert await store.claim_due(T0 + 10_000.0, BIG) == []
    assert store._live == {}


# -- retention of ended sessions -----------------------------------------------------------


async def test_ended_sessions_are_forgotten_after_retention() -> None:
    """Tombstones older than ``ended_retention`` go once a later end sweeps them."""
    store = MemoryStore(ended_retention=100.0)
    a, b, c, d = [(await add(store)).id for _ in range(4)]
    await store.append(a, Role.USER, "hi", None, T0)
    await store.end(a, EndReason.ADMIN, T0)
    await store.end(b, EndReason.ADMIN, T0 + 50.0)
    assert await store.get(a) is not None  # 50 s old: still retained
    await store.end(c, EndReason.CLIENT_ENDED, T0 + 100.0)
    assert await store.get(a) is None  # exactly 100 s old: forgotten
    assert await store.get(b) is not None
    assert [s.id for s in await store.list(state=SessionState.ENDED)] == [b, c]
    with pytest.raises(SessionNotFound):
        await store.touch(a, T0 + 100.0, activity=True)
    with pytest.raises(SessionNotFound):
        await store.transcript(a)
    with pytest.raises(SessionNotFound):
        await store.end(a, EndReason.ADMIN, T0 + 100.0)
    await store.end(d, EndReason.ADMIN, T0 + 1000.0)
    assert list(store._ended) == [d]


async def test_retention_is_swept_by_claimed_and_replaced_ends_too() -> None:
    """Ends by claim_due and by replacement also evict expired tombstones."""
    store = MemoryStore(ended_retention=10.0)
    old = await add(store, user=U2)
    await store.end(old.id, EndReason.ADMIN, T0)
    await add(store, policy=SHORT_IDLE)
    await store.claim_due(T0 + 100.0, BIG)
    assert await store.get(old.id) is None
    first = await add(store, user=U2, now=T0 + 100.0)
    await store.end(first.id, EndReason.ADMIN, T0 + 100.0)
    replaced = await add(store, user=U1, now=T0 + 200.0)
    record = SessionRecord(new_session_id(), U1, "chat", QUIET, T0 + 300.0)
    created = await store.create(record, max_per_user=1)
    assert [c.session.id for c in created.replaced] == [replaced.id]
    assert await store.get(first.id) is None


# -- per-user index -----------------------------------------------------------------------


async def test_per_user_index_through_a_users_first_second_and_third_sessions(
    store: MemoryStore,
) -> None:
    """One session is held as a bare id, more as a list in creation order; ends shrink it back."""
    s1 = (await add(store, now=T0)).id
    other = (await add(store, user=U2, now=T0 + 0.5)).id
    assert store._by_user[U1] == s1
    s2 = (await add(store, now=T0 + 1.0)).id
    s3 = (await add(store, now=T0 + 2.0)).id
    assert store._by_user[U1] == [s1, s2, s3]
    await store.end(s2, EndReason.ADMIN, T0 + 3.0)  # the middle one
    assert store._by_user[U1] == [s1, s3]
    assert [s.id for s in await store.list(user=U1)] == [s1, s3]
    await store.end(s1, EndReason.ADMIN, T0 + 4.0)
    assert store._by_user[U1] == s3
    assert [s.id for s in await store.list(user=U1)] == [s3]
    s4 = (await add(store, now=T0 + 5.0)).id
    assert [s.id for s in await store.list(user=U1)] == [s3, s4]
    await store.end(s3, EndReason.ADMIN, T0 + 6.0)
    await store.end(s4, EndReason.ADMIN, T0 + 7.0)
    assert U1 not in store._by_user
    assert await store.list(user=U1) == []
    assert store._by_user == {U2: other}


async def test_replacing_a_bare_id_user_keeps_the_index_consistent(store: MemoryStore) -> None:
    """A max_per_user replacement of a user's only session leaves just the new one indexed."""
    only = await add(store)
    record = SessionRecord(new_session_id(), U1, "chat", QUIET, T0 + 1.0)
    created = await store.create(record, max_per_user=1)
    assert [c.session.id for c in created.replaced] == [only.id]
    assert store._by_user == {U1: record.id}
    record2 = SessionRecord(new_session_id(), U1, "chat", QUIET, T0 + 2.0)
    created2 = await store.create(record2, max_per_user=2)
    assert created2.replaced == []
    assert store._by_user == {U1: [record.id, record2.id]}


async def test_claimed_ends_leave_no_per_user_or_live_residue(store: MemoryStore) -> None:
    """Sessions ended by claim_due vanish from the live and per-user indexes."""
    for _ in range(3):
        await add(store, policy=SHORT_IDLE)
    await add(store, user=U2, policy=SHORT_IDLE)
    claims = await store.claim_due(T0 + 100.0, BIG)
    assert len(claims) == 4
    assert store._live == {}
    assert store._by_user == {}


# -- atomicity ---------------------------------------------------------------------------


async def test_every_method_completes_without_yielding_to_the_event_loop(
    store: MemoryStore,
) -> None:
    """Each MemoryStore call finishes in one step, which is what makes it atomic."""
    info = await add(store)
    other = await add(store, user=U2)
    sid = info.id

    def step(coro: Coroutine[Any, Any, Any]) -> None:
        with pytest.raises(StopIteration):
            coro.send(None)

    step(store.get(sid))
    step(store.touch(sid, T0 + 1.0, activity=True))
    step(store.attach(sid, T0 + 1.0))
    step(store.update_config(sid, {"a": 1}))
    step(store.update_policy(sid, SHORT_IDLE, T0 + 2.0))
    step(store.append(sid, Role.USER, "x", None, T0 + 2.0))
    step(store.detach(sid, T0 + 2.0))
    step(store.transcript(sid))
    step(store.list())
    step(store.stats())
    step(store.next_due())
    step(store.claim_due(T0 + 3.0, BIG))
    step(store.end(other.id, EndReason.ADMIN, T0 + 3.0))
    step(store.renew([(other.id, 1)], T0 + 3.0))
    step(store.complete(other.id, 1))
    record = SessionRecord(new_session_id(), U1, "chat", QUIET, T0 + 4.0)
    step(store.create(record, max_per_user=1))
    step(store.ping())
    step(store.aclose())


# -- end leases --------------------------------------------------------------------------


async def test_completed_and_renewed_leases_leave_a_bounded_lease_index(store: MemoryStore) -> None:
    """Renewals and completions leave stale lease entries; the lease index is compacted."""
    ids = await add_many(store, 3000)
    fences = {}
    for session_id in ids:
        claim = await store.end(session_id, EndReason.ADMIN, T0)
        assert claim is not None
        fences[session_id] = claim.fence
    for k in range(3):
        assert await store.renew(list(fences.items()), T0 + 10.0 * (k + 1)) == [True] * 3000
    assert len(store._lease_queue) == 4 * 3000
    for session_id in ids:
        assert await store.complete(session_id, fences[session_id])
        assert len(store._lease_queue) <= 2 * len(store._leases) + 1024
    assert store._leases == {}
    assert len(store._lease_queue) <= 1024
    assert await store.claim_due(T0 + 10_000.0, BIG) == []
    assert await store.next_due() is None


async def test_a_lease_of_a_forgotten_session_is_dropped_not_handed_out() -> None:
    """An end whose tombstone's retention ran out before anyone completed it is just dropped."""
    store = MemoryStore(ended_retention=10.0, end_lease=30.0)
    lost = await add(store)
    await store.end(lost.id, EndReason.ADMIN, T0)
    later = await add(store, user=U2)
    await end_done(store, later.id, EndReason.ADMIN, T0 + 20.0)  # sweeps the first tombstone
    assert await store.get(lost.id) is None
    assert await store.claim_due(T0 + 100.0, BIG) == []
    assert store._leases == {}
