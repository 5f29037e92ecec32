"""Background tasks that are tracked, awaited on shutdown, and never fail silently."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from tether.clock import Clock

log = logging.getLogger("tether.runtime")


class TaskSet:
    """Holds references to fire-and-forget tasks and logs what they raise."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, name: str | None = None
    ) -> asyncio.Task[Any]:
        """Run ``coro`` in the background; exceptions are logged, not lost."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("background task %s failed", task.get_name(), exc_info=exc)

    def __len__(self) -> int:
        return len(self._tasks)

    async def cancel_all(self) -> None:
        """Cancel every task and wait for them (what dies with a killed process)."""
        while self._tasks:
            await asyncio.gather(*(cancel_and_wait(t) for t in list(self._tasks)))

    async def join(self) -> None:
        """Wait until every task (including ones spawned meanwhile) has finished.

        Cancelling the wait leaves the tasks running (unlike a cancelled ``gather``).
        """
        while self._tasks:
            await asyncio.wait(set(self._tasks))


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it is done, cancelling again if it shrugged it off.

    Some client libraries (redis-py's asyncio client among them) can swallow a
    cancellation that lands at the wrong instant of a command; the task then
    carries on. Asking again until it is done makes stopping reliable.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.05)


def cancel_requested() -> bool:
    """Whether the current task has been asked to stop (even if a callee swallowed it)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def wait_bounded(clock: Clock, task: asyncio.Future[Any], seconds: float) -> bool:
    """Wait until ``task`` is done or ``seconds`` pass on ``clock``; ``True`` if done.

    Unlike ``asyncio.wait_for`` this never cancels ``task`` and never waits for
    a cancelled task to unwind, so a callee that ignores cancellation cannot
    stretch the bound; and it runs on the injected clock, so tests use fake time.
    """
    if task.done():
        return True
    timer: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def expire() -> None:
        if not timer.done():
            timer.set_result(None)

    handle = clock.call_later(seconds, expire)
    try:
        await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        handle.cancel()
        timer.cancel()
    return task.done()
