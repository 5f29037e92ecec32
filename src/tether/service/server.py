"""Running the service under uvicorn, with tether's shutdown order.

uvicorn's own shutdown closes every WebSocket with 1012 before the app's
lifespan ends, so clients would never see ``session.ended``. On the first
SIGTERM or SIGINT, :class:`TetherServer` first drains the service (end every
session with ``server_shutdown``, which sends ``session.ended``, archives,
and closes attached sockets with 1001; then close idle sockets with 1001),
bounded by ``TETHER_SHUTDOWN_GRACE``, and only then lets uvicorn stop. A
second signal skips the wait.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import resource
import signal
import socket
from types import FrameType

import uvicorn
from fastapi import FastAPI

from tether.service.admission import Admission
from tether.service.logs import install_redaction
from tether.service.noise import install_noise_filter
from tether.service.protocol import timed_protocol
from tether.service.settings import Settings
from tether.service.state import Service

log = logging.getLogger("tether.service")


def server_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    """uvicorn settings that match tether's limits.

    Frames over ``TETHER_MAX_MESSAGE_BYTES`` are refused by the protocol
    layer itself (close 1009) before they are buffered; per-message
    compression is off (it costs memory per connection and invites
    compression-ratio attacks on small JSON frames). HTTP is uvicorn's h11
    protocol with read timeouts and admission (:mod:`tether.service.protocol`),
    sharing the service's count of unauthenticated connections.
    """
    svc = getattr(app.state, "tether", None)
    admission = (
        svc.unauthenticated if isinstance(svc, Service) else Admission(settings.max_unauthenticated)
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_level=settings.log_level,
        ws_max_size=settings.max_message_bytes,
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace + 0.999)),
        server_header=False,
        proxy_headers=False,
        http=timed_protocol(
            admission,
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
        ),
    )
    install_redaction()
    service: Service | None = getattr(app.state, "tether", None)
    if service is not None:
        install_noise_filter(service.metrics.client_error)
    return config


GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Fewer, cheaper garbage collections for a process holding many connections.

    Each held connection is a few hundred long-lived objects, and CPython's
    default thresholds (700, 10, 10) walk all of them again and again while
    thousands connect: at 20k connections a full collection stops the loop
    for about half a second. Objects alive at start-up (modules, the app) are
    frozen out of collections for good; young collections run less often,
    and full ones only after many of them. The server process owns this
    setting, so it is set here and not by the library.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def raise_open_files_limit() -> None:
    """Lift the soft open-files limit to the hard one: every held socket is a descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit from %d: %s", soft, exc)


class TetherServer(uvicorn.Server):
    """uvicorn that drains tether before it closes connections."""

    def __init__(self, config: uvicorn.Config, service: Service, *, grace: float) -> None:
        super().__init__(config)
        self.service = service
        self.grace = grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None
        self._signalled = False

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        tune_gc()
        raise_open_files_limit()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Called from a signal handler: only hand the work to the event loop.
        if self._signalled or self._loop is None or self.should_exit:
            super().handle_exit(sig, frame)  # a second signal: stop without waiting
            return
        self._signalled = True
        self._loop.call_soon_threadsafe(self._begin_drain, sig)

    def _begin_drain(self, sig: int) -> None:
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self._drain_then_exit(sig))

    async def _drain_then_exit(self, sig: int) -> None:
        log.info("%s: ending every session, then stopping", signal.Signals(sig).name)
        try:
            await self.service.drain(self.grace)
        except Exception:
            log.exception("draining failed; stopping anyway")
        finally:
            uvicorn.Server.handle_exit(self, sig, None)


def run(app: FastAPI, settings: Settings) -> None:
    """Serve ``app`` (made by :func:`~tether.service.create_app`) until a signal."""
    service: Service = app.state.tether
    server = TetherServer(server_config(app, settings), service, grace=settings.shutdown_grace)
    server.run()
