"""Conversations over the real transports: hooks from every transport, replies to WS and SSE."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from service_kit import (
    FAST,
    SSEReader,
    auth,
    hello,
    live_server,
    make_settings,
    recv_type,
    send,
    start,
    token,
    ws_client,
)

from tether.core.session import SessionInfo
from tether.core.transcript import Message
from tether.service import create_app

SLOW = {
    **FAST,
    "idle_timeout": 30.0,
    "warn_before": 5.0,
    "presence_timeout": 30.0,
    "hello_timeout": 5.0,
}


async def test_on_message_hears_user_messages_from_websocket_and_rest(tmp_path: Path) -> None:
    """One on_message hook hears a WS message and a REST POST message, once each."""
    settings = make_settings(tmp_path, **SLOW)
    async with live_server(create_app(settings), settings) as served, ws_client(served) as conn:
        heard: asyncio.Queue[str] = asyncio.Queue()

        @served.service.manager.on_message
        async def hear(session: SessionInfo, message: Message) -> None:
            heard.put_nowait(message.content)

        await hello(conn)
        sid = (await start(conn))["id"]
        await send(conn, type="message", role="user", content="over ws")
        assert await asyncio.wait_for(heard.get(), 5) == "over ws"
        async with served.client() as client:
            url = f"/api/v1/sessions/{sid}/messages"
            r = await client.post(
                url, headers=auth("alice"), json={"role": "user", "content": "rest"}
            )
            assert r.status_code == 201
        assert await asyncio.wait_for(heard.get(), 5) == "rest"
        assert heard.empty()


async def test_on_config_hears_rest_put_and_websocket_config(tmp_path: Path) -> None:
    """on_config runs after a REST PUT config and after a WS config frame."""
    settings = make_settings(tmp_path, **SLOW)
    async with live_server(create_app(settings), settings) as served, ws_client(served) as conn:
        seen: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        @served.service.manager.on_config
        async def reconfigure(session: SessionInfo, config: dict[str, Any]) -> None:
            seen.put_nowait(config)

        await hello(conn)
        sid = (await start(conn))["id"]
        await send(conn, type="config", config={"job": "nurse"})
        assert await asyncio.wait_for(seen.get(), 5) == {"job": "nurse"}
        async with served.client() as client:
            r = await client.put(
                f"/api/v1/sessions/{sid}/config", headers=auth("alice"), json={"config": {"j": 2}}
            )
            assert r.status_code == 200
        assert await asyncio.wait_for(seen.get(), 5) == {"j": 2}


async def test_a_streamed_reply_reaches_websocket_and_sse_then_one_message(tmp_path: Path) -> None:
    """reply.delta goes to a WS and an SSE client alike; then one transcript.message, reply_id."""
    settings = make_settings(tmp_path, **SLOW)
    async with live_server(create_app(settings), settings) as served, ws_client(served) as conn:
        manager = served.service.manager
        go = asyncio.Event()

        @manager.on_message
        async def answer(session: SessionInfo, message: Message) -> None:
            async with manager.reply(session.id) as reply:
                await reply.delta("Hel")
                await reply.delta("lo")
                await go.wait()
                await reply.delta("!")

        await hello(conn)
        sid = (await start(conn))["id"]
        async with (
            served.client() as client,
            client.stream(
                "GET", f"/api/v1/sessions/{sid}/events", params={"token": token("alice")}
            ) as response,
        ):
            sse = SSEReader(response)
            await sse.next_event("session.config")
            await send(conn, type="message", role="user", content="hi")
            first = await recv_type(conn, "reply.delta")
            assert (first["role"], first["text"]) == ("assistant", "Hel")  # the first at once
            sse_first = await sse.next_event("reply.delta")
            assert sse_first.data == first
            assert (await recv_type(conn, "reply.delta"))["text"] == "lo"
            go.set()
            assert (await recv_type(conn, "reply.delta"))["text"] == "!"
            done = await recv_type(conn, "transcript.message")
            assert done["message"]["content"] == "Hello!"
            assert done["message"]["metadata"] == {"reply_id": first["reply_id"]}
            sse_done = await sse.next_event("transcript.message")
            assert sse_done.data is not None
            assert sse_done.data["message"]["content"] == "Hello!"
        async with served.client() as client:
            r = await client.get(f"/api/v1/sessions/{sid}/messages", headers=auth("alice"))
            assert [m["content"] for m in r.json()["messages"]] == ["hi", "Hello!"]


async def test_a_websocket_resuming_mid_reply_first_gets_the_text_so_far(tmp_path: Path) -> None:
    """resume while a reply streams: after session.resumed, one reply.delta with all sent so far."""
    settings = make_settings(tmp_path, **SLOW)
    async with live_server(create_app(settings), settings) as served:
        manager = served.service.manager
        go = asyncio.Event()

        @manager.on_message
        async def answer(session: SessionInfo, message: Message) -> None:
            async with manager.reply(session.id) as reply:
                await reply.delta("The answer ")
                await asyncio.sleep(0)
                await reply.delta("is ")
                await go.wait()
                await reply.delta("42")

        async with ws_client(served) as first:
            await hello(first)
            sid = (await start(first))["id"]
            await send(first, type="message", role="user", content="?")
            await recv_type(first, "reply.delta")
        async with ws_client(served) as again:
            await hello(again)
            await send(again, type="resume", session_id=sid)
            await recv_type(again, "session.resumed")
            so_far = await recv_type(again, "reply.delta")
            assert so_far["text"] == "The answer is "
            go.set()
            assert (await recv_type(again, "reply.delta"))["text"] == "42"
            done = await recv_type(again, "transcript.message")
            assert done["message"]["content"] == "The answer is 42"
