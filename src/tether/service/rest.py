"""REST commands on sessions: ``/api/v1/sessions`` and everything under it.

Every route authenticates the caller and checks the session is theirs
(someone else's answers 404, exactly like an unknown id). Errors leave
through :mod:`tether.service.errors`, so each one has the status and shape
PROTOCOL.md promises.
"""

# No "from __future__ import annotations" here: FastAPI must evaluate the
# route signatures, which name dependencies local to build().

from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from tether.core.ids import validate_session_id
from tether.core.jsonvalue import loads
from tether.errors import BadJson
from tether.service import cleanup, evicted
from tether.service.auth import Principal, bearer
from tether.service.deps import SessionIdPath, UserQuery, api_router, caller_dependency
from tether.service.models import (
    CleanupBody,
    ConfigBody,
    MessageBody,
    StartBody,
    presence_view,
    session_view,
)
from tether.service.responses import answers
from tether.service.schemas import (
    CleanupResult,
    EndResult,
    Message,
    MessageList,
    Presence,
    Session,
    SessionList,
)
from tether.service.state import Service
from tether.types import SessionState

_BEACON_BODY = {
    # The header, or (sendBeacon) no header and the token in the body.
    "security": [{"HTTPBearer": []}, {}],
    "requestBody": {
        "required": False,
        "content": {
            "text/plain": {
                "schema": {"type": "string"},
                "example": "eyJhbGciOi...",
            },
            "application/json": {
                "schema": {"type": "object", "properties": {"token": {"type": "string"}}}
            },
        },
        "description": "For navigator.sendBeacon, which cannot set headers: the token "
        'as the whole text/plain body (or {"token": ...}, or token=... form data).',
    },
}


def _beacon_token(request: Request, body: bytes) -> str | None:
    """The token of an end request: the header, else whatever the body carries."""
    header = bearer(request.headers.get("authorization"))
    if header is not None:
        return header
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            data = loads(text)
        except BadJson:
            return None  # then it is no token: 401
        token = data.get("token") if isinstance(data, dict) else None
        return token if isinstance(token, str) else None
    if text.startswith("token="):
        values = parse_qs(text).get("token")
        return values[0] if values else None
    return text


# Long: one short nested function per route (FastAPI reads them from this closure).
def build(svc: Service) -> APIRouter:
    """The session routes of one service."""
    r = api_router(svc, "sessions")
    Caller = Annotated[Principal, Depends(caller_dependency(svc))]
    heartbeat_interval = svc.settings.heartbeat_interval

    @r.post(
        "/sessions",
        summary="Start a session",
        **answers(Session, "The new session", 400, 403, 413, 422, status=201),
    )
    async def start_session(caller: Caller, body: StartBody | None = None) -> dict[str, Any]:
        body = body or StartBody()
        user = svc.owner_for_start(caller, body.user)
        info = await svc.manager.start(user, kind=body.kind, config=body.config)
        return session_view(info)

    @r.get(
        "/sessions",
        summary="List sessions (the caller's; admins: everyone's)",
        **answers(SessionList, "The sessions", 400, 403, 422),
    )
    async def list_sessions(
        caller: Caller,
        user: UserQuery = None,
        state: SessionState | None = None,
    ) -> dict[str, Any]:
        scope = svc.user_scope(caller, user)
        sessions = await svc.manager.list(user=scope, state=state)
        return {"sessions": [session_view(s) for s in sessions]}

    @r.post(
        "/sessions/cleanup",
        summary="End all, inactive or specific sessions",
        **answers(CleanupResult, "How many sessions this call ended", 400, 403, 413, 422),
    )
    async def cleanup_sessions(caller: Caller, body: CleanupBody) -> dict[str, int]:
        chosen = await cleanup.select(svc, caller, body)
        ended = await cleanup.end_sessions(
            svc.manager, chosen, lambda info: svc.end_reason(caller, info)
        )
        return {"ended": ended}

    @r.get("/sessions/{session_id}", summary="One session", **answers(Session, "The session", 404))
    async def get_session(caller: Caller, session_id: SessionIdPath) -> dict[str, Any]:
        info, archived = await evicted.readable(svc, caller, session_id)
        return session_view(info, archive_id=None if archived is None else archived.archive_id)

    @r.post(
        "/sessions/{session_id}/heartbeat",
        summary="Presence (never activity)",
        **answers(Presence, "Where the session stands", 403, 404, 410),
    )
    async def heartbeat(caller: Caller, session_id: SessionIdPath) -> dict[str, Any]:
        info = await svc.owned(caller, session_id)
        await svc.manager.heartbeat(info.id)
        return presence_view(await svc.manager.get(info.id), heartbeat_interval)

    @r.post(
        "/sessions/{session_id}/activity",
        summary="User activity (clears a warning)",
        **answers(Presence, "Where the session stands", 403, 404, 410),
    )
    async def activity(caller: Caller, session_id: SessionIdPath) -> dict[str, Any]:
        info = await svc.owned(caller, session_id)
        await svc.manager.activity(info.id)
        return presence_view(await svc.manager.get(info.id), heartbeat_interval)

    @r.post(
        "/sessions/{session_id}/messages",
        summary="Append a message",
        **answers(Message, "The message with its seq", 400, 403, 404, 410, 413, 422, status=201),
    )
    async def append(
        caller: Caller, session_id: SessionIdPath, body: MessageBody
    ) -> dict[str, Any]:
        info = await svc.owned(caller, session_id)
        caller.check_role(body.role)  # before anything changes: a refusal is a no-op
        if caller.user == info.user and body.role != "user":
            await svc.manager.heartbeat(info.id)  # a request from the client is presence
        message = await svc.append(caller, info.id, body.role, body.content, body.metadata)
        return message.to_dict()

    @r.get(
        "/sessions/{session_id}/messages",
        summary="The transcript",
        **answers(MessageList, "Messages after `after`, oldest first", 404, 422),
    )
    async def transcript(
        caller: Caller,
        session_id: SessionIdPath,
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        info, archived = await evicted.readable(svc, caller, session_id)
        if archived is not None:
            later = [m for m in archived.messages if m.seq > after]
            return {"messages": [m.to_dict() for m in later[:limit]]}
        messages = await svc.manager.transcript(info.id, after=after, limit=limit)
        return {"messages": [m.to_dict() for m in messages]}

    @r.put(
        "/sessions/{session_id}/config",
        summary="Replace the config (broadcast)",
        **answers(Session, "The session with its new config", 400, 403, 404, 410, 413, 422),
    )
    async def put_config(
        caller: Caller, session_id: SessionIdPath, body: ConfigBody
    ) -> dict[str, Any]:
        info = await svc.owned(caller, session_id)
        if caller.user == info.user:
            await svc.manager.heartbeat(info.id)
        return session_view(await svc.manager.update_config(info.id, body.config))

    @r.post(
        "/sessions/{session_id}/end",
        summary="End a session (also from navigator.sendBeacon)",
        openapi_extra=_BEACON_BODY,
        **answers(
            EndResult, "Whether this call ended it, and the reason it ended with", 403, 404, 413
        ),
    )
    async def end_session(session_id: SessionIdPath, request: Request) -> JSONResponse:
        caller = svc.authenticate(_beacon_token(request, await request.body()))
        caller.require_participant()
        info = await svc.owned(caller, session_id)
        ended = await svc.manager.end(validate_session_id(info.id), svc.end_reason(caller, info))
        final = await svc.manager.get(info.id)
        reason = final.end_reason.value if final.end_reason is not None else None
        return JSONResponse({"ended": ended, "reason": reason})

    return r
