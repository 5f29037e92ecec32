"""Public test kit: a fake clock, a recording channel, a manager wired to both.

Every timeout in tether can be tested in microseconds::

    async with fake_manager(policy=Policy(idle_timeout=60, warn_before=10)) as kit:
        session = await kit.manager.start("alice")
        channel = RecordingChannel()
        await kit.manager.attach(session.id, channel)
        await kit.advance(50)
        assert channel.types()[-1] == "session.warning"

With a shared store (Redis), work also waits on the network, which
:func:`settle` cannot see. There, drive fake time with
``clock.advance(s, quiesce=lambda: idle(*managers))`` so each step waits until
every manager is idle, and wait for what another node delivers with
:func:`eventually`, which polls in real time (bounded) and never moves the
fake clock. :func:`crash` stops a manager the way SIGKILL would.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from tether.core.events import Event
from tether.core.policy import Policy
from tether.runtime.manager import SessionManager
from tether.store.memory import MemoryStore

__all__ = [
    "DEFAULT_START",
    "FakeClock",
    "FakeKit",
    "RecordingChannel",
    "crash",
    "eventually",
    "fake_manager",
    "idle",
    "settle",
]

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

    async def advance(
        self, seconds: float, *, quiesce: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Move time forward by ``seconds``, firing timers in order on the way.

        After each step the loop settles; with ``quiesce`` it is also awaited
        (e.g. :func:`idle` of managers whose work waits on the network), so
        a step's consequences land before time moves on.
        """
        if seconds < 0:
            raise ValueError("time only moves forward")
        target = self._wall + seconds

        async def calm() -> None:
            await settle()
            if quiesce is not None:
                await quiesce()
                await settle()

        await calm()
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._move_to(when)
            timer.callback()
            await calm()
        self._move_to(target)
        await calm()


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


async def eventually(
    check: Callable[[], object], *, within: float = 5.0, message: str = ""
) -> None:
    """Wait until ``check()`` (a function or coroutine function) is truthy.

    Polls every millisecond of *real* time, for at most ``within`` real
    seconds: for what travels over a network (another node's pub/sub
    message), which no fake clock controls. It never moves a fake clock.
    Raises ``AssertionError`` when time is up.
    """
    give_up = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= give_up:
            raise AssertionError(message or f"still false after {within}s: {check!r}")
        await asyncio.sleep(0.001)


async def idle(*managers: SessionManager, within: float = 5.0) -> None:
    """Wait until every manager is idle (scheduler asleep, no task, nothing unsent).

    Bounded by ``within`` real seconds; raises ``AssertionError`` beyond.
    """
    try:
        async with asyncio.timeout(within):
            for manager in managers:
                await manager.wait_idle()
    except TimeoutError:
        raise AssertionError(f"managers still busy after {within}s") from None


async def crash(manager: SessionManager) -> None:
    """Stop ``manager`` dead, as SIGKILL would: nothing ended, closed or deregistered.

    Its background work is cancelled and its store connection dropped; its
    channels are left as they are, and every lease it held runs out on its
    own, for other nodes to take over.
    """
    await manager._halt()


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
