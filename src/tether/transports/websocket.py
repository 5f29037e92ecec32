"""``WebSocketChannel``: a session's events as JSON text frames on one WebSocket.

Two writers share a socket: the runtime's fan-out task (session events) and
the endpoint (replies such as ``pong`` and ``error``). One lock serialises
them so frames never interleave, and a closed channel refuses further writes
instead of handing the server a send-after-close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, Protocol

from tether.core.events import Event
from tether.transports.cursor import TranscriptCursor

MAX_CLOSE_REASON = 123
"""RFC 6455: a close frame's reason is at most 123 bytes."""


class TextSocket(Protocol):
    """The part of a server WebSocket this channel uses (Starlette's fits)."""

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


def encode(payload: dict[str, Any]) -> str:
    """Compact JSON for one frame."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def _clip(reason: str) -> str:
    data = reason.encode()
    if len(data) <= MAX_CLOSE_REASON:
        return reason
    return data[:MAX_CLOSE_REASON].decode(errors="ignore")


class WebSocketChannel:
    """A :class:`~tether.runtime.Channel` writing to one WebSocket.

    ``hold()`` parks runtime events until ``release()``: the endpoint uses it
    to put its own reply (``session.resumed``) ahead of the ``session.config``
    that attaching queues. ``cursor`` drops transcript messages the connection
    was already given in a replay.
    """

    def __init__(self, socket: TextSocket) -> None:
        self._socket = socket
        self._lock = asyncio.Lock()
        self._open_gate = asyncio.Event()
        self._open_gate.set()
        self._closed = asyncio.Event()
        self.close_code: int | None = None
        self.cursor = TranscriptCursor()

    @property
    def closed(self) -> bool:
        """Whether the channel has been closed (by either side)."""
        return self._closed.is_set()

    def hold(self) -> None:
        """Park runtime events until :meth:`release`."""
        self._open_gate.clear()

    def release(self) -> None:
        """Deliver parked runtime events."""
        self._open_gate.set()

    async def send(self, event: Event) -> None:
        """Deliver a runtime event (the ``Channel`` method)."""
        await self._open_gate.wait()
        if self.cursor.admit(event):
            await self.send_json(event.to_wire())

    async def send_json(self, payload: dict[str, Any]) -> None:
        """Write one frame; raises ``ConnectionError`` once the socket is gone."""
        text = encode(payload)
        async with self._lock:
            if self.closed:
                raise ConnectionError("websocket closed")
            try:
                await self._socket.send_text(text)
            except Exception as exc:
                # A failed write means the peer is gone: stop writing for good.
                self._mark_closed(1006)
                raise ConnectionError("websocket send failed") from exc

    async def close(self, code: int, reason: str) -> None:
        """Close with ``code``; later calls do nothing."""
        async with self._lock:
            if self.closed:
                return
            self._mark_closed(code)
            # A peer that is already gone makes close fail: closed either way.
            with contextlib.suppress(Exception):
                await self._socket.close(code, _clip(reason))

    def lost(self) -> None:
        """Record that the peer went away without a close from us."""
        if not self.closed:
            self._mark_closed(1006)

    async def wait_closed(self) -> None:
        """Return once the channel is closed."""
        await self._closed.wait()

    def _mark_closed(self, code: int) -> None:
        self.close_code = code
        self._closed.set()
        # A sender parked behind hold() must not wait for a release that
        # will never come; it wakes, finds the channel closed and raises.
        self._open_gate.set()
