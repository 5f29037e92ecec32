"""``set_busy`` on Redis: a busy mark opened or closed, decided by the core, committed by CAS.

Busy marks change at the pace of replies, not of touches, so there is no
script of their own and no fast path: the session is read, the core decides
(:meth:`~tether.core.session.SessionRecord.set_busy`, exactly as
:class:`~tether.store.memory.MemoryStore` decides it) and ``apply.lua``
commits the result if the session did not move meanwhile.
"""

from __future__ import annotations

from tether.core.session import BusyEffect, Ended, Transition
from tether.store.base import Armed, Claim
from tether.store.redis import arming, cas
from tether.store.redis.cas import AGAIN, Again
from tether.store.redis.codec import Loaded, num
from tether.store.redis.link import Link
from tether.types import SessionId


async def set_busy(
    link: Link, session_id: SessionId, now: float, *, busy: bool
) -> Claim | Armed | None:
    """See ``SessionStore.set_busy``."""
    loaded: Loaded = await link.read(session_id)

    async def attempt() -> Claim | Armed | Again | None:
        nonlocal loaded
        record = loaded.record
        earlier: float | None = None
        transition: Transition | None = None
        if record.expired(now) is not None:
            transition = record.advance(now)  # a busy mark cannot revive it: the end applies
        else:
            effect = record.set_busy(now, busy)
            if effect is BusyEffect.IGNORED:
                return None
            if effect is BusyEffect.REVIEW:
                transition = record.advance(now)
            elif effect is BusyEffect.RESTART:
                earlier = arming.earlier(loaded)
        arm = arming.arm_after(loaded, transition, popped=False)
        if arm == arming.KEEP and earlier is not None:
            arm = num(earlier)
        reply = await link.apply(loaded, arm, now)
        if not cas.ok(reply):
            loaded = await link.refused(session_id, reply)
            return AGAIN
        if isinstance(transition, Ended):
            return link.end_claim(loaded, transition)
        if transition is not None:
            return Claim(record.snapshot(), transition)
        return None if earlier is None else Armed(earlier)

    return await cas.retry(attempt)
