"""The manager's one way to its store: outage handling and scheduler pokes in one place.

Every store call the :class:`~tether.runtime.manager.SessionManager` makes on
behalf of a command (start, touch, attach, config, append, transcript, end,
query) passes through :meth:`StoreGateway.call`, so each gets the same
treatment:

* after a store outage this node first resumes presence (see
  ``tether.runtime.outage``), so no call ends a session whose presence ran
  out while nobody could reach the store;
* a call that fails because the store is unavailable records the outage;
* a call that found the session's end already due wakes the scheduler, which
  claims the end now;
* a call that armed a deadline earlier (a new session, a last connection
  gone, a shorter policy, a first heartbeat) wakes the scheduler for it.

The one exception is the hot path's ``touch_nowait`` (a store in this
process, which cannot be unavailable): it is bound here once and called
without a coroutine.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tether.clock import Clock
from tether.core.policy import Policy
from tether.core.session import SessionInfo, SessionRecord
from tether.core.transcript import Message, Role
from tether.errors import SessionEnded, StoreUnavailable
from tether.runtime.outage import OutageGuard
from tether.store.base import Armed, Claim, Created, NowaitTouch, SessionStore, StoreStats
from tether.types import EndReason, SessionId, SessionState, UserId

T = TypeVar("T")
Poke = Callable[[float], None]


class StoreGateway:
    """Runs the manager's store calls with the outage treatment and the scheduler's pokes."""

    def __init__(self, store: SessionStore, clock: Clock, outage: OutageGuard, poke: Poke) -> None:
        self.store = store
        self.outage = outage
        self._now = clock.now
        self._poke = poke
        # Bound once: the hottest call skips attribute lookups, and skips a
        # coroutine altogether on stores that can touch without waiting.
        self._touch = store.touch
        self.touch_nowait = store.touch_nowait if isinstance(store, NowaitTouch) else None

    async def call(self, op: Callable[[float], Awaitable[T]]) -> T:
        """Run ``op(now)`` on the store, with the outage treatment (see the module doc)."""
        if self.outage.pending:
            await self.outage.resume()
        try:
            return await op(self._now())
        except SessionEnded:
            self._poke(-math.inf)
            raise
        except StoreUnavailable:
            self.outage.noticed()
            raise

    def arm(self, at: float | None) -> None:
        """A deadline was armed at ``at``: wake the scheduler if it sleeps past it."""
        if at is not None:
            self._poke(at)

    # -- writes -----------------------------------------------------------------------

    async def create(
        self, record: SessionRecord, *, max_per_user: int | None, reuse: bool
    ) -> Created:
        """Create (or, with ``reuse``, find) the session; arm its first deadline."""
        store = self.store
        created = await self.call(
            lambda _: store.create(record, max_per_user=max_per_user, reuse=reuse)
        )
        if not created.reused:
            self._poke(created.armed_at)
        return created

    async def touch(self, session_id: SessionId, *, activity: bool) -> Claim | Armed | None:
        """A touch on a store that awaits (see :meth:`~SessionStore.touch`).

        :meth:`call` written out: the hottest call on a shared store, it saves
        a coroutine and a closure per touch (a fifth of the client's time).
        """
        if self.outage.pending:
            await self.outage.resume()
        try:
            return await self._touch(session_id, self._now(), activity=activity)
        except SessionEnded:
            self._poke(-math.inf)
            raise
        except StoreUnavailable:
            self.outage.noticed()
            raise

    async def set_busy(self, session_id: SessionId, *, busy: bool) -> Claim | Armed | None:
        """Open or close a busy mark (see :meth:`~SessionStore.set_busy`)."""
        return await self.call(lambda now: self.store.set_busy(session_id, now, busy=busy))

    async def attach(self, session_id: SessionId) -> SessionInfo:
        """Count a connection to the session (raises if its end is due)."""
        return await self.call(lambda now: self.store.attach(session_id, now))

    async def detach(self, session_id: SessionId) -> None:
        """Release a connection; the last one gone arms the presence clock."""
        self.arm(await self.call(lambda now: self.store.detach(session_id, now)))

    async def update_config(self, session_id: SessionId, config: dict[str, Any]) -> SessionInfo:
        """Replace the session's config."""
        return await self.call(lambda _: self.store.update_config(session_id, config))

    async def update_policy(self, session_id: SessionId, policy: Policy) -> None:
        """Replace the session's timeouts; a shorter one arms an earlier deadline."""
        self.arm(await self.call(lambda now: self.store.update_policy(session_id, policy, now)))

    async def append(
        self, session_id: SessionId, role: Role, content: str, metadata: dict[str, Any] | None
    ) -> Message:
        """Append a message to the session's transcript."""
        return await self.call(
            lambda now: self.store.append(session_id, role, content, metadata, now)
        )

    async def retract(self, session_id: SessionId, seq: int) -> None:
        """Remove a message that must not be archived."""
        await self.call(lambda _: self.store.retract(session_id, seq))

    async def end(self, session_id: SessionId, reason: EndReason) -> Claim | None:
        """End the session; the claim of its end if this call won it."""
        return await self.call(lambda now: self.store.end(session_id, reason, now))

    # -- reads ------------------------------------------------------------------------

    async def get(self, session_id: SessionId) -> SessionInfo | None:
        """The session, or ``None``."""
        return await self.call(lambda _: self.store.get(session_id))

    async def transcript(
        self, session_id: SessionId, *, after: int, limit: int | None
    ) -> builtins.list[Message]:
        """The session's messages with ``seq > after``."""
        return await self.call(
            lambda _: self.store.transcript(session_id, after=after, limit=limit)
        )

    async def list(
        self, *, user: UserId | None = None, state: SessionState | None = None
    ) -> builtins.list[SessionInfo]:
        """Live sessions, oldest first."""
        return await self.call(lambda _: self.store.list(user=user, state=state))

    async def stats(self) -> StoreStats:
        """Counts for health and metrics."""
        return await self.call(lambda _: self.store.stats())
