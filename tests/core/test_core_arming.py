"""``tether.core.arming``: the one rule for where an index entry goes after a decision."""

from __future__ import annotations

from tether.core.arming import RETIRE, after, earlier
from tether.core.policy import Policy
from tether.core.session import Ended, SessionRecord, Warned
from tether.types import EndReason, SessionId, UserId

T0 = 1_700_000_000.0
POLICY = Policy(idle_timeout=100.0, warn_before=20.0, max_duration=1800.0, presence_timeout=0.0)
WARNED = Warned(EndReason.IDLE_TIMEOUT, T0 + 100.0)


def fresh() -> SessionRecord:
    """A fresh session: its next event is the idle warning at T0 + 80."""
    return SessionRecord(SessionId("a" * 32), UserId("u1"), "chat", POLICY, T0)


def test_an_end_retires_the_entry_popped_or_not() -> None:
    """An end retires the session's entry whether or not a claim popped it."""
    assert after(fresh(), Ended(EndReason.ADMIN), armed_at=None) is RETIRE
    assert after(fresh(), Ended(EndReason.ADMIN), armed_at=T0 + 80.0) is RETIRE


def test_a_popped_entry_is_re_armed_at_the_next_event() -> None:
    """Taken out by a claim, a live session is armed at its next event even with no transition."""
    assert after(fresh(), None, armed_at=None) == T0 + 80.0


def test_an_armed_entry_moves_only_when_a_transition_brings_the_next_event_before_it() -> None:
    """The index needs a lower bound: only an earlier next event after a transition re-arms."""
    assert after(fresh(), WARNED, armed_at=T0 + 80.0) is None
    assert after(fresh(), WARNED, armed_at=T0 + 90.0) == T0 + 80.0
    assert after(fresh(), None, armed_at=T0 + 90.0) is None


def test_earlier_compares_in_the_stores_unit_when_given_one() -> None:
    """With a scale, times equal once rounded to that unit are not 'earlier'."""
    assert earlier(fresh(), T0 + 80.0000004) == T0 + 80.0
    assert earlier(fresh(), T0 + 80.0000004, scale=1_000_000) is None
    assert earlier(fresh(), T0 + 80.000002, scale=1_000_000) == T0 + 80.0
    assert earlier(fresh(), T0 + 80.0) is None
