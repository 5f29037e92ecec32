"""Where a session's entry in the deadline index goes after a decision: pure, no I/O.

``apply.lua`` takes, per session, what to do with its index entry: keep it
(``""``), retire the session (``"retire"``), or arm it at a time. Deciding
that needs only the session as read and the transition the core made; it
mirrors ``MemoryStore._apply``.
"""

from __future__ import annotations

from tether.core.session import Ended, Transition
from tether.store.redis import codec
from tether.store.redis.codec import Loaded, num

KEEP = ""
RETIRE = "retire"


def earlier(loaded: Loaded) -> float | None:
    """The session's next event if it now falls before its armed entry.

    Compared in stored microseconds: the armed entry was read back rounded.
    """
    deadline = loaded.record.next_deadline()
    if deadline is None or codec.micros(deadline.at) >= codec.micros(loaded.armed_at):
        return None
    return deadline.at


def arm_after(loaded: Loaded, transition: Transition | None, *, popped: bool) -> str:
    """What ``apply.lua`` should do with the index entry after ``transition``.

    An end retires the session; a session taken out of the index by a claim
    is re-armed at its next event; otherwise a transition may have moved the
    next event before the armed entry (the index only needs a lower bound).
    """
    if isinstance(transition, Ended):
        return RETIRE
    if popped:
        deadline = loaded.record.next_deadline()
        assert deadline is not None  # live
        return num(deadline.at)
    if transition is not None and (at := earlier(loaded)) is not None:
        return num(at)
    return KEEP
