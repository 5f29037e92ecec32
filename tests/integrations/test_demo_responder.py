"""The demo answers through the responder: the scripted interviewer streams its questions
word by word, and with TETHER_LLM_BASE_URL set the LLM answers instead (and alone).

A real tether server (uvicorn) in demo mode, real WebSocket and HTTP clients, and
for the LLM case the fake OpenAI-compatible server in its own process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service_kit import (
    auth,
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
from tether.service.interviewer import QUESTIONS

SCRIPTED = {"kind": "interview", "config": {"interviewer": "scripted", "job": "Nurse"}}


async def until_answered(conn: ClientConnection) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Frames after a user message: the reply.delta frames, then the assistant's message."""
    deltas: list[dict[str, Any]] = []
    while True:
        frame = await recv(conn)
        if frame["type"] == "reply.delta":
            deltas.append(frame)
        elif frame["type"] == "transcript.message" and frame["message"]["role"] == "assistant":
            return deltas, frame["message"]


async def test_the_scripted_interviewer_streams_its_question_as_deltas(tmp_path: Path) -> None:
    """In demo mode the scripted question arrives as several reply.delta frames of one reply,
    which join to exactly the question, then as ONE assistant transcript message."""
    settings = make_settings(tmp_path, demo=True)
    async with live_server(create_app(settings), settings) as served, ws_client(served) as conn:
        await hello(conn)
        await start(conn, **SCRIPTED)
        await send(conn, type="message", role="user", content="Hello")
        deltas, message = await until_answered(conn)
        question = QUESTIONS[0].format(job="Nurse")
        assert len(deltas) >= 3  # built up word by word, not sent whole
        assert "".join(d["text"] for d in deltas) == message["content"] == question
        assert {d["reply_id"] for d in deltas} == {message["metadata"]["reply_id"]}
        assert {d["role"] for d in deltas} == {"assistant"}
        assert "partial" not in message["metadata"]


async def test_with_an_llm_configured_only_the_llm_answers_the_demo(
    tmp_path: Path, fake_llm: FakeLLM
) -> None:
    """TETHER_DEMO plus TETHER_LLM_BASE_URL: a scripted demo interview is answered by the
    model alone; no scripted question streams, and the archive holds one answer."""
    settings = make_settings(tmp_path, demo=True, llm_base_url=fake_llm.base_url, llm_model="echo")
    async with live_server(create_app(settings), settings) as served, ws_client(served) as conn:
        await hello(conn)
        await start(conn, **SCRIPTED)
        await send(conn, type="message", role="user", content="Hello")
        deltas, message = await until_answered(conn)
        assert message["content"] == "Echo: Hello"
        # The script's first word goes out at once, before the model's HTTP round trip:
        # had it been installed, its deltas (another reply_id) would be among these.
        assert {d["reply_id"] for d in deltas} == {message["metadata"]["reply_id"]}
        await send(conn, type="end")
        ended = await recv_type(conn, "session.ended")
        assert ended["reason"] == "client_ended"
        async with served.client() as http:
            listing = await http.get("/api/v1/users/alice/archives", headers=auth("alice"))
            [archived] = listing.json()["archives"]
            got = await http.get(
                f"/api/v1/users/alice/archives/{archived['archive_id']}", headers=auth("alice")
            )
        transcript = got.json()["messages"]
        assert [(m["role"], m["content"]) for m in transcript] == [
            ("user", "Hello"),
            ("assistant", "Echo: Hello"),
        ]
