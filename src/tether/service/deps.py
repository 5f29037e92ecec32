"""FastAPI dependencies: the authenticated caller, from a header or (SSE only) the query."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Query, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tether.service.auth import Principal
from tether.service.state import Service

_BEARER = HTTPBearer(
    auto_error=False,
    description="A token minted by `tether token USER` (or TETHER_ADMIN_TOKEN for admin calls).",
)

CallerDependency = Callable[..., Awaitable[Principal]]


def caller_dependency(svc: Service) -> CallerDependency:
    """A dependency that authenticates ``Authorization: Bearer ...``."""

    async def caller(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
    ) -> Principal:
        return svc.tokens.verify(credentials.credentials if credentials else None)

    return caller


def stream_caller_dependency(svc: Service) -> CallerDependency:
    """Like :func:`caller_dependency`, also accepting ``?token=``.

    A browser's ``EventSource`` cannot set headers, so the event stream takes
    the token in the query. The service's access logs redact it.
    """

    async def caller(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
        token: Annotated[
            str | None, Query(max_length=8192, description="bearer token, for EventSource")
        ] = None,
    ) -> Principal:
        given = credentials.credentials if credentials else token
        return svc.tokens.verify(given)

    return caller
