"""Public test kit: a fake clock, a recording channel, a manager wired to both.

Every timeout in tether can be tested in microseconds::

    async with fake_manager(policy=Policy(idle_timeout=60, warn_before=10)) as kit:
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await kit.advance(50)
        assert channel.types()[-1] == "session.warning"
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from tether.core.events import Event
from tether.core.policy import Policy
from tether.runtime.manager import SessionManager
from tether.store.memory import MemoryStore

DEFAULT_START = 1_700_000_000.0


class _FakeTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A :class:`~tether.clock.Clock` whose time moves only when told to.

    Wall and monotonic time move together. :meth:`advance` fires due timers in
    deadline order, each at its own instant, and lets the event loop run until
    nothing is ready before moving on, so cascades (a warning, then the end it
    announced) happen at the right fake times.
    """

    def __init__(self, start: float = DEFAULT_START) -> None:
        self._wall = start
        self._mono = 0.0
        self._timers: list[tuple[float, int, _FakeTimer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def call_later(self, delay: float, callback: Callable[[], None]) -> _FakeTimer:
        timer = _FakeTimer(self._wall + max(0.0, delay), callback)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    async def sleep(self, delay: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        timer = self.call_later(delay, wake)
        try:
            await future
        finally:
            timer.cancel()

    def pending(self) -> list[float]:
        """Deadlines of timers not yet fired or cancelled, earliest first."""
        return sorted(when for when, _, t in self._timers if not t.cancelled)

    def _move_to(self, when: float) -> None:
        if when > self._wall:
            self._mono += when - self._wall
            self._wall = when

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing timers in order on the way."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        target = self._wall + seconds
        await settle()
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._move_to(when)
            timer.callback()
            await settle()
        self._move_to(target)
        await settle()


async def settle(max_rounds: int = 10_000) -> None:
    """Let the event loop run until no callback is ready (tasks waiting on timers stay put).

    Call it from one task at a time: two concurrent ``settle()`` calls each see
    the other as work still to do and never finish.
    """
    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)  # CPython's queue of runnable callbacks
    for _ in range(max_rounds):
        await asyncio.sleep(0)
        if ready is not None and not ready:
            # One more round: a callback that just ran may have scheduled a task step.
            await asyncio.sleep(0)
            if not ready:
                return
    if ready is not None:
        raise RuntimeError("event loop did not settle: something reschedules itself forever")


class RecordingChannel:
    """A :class:`~tether.runtime.Channel` that records what it is sent.

    ``hold()`` makes sends block until ``release()``: a slow client.
    ``fail = True`` makes sends raise: a broken client.
    """

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closed: tuple[int, str] | None = None
        self.fail = False
        self._gate = asyncio.Event()
        self._gate.set()

    async def send(self, event: Event) -> None:
        await self._gate.wait()
        if self.fail:
            raise ConnectionError("recording channel set to fail")
        if self.closed is not None:
            raise ConnectionError("send after close")
        self.events.append(event)

    async def close(self, code: int, reason: str) -> None:
        if self.closed is None:
            self.closed = (code, reason)

    def hold(self) -> None:
        """Block further sends until :meth:`release`."""
        self._gate.clear()

    def release(self) -> None:
        """Let held sends through."""
        self._gate.set()

    def types(self) -> list[str]:
        """The ``type`` of every event received, in order."""
        return [e.type for e in self.events]

    def wire(self) -> list[dict[str, Any]]:
        """Every event received, in wire form."""
        return [e.to_wire() for e in self.events]


@dataclass
class FakeKit:
    """A manager on a :class:`MemoryStore` driven by a :class:`FakeClock`."""

    manager: SessionManager
    clock: FakeClock
    store: MemoryStore

    async def advance(self, seconds: float) -> None:
        """Move fake time forward and let every due transition happen."""
        await self.clock.advance(seconds)


@asynccontextmanager
async def fake_manager(
    *, policy: Policy | None = None, start: float = DEFAULT_START, **options: Any
) -> AsyncIterator[FakeKit]:
    """A running :class:`SessionManager` on a fresh store and fake clock.

    ``options`` go to :class:`SessionManager` (``max_sessions_per_user``,
    ``cleanup_timeout``, ...). The manager is closed on exit.
    """
    clock = FakeClock(start)
    store = MemoryStore()
    manager = SessionManager(store, policy=policy, clock=clock, **options)
    async with manager:
        await settle()
        yield FakeKit(manager, clock, store)
