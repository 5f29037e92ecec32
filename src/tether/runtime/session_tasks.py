"""Session-owned tasks: work that lives exactly as long as its session.

``manager.spawn(session_id, coro)`` runs ``coro`` as a task the session owns.
Every end path cancels the session's tasks and waits for them (bounded by a
timeout on the injected clock) *before* the archive is written, so a task's
``finally`` can still append (a reply cut short stores what it streamed).
A task that ignores its cancellation longer than the bound is left behind
and logged; the end goes on.

The count per session is bounded: past ``limit`` live tasks, ``spawn``
raises :class:`~tether.errors.TooManyTasks` and starts nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

from tether.clock import Clock
from tether.core.ids import log_ref
from tether.errors import SessionEnded, TooManyTasks
from tether.runtime.tasks import wait_bounded
from tether.types import EndReason, SessionId

log = logging.getLogger("tether.runtime")

RECENT_ENDS = 4096
"""How many ended sessions are remembered, so a late ``spawn`` for one is refused."""


class SessionTasks:
    """Per-session sets of tasks, cancelled and awaited when their session ends."""

    def __init__(self, clock: Clock, *, limit: int, timeout: float) -> None:
        self._clock = clock
        self.limit = limit
        self.timeout = timeout
        self._tasks: dict[SessionId, set[asyncio.Task[Any]]] = {}
        self._ended: OrderedDict[SessionId, EndReason] = OrderedDict()

    def spawn(
        self, session_id: SessionId, coro: Coroutine[Any, Any, Any], name: str | None = None
    ) -> asyncio.Task[Any]:
        """Run ``coro`` as a task ``session_id`` owns; exceptions are logged, not lost."""
        reason = self._ended.get(session_id)
        held = self._tasks.get(session_id)
        if reason is not None or (held is not None and len(held) >= self.limit):
            coro.close()  # never started: no "coroutine was never awaited" warning
            if reason is not None:
                raise SessionEnded(reason)
            raise TooManyTasks(self.limit)
        task = asyncio.get_running_loop().create_task(coro, name=name or "tether-session-task")
        if held is None:
            held = self._tasks[session_id] = set()
        held.add(task)
        task.add_done_callback(lambda t: self._done(session_id, t))
        return task

    def _done(self, session_id: SessionId, task: asyncio.Task[Any]) -> None:
        held = self._tasks.get(session_id)
        if held is not None:
            held.discard(task)
            if not held:
                del self._tasks[session_id]
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error(
                "session task %s failed session=%s",
                task.get_name(),
                log_ref(session_id),
                exc_info=exc,
            )

    def count(self, session_id: SessionId) -> int:
        """The session's live tasks here."""
        return len(self._tasks.get(session_id, ()))

    def sessions(self) -> list[SessionId]:
        """The sessions with live tasks here."""
        return list(self._tasks)

    async def cancel(self, session_id: SessionId, reason: EndReason = EndReason.ERROR) -> None:
        """Cancel the session's tasks and wait for them, at most ``timeout`` seconds.

        From here on ``spawn`` for the session raises
        :class:`~tether.errors.SessionEnded`. A task calling this on its
        own session (a hook that ends it) is not cancelled or waited for.
        """
        self._ended[session_id] = reason
        if len(self._ended) > RECENT_ENDS:
            self._ended.popitem(last=False)
        current = asyncio.current_task()
        tasks = [t for t in self._tasks.pop(session_id, ()) if t is not current]
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        everything = asyncio.ensure_future(asyncio.wait(tasks))
        if not await wait_bounded(self._clock, everything, self.timeout):
            everything.cancel()
            log.error(
                "%d session task(s) ignored cancellation for %ss session=%s",
                sum(1 for t in tasks if not t.done()),
                self.timeout,
                log_ref(session_id),
            )

    async def cancel_all(self) -> None:
        """Cancel every session's tasks (the manager closes or halts)."""
        for session_id in list(self._tasks):
            await self.cancel(session_id, EndReason.SERVER_SHUTDOWN)
