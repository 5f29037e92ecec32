"""Helpers for the browser tests: a real server on a fake clock, a TCP proxy that can cut.

The server is the real app under real uvicorn, in a thread with its own event
loop, on a free loopback port. Its manager runs on a :class:`FakeClock`, so
the tests decide when idle time passes: :meth:`LiveServer.advance` moves the
server's time, Playwright's ``page.clock`` the browser's, and
:func:`elapse` moves both in lockstep. Nothing waits for a timeout in real
time; every wait is on a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import BrowserContext, Page, expect

from tether.core.ids import validate_session_id
from tether.runtime.manager import SessionManager
from tether.service import Settings, create_app
from tether.service.server import server_config
from tether.service.state import Service
from tether.store.memory import MemoryStore
from tether.testing import FakeClock, RecordingChannel

T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
SECRET = "browser-test-secret-0123456789abcdef"
ADMIN_TOKEN = "browser-test-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WAIT = 10.0
"""Upper bound for any single expectation, in real seconds."""

IDLE = 60.0
WARN = 20.0
PRESENCE = 30.0
"""The policy: a warning after 40 s without activity, the end 20 s later; 30 s of grace
for a lost connection. Seconds of fake time: the tests move the clocks."""


def settings_for(data_dir: Path) -> Settings:
    """The server's settings: the demo on, the admin token set, the policy above."""
    return Settings(
        secret=SECRET,
        admin_token=ADMIN_TOKEN,
        data_dir=data_dir,
        port=0,
        demo=True,
        log_level="warning",
        fsync="no",
        idle_timeout=IDLE,
        warn_before=WARN,
        max_duration=1800.0,
        presence_timeout=PRESENCE,
        heartbeat_interval=10.0,
        shutdown_grace=3.0,
        max_requests_per_minute=100_000,
        request_burst=10_000,
        max_sessions_per_user=50,
    )


class _InLoopServer(uvicorn.Server):
    """uvicorn without its signal handlers: they stay with pytest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


def free_port() -> socket.socket:
    """A listening-ready socket bound to a free loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class LiveServer:
    """The tether app under uvicorn in a thread of its own, its manager on a fake clock."""

    def __init__(
        self,
        data_dir: Path,
        *,
        settings: Settings | None = None,
        build: Callable[[Settings, SessionManager], FastAPI] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else settings_for(data_dir)
        self.clock = FakeClock(start=time.time())
        self.manager = SessionManager(
            MemoryStore(),
            policy=self.settings.policy(),
            clock=self.clock,
            max_sessions_per_user=self.settings.max_sessions_per_user,
        )
        if build is None:
            self.app = create_app(self.settings, manager=self.manager)
        else:  # an app built on tether's, e.g. an example's
            self.app = build(self.settings, self.manager)
        self._sock = free_port()
        self.port: int = self._sock.getsockname()[1]
        self.loop = asyncio.new_event_loop()
        self._server = _InLoopServer(server_config(self.app, self.settings))
        self._thread = threading.Thread(target=self._main, name="tether-browser-server")
        self.http = httpx.Client(base_url=self.url, timeout=WAIT)
        self._channels: list[RecordingChannel] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def service(self) -> Service:
        svc: Service = self.app.state.tether
        return svc

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._server.serve(sockets=[self._sock]))
        self.loop.run_until_complete(self.manager.aclose())
        self.loop.close()

    def start(self) -> None:
        self._thread.start()
        wait_until(lambda: self._server.started or not self._thread.is_alive(), "server start")
        assert self._thread.is_alive(), "the server thread died while starting"

    def stop(self) -> None:
        self.http.close()
        self._server.should_exit = True
        self._thread.join(WAIT * 2)
        self._sock.close()

    # -- the server's loop and clock --------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` in the server's event loop and return its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(WAIT)

    def advance(self, seconds: float) -> None:
        """Move the server's clock; due warnings and ends happen on the way."""
        self.run(self.clock.advance(seconds))

    # -- REST as the admin -----------------------------------------------------------

    def session(self, session_id: str) -> dict[str, Any]:
        """The session as ``GET /api/v1/sessions/{id}`` shows it to the admin."""
        response = self.http.get(f"/api/v1/sessions/{session_id}", headers=ADMIN)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def sessions(self, **params: str) -> list[dict[str, Any]]:
        """``GET /api/v1/sessions`` as the admin."""
        response = self.http.get("/api/v1/sessions", headers=ADMIN, params=params)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()["sessions"]
        return found

    def start_session(
        self, user: str, kind: str = "chat", *, attached: bool = True
    ) -> dict[str, Any]:
        """Start a session for ``user`` as the admin; ``attached``: a client holds its presence.

        The client is a server-side recording channel, so the session only
        ends by its own clocks (idle, max) or by someone ending it. Without
        ``attached``, the client is a REST one that sent one heartbeat and went
        away: its presence clock runs from now.
        """
        response = self.http.post(
            "/api/v1/sessions", headers=ADMIN, json={"user": user, "kind": kind}
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        if attached:
            self.run(self._attach(body["id"]))
        else:
            self.http.post(
                f"/api/v1/sessions/{body['id']}/heartbeat", headers=ADMIN
            ).raise_for_status()
        return body

    async def _attach(self, session_id: str) -> None:
        channel = RecordingChannel()
        self._channels.append(channel)
        await self.manager.attach(validate_session_id(session_id), channel)

    def append(self, session_id: str, role: str, content: str) -> dict[str, Any]:
        """Append a message as the admin."""
        response = self.http.post(
            f"/api/v1/sessions/{session_id}/messages",
            headers=ADMIN,
            json={"role": role, "content": content},
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


def wait_until(condition: Callable[[], object], what: str, within: float = WAIT) -> None:
    """Poll ``condition`` (every few ms, real time) until it holds; fail naming ``what``."""
    give_up = time.monotonic() + within
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"still waiting after {within:g}s: {what}")
        time.sleep(0.005)


def elapse(
    server: LiveServer,
    page: Page,
    seconds: float,
    *,
    until: Callable[[], bool] | None = None,
    step: float = 1.0,
) -> float:
    """Let ``seconds`` pass on both clocks, one ``step`` at a time; stop early once ``until()``.

    The server's clock moves first, then the page's (``page.clock.run_for``
    fires the page's timers on the way). Returns the seconds that passed.
    """
    passed = 0.0
    while passed < seconds:
        if until is not None and until():
            return passed
        server.advance(step)
        page.clock.run_for(int(step * 1000))
        passed += step
    if until is not None:
        wait_until(until, "the condition after the clocks moved")
    return passed


def open_demo(context: BrowserContext, url: str, *, fake_clock: bool = False) -> tuple[Page, str]:
    """The demo page with its session started; the page and the session id it shows."""
    if fake_clock:
        context.clock.install()
    page = context.new_page()
    page.goto(url + "/")
    expect(page.locator("#state")).to_have_text("active")
    session_id = page.locator("#session-id").inner_text()
    assert len(session_id) == 32
    if fake_clock:
        # From here on the page's time only moves when the test says so.
        page.clock.pause_at(page.evaluate("Date.now()") / 1000 + 1)
    return page, session_id


CLIENT_PAGE = "/health"
"""A document of the server's own origin with no script of its own (nor a CSP that forbids
ours): tests import tether.js into it. (A page made up by the test, e.g. through
Playwright's routing, is a "public" document to Chromium, whose Local Network Access
checks then block its WebSocket to loopback.)"""


def client_page(context: BrowserContext, server: LiveServer) -> Page:
    """A page of the server's origin with tether.js imported as ``window.tether``."""
    page = context.new_page()
    page.goto(server.url + CLIENT_PAGE)
    page.evaluate('async () => { window.tether = await import("/static/tether.js"); }')
    return page


def token_for(server: LiveServer, user: str) -> str:
    """A user token signed by the server under test."""
    return server.service.tokens.mint(user)


def say(page: Page, text: str, *, expect_messages: int) -> None:
    """Send an answer and wait until the transcript holds ``expect_messages`` whole messages.

    A reply still streaming shows as a ``building`` item; it counts once complete.
    """
    page.fill("#answer", text)
    page.press("#answer", "Enter")
    expect(page.locator("#transcript li:not(.building)")).to_have_count(expect_messages)


def countdown_seconds(text: str) -> int:
    """``"1:05"`` as 65."""
    minutes, _, seconds = text.strip().rpartition(":")
    return int(minutes or 0) * 60 + int(seconds)


class TcpProxy:
    """A TCP proxy on its own loopback port that can drop every connection without a close frame.

    :meth:`cut` resets both sides of every open connection (SO_LINGER 0, then
    close: an RST, no WebSocket close frame, no FIN handshake), as a crashed
    load balancer or a dead network path would. While :attr:`refusing`, new
    connections are accepted and reset at once, so reconnects keep failing.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.refusing = False
        self.accepted = 0
        self._sock = free_port()
        self.port: int = self._sock.getsockname()[1]
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="tether-test-proxy")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        assert self._ready.wait(WAIT), "the proxy did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(WAIT)
        self._thread.join(WAIT)
        self._sock.close()

    def cut(self) -> int:
        """Reset every open connection; how many there were."""
        future = asyncio.run_coroutine_threadsafe(self._cut(), self._loop)
        return future.result(WAIT)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self._sock.listen(64)
        server = await asyncio.start_server(self._handle, sock=self._sock)
        self._ready.set()
        async with server:
            await self._stop.wait()

    async def _shutdown(self) -> None:
        self.refusing = True
        await self._cut()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=WAIT)
        assert self._stop is not None
        self._stop.set()

    async def _cut(self) -> int:
        pairs = list(self._pairs)
        self._pairs.clear()
        for pair in pairs:
            for writer in pair:
                _reset(writer)
        return len(pairs)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        self.accepted += 1
        if self.refusing:
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            _reset(writer)
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            self._pairs.discard(pair)
            for w in pair:
                with contextlib.suppress(Exception):
                    w.close()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST: linger on, timeout zero."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@contextlib.contextmanager
def running_server(data_dir: Path, **options: Any) -> Iterator[LiveServer]:
    """A started :class:`LiveServer` (``options`` as its own), stopped at the end of the block."""
    server = LiveServer(data_dir, **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
