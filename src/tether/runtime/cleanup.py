"""The cleanup registry: resources a session held, released when it ends.

Callbacks run in reverse registration order (last acquired, first released),
each bounded by a timeout. A callback that raises or hangs is logged and
counted, and never stops the others from running. ``add`` returns a
:class:`CleanupHandle`: a resource released early (a reply's stream, a
per-turn timer) removes its callback in O(1), so per-turn registrations do
not pile up over a long session.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable

from tether.clock import Clock
from tether.core.ids import log_ref
from tether.runtime.tasks import wait_bounded
from tether.types import SessionId

log = logging.getLogger("tether.runtime")

Cleanup = Callable[[], Awaitable[object]]
BeforeRun = Callable[[SessionId], Awaitable[object]]


class CleanupHandle:
    """One registered cleanup; :meth:`remove` unregisters it (a no-op once run or removed)."""

    __slots__ = ("_key", "_registry", "session_id")

    def __init__(self, registry: CleanupRegistry, session_id: SessionId, key: int) -> None:
        self._registry = registry
        self.session_id = session_id
        self._key = key

    def remove(self) -> bool:
        """Unregister the callback; ``True`` if it was still registered."""
        return self._registry.remove(self.session_id, self._key)


class CleanupRegistry:
    """Per-session stacks of async cleanup callbacks.

    ``before_run`` (the session's tasks and replies being stopped) is
    awaited first whenever a session's callbacks run, on every path that
    runs them (an end here, an end another node announced).
    """

    def __init__(
        self,
        clock: Clock,
        *,
        timeout: float,
        on_failure: Callable[[], None],
        before_run: BeforeRun | None = None,
    ) -> None:
        self._clock = clock
        self._timeout = timeout
        self._on_failure = on_failure
        self._before_run = before_run
        self._keys = itertools.count()
        # Insertion-ordered dicts: O(1) removal, and reverse order still known.
        self._stacks: dict[SessionId, dict[int, Cleanup]] = {}

    def add(self, session_id: SessionId, callback: Cleanup) -> CleanupHandle:
        """Register ``callback`` to run when ``session_id`` ends."""
        key = next(self._keys)
        self._stacks.setdefault(session_id, {})[key] = callback
        return CleanupHandle(self, session_id, key)

    def remove(self, session_id: SessionId, key: int) -> bool:
        """Unregister one callback (see :meth:`CleanupHandle.remove`)."""
        stack = self._stacks.get(session_id)
        if stack is None or stack.pop(key, None) is None:
            return False
        if not stack:
            del self._stacks[session_id]
        return True

    def count(self, session_id: SessionId) -> int:
        """How many callbacks the session has registered here."""
        return len(self._stacks.get(session_id, ()))

    def sessions(self) -> list[SessionId]:
        """The sessions with callbacks registered here."""
        return list(self._stacks)

    async def run(self, session_id: SessionId) -> int:
        """Run and forget the session's callbacks, newest first; returns how many failed."""
        if self._before_run is not None:
            await self._before_run(session_id)
        failures = 0
        stack = list(self._stacks.pop(session_id, {}).values())
        while stack:
            callback = stack.pop()
            if not await self._run_one(session_id, callback):
                failures += 1
                self._on_failure()
        return failures

    async def _run_one(self, session_id: SessionId, callback: Cleanup) -> bool:
        name = getattr(callback, "__qualname__", repr(callback))
        try:
            task = asyncio.ensure_future(callback())
        except Exception:
            log.exception("cleanup %s failed session=%s", name, log_ref(session_id))
            return False
        if not await wait_bounded(self._clock, task, self._timeout):
            task.cancel()
            log.error(
                "cleanup %s timed out after %ss session=%s",
                name,
                self._timeout,
                log_ref(session_id),
            )
            return False
        if task.cancelled():
            log.error("cleanup %s was cancelled session=%s", name, log_ref(session_id))
            return False
        exc = task.exception()
        if exc is not None:
            log.error("cleanup %s failed session=%s", name, log_ref(session_id), exc_info=exc)
            return False
        return True
