"""A WebSocket client as the commands see it: its caller, its session, its errors out.

:class:`~tether.service.ws.connection.Connection` is a :class:`Peer` that
also owns the transport (handshake, frames in, limits). The commands and
:mod:`~tether.service.ws.attach` work on a :class:`Peer`, so they import
this module and never the connection that dispatches to them.
"""

from __future__ import annotations

import asyncio

from tether.errors import FrameError
from tether.service.auth import Principal
from tether.service.errors import problem_for
from tether.service.state import Service
from tether.transports.websocket import WebSocketChannel
from tether.types import SessionId


class Peer:
    """One authenticated WebSocket client, the session it serves and its ``error`` frames."""

    def __init__(self, svc: Service, channel: WebSocketChannel) -> None:
        self.svc = svc
        self.channel = channel
        self.caller: Principal | None = None
        self.session_id: SessionId | None = None
        self.observer = False
        """Attached by ``observe``: it watches, holds no presence, sends no activity."""
        self.waiter: asyncio.Task[None] | None = None
        self.bugs = 0
        """Unexpected exceptions on this connection: the first is logged, the rest counted."""

    @property
    def principal(self) -> Principal:
        """The authenticated caller (commands only run after ``hello``)."""
        assert self.caller is not None  # set by _hello before any dispatch
        return self.caller

    def attached(self) -> SessionId:
        """The session this connection serves, or ``error not_attached``."""
        if self.session_id is None:
            raise FrameError("not_attached", "start, resume or observe a session first")
        return self.session_id

    def ensure_free(self) -> None:
        """Refuse a second attach (``error already_attached``)."""
        if self.session_id is not None or self.waiter is not None:
            raise FrameError(
                "already_attached", "this connection already has a session; open another one"
            )

    async def error(self, code: str, message: str) -> None:
        """Send ``error {code, message}``; the connection stays. Counted, never logged."""
        self.svc.metrics.client_error("websocket", code)
        await self.channel.send_json({"type": "error", "code": code, "message": message})

    async def send_problem(self, exc: BaseException) -> None:
        """Send the ``error`` frame that ``exc`` maps to; the connection stays.

        Only the connection's first unexpected exception is logged (with its
        traceback): a client repeating whatever triggers it buys no more log.
        """
        problem = problem_for(exc, log_unexpected=self.bugs == 0)
        if problem.status == 500:
            self.bugs += 1
        self.svc.metrics.client_error("websocket", problem.code)
        await self.channel.send_json({"type": "error", **problem.body()})
