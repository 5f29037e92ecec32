"""``WS /twilio/media``: one Twilio Media Stream, bridged to a tether session.

The life of a stream:

1. Twilio sends ``connected`` then ``start`` (within ``TETHER_HELLO_TIMEOUT``;
   until then the socket counts against ``TETHER_MAX_UNAUTHENTICATED``).
2. ``start.customParameters.token`` is a bearer token; a bad one closes
   1008. ``customParameters.session_id`` joins that session (the caller's
   own, else close 4404); without it, a session of kind ``call`` starts with
   the other parameters as its config. The stream is attached as a
   participant (it holds presence) and every connection of the session
   gets ``call.status_changed in-progress``.
3. ``media`` frames whose energy says someone speaks, and ``dtmf``, are user
   activity (at most one touch per second per stream); silence is not.
   ``mark`` echoes wake :meth:`CallStream.wait_mark`.
4. ``stop``, or the socket closing, ends the session ``client_ended``; a
   tether end (idle timeout, admin, ...) closes the socket with the
   reason's close code. Either way ``call.status_changed ended`` goes out
   before ``session.ended``.

Twilio has no message for errors, so a message tether cannot use (bad JSON,
an unknown event, a wrong ``streamSid``, bad base64) is counted
(``tether_client_errors_total{transport="twilio"}``), logged once per
stream, and skipped: the call goes on. Only what makes the stream unusable
closes it: a bad token or ``start`` (1008), an unknown session (4404), an
oversized frame (1009), a flood (4029).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import NoReturn

from starlette.websockets import WebSocket, WebSocketDisconnect

from tether.core.session import SessionInfo
from tether.errors import (
    FrameError,
    InvalidInput,
    SessionEnded,
    SessionNotFound,
    TetherError,
    Throttled,
    Unauthorized,
)
from tether.service.auth import Principal
from tether.service.limits import TokenBucket
from tether.service.state import Service
from tether.service.twilio.audio import EnergyGate, Throttle
from tether.service.twilio.messages import (
    Connected,
    Dtmf,
    Mark,
    Media,
    Start,
    Stop,
    TwilioMessage,
    decode,
    parse_object,
)
from tether.service.twilio.stream import CallStream
from tether.service.ws.closes import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    CLOSE_RATE_LIMITED,
    CLOSE_TOO_LARGE,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNKNOWN_SESSION,
    Closed,
)
from tether.transports.websocket import WebSocketChannel
from tether.types import EndReason

log = logging.getLogger("tether.service")

TRANSPORT = "twilio"
CLOSE_ERROR = 1011
ACTIVITY_INTERVAL = 1.0
"""Seconds between two activity touches of one stream: speech is 50 frames a second."""
FRAMES_PER_MINUTE = 6000
"""A stream's frame budget: Twilio sends 50 media frames a second, this allows 100."""
FRAME_BURST = 1000
"""Frames a stream may send at once (Twilio catching up after a network stall)."""
INBOUND_TRACKS = frozenset({"inbound", "inbound_track"})
"""The caller's audio; ``outbound`` is what the call plays, never the user's activity."""


class TwilioBridge:
    """One Twilio Media Stream connection, from ``connected`` to close."""

    def __init__(self, svc: Service, websocket: WebSocket) -> None:
        self.svc = svc
        self.websocket = websocket
        self.socket = WebSocketChannel(websocket)
        self.stream: CallStream | None = None
        self.gate = EnergyGate()
        self.touches = Throttle(ACTIVITY_INTERVAL)
        self.bucket = TokenBucket(FRAMES_PER_MINUTE, FRAME_BURST)
        self.max_bytes = svc.settings.max_message_bytes
        self.errors = 0

    async def run(self) -> None:
        """Serve the stream until either side closes it."""
        try:
            await self._run()
        except (WebSocketDisconnect, OSError):
            self.socket.lost()

    async def _run(self) -> None:
        await self.websocket.accept()
        if self.svc.draining:
            await self.socket.close(CLOSE_GOING_AWAY, EndReason.SERVER_SHUTDOWN.value)
            return
        self.svc.websockets.add(self.socket)
        try:
            await self._serve()
        except (Closed, ConnectionError):
            pass
        except TetherError as exc:
            # The service is starting or shutting down, or the store is unavailable.
            log.warning("twilio stream closed: %s", exc)
            await self.socket.close(CLOSE_ERROR, EndReason.ERROR.value)
        except Exception:
            # A bug: the call cannot go on, but the server stays up and the
            # session still ends below.
            log.exception("twilio stream failed")
            await self.socket.close(CLOSE_ERROR, EndReason.ERROR.value)
        finally:
            self.svc.websockets.discard(self.socket)
            await self._hang_up()

    async def _serve(self) -> None:
        admission = self.svc.unauthenticated
        if not admission.enter():
            await self.refuse("too_many_unauthenticated", CLOSE_TRY_AGAIN_LATER)
        try:
            start = await self._wait_for_start()
        finally:
            admission.leave()
        try:
            caller = self.svc.tokens.verify(start.custom_parameters.get("token"))
        except Unauthorized:
            await self.refuse("unauthorized", CLOSE_POLICY)
        key = self.svc.limit_key(caller)
        try:
            self.svc.connections.acquire(key)
        except Throttled:
            await self.refuse("too_many_connections", CLOSE_RATE_LIMITED)
        try:
            info = await self._session_for(caller, start)
            await self._attach(info, start)
            while True:
                await self._handle(await self._receive())
        finally:
            self.svc.connections.release(key)

    # -- start -------------------------------------------------------------------------

    async def _wait_for_start(self) -> Start:
        """Messages until ``start``; what comes before it (``connected`` aside) is skipped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.svc.settings.hello_timeout
        while True:
            try:
                text = await asyncio.wait_for(self._receive(), deadline - loop.time())
            except TimeoutError:
                await self.refuse("start_timeout", CLOSE_POLICY)
            try:
                message = parse_object(decode(text))
            except FrameError as exc:
                if data_event(text) == "start":
                    await self.refuse(exc.code, CLOSE_POLICY)  # no second start will come
                self.skip(exc.code, exc.message)
                continue
            if isinstance(message, Start):
                return message
            if isinstance(message, Stop):
                raise Closed()  # the stream stopped before it started: nothing to end
            if not isinstance(message, Connected):
                self.skip("not_started", f"{type(message).__name__.lower()} before start")

    async def _session_for(self, caller: Principal, start: Start) -> SessionInfo:
        """The session the stream joins (``session_id``) or the new ``call`` session it starts."""
        params = start.custom_parameters
        manager = self.svc.manager
        raw_id = params.get("session_id")
        if raw_id is not None:
            try:
                info = await self.svc.owned(caller, raw_id)
            except SessionNotFound:
                await self.refuse("unknown_session", CLOSE_UNKNOWN_SESSION)
            if info.end_reason is not None:
                await self.refuse("session_ended", CLOSE_UNKNOWN_SESSION)
            return info
        config = {k: v for k, v in params.items() if k != "token"}
        try:
            owner = self.svc.owner_for_start(caller, None)
            # present: the stream attaches next and holds presence from now.
            return await manager.start(owner, kind="call", config=config, present=True)
        except InvalidInput as exc:
            self.skip("invalid_start", str(exc))
            await self.refuse("invalid_start", CLOSE_POLICY)

    async def _attach(self, info: SessionInfo, start: Start) -> None:
        stream = CallStream(self.socket, start, info.id, info.user)
        try:
            self.svc.calls.add(stream)
        except FrameError as exc:
            await self.refuse(exc.code, CLOSE_POLICY)
        self.stream = stream
        try:
            await self.svc.manager.attach(info.id, stream)
        except (SessionNotFound, SessionEnded):
            await self.refuse("session_ended", CLOSE_UNKNOWN_SESSION)
        await self.svc.calls.announce_start(stream)
        self.svc.spawn(self.svc.calls.run_start_hooks(stream))

    # -- the call -------------------------------------------------------------------------

    async def _handle(self, text: str) -> None:
        try:
            message = parse_object(decode(text))
        except FrameError as exc:
            self.skip(exc.code, exc.message)
            return
        stream = self.stream
        assert stream is not None  # attached before the first call
        if isinstance(message, Media | Dtmf | Mark | Stop) and (
            message.stream_sid != stream.stream_sid
        ):
            self.skip("wrong_stream", "streamSid is not this stream's")
            return
        if isinstance(message, Media):
            if message.track in INBOUND_TRACKS and self.gate.feed(message.payload):
                await self._touch(stream)
        elif isinstance(message, Dtmf):
            await self._touch(stream)
        elif isinstance(message, Mark):
            stream.marked(message.name)
        elif isinstance(message, Stop):
            raise Closed()  # _hang_up ends the session
        else:
            self.skip("already_started", f"{_name(message)} after start")

    async def _touch(self, stream: CallStream) -> None:
        manager = self.svc.manager
        if not self.touches.ready(manager.clock.monotonic()):
            return
        # An ended session's close is already on its way to this socket.
        with contextlib.suppress(SessionEnded, SessionNotFound):
            await manager.activity(stream.session_id)

    async def _hang_up(self) -> None:
        """The stream is over: end its session ``client_ended`` (unless tether ended it)."""
        stream = self.stream
        if stream is None:
            return
        manager = self.svc.manager
        try:
            with contextlib.suppress(SessionNotFound, SessionEnded):
                await manager.end(stream.session_id, EndReason.CLIENT_ENDED)
        except TetherError as exc:
            log.warning("ending a call's session failed: %s", exc)
        finally:
            self.svc.calls.remove(stream)
            await self.svc.detach_later(stream.session_id, stream)

    # -- frames in, refusals out ------------------------------------------------------------

    async def _receive(self) -> str:
        """The next text frame, enforcing the size and rate limits."""
        while True:
            if self.socket.closed:
                raise Closed()
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                self.socket.lost()
                raise Closed()
            text: str | None = message.get("text")
            data: bytes | None = message.get("bytes")
            size = len(data) if text is None and data is not None else len(text or "")
            if size > self.max_bytes:
                await self.refuse("too_large", CLOSE_TOO_LARGE)
            if not self.bucket.take():
                await self.refuse("rate_limited", CLOSE_RATE_LIMITED)
            if text is None:
                self.skip("bad_frame", "Twilio sends JSON text frames, not binary")
                continue
            return text

    def skip(self, code: str, message: str) -> None:
        """Count a message the bridge cannot use (logged once per stream); the call goes on."""
        self.svc.metrics.client_error(TRANSPORT, code)
        self.errors += 1
        if self.errors == 1:
            log.info("twilio stream: skipped a message (%s: %s)", code, message)

    async def refuse(self, code: str, close_code: int) -> NoReturn:
        """Close the stream with ``close_code`` (``code`` as the reason), and unwind."""
        self.svc.metrics.client_error(TRANSPORT, code)
        log.info("twilio stream refused: %s", code)
        await self.socket.close(close_code, code)
        raise Closed()


def data_event(text: str) -> str | None:
    """The ``event`` of a frame that failed to parse, if it is a JSON object naming one."""
    with contextlib.suppress(FrameError):
        event = decode(text).get("event")
        return event if isinstance(event, str) else None
    return None


def _name(message: TwilioMessage) -> str:
    return type(message).__name__.lower()


async def twilio_endpoint(svc: Service, websocket: WebSocket) -> None:
    """The ``/twilio/media`` endpoint body."""
    await TwilioBridge(svc, websocket).run()
