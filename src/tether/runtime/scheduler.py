"""The deadline scheduler: one task that sleeps until the earliest deadline.

There is no polling interval. The task asks the store for its earliest armed
deadline, sleeps until then on the injected clock, claims whatever is due, and
goes back to sleep. Anything that arms an earlier deadline (a new session, a
closed last connection, a shorter policy) calls :meth:`poke`, which wakes the
task early only when that deadline is earlier than the one it sleeps for.

On a shared store other nodes arm deadlines too, and only the node that armed
one pokes its own scheduler. ``max_sleep`` caps every sleep there, so if that
node dies the others take its deadlines over within ``max_sleep``.

A pass that meets an unavailable store tells the node's
:class:`~tether.runtime.outage.OutageGuard`, and every pass first lets it
resume presence: after an outage nothing is claimed until the presence
clocks restarted (see ``tether.runtime.outage``).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

from tether.clock import Clock, TimerHandle
from tether.errors import StoreError
from tether.runtime.outage import OutageGuard
from tether.runtime.tasks import cancel_and_wait, cancel_requested
from tether.store.base import Claim, SessionStore

log = logging.getLogger("tether.runtime")

RETRY_AFTER_STORE_ERROR = 1.0
Dispatch = Callable[[list[Claim]], None]
"""Applies the effects of transitions this node won."""


class DeadlineScheduler:
    """Claims due transitions from ``store`` and hands them to ``dispatch``."""

    def __init__(
        self,
        store: SessionStore,
        clock: Clock,
        *,
        batch: int = 1000,
        max_sleep: float | None = None,
        outage: OutageGuard | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._dispatch: Dispatch | None = None
        self._batch = batch
        self._max_sleep = max_sleep
        self._outage = outage
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        # +inf while awake (every poke forces another pass) or asleep with nothing armed.
        self._sleeping_until = math.inf
        self._idle = asyncio.Event()

    def start(self, dispatch: Dispatch) -> None:
        """Start the scheduler task in the running loop; it hands what it claims to ``dispatch``."""
        self._dispatch = dispatch
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="tether-scheduler"
            )

    async def stop(self) -> None:
        """Stop the task; pending deadlines stay armed in the store."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    def poke(self, at: float = -math.inf) -> None:
        """A deadline at ``at`` was armed: wake up if it is earlier than the current sleep."""
        if at < self._sleeping_until and self._wakeup is not None and not self._wakeup.done():
            self._idle.clear()
            self._wakeup.set_result(None)

    async def wait_idle(self) -> None:
        """Return once the scheduler has applied everything due and is asleep."""
        while True:
            await self._idle.wait()
            await asyncio.sleep(0)  # let a wakeup that raced us clear the flag
            if self._idle.is_set():
                return

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if cancel_requested():  # a store client swallowed our cancellation
                raise asyncio.CancelledError
            self._wakeup = loop.create_future()
            self._sleeping_until = math.inf
            self._idle.clear()
            try:
                more = await self._pass()
            except StoreError as exc:
                log.warning("deadline pass failed, retrying: %s", exc)
                if self._outage is not None:
                    self._outage.noticed()
                await self._sleep_until(self._clock.now() + RETRY_AFTER_STORE_ERROR)
                continue
            except Exception:
                log.exception("deadline pass crashed, retrying")
                await self._sleep_until(self._clock.now() + RETRY_AFTER_STORE_ERROR)
                continue
            if more is None:
                await asyncio.sleep(0)  # more is already due: yield, then go on
                continue
            if self._max_sleep is not None:
                more = min(more, self._clock.now() + self._max_sleep)
            await self._sleep_until(more)

    async def _pass(self) -> float | None:
        """Claim one batch; return when to wake next (``inf``: nothing armed; ``None``: now)."""
        if self._outage is not None and self._outage.pending:
            await self._outage.resume()  # before any claim: presence counts from the recovery
        now = self._clock.now()
        claims = await self._store.claim_due(now, self._batch)
        if claims:
            assert self._dispatch is not None  # set by start(), which runs this task
            self._dispatch(claims)
        earliest = await self._store.next_due()
        if earliest is None:
            return math.inf
        return None if earliest <= now else earliest

    async def _sleep_until(self, at: float) -> None:
        wakeup = self._wakeup
        assert wakeup is not None
        handle: TimerHandle | None = None
        if math.isfinite(at):
            handle = self._clock.call_later(at - self._clock.now(), self._fire)
        self._sleeping_until = at
        self._idle.set()
        try:
            await wakeup
        finally:
            if handle is not None:
                handle.cancel()

    def _fire(self) -> None:
        self.poke()
