"""Channel adapters: how a session's events reach a WebSocket or an SSE stream.

Both implement :class:`tether.runtime.Channel`. They know nothing of routes,
tokens or settings (that is :mod:`tether.service`); they only turn events into
frames, keep the order the runtime asked for, and close when told to.
"""

from tether.transports.cursor import TranscriptCursor
from tether.transports.sse import SSEChannel, format_sse
from tether.transports.websocket import TextSocket, WebSocketChannel

__all__ = ["SSEChannel", "TextSocket", "TranscriptCursor", "WebSocketChannel", "format_sse"]
