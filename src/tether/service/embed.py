"""tether inside your own FastAPI app, composed exactly like ``tether serve``.

:func:`mount` adds tether's routes to an app and wraps the app's lifespan: the
manager is built from the same settings (``TETHER_*``), with the same store,
journal, archive and Prometheus metrics, through the same code as
:func:`~tether.service.create_app` (:func:`~tether.service.app.serving`).

Shutdown order. uvicorn stops in this order: stop listening, close every
WebSocket with 1012 ("service restart", and clients reconnect), wait for the
connections to finish, and only then run the app's lifespan shutdown. A
lifespan that ends sessions there is too late for the clients: their sockets
are gone. ``tether serve`` runs its own server class that drains first
(:class:`~tether.service.server.TetherServer`); an embedding app runs under a
server it does not own. So, during the lifespan startup (which uvicorn runs
after it has installed its own ``SIGTERM``/``SIGINT`` handlers with
``signal.signal``), :class:`ShutdownHook` puts itself in front of those
handlers: on the first signal it drains the service (every session ends with
``server_shutdown``, each client gets ``session.ended`` then close 1001, the
archives are written), bounded by ``TETHER_SHUTDOWN_GRACE``, and only then
hands the signal to uvicorn's handler, which starts uvicorn's own shutdown. A
second signal goes to uvicorn at once.

This works where the server handles signals with ``signal.signal`` from the
main thread (``uvicorn module:app``, ``uvicorn.run``, ``uvicorn.Server.serve``,
uvicorn's ``--workers``). Elsewhere (a server that uses
``loop.add_signal_handler``, or serving in a thread) the hook stays out of the
way, and the lifespan shutdown still ends and archives every session, but after
the server closed the sockets: call :meth:`Embedded.drain` from that server's
own pre-shutdown hook to keep the order.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

from fastapi import FastAPI, WebSocket

from tether.runtime.manager import SessionManager
from tether.service.app import build_router, serving
from tether.service.fastpath import WebSocketFastPath
from tether.service.prometheus import PrometheusSink
from tether.service.settings import Settings, load_settings
from tether.service.state import Service
from tether.service.twilio.calls import Calls
from tether.service.ws import websocket_endpoint

log = logging.getLogger("tether.service")

SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""The signals uvicorn (and ``tether serve``) stop on."""

Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class Embedded:
    """What :func:`mount` put into an app: its settings, metrics and manager."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self._drained: asyncio.Future[None] | None = None

    @property
    def settings(self) -> Settings:
        """The settings tether runs with (``TETHER_*`` unless given to :func:`mount`)."""
        return self._service.settings

    @property
    def metrics(self) -> PrometheusSink:
        """The Prometheus sink the manager counts into (served at ``/metrics``)."""
        return self._service.metrics

    @property
    def calls(self) -> Calls:
        """The phone calls on ``/twilio/media``: ``calls.get(session_id)``, ``@calls.on_start``."""
        return self._service.calls

    @property
    def manager(self) -> SessionManager:
        """The session manager; it exists once the app has started (raises before)."""
        return self._service.manager

    async def drain(self) -> None:
        """End every session (``server_shutdown``, close 1001), then close idle sockets.

        Bounded by ``TETHER_SHUTDOWN_GRACE``. The signal hook calls this under
        uvicorn; call it yourself from another server's pre-shutdown hook.
        """
        if self._drained is None:
            grace = self._service.settings.shutdown_grace
            self._drained = asyncio.ensure_future(self._service.drain(grace))
        await asyncio.shield(self._drained)


def mount(
    app: FastAPI,
    settings: Settings | None = None,
    *,
    prefix: str = "",
    include_ops: bool = True,
) -> Embedded:
    """Serve tether from ``app``, as ``tether serve`` would, and return the handle.

    Adds the REST, SSE and WebSocket routes under ``prefix`` (with
    ``include_ops``: ``/health``, ``/ready``, ``/metrics`` and ``/dashboard``
    too), and wraps the app's lifespan so that tether's manager is open
    while the app's own lifespan runs: built from ``settings`` (default:
    the environment, read by :func:`~tether.service.load_settings`) with
    the store, journal, YAML archive and Prometheus metrics ``tether serve``
    uses. On the first ``SIGTERM``/``SIGINT`` every client gets
    ``session.ended {reason: "server_shutdown"}`` and close 1001 before the
    server closes its sockets (see the module docstring). Call it once, before
    the app starts; ``app.state.tether`` holds the handle too.

    Raises :class:`~tether.errors.ConfigError` naming the variable when a
    setting is invalid.
    """
    settings = settings if settings is not None else load_settings()
    settings.policy()  # an invalid value fails here, naming the variable
    svc = Service(settings, metrics=PrometheusSink())
    embedded = Embedded(svc)
    app.include_router(build_router(svc, include_ops=include_ops), prefix=prefix)

    async def ws(websocket: WebSocket) -> None:
        await websocket_endpoint(svc, websocket)

    app.add_middleware(WebSocketFastPath, path=f"{prefix}/ws", endpoint=ws)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with serving(svc):
            hook = ShutdownHook(embedded.drain)
            hook.install()
            try:
                async with inner(app_) as state:
                    yield state
            finally:
                hook.uninstall()
                await embedded.drain()  # a no-op if the hook already drained

    app.router.lifespan_context = lifespan
    app.state.tether = embedded
    return embedded


class ShutdownHook:
    """Runs ``drain`` on the first ``SIGTERM``/``SIGINT``, then passes the signal on.

    Installed in front of whatever handler the server put in place; see the
    module docstring for when it applies.
    """

    def __init__(self, drain: Callable[[], Awaitable[None]]) -> None:
        self._drain = drain
        self._previous: dict[int, Handler] = {}
        self._installed = False
        self._passed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def installed(self) -> bool:
        """Whether the hook stands in front of the server's handlers."""
        return self._installed

    def install(self) -> bool:
        """Put the hook in front of the current handlers; ``False`` where it does not apply."""
        if threading.current_thread() is not threading.main_thread():
            return False  # signal handlers belong to the main thread
        previous: dict[int, Handler] = {sig: signal.getsignal(sig) for sig in SIGNALS}
        if not all(_chainable(handler) for handler in previous.values()):
            log.debug("tether: the server handles signals itself; not hooking shutdown")
            return False
        self._loop = asyncio.get_running_loop()
        self._previous = previous
        for sig in SIGNALS:
            signal.signal(sig, self._handle)
        self._installed = True
        return True

    def uninstall(self) -> None:
        """Give the signals back to the handlers the hook stood in front of."""
        if not self._installed:
            return
        self._installed = False
        for sig, handler in self._previous.items():
            if signal.getsignal(sig) == self._handle:
                signal.signal(sig, handler)

    def _handle(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: only hand the work to the event loop. A second
        # signal, while draining, goes straight to the server (stop now).
        if self._task is not None or self._loop is None or self._loop.is_closed():
            self._pass_on(sig, frame)
            return
        self._loop.call_soon_threadsafe(self._begin, sig)

    def _begin(self, sig: int) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain_then_pass_on(sig))

    async def _drain_then_pass_on(self, sig: int) -> None:
        log.info("%s: ending every session, then stopping", signal.Signals(sig).name)
        try:
            await self._drain()
        except Exception:
            log.exception("draining failed; stopping anyway")
        finally:
            if not self._passed:  # unless a second signal already went on
                self._pass_on(sig, None)

    def _pass_on(self, sig: int, frame: FrameType | None) -> None:
        self._passed = True
        handler = self._previous.get(sig)
        self.uninstall()
        if callable(handler):
            handler(sig, frame)
        else:  # the default action, as if the hook had never been there
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)


def _chainable(handler: Handler) -> bool:
    """Whether the hook can stand in front of ``handler`` and call it afterwards.

    Not in front of ``tether serve`` (it drains itself), an ignored signal, an
    unknown (C-level) handler, or asyncio's ``add_signal_handler``, which acts
    through the loop's wakeup fd whatever Python handler is installed.
    """
    from tether.service.server import TetherServer  # uvicorn only when served

    if handler is signal.SIG_DFL:
        return True
    if handler is None or handler is signal.SIG_IGN or not callable(handler):
        return False
    if isinstance(getattr(handler, "__self__", None), TetherServer):
        return False
    return getattr(handler, "__name__", "") != "_sighandler_noop"
