"""End pipelines, run a bounded number at a time.

When thousands of sessions end at once (a mass timeout, an admin cleanup, a
shutdown) one task per pipeline would put thousands of steps in the event
loop's ready queue together, and every other coroutine (a heartbeat, a
message) would wait behind all of them. Instead the pipelines wait in a queue
and a few workers run them, so at most ``limit`` pipeline steps are ever
ready at once and the loop stays responsive. Waiting costs a future per
session, which the loop never schedules until it is resolved.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from tether.core.ids import log_ref
from tether.core.session import SessionInfo
from tether.runtime.tasks import TaskSet
from tether.types import SessionId

log = logging.getLogger("tether.runtime")

Pipeline = Callable[[SessionInfo], Awaitable[None]]
Running = dict[SessionId, "asyncio.Future[None]"]
"""The sessions whose pipeline is queued or running, each with the future of its end."""


class PipelineQueue:
    """Runs ``pipeline(info)`` once per queued session, at most ``limit`` concurrently."""

    def __init__(
        self,
        tasks: TaskSet,
        pipeline: Pipeline,
        *,
        limit: int = 256,
        running: Running | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._tasks = tasks
        self._pipeline = pipeline
        self._limit = limit
        self._queue: deque[tuple[SessionInfo, asyncio.Future[None]]] = deque()
        # Shared with whoever must know which ends run here (the cluster's catch-up).
        self._running: Running = {} if running is None else running
        self._workers = 0

    def submit(self, info: SessionInfo) -> asyncio.Future[None]:
        """Queue the session's pipeline; the future resolves when it has run."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._running[info.id] = done
        self._queue.append((info, done))
        if self._workers < self._limit:
            self._workers += 1
            self._tasks.spawn(self._work(), name="tether-end")
        return done

    def pending(self, session_id: SessionId) -> asyncio.Future[None] | None:
        """The future of the session's queued or running pipeline, if there is one."""
        return self._running.get(session_id)

    def __len__(self) -> int:
        """Pipelines queued or running."""
        return len(self._running)

    async def _work(self) -> None:
        try:
            while self._queue:
                info, done = self._queue.popleft()
                try:
                    await self._pipeline(info)
                except Exception:
                    # The pipeline reports its own expected failures; this is a
                    # bug, and it must not stop the other sessions' pipelines.
                    log.exception("end pipeline crashed session=%s", log_ref(info.id))
                finally:
                    self._running.pop(info.id, None)
                    if not done.done():
                        done.set_result(None)
                # A pipeline with nothing to await never yields: let the loop breathe.
                await asyncio.sleep(0)
        finally:
            self._workers -= 1
