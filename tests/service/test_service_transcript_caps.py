"""Transcript caps at the edges: 413 ``transcript_full`` / ``too_large``, nothing stored lost.

Each test runs a real uvicorn with small caps and real clients (httpx,
websockets). A refused append changes nothing: the stored messages stay, the
session goes on, it can still be ended, and its archive has every message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_kit import (
    FAST,
    Served,
    auth,
    hello,
    live_server,
    make_settings,
    recv_type,
    send,
    start,
    ws_client,
)

from tether.errors import MessageTooLarge
from tether.service import create_app


@asynccontextmanager
async def server(
    tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[Served, httpx.AsyncClient]]:
    """A real server with lasting sessions and ``overrides``, and an HTTP client on it."""
    lasting = {"idle_timeout": 60.0, "warn_before": 10.0, "presence_timeout": 60.0}
    settings = make_settings(tmp_path, **{**FAST, **lasting, **overrides})
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        yield served, client


async def post_message(client: httpx.AsyncClient, sid: str, content: str) -> httpx.Response:
    """Alice appends a user message over REST."""
    return await client.post(
        f"/api/v1/sessions/{sid}/messages",
        headers=auth("alice"),
        json={"role": "user", "content": content},
    )


async def archived_contents(client: httpx.AsyncClient) -> list[str]:
    """The messages of alice's only archive."""
    listed = (await client.get("/api/v1/users/alice/archives", headers=auth("alice"))).json()
    (summary,) = listed["archives"]
    url = f"/api/v1/users/alice/archives/{summary['archive_id']}"
    dialog = (await client.get(url, headers=auth("alice"))).json()
    return [m["content"] for m in dialog["messages"]]


async def test_rest_append_past_the_message_cap_is_413_and_keeps_everything(
    tmp_path: Path,
) -> None:
    """The 4th message of a 3-message cap is 413 transcript_full; the session still ends with 3."""
    async with server(tmp_path, max_transcript_messages=3) as (_, client):
        sid = (await client.post("/api/v1/sessions", headers=auth("alice"))).json()["id"]
        for n in range(3):
            assert (await post_message(client, sid, f"m{n}")).status_code == 201
        refused = await post_message(client, sid, "m3")
        assert refused.status_code == 413
        error = refused.json()["error"]
        assert (error["code"], error["limit"]) == ("transcript_full", "messages")
        session = (await client.get(f"/api/v1/sessions/{sid}", headers=auth("alice"))).json()
        assert (session["state"], session["message_count"]) == ("active", 3)
        ended = await client.post(f"/api/v1/sessions/{sid}/end", headers=auth("alice"))
        assert ended.json() == {"ended": True, "reason": "client_ended"}
        assert await archived_contents(client) == ["m0", "m1", "m2"]


async def test_rest_append_past_the_byte_cap_is_413_and_a_smaller_one_still_fits(
    tmp_path: Path,
) -> None:
    """At 900 of 1000 bytes, 200 more are 413 transcript_full (bytes), 100 more are stored."""
    async with server(tmp_path, max_transcript_bytes=1000) as (_, client):
        sid = (await client.post("/api/v1/sessions", headers=auth("alice"))).json()["id"]
        assert (await post_message(client, sid, "a" * 900)).status_code == 201
        refused = await post_message(client, sid, "b" * 200)
        assert refused.status_code == 413
        assert refused.json()["error"]["limit"] == "bytes"
        assert (await post_message(client, sid, "c" * 100)).status_code == 201
        listed = await client.get(f"/api/v1/sessions/{sid}/messages", headers=auth("alice"))
        assert [len(m["content"]) for m in listed.json()["messages"]] == [900, 100]


async def test_rest_message_over_the_content_cap_is_413_too_large(tmp_path: Path) -> None:
    """A message over TETHER_MAX_CONTENT_BYTES (well under the body limit) is 413 too_large."""
    async with server(tmp_path, max_content_bytes=500) as (_, client):
        sid = (await client.post("/api/v1/sessions", headers=auth("alice"))).json()["id"]
        refused = await post_message(client, sid, "x" * 501)
        assert refused.status_code == 413
        assert refused.json()["error"]["code"] == "too_large"
        listed = await client.get(f"/api/v1/sessions/{sid}/messages", headers=auth("alice"))
        assert listed.json()["messages"] == []


async def test_python_api_append_over_the_content_cap_raises(tmp_path: Path) -> None:
    """A server-side append over the content cap raises MessageTooLarge and stores nothing."""
    async with server(tmp_path, max_content_bytes=500) as (served, client):
        sid = (await client.post("/api/v1/sessions", headers=auth("alice"))).json()["id"]
        manager = served.service.manager
        with pytest.raises(MessageTooLarge):
            await manager.append(sid, "assistant", "y" * 501)
        assert await manager.transcript(sid) == []


async def test_websocket_message_past_the_cap_is_an_error_frame_and_the_session_goes_on(
    tmp_path: Path,
) -> None:
    """Over WS the refusal is error transcript_full; ping, end and the archive still work."""
    async with (
        server(tmp_path, max_transcript_messages=2) as (served, client),
        ws_client(served) as conn,
    ):
        await hello(conn, "alice")
        await start(conn)
        for n in range(2):
            await send(conn, type="message", role="user", content=f"m{n}")
            await recv_type(conn, "transcript.message")
        await send(conn, type="message", role="user", content="m2")
        error = await recv_type(conn, "error")
        assert (error["code"], error["limit"]) == ("transcript_full", "messages")
        await send(conn, type="ping")
        await recv_type(conn, "pong")
        await send(conn, type="end")
        ended = await recv_type(conn, "session.ended")
        assert ended["reason"] == "client_ended"
        assert await archived_contents(client) == ["m0", "m1"]
