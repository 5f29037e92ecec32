"""The documented shapes of what routes answer, for OpenAPI (``/openapi.json``, ``/docs``).

These models describe response bodies; they never build or filter them.
Routes return plain dicts (see :mod:`tether.service.responses`), and the
schemathesis suite checks that what the server sends matches these shapes.
Every model allows extra fields: additions to the protocol must not break
clients.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tether.service.models import SESSION_ID_PATTERN
from tether.types import EndReason, SessionState


class _View(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- sessions ----------------------------------------------------------------------------


class WarningView(_View):
    """A warning in force: what will end the session, and when."""

    reason: EndReason
    ends_at: float


class NextDeadline(_View):
    """The next thing the server will do to the session on its own."""

    at: float
    action: Literal["warn", "end"]
    reason: EndReason
    clock: Literal["presence", "activity", "lifetime"]


class Deadlines(_View):
    """When each clock runs out as things stand (``presence_at``: only with nothing attached)."""

    idle_at: float | None = Field(description="null while the session is busy")
    max_at: float
    presence_at: float | None


class PolicyView(_View):
    """The session's timeouts, in seconds."""

    idle_timeout: float
    warn_before: float
    max_duration: float
    presence_timeout: float


class Session(_View):
    """A session, as every edge shows it."""

    id: str = Field(pattern=SESSION_ID_PATTERN)
    user: str
    kind: str
    state: SessionState
    created_at: float
    last_activity: float
    last_seen: float
    connections: int = Field(ge=0)
    message_count: int = Field(ge=0)
    busy: bool = Field(
        default=False, description="a reply streams or the app marked it busy: idle is stopped"
    )
    config: dict[str, Any]
    warning: WarningView | None
    next_deadline: NextDeadline | None
    deadlines: Deadlines | None = Field(description="null once the session has ended")
    policy: PolicyView
    ended_at: float | None
    end_reason: EndReason | None


class SessionList(_View):
    """``GET /api/v1/sessions``."""

    sessions: list[Session]


class Presence(_View):
    """Where a session stands after a heartbeat or activity."""

    id: str = Field(pattern=SESSION_ID_PATTERN)
    state: SessionState
    warning: WarningView | None
    next_deadline: NextDeadline | None
    deadlines: Deadlines
    heartbeat_interval_s: float


class Message(_View):
    """One transcript message; ``seq`` counts from 1 within the session."""

    seq: int = Field(ge=1)
    role: Literal["user", "assistant", "system", "tool"]
    content: str
    ts: float
    metadata: dict[str, Any] | None = None
    reply_id: str | None = None
    """A streamed reply's message: the id its ``reply.delta`` frames carried."""
    partial: bool | None = None
    """A streamed reply cut short: ``true``, and ``content`` is what was streamed."""


class MessageList(_View):
    """``GET .../messages``."""

    messages: list[Message]


class EndResult(_View):
    """``POST .../end``: whether this call ended it, and the reason it ended with."""

    ended: bool
    reason: EndReason | None


class CleanupResult(_View):
    """``POST /api/v1/sessions/cleanup``: how many sessions this call ended."""

    ended: int = Field(ge=0)


# -- archives, demo, operations ----------------------------------------------------------


class ArchiveSummary(_View):
    """One archived dialog, without its messages."""

    archive_id: str
    session_id: str
    user: str
    kind: str
    started_at: float
    ended_at: float
    end_reason: EndReason
    duration_s: float
    message_count: int = Field(ge=0)
    recovered: bool


class ArchiveList(_View):
    """``GET /api/v1/users/{user}/archives``, newest first."""

    archives: list[ArchiveSummary]


class ArchivedDialog(ArchiveSummary):
    """One archived dialog with its config, notes and messages."""

    config: dict[str, Any]
    notes: list[str] | None = None
    messages: list[Message]


class DemoToken(_View):
    """A token for a throwaway ``demo-...`` user."""

    user: str
    token: str
    expires_in: float


class SessionCounts(_View):
    """Session counts for ``/health``."""

    active: int
    total_created: int
    total_ended: int
    oldest_age_s: float | None
    newest_age_s: float | None


class StoreHealth(_View):
    """The store behind the sessions."""

    kind: str
    status: Literal["ok", "unavailable"]
    fallback: bool = Field(
        description="Redis was unreachable at start-up; running on memory (TETHER_REDIS_FALLBACK)"
    )
    epoch: str | None = Field(
        None,
        description="shared store only: the start of the store's epoch as this node knows it "
        "(a new one after the store came back without its data)",
    )
    losses: int | None = Field(
        None, description="shared store only: times the store came back without its data"
    )
    lost_at: float | None = Field(
        None, description="shared store only: when this node last found so (Unix seconds)"
    )
    sessions_lost: int | None = Field(
        None,
        description="shared store only: sessions this node ended (error) because the store "
        "lost them",
    )


class Health(_View):
    """``GET /health``."""

    status: Literal["ok", "degraded", "draining"]
    sessions: SessionCounts | None = Field(description="null while the store does not answer")
    store: StoreHealth
    uptime_s: float


class Ready(_View):
    """``GET /ready`` while serving."""

    status: Literal["ready"]
