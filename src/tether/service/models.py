"""The service's wire shapes: REST request bodies in, the session's JSON view out.

:func:`session_view` is the one place a session becomes JSON for a client:
REST answers, the WebSocket's ``session.started`` and ``session.resumed``,
and (through :func:`admin_view` and :func:`presence_view`, which narrow it)
the admin feed and the heartbeat and activity answers.

Bodies are pydantic models, so malformed input is a 422 with details before
any handler runs. Free-form objects (config, metadata) are checked here by
the same rule the Python API applies (plain JSON, finite numbers, bounded
depth and size), so what a client is refused is refused before any handler.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from tether.core.jsonvalue import check_json_object
from tether.core.session import SessionInfo
from tether.errors import InvalidInput
from tether.service.durations import Duration

SESSION_ID_PATTERN = r"^[0-9a-f]{32}$"
ARCHIVE_ID_PATTERN = r"^[0-9]{4}(?:-[0-9]{2}){5}-[0-9a-f]{12}$"
USER_ID_PATTERN = (
    r"^(?:[A-Za-z0-9_@-][A-Za-z0-9_.@-]{0,127}"
    r"|\.[A-Za-z0-9_@-][A-Za-z0-9_.@-]{0,126}"
    r"|\.\.[A-Za-z0-9_.@-]{1,126})$"
)
"""A user id: 1-128 of ``A-Z a-z 0-9 _ . @ -``, never ``.`` or ``..``.

Written without lookahead so that any JSON Schema tool can use it. It only
documents: :func:`~tether.core.ids.validate_user_id` is the check.
"""


def _storable(value: Any) -> Any:
    try:
        check_json_object(value, "object")
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_storable)]
"""A JSON object tether can store and archive: finite numbers, within the depth and size
limits of :func:`tether.core.jsonvalue.check_json_object` (the Python API's own check)."""

Kind = Annotated[str, Field(min_length=1, max_length=64, description="what the session is")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartBody(_Body):
    """``POST /api/v1/sessions``."""

    kind: Kind = "chat"
    config: JsonObject | None = None
    user: str | None = Field(
        default=None,
        description="admin only: start a session for this user",
        json_schema_extra={"pattern": USER_ID_PATTERN},
    )


class MessageBody(_Body):
    """``POST /api/v1/sessions/{id}/messages``."""

    role: Literal["user", "assistant", "system", "tool"]
    content: str
    metadata: JsonObject | None = None


class ConfigBody(_Body):
    """``PUT /api/v1/sessions/{id}/config``: the whole new config."""

    config: JsonObject


class CleanupBody(_Body):
    """``POST /api/v1/sessions/cleanup`` (seed 003's strategies)."""

    type: Literal["all", "inactive", "specific"]
    inactive_for: Duration | None = Field(
        default=None, description="for inactive: no activity for this long (default 1h)"
    )
    session_ids: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, max_length=1000, description="for specific: the sessions to end"
    )
    user: str | None = Field(
        default=None,
        description="admin only: limit to this user's sessions",
        json_schema_extra={"pattern": USER_ID_PATTERN},
    )


def deadlines(info: SessionInfo) -> dict[str, float | None]:
    """When each of the session's three clocks runs out, as the core computed it."""
    clocks = info.deadlines()
    return {"idle_at": clocks.idle_at, "max_at": clocks.max_at, "presence_at": clocks.presence_at}


def session_view(info: SessionInfo, *, archive_id: str | None = None) -> dict[str, Any]:
    """A session as REST, WebSocket and SSE clients see it.

    ``archive_id`` is given for an ended session read back from its archive.
    """
    out = info.to_dict()
    policy = info.policy
    out["deadlines"] = None if info.ended_at is not None else deadlines(info)
    out["policy"] = {
        "idle_timeout": policy.idle_timeout,
        "warn_before": policy.warn_before,
        "max_duration": policy.max_duration,
        "presence_timeout": policy.presence_timeout,
    }
    if archive_id is not None:
        out["archive_id"] = archive_id
    return out


def admin_view(info: SessionInfo) -> dict[str, Any]:
    """A session as the admin feed shows it: :func:`session_view` without config and policy."""
    view = session_view(info)
    del view["config"], view["policy"]
    return view


PRESENCE_FIELDS = ("id", "state", "warning", "next_deadline")
"""What a heartbeat or activity answer repeats from :func:`session_view`."""


def presence_view(info: SessionInfo, heartbeat_interval: float) -> dict[str, Any]:
    """What a heartbeat or activity call answers: where the session stands."""
    view = session_view(info)
    return {
        **{name: view[name] for name in PRESENCE_FIELDS},
        "deadlines": deadlines(info),
        "heartbeat_interval_s": heartbeat_interval,
    }
