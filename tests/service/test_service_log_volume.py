"""Hostile frames cost the log a bounded number of bytes: no tracebacks, no per-frame lines."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from cluster.process_kit import spawn_tether, wait_ready
from tether.service.auth import TokenAuthority

SECRET = "log-volume-test-secret-0123456789abcdef"
CONNECTIONS = 40
FRAMES_PER_CONNECTION = 250
"""10,000 hostile frames in all."""
MAX_LOG_BYTES_PER_FRAME = 4.0
"""The bound (measured: about 1.1 bytes a frame, all of it per-connection lines)."""

DEEP = "[" * 5000 + "]" * 5000


def hostile(i: int) -> str | bytes:
    """The ``i``-th hostile frame: cycles through the kinds a fuzzer sends."""
    kinds: list[str | bytes] = [
        DEEP,
        "{nope",
        '{"type": "dance"}',
        '{"type": "message", "role": "robot", "content": "x"}',
        b"\x00\x01binary",
        '{"type": "config", "config": '
        + json.dumps({"a": [[[[[[[[[[[[[[[[[[[[{}]]]]]]]]]]]]]]]]]]]]})
        + "}",
        '{"type": "hello", "token": "forged", "v": 1}',
        '{"type": "activity"}',
        "[1, 2, 3]",
    ]
    return kinds[i % len(kinds)]


async def _abuse(url: str, token: str, n: int, hang_up: bool) -> int:
    """Send hostile frames, then end with invalid UTF-8 or by hanging up; frames sent."""
    sent = 0
    conn: ClientConnection
    async with connect(url, open_timeout=10, compression=None, max_queue=None) as conn:
        await conn.send(json.dumps({"type": "hello", "token": token, "v": 1}))
        for i in range(n - 3):
            await conn.send(hostile(i))
            sent += 1
        if hang_up:  # gone without a close, while the server still answers every frame
            conn.transport.abort()
            return sent
        await conn.ping()
        try:
            await conn.send(b"\xff\xfe{", text=True)  # invalid UTF-8 in a text frame
            sent += 1
            await asyncio.wait_for(conn.wait_closed(), 5)
        except (ConnectionClosed, TimeoutError):
            pass
    return sent + 2  # plus the two lost with the connection


async def test_log_bytes_per_hostile_frame_are_bounded(tmp_path: Path) -> None:
    """10k hostile frames, invalid UTF-8 and hang-ups via `tether serve`: < 4 log bytes a frame."""
    token = TokenAuthority(SECRET).mint("mallory", ttl=600)
    node = spawn_tether(
        "noise",
        {
            "TETHER_SECRET": SECRET,
            "TETHER_LOG_LEVEL": "info",
            "TETHER_DATA_DIR": str(tmp_path / "data"),
            "TETHER_MAX_MESSAGES_PER_MINUTE": "1000000",
            "TETHER_MESSAGE_BURST": "100000",
            "TETHER_MAX_CONNECTIONS_PER_USER": str(CONNECTIONS),
        },
        tmp_path,
    )
    try:
        await wait_ready(node)
        before = len(node.output().encode())
        sent = sum(
            await asyncio.gather(
                *(
                    _abuse(node.ws, token, FRAMES_PER_CONNECTION, hang_up=i % 2 == 1)
                    for i in range(CONNECTIONS)
                )
            )
        )
        async with connect(node.ws, open_timeout=10) as probe:  # the server still serves
            await probe.send(json.dumps({"type": "ping"}))
            await asyncio.wait_for(probe.recv(), 5)
        async with httpx.AsyncClient(base_url=node.http, timeout=5) as http:
            metrics = (await http.get("/metrics")).text
    finally:
        node.terminate()
    log = node.output()
    grown = len(log.encode()) - before
    print(f"{sent} hostile frames, {grown} log bytes, {grown / sent:.2f} bytes a frame")
    counted = 'tether_client_errors_total{code="%s",transport="websocket"} '
    assert counted % "invalid_utf8" + f"{CONNECTIONS // 2}.0" in metrics
    assert counted % "bad_json" in metrics
    assert "Traceback" not in log
    assert " ERROR " not in log
    assert "ERROR:" not in log
    assert "socket.send() raised exception" not in log
    assert "Invalid UTF-8" not in log
    assert grown / sent <= MAX_LOG_BYTES_PER_FRAME, log[-3000:]
