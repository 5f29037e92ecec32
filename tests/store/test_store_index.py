"""DeadlineIndex: a two-level priority queue that must behave like one sorted list."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tether.store.index import DeadlineIndex
from tether.types import SessionId

T0 = 1_700_000_000.0

times = st.floats(min_value=0.0, max_value=100.0, allow_nan=False).map(lambda t: T0 + t)


def sid(n: int) -> SessionId:
    return SessionId(f"{n:032x}")


def drain(index: DeadlineIndex, now: float) -> list[tuple[float, SessionId]]:
    index.release(now)
    out = []
    while (entry := index.pop_due(now)) is not None:
        out.append(entry)
    return out


@settings(max_examples=300, deadline=None)
@given(
    pushes=st.lists(st.tuples(times, times), max_size=60),
    span=st.sampled_from([0.25, 1.0, 7.0]),
)
def test_pops_match_a_sorted_list_at_every_step(
    pushes: list[tuple[float, float]], span: float
) -> None:
    """Interleaved pushes and drains pop exactly the due entries, in time order."""
    index = DeadlineIndex(span)
    model: list[tuple[float, SessionId]] = []
    now = T0
    for n, (at, step_to) in enumerate(pushes):
        index.push(at, sid(n))
        model.append((at, sid(n)))
        peek = index.peek()
        assert peek is not None
        assert peek <= min(m[0] for m in model)  # a lower bound of every entry
        now = max(now, step_to)
        due = sorted(m for m in model if m[0] <= now)
        assert drain(index, now) == due
        model = [m for m in model if m[0] > now]
        assert len(index) == len(model)
    assert drain(index, T0 + 1000.0) == sorted(model)
    assert index.peek() is None


def test_far_entries_are_not_popped_before_release() -> None:
    """An entry in a far bucket becomes poppable only once release() reaches its bucket."""
    index = DeadlineIndex(1.0)
    index.push(T0 + 5.5, sid(1))
    assert index.pop_due(T0 + 6.0) is None
    assert index.peek() == T0 + 5.0  # the bucket's start: a lower bound
    assert drain(index, T0 + 6.0) == [(T0 + 5.5, sid(1))]


def test_entries_before_the_horizon_go_straight_to_the_near_heap() -> None:
    """After a release, a push due before the next span boundary is exact at peek()."""
    index = DeadlineIndex(1.0)
    index.release(T0 + 0.2)
    index.push(T0 + 0.7, sid(1))
    assert index.peek() == T0 + 0.7


def test_rebuild_keeps_released_entries_poppable() -> None:
    """A rebuild in the middle of draining loses no due entry (the horizon is kept)."""
    index = DeadlineIndex(10.0)
    for n in range(5):
        index.push(T0 + n, sid(n))
    index.release(T0 + 9.0)
    first = index.pop_due(T0 + 9.0)
    assert first == (T0, sid(0))
    index.rebuild(index.entries())
    assert [index.pop_due(T0 + 9.0) for _ in range(4)] == [(T0 + n, sid(n)) for n in range(1, 5)]
    assert len(index) == 0


@settings(max_examples=200, deadline=None)
@given(pushes=st.lists(times, min_size=1, max_size=40), now=times)
def test_floor_is_always_a_lower_bound_of_every_entry(pushes: list[float], now: float) -> None:
    """After pushes, a release and partial pops, floor never exceeds any remaining entry."""
    index = DeadlineIndex(1.0)
    for n, at in enumerate(pushes):
        index.push(at, sid(n))
        assert index.floor <= min(at for at, _ in index.entries())
    drain(index, now)
    remaining = index.entries()
    if remaining:
        assert index.floor <= min(at for at, _ in remaining)
        assert index.peek() == index.floor
