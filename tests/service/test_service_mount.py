"""``mount(app)`` under real uvicorn (the example): settings, metrics, shutdown order."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from service_kit import (
    SECRET,
    WAIT,
    asgi_client,
    auth,
    make_settings,
    recv_type,
    send,
    until_ready,
)
from service_kit import token as make_token
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tether.service.embed import ShutdownHook, mount
from tether.testing import settle

ROOT = Path(__file__).parents[2]
CLIENTS = 3
GRACE = 5.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _metric(text: str, name: str) -> float:
    """The value of the sample line ``name`` (with its labels) in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


async def _rest_of(conn: ClientConnection) -> tuple[list[dict[str, object]], int | None]:
    """Every frame until the close, and the close code."""
    frames: list[dict[str, object]] = []
    try:
        while True:
            frames.append(json.loads(await asyncio.wait_for(conn.recv(), WAIT)))
    except ConnectionClosed:
        return frames, conn.close_code


async def test_the_example_under_uvicorn_reads_settings_counts_and_drains_on_sigterm(
    tmp_path: Path,
) -> None:
    """TETHER_* timeouts apply, /metrics counts; SIGTERM: session.ended, close 1001, archives."""
    port = _free_port()
    env = {
        **os.environ,
        "TETHER_SECRET": SECRET,
        "TETHER_DATA_DIR": str(tmp_path),
        "TETHER_IDLE_TIMEOUT": "45s",
        "TETHER_WARN_BEFORE": "10s",
        "TETHER_SHUTDOWN_GRACE": f"{GRACE}s",
        "TETHER_FSYNC": "no",
        "TETHER_ALLOWED_ORIGINS": "",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uvicorn",
        "examples.embed_fastapi:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=WAIT) as client:
            await until_ready(client)
            assert (await client.get("/whoami")).json() == {"app": "mine", "idle_timeout_s": 45}
            conns = [
                await connect(f"ws://127.0.0.1:{port}/ws", compression=None) for _ in range(CLIENTS)
            ]
            sessions = []
            for i, conn in enumerate(conns):
                await send(conn, type="hello", token=make_token(f"user{i}"), v=1)
                await recv_type(conn, "welcome")
                await send(conn, type="start", kind="chat")
                started = await recv_type(conn, "session.started")
                sessions.append(started["session"])
                await send(conn, type="message", role="user", content=f"hello from {i}")
                await recv_type(conn, "transcript.message")
            info = await client.get(f"/api/v1/sessions/{sessions[0]['id']}", headers=auth("user0"))
            assert info.json()["policy"]["idle_timeout"] == 45

            ended_early = await client.post("/api/v1/sessions", headers=auth("early"))
            early = ended_early.json()["id"]
            await client.post(f"/api/v1/sessions/{early}/end", headers=auth("early"))
            metrics = (await client.get("/metrics")).text
            assert _metric(metrics, "tether_sessions_started_total") == CLIENTS + 1
            assert _metric(metrics, 'tether_connections{transport="websocket"}') == CLIENTS
            assert _metric(metrics, 'tether_sessions_active{state="active"}') == CLIENTS
            ended_count = 'tether_session_duration_seconds_count{reason="client_ended"}'
            assert _metric(metrics, ended_count) == 1

            process.send_signal(signal.SIGTERM)
            for conn in conns:
                frames, code = await _rest_of(conn)
                assert [f["type"] for f in frames] == ["session.ended"]
                assert frames[0]["reason"] == "server_shutdown"
                assert frames[0]["archive_id"]
                assert code == 1001
        exit_code = await asyncio.wait_for(process.wait(), GRACE + 10)
        assert exit_code in (0, -signal.SIGTERM)
        for i in range(CLIENTS):
            dialogs = tmp_path / "users" / f"user{i}" / "dialogs"
            archived = list((dialogs / "archived").glob("*.yaml"))
            assert len(archived) == 1
            assert "server_shutdown" in archived[0].read_text()
            assert f"hello from {i}" in archived[0].read_text()
            assert not list((dialogs / "current").glob("*"))
        early_archives = list((tmp_path / "users" / "early" / "dialogs" / "archived").glob("*"))
        assert len(early_archives) == 1
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_mount_wraps_the_apps_own_lifespan_and_drains_at_its_end(tmp_path: Path) -> None:
    """The app's lifespan runs with the manager open; leaving it ends every session, archived."""
    settings = make_settings(tmp_path, idle_timeout=45.0, warn_before=5.0)
    seen: list[float] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        seen.append(embedded.manager.policy.idle_timeout)
        yield

    app = FastAPI(lifespan=lifespan)
    embedded = mount(app, settings, prefix="/t")
    async with asgi_client(app) as client:
        made = await client.post("/t/api/v1/sessions", headers=auth("alice"))
        assert made.status_code == 201
        assert made.json()["policy"]["idle_timeout"] == 45
        assert (await client.get("/t/metrics")).status_code == 200
    assert seen == [45.0]
    archived = list((tmp_path / "users" / "alice" / "dialogs" / "archived").glob("*.yaml"))
    assert len(archived) == 1
    assert "server_shutdown" in archived[0].read_text()


async def test_the_hook_drains_first_then_calls_the_servers_handler() -> None:
    """A real SIGTERM runs drain to its end before the handler the server had installed."""
    order: list[str] = []
    released = asyncio.Event()
    draining = asyncio.Event()
    finish = asyncio.Event()

    def server_handler(sig: int, frame: object) -> None:
        order.append(f"server:{signal.Signals(sig).name}")
        released.set()

    async def drain() -> None:
        order.append("drain:start")
        draining.set()
        await finish.wait()  # a drain that takes as long as the test says
        order.append("drain:end")

    saved = {sig: signal.signal(sig, server_handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        hook = ShutdownHook(drain)
        assert hook.install()
        signal.raise_signal(signal.SIGTERM)
        await asyncio.wait_for(draining.wait(), WAIT)
        await settle()
        assert order == ["drain:start"]  # the server's handler waits for the drain
        finish.set()
        await asyncio.wait_for(released.wait(), WAIT)
        assert order == ["drain:start", "drain:end", "server:SIGTERM"]
        assert signal.getsignal(signal.SIGTERM) is server_handler  # handed back
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


async def test_the_hook_leaves_an_ignored_signal_alone() -> None:
    """With SIGTERM ignored, the hook does not install and the handlers stay as they were."""

    async def drain() -> None:
        raise AssertionError("not called")

    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        hook = ShutdownHook(drain)
        assert hook.install() is False
        assert not hook.installed
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
