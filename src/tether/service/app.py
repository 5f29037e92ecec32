"""The composition root: :func:`create_app` for ``tether serve``, :func:`router` to embed.

``create_app`` builds the store, the archive and the manager from settings
in the app's lifespan and closes them at shutdown. ``router`` serves a
manager the caller already owns, inside the caller's own FastAPI app.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, FastAPI, WebSocket

import tether
from tether.archive.base import Archiver
from tether.archive.journal import FileJournal
from tether.archive.yaml_archive import YamlArchive
from tether.core.caps import TranscriptCap
from tether.errors import ConfigError, StoreUnavailable, TetherError
from tether.runtime.manager import SessionManager
from tether.service import admin, apidocs, archives, events, ops, pages, rest
from tether.service.errors import install_handlers
from tether.service.fastpath import WebSocketFastPath
from tether.service.llm import start_responder
from tether.service.prometheus import PrometheusSink
from tether.service.seams import held_archive
from tether.service.settings import Settings, load_settings
from tether.service.state import Service
from tether.service.twilio.bridge import twilio_endpoint
from tether.service.ws import websocket_endpoint
from tether.store.base import SessionStore
from tether.store.memory import MemoryStore

log = logging.getLogger("tether.service")


def build_router(svc: Service, *, include_ops: bool) -> APIRouter:
    """Every route of ``svc``: REST, SSE, archives, ``/ws``, ``/twilio/media``, ``/static/``,
    the demo page (``TETHER_DEMO``) and, with ``include_ops``, the ops routes and ``/dashboard``."""
    r = APIRouter()
    r.include_router(rest.build(svc))
    r.include_router(events.build(svc))
    r.include_router(archives.build(svc))
    r.include_router(admin.build(svc))
    if include_ops:
        r.include_router(ops.build(svc))
    r.include_router(pages.build(svc, dashboard=include_ops))

    async def ws(websocket: WebSocket) -> None:
        await websocket_endpoint(svc, websocket)

    r.add_api_websocket_route("/ws", ws, name="tether_ws")

    async def twilio(websocket: WebSocket) -> None:
        await twilio_endpoint(svc, websocket)

    r.add_api_websocket_route("/twilio/media", twilio, name="tether_twilio_media")
    return r


def router(
    manager: SessionManager,
    settings: Settings | None = None,
    *,
    metrics: PrometheusSink | None = None,
    include_ops: bool = False,
) -> APIRouter:
    """tether's HTTP, SSE and WebSocket API over ``manager``, ready to include.

    ``settings`` default to the environment (``TETHER_*``). The caller owns
    ``manager``: open it before serving and close it at shutdown. Pass the
    ``metrics`` sink you gave the manager to get the duration histogram, and
    ``include_ops=True`` for ``/health``, ``/ready``, ``/metrics`` and ``/dashboard``.
    """
    settings = settings if settings is not None else load_settings()
    settings.policy()
    return build_router(
        Service(settings, manager=manager, metrics=metrics), include_ops=include_ops
    )


def create_app(settings: Settings | None = None, manager: SessionManager | None = None) -> FastAPI:
    """The tether service as an ASGI app.

    Without ``manager``, the lifespan builds one from ``settings`` (memory
    or Redis store, journal and archive under ``TETHER_DATA_DIR``) and ends
    every session with ``server_shutdown`` when the app stops. A given
    manager is opened but left for its owner to close.
    """
    settings = settings if settings is not None else load_settings()
    settings.policy()  # an invalid value fails here, naming the variable
    sink = PrometheusSink()
    svc = Service(settings, metrics=sink)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with serving(svc, manager):
            yield

    app = FastAPI(
        title="tether",
        version=tether.__version__,
        summary="The whole life of real-time conversational sessions.",
        lifespan=lifespan,
        docs_url=None,  # apidocs serves /docs with no CDN
        redoc_url=None,
    )
    install_handlers(app)
    apidocs.install(app)
    app.include_router(build_router(svc, include_ops=True))

    async def ws(websocket: WebSocket) -> None:
        await websocket_endpoint(svc, websocket)

    app.add_middleware(WebSocketFastPath, path="/ws", endpoint=ws)
    app.state.tether = svc
    return app


@asynccontextmanager
async def serving(
    svc: Service, manager: SessionManager | None = None
) -> AsyncIterator[SessionManager]:
    """The lifespan of one service: its manager open inside, closed after.

    Without ``manager``, one is built from ``svc.settings`` (:func:`open_manager`:
    store, journal, archive, ``svc.metrics``) and, on the way out, closed:
    every session ends with ``server_shutdown``. A given manager is opened
    but left for its owner to close. :func:`create_app` and
    :func:`~tether.service.embed.mount` both serve through this.
    """
    settings = svc.settings
    owned = manager is None
    if manager is None:
        active = await open_manager(settings, svc.metrics, svc)
    else:
        active = manager
        svc.bind(active)
        await active.open()
    for note in settings.notes():
        log.info(note)
    answering = None
    try:
        answering = start_responder(settings, active)
        yield active
    finally:
        svc.draining = True
        if owned:
            await active.aclose()
        if answering is not None:  # after the sessions ended: their replies are cancelled
            await answering.aclose()


async def open_manager(
    settings: Settings, metrics: PrometheusSink | None = None, svc: Service | None = None
) -> SessionManager:
    """:func:`build_manager`, opened (and bound to ``svc``).

    If Redis does not answer, this raises :class:`ConfigError` naming
    ``TETHER_REDIS_URL``, unless ``TETHER_REDIS_FALLBACK=memory``: then it
    logs a warning and opens a manager on the memory store instead (and
    ``svc.store_fallback`` says so in ``/health``).
    """
    manager = build_manager(settings, metrics)
    if svc is not None:
        svc.bind(manager)
    await open_archive(settings, manager)
    try:
        await manager.open()
    except StoreUnavailable as exc:
        if settings.redis_url is None:
            raise
        with contextlib.suppress(TetherError, OSError):
            await manager.store.aclose()
        if settings.redis_fallback != "memory":
            raise ConfigError(unreachable_message(settings, exc)) from None
        log.warning(
            "%s; TETHER_REDIS_FALLBACK=memory: running alone on the memory store "
            "(sessions are not shared with other nodes and end when this process stops)",
            unreachable_message(settings, exc, hint=False),
        )
        archiver = manager.archiver
        manager = build_manager(settings, metrics, store=memory_store(settings))
        manager.archiver = archiver  # already open: the archive does not depend on the store
        if svc is not None:
            svc.store_fallback = True
            svc.bind(manager)
        await manager.open()
    return manager


async def open_archive(settings: Settings, manager: SessionManager) -> None:
    """Connect the PostgreSQL archive (``TETHER_ARCHIVE_URL``) before serving.

    Creates its table if missing. Raises :class:`ConfigError` naming the
    variable, password hidden, if PostgreSQL does not answer: a node that
    could not archive would hold every ended session's journal until it can.
    """
    archiver = manager.archiver
    opener = getattr(archiver, "open", None)
    if settings.archive_url is None or opener is None:
        return
    try:
        await opener()
    except TetherError as exc:
        with contextlib.suppress(TetherError, OSError):
            await manager.store.aclose()
        if archiver is not None:
            with contextlib.suppress(TetherError, OSError):
                await archiver.aclose()
        raise ConfigError(_archive_message(settings, exc)) from None


async def check_store(settings: Settings) -> None:
    """Fail fast, in one line, when ``TETHER_REDIS_URL`` or ``TETHER_ARCHIVE_URL`` does not answer.

    ``tether serve`` calls this before it starts serving. Raises
    :class:`ConfigError` naming the variable, unless
    ``TETHER_REDIS_FALLBACK=memory`` (the app then falls back as it starts).
    """
    await _check_archive(settings)
    if settings.redis_url is None or settings.redis_fallback == "memory":
        return
    store = _build_store(settings)
    try:
        await store.ping()
    except StoreUnavailable as exc:
        raise ConfigError(unreachable_message(settings, exc)) from None
    finally:
        with contextlib.suppress(TetherError, OSError):
            await store.aclose()


async def _check_archive(settings: Settings) -> None:
    if settings.archive_url is None:
        return
    archiver = pg_archiver(settings.archive_url)
    opener = getattr(archiver, "open", None)
    try:
        if opener is not None:
            await opener()
    except TetherError as exc:
        raise ConfigError(_archive_message(settings, exc)) from None
    finally:
        with contextlib.suppress(TetherError, OSError):
            await archiver.aclose()


def _archive_message(settings: Settings, exc: BaseException) -> str:
    url = redacted_url(settings.archive_url)
    return f"TETHER_ARCHIVE_URL: cannot use PostgreSQL at {url} ({exc})"


def unreachable_message(settings: Settings, exc: BaseException, *, hint: bool = True) -> str:
    """One line saying that Redis at ``TETHER_REDIS_URL`` (password hidden) does not answer."""
    reason = " ".join(str(exc).split())
    line = f"TETHER_REDIS_URL: cannot reach Redis at {redacted_url(settings.redis_url)} ({reason})"
    if hint:
        line += "; start Redis, fix the URL, or set TETHER_REDIS_FALLBACK=memory to run alone"
    return line


def redacted_url(url: str | None) -> str:
    """``url`` without its password."""
    if url is None:
        return "-"
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return "(unparsable URL)"


def build_manager(
    settings: Settings,
    metrics: PrometheusSink | None = None,
    *,
    store: SessionStore | None = None,
) -> SessionManager:
    """A manager wired from settings: store, policy, limits, metrics, journal and archive.

    ``store`` replaces the one the settings name (the memory fallback uses it).
    """
    store = store if store is not None else _build_store(settings)
    return SessionManager(
        store,
        policy=settings.policy(),
        max_sessions_per_user=settings.max_sessions_per_user,
        metrics=metrics,
        # On a shared store the transcript is kept durable by the store
        # itself (Redis, with AOF), so no node keeps a local journal.
        journal=None if store.shared else FileJournal(settings.data_dir, fsync=settings.fsync),
        archiver=held_archive(build_archiver(settings), settings.test_archive_hold),
        poll_interval=settings.cluster_poll,
        # A store that came back empty is noticed within one heartbeat period:
        # no later than a client's next sign of life would have noticed it.
        epoch_interval=settings.heartbeat_interval,
        barge_in=settings.barge_in,
    )


def build_archiver(settings: Settings) -> Archiver:
    """The archiver the settings name: PostgreSQL at ``TETHER_ARCHIVE_URL``, else YAML files."""
    if settings.archive_url is None:
        return YamlArchive(settings.data_dir)
    return pg_archiver(settings.archive_url)


def pg_archiver(url: str) -> Archiver:
    """A :class:`~tether.archive.pg_archive.PgArchive` at ``url`` (not yet connected).

    :class:`ConfigError` if the URL is not a PostgreSQL one or psycopg is missing.
    """
    if urlsplit(url).scheme not in ("postgresql", "postgres"):
        raise ConfigError("TETHER_ARCHIVE_URL must be a postgresql:// URL")
    try:
        module = importlib.import_module("tether.archive.pg_archive")
    except ImportError:
        raise ConfigError(
            "TETHER_ARCHIVE_URL is set, but psycopg is not installed: "
            "pip install 'tether[postgres]'"
        ) from None
    archiver: Archiver = module.PgArchive(url)
    return archiver


def transcript_cap(settings: Settings) -> TranscriptCap:
    """The transcript caps the settings ask for."""
    return TranscriptCap(
        max_message_bytes=settings.max_content_bytes,
        max_messages=settings.max_transcript_messages,
        max_bytes=settings.max_transcript_bytes,
    )


def memory_store(settings: Settings) -> MemoryStore:
    """The memory store, with the settings' transcript caps and ended-session bounds."""
    return MemoryStore(
        ended_retention=settings.ended_retention,
        max_ended=settings.max_ended,
        max_ended_bytes=settings.max_ended_bytes,
        transcript_cap=transcript_cap(settings),
    )


def _build_store(settings: Settings) -> SessionStore:
    if settings.redis_url is None:
        return memory_store(settings)
    try:
        module = importlib.import_module("tether.store.redis")
    except ImportError:
        raise ConfigError(
            "TETHER_REDIS_URL is set, but this build of tether has no Redis store yet"
        ) from None
    store: SessionStore = module.RedisStore.from_url(
        settings.redis_url,
        node_lease=settings.node_lease,
        end_lease=settings.end_lease,
        retention=settings.ended_retention,
        transcript_cap=transcript_cap(settings),
    )
    return store
