"""MemoryStore's bounds on ended sessions: time, count and transcript bytes, oldest first.

Times are passed in explicitly (stores never read a clock), so retention is
tested at exact instants, with no waiting.
"""

from __future__ import annotations

from tether.core.caps import UNCAPPED
from tether.core.ids import new_session_id
from tether.core.policy import Policy
from tether.core.session import SessionRecord
from tether.core.transcript import Role
from tether.store.memory import MemoryStore
from tether.types import EndReason, SessionId, SessionState, UserId

T0 = 1_700_000_000.0
QUIET = Policy(idle_timeout=600.0, warn_before=0.0, max_duration=1800.0, presence_timeout=0.0)


async def ended_session(
    store: MemoryStore, n: int, *, content: str = "", complete: bool = True
) -> SessionId:
    """Session ``n`` (its own user), holding one message of ``content`` if any, then ended."""
    now = T0 + n
    record = SessionRecord(new_session_id(), UserId(f"u{n}"), "chat", QUIET, now)
    await store.create(record, max_per_user=None)
    if content:
        await store.append(record.id, Role.USER, content, None, now)
    claim = await store.end(record.id, EndReason.CLIENT_ENDED, now)
    assert claim is not None
    if complete:
        assert await store.complete(record.id, claim.fence)
    return record.id


async def retained(store: MemoryStore) -> list[SessionId]:
    """The ended sessions the store still answers, oldest end first."""
    return [s.id for s in await store.list(state=SessionState.ENDED)]


async def test_the_count_bound_keeps_only_the_newest_ends() -> None:
    """With max_ended=3, ten ends leave exactly the last three, oldest forgotten first."""
    store = MemoryStore(max_ended=3)
    ids = [await ended_session(store, n) for n in range(10)]
    assert await retained(store) == ids[-3:]
    assert await store.get(ids[0]) is None
    assert store.ended_retained[0] == 3


async def test_the_byte_bound_keeps_the_newest_ends_within_it() -> None:
    """With 1000 bytes allowed, ends holding 300 bytes each leave three retained (900 bytes)."""
    store = MemoryStore(max_ended_bytes=1000, transcript_cap=UNCAPPED)
    ids = [await ended_session(store, n, content="x" * 300) for n in range(6)]
    assert await retained(store) == ids[-3:]
    assert store.ended_retained == (3, 900)


async def test_an_end_whose_pipeline_has_not_completed_is_not_forgotten_early() -> None:
    """Over the count bound, an uncompleted end stays (its pipeline archives from it) until done."""
    store = MemoryStore(max_ended=1)
    a = await ended_session(store, 0, content="keep me", complete=False)
    b = await ended_session(store, 1, complete=False)
    assert await retained(store) == [a, b]  # both pipelines still read them
    assert [m.content for m in await store.transcript(a)] == ["keep me"]
    assert await store.complete(a, 1)
    assert await retained(store) == [b]  # a is done: the bound applies at once
    assert await store.complete(b, 1)
    assert await retained(store) == [b]


async def test_bounds_hold_under_steady_churn() -> None:
    """Across 3000 ends the store never retains more than max_ended sessions or max_ended_bytes."""
    store = MemoryStore(max_ended=100, max_ended_bytes=20_000)
    for n in range(3000):
        await ended_session(store, n, content="y" * (n % 400))
        count, size = store.ended_retained
        assert count <= 100
        assert size <= 20_000
    assert len(store._ended) == store.ended_retained[0]
    assert store._ended_bytes == sum(t.size for t in store._ended.values())


async def test_time_retention_still_forgets_ends_within_the_bounds() -> None:
    """Ends older than ended_retention are forgotten even when the count bound is far away."""
    store = MemoryStore(ended_retention=100.0, max_ended=1000)
    old = await ended_session(store, 0)
    assert await retained(store) == [old]
    fresh = await ended_session(store, 100)  # ends at T0 + 100: old is exactly 100 s old
    assert await retained(store) == [fresh]
