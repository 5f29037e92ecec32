"""``start``, ``resume`` and ``observe``: joining a connection to a session.

A connection serves one session at a time. ``start`` makes a new one;
``resume`` and ``observe {session_id}`` attach to an existing one (the
caller's, or anyone's for an admin) and send the transcript's tail;
``observe {user}`` waits in the background for the user's next session.
An observer's channel holds no presence (see ``SessionManager.attach``).
An unknown, ended or someone else's session closes the connection 4404.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from tether.core.ids import log_ref, validate_session_id, validate_user_id
from tether.errors import FrameError, InvalidInput, SessionEnded, SessionNotFound
from tether.service.errors import problem_for
from tether.service.models import session_view
from tether.service.ws.closes import CLOSE_UNKNOWN_SESSION, Closed
from tether.service.ws.peer import Peer
from tether.types import SessionId

log = logging.getLogger("tether.service")

TAIL = 100
"""Most messages in ``session.resumed``'s ``transcript_tail``; the rest are in REST."""


async def start(conn: Peer, kind: str, config: dict[str, Any] | None) -> None:
    """``start``: a new session for the caller, with this connection attached."""
    conn.ensure_free()
    owner = conn.svc.owner_for_start(conn.principal, None)
    # present: this client signals presence, even if its node dies before the attach.
    info = await conn.svc.manager.start(owner, kind=kind, config=config, present=True)
    await _attach_started(conn, info.id, session_view(info))


async def _attach_started(
    conn: Peer, session_id: SessionId, view: dict[str, Any], *, observer: bool = False
) -> None:
    # session.started goes out first; attaching then queues session.config.
    conn.session_id = session_id
    conn.observer = observer
    try:
        await conn.channel.send_json({"type": "session.started", "session": view})
        await conn.svc.manager.attach(session_id, conn.channel, observer=observer)
    except BaseException:
        conn.session_id = None
        conn.observer = False
        raise
    log.debug("websocket attached session=%s", log_ref(session_id))


async def join(conn: Peer, raw_id: str, after: int | None, *, observer: bool = False) -> None:
    """``resume`` and ``observe {session_id}``: attach to an existing session."""
    conn.ensure_free()
    manager = conn.svc.manager
    channel = conn.channel
    try:
        info = await conn.svc.owned(conn.principal, raw_id)
        if info.end_reason is not None:
            raise SessionEnded(info.end_reason)
        channel.hold()
        try:
            info = await manager.attach(info.id, channel, observer=observer)
            conn.session_id = info.id
            conn.observer = observer
            floor = max(0, info.message_count - TAIL)
            first = floor if after is None else max(after, floor)
            tail = await manager.transcript(info.id, after=first, limit=TAIL)
            if tail:
                channel.cursor.advance(tail[-1].seq)
            elif after is not None:
                # Never past what exists: a client claiming a later position
                # must not lose the messages that are still to come.
                channel.cursor.advance(min(after, info.message_count))
            await channel.send_json(
                {
                    "type": "session.resumed",
                    "session": session_view(info),
                    "transcript_tail": [m.to_dict() for m in tail],
                }
            )
        finally:
            channel.release()
    except (SessionNotFound, SessionEnded) as exc:
        problem = problem_for(exc)
        code = "unknown_session" if isinstance(exc, SessionNotFound) else problem.code
        try:
            await channel.send_json({"type": "error", **problem.body(), "code": code})
        finally:
            await channel.close(CLOSE_UNKNOWN_SESSION, code)
        raise Closed() from None
    log.debug("websocket resumed session=%s", log_ref(info.id))


def observe_next(conn: Peer, target: str, wait_s: float) -> None:
    """``observe {user}``: attach to ``target``'s next session once it starts."""
    conn.ensure_free()
    caller = conn.principal
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
    conn.waiter = asyncio.get_running_loop().create_task(_wait_for(conn, user, wait_s))


async def _wait_for(conn: Peer, user: str, wait_s: float) -> None:
    try:
        info = await conn.svc.watch.next_session(user, wait_s)
        if info is None:
            await conn.error("observe_timeout", f"no session started within {wait_s:g}s")
            return
        session_id = validate_session_id(info.id)
        await _attach_started(conn, session_id, session_view(info), observer=True)
    except ConnectionError:
        pass
    except Exception as exc:
        conn.session_id = None
        with contextlib.suppress(ConnectionError):
            await conn.send_problem(exc)
    finally:
        conn.waiter = None
