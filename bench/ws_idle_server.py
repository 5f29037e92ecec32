"""The two servers of ``bench/ws_idle.py``, one per process.

``python -m bench.ws_idle_server {tether|socketio} FD`` serves on the
listening socket inherited as file descriptor ``FD`` and prints ``ready`` on
stdout once uvicorn has started. Both run under the same uvicorn with the same
options (checked at start-up): tether's own :func:`~tether.service.server.server_config`
(h11, the ``websockets`` sans-I/O WebSocket protocol, no compression, 64 KiB
frames, keepalive pings every 20 s, uvicorn's ``auto`` loop: uvloop, which
tether installs). ``BENCH_LOOP=asyncio`` puts both on asyncio's own loop, to
measure what uvloop saves.

* ``tether``: the real service, ``create_app(load_settings())`` (``TETHER_*``
  from the environment) under :class:`~tether.service.server.TetherServer`.
* ``socketio``: a python-socketio ``AsyncServer(async_mode="asgi")`` in
  ``socketio.ASGIApp`` doing the same work: ``hello`` checks an HS256 JWT as
  tether does (``pyjwt``, ``exp`` and ``sub`` required) and answers ``welcome``;
  ``start`` stores a session record in a dict and emits ``started`` with it;
  ``heartbeat`` stamps the record's ``last_seen`` and emits ``pong``.

Nothing of tether is imported by the ``socketio`` server.
"""

from __future__ import annotations

import os
import resource
import secrets
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

LOOP = os.environ.get("BENCH_LOOP", "auto")
"""uvicorn's ``loop`` for both servers (``auto`` is what ``tether serve`` runs on)."""

OPTIONS: dict[str, Any] = {
    "loop": LOOP,
    "lifespan": "on",
    "log_level": "warning",
    "ws_max_size": 65536,
    "ws_per_message_deflate": False,
    "timeout_graceful_shutdown": 10,
    "server_header": False,
    "proxy_headers": False,
    "http": "h11",
}
"""What ``tether.service.server.server_config`` sets (checked in :func:`_same_options`)."""

COMPARED = (
    "loop",
    "http",
    "ws",
    "ws_max_size",
    "ws_max_queue",
    "ws_ping_interval",
    "ws_ping_timeout",
    "ws_per_message_deflate",
    "lifespan",
    "log_level",
    "access_log",
    "backlog",
    "limit_concurrency",
    "server_header",
    "proxy_headers",
)

SOCKETIO_PING_INTERVAL = 3600
"""Engine.IO's own ping, stretched out of the way: heartbeats are the client's events."""


def raise_nofile() -> int:
    """Lift the soft open-files limit to the hard one; the limit now in force."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    raise NotImplementedError


def _same_options(config: uvicorn.Config) -> None:
    reference = uvicorn.Config(_no_app, **OPTIONS)
    for name in COMPARED:
        ours, theirs = getattr(config, name), getattr(reference, name)
        if name == "http" and isinstance(ours, type) and issubclass(ours, H11Protocol):
            # tether's is uvicorn's h11 protocol with read timeouts added
            # (tether.service.protocol): the same HTTP implementation.
            ours = "h11"
        if ours != theirs:
            raise SystemExit(f"uvicorn option {name} differs: tether {ours!r}, socketio {theirs!r}")


def _ready() -> None:
    print("ready", flush=True)


class _SocketIOServer(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        _ready()


def serve_tether(sock: socket.socket, prepare: Callable[[Any], None] | None = None) -> None:
    """tether's service on ``sock``; ``prepare(app)`` may add to the app before it serves."""
    from tether.service import create_app, load_settings
    from tether.service.server import TetherServer, server_config

    settings = load_settings()
    app = create_app(settings)
    if prepare is not None:
        prepare(app)
    config = server_config(app, settings)
    config.loop = LOOP
    _same_options(config)

    class Server(TetherServer):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            _ready()

    Server(config, app.state.tether, grace=settings.shutdown_grace).run(sockets=[sock])


def socketio_app() -> Any:
    import jwt
    import socketio

    secret = os.environ["WS_IDLE_SECRET"]
    heartbeat_interval = float(os.environ.get("WS_IDLE_HEARTBEAT", "25"))
    sio = socketio.AsyncServer(
        async_mode="asgi",
        cors_allowed_origins="*",
        max_http_buffer_size=OPTIONS["ws_max_size"],
        ping_interval=SOCKETIO_PING_INTERVAL,
    )
    callers: dict[str, str] = {}  # socket.io sid -> user
    attached: dict[str, str] = {}  # socket.io sid -> session id
    sessions: dict[str, dict[str, Any]] = {}

    async def hello(sid: str, data: Any) -> None:
        token = data.get("token") if isinstance(data, dict) else None
        try:
            claims = jwt.decode(
                token or "",
                secret,
                algorithms=["HS256"],
                options={"require": ["exp", "sub"]},
                leeway=5.0,
            )
        except jwt.PyJWTError:
            await sio.emit("error", {"code": "unauthorized"}, to=sid)
            await sio.disconnect(sid)
            return
        callers[sid] = str(claims["sub"])
        welcome = {"v": 1, "heartbeat_interval_s": heartbeat_interval}
        await sio.emit("welcome", welcome, to=sid)

    async def start(sid: str, data: Any = None) -> None:
        user = callers.get(sid)
        if user is None:
            await sio.emit("error", {"code": "hello_required"}, to=sid)
            return
        options = data if isinstance(data, dict) else {}
        now = time.time()
        record: dict[str, Any] = {
            "id": secrets.token_hex(16),
            "user": user,
            "kind": options.get("kind", "chat"),
            "state": "active",
            "created_at": now,
            "last_activity": now,
            "last_seen": now,
            "connections": 1,
            "message_count": 0,
            "config": options.get("config") or {},
        }
        sessions[record["id"]] = record
        attached[sid] = record["id"]
        await sio.emit("started", {"session": record}, to=sid)

    async def heartbeat(sid: str, data: Any = None) -> None:
        session_id = attached.get(sid)
        if session_id is not None:
            sessions[session_id]["last_seen"] = time.time()
        await sio.emit("pong", to=sid)

    async def disconnect(sid: str, *args: Any) -> None:
        callers.pop(sid, None)
        session_id = attached.pop(sid, None)
        if session_id is not None:  # kept, like a session waiting for a reconnect
            sessions[session_id]["connections"] = 0

    for handler in (hello, start, heartbeat, disconnect):
        sio.on(handler.__name__, handler)
    return socketio.ASGIApp(sio)


def serve_socketio(sock: socket.socket, app: Any = None) -> None:
    """A python-socketio ASGI app (``socketio_app()`` unless given) on ``sock``."""
    config = uvicorn.Config(app if app is not None else socketio_app(), **OPTIONS)
    _SocketIOServer(config).run(sockets=[sock])


def main() -> None:
    contender, fd = sys.argv[1], int(sys.argv[2])
    raise_nofile()
    sock = socket.socket(fileno=fd)
    {"tether": serve_tether, "socketio": serve_socketio}[contender](sock)


if __name__ == "__main__":
    main()
