"""Limits that protect the service from one noisy client.

* :class:`TokenBucket`: frames per WebSocket connection (a flood gets an
  ``error`` frame and close 4029);
* :class:`RateLimiter`: REST requests per user (429 with ``Retry-After``);
* :class:`ConnectionLimiter`: open WebSocket and SSE connections per user
  (close 4029, or 429 for an event stream).

Per-user live sessions are the manager's own limit (the oldest is replaced).
Every refusal is a :class:`~tether.errors.Throttled` carrying how long to wait.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from tether.errors import Throttled

CONNECTION_RETRY_AFTER_S = 5.0
"""What a client over its connection limit is told to wait: a guess, since a slot
frees only when one of its other connections closes."""
MAX_TRACKED_USERS = 100_000
"""Most users :class:`RateLimiter` keeps a bucket for at once (a few MB at most)."""


class TokenBucket:
    """``per_minute`` tokens a minute, at most ``burst`` saved up; one per frame or request.

    Refilled lazily from a monotonic clock on each take, so an idle bucket
    costs nothing.
    """

    __slots__ = ("_burst", "_now", "_rate", "_tokens", "last")

    def __init__(
        self, per_minute: int, burst: int, *, now: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._tokens = float(burst)
        self._now = now
        self.last = now()
        """When the bucket was last refilled (the monotonic time of the last take)."""

    def take(self) -> bool:
        """Spend one token; ``False`` when the caller is over its rate."""
        now = self._now()
        self._tokens = min(self._burst, self._tokens + (now - self.last) * self._rate)
        self.last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def wait_s(self) -> float:
        """Seconds from the last take until the next token is there."""
        return max(0.0, (1.0 - self._tokens) / self._rate)


class RateLimiter:
    """One :class:`TokenBucket` per key (per user), with bounded memory.

    A bucket left alone for ``burst / rate`` seconds has refilled completely,
    and a full bucket behaves exactly like a missing one, so such buckets
    are dropped without changing any answer. Buckets are kept in order of
    last use, so every take drops the expired ones from the front in
    amortised O(1). ``max_keys`` bounds the count even when that many users
    are busy at once: beyond it the least recently used bucket goes early
    (its user gets a fresh burst).
    """

    def __init__(
        self,
        per_minute: int,
        burst: int,
        *,
        max_keys: int = MAX_TRACKED_USERS,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.burst = burst
        self._refill_s = burst * 60.0 / per_minute
        self._max_keys = max_keys
        self._now = now
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str) -> None:
        """Spend one of ``key``'s tokens, or raise :class:`Throttled` saying how long to wait."""
        now = self._now()
        self._evict(now)
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = TokenBucket(self.per_minute, self.burst, now=self._now)
        self._buckets[key] = bucket  # now the most recently used
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        if not bucket.take():
            raise Throttled(
                f"too many requests (limit {self.per_minute} a minute)",
                retry_after_s=bucket.wait_s(),
            )

    def _evict(self, now: float) -> None:
        horizon = now - self._refill_s
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if oldest.last > horizon:
                return
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        """How many buckets are held."""
        return len(self._buckets)


class ConnectionLimiter:
    """Counts open connections per user against one limit."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._open: dict[str, int] = {}

    def check(self, user: str) -> None:
        """Raise :class:`Throttled` if ``user`` is at the limit."""
        if self._open.get(user, 0) >= self.per_user:
            raise Throttled(
                f"too many open connections for this user (limit {self.per_user})",
                retry_after_s=CONNECTION_RETRY_AFTER_S,
            )

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
