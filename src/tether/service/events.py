"""``GET /api/v1/sessions/{id}/events``: a session's events as Server-Sent Events.

An open stream is an attached connection: it holds presence exactly like a
WebSocket, and when it goes away the presence clock (the reconnect grace)
starts. On reconnect, ``Last-Event-ID`` (or ``?last_event_id=`` for
polyfills) is the transcript position the stream had reached; messages
after it are replayed first, then the current config and any warning in
force, then live events. An ended session answers 410, which tells
``EventSource`` to stop reconnecting.
"""

# No "from __future__ import annotations" here: FastAPI must evaluate the
# route signatures, which name dependencies local to build().

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse

from tether.core.events import Event, SessionEndedEvent, TranscriptAppended
from tether.core.ids import log_ref
from tether.errors import SessionEnded, TetherError
from tether.service.auth import Principal
from tether.service.deps import SessionIdPath, api_router, stream_caller_dependency
from tether.service.responses import AUTHENTICATED, SSE_EVENT, error_responses
from tether.service.state import Service
from tether.transports.sse import SSEChannel, format_sse
from tether.types import SessionId

log = logging.getLogger("tether.service")

REPLAY_LIMIT = 1000
"""Most messages replayed on one reconnect; older ones are in ``GET .../messages``."""


def _position(*candidates: str | None) -> int:
    """The first well-formed transcript position among ``candidates`` (else 0)."""
    for value in candidates:
        if value is not None and value.strip().isdigit():
            return min(int(value.strip()), 2**53)
    return 0


def build(svc: Service) -> APIRouter:
    """The event-stream route of one service."""
    r = api_router(svc, "events")
    Caller = Annotated[Principal, Depends(stream_caller_dependency(svc))]

    @r.get(
        "/sessions/{session_id}/events",
        summary="Server-Sent Events for one session",
        response_class=StreamingResponse,
        response_model=None,
        responses={
            200: {
                "description": "The session's events, one JSON object per `data:` line",
                "content": {"text/event-stream": {"schema": SSE_EVENT}},
            },
            **error_responses(404, 410, *AUTHENTICATED),
        },
    )
    async def events(
        caller: Caller,
        session_id: SessionIdPath,
        last_event_id: Annotated[str | None, Header(max_length=32)] = None,
        last_event_id_query: Annotated[
            str | None, Query(alias="last_event_id", max_length=32)
        ] = None,
    ) -> StreamingResponse:
        info = await svc.owned(caller, session_id)
        if info.end_reason is not None:
            raise SessionEnded(info.end_reason)
        if svc.draining:
            raise TetherError("the server is shutting down")
        key = svc.limit_key(caller)
        svc.connections.check(key)
        after = _position(last_event_id, last_event_id_query)
        return StreamingResponse(
            _stream(svc, info.id, after, key, observer=caller.observe_only),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return r


async def _stream(
    svc: Service, session_id: SessionId, after: int, key: str, *, observer: bool = False
) -> AsyncIterator[str]:
    """Attach, replay, stream; detach however it ends (``observer``: no presence).

    Attaching happens here, once the response is really being sent, so a
    client that vanishes before its first byte leaves nothing attached.
    """
    channel = SSEChannel(last_seq=after)
    channel.hold()
    svc.connections.acquire(key, force=True)
    svc.sse_streams += 1
    try:
        try:
            await svc.manager.attach(session_id, channel, observer=observer)
            replay: list[Event] = [
                TranscriptAppended(m)
                for m in await svc.manager.transcript(session_id, after=after, limit=REPLAY_LIMIT)
            ]
        except SessionEnded as exc:
            # Ended between the check and the attach: say so, like a live end would.
            yield format_sse(SessionEndedEvent(exc.reason).to_wire())
            return
        log.debug("event stream opened session=%s", log_ref(session_id))
        async for chunk in channel.stream(svc.settings.sse_ping_interval, replay=replay):
            yield chunk
    finally:
        # Also runs when the client goes away, inside a cancellation: only
        # synchronous bookkeeping here; the detach runs as its own task.
        svc.sse_streams -= 1
        svc.connections.release(key)
        svc.spawn(svc.detach_later(session_id, channel))
