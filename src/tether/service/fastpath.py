"""``/ws`` served beside the router, not through it.

A WebSocket lives for minutes or hours, and every frame of the ASGI call
that reached it stays alive with it. Through FastAPI's router that is the
routing machinery, an exception-middleware frame and three exit stacks: about
a third of what a held connection costs. Dispatching ``/ws`` here, before the
router, keeps only the endpoint's own state alive and skips route matching
on every connect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket


class WebSocketFastPath:
    """ASGI middleware: ``path``'s WebSocket handshakes go straight to ``endpoint``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        path: str,
        endpoint: Callable[[WebSocket], Awaitable[None]],
    ) -> None:
        self.app = app
        self.path = path
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == self.path:
            await self.endpoint(WebSocket(scope, receive, send))
            return
        await self.app(scope, receive, send)
