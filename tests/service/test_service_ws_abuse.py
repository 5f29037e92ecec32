"""Bad WebSocket input: each gets its documented error or close, and others keep being served."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from service_kit import (
    FAST,
    Served,
    close_code,
    hello,
    live_server,
    make_settings,
    recv,
    recv_type,
    send,
    start,
    token,
    ws_client,
)
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tether.service import create_app
from tether.service.auth import TokenAuthority

LIMITS = {**FAST, "max_message_bytes": 1024, "max_messages_per_minute": 60, "message_burst": 20}


@asynccontextmanager
async def guarded(
    tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[Served, ClientConnection]]:
    """A server plus one well-behaved client that must stay served throughout."""
    settings = make_settings(tmp_path, **{**LIMITS, **overrides})
    async with live_server(create_app(settings), settings) as served, ws_client(served) as good:
        await hello(good, "carol")
        await start(good)
        yield served, good
        await send(good, type="ping")
        while (await recv(good))["type"] != "pong":
            pass


async def _error_code(conn: ClientConnection) -> str:
    frame = await recv(conn)
    assert frame["type"] == "error", frame
    assert isinstance(frame["message"], str)
    code: str = frame["code"]
    return code


async def test_frames_before_hello_get_an_error_and_the_connection_stays(tmp_path: Path) -> None:
    """Anything before hello is answered hello_required; a later hello still works."""
    async with guarded(tmp_path) as (served, _), ws_client(served) as conn:
        await send(conn, type="start")
        assert await _error_code(conn) == "hello_required"
        await send(conn, type="hello", token=token("alice"), v=2)
        assert await _error_code(conn) == "unsupported_version"
        assert (await hello(conn))["type"] == "welcome"


async def test_malformed_frames_get_errors_and_the_connection_stays(tmp_path: Path) -> None:
    """Bad JSON, non-objects, unknown types, invalid fields and binary frames: error frames."""
    async with guarded(tmp_path) as (served, _), ws_client(served) as conn:
        await hello(conn)
        cases: list[tuple[str | bytes, str]] = [
            ("{nope", "bad_json"),
            ("[1, 2]", "bad_json"),
            ('{"type": "config", "config": {"x": NaN}}', "bad_json"),
            ('{"type": "dance"}', "unknown_type"),
            ('{"no": "type"}', "unknown_type"),
            ('{"type": "message", "role": "robot", "content": "x"}', "invalid_frame"),
            ('{"type": "observe"}', "invalid_frame"),
            ('{"type": "activity"}', "not_attached"),
            (b"\x00\x01", "bad_frame"),
        ]
        for frame, code in cases:
            await conn.send(frame)
            assert await _error_code(conn) == code, frame
        await send(conn, type="hello", token=token("alice"))
        assert await _error_code(conn) == "already_authenticated"
        await start(conn)
        await send(conn, type="start")
        assert (await recv_type(conn, "error"))["code"] == "already_attached"


async def test_an_oversized_frame_closes_1009(tmp_path: Path) -> None:
    """A frame over TETHER_MAX_MESSAGE_BYTES closes the connection with 1009."""
    async with guarded(tmp_path) as (served, _), ws_client(served) as conn:
        await hello(conn)
        await send(conn, type="message", role="user", content="x" * 2000)
        assert await close_code(conn) == 1009


async def test_the_app_itself_enforces_the_size_limit(tmp_path: Path) -> None:
    """Behind a server with a larger frame limit (an embedding app), the app still closes 1009."""
    settings = make_settings(tmp_path, **LIMITS)
    app = create_app(settings)
    loose = settings.model_copy(update={"max_message_bytes": 1 << 20})
    async with live_server(app, loose) as served, ws_client(served) as conn:
        await hello(conn)
        await conn.send(json.dumps({"type": "ping", "pad": "é" * 600}))  # 1200+ bytes in UTF-8
        assert await close_code(conn) == 1009


async def test_a_flood_gets_rate_limited_then_4029(tmp_path: Path) -> None:
    """Past the burst, the server sends error rate_limited and closes 4029."""
    async with guarded(tmp_path) as (served, _), ws_client(served) as conn:
        await hello(conn)
        codes = []
        try:
            for _ in range(60):
                await send(conn, type="ping")
        except ConnectionClosed:
            pass
        try:
            while True:
                frame = await recv(conn)
                codes.append(frame.get("code", frame["type"]))
        except ConnectionClosed:
            pass
        assert "pong" in codes
        assert codes[-1] == "rate_limited"
        assert conn.close_code == 4029


async def test_a_wrong_origin_is_refused_1008(tmp_path: Path) -> None:
    """A browser upgrade from another origin closes 1008 before anything else."""
    async with guarded(tmp_path) as (served, _):
        async with ws_client(served, origin="https://evil.example") as conn:
            assert await close_code(conn) == 1008
        same = f"http://127.0.0.1:{served.port}"
        async with ws_client(served, origin=same) as conn:
            assert (await hello(conn))["type"] == "welcome"


async def test_the_allowlist_is_exact(tmp_path: Path) -> None:
    """With TETHER_ALLOWED_ORIGINS set, only those origins (not even the server's own) pass."""
    async with guarded(tmp_path, allowed_origins="https://app.example") as (served, _):
        async with ws_client(served, origin="https://app.example") as conn:
            assert (await hello(conn))["type"] == "welcome"
        async with ws_client(served, origin=f"http://127.0.0.1:{served.port}") as conn:
            assert await close_code(conn) == 1008


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "garbage",
        token("alice", ttl=60, now=time.time() - 3600),
        TokenAuthority("somebody-elses-secret-0123456789abcdef").mint("alice"),
    ],
    ids=["missing", "garbage", "expired", "forged"],
)
async def test_a_bad_token_in_hello_closes_1008(tmp_path: Path, bad: str) -> None:
    """A missing, malformed, expired or forged token: error unauthorized, then close 1008."""
    async with guarded(tmp_path) as (served, _), ws_client(served) as conn:
        frame: dict[str, Any] = {"type": "hello", "v": 1}
        if bad:
            frame["token"] = bad
        await send(conn, **frame)
        assert await _error_code(conn) == "unauthorized"
        assert await close_code(conn) == 1008


async def test_no_hello_in_time_closes_1008(tmp_path: Path) -> None:
    """A connection that never says hello is closed 1008 after TETHER_HELLO_TIMEOUT."""
    async with guarded(tmp_path, hello_timeout=0.2) as (served, _), ws_client(served) as conn:
        assert await _error_code(conn) == "hello_timeout"
        assert await close_code(conn) == 1008


async def test_another_users_session_is_unknown_4404(tmp_path: Path) -> None:
    """Resuming or observing someone else's session looks exactly like an unknown one."""
    async with guarded(tmp_path) as (served, _), ws_client(served) as owner:
        await hello(owner, "alice")
        sid = (await start(owner))["id"]
        for kind in ("resume", "observe"):
            async with ws_client(served) as intruder:
                await hello(intruder, "mallory")
                await send(intruder, type=kind, session_id=sid)
                assert await _error_code(intruder) == "unknown_session"
                assert await close_code(intruder) == 4404
        async with ws_client(served) as lost:
            await hello(lost, "alice")
            await send(lost, type="resume", session_id="0" * 32)
            assert await _error_code(lost) == "unknown_session"
            assert await close_code(lost) == 4404
        await send(owner, type="ping")
        assert (await recv_type(owner, "pong"))["type"] == "pong"


async def test_too_many_connections_for_one_user_close_4029(tmp_path: Path) -> None:
    """Past TETHER_MAX_CONNECTIONS_PER_USER a new connection is refused after hello."""
    async with (
        guarded(tmp_path, max_connections_per_user=2) as (served, _),
        ws_client(served) as one,
        ws_client(served) as two,
        ws_client(served) as three,
    ):
        await hello(one)
        await hello(two)
        await send(three, type="hello", token=token("alice"), v=1)
        assert await _error_code(three) == "too_many_connections"
        assert await close_code(three) == 4029
        async with ws_client(served) as other_user:
            assert (await hello(other_user, "bob"))["type"] == "welcome"


async def test_per_message_compression_is_never_negotiated(tmp_path: Path) -> None:
    """A client offering permessage-deflate gets an uncompressed connection."""
    async with guarded(tmp_path) as (served, _), ws_client(served, compression="deflate") as conn:
        assert conn.response is not None
        assert "Sec-WebSocket-Extensions" not in conn.response.headers
        assert (await hello(conn))["type"] == "welcome"
