"""`tether serve` with TETHER_LLM_*: WebSocket messages answered by the fake LLM process.

A real tether server (uvicorn) and real WebSocket clients, a real fake LLM
server in its own process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from service_kit import (
    WAIT,
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
from websockets.asyncio.client import ClientConnection

from llm_kit import FakeLLM
from tether.service import create_app

SYSTEM = "You are terse."


def settings_for(tmp_path: Path, fake_llm: FakeLLM, model: str, **more: Any) -> Any:
    return make_settings(
        tmp_path,
        llm_base_url=fake_llm.base_url,
        llm_model=model,
        llm_system_prompt=SYSTEM,
        **more,
    )


async def reply_to(conn: ClientConnection, content: str) -> tuple[list[str], dict[str, Any]]:
    """Send a user message; the reply.delta texts, then the stored assistant message."""
    await send(conn, type="message", role="user", content=content)
    deltas: list[str] = []
    while True:
        frame = await recv(conn)
        if frame["type"] == "reply.delta":
            deltas.append(frame["text"])
        elif frame["type"] == "transcript.message" and frame["message"]["role"] == "assistant":
            return deltas, frame["message"]


async def test_a_user_message_gets_a_streamed_reply_stored_once(
    tmp_path: Path, fake_llm: FakeLLM
) -> None:
    """reply.delta frames build up the answer; then ONE assistant message holds all of it,
    and the endpoint was sent the system prompt and the transcript."""
    settings = settings_for(tmp_path, fake_llm, "echo:0.01")
    async with live_server(create_app(settings), settings) as served, ws_client(served) as conn:
        await hello(conn)
        await start(conn)
        deltas, message = await reply_to(conn, "hello there")
        assert "".join(deltas) == message["content"] == "Echo: hello there"
        assert message["metadata"]["reply_id"]
        assert "partial" not in message["metadata"]
        request = await fake_llm.last()
        assert request["body"]["stream"] is True
        assert request["body"]["messages"] == [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "hello there"},
        ]


async def test_the_history_and_the_sessions_own_system_prompt_reach_the_model(
    tmp_path: Path, fake_llm: FakeLLM
) -> None:
    """A second message carries the first exchange as history; config.system_prompt wins."""
    settings = settings_for(tmp_path, fake_llm, "echo")
    async with live_server(create_app(settings), settings) as served, ws_client(served) as conn:
        await hello(conn)
        await start(conn, config={"system_prompt": "Speak like a pirate."})
        await reply_to(conn, "one")
        _, second = await reply_to(conn, "two")
        assert second["content"] == "Echo: two"
        assert (await fake_llm.last())["body"]["messages"] == [
            {"role": "system", "content": "Speak like a pirate."},
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "Echo: one"},
            {"role": "user", "content": "two"},
        ]


async def test_ending_mid_reply_cancels_the_request_and_stores_it_partial(
    tmp_path: Path, fake_llm: FakeLLM
) -> None:
    """`end` while the model streams: the endpoint sees its connection close, and the archive
    holds the text streamed so far with partial: true."""
    await fake_llm.forget()
    settings = settings_for(tmp_path, fake_llm, "endless:0.02")
    async with live_server(create_app(settings), settings) as served:
        async with ws_client(served) as conn:
            await hello(conn)
            await start(conn)
            await send(conn, type="message", role="user", content="go on forever")
            await recv_type(conn, "reply.delta")
            await send(conn, type="end")
            ended = await recv_type(conn, "session.ended")
            assert await close_code(conn) == 1000

        async def cut() -> bool:
            return bool((await fake_llm.last())["disconnected"])

        await eventually(cut, WAIT)
        async with served.client() as client:
            archive = await client.get(
                f"/api/v1/users/alice/archives/{ended['archive_id']}", headers=auth("alice")
            )
        messages = archive.json()["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[1]["content"].startswith("t0 ")
        assert messages[1]["metadata"]["partial"] is True


async def test_a_new_message_mid_reply_cancels_the_old_request(
    tmp_path: Path, fake_llm: FakeLLM
) -> None:
    """Barge-in: a user message while a reply streams closes that reply's HTTP request,
    stores it partial, and the new message gets a request of its own."""
    await fake_llm.forget()
    settings = settings_for(tmp_path, fake_llm, "endless:0.02")
    async with live_server(create_app(settings), settings) as served, ws_client(served) as conn:
        await hello(conn)
        session = await start(conn)
        await send(conn, type="message", role="user", content="first")
        await recv_type(conn, "reply.delta")
        await send(conn, type="message", role="user", content="second")

        async def barged() -> bool:
            requests = await fake_llm.requests()
            return len(requests) == 2 and bool(requests[0]["disconnected"])

        await eventually(barged, WAIT)
        async with served.client() as client:
            listed = await client.get(
                f"/api/v1/sessions/{session['id']}/messages", headers=auth("alice")
            )
        messages = listed.json()["messages"]
        assert sorted(m["role"] for m in messages[:3]) == ["assistant", "user", "user"]
        cut = next(m for m in messages if m["role"] == "assistant")
        assert cut["content"].startswith("t0 ")
        assert cut["metadata"]["partial"] is True
        history = (await fake_llm.requests())[1]["body"]["messages"]
        assert history[-1] == {"role": "user", "content": "second"}


@pytest.mark.parametrize(
    ("model", "cause", "streamed"),
    [
        ("status:500", "status", ""),
        ("status:401", "status", ""),
        ("status:429", "status", ""),
        ("hang", "timeout", ""),
        ("bad-json", "malformed", "Echo: "),
        ("no-done", "dropped", "Echo: hello"),
        ("drop", "dropped", "Echo: hello"),
    ],
)
async def test_every_endpoint_failure_is_reply_failed_and_the_session_lives(
    tmp_path: Path,
    fake_llm: FakeLLM,
    caplog: pytest.LogCaptureFixture,
    model: str,
    cause: str,
    streamed: str,
) -> None:
    """An error status, a timeout, a malformed chunk or a dropped stream: the client gets
    error {code: "reply_failed"}, the cause is logged (no session id), what streamed is
    stored partial, and the session stays active and takes the next message."""
    caplog.set_level(logging.WARNING, logger="tether.integrations.openai")
    settings = settings_for(tmp_path, fake_llm, model, llm_timeout=0.3)
    async with live_server(create_app(settings), settings) as served, ws_client(served) as conn:
        await hello(conn)
        session = await start(conn)
        await send(conn, type="message", role="user", content="hello")
        error = await recv_type(conn, "error")
        assert error["code"] == "reply_failed"
        await send(conn, type="ping")
        await recv_type(conn, "pong")
        async with served.client() as client:
            info = await client.get(f"/api/v1/sessions/{session['id']}", headers=auth("alice"))
            listed = await client.get(
                f"/api/v1/sessions/{session['id']}/messages", headers=auth("alice")
            )
        assert info.json()["state"] == "active"
        messages = listed.json()["messages"]
        assert messages[0]["content"] == "hello"
        if streamed:
            assert messages[1]["content"] == streamed
            assert messages[1]["metadata"]["partial"] is True
        assert "reply failed session=" in caplog.text
        assert f"cause={cause}" in caplog.text
        assert session["id"] not in caplog.text
