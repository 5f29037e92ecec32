"""The ``SessionStore`` contract for busy time (``set_busy``), run against every implementation.

While a busy mark is open (a reply streams, the app plays speech) the idle
clock does not run out: no idle warning, no ``idle_timeout`` end, and the
idle clock counts again from the close of the last mark. Marks nest; the
lifetime and presence clocks run on regardless.
"""

from __future__ import annotations

import pytest

from tether.core.ids import new_session_id
from tether.core.policy import Policy
from tether.core.session import Action, Deadline, Ended, Reactivated, SessionRecord, Warned
from tether.errors import SessionEnded, SessionNotFound
from tether.store.base import Armed, Claim, SessionStore
from tether.types import EndReason, SessionId, SessionState, UserId

T0 = 1_700_000_000.0
BIG = 10_000
IDLE, MAX, GONE = EndReason.IDLE_TIMEOUT, EndReason.MAX_DURATION, EndReason.CLIENT_GONE
# presence_timeout=0: the presence clock stays stopped (nothing is ever attached here).
WARN_IDLE = Policy(idle_timeout=100.0, warn_before=20.0, max_duration=1800.0, presence_timeout=0.0)
SHORT_LIFE = Policy(idle_timeout=100.0, warn_before=20.0, max_duration=300.0, presence_timeout=0.0)


async def new_session(store: SessionStore, policy: Policy = WARN_IDLE) -> SessionId:
    """A session created at T0 with ``policy``."""
    record = SessionRecord(new_session_id(), UserId("u1"), "chat", policy, T0)
    await store.create(record, max_per_user=None)
    return record.id


async def claimed(store: SessionStore, now: float) -> list[object]:
    """The transitions ``claim_due`` hands out at ``now``."""
    return [claim.transition for claim in await store.claim_due(now, BIG)]


class TestBusyContract:
    """Behaviour of ``set_busy`` every store must show."""

    async def test_busy_time_never_warns_or_ends_idle(self, store: SessionStore) -> None:
        """Busy from T0+10: claims at and long past the idle warning and end hand out nothing."""
        sid = await new_session(store)
        assert await store.set_busy(sid, T0 + 10.0, busy=True) is None
        for now in (T0 + 80.0, T0 + 100.0, T0 + 500.0, T0 + 1700.0):
            assert await claimed(store, now) == []
        info = await store.get(sid)
        assert info is not None
        assert (info.state, info.busy, info.last_activity) == (SessionState.ACTIVE, True, T0)
        assert info.deadlines().idle_at is None
        assert info.next_deadline == Deadline(T0 + 1780.0, Action.WARN, MAX)

    async def test_the_idle_clock_counts_again_from_the_close(self, store: SessionStore) -> None:
        """Closed at T0+500: Armed at T0+580, warned then, ended idle_timeout at T0+600."""
        sid = await new_session(store)
        await store.set_busy(sid, T0 + 10.0, busy=True)
        assert await claimed(store, T0 + 400.0) == []
        assert await store.set_busy(sid, T0 + 500.0, busy=False) == Armed(T0 + 580.0)
        info = await store.get(sid)
        assert info is not None
        assert (info.busy, info.last_activity, info.last_seen) == (False, T0 + 500.0, T0)
        assert info.deadlines().idle_at == T0 + 600.0
        assert await store.next_due() == T0 + 580.0
        assert await claimed(store, T0 + 579.0) == []
        assert await claimed(store, T0 + 580.0) == [Warned(IDLE, T0 + 600.0)]
        assert await claimed(store, T0 + 600.0) == [Ended(IDLE)]

    async def test_nested_marks_keep_the_idle_clock_stopped_until_the_last_closes(
        self, store: SessionStore
    ) -> None:
        """A reply and the app's speech: closing one leaves it busy; idle runs from the second."""
        sid = await new_session(store)
        await store.set_busy(sid, T0 + 10.0, busy=True)
        await store.set_busy(sid, T0 + 20.0, busy=True)
        assert await store.set_busy(sid, T0 + 30.0, busy=False) is None
        assert await claimed(store, T0 + 900.0) == []
        info = await store.get(sid)
        assert info is not None
        assert info.busy is True
        assert info.last_activity == T0
        assert await store.set_busy(sid, T0 + 1000.0, busy=False) == Armed(T0 + 1080.0)
        assert await claimed(store, T0 + 1079.0) == []
        assert await claimed(store, T0 + 1100.0) == [Ended(IDLE)]  # its warning came late
        info = await store.get(sid)
        assert info is not None
        assert info.state is SessionState.ENDED
        assert (info.end_reason, info.ended_at) == (IDLE, T0 + 1100.0)

    async def test_a_close_with_no_mark_open_changes_nothing(self, store: SessionStore) -> None:
        """A duplicate close returns None and leaves the session exactly as it was."""
        sid = await new_session(store)
        before = await store.get(sid)
        assert await store.set_busy(sid, T0 + 50.0, busy=False) is None
        assert await store.get(sid) == before
        await store.set_busy(sid, T0 + 60.0, busy=True)
        await store.set_busy(sid, T0 + 70.0, busy=False)
        after = await store.get(sid)
        assert await store.set_busy(sid, T0 + 75.0, busy=False) is None
        assert await store.get(sid) == after
        assert after is not None
        assert after.last_activity == T0 + 70.0

    async def test_busy_during_an_idle_warning_clears_it(self, store: SessionStore) -> None:
        """Opening a mark in an idle warning hands back Reactivated, as activity does."""
        sid = await new_session(store)
        assert await claimed(store, T0 + 80.0) == [Warned(IDLE, T0 + 100.0)]
        claim = await store.set_busy(sid, T0 + 90.0, busy=True)
        assert isinstance(claim, Claim)
        assert claim.transition == Reactivated()
        assert (claim.session.state, claim.session.warning, claim.session.busy) == (
            SessionState.ACTIVE,
            None,
            True,
        )
        assert await claimed(store, T0 + 100.0) == []
        info = await store.get(sid)
        assert info is not None
        assert info.state is SessionState.ACTIVE

    async def test_busy_never_clears_a_lifetime_warning_nor_stops_its_end(
        self, store: SessionStore
    ) -> None:
        """max_duration applies while busy: warned at T0+280, ended max_duration at T0+300."""
        sid = await new_session(store, SHORT_LIFE)
        await store.set_busy(sid, T0 + 5.0, busy=True)
        assert await claimed(store, T0 + 280.0) == [Warned(MAX, T0 + 300.0)]
        assert await store.set_busy(sid, T0 + 285.0, busy=True) is None
        info = await store.get(sid)
        assert info is not None
        assert info.warning == Warned(MAX, T0 + 300.0)
        assert await claimed(store, T0 + 300.0) == [Ended(MAX)]
        ended = await store.get(sid)
        assert ended is not None
        assert ended.busy is False

    @pytest.mark.parametrize("busy", [True, False], ids=["open", "close"])
    async def test_a_mark_at_a_due_end_ends_the_session_exactly_once(
        self, store: SessionStore, busy: bool
    ) -> None:
        """set_busy at the idle end cannot revive the session: it hands back the end, once."""
        sid = await new_session(store, Policy(100.0, 0.0, 1800.0, 0.0))
        claim = await store.set_busy(sid, T0 + 100.0, busy=busy)
        assert isinstance(claim, Claim)
        assert claim.transition == Ended(IDLE)
        assert claim.fence == 1
        assert await claimed(store, T0 + 100.0) == []
        with pytest.raises(SessionEnded) as raised:
            await store.set_busy(sid, T0 + 101.0, busy=False)
        assert raised.value.reason is IDLE

    async def test_set_busy_of_an_unknown_session_raises_not_found(
        self, store: SessionStore
    ) -> None:
        """An unknown id raises SessionNotFound and creates nothing."""
        with pytest.raises(SessionNotFound):
            await store.set_busy(new_session_id(), T0, busy=True)
        assert await store.list() == []

    async def test_the_index_stays_a_lower_bound_through_busy_marks(
        self, store: SessionStore
    ) -> None:
        """After opens and closes, next_due is never later than the session's next event."""
        sid = await new_session(store)
        for now, busy in ((10.0, True), (20.0, True), (30.0, False), (40.0, False)):
            await store.set_busy(sid, T0 + now, busy=busy)
            info = await store.get(sid)
            armed = await store.next_due()
            assert info is not None
            assert info.next_deadline is not None
            assert armed is not None
            assert armed <= info.next_deadline.at
        assert await claimed(store, T0 + 120.0) == [Warned(IDLE, T0 + 140.0)]
