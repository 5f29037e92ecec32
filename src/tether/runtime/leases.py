"""The ends this node owns, and the periodic work that keeps its leases alive.

Every end the store hands this node comes with a fence (see
``tether.store.base``). :class:`EndLeases` remembers the fence of each end
whose pipeline is queued or running here, completes it in the store once the
pipeline ran, and, on a shared store, renews all of them in one call every
third of the lease, so a long pipeline (slow cleanups, a queue of thousands
after a mass timeout) is not handed to another node while it runs. If the
store hands out again an end whose pipeline still runs here (its lease ran
out anyway), the node keeps its one pipeline and adopts the newer fence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from tether.clock import Clock
from tether.core.ids import log_ref
from tether.errors import StoreError
from tether.runtime.tasks import cancel_and_wait, cancel_requested
from tether.store.base import Claim, SessionStore
from tether.types import SessionId

log = logging.getLogger("tether.runtime")


class Periodic:
    """Runs ``step()`` every ``period`` seconds on ``clock`` in one task, until stopped.

    A step that raises is logged and the loop goes on. :meth:`wait_idle`
    returns while the task sleeps (or is stopped), not mid-step.
    """

    def __init__(
        self, clock: Clock, period: float, step: Callable[[], Awaitable[None]], *, name: str
    ) -> None:
        self._clock = clock
        self._period = period
        self._step = step
        self._name = name
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def running(self) -> bool:
        """Whether the loop task exists."""
        return self._task is not None

    def start(self) -> None:
        """Start the loop (its first step runs one period from now)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    def stop_nowait(self) -> None:
        """Ask the loop to stop without waiting for it."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        self._idle.set()

    async def stop(self) -> None:
        """Stop the loop and wait until it has."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        self._idle.set()

    async def wait_idle(self) -> None:
        """Return when no step is running."""
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            await self._clock.sleep(self._period)
            if cancel_requested():  # a store client swallowed our cancellation
                raise asyncio.CancelledError
            self._idle.clear()
            try:
                await self._step()
            except StoreError as exc:
                log.warning("%s failed; trying again in %ss: %s", self._name, self._period, exc)
            except Exception:
                log.exception("%s failed; trying again in %ss", self._name, self._period)
            finally:
                self._idle.set()
            if cancel_requested():
                raise asyncio.CancelledError


class _Held:
    __slots__ = ("fence", "holders")

    def __init__(self, fence: int, holders: tuple[str, ...]) -> None:
        self.fence = fence
        self.holders = holders


class EndLeases:
    """Fences of the ends whose pipelines are queued or running on this node."""

    def __init__(self, store: SessionStore, clock: Clock, *, renew: bool) -> None:
        self._store = store
        self._clock = clock
        self._held: dict[SessionId, _Held] = {}
        self._renewer = (
            Periodic(clock, store.end_lease / 3, self._renew, name="tether-end-leases")
            if renew
            else None
        )

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, claim: Claim) -> None:
        """Remember the end's fence (the newest, if the store handed it out again)."""
        session_id = claim.session.id
        held = self._held.get(session_id)
        if held is None:
            self._held[session_id] = _Held(claim.fence, claim.holders)
        elif claim.fence > held.fence:
            held.fence = claim.fence
            held.holders = tuple(sorted({*held.holders, *claim.holders}))
        if self._renewer is not None:
            self._renewer.start()

    def holders(self, session_id: SessionId) -> tuple[str, ...]:
        """The nodes that held connections to the session when it ended."""
        held = self._held.get(session_id)
        return held.holders if held is not None else ()

    def holds(self, session_id: SessionId) -> bool:
        """Whether this node still holds the end of ``session_id`` (queued, running or retrying)."""
        return session_id in self._held

    def release(self, session_id: SessionId) -> None:
        """Forget the end without completing it: its lease runs out and it is handed out again."""
        self._held.pop(session_id, None)
        if not self._held and self._renewer is not None:
            self._renewer.stop_nowait()

    async def complete(self, session_id: SessionId) -> None:
        """Acknowledge the end in the store; a superseded fence is only logged."""
        held = self._held.pop(session_id, None)
        if not self._held and self._renewer is not None:
            self._renewer.stop_nowait()
        if held is None or held.fence <= 0:
            return
        try:
            done = await self._store.complete(session_id, held.fence)
        except StoreError as exc:
            log.warning(
                "could not complete the end of session=%s (it will be run again): %s",
                log_ref(session_id),
                exc,
            )
            return
        if not done:
            log.warning(
                "end of session=%s was completed elsewhere or handed out again (fence %d)",
                log_ref(session_id),
                held.fence,
            )

    async def _renew(self) -> None:
        ends = [(sid, held.fence) for sid, held in self._held.items() if held.fence > 0]
        if not ends:
            return
        answers = await self._store.renew(ends, self._clock.now())
        lost = sum(1 for held in answers if not held)
        if lost:
            log.warning("%d end lease(s) were lost to other nodes while running here", lost)

    async def wait_idle(self) -> None:
        """Return when no renewal is in flight."""
        if self._renewer is not None:
            await self._renewer.wait_idle()

    async def aclose(self) -> None:
        """Stop renewing."""
        if self._renewer is not None:
            await self._renewer.stop()
