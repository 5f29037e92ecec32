"""``GET /api/v1/admin/events``: every session's lifecycle as Server-Sent Events, for admins.

:class:`~tether.service.admin_feed.AdminFeed` does the work; this is the
route: admin only, the token in the header or (``EventSource``) ``?token=``,
counted against the admin's connection limit like any event stream.
"""

# No "from __future__ import annotations" here: FastAPI must evaluate the
# route signatures, which name dependencies local to build().

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from tether.errors import TetherError
from tether.service.admin_feed import SNAPSHOT_INTERVAL
from tether.service.auth import Principal
from tether.service.deps import api_router, stream_caller_dependency
from tether.service.responses import AUTHENTICATED, error_responses
from tether.service.state import Service


def build(svc: Service) -> APIRouter:
    """The admin event stream of one service."""
    r = api_router(svc, "admin", prefix="/api/v1/admin")
    Caller = Annotated[Principal, Depends(stream_caller_dependency(svc))]

    @r.get(
        "/events",
        summary="Admin only: every session's lifecycle as Server-Sent Events",
        response_class=StreamingResponse,
        response_model=None,
        responses={
            200: {
                "description": "A snapshot, then session changes, one JSON object per "
                f"`data:` line; a fresh snapshot every {SNAPSHOT_INTERVAL:g} s",
                "content": {"text/event-stream": {"schema": ADMIN_EVENT}},
            },
            **error_responses(403, *AUTHENTICATED),
        },
    )
    async def admin_events(caller: Caller) -> StreamingResponse:
        caller.require_admin()
        if not svc.bound:
            raise TetherError("the service is starting")
        if svc.draining:
            raise TetherError("the server is shutting down")
        key = svc.limit_key(caller)
        svc.connections.check(key)

        async def body() -> AsyncIterator[str]:
            # Subscribed here, once the response is really being sent, so a
            # client that vanishes before its first byte leaves nothing behind.
            svc.connections.acquire(key, force=True)
            try:
                async for chunk in svc.admin_feed.stream():
                    yield chunk
            finally:
                svc.connections.release(key)

        return StreamingResponse(
            body(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return r


ADMIN_EVENT: dict[str, Any] = {
    "type": "object",
    "description": "One Server-Sent Event of the admin feed (docs/protocol.md).",
    "required": ["data"],
    "properties": {
        "event": {"type": "string", "description": "never sent: every event is a `message`"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "type": "object",
                "required": ["type", "now"],
                "properties": {
                    "type": {
                        "type": "string",
                        "enum": [
                            "snapshot",
                            "session.started",
                            "session.warning",
                            "session.active",
                            "session.updated",
                            "session.ended",
                        ],
                    },
                    "now": {"type": "number", "description": "the server's clock"},
                },
            },
            "description": "`snapshot {now, sessions, ended, ends, ...}` or "
            "`session.* {now, session}`",
        },
        "retry": {"type": "integer", "minimum": 0},
    },
}
"""The OpenAPI schema of one event on ``GET /api/v1/admin/events``."""
