"""``tether.store.redis.arming``: where a session's index entry goes after a decision (pure)."""

from __future__ import annotations

from tether.core.policy import Policy
from tether.core.session import Ended, SessionRecord, Warned
from tether.store.redis.arming import KEEP, RETIRE, arm_after, earlier
from tether.store.redis.codec import Loaded, num
from tether.types import EndReason, SessionId, UserId

T0 = 1_700_000_000.0
POLICY = Policy(idle_timeout=100.0, warn_before=20.0, max_duration=1800.0, presence_timeout=0.0)


def loaded(armed_at: float) -> Loaded:
    """A fresh session (next event: the idle warning at T0 + 80) armed at ``armed_at``."""
    record = SessionRecord(SessionId("a" * 32), UserId("u1"), "chat", POLICY, T0)
    return Loaded(record, "1", armed_at)


def test_an_end_retires_the_session() -> None:
    """Whatever else holds, an end retires the session's entry."""
    assert arm_after(loaded(T0 + 80.0), Ended(EndReason.ADMIN), popped=True) == RETIRE
    assert arm_after(loaded(T0 + 80.0), Ended(EndReason.ADMIN), popped=False) == RETIRE


def test_a_session_a_claim_took_out_is_armed_at_its_next_event() -> None:
    """Popped by a claim, a live session is re-armed at its next event even with no transition."""
    assert arm_after(loaded(T0 + 500.0), None, popped=True) == num(T0 + 80.0)


def test_an_entry_is_kept_unless_the_next_event_moved_before_it() -> None:
    """Not popped: a transition re-arms only an entry that now lies after the next event."""
    warned = Warned(EndReason.IDLE_TIMEOUT, T0 + 100.0)
    assert arm_after(loaded(T0 + 80.0), warned, popped=False) == KEEP
    assert arm_after(loaded(T0 + 90.0), warned, popped=False) == num(T0 + 80.0)
    assert arm_after(loaded(T0 + 90.0), None, popped=False) == KEEP


def test_earlier_compares_in_stored_microseconds() -> None:
    """An entry read back rounded to the microsecond is not 'later' than the same deadline."""
    assert earlier(loaded(T0 + 80.0000004)) is None
    assert earlier(loaded(T0 + 80.000002)) == T0 + 80.0
