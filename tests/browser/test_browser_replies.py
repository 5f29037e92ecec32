"""Streamed replies and app events reaching tether.js in headless Chromium.

The server side is the conversation API of issue 17 (``manager.reply``,
``manager.send_app``), driven in the live server's own loop; the page is
tether.js over a WebSocket or over SSE, and the demo page. A reply is held
open half-way (an asyncio.Event in the server's loop), so the tests see it
building before it completes.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Any

import pytest
from browser_kit import ADMIN, LiveServer, client_page, open_demo, token_for, wait_until
from playwright.sync_api import BrowserContext, Page, expect

from tether.core.ids import validate_session_id

CONNECT = """async ({ token, transport }) => {
  const session = window.tether.connect({ token, kind: "chat", activity: false, transport });
  window.session = session;
  window.seen = [];
  for (const name of ["reply.delta", "message", "app", "frame"]) {
    session.on(name, (d) => window.seen.push([name, d]));
  }
  await session.ready;
  return session.id;
}"""


class HeldReply:
    """A reply streamed in the server's loop: ``first`` at once, then ``rest`` once let go."""

    def __init__(self, server: LiveServer, session_id: str, first: str, rest: str) -> None:
        self.server = server
        self._gate: asyncio.Event | None = None
        self._first_sent = False
        self.future: Future[str] = asyncio.run_coroutine_threadsafe(
            self._stream(validate_session_id(session_id), first, rest), server.loop
        )
        wait_until(lambda: self._first_sent or self.future.done(), "the first piece sent")
        if self.future.done():
            self.future.result()  # the reply failed: its error, not a timeout later

    async def _stream(self, session_id: Any, first: str, rest: str) -> str:
        self._gate = asyncio.Event()
        async with self.server.manager.reply(session_id, role="assistant") as reply:
            await reply.delta(first)
            self._first_sent = True
            await self._gate.wait()
            await reply.delta(rest)
        reply_id: str = reply.reply_id
        return reply_id

    def finish(self) -> str:
        """Let the rest of the reply go; its reply_id once the reply is complete."""
        wait_until(lambda: self._gate is not None, "the reply started")
        gate = self._gate
        assert gate is not None
        self.server.loop.call_soon_threadsafe(gate.set)
        return self.future.result(10)


def seen(page: Page, name: str) -> list[Any]:
    found: list[Any] = page.evaluate(
        "(name) => window.seen.filter(([n]) => n === name).map(([, d]) => d)", name
    )
    return found


def reply_so_far(page: Page) -> list[str]:
    contents: list[str] = page.evaluate(
        "() => [...window.session.replies.values()].map((r) => r.content)"
    )
    return contents


@pytest.mark.parametrize("transport", ["websocket", "sse"])
def test_a_streamed_reply_builds_up_in_the_client_and_completes_with_its_message(
    server: LiveServer, context: BrowserContext, transport: str
) -> None:
    """reply.delta pieces reach on("reply.delta") with the text so far; the message completes it."""
    page = client_page(context, server)
    user = f"replies-{transport}"
    session_id = page.evaluate(CONNECT, {"token": token_for(server, user), "transport": transport})
    assert page.evaluate("window.session.transport") == transport

    reply = HeldReply(server, session_id, "Hel", "lo, world")
    wait_until(lambda: reply_so_far(page) == ["Hel"], "the first piece, building")
    reply_id = reply.finish()

    wait_until(lambda: seen(page, "message"), "the completing transcript message")
    message = seen(page, "message")[0]["message"]
    assert (message["reply_id"], message["content"]) == (reply_id, "Hello, world")
    deltas = seen(page, "reply.delta")
    assert {d["reply_id"] for d in deltas} == {reply_id}
    assert "".join(d["text"] for d in deltas) == "Hello, world"
    assert deltas[-1]["content"] == "Hello, world"
    assert reply_so_far(page) == []
    frame_types = [f["type"] for f in seen(page, "frame")]
    assert "reply.delta" in frame_types
    assert "transcript.message" in frame_types

    stored = server.http.get(f"/api/v1/sessions/{session_id}/messages", headers=ADMIN)
    assert [m["content"] for m in stored.json()["messages"]] == ["Hello, world"]


@pytest.mark.parametrize("transport", ["websocket", "sse"])
def test_app_events_reach_on_app_and_the_raw_frame_hook(
    server: LiveServer, context: BrowserContext, transport: str
) -> None:
    """manager.send_app's {"type": "app", name, data} reaches on("app") and on("frame") as sent."""
    page = client_page(context, server)
    user = f"app-events-{transport}"
    session_id = page.evaluate(CONNECT, {"token": token_for(server, user), "transport": transport})
    data = {"status": "ringing", "levels": [0.1, 0.4]}
    sid = validate_session_id(session_id)
    # App events are not replayed: send once the page's connection is attached
    # (over SSE, `ready` can come before the event stream is).
    wait_until(lambda: server.manager.connections(sid) >= 1, "the page's connection attached")
    server.run(server.manager.send_app(sid, "call.status", data))
    wait_until(lambda: seen(page, "app"), "the app event")
    assert seen(page, "app") == [{"name": "call.status", "data": data}]
    frames = [f for f in seen(page, "frame") if f["type"] == "app"]
    assert frames == [{"type": "app", "name": "call.status", "data": data}]


def test_the_demo_page_shows_a_reply_building_up(
    server: LiveServer, context: BrowserContext
) -> None:
    """The demo page draws the reply as its pieces arrive, then the message takes its place."""
    page, session_id = open_demo(context, server.url)
    reply = HeldReply(server, session_id, "Tell me about ", "a project you are proud of.")
    building = page.locator("#transcript li.building")
    expect(building).to_have_count(1)
    expect(building).to_contain_text("Tell me about")
    expect(building).to_have_attribute("aria-busy", "true")
    reply_id = reply.finish()
    expect(building).to_have_count(0)
    done = page.locator(f"#transcript li[data-reply-id='{reply_id}']")
    expect(done).to_have_text("InterviewerTell me about a project you are proud of.")
    expect(page.locator("#transcript li")).to_have_count(1)
