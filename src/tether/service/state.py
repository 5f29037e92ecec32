"""``Service``: what every route shares (settings, tokens, limits, the manager).

One ``Service`` backs one router. It may be created before its manager
exists (``create_app`` builds the manager in the lifespan) and is bound to
it once it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from tether.core.ids import validate_session_id, validate_user_id
from tether.core.session import SessionInfo
from tether.core.transcript import Message
from tether.errors import Forbidden, InvalidInput, SessionNotFound, TetherError
from tether.runtime.manager import SessionManager
from tether.service.admin_feed import AdminFeed
from tether.service.admission import Admission
from tether.service.auth import Principal, TokenAuthority
from tether.service.limits import ConnectionLimiter, RateLimiter
from tether.service.prometheus import PrometheusSink
from tether.service.settings import Settings
from tether.service.twilio.calls import Calls
from tether.service.watch import SessionWatch
from tether.transports.websocket import WebSocketChannel
from tether.types import EndReason, SessionId, UserId

log = logging.getLogger("tether.service")

ADMIN_KEY = "\0admin"
"""Limit key for the static admin token, which has no user id."""

OnBind = Callable[[SessionManager], object]
"""Called with the manager once it is bound."""


class Service:
    """Shared state of one tether router."""

    def __init__(
        self,
        settings: Settings,
        *,
        manager: SessionManager | None = None,
        metrics: PrometheusSink | None = None,
    ) -> None:
        self.settings = settings
        admin = settings.admin_token.get_secret_value() if settings.admin_token else None
        self.tokens = TokenAuthority(settings.signing_secret(), admin_token=admin)
        self.metrics = metrics if metrics is not None else PrometheusSink()
        self.connections = ConnectionLimiter(settings.max_connections_per_user)
        self.unauthenticated = Admission(settings.max_unauthenticated)
        """Connections not yet past their headers or ``hello`` (``TETHER_MAX_UNAUTHENTICATED``)."""
        self.requests = RateLimiter(settings.max_requests_per_minute, settings.request_burst)
        self.watch = SessionWatch()
        self.websockets: set[WebSocketChannel] = set()
        self.sse_streams = 0
        self.started_at = time.monotonic()
        self.draining = False
        self.store_fallback = False
        """Redis did not answer at start-up and ``TETHER_REDIS_FALLBACK=memory`` was set."""
        self.admin_feed = AdminFeed(self.spawn)
        self._on_bind: list[OnBind] = []
        self.calls = Calls()
        """The phone calls (``/twilio/media`` streams) this service holds, by session."""
        self._manager: SessionManager | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        if manager is not None:
            self.bind(manager)

    # -- the manager ------------------------------------------------------------------

    def bind(self, manager: SessionManager) -> None:
        """Serve ``manager`` from now on."""
        self._manager = manager
        self.watch.bind(manager)
        self.admin_feed.bind(manager)
        self.calls.bind(manager)
        for callback in self._on_bind:
            callback(manager)

    def when_bound(self, callback: OnBind) -> None:
        """Call ``callback(manager)`` with the bound manager (now, and on every later bind)."""
        self._on_bind.append(callback)
        if self._manager is not None:
            callback(self._manager)

    @property
    def manager(self) -> SessionManager:
        """The bound manager; a 503 until the app has started."""
        if self._manager is None:
            raise TetherError("the service is starting")
        return self._manager

    @property
    def bound(self) -> bool:
        """Whether a manager is bound."""
        return self._manager is not None

    # -- callers and their sessions ------------------------------------------------------

    def limit_key(self, caller: Principal) -> str:
        """What a caller's connections and requests are counted under."""
        return caller.user if caller.user is not None else ADMIN_KEY

    def authenticate(self, token: str | None) -> Principal:
        """The caller of a REST request, counted against their request rate.

        Raises :class:`~tether.service.auth.Unauthorized` for a bad token and
        :class:`~tether.service.limits.Throttled` (429) past
        ``TETHER_MAX_REQUESTS_PER_MINUTE``; either way before the request
        has done anything.
        """
        caller = self.tokens.verify(token)
        self.requests.take(self.limit_key(caller))
        return caller

    def owner_for_start(self, caller: Principal, user: str | None) -> UserId:
        """The user a new session belongs to; only admins may name someone else."""
        if user is not None and user != caller.user:
            caller.require_admin()
            return validate_user_id(user)
        if caller.user is None:
            raise InvalidInput("the admin token owns no sessions: name a user")
        return caller.user

    def user_scope(self, caller: Principal, user: str | None) -> UserId | None:
        """Whose sessions a listing or cleanup covers (``None``: everyone's, admins only)."""
        if caller.admin:
            if user is None:
                return None
            return validate_user_id(user)
        if user is not None and user != caller.user:
            raise Forbidden("admin only: other users' sessions")
        assert caller.user is not None  # only the admin token lacks a user
        return caller.user

    async def owned(self, caller: Principal, session_id: str) -> SessionInfo:
        """The caller's session (any, for admins).

        A malformed id, an unknown one and someone else's all answer the same
        :class:`SessionNotFound`, so ids cannot be probed.
        """
        try:
            sid = validate_session_id(session_id)
        except InvalidInput:
            raise SessionNotFound() from None
        info = await self.manager.get(sid)
        if not caller.admin and info.user != caller.user:
            raise SessionNotFound()
        return info

    def end_reason(self, caller: Principal, info: SessionInfo) -> EndReason:
        """``client_ended`` for the owner, ``admin`` when an admin ends someone's session."""
        return EndReason.CLIENT_ENDED if caller.user == info.user else EndReason.ADMIN

    # -- what the edges do to sessions -----------------------------------------------------

    async def append(
        self,
        caller: Principal,
        session_id: SessionId,
        role: str,
        content: str,
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """Append a client's message (REST or WebSocket).

        A user's token appends only ``role: user`` (``forbidden_role``
        otherwise, nothing stored): a transcript later fed to a model must
        not be forgeable by its client. The admin token may append any role.
        The manager's ``on_message`` hooks hear the user's messages.
        """
        caller.check_role(role)
        return await self.manager.append(session_id, role, content, metadata)

    # -- background work and shutdown ----------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` in the background, holding a reference and logging failures."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("background task failed: %r", exc)

    async def detach_later(self, session_id: SessionId, channel: Any) -> None:
        """Detach ``channel``, tolerating a session that is already gone."""
        with contextlib.suppress(TetherError):
            await self.manager.detach(session_id, channel)

    async def drain(self, grace: float) -> None:
        """Shut down in the order clients need: end every session, then close the rest.

        New connections are refused from here on. Sessions end with
        ``server_shutdown`` (attached clients get ``session.ended`` and close
        1001); connections attached to nothing are closed 1001 too. Bounded
        by ``grace`` seconds.
        """
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if self._manager is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._manager.aclose()), grace)
            except TimeoutError:
                log.warning("sessions did not all end within %.1fs of shutdown", grace)
        self.admin_feed.close()  # after the ends, so that dashboards saw them
        leftover = [ch.close(1001, EndReason.SERVER_SHUTDOWN.value) for ch in list(self.websockets)]
        if leftover:
            remaining = max(0.1, deadline - loop.time())
            try:
                await asyncio.wait_for(asyncio.gather(*leftover), remaining)
            except TimeoutError:
                log.warning("some connections did not close within the shutdown grace")
