"""Read timeouts and the cap on unauthenticated connections, with real uvicorn and raw sockets.

Slow clients are real TCP sockets that trickle bytes; the waits are the
server's own socket timeouts, configured at one second here, so each test
takes about that long and never sleeps on a guess of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from service_kit import (
    FAST,
    WAIT,
    Served,
    auth,
    close_code,
    eventually,
    hello,
    live_server,
    make_settings,
    recv,
    recv_type,
    send,
    start,
    ws_client,
)
from websockets.exceptions import InvalidStatus

from tether.service import create_app
from tether.service.settings import Settings

TIMEOUT = 1.0
TRICKLE = 0.2
"""A slow client's pace: a byte every 0.2 s, well inside each timeout, never done."""


@asynccontextmanager
async def server(
    tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[Served, httpx.AsyncClient]]:
    """A real server with 1 s read timeouts (unless overridden), and an HTTP client on it."""
    values = {
        **FAST,
        "idle_timeout": 60.0,
        "warn_before": 10.0,
        "presence_timeout": 60.0,
        "header_timeout": TIMEOUT,
        "body_timeout": TIMEOUT,
        **overrides,
    }
    settings = make_settings(tmp_path, **values)
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        yield served, client


@asynccontextmanager
async def raw(served: Served) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A raw TCP connection to the server."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def trickle(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Send ``data`` one byte at a time, TRICKLE apart, until done or the server hangs up."""
    with contextlib.suppress(OSError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(TRICKLE)  # the slow client's own pace, not a wait for the server


async def answer_then_eof(reader: asyncio.StreamReader, within: float = WAIT) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), within)


def status_and_error(data: bytes) -> tuple[int, str]:
    """The status and the error code of a raw HTTP answer."""
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)["error"]["code"]


async def test_a_slowloris_header_trickle_is_answered_408_and_closed(tmp_path: Path) -> None:
    """Headers trickled a byte every 0.2 s get 408 request_timeout and a close after ~1 s."""
    async with server(tmp_path) as (served, client), raw(served) as (reader, writer):
        headers = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200
        loop = asyncio.get_running_loop()
        began = loop.time()
        slow = asyncio.create_task(trickle(writer, headers))
        try:
            data = await answer_then_eof(reader)
        finally:
            slow.cancel()
        assert status_and_error(data) == (408, "request_timeout")
        assert TIMEOUT <= loop.time() - began < WAIT
        assert (await client.get("/health")).status_code == 200
        assert served.service.unauthenticated.pending == 0


async def test_a_silent_connection_is_closed_after_the_header_timeout(tmp_path: Path) -> None:
    """A connection that never sends a byte gets 408 and is closed: it cannot sit forever."""
    async with server(tmp_path) as (served, _), raw(served) as (reader, _writer):
        assert status_and_error(await answer_then_eof(reader))[0] == 408


async def test_a_body_trickle_is_answered_408_and_nothing_is_appended(tmp_path: Path) -> None:
    """A message body trickled after complete headers gets 408 and a close; nothing is stored."""
    async with server(tmp_path) as (served, client), raw(served) as (reader, writer):
        sid = (await client.post("/api/v1/sessions", headers=auth("alice"))).json()["id"]
        body = json.dumps({"role": "user", "content": "x" * 100}).encode()
        head = (
            f"POST /api/v1/sessions/{sid}/messages HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: {auth('alice')['Authorization']}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        writer.write(head)
        await writer.drain()
        slow = asyncio.create_task(trickle(writer, body))
        try:
            data = await answer_then_eof(reader)
        finally:
            slow.cancel()
        assert status_and_error(data) == (408, "request_timeout")
        listed = await client.get(f"/api/v1/sessions/{sid}/messages", headers=auth("alice"))
        assert listed.json()["messages"] == []


async def test_the_next_request_on_a_kept_alive_connection_is_timed_too(tmp_path: Path) -> None:
    """After one answered request, a second one trickled on the same connection gets 408."""
    async with server(tmp_path) as (served, _), raw(served) as (reader, writer):
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert first.startswith(b"HTTP/1.1 200")
        length = next(
            int(line.split(b":")[1])
            for line in first.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        slow = asyncio.create_task(trickle(writer, b"GET /health HTTP/1.1\r\nX-Slow: " + b"a" * 99))
        try:
            data = await answer_then_eof(reader)
        finally:
            slow.cancel()
        assert status_and_error(data) == (408, "request_timeout")


async def test_well_behaved_clients_are_served_while_slow_ones_trickle(tmp_path: Path) -> None:
    """With 20 slowloris sockets open, REST and a WebSocket session work as usual."""
    async with server(tmp_path, header_timeout=WAIT) as (served, client):
        writers = []
        slow = []
        for _ in range(20):
            _, writer = await asyncio.open_connection("127.0.0.1", served.port)
            writers.append(writer)
            slow.append(asyncio.create_task(trickle(writer, b"GET / HTTP/1.1\r\nX: " + b"a" * 99)))
        try:
            await eventually(lambda: served.service.unauthenticated.pending >= 20)
            assert (await client.post("/api/v1/sessions", headers=auth("bob"))).status_code == 201
            async with ws_client(served) as conn:
                await hello(conn, "alice")
                await start(conn)
                await send(conn, type="ping")
                await recv_type(conn, "pong")
        finally:
            for task in slow:
                task.cancel()
            for writer in writers:
                writer.close()


async def test_past_the_cap_a_new_connection_gets_503_and_sessions_go_on(tmp_path: Path) -> None:
    """With 3 connections stuck before their headers, the 4th gets 503 and a close at once;
    an authenticated WebSocket keeps working, and once they go new connections are served."""
    async with (
        server(tmp_path, max_unauthenticated=3, header_timeout=WAIT * 4) as (served, client),
        ws_client(served) as conn,
    ):
        await hello(conn, "alice")
        await start(conn)
        stuck = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(3)]
        await eventually(lambda: served.service.unauthenticated.pending == 3)
        async with raw(served) as (reader, _):
            data = await answer_then_eof(reader)
        status, code = status_and_error(data)
        assert (status, code) == (503, "too_many_unauthenticated")
        assert b"retry-after: 1" in data.lower()
        with pytest.raises(InvalidStatus) as refused:
            async with ws_client(served):
                pass
        assert refused.value.response.status_code == 503
        await send(conn, type="message", role="user", content="still here")
        assert (await recv_type(conn, "transcript.message"))["message"]["content"] == "still here"
        for _, writer in stuck:
            writer.close()
        await eventually(lambda: served.service.unauthenticated.pending == 0)
        assert (await client.get("/health")).status_code == 200
        assert served.service.unauthenticated.refused == 2


async def test_an_embedded_router_refuses_websockets_past_the_cap_with_1013(
    tmp_path: Path,
) -> None:
    """Under a plain uvicorn (no tether protocol), the WebSocket past the cap gets
    error too_many_unauthenticated and close 1013; one that says hello is served."""
    settings = make_settings(tmp_path, **{**FAST, "hello_timeout": WAIT * 4}, max_unauthenticated=2)
    async with (
        plain_uvicorn(settings) as served,
        ws_client(served) as quiet1,
        ws_client(served),
    ):
        await eventually(lambda: served.service.unauthenticated.pending == 2)
        async with ws_client(served) as third:
            refused = await recv(third)
            assert refused["code"] == "too_many_unauthenticated"
            assert refused["retry_after_s"] == 1
            assert await close_code(third) == 1013
        await hello(quiet1, "alice")
        await eventually(lambda: served.service.unauthenticated.pending == 1)
        async with ws_client(served) as fourth:
            assert (await hello(fourth, "bob"))["type"] == "welcome"


async def test_a_websocket_without_hello_is_closed_and_uncounted(tmp_path: Path) -> None:
    """A WebSocket with no hello is closed 1008 at TETHER_HELLO_TIMEOUT and leaves the count."""
    async with server(tmp_path, hello_timeout=TIMEOUT) as (served, _), ws_client(served) as conn:
        await eventually(lambda: served.service.unauthenticated.pending == 1)
        assert (await recv(conn))["code"] == "hello_timeout"
        assert await close_code(conn) == 1008
        await eventually(lambda: served.service.unauthenticated.pending == 0)


@asynccontextmanager
async def plain_uvicorn(settings: Settings) -> AsyncIterator[Served]:
    """The app under uvicorn's own defaults, as an app embedding tether would run it."""
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="on", log_level="warning", ws_per_message_deflate=False)
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started or task.done())
        yield Served(app, sock.getsockname()[1])
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT * 2)
        sock.close()
