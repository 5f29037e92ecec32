"""Seed 001 end to end: a practice phone call, watched and briefed from a browser.

The server is examples/practice_call (tether, the Twilio bridge, the built-in
OpenAI-compatible responder pointed at the fake LLM process, the briefing
``on_config`` hook and the page at ``/practice``) under real uvicorn; the
browser is headless Chromium on that page; the phone is a WebSocket client
speaking Twilio's Media Streams messages (tests/service/twilio_kit.py) from a
thread of its own. The bridge has no speech-to-text, so the caller's words
reach the transcript the way an app's STT would put them there:
``manager.append(session_id, "user", words)``, while the phone sends real
speech-level audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import sys
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from browser_kit import (
    ADMIN,
    WAIT,
    LiveServer,
    running_server,
    settings_for,
    token_for,
    wait_until,
)
from playwright.sync_api import BrowserContext, Page, expect

from tether.core.ids import validate_session_id
from tether.service.twilio.audio import tone

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "service"))
from service_kit import Served
from tests.llm_kit import FakeLLM, start_fake_llm
from twilio_kit import STREAM_SID, TwilioCall, twilio_call

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "practice_call" / "app.py"
JOB = {"title": "Backend engineer", "company": "Acme", "focus": "distributed systems"}


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("practice_call_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


practice = _example()


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLM]:
    """The fake OpenAI-compatible server, a process of its own."""
    llm = start_fake_llm()
    try:
        yield llm
    finally:
        llm.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake_llm: FakeLLM) -> Iterator[LiveServer]:
    """examples/practice_call's app, its responder answering through the fake LLM."""
    data_dir = tmp_path_factory.mktemp("practice-server")
    settings = settings_for(data_dir).model_copy(
        # echo, one word every 20 ms: every reply streams as several pieces
        update={"llm_base_url": fake_llm.base_url, "llm_model": "echo:0.02"}
    )
    with running_server(data_dir, settings=settings, build=practice.build) as live:
        yield live


class Phone:
    """Twilio's side of calls, played in an event loop on a thread of its own."""

    def __init__(self, server: LiveServer) -> None:
        self.served = Served(server.app, server.port)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fake-twilio")
        self._thread.start()
        self._stack: contextlib.AsyncExitStack | None = None
        self.call: TwilioCall | None = None

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(WAIT)

    def dial(self, token: str, stream_sid: str, **params: str) -> None:
        """Open the media stream and send ``connected`` and ``start``."""
        self.call = self._run(self._dial({"token": token, **params}, stream_sid))

    async def _dial(self, params: dict[str, str], stream_sid: str) -> TwilioCall:
        self._stack = contextlib.AsyncExitStack()
        call = await self._stack.enter_async_context(twilio_call(self.served, stream_sid))
        await call.begin(params)
        return call

    def speak(self) -> None:
        """Half a second of speech-level audio on the inbound track."""
        assert self.call is not None
        self._run(self.call.audio(tone(300, 0.5, level_dbfs=-20.0)))

    def hang_up(self) -> int | None:
        """``stop``, then read until tether closes the stream; the close code."""
        assert self.call is not None
        assert self._stack is not None
        self._run(self.call.stop())
        code = self._run(self.call.closed())
        self._run(self._stack.aclose())
        self.call = self._stack = None
        return code

    def close(self) -> None:
        if self._stack is not None:
            with contextlib.suppress(Exception):
                self._run(self._stack.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT)
        self.loop.close()


@pytest.fixture
def phone(server: LiveServer) -> Iterator[Phone]:
    """A fake Twilio for one test."""
    line = Phone(server)
    try:
        yield line
    finally:
        line.close()


def waiting_for_next_session(server: LiveServer, user: str) -> bool:
    """The page's observer is registered, server side, for ``user``'s next session."""
    return user in server.service.watch._waiters


def caller_says(server: LiveServer, session_id: str, words: str) -> None:
    """What the app's speech-to-text would do with the caller's words."""
    server.run(server.manager.append(validate_session_id(session_id), "user", words))


def llm_requests(server: LiveServer, fake_llm: FakeLLM) -> list[dict[str, Any]]:
    return server.run(fake_llm.requests())


def transcript(page: Page) -> list[tuple[str, str]]:
    items: list[list[str]] = page.eval_on_selector_all(
        "#transcript li", "(lis) => lis.map((li) => [li.dataset.role, li.textContent])"
    )
    return [(role, text) for role, text in items]


def open_practice(context: BrowserContext, server: LiveServer, user: str) -> Page:
    """The practice page, logged in as ``user``, the job typed in, waiting for the call."""
    page = context.new_page()
    page.goto(f"{server.url}/practice#token={token_for(server, user)}")
    page.fill("#job-title", JOB["title"])
    page.fill("#job-company", JOB["company"])
    page.fill("#job-focus", JOB["focus"])
    page.click("#wait")
    expect(page.locator("#status")).to_have_text("waiting for your call")
    wait_until(lambda: waiting_for_next_session(server, user), "the page's observer waiting")
    return page


def practise_one_call(
    server: LiveServer, fake_llm: FakeLLM, page: Page, phone: Phone, user: str, *, stream_sid: str
) -> str:
    """One call: dialled, briefed, one exchange, hung up. The session id."""
    phone.dial(token_for(server, user), stream_sid, line="practice")
    expect(page.locator("#call-status")).to_have_text("in-progress")
    expect(page.locator("#status")).to_have_text("call in progress")
    session_id = page.locator("#session-id").inner_text()
    assert server.session(session_id)["kind"] == "call"

    # The job reached the session's config; on_config turned it into the prompt.
    expect(page.locator("#briefed")).to_have_text("Backend engineer at Acme")
    config = server.session(session_id)["config"]
    prompt = practice.interviewer_prompt(JOB)
    assert config == {"line": "practice", "job": JOB, "system_prompt": prompt}

    # The caller answers; the responder's reply streams into the page.
    expect(page.locator("#transcript li")).to_have_count(0)
    phone.speak()
    caller_says(server, session_id, "I split the monolith into three services")
    assistant = page.locator("#transcript li[data-role='assistant']:not(.building)")
    expect(assistant).to_have_count(1)  # the stored reply took the streamed one's place
    expect(page.locator("#transcript li")).to_have_count(2)
    expect(assistant).to_have_text("Echo: I split the monolith into three services")
    assert int(assistant.get_attribute("data-deltas") or 0) > 1, "built up from reply.delta pieces"
    assert transcript(page) == [
        ("user", "I split the monolith into three services"),
        ("assistant", "Echo: I split the monolith into three services"),
    ]
    # What the model was told: the job's prompt, then this call's words only.
    sent = llm_requests(server, fake_llm)[-1]["body"]["messages"]
    assert sent == [
        {"role": "system", "content": prompt},
        {"role": "user", "content": "I split the monolith into three services"},
    ]

    # The caller hangs up: the page hears the call end, then the session's end.
    assert phone.hang_up() is not None
    expect(page.locator("#end-reason")).to_have_text("client_ended")
    expect(page.locator("#status")).to_have_text("call ended")
    expect(page.locator("#call-status")).to_have_text("ended")
    assert page.locator("#log li").all_text_contents() == [
        "session started",
        "call in-progress",
        "call ended",
        "session ended client_ended",
    ]
    return session_id


def test_a_practice_call_is_briefed_watched_ended_and_practised_again(
    server: LiveServer, fake_llm: FakeLLM, context: BrowserContext, phone: Phone
) -> None:
    """The page follows the next call, briefs the LLM with the job, streams it, sees it end,
    and "Practice again" follows a fresh call with the same job and an empty transcript."""
    user = "practice-caller"
    page = open_practice(context, server, user)
    first = practise_one_call(server, fake_llm, page, phone, user, stream_sid=STREAM_SID)
    assert server.session(first)["state"] == "ended"

    page.click("#again")
    expect(page.locator("#status")).to_have_text("waiting for your call")
    expect(page.locator("#transcript li")).to_have_count(0)
    expect(page.locator("#call-status")).to_have_text("none")
    wait_until(lambda: waiting_for_next_session(server, user), "the page waiting again")
    second = practise_one_call(server, fake_llm, page, phone, user, stream_sid="MZ" + "3" * 32)
    assert second != first
    stored = server.http.get(f"/api/v1/sessions/{second}/messages", headers=ADMIN).json()
    assert [m["content"] for m in stored["messages"]] == [
        "I split the monolith into three services",
        "Echo: I split the monolith into three services",
    ]  # this call's exchange only: the practice started from an empty transcript
