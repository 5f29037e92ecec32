"""``Batcher``: items from many concurrent requests, coalesced into one round trip.

Touches are the hottest write: every heartbeat and every keystroke of every
session. Sent one by one, each costs a round trip, a pool connection and
redis-py's per-command overhead. The batcher queues them instead; a single
writer task sends everything queued as one batch (for touches: one call of
``touch.lua`` carrying every touch), so all the touches issued within one
event-loop iteration share one round trip. While a batch is in flight the next
one gathers, so under load batches grow rather than round trips multiply, and
items reach Redis in the order they were submitted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")

Send = Callable[[Sequence[T]], Awaitable[Sequence[Any]]]
"""Sends a batch; returns one reply per item, in order."""


class Batcher(Generic[T]):
    """Queues items and sends them in batches of at most ``max_batch``."""

    def __init__(self, send: Send[T], *, max_batch: int = 512) -> None:
        self._send = send
        self._max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0
        """Batches sent so far (each one round trip)."""
        self.items = 0
        """Items sent so far."""

    def submit(self, item: T) -> asyncio.Future[Any]:
        """Queue ``item``; the future resolves to its reply (or the error its batch met)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((item, future))
        if self._writer is None:
            # Starts on the next loop iteration, after everything that is ready
            # to run now has had the chance to queue its item too.
            self._writer = loop.create_task(self._write())
        return future

    async def aclose(self) -> None:
        """Wait until everything queued so far has been sent."""
        while self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                self.batches += 1
                self.items += len(batch)
                try:
                    replies: Sequence[Any] = await self._send([item for item, _ in batch])
                except asyncio.CancelledError:
                    for _, future in (*batch, *self._queue):
                        future.cancel()
                    self._queue.clear()
                    raise
                except Exception as exc:
                    replies = [exc] * len(batch)
                for (_, future), reply in zip(batch, replies, strict=True):
                    if future.done():  # its caller was cancelled
                        continue
                    if isinstance(reply, BaseException):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
        finally:
            self._writer = None
