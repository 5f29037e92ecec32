"""The clock seam: everything that waits or reads the time goes through a ``Clock``.

Deadlines are wall-clock seconds since the epoch (they are shared between nodes
in Redis mode, which assumes synchronised clocks). ``tether.testing.FakeClock``
implements the same protocol so every timeout is tested without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Time source and timer for the runtime."""

    def now(self) -> float:
        """Wall-clock time in seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Monotonic seconds, for measuring elapsed time."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` in the event loop after ``delay`` seconds."""
        ...

    async def sleep(self, delay: float) -> None:
        """Suspend the calling task for ``delay`` seconds."""
        ...


class SystemClock:
    """The real clock: ``time.time`` for deadlines, the running loop for timers."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, delay), callback)

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(max(0.0, delay))
