"""Events a session sends to everyone attached, and the close code of each end reason.

Events are transport-neutral; ``to_wire()`` gives the ``type``-tagged JSON object
that the WebSocket and SSE edges send.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from tether.core.session import SessionInfo
from tether.core.transcript import Message
from tether.types import EndReason

CLOSE_CODES: dict[EndReason, int] = {
    EndReason.CLIENT_ENDED: 1000,
    # Nobody is attached when presence runs out; a latecomer gets a normal close.
    EndReason.CLIENT_GONE: 1000,
    EndReason.SERVER_SHUTDOWN: 1001,
    EndReason.ERROR: 1011,
    EndReason.IDLE_TIMEOUT: 4001,
    EndReason.MAX_DURATION: 4002,
    EndReason.REPLACED: 4003,
    EndReason.ADMIN: 4004,
}
"""WebSocket close code for each end reason (PROTOCOL: reconnect after 1001/1011 only)."""


def close_code(reason: EndReason) -> int:
    """The WebSocket close code that announces ``reason``."""
    return CLOSE_CODES[reason]


@dataclass(frozen=True, slots=True)
class SessionStarted:
    """A session began."""

    type: ClassVar[str] = "session.started"
    session: SessionInfo

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "session": self.session.to_dict()}


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """The session's config, sent on attach and on every change."""

    type: ClassVar[str] = "session.config"
    config: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "config": self.config}


@dataclass(frozen=True, slots=True)
class SessionWarning:
    """The session will end at ``ends_at`` (``seconds_left`` from when it was sent)."""

    type: ClassVar[str] = "session.warning"
    reason: EndReason
    seconds_left: float
    ends_at: float

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "reason": self.reason.value,
            "seconds_left": self.seconds_left,
            "ends_at": self.ends_at,
        }


@dataclass(frozen=True, slots=True)
class SessionActive:
    """A warning was cleared by activity."""

    type: ClassVar[str] = "session.active"

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type}


@dataclass(frozen=True, slots=True)
class SessionEndedEvent:
    """The session ended; a close with ``close_code(reason)`` follows."""

    type: ClassVar[str] = "session.ended"
    reason: EndReason
    archive_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "reason": self.reason.value}
        if self.archive_id is not None:
            out["archive_id"] = self.archive_id
        return out


@dataclass(frozen=True, slots=True)
class TranscriptAppended:
    """A message was durably appended to the transcript."""

    type: ClassVar[str] = "transcript.message"
    message: Message

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message.to_dict()}


@dataclass(frozen=True, slots=True)
class ReplyDelta:
    """A piece of a streamed reply (consecutive pieces may come merged in one event)."""

    type: ClassVar[str] = "reply.delta"
    reply_id: str
    role: str
    text: str

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "reply_id": self.reply_id, "role": self.role, "text": self.text}


@dataclass(frozen=True, slots=True)
class AppEvent:
    """Whatever the server-side application sends to a session's connections."""

    type: ClassVar[str] = "app"
    name: str
    data: Any

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "data": self.data}


Event = (
    SessionStarted
    | SessionConfig
    | SessionWarning
    | SessionActive
    | SessionEndedEvent
    | TranscriptAppended
    | ReplyDelta
    | AppEvent
)
