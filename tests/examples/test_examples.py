"""Each app shape in examples/ works as documented: run as its own process, driven by
real clients (WebSocket, HTTP, a fake Twilio), against the fake LLM server process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from example_kit import ROOT, Example, poll, run_example
from service_kit import WAIT, auth, hello, recv, recv_type, send, start, token
from twilio_kit import STREAM_SID, TwilioCall
from websockets.asyncio.client import ClientConnection, connect

from llm_kit import FakeLLM, start_fake_llm
from tether.service.twilio.audio import tone


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLM]:
    """The fake OpenAI-compatible endpoint, in its own process, stopped by pid."""
    server = start_fake_llm()
    try:
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def ws(example: Example, user: str = "alice") -> AsyncIterator[ClientConnection]:
    """A WebSocket client on the example's /ws, past ``hello``."""
    async with connect(example.ws, compression=None, open_timeout=WAIT) as conn:
        await hello(conn, user)
        yield conn


def test_every_example_says_how_to_run_it_in_its_first_lines() -> None:
    """Each example's docstring gives its one command, and examples/README.md lists it."""
    readme = (ROOT / "examples" / "README.md").read_text()
    for name in ("chat_llm", "voice_call", "rest_chat", "embed_fastapi"):
        head = (ROOT / "examples" / f"{name}.py").read_text()[:1200]
        assert f"uvicorn examples.{name}:app" in head, name
        assert f"examples/{name}.py" in readme, name


async def test_chat_llm_streams_the_models_reply(tmp_path: Path, fake_llm: FakeLLM) -> None:
    """examples/chat_llm.py: a user message is answered by the model as reply.delta frames,
    then one assistant message; the model got the example's system prompt and the message."""
    env = {"LLM_BASE_URL": fake_llm.base_url, "LLM_MODEL": "echo:0.01"}
    async with run_example("chat_llm", tmp_path, **env) as example, ws(example) as conn:
        await start(conn)
        await send(conn, type="message", role="user", content="what is a tether")
        deltas: list[str] = []
        while True:
            frame = await recv(conn)
            if frame["type"] == "reply.delta":
                deltas.append(frame["text"])
            elif frame["type"] == "transcript.message" and frame["message"]["role"] == "assistant":
                break
        assert len(deltas) >= 2
        assert "".join(deltas) == frame["message"]["content"] == "Echo: what is a tether"
        messages = (await fake_llm.last())["body"]["messages"]
        assert messages[0]["role"] == "system"
        assert "tutor" in messages[0]["content"]
        assert messages[1:] == [{"role": "user", "content": "what is a tether"}]


async def test_voice_call_is_watched_by_an_observer(tmp_path: Path) -> None:
    """examples/voice_call.py: an observer waiting for alice's next session sees the call go
    in-progress, the greeting in the transcript, the call end, then session.ended."""
    async with run_example("voice_call", tmp_path) as example, ws(example) as observer:
        await send(observer, type="observe", user="me", wait_s=WAIT)
        url = f"ws://127.0.0.1:{example.port}/twilio/media"
        async with connect(url, compression=None, open_timeout=WAIT) as line:
            call = TwilioCall(line)
            await call.begin({"token": token("alice"), "job": "nurse"})
            status = await recv_type(observer, "call.status_changed")
            assert (status["status"], status["stream_sid"]) == ("in-progress", STREAM_SID)
            greeting = await recv_type(observer, "transcript.message")
            assert greeting["message"]["role"] == "assistant"
            assert "nurse" in greeting["message"]["content"]
            played = await call.recv()  # the greeting's audio, on the line
            assert played["event"] == "media"
            assert played["streamSid"] == STREAM_SID
            await call.audio(tone(300, 0.2))  # the caller speaks
            await call.stop()  # and hangs up
            after: list[dict[str, Any]] = []
            while not after or after[-1]["type"] != "session.ended":
                after.append(await recv(observer))
        statuses = [f["status"] for f in after if f["type"] == "call.status_changed"]
        assert statuses == ["ended"]  # before session.ended
        assert after[-1]["reason"] == "client_ended"


async def test_rest_chat_ends_on_idle_and_archives(tmp_path: Path) -> None:
    """examples/rest_chat.py over REST only: notes are answered, heartbeats keep nothing
    alive past the idle timeout, and the archive of the idle end reads back over GET."""
    env = {"TETHER_IDLE_TIMEOUT": "1.5", "TETHER_WARN_BEFORE": "0.5"}
    async with run_example("rest_chat", tmp_path, **env) as example, example.client() as http:
        alice = auth("alice")
        made = await http.post("/api/v1/sessions", headers=alice, json={"kind": "notes"})
        sid = made.json()["id"]
        for note in ("buy milk", "call mum"):
            sent = await http.post(
                f"/api/v1/sessions/{sid}/messages",
                headers=alice,
                json={"role": "user", "content": note},
            )
            assert sent.status_code == 201
            await poll(lambda: _answered(http, sid), "an answer to " + note)
        assert (await http.post(f"/api/v1/sessions/{sid}/heartbeat", headers=alice)).is_success

        async def archives() -> list[dict[str, Any]]:
            listing = await http.get("/api/v1/users/alice/archives", headers=alice)
            found: list[dict[str, Any]] = listing.json()["archives"]
            return found

        async def archived_on_idle() -> bool:
            return bool(await archives())

        await poll(archived_on_idle, "archive after the idle end", within=6.0)
        [archived] = await archives()
        assert archived["end_reason"] == "idle_timeout"
        got = await http.get(
            f"/api/v1/users/alice/archives/{archived['archive_id']}", headers=alice
        )
        lines = [(m["role"], m["content"]) for m in got.json()["messages"]]
        assert lines == [
            ("user", "buy milk"),
            ("assistant", "Noted (1 so far)."),
            ("user", "call mum"),
            ("assistant", "Noted (2 so far)."),
        ]


async def _answered(http: Any, sid: str) -> bool:
    got = await http.get(f"/api/v1/sessions/{sid}/messages", headers=auth("alice"))
    messages = got.json()["messages"]
    return bool(messages) and messages[-1]["role"] == "assistant"
