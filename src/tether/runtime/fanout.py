"""Per-session fan-out of events to attached channels.

Each channel has its own outbox and, while the outbox is non-empty, its own
writer task, so a slow or stuck channel never delays the others. A channel
whose writer is blocked in a send while its outbox is full is dropped (closed
with 1011, so its client reconnects and resumes) rather than allowed to grow
memory without bound. A full outbox whose writer simply has not had a turn yet
(a producer appending in a tight loop) is not a slow channel and is kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from tether.clock import Clock
from tether.core.events import Event
from tether.core.ids import log_ref
from tether.runtime.channel import Channel
from tether.runtime.tasks import TaskSet, wait_bounded
from tether.types import SessionId

log = logging.getLogger("tether.runtime")

SLOW_CONSUMER_CODE = 1011


class _Outbox:
    __slots__ = ("channel", "queue", "sending", "writer")

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.queue: deque[Event] = deque()
        self.writer: asyncio.Task[None] | None = None
        self.sending = False  # the writer is inside channel.send, waiting on the peer


class Fanout:
    """Routes a session's events to every channel attached to it on this node."""

    def __init__(
        self,
        tasks: TaskSet,
        clock: Clock,
        *,
        on_drop: Callable[[SessionId, Channel], Any],
        queue_limit: int = 1024,
        close_timeout: float = 5.0,
    ) -> None:
        self._tasks = tasks
        self._clock = clock
        self._on_drop = on_drop
        self._queue_limit = queue_limit
        self._close_timeout = close_timeout
        self._boxes: dict[SessionId, list[_Outbox]] = {}

    def add(self, session_id: SessionId, channel: Channel) -> None:
        """Start delivering ``session_id``'s events to ``channel``."""
        self._boxes.setdefault(session_id, []).append(_Outbox(channel))

    def remove(self, session_id: SessionId, channel: Channel) -> bool:
        """Stop delivering to ``channel``; ``False`` if it was not attached."""
        boxes = self._boxes.get(session_id)
        box = next((b for b in boxes or () if b.channel is channel), None)
        if boxes is None or box is None:
            return False
        boxes.remove(box)
        if not boxes:
            del self._boxes[session_id]
        if box.writer is not None:
            box.writer.cancel()
        return True

    def count(self, session_id: SessionId) -> int:
        """How many channels are attached to ``session_id`` here."""
        return len(self._boxes.get(session_id, ()))

    def sessions(self) -> list[SessionId]:
        """The sessions with at least one channel attached here."""
        return list(self._boxes)

    def send(self, session_id: SessionId, event: Event, channel: Channel | None = None) -> None:
        """Queue ``event`` for every channel of the session (or only ``channel``)."""
        for box in list(self._boxes.get(session_id, ())):
            if channel is not None and box.channel is not channel:
                continue
            if box.sending and len(box.queue) >= self._queue_limit:
                self._drop(session_id, box, "slow consumer")
                continue
            box.queue.append(event)
            if box.writer is None:
                box.writer = self._tasks.spawn(self._write(session_id, box), name="tether-fanout")

    async def _write(self, session_id: SessionId, box: _Outbox) -> None:
        try:
            while box.queue:
                box.sending = True
                await box.channel.send(box.queue.popleft())
                box.sending = False
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("channel send failed session=%s: %r", log_ref(session_id), exc)
            box.writer = None
            self._drop(session_id, box, "send failed")
        else:
            box.writer = None

    def _drop(self, session_id: SessionId, box: _Outbox, why: str) -> None:
        if not self.remove(session_id, box.channel):
            return
        log.warning("dropping channel session=%s: %s", log_ref(session_id), why)
        self._tasks.spawn(self._close(box, SLOW_CONSUMER_CODE, why), name="tether-close")
        self._on_drop(session_id, box.channel)

    async def close_all(self, session_id: SessionId, code: int, reason: str) -> None:
        """Flush what is queued (bounded), then close every channel of the session."""
        boxes = self._boxes.pop(session_id, [])
        if boxes:
            await asyncio.gather(*(self._flush_and_close(b, code, reason) for b in boxes))

    async def _flush_and_close(self, box: _Outbox, code: int, reason: str) -> None:
        writer = box.writer
        if writer is not None and not await wait_bounded(self._clock, writer, self._close_timeout):
            writer.cancel()
        await self._close(box, code, reason)

    async def _close(self, box: _Outbox, code: int, reason: str) -> None:
        close = asyncio.ensure_future(box.channel.close(code, reason))
        try:
            done = await wait_bounded(self._clock, close, self._close_timeout)
        except asyncio.CancelledError:
            close.cancel()
            raise
        if not done:
            close.cancel()
            log.warning("channel close timed out")
        elif not close.cancelled() and (exc := close.exception()) is not None:
            log.warning("channel close failed: %r", exc)
