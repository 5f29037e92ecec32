"""Limits that protect the service from one noisy client.

* :class:`TokenBucket`: frames per connection (a flood gets an ``error`` frame
  and close 4029);
* :class:`ConnectionLimiter`: open WebSocket and SSE connections per user.

Per-user live sessions are the manager's own limit (the oldest is replaced).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tether.errors import TetherError


class Throttled(TetherError):
    """Too many requests or connections (429 / close 4029)."""


class TooLarge(TetherError):
    """A body or frame over ``TETHER_MAX_MESSAGE_BYTES`` (413 / close 1009)."""


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; one per frame.

    Refilled lazily from a monotonic clock on each take, so an idle
    connection costs nothing.
    """

    __slots__ = ("_burst", "_last", "_now", "_rate", "_tokens")

    def __init__(
        self, per_minute: int, burst: int, *, now: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._tokens = float(burst)
        self._now = now
        self._last = now()

    def take(self) -> bool:
        """Spend one token; ``False`` when the connection is over its rate."""
        now = self._now()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class ConnectionLimiter:
    """Counts open connections per user against one limit."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._open: dict[str, int] = {}

    def check(self, user: str) -> None:
        """Raise :class:`Throttled` if ``user`` is at the limit."""
        if self._open.get(user, 0) >= self.per_user:
            raise Throttled(f"too many open connections for this user (limit {self.per_user})")

    def acquire(self, user: str, *, force: bool = False) -> None:
        """Count one more connection for ``user``; over the limit raise :class:`Throttled`.

        ``force`` counts it regardless: for a connection already admitted by
        :meth:`check` whose accounting starts later.
        """
        if not force:
            self.check(user)
        self._open[user] = self._open.get(user, 0) + 1

    def release(self, user: str) -> None:
        """Count one connection fewer for ``user``."""
        held = self._open.get(user, 0) - 1
        if held > 0:
            self._open[user] = held
        else:
            self._open.pop(user, None)

    def count(self, user: str) -> int:
        """Open connections of ``user``."""
        return self._open.get(user, 0)

    def total(self) -> int:
        """Open connections of everyone."""
        return sum(self._open.values())
