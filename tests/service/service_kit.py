"""Helpers for the service tests: settings, tokens, a real server, patient clients.

Waiting is always on a condition with a deadline (``asyncio.wait_for``), never
a fixed sleep; the only sleeps are the few-millisecond polls in ``eventually``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tether.service import Settings
from tether.service.auth import TokenAuthority
from tether.service.server import server_config
from tether.service.state import Service

SECRET = "service-test-secret-0123456789abcdef"
ADMIN_TOKEN = "service-test-admin-token"
WAIT = 5.0
"""Upper bound for any single expectation; tests normally finish far sooner."""

FAST = {
    "idle_timeout": 1.2,
    "warn_before": 0.6,
    "max_duration": 30.0,
    "presence_timeout": 0.8,
    "heartbeat_interval": 0.2,
    "hello_timeout": 1.0,
    "sse_ping_interval": 0.2,
    "shutdown_grace": 3.0,
}
"""Policies short enough that a timeout happens within about a second."""


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test: fixed secrets, data in ``data_dir``, nothing from the environment."""
    values: dict[str, Any] = {
        "secret": SECRET,
        "admin_token": ADMIN_TOKEN,
        "data_dir": data_dir,
        "port": 0,
        "log_level": "warning",
        "fsync": "no",
    }
    values.update(overrides)
    return Settings(**values)


def token(
    user: str, *, ttl: float = 6 * 3600.0, admin: bool = False, now: float | None = None
) -> str:
    """A token the test server accepts.

    Valid for hours by default: modules mint headers at import, and a whole
    suite on a loaded machine can outlast a short lifetime.
    """
    return TokenAuthority(SECRET, admin_token=ADMIN_TOKEN).mint(user, ttl=ttl, admin=admin, now=now)


def auth(user: str | None = None, *, raw: str | None = None) -> dict[str, str]:
    """An ``Authorization`` header for ``user`` (or a raw token)."""
    return {"Authorization": f"Bearer {raw if raw is not None else token(user or 'alice')}"}


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class _InLoopServer(uvicorn.Server):
    """uvicorn in the test's own event loop; signals stay with pytest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


@dataclass
class Served:
    """A running server and how to reach it."""

    app: FastAPI
    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def service(self) -> Service:
        svc: Service = self.app.state.tether
        return svc

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.http, timeout=WAIT, **kwargs)


@asynccontextmanager
async def live_server(app: FastAPI, settings: Settings) -> AsyncIterator[Served]:
    """Run ``app`` under real uvicorn on a free loopback port for the block."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _InLoopServer(server_config(app, settings))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started or task.done())
        if task.done():
            task.result()
        yield Served(app, port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT * 2)
        sock.close()


@contextlib.contextmanager
def threaded_server(app: FastAPI, settings: Settings) -> Iterator[Served]:
    """:func:`live_server` in a thread of its own, for synchronous clients (schemathesis).

    The server runs in its own event loop; the block gets the running
    server and, on exit, the server stops and the thread is joined.
    """
    handoff: queue.Queue[tuple[Served, asyncio.AbstractEventLoop, asyncio.Event] | BaseException]
    handoff = queue.Queue()

    async def serve() -> None:
        stop = asyncio.Event()
        async with live_server(app, settings) as served:
            handoff.put((served, asyncio.get_running_loop(), stop))
            await stop.wait()

    def main() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:
            handoff.put(exc)

    thread = threading.Thread(target=main, name="tether-test-server", daemon=True)
    thread.start()
    started = handoff.get(timeout=WAIT * 2)
    if isinstance(started, BaseException):
        raise started
    served, loop, stop = started
    try:
        yield served
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(WAIT * 2)
        if not handoff.empty():
            failed = handoff.get_nowait()
            if isinstance(failed, BaseException):
                raise failed


@asynccontextmanager
async def asgi_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling ``app`` in-process, its lifespan running."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tether.test") as client:
            yield client


async def eventually(condition: Callable[[], bool | Awaitable[bool]], within: float = WAIT) -> None:
    """Wait until ``condition()`` holds, polling every few milliseconds."""

    async def poll() -> None:
        while True:
            result = condition()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), within)


async def until_ready(
    client: httpx.AsyncClient,
    within: float = 20.0,
    alive: Callable[[], None] | None = None,
) -> None:
    """Wait until a server started in another process answers ``/ready`` with 200.

    ``alive`` is called before each try, so a test can fail at once (with the
    server's output) when the process has already exited.
    """

    async def up() -> bool:
        if alive is not None:
            alive()
        try:
            return (await client.get("/ready")).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(up, within=within)


@asynccontextmanager
async def ws_client(served: Served, **kwargs: Any) -> AsyncIterator[ClientConnection]:
    """A real ``websockets`` client on ``/ws`` (compression off, like the server)."""
    options = {"compression": None, "open_timeout": WAIT, **kwargs}
    async with connect(served.ws, **options) as conn:
        yield conn


async def send(conn: ClientConnection, **frame: Any) -> None:
    """Send one JSON frame."""
    await conn.send(json.dumps(frame))


async def recv(conn: ClientConnection, within: float = WAIT) -> dict[str, Any]:
    """The next frame, decoded."""
    data = await asyncio.wait_for(conn.recv(), within)
    frame: dict[str, Any] = json.loads(data)
    return frame


async def recv_type(
    conn: ClientConnection, kind: str, within: float = WAIT, seen: list[str] | None = None
) -> dict[str, Any]:
    """Frames until one of type ``kind``; the types passed on the way go to ``seen``."""

    async def scan() -> dict[str, Any]:
        while True:
            frame = await recv(conn, within)
            if frame["type"] == kind:
                return frame
            if seen is not None:
                seen.append(frame["type"])

    return await asyncio.wait_for(scan(), within)


async def close_code(conn: ClientConnection, within: float = WAIT) -> int | None:
    """Read until the server closes; its close code."""

    async def drain() -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await conn.recv()

    await asyncio.wait_for(drain(), within)
    return conn.close_code


async def hello(conn: ClientConnection, user: str = "alice") -> dict[str, Any]:
    """Authenticate as ``user``; the ``welcome`` frame."""
    await send(conn, type="hello", token=token(user), v=1)
    return await recv_type(conn, "welcome")


async def start(conn: ClientConnection, **frame: Any) -> dict[str, Any]:
    """``start``; the new session (from ``session.started``)."""
    await send(conn, type="start", **frame)
    started = await recv_type(conn, "session.started")
    session: dict[str, Any] = started["session"]
    return session


async def beat_for(beat: Callable[[], Awaitable[object]], every: float, duration: float) -> int:
    """Call ``beat()`` every ``every`` seconds for ``duration``, as a client's timer would.

    This is the client's own cadence, not synchronisation: assertions still
    wait on conditions.
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    beats = 0
    while loop.time() < end:
        await beat()
        beats += 1
        await asyncio.sleep(every)
    return beats


@dataclass
class SSEMessage:
    """One block of an event stream: its id, decoded data, comments."""

    id: str | None
    data: dict[str, Any] | None
    comments: list[str]


class SSEReader:
    """Reads an ``httpx`` streaming response block by block."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next(self, within: float = WAIT) -> SSEMessage:
        """The next block (up to a blank line)."""

        async def block() -> SSEMessage:
            message = SSEMessage(None, None, [])
            async for line in self._lines:
                if not line:
                    if message.data is not None or message.comments or message.id is not None:
                        return message
                    continue
                if line.startswith(":"):
                    message.comments.append(line[1:].strip())
                    continue
                field, _, value = line.partition(": ")
                if field == "id":
                    message.id = value
                elif field == "data":
                    message.data = json.loads(value)
            raise EOFError("stream ended")

        return await asyncio.wait_for(block(), within)

    async def next_event(self, kind: str | None = None, within: float = WAIT) -> SSEMessage:
        """The next block carrying data (of type ``kind``, if given)."""

        async def scan() -> SSEMessage:
            while True:
                message = await self.next(within)
                if message.data is not None and kind in (None, message.data["type"]):
                    return message

        return await asyncio.wait_for(scan(), within)
