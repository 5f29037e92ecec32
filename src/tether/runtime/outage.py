"""Store outages: no session ends because the store could not be reached.

While the store is unreachable every heartbeat and request fails (503), so no
client can prove it is there, and presence clocks would run out for reasons
that are the server's, not the client's. :class:`OutageGuard` is this node's
memory of such an outage:

* whatever on this node meets :class:`~tether.errors.StoreUnavailable` (a
  deadline pass, a keepalive, a client's request) calls :meth:`noticed`;
* before this node next claims a deadline or writes for a client, it calls
  :meth:`resume`, which, while an outage is pending, asks the store to restart
  every live session's presence clock at the recovery time
  (:meth:`~tether.store.base.SessionStore.resume_presence`) and only then
  lets the claim or write through.

Every node that saw the outage does this before its first claim or touch
after it, so none of them can end a session on a presence deadline that fell
during the outage: the first resume to run covers every session, the others
are no-ops (the store's resume is idempotent and only moves ``last_seen``
later). See ``docs/operations.md`` for what a node that never saw the outage
(a very short one) may still do.
"""

from __future__ import annotations

import asyncio
import logging

from tether.clock import Clock
from tether.errors import StoreError
from tether.store.base import SessionStore

log = logging.getLogger("tether.runtime")


class OutageGuard:
    """Remembers that the store failed; resumes presence once before the next claim or write."""

    def __init__(self, store: SessionStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self.pending = False
        """Whether an outage was noticed and presence not resumed since (a plain attribute:
        callers on hot paths test it before calling :meth:`resume`)."""
        self._generation = 0
        self._lock = asyncio.Lock()
        self.resumed = 0
        """How many resumes ran (for tests and diagnostics)."""

    def noticed(self) -> None:
        """The store just failed a call: resume presence before the next claim or write."""
        if not self.pending:
            log.warning("the store is unavailable; presence resumes when it answers again")
        self.pending = True
        self._generation += 1

    async def resume(self) -> None:
        """If an outage is pending, resume presence now (once, however many callers wait).

        Raises :class:`~tether.errors.StoreError` while the store still fails;
        the outage then stays pending. A caller cancelled mid-resume leaves it
        pending too: the next one walks again (the store's resume is idempotent).
        """
        if not self.pending:
            return
        async with self._lock:
            if not self.pending:
                return  # another caller resumed while this one waited
            generation = self._generation
            at = self._clock.now()
            try:
                moved = await self._store.resume_presence(at)
            except StoreError:
                self.noticed()
                raise
            self.resumed += 1
            if self._generation == generation:
                self.pending = False  # else it failed again meanwhile: resume once more
            log.warning("the store answers again; presence of %d session(s) restarted now", moved)
