"""The ``Channel`` seam: anything a session can push events to.

WebSocket and SSE connections implement it in ``tether.transports``; tests use
``tether.testing.RecordingChannel``.
"""

from __future__ import annotations

from typing import Protocol

from tether.core.events import Event


class Channel(Protocol):
    """A connection attached to a session."""

    async def send(self, event: Event) -> None:
        """Deliver one event; may block while the peer is slow."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close the connection with a WebSocket-style close code."""
        ...
