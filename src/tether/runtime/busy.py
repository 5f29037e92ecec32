"""Busy time as a block: ``async with manager.busy(session_id):`` opens a mark, always closed.

While a session is busy (a reply streams, the app plays speech) its idle
clock does not run out; the rule is the core's
(:meth:`~tether.core.session.SessionRecord.set_busy`). Marks nest, so blocks
from several sources may overlap.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

from tether.errors import SessionEnded, SessionNotFound
from tether.types import SessionId

SetBusy = Callable[[SessionId, bool], Awaitable[None]]
"""``SessionManager.set_busy``."""


@asynccontextmanager
async def busy_time(set_busy: SetBusy, session_id: SessionId) -> AsyncIterator[None]:
    """Open a busy mark for the block; close it on every exit, cancellation included."""
    await set_busy(session_id, True)
    try:
        yield
    finally:
        # A session that ended during the block took its marks with it.
        with suppress(SessionEnded, SessionNotFound):
            await set_busy(session_id, False)
