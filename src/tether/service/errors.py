"""Errors at the edge: every exception becomes one status, one code, one message.

This is the only place :mod:`tether.errors` is translated for clients. REST
answers ``{"error": {"code", "message"}}`` with the status of
:func:`problem_for`; the WebSocket endpoint sends the same ``code`` and
``message`` in an ``error`` frame. Anything unexpected is logged and becomes
a 500 that says nothing about the internals.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from tether.core.jsonvalue import loads, may_nest_deeper
from tether.errors import (
    ArchiveError,
    ArchiveNotFound,
    BadJson,
    ConfigError,
    Forbidden,
    FrameError,
    InvalidInput,
    MessageTooLarge,
    ReplyClosed,
    SessionEnded,
    SessionNotFound,
    StoreUnavailable,
    TetherError,
    Throttled,
    TooLarge,
    TooManyTasks,
    TranscriptFull,
    Unauthorized,
)

log = logging.getLogger("tether.service")

_BY_STATUS = {
    400: "invalid_input",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    410: "session_ended",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}

STORE_RETRY_AFTER_S = 1
"""What a 503 for an unavailable store tells clients to wait before retrying."""

# Most specific first: the first isinstance match wins.
_TETHER_ERRORS: tuple[tuple[type[TetherError], int, str], ...] = (
    (Unauthorized, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (SessionNotFound, 404, "not_found"),
    (ArchiveNotFound, 404, "not_found"),
    (SessionEnded, 410, "session_ended"),
    (TooManyTasks, 429, "too_many_tasks"),
    (ReplyClosed, 409, "reply_closed"),
    (TooLarge, 413, "too_large"),
    (MessageTooLarge, 413, "too_large"),
    (TranscriptFull, 413, "transcript_full"),
    (Throttled, 429, "rate_limited"),
    (InvalidInput, 400, "invalid_input"),
    (FrameError, 400, "invalid_frame"),
    (ConfigError, 400, "invalid_input"),
    (StoreUnavailable, 503, "store_unavailable"),
    (ArchiveError, 503, "archive_unavailable"),
    (TetherError, 503, "unavailable"),
)


@dataclass(frozen=True, slots=True)
class Problem:
    """What a client is told about a failure."""

    status: int
    code: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The JSON error object (also the payload of a WebSocket ``error`` frame)."""
        return {"code": self.code, "message": self.message, **self.extra}

    def response(self) -> JSONResponse:
        """The HTTP answer."""
        return JSONResponse({"error": self.body()}, status_code=self.status, headers=self.headers)


def problem_for(exc: BaseException, *, log_unexpected: bool = True) -> Problem:
    """Translate ``exc``; unexpected exceptions are logged and become a bare 500.

    A client hanging up mid-body is no server fault: it is logged at debug
    level only (the answer goes nowhere). ``log_unexpected=False`` leaves
    the logging of a bug to the caller (a connection logs its first one).
    """
    if isinstance(exc, ClientDisconnect):
        log.debug("client disconnected before its request was read")
        return Problem(400, "client_disconnected", "the client went away")
    if isinstance(exc, TetherError):
        for kind, status, code in _TETHER_ERRORS:
            if isinstance(exc, kind):
                return _tether_problem(exc, status, code)
    if isinstance(exc, RequestValidationError):
        details = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        return Problem(422, "invalid_request", "the request did not validate", {"details": details})
    if isinstance(exc, StarletteHTTPException):
        code = _BY_STATUS.get(exc.status_code, "http_error")
        # Keep the exception's headers: a 405 must say which methods are Allowed.
        return Problem(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))
    if log_unexpected:
        log.error("unhandled error", exc_info=exc)
    return Problem(500, "internal", "internal error")


def _tether_problem(exc: TetherError, status: int, code: str) -> Problem:
    message = str(exc) or code
    if isinstance(exc, SessionEnded):
        return Problem(status, code, message, {"reason": exc.reason.value})
    if isinstance(exc, Throttled):
        return Problem(
            status,
            code,
            message,
            {"retry_after_s": round(exc.retry_after_s, 3)},
            {"Retry-After": exc.retry_after_header},
        )
    if isinstance(exc, TranscriptFull):
        # Nothing was stored; the session goes on and can still be ended.
        return Problem(status, code, message, {"limit": exc.limit})
    if isinstance(exc, StoreUnavailable):
        # Nothing changed; the store is usually back within seconds (a restart, a failover).
        return Problem(
            status,
            code,
            "the session store is unavailable; nothing was changed, retry shortly",
            {"retry_after_s": STORE_RETRY_AFTER_S},
            {"Retry-After": str(STORE_RETRY_AFTER_S)},
        )
    if isinstance(exc, Unauthorized):
        return Problem(status, code, message, headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, FrameError):
        return Problem(status, exc.code, exc.message)
    if isinstance(exc, Forbidden):
        return Problem(status, exc.code, message)
    return Problem(status, code, message)


async def _read_bounded(request: Request, limit: int) -> Request:
    """``request`` with its body read (at most ``limit`` bytes) and replayable.

    Reading here, before FastAPI parses anything, means an oversized body is
    refused with 413 before it is buffered, whatever the route.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"request body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"request body over {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if may_nest_deeper(body) and _parsed_as_json(request.headers.get("content-type")):
        _check_json_depth(body)
    original = request.receive
    replayed = False

    async def receive() -> Any:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await original()

    return Request(request.scope, receive)


def _parsed_as_json(content_type: str | None) -> bool:
    """Whether FastAPI will parse a body of this type as JSON (it does when there is no type)."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _check_json_depth(body: bytes) -> None:
    """Refuse (422) a JSON body nested deeper than any request needs, before FastAPI parses it.

    FastAPI's own parse would hit the recursion limit and answer a vague 400;
    only bodies with more brackets than the limit get here, so ordinary
    bodies are parsed once.
    """
    try:
        loads(body)
    except BadJson as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": str(exc), "input": None}]
        ) from None


def route_class(max_body: int) -> type[APIRoute]:
    """An ``APIRoute`` that limits bodies and answers every error in tether's shape.

    It lives on the routes themselves (not in app middleware or handlers) so
    :func:`tether.service.router` keeps its contract when mounted in someone
    else's FastAPI app.
    """

    class TetherRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                try:
                    return await handler(await _read_bounded(request, max_body))
                except Exception as exc:
                    return problem_for(exc).response()

            return guarded

    return TetherRoute


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(app: FastAPI, request: Request) -> str:
    """Every method some route of ``app`` takes at the request's path."""
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in app.router.routes
        )
    )


def install_handlers(app: FastAPI) -> None:
    """Give the whole app (unknown paths, wrong methods, crashes) the same error shape."""

    async def handle(request: Request, exc: Exception) -> Response:
        problem = problem_for(exc)
        if problem.status == 405:
            # Starlette names only the first route that matched the path; a
            # client needs every method the path takes.
            problem.headers["Allow"] = _allowed_methods(app, request)
        return problem.response()

    app.add_exception_handler(StarletteHTTPException, handle)
    app.add_exception_handler(RequestValidationError, handle)
    app.add_exception_handler(TetherError, handle)
    app.add_exception_handler(Exception, handle)
