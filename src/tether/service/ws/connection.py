"""One WebSocket client: the handshake, ``hello``, frames in, errors out.

:class:`Connection` owns the transport side of a connection: the Origin
check, authentication, the per-user connection limit, the size and rate
limits on every frame, and the ``error`` frames and closes that answer
what it refuses. What each accepted frame *does* is
:func:`~tether.service.ws.commands.dispatch`'s business.
"""

from __future__ import annotations

import asyncio
import logging
from typing import NoReturn

from starlette.websockets import WebSocket, WebSocketDisconnect

from tether.errors import FrameError, Throttled, Unauthorized
from tether.service.admission import RETRY_AFTER_S
from tether.service.auth import Principal
from tether.service.frames import PROTOCOL_VERSION, Hello, parse_frame
from tether.service.limits import TokenBucket
from tether.service.origin import origin_allowed
from tether.service.state import Service
from tether.service.ws.closes import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    CLOSE_RATE_LIMITED,
    CLOSE_TOO_LARGE,
    CLOSE_TRY_AGAIN_LATER,
    Closed,
)
from tether.service.ws.commands import dispatch
from tether.service.ws.peer import Peer
from tether.transports.websocket import WebSocketChannel

log = logging.getLogger("tether.service")


class Connection(Peer):
    """One WebSocket client: its caller, its session, its rate budget."""

    def __init__(self, svc: Service, websocket: WebSocket) -> None:
        super().__init__(svc, WebSocketChannel(websocket))
        self.websocket = websocket
        settings = svc.settings
        self.bucket = TokenBucket(settings.max_messages_per_minute, settings.message_burst)
        self.max_bytes = settings.max_message_bytes

    # -- the connection's life -------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until either side closes it."""
        try:
            await self._run()
        except (WebSocketDisconnect, OSError):
            self.channel.lost()  # gone before or during the handshake: nothing to undo

    async def _run(self) -> None:
        ws = self.websocket
        await ws.accept()
        if not origin_allowed(
            ws.headers.get("origin"), ws.headers.get("host"), self.svc.settings.origins
        ):
            await self.channel.close(CLOSE_POLICY, "origin not allowed")
            return
        if self.svc.draining:
            await self.channel.close(CLOSE_GOING_AWAY, "server_shutdown")
            return
        self.svc.websockets.add(self.channel)
        try:
            await self._serve()
        except (Closed, ConnectionError):
            pass
        finally:
            if self.bugs > 1:
                log.warning(
                    "websocket connection closed after %d more internal errors (not logged)",
                    self.bugs - 1,
                )
            self.svc.websockets.discard(self.channel)
            if self.waiter is not None:
                self.waiter.cancel()
            if self.session_id is not None:
                await self.svc.detach_later(self.session_id, self.channel)

    async def _serve(self) -> None:
        admission = self.svc.unauthenticated
        if not admission.enter():
            await self.refuse(
                "too_many_unauthenticated",
                "too many connections are waiting to say hello; retry shortly",
                CLOSE_TRY_AGAIN_LATER,
                retry_after_s=RETRY_AFTER_S,
            )
        try:
            caller = await self._hello()
        finally:
            admission.leave()
        key = self.svc.limit_key(caller)
        try:
            self.svc.connections.acquire(key)
        except Throttled as exc:
            await self.refuse(
                "too_many_connections",
                str(exc),
                CLOSE_RATE_LIMITED,
                retry_after_s=exc.retry_after_s,
            )
        try:
            await self.channel.send_json(
                {
                    "type": "welcome",
                    "v": PROTOCOL_VERSION,
                    "heartbeat_interval_s": self.svc.settings.heartbeat_interval,
                    "max_message_bytes": self.max_bytes,
                }
            )
            while True:
                text = await self._receive()
                try:
                    await dispatch(self, parse_frame(text))
                except (Closed, ConnectionError):
                    raise
                except FrameError as exc:
                    await self.error(exc.code, exc.message)
                except Exception as exc:
                    # TetherErrors map to their codes; anything else is logged
                    # as a bug and reported as "internal": the connection stays.
                    await self.send_problem(exc)
        finally:
            self.svc.connections.release(key)

    async def _hello(self) -> Principal:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.svc.settings.hello_timeout
        while True:
            try:
                text = await asyncio.wait_for(self._receive(), deadline - loop.time())
            except TimeoutError:
                await self.refuse("hello_timeout", "no hello in time", CLOSE_POLICY)
            try:
                frame = parse_frame(text)
            except FrameError as exc:
                await self.error(exc.code, exc.message)
                continue
            if not isinstance(frame, Hello):
                await self.error("hello_required", "the first frame must be hello {token, v}")
                continue
            if frame.v != PROTOCOL_VERSION:
                await self.error("unsupported_version", f"this server speaks v{PROTOCOL_VERSION}")
                continue
            try:
                self.caller = self.svc.tokens.verify(frame.token)
            except Unauthorized as exc:
                await self.refuse("unauthorized", str(exc), CLOSE_POLICY)
            return self.caller

    async def _receive(self) -> str:
        """The next text frame, enforcing the size and rate limits."""
        while True:
            if self.channel.closed:
                raise Closed()
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                self.channel.lost()
                raise Closed()
            text: str | None = message.get("text")
            data: bytes | None = message.get("bytes")
            size = len(data) if text is None and data is not None else _utf8_len(text or "")
            if size > self.max_bytes:
                await self.channel.close(CLOSE_TOO_LARGE, "message too large")
                raise Closed()
            if not self.bucket.take():
                await self.refuse("rate_limited", "too many messages", CLOSE_RATE_LIMITED)
            if text is None:
                await self.error("bad_frame", "send JSON text frames, not binary")
                continue
            return text

    async def refuse(self, code: str, message: str, close_code: int, **extra: object) -> NoReturn:
        """Say why (``extra`` goes into the ``error`` frame), close, and unwind."""
        self.svc.metrics.client_error("websocket", code)
        try:
            await self.channel.send_json(
                {"type": "error", "code": code, "message": message, **extra}
            )
        finally:
            await self.channel.close(close_code, code)
        raise Closed()


def _utf8_len(text: str) -> int:
    # ASCII text (nearly every frame) is as long in bytes as in characters.
    return len(text) if text.isascii() else len(text.encode("utf-8", errors="surrogatepass"))


async def websocket_endpoint(svc: Service, websocket: WebSocket) -> None:
    """The ``/ws`` endpoint body."""
    await Connection(svc, websocket).run()
