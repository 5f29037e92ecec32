"""FastAPI dependencies and parameters: the caller, session ids and user ids.

The caller comes from ``Authorization: Bearer ...`` or (event stream only)
``?token=``; authenticating also counts the request against the caller's
rate. The parameter types document the shape of ids in OpenAPI without
validating it there: a malformed session id must answer 404 like an
unknown one, and a malformed user id the route's own clear error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Security
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from tether.errors import Unauthorized
from tether.service.auth import Principal
from tether.service.errors import route_class
from tether.service.models import ARCHIVE_ID_PATTERN, SESSION_ID_PATTERN, USER_ID_PATTERN
from tether.service.state import Service

MAX_TOKEN_CHARS = 8192

SessionIdPath = Annotated[
    str,
    Path(
        description="the session's id: 32 hex digits",
        json_schema_extra={"pattern": SESSION_ID_PATTERN},
    ),
]
UserPath = Annotated[
    str, Path(description="a user id", json_schema_extra={"pattern": USER_ID_PATTERN})
]
ArchiveIdPath = Annotated[
    str,
    Path(
        description="an archive id: YYYY-MM-DD-HH-MM-SS-<12 hex>",
        json_schema_extra={"pattern": ARCHIVE_ID_PATTERN},
    ),
]
UserQuery = Annotated[
    str | None,
    Query(
        max_length=128,
        description="admins only (or your own id): this user's sessions",
        json_schema_extra={"pattern": USER_ID_PATTERN},
    ),
]

_BEARER = HTTPBearer(
    auto_error=False,
    description="A token minted by `tether token USER` (or TETHER_ADMIN_TOKEN for admin calls).",
)
_TOKEN_QUERY = APIKeyQuery(
    name="token",
    scheme_name="TokenQuery",
    auto_error=False,
    description="The bearer token in the query, for EventSource (which cannot set headers).",
)

READ_METHODS = frozenset({"GET", "HEAD"})
CallerDependency = Callable[..., Awaitable[Principal]]


def caller_dependency(svc: Service) -> CallerDependency:
    """A dependency that authenticates ``Authorization: Bearer ...`` (and counts the request).

    An observe-only token may only read: any other method answers 403
    ``observe_only`` before the route runs.
    """

    async def caller(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
    ) -> Principal:
        principal = svc.authenticate(credentials.credentials if credentials else None)
        if request.method not in READ_METHODS:
            principal.require_participant()
        return principal

    return caller


def stream_caller_dependency(svc: Service) -> CallerDependency:
    """Like :func:`caller_dependency`, also accepting ``?token=``.

    A browser's ``EventSource`` cannot set headers, so the event stream takes
    the token in the query. The service's access logs redact it.
    """

    async def caller(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
        token: Annotated[str | None, Security(_TOKEN_QUERY)] = None,
    ) -> Principal:
        given = credentials.credentials if credentials else token
        if given is not None and len(given) > MAX_TOKEN_CHARS:
            raise Unauthorized("invalid or expired token")
        return svc.authenticate(given)

    return caller


def api_router(svc: Service, tag: str, prefix: str = "/api/v1") -> APIRouter:
    """A router of ``svc``'s API: its errors answered by the edge, its bodies capped."""
    return APIRouter(
        prefix=prefix, tags=[tag], route_class=route_class(svc.settings.max_message_bytes)
    )
