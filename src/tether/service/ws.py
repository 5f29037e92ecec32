"""``/ws``: one WebSocket connection, from ``hello`` to close.

The life of a connection:

1. The upgrade's ``Origin`` is checked (refused: close 1008).
2. ``hello {token, v}`` must come within ``TETHER_HELLO_TIMEOUT``; other
   frames before it get ``error hello_required``. A bad token closes 1008.
   The per-user connection limit is checked here (over it: close 4029).
3. ``welcome``, then commands: ``start``, ``resume``, ``observe`` attach the
   connection to one session; ``activity``, ``ping``, ``message``,
   ``config`` and ``end`` act on it.
4. The session's end closes the connection with the reason's code (the
   runtime does that through :class:`~tether.transports.WebSocketChannel`).

A bad frame gets an ``error`` frame and the connection stays. Only an
oversized frame (1009), a flood (``error rate_limited``, then 4029), and a
``resume``/``observe`` of an unknown or ended session (4404) close it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, NoReturn

from starlette.websockets import WebSocket, WebSocketDisconnect

from tether.core.ids import log_ref, validate_session_id, validate_user_id
from tether.errors import InvalidInput, SessionEnded, SessionNotFound
from tether.service.auth import Principal, Unauthorized
from tether.service.errors import problem_for
from tether.service.frames import (
    PROTOCOL_VERSION,
    Activity,
    ClientFrame,
    Config,
    End,
    FrameError,
    Hello,
    Message,
    Observe,
    Ping,
    Resume,
    Start,
    parse_frame,
)
from tether.service.limits import Throttled, TokenBucket
from tether.service.models import session_view
from tether.service.origin import origin_allowed
from tether.service.state import Service
from tether.transports.websocket import WebSocketChannel
from tether.types import SessionId

log = logging.getLogger("tether.service")

CLOSE_POLICY = 1008
CLOSE_TOO_LARGE = 1009
CLOSE_GOING_AWAY = 1001
CLOSE_RATE_LIMITED = 4029
CLOSE_UNKNOWN_SESSION = 4404
TAIL = 100
"""Most messages in ``session.resumed``'s ``transcript_tail``; the rest are in REST."""


class _Closed(Exception):
    """The connection is over; unwind quietly."""


class Connection:
    """One WebSocket client: its caller, its session, its rate budget."""

    def __init__(self, svc: Service, websocket: WebSocket) -> None:
        self.svc = svc
        self.websocket = websocket
        self.channel = WebSocketChannel(websocket)
        settings = svc.settings
        self.bucket = TokenBucket(settings.max_messages_per_minute, settings.message_burst)
        self.max_bytes = settings.max_message_bytes
        self.caller: Principal | None = None
        self.session_id: SessionId | None = None
        self.waiter: asyncio.Task[None] | None = None

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
        except (_Closed, ConnectionError):
            pass
        finally:
            self.svc.websockets.discard(self.channel)
            if self.waiter is not None:
                self.waiter.cancel()
            if self.session_id is not None:
                await self.svc.detach_later(self.session_id, self.channel)

    async def _serve(self) -> None:
        caller = await self._hello()
        key = self.svc.connection_key(caller)
        try:
            self.svc.connections.acquire(key)
        except Throttled as exc:
            await self._refuse("too_many_connections", str(exc), CLOSE_RATE_LIMITED)
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
                    await self._dispatch(parse_frame(text))
                except (_Closed, ConnectionError):
                    raise
                except FrameError as exc:
                    await self._error(exc.code, exc.message)
                except Exception as exc:
                    # TetherErrors map to their codes; anything else is logged
                    # as a bug and reported as "internal": the connection stays.
                    await self.channel.send_json({"type": "error", **problem_for(exc).body()})
        finally:
            self.svc.connections.release(key)

    async def _hello(self) -> Principal:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.svc.settings.hello_timeout
        while True:
            try:
                text = await asyncio.wait_for(self._receive(), deadline - loop.time())
            except TimeoutError:
                await self._refuse("hello_timeout", "no hello in time", CLOSE_POLICY)
            try:
                frame = parse_frame(text)
            except FrameError as exc:
                await self._error(exc.code, exc.message)
                continue
            if not isinstance(frame, Hello):
                await self._error("hello_required", "the first frame must be hello {token, v}")
                continue
            if frame.v != PROTOCOL_VERSION:
                await self._error("unsupported_version", f"this server speaks v{PROTOCOL_VERSION}")
                continue
            try:
                self.caller = self.svc.tokens.verify(frame.token)
            except Unauthorized as exc:
                await self._refuse("unauthorized", str(exc), CLOSE_POLICY)
            return self.caller

    async def _receive(self) -> str:
        """The next text frame, enforcing the size and rate limits."""
        while True:
            if self.channel.closed:
                raise _Closed()
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                self.channel.lost()
                raise _Closed()
            text: str | None = message.get("text")
            data: bytes | None = message.get("bytes")
            size = len(data) if text is None and data is not None else _utf8_len(text or "")
            if size > self.max_bytes:
                await self.channel.close(CLOSE_TOO_LARGE, "message too large")
                raise _Closed()
            if not self.bucket.take():
                await self._refuse("rate_limited", "too many messages", CLOSE_RATE_LIMITED)
            if text is None:
                await self._error("bad_frame", "send JSON text frames, not binary")
                continue
            return text

    async def _error(self, code: str, message: str) -> None:
        await self.channel.send_json({"type": "error", "code": code, "message": message})

    async def _refuse(self, code: str, message: str, close_code: int) -> NoReturn:
        """Say why, close, and unwind."""
        try:
            await self._error(code, message)
        finally:
            await self.channel.close(close_code, code)
        raise _Closed()

    # -- frames ----------------------------------------------------------------------

    async def _dispatch(self, frame: ClientFrame) -> None:
        if isinstance(frame, Ping):
            if self.session_id is not None:
                # An ended session's close is already on its way to this connection.
                with contextlib.suppress(SessionEnded):
                    await self.svc.manager.heartbeat(self.session_id)
            await self.channel.send_json({"type": "pong"})
        elif isinstance(frame, Activity):
            await self.svc.manager.activity(self._attached())
        elif isinstance(frame, Message):
            await self.svc.manager.append(
                self._attached(), frame.role, frame.content, frame.metadata
            )
        elif isinstance(frame, Config):
            await self.svc.manager.update_config(self._attached(), frame.config)
        elif isinstance(frame, End):
            session_id = self._attached()
            info = await self.svc.manager.get(session_id)
            await self.svc.manager.end(session_id, self.svc.end_reason(self._caller(), info))
        elif isinstance(frame, Start):
            await self._start(frame)
        elif isinstance(frame, Resume):
            await self._join(frame.session_id, frame.after)
        elif isinstance(frame, Observe):
            if frame.session_id is not None:
                await self._join(frame.session_id, None)
            else:
                self._observe_next(frame.user or "me", frame.wait_s)
        elif isinstance(frame, Hello):
            raise FrameError("already_authenticated", "hello was already accepted")

    def _caller(self) -> Principal:
        assert self.caller is not None  # set by _hello before any dispatch
        return self.caller

    def _attached(self) -> SessionId:
        if self.session_id is None:
            raise FrameError("not_attached", "start, resume or observe a session first")
        return self.session_id

    def _free(self) -> None:
        if self.session_id is not None or self.waiter is not None:
            raise FrameError(
                "already_attached", "this connection already has a session; open another one"
            )

    async def _start(self, frame: Start) -> None:
        self._free()
        owner = self.svc.owner_for_start(self._caller(), None)
        info = await self.svc.manager.start(owner, kind=frame.kind, config=frame.config)
        await self._attach_started(info.id, session_view(info))

    async def _attach_started(self, session_id: SessionId, view: dict[str, Any]) -> None:
        # session.started goes out first; attaching then queues session.config.
        self.session_id = session_id
        try:
            await self.channel.send_json({"type": "session.started", "session": view})
            await self.svc.manager.attach(session_id, self.channel)
        except BaseException:
            self.session_id = None
            raise
        log.debug("websocket attached session=%s", log_ref(session_id))

    async def _join(self, raw_id: str, after: int | None) -> None:
        """``resume`` and ``observe {session_id}``: attach to an existing session."""
        self._free()
        manager = self.svc.manager
        try:
            info = await self.svc.owned(self._caller(), raw_id)
            if info.end_reason is not None:
                raise SessionEnded(info.end_reason)
            self.channel.hold()
            try:
                info = await manager.attach(info.id, self.channel)
                self.session_id = info.id
                floor = max(0, info.message_count - TAIL)
                start = floor if after is None else max(after, floor)
                tail = await manager.transcript(info.id, after=start, limit=TAIL)
                if tail:
                    self.channel.cursor.advance(tail[-1].seq)
                elif after is not None:
                    # Never past what exists: a client claiming a later position
                    # must not lose the messages that are still to come.
                    self.channel.cursor.advance(min(after, info.message_count))
                await self.channel.send_json(
                    {
                        "type": "session.resumed",
                        "session": session_view(info),
                        "transcript_tail": [m.to_dict() for m in tail],
                    }
                )
            finally:
                self.channel.release()
        except (SessionNotFound, SessionEnded) as exc:
            problem = problem_for(exc)
            code = "unknown_session" if isinstance(exc, SessionNotFound) else problem.code
            try:
                await self.channel.send_json({"type": "error", **problem.body(), "code": code})
            finally:
                await self.channel.close(CLOSE_UNKNOWN_SESSION, code)
            raise _Closed() from None
        log.debug("websocket resumed session=%s", log_ref(info.id))

    def _observe_next(self, target: str, wait_s: float) -> None:
        self._free()
        caller = self._caller()
        if target == "me" or target == caller.user:
            if caller.user is None:
                raise FrameError("not_allowed", "the admin token has no sessions of its own")
            user: str = caller.user
        elif caller.admin:
            try:
                user = validate_user_id(target)
            except InvalidInput as exc:
                raise FrameError("invalid_frame", str(exc)) from None
        else:
            raise FrameError("not_allowed", "you can only wait for your own sessions")
        self.waiter = asyncio.get_running_loop().create_task(self._wait_for(user, wait_s))

    async def _wait_for(self, user: str, wait_s: float) -> None:
        try:
            info = await self.svc.watch.next_session(user, wait_s)
            if info is None:
                await self._error("observe_timeout", f"no session started within {wait_s:g}s")
                return
            await self._attach_started(validate_session_id(info.id), session_view(info))
        except ConnectionError:
            pass
        except Exception as exc:
            self.session_id = None
            with contextlib.suppress(ConnectionError):
                await self.channel.send_json({"type": "error", **problem_for(exc).body()})
        finally:
            self.waiter = None


def _utf8_len(text: str) -> int:
    # ASCII text (nearly every frame) is as long in bytes as in characters.
    return len(text) if text.isascii() else len(text.encode("utf-8", errors="surrogatepass"))


async def websocket_endpoint(svc: Service, websocket: WebSocket) -> None:
    """The ``/ws`` endpoint body."""
    await Connection(svc, websocket).run()
