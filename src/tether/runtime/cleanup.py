"""The cleanup registry: resources a session held, released when it ends.

Callbacks run in reverse registration order (last acquired, first released),
each bounded by a timeout. A callback that raises or hangs is logged and
counted, and never stops the others from running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from tether.clock import Clock
from tether.core.ids import log_ref
from tether.runtime.tasks import wait_bounded
from tether.types import SessionId

log = logging.getLogger("tether.runtime")

Cleanup = Callable[[], Awaitable[object]]


class CleanupRegistry:
    """Per-session stacks of async cleanup callbacks."""

    def __init__(self, clock: Clock, *, timeout: float, on_failure: Callable[[], None]) -> None:
        self._clock = clock
        self._timeout = timeout
        self._on_failure = on_failure
        self._stacks: dict[SessionId, list[Cleanup]] = {}

    def add(self, session_id: SessionId, callback: Cleanup) -> None:
        """Register ``callback`` to run when ``session_id`` ends."""
        self._stacks.setdefault(session_id, []).append(callback)

    def sessions(self) -> list[SessionId]:
        """The sessions with callbacks registered here."""
        return list(self._stacks)

    async def run(self, session_id: SessionId) -> int:
        """Run and forget the session's callbacks, newest first; returns how many failed."""
        failures = 0
        stack = self._stacks.pop(session_id, [])
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
