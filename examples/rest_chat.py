"""An HTTP-only chat: REST calls only (no WebSocket), ended on idle and archived.

Run it::

    TETHER_SECRET=change-me TETHER_IDLE_TIMEOUT=60 TETHER_WARN_BEFORE=15 \\
        uvicorn examples.rest_chat:app --port 8000

A client with a bearer token (``tether token alice``)::

    POST /api/v1/sessions                       {"kind": "notes"}    -> {"id": ...}
    POST /api/v1/sessions/{id}/messages         {"role": "user", "content": "buy milk"}
    GET  /api/v1/sessions/{id}/messages         the user's lines and the app's answers
    POST /api/v1/sessions/{id}/heartbeat        "still here" (presence, not activity)

When the user stops writing for ``TETHER_IDLE_TIMEOUT`` the session ends
``idle_timeout`` and its transcript is archived as YAML under ``TETHER_DATA_DIR``:
``GET /api/v1/users/alice/archives`` lists it, ``.../archives/{archive_id}`` reads it.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tether.core.session import SessionInfo
from tether.core.transcript import Message, Role
from tether.service import mount

log = logging.getLogger("examples.rest_chat")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside tether's lifespan: the manager is open here."""
    manager = tether.manager

    @manager.on_message
    async def take_note(session: SessionInfo, message: Message) -> None:
        """Answer each note; the answer is in the transcript for the next GET to see."""
        notes = sum(1 for m in await manager.transcript(session.id) if m.role is Role.USER)
        await manager.append(session.id, "assistant", f"Noted ({notes} so far).")

    @manager.on_ended
    async def ended(session: SessionInfo) -> None:
        log.warning("a session of %s ended (%s)", session.user, session.end_reason)

    yield


app = FastAPI(title="notes over HTTP", lifespan=lifespan)
tether = mount(app)  # /api/v1/..., /health (and /ws, unused here)
