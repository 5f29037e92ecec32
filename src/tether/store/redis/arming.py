"""The core's re-arm decision (:mod:`tether.core.arming`) in the form ``apply.lua`` takes.

``apply.lua`` takes, per session, what to do with its index entry: keep it
(``""``), retire the session (``"retire"``), or arm it at a time (stored
microseconds). The decision is the core's; this module only encodes it, and
compares times in the microseconds Redis stores them in.
"""

from __future__ import annotations

from tether.core import arming
from tether.core.session import Transition
from tether.store.redis import codec
from tether.store.redis.codec import Loaded, num

KEEP = ""
RETIRE = "retire"


def earlier(loaded: Loaded) -> float | None:
    """The session's next event if it now falls before its armed entry (see ``core.arming``)."""
    return arming.earlier(loaded.record, loaded.armed_at, scale=codec.MICROS)


def arm_after(loaded: Loaded, transition: Transition | None, *, popped: bool) -> str:
    """What ``apply.lua`` should do with the index entry after ``transition``."""
    entry = arming.after(
        loaded.record,
        transition,
        armed_at=None if popped else loaded.armed_at,
        scale=codec.MICROS,
    )
    if entry is None:
        return KEEP
    if isinstance(entry, arming.Retire):
        return RETIRE
    return num(entry)
