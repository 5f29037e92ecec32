"""SIGTERM to a real ``tether serve``: every session ends server_shutdown, archived, then exit."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
from service_kit import (
    ADMIN_TOKEN,
    SECRET,
    WAIT,
    auth,
    recv_type,
    send,
    token,
    until_ready,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

GRACE = 3.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_sigterm_ends_and_archives_every_session_then_exits(tmp_path: Path) -> None:
    """WS clients get session.ended server_shutdown and close 1001; every session is archived."""
    port = _free_port()
    env = {
        **os.environ,
        "TETHER_SECRET": SECRET,
        "TETHER_ADMIN_TOKEN": ADMIN_TOKEN,
        "TETHER_DATA_DIR": str(tmp_path),
        "TETHER_SHUTDOWN_GRACE": f"{GRACE}s",
        "TETHER_LOG_LEVEL": "warning",
        "TETHER_FSYNC": "no",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tether.cli", "serve", "--port", str(port), env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=WAIT) as client:
            await until_ready(client)
            rest_session = (await client.post("/api/v1/sessions", headers=auth("bob"))).json()
            await client.post(
                f"/api/v1/sessions/{rest_session['id']}/messages",
                headers=auth("bob"),
                json={"role": "user", "content": "from rest"},
            )
            async with (
                connect(f"ws://127.0.0.1:{port}/ws", compression=None) as attached,
                connect(f"ws://127.0.0.1:{port}/ws", compression=None) as idle,
            ):
                await send(attached, type="hello", token=token("alice"), v=1)
                await recv_type(attached, "welcome")
                await send(attached, type="start", kind="call")
                await recv_type(attached, "session.started")
                await send(attached, type="message", role="user", content="from ws")
                await recv_type(attached, "transcript.message")
                await send(idle, type="hello", token=token("carol"), v=1)
                await recv_type(idle, "welcome")

                signalled = time.monotonic()
                process.send_signal(signal.SIGTERM)
                ended = await recv_type(attached, "session.ended")
                assert ended["reason"] == "server_shutdown"
                assert ended["archive_id"]
                codes = []
                for conn in (attached, idle):
                    try:
                        while True:
                            await asyncio.wait_for(conn.recv(), WAIT)
                    except ConnectionClosed:
                        codes.append(conn.close_code)
                assert codes == [1001, 1001]
        exit_code = await asyncio.wait_for(process.wait(), GRACE + 5)
        assert time.monotonic() - signalled < GRACE + 5
        assert exit_code in (0, -signal.SIGTERM)
        for user, text in (("alice", "from ws"), ("bob", "from rest")):
            archived = list((tmp_path / "users" / user / "dialogs" / "archived").glob("*.yaml"))
            assert len(archived) == 1, user
            content = archived[0].read_text()
            assert "server_shutdown" in content
            assert text in content
            assert not list((tmp_path / "users" / user / "dialogs" / "current").glob("*"))
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
