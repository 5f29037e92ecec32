"""What each command frame does, once ``hello`` has been accepted.

:func:`dispatch` looks up the handler for the frame's type. Handlers raise
:class:`~tether.errors.FrameError` or another
:class:`~tether.errors.TetherError` for the connection to report as an
``error`` frame; the connection stays open either way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from tether.errors import FrameError, SessionEnded
from tether.service.frames import (
    Activity,
    ClientFrame,
    Config,
    End,
    Hello,
    Message,
    Observe,
    Ping,
    Resume,
    Start,
)
from tether.service.ws import attach
from tether.service.ws.peer import Peer


def _participant(conn: Peer) -> None:
    """Refuse what only a participant may send (``error observer``), before anything changes."""
    if conn.observer:
        raise FrameError("observer", "an observer watches: it sends no activity or messages")


async def _ping(conn: Peer, frame: Ping) -> None:
    # An observer's pings keep its own socket alive, never the session's presence.
    if conn.session_id is not None and not conn.observer:
        # An ended session's close is already on its way to this connection.
        with contextlib.suppress(SessionEnded):
            await conn.svc.manager.heartbeat(conn.session_id)
    await conn.channel.send_json({"type": "pong"})


async def _activity(conn: Peer, frame: Activity) -> None:
    session_id = conn.attached()
    _participant(conn)
    await conn.svc.manager.activity(session_id)


async def _message(conn: Peer, frame: Message) -> None:
    session_id = conn.attached()
    _participant(conn)
    await conn.svc.append(conn.principal, session_id, frame.role, frame.content, frame.metadata)


async def _config(conn: Peer, frame: Config) -> None:
    session_id = conn.attached()
    conn.principal.require_participant()  # the owner's observer may; an observe-only token not
    await conn.svc.manager.update_config(session_id, frame.config)


async def _end(conn: Peer, frame: End) -> None:
    session_id = conn.attached()
    conn.principal.require_participant()
    info = await conn.svc.manager.get(session_id)
    await conn.svc.manager.end(session_id, conn.svc.end_reason(conn.principal, info))


async def _start(conn: Peer, frame: Start) -> None:
    conn.principal.require_participant()
    await attach.start(conn, frame.kind, frame.config)


async def _resume(conn: Peer, frame: Resume) -> None:
    conn.principal.require_participant()
    await attach.join(conn, frame.session_id, frame.after)


async def _observe(conn: Peer, frame: Observe) -> None:
    if frame.session_id is not None:
        await attach.join(conn, frame.session_id, None, observer=True)
    else:
        attach.observe_next(conn, frame.user or "me", frame.wait_s)


async def _hello(conn: Peer, frame: Hello) -> None:
    raise FrameError("already_authenticated", "hello was already accepted")


Handler = Callable[[Peer, Any], Awaitable[None]]
_HANDLERS: dict[type[Any], Handler] = {
    Ping: _ping,
    Activity: _activity,
    Message: _message,
    Config: _config,
    End: _end,
    Start: _start,
    Resume: _resume,
    Observe: _observe,
    Hello: _hello,
}


async def dispatch(conn: Peer, frame: ClientFrame) -> None:
    """Act on one parsed frame."""
    await _HANDLERS[type(frame)](conn, frame)
