"""Where a session's entry in a deadline index goes after a decision: the one rule.

Both stores keep, per live session, one index entry no later than its next
event (the lazy re-arm: touches only move deadlines later, so they leave the
entry alone). After the core decided something about a session, the entry
either stays, moves earlier, is re-armed (a claim took it out of the index),
or goes (the session ended). :class:`~tether.store.memory.MemoryStore` and
the Redis store (which hands the answer to ``apply.lua``) both ask here.
Pure: no clock, no I/O.
"""

from __future__ import annotations

from typing import Final

from tether.core.session import Ended, SessionRecord, Transition


class Retire:
    """The session ended: its entry leaves the index."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "RETIRE"


RETIRE: Final = Retire()


def earlier(record: SessionRecord, armed_at: float, *, scale: int = 0) -> float | None:
    """``record``'s next event if it now falls before its entry at ``armed_at``, else ``None``.

    ``scale`` > 0 compares both times rounded to ``1 / scale`` seconds, the
    unit a store keeps them in (Redis: microseconds), so an entry read back
    rounded is not taken for a later one.
    """
    deadline = record.next_deadline()
    if deadline is None:
        return None
    if scale:
        if round(deadline.at * scale) >= round(armed_at * scale):
            return None
    elif deadline.at >= armed_at:
        return None
    return deadline.at


def after(
    record: SessionRecord, transition: Transition | None, *, armed_at: float | None, scale: int = 0
) -> float | Retire | None:
    """After ``transition``: ``RETIRE`` the entry, arm it at a time, or keep it (``None``).

    ``armed_at`` is the entry's time, or ``None`` when a claim took the entry
    out of the index (the session is then re-armed at its next event). An end
    retires the session; otherwise a transition may have moved the next event
    before the entry (a switched warning ends sooner; a cleared warning's next
    warning can come before the end the entry was armed for).
    """
    if isinstance(transition, Ended):
        return RETIRE
    if armed_at is None:
        deadline = record.next_deadline()
        assert deadline is not None  # not ended, so live
        return deadline.at
    if transition is not None:
        return earlier(record, armed_at, scale=scale)
    return None
