"""What each route answers, for OpenAPI: its success model and its error statuses.

Routes return plain dicts and declare ``response_model=None``, so nothing is
validated or filtered twice on the hot path; the models (here the error
body, in :mod:`tether.service.schemas` the success bodies) only document.
The schemathesis suite checks that what the server really sends matches.

:func:`answers` builds a route's ``status_code``, ``response_model`` and
``responses`` in one go, from its success model and the error statuses it
can produce (each documented as :class:`ErrorBody`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tether.types import EndReason


class _View(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- errors ------------------------------------------------------------------------------


class ErrorDetail(_View):
    """What went wrong; ``code`` is for programs, ``message`` for people."""

    code: str = Field(description="machine-readable, e.g. not_found, session_ended")
    message: str
    reason: EndReason | None = Field(None, description="410 only: why the session ended")
    retry_after_s: float | None = Field(None, description="429 only: wait this long")
    details: list[dict[str, Any]] | None = Field(
        None, description="422 only: each problem as {loc, msg}"
    )


class ErrorBody(_View):
    """Every error: ``{"error": {"code", "message", ...}}``."""

    error: ErrorDetail


_ERRORS: dict[int, str] = {
    400: "A value the rules refuse (`invalid_input`).",
    401: "No token, or a malformed, expired or forged one (`unauthorized`).",
    403: "Admin only (`forbidden`).",
    404: "Unknown session or archive, or someone else's (`not_found`).",
    410: "The session has ended (`session_ended`; `reason` says why).",
    413: "The body is over TETHER_MAX_MESSAGE_BYTES (`too_large`).",
    422: "The body or a parameter does not validate (`invalid_request`).",
    429: "Over the user's request rate or connection limit (`rate_limited`).",
    503: "The store or disk cannot be reached, or the server is starting or stopping.",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    429: {
        "Retry-After": {
            "description": "seconds to wait before trying again",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
}
AUTHENTICATED = (401, 422, 429, 503)
"""What every authenticated route can answer, whatever it does."""


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        entry: dict[str, Any] = {"model": ErrorBody, "description": _ERRORS[status]}
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        out[status] = entry
    return out


def answers(
    model: type[BaseModel] | None,
    description: str,
    *errors: int,
    status: int = 200,
    authenticated: bool = True,
) -> dict[str, Any]:
    """Route keyword arguments: ``model`` on ``status``, :class:`ErrorBody` on ``errors``."""
    success: dict[str, Any] = {"description": description}
    if model is not None:
        success["model"] = model
    extra = AUTHENTICATED if authenticated else ()
    return {
        "status_code": status,
        "response_model": None,
        "responses": {status: success, **error_responses(*errors, *extra)},
    }


SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "description": "One Server-Sent Event (OpenAPI 3.1 describes each event of a stream).",
    "required": ["data"],
    "properties": {
        "id": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "the transcript position reached (the highest message seq sent)",
        },
        "event": {"type": "string", "description": "never sent: every event is a `message`"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"type": "string"}},
            },
            "description": "one event object, `{type, ...}`, as on the WebSocket",
        },
        "retry": {"type": "integer", "minimum": 0},
    },
}
"""The OpenAPI schema of one event on ``GET .../events``."""
