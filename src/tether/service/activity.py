"""``SessionActivityMiddleware``: each authenticated HTTP request keeps its user's session.

For apps that talk to their users over plain HTTP only (no WebSocket, no
SSE, no heartbeats): every request from a signed-in user is a sign of
activity (and presence) of that user's session of one ``kind``. The first
request starts the session; the next ones reuse it (``get_or_start`` is
atomic per user, so concurrent first requests share one); after
``idle_timeout`` without a request it warns, then ends ``idle_timeout``
(see ``docs/lifecycle.md``, "HTTP-only apps")::

    app = FastAPI()
    tether = mount(app)
    app.add_middleware(SessionActivityMiddleware, manager=tether, user=current_user)

    @app.post("/chat")
    async def chat(request: Request) -> dict[str, str]:
        session_id = request_session(request)  # None: anonymous, or tether failed

Failure rule: tether never fails the app's own route. If the manager is not
running yet (or any more), the store does not answer, or ``user()`` returned
an id tether refuses, the request goes on without a session
(``request.state.tether_session = None``). The first such failure is logged
as a warning, repeats of the same failure are not, and the first request that
works again logs that tether recovered (with how many requests went without a
session). Errors raised by ``user()`` itself are the app's own and propagate
unchanged.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from tether.errors import SessionError, TetherError
from tether.runtime.manager import SessionManager
from tether.types import SessionId

log = logging.getLogger("tether.service")

STATE_KEY = "tether_session"
"""The ``request.state`` attribute the session id is put in."""

UserOf = Callable[[Request], str | Awaitable[str | None] | None]
"""Who made a request (a user id), or ``None`` to let it pass uncounted."""


def request_session(request: Request) -> SessionId | None:
    """The session :class:`SessionActivityMiddleware` counted ``request`` for, if any.

    ``None`` for a request it let pass (``user()`` returned ``None``) and
    for one it could not record (see the module docstring).
    """
    session_id: SessionId | None = getattr(request.state, STATE_KEY, None)
    return session_id


class ManagerHolder(Protocol):
    """Anything whose ``manager`` is the current manager (:class:`~tether.service.Embedded`)."""

    @property
    def manager(self) -> SessionManager: ...


class SessionActivityMiddleware:
    """Counts each authenticated HTTP request as activity of its user's session.

    ``manager`` is a :class:`~tether.runtime.SessionManager` or anything
    with a ``manager`` attribute, such as the :class:`~tether.service.Embedded`
    handle :func:`~tether.service.mount` returns; the latter is read on
    every request, so a manager built (or replaced) at start-up is the one
    used. ``user(request)`` (plain or ``async``) returns the caller's user
    id, or ``None`` for a request that must not count (anonymous, health
    checks, tether's own routes): those pass through untouched. It sees
    the request before the route does, so it should read headers or
    cookies, not the body.

    For a counted request: ``await manager.get_or_start(user, kind=kind)``,
    then ``await manager.activity(session_id)`` (which refreshes presence
    too), then the route runs with the session id in
    ``request.state.tether_session`` (read it with :func:`request_session`).
    Requests ``user()`` let pass get no such attribute. WebSocket and lifespan traffic pass
    through. See the module docstring for what happens when tether fails.
    """

    def __init__(
        self,
        app: ASGIApp,
        manager: SessionManager | ManagerHolder,
        *,
        user: UserOf,
        kind: str = "chat",
    ) -> None:
        self.app = app
        self._manager = manager
        self._user = user
        self._kind = kind
        self._failing: type[TetherError] | None = None
        self._missed = 0

    @property
    def manager(self) -> SessionManager:
        """The manager this request goes to (raises :class:`TetherError` before start-up)."""
        if isinstance(self._manager, SessionManager):
            return self._manager
        return self._manager.manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        user = self._user(request)
        if inspect.isawaitable(user):
            user = await user
        if user is not None:
            setattr(request.state, STATE_KEY, await self._session_of(user))
        await self.app(scope, receive, send)

    async def _session_of(self, user: str) -> SessionId | None:
        """The user's session, touched; ``None`` (logged once) when tether fails."""
        try:
            session_id = await self._touch(user)
        except TetherError as exc:
            self._failed(exc)
            return None
        if self._failing is not None:
            log.info(
                "session activity works again; %d request(s) went on without a session",
                self._missed,
            )
            self._failing = None
            self._missed = 0
        return session_id

    async def _touch(self, user: str) -> SessionId:
        manager = self.manager
        session = await manager.get_or_start(user, kind=self._kind)
        try:
            await manager.activity(session.id)
        except SessionError:
            # It ended (or vanished) between the two calls (an admin end, a
            # deadline due at that instant): this request starts the next one.
            session = await manager.get_or_start(user, kind=self._kind)
            await manager.activity(session.id)
        return session.id

    def _failed(self, exc: TetherError) -> None:
        """Log the first failure of a run of the same failure; count the rest."""
        self._missed += 1
        if type(exc) is self._failing:
            return
        self._failing = type(exc)
        # No user or session id here: the message names only what failed.
        log.warning(
            "session activity not recorded (%s: %s); requests go on without a session "
            "and this is logged again only when the failure changes or ends",
            type(exc).__name__,
            exc,
        )
