"""WebSocket client frames: one pydantic model per ``type``, and the parser.

:func:`parse_frame` never raises anything but :class:`FrameError`, whose
``code`` goes back to the client in an ``error`` frame; the connection stays.
Unknown fields are ignored so newer clients can talk to older servers.
Frames are parsed with :func:`tether.core.jsonvalue.loads`: strict JSON, at
most ``MAX_PARSE_DEPTH`` (64) levels deep, so a hostile frame is a
``bad_json`` error, never a parser's recursion error.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from tether.core.jsonvalue import loads
from tether.errors import BadJson, FrameError
from tether.service.models import JsonObject, Kind

PROTOCOL_VERSION = 1


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Hello(_Frame):
    """First frame: who the client is and which protocol it speaks."""

    type: Literal["hello"]
    token: str = Field(default="", max_length=8192)
    v: int = PROTOCOL_VERSION


class Start(_Frame):
    """Start a new session and attach to it."""

    type: Literal["start"]
    kind: Kind = "chat"
    config: JsonObject | None = None


class Resume(_Frame):
    """Reattach to one of the caller's live sessions (a reload, a network blip)."""

    type: Literal["resume"]
    session_id: str = Field(max_length=64)
    after: int | None = Field(default=None, ge=0, description="replay messages after this seq")


class Observe(_Frame):
    """Attach to a session (``session_id``) or wait for the caller's next one (``user``)."""

    type: Literal["observe"]
    session_id: str | None = Field(default=None, max_length=64)
    user: str | None = Field(default=None, max_length=128)
    wait_s: float = Field(30.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _one_target(self) -> Observe:
        if (self.session_id is None) == (self.user is None):
            raise ValueError("observe takes either session_id or user")
        return self


class Activity(_Frame):
    """User activity: refreshes the idle clock, clears an idle warning."""

    type: Literal["activity"]


class Ping(_Frame):
    """Heartbeat: proves presence, answered with ``pong``."""

    type: Literal["ping"]


class Message(_Frame):
    """Append to the transcript."""

    type: Literal["message"]
    role: Literal["user", "assistant", "system", "tool"]
    content: str
    metadata: JsonObject | None = None


class Config(_Frame):
    """Replace the session's config (every attached connection gets it)."""

    type: Literal["config"]
    config: JsonObject


class End(_Frame):
    """End the session (``client_ended``)."""

    type: Literal["end"]


ClientFrame = Annotated[
    Hello | Start | Resume | Observe | Activity | Ping | Message | Config | End,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)
FRAME_TYPES = frozenset(
    ("hello", "start", "resume", "observe", "activity", "ping", "message", "config", "end")
)


def parse_frame(text: str) -> ClientFrame:
    """Decode and validate one text frame, or raise :class:`FrameError`."""
    try:
        data = loads(text)
    except BadJson as exc:
        raise FrameError("bad_json", f"frames must be JSON objects: {exc}"[:200]) from None
    if not isinstance(data, dict):
        raise FrameError("bad_json", "frames must be JSON objects")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in FRAME_TYPES:
        raise FrameError("unknown_type", f"unknown frame type {kind!r}"[:200])
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or kind
        message = str(first["msg"]).removeprefix("Value error, ")
        raise FrameError("invalid_frame", f"{kind}: {where}: {message}"[:300]) from None
