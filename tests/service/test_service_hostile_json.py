"""Deep and oversized JSON at every edge: a clear error, the connection kept, nothing stored."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from service_kit import (
    FAST,
    auth,
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

from tether.core.jsonvalue import MAX_PARSE_DEPTH, MAX_VALUE_DEPTH
from tether.service import create_app

DEEP = "[" * 5000 + "]" * 5000
"""10 KB that used to reach json's recursion limit."""


def nested(levels: int) -> dict[str, Any]:
    """An object ``levels`` deep."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert bad == [], [r.getMessage() for r in bad]


async def test_deep_frames_get_bad_json_before_and_after_hello(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """5000-deep and just-too-deep frames: error bad_json, the connection stays, nothing logged."""
    settings = make_settings(tmp_path, **{**FAST, "hello_timeout": 30.0})  # loaded CI
    too_deep = "[" * (MAX_PARSE_DEPTH + 1) + "]" * (MAX_PARSE_DEPTH + 1)
    deep_config = {"type": "config", "config": nested(MAX_VALUE_DEPTH + 1)}
    async with live_server(create_app(settings), settings) as served, ws_client(served) as conn:
        for frame in (DEEP, too_deep, '{"type": "hello", "x": ' + DEEP + "}"):
            await conn.send(frame)
            answer = await recv(conn)
            assert (answer["type"], answer["code"]) == ("error", "bad_json")
        await hello(conn)
        session = await start(conn, config={"v": 1})
        for frame in (DEEP, too_deep):
            await conn.send(frame)
            assert (await recv_type(conn, "error"))["code"] == "bad_json"
        await send(conn, **deep_config)
        refused = await recv_type(conn, "error")
        assert refused["code"] == "invalid_frame"
        assert f"deeper than {MAX_VALUE_DEPTH}" in refused["message"]
        await send(conn, type="config", config=nested(MAX_VALUE_DEPTH))
        assert (await recv_type(conn, "session.config"))["config"] == nested(MAX_VALUE_DEPTH)
        await send(conn, type="ping")
        await recv_type(conn, "pong")
        async with served.client() as http:
            info = (await http.get(f"/api/v1/sessions/{session['id']}", headers=auth())).json()
        assert info["config"] == nested(MAX_VALUE_DEPTH)
    _no_errors_logged(caplog)


async def test_deep_rest_bodies_are_422_and_change_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Deep JSON bodies (any route, with or without a content type): 422, never 400 or 500."""
    settings = make_settings(tmp_path, **FAST)
    async with live_server(create_app(settings), settings) as served, served.client() as http:
        made = await http.post("/api/v1/sessions", headers=auth(), json={"config": {"v": 1}})
        sid = made.json()["id"]
        config_url = f"/api/v1/sessions/{sid}/config"
        for body in (DEEP, '{"config": ' + DEEP + "}"):
            for headers in ({"content-type": "application/json"}, {}):
                for method, url in (("POST", "/api/v1/sessions"), ("PUT", config_url)):
                    response = await http.request(
                        method, url, content=body, headers={**auth(), **headers}
                    )
                    assert response.status_code == 422, (method, url, response.text)
                    assert response.json()["error"]["code"] == "invalid_request"
        too_deep = {"config": nested(MAX_VALUE_DEPTH + 1)}
        response = await http.put(config_url, headers=auth(), json=too_deep)
        assert response.status_code == 422
        assert f"deeper than {MAX_VALUE_DEPTH}" in response.text
        message = {"role": "user", "content": "x", "metadata": nested(MAX_VALUE_DEPTH + 1)}
        response = await http.post(f"/api/v1/sessions/{sid}/messages", headers=auth(), json=message)
        assert response.status_code == 422
        info = (await http.get(f"/api/v1/sessions/{sid}", headers=auth())).json()
        assert info["config"] == {"v": 1}
        assert info["message_count"] == 0
        ok = await http.put(config_url, headers=auth(), json={"config": nested(MAX_VALUE_DEPTH)})
        assert ok.status_code == 200
    _no_errors_logged(caplog)


async def test_a_deep_beacon_body_is_no_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A sendBeacon text/plain body of deep JSON: 401 (no token), the session still live."""
    settings = make_settings(tmp_path, **FAST)
    async with live_server(create_app(settings), settings) as served, served.client() as http:
        sid = (await http.post("/api/v1/sessions", headers=auth())).json()["id"]
        body = '{"token": ' + DEEP + "}"
        response = await http.post(
            f"/api/v1/sessions/{sid}/end", content=body, headers={"content-type": "text/plain"}
        )
        assert response.status_code == 401, response.text
        info = (await http.get(f"/api/v1/sessions/{sid}", headers=auth())).json()
        assert info["state"] == "active"
        beacon = json.dumps({"token": token("alice")})
        ended = await http.post(
            f"/api/v1/sessions/{sid}/end", content=beacon, headers={"content-type": "text/plain"}
        )
        assert ended.json()["ended"] is True
    _no_errors_logged(caplog)


async def test_a_client_hanging_up_mid_body_logs_no_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A request body cut short by the client closing its socket: no ERROR, the server serves on."""
    settings = make_settings(tmp_path, **FAST)
    async with live_server(create_app(settings), settings) as served:
        for _ in range(3):
            _reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
            writer.write(
                b"POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {token('alice')}\r\nContent-Length: 5000\r\n\r\n".encode()
                + b'{"config": {"pad": "'
            )
            await writer.drain()
            writer.close()
            await writer.wait_closed()
        async with served.client() as http:
            assert (await http.post("/api/v1/sessions", headers=auth())).status_code == 201
    _no_errors_logged(caplog)
