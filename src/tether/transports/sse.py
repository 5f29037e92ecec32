"""``SSEChannel``: a session's events as a ``text/event-stream``.

Every event carries an ``id:`` line holding the transcript position the
stream has reached (the highest message ``seq`` delivered so far). A browser's
``EventSource`` sends it back as ``Last-Event-ID`` when it reconnects, and the
service replays the messages after it: state events (config, warning) need no
replay, because attaching sends the current ones again.

Events have no ``event:`` line, so ``EventSource.onmessage`` sees them all and
dispatches on the JSON ``type``, exactly as a WebSocket client does. While
nothing happens, a comment line goes out every ``ping_interval`` seconds so
proxies keep the stream open and a vanished client is noticed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

from tether.core.events import Event
from tether.transports.cursor import TranscriptCursor
from tether.transports.websocket import encode

RETRY_MS = 3000
"""How long an ``EventSource`` waits before reconnecting, told at stream start."""


def format_sse(payload: dict[str, Any], event_id: str | None = None) -> str:
    """One SSE message: an optional ``id:`` line and a single ``data:`` line.

    Compact JSON escapes every line break, so ``data`` is always one line.
    """
    head = "" if event_id is None else f"id: {event_id}\n"
    return f"{head}data: {encode(payload)}\n\n"


class SSEChannel:
    """A :class:`~tether.runtime.Channel` that queues events for one SSE response.

    The queue is bounded: a client that stops reading makes :meth:`send`
    wait, and the runtime's fan-out then drops the channel as a slow consumer
    instead of buffering without limit.
    """

    def __init__(self, *, last_seq: int = 0, buffer: int = 64) -> None:
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(buffer)
        self._wake = asyncio.Event()
        self._open_gate = asyncio.Event()
        self._open_gate.set()
        self._closed = False
        self.close_code: int | None = None
        self.cursor = TranscriptCursor(last_seq)

    @property
    def closed(self) -> bool:
        """Whether the stream has been told to end."""
        return self._closed

    def hold(self) -> None:
        """Park runtime events (while the endpoint replays the transcript)."""
        self._open_gate.clear()

    def release(self) -> None:
        """Deliver parked runtime events."""
        self._open_gate.set()

    async def send(self, event: Event) -> None:
        """Queue a runtime event (the ``Channel`` method)."""
        await self._open_gate.wait()
        await self.push(event)

    async def push(self, event: Event) -> None:
        """Queue ``event`` ahead of anything parked by :meth:`hold`."""
        if self._closed:
            raise ConnectionError("event stream closed")
        if not self.cursor.admit(event):
            return
        await self._queue.put((str(self.cursor.seq), event.to_wire()))
        self._wake.set()

    async def close(self, code: int, reason: str) -> None:
        """End the stream once what is queued has been written."""
        if not self._closed:
            self._closed = True
            self.close_code = code
            self._open_gate.set()
            self._wake.set()

    async def stream(
        self, ping_interval: float, *, replay: Iterable[Event] = ()
    ) -> AsyncIterator[str]:
        """The response body: ``replay``, then events as they come, a comment while idle.

        ``replay`` (the transcript after ``Last-Event-ID``) is written before
        the events parked by :meth:`hold`, which are then released.
        """
        yield f": tether event stream\nretry: {RETRY_MS}\n\n"
        for event in replay:
            if self.cursor.admit(event):
                yield format_sse(event.to_wire(), str(self.cursor.seq))
        self.release()
        queue = self._queue
        while True:
            while not queue.empty():
                event_id, payload = queue.get_nowait()
                yield format_sse(payload, event_id)
            if self._closed:
                return
            self._wake.clear()
            if not queue.empty():
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), ping_interval)
            except TimeoutError:
                yield ": ping\n\n"
