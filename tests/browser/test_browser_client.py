"""tether.js in headless Chromium against a real server: held media released, observing.

The page is a bare document on the server's origin that imports the client
from ``/static/tether.js``. What it holds is real: a MediaStream from a
canvas, the MediaStream of an AudioContext's destination, the AudioContext
itself (no permission is needed for any of them). Every way a session ends
must leave the tracks ``ended`` and the context ``closed``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from browser_kit import (
    ADMIN,
    CLIENT_PAGE,
    IDLE,
    LiveServer,
    client_page,
    token_for,
    wait_until,
)
from playwright.sync_api import BrowserContext, Page

HOLD = """async ({ token, transport }) => {
  const session = window.tether.connect({ token, kind: "chat", activity: false, transport });
  window.session = session;
  window.events = [];
  for (const name of ["ended", "status", "error"]) {
    session.on(name, (d) => window.events.push([name, d]));
  }
  await session.ready;
  window.held = makeHeld(session);
  return session.id;
}"""

MAKE_HELD = """() => {
window.makeHeld = (session) => {
  const canvas = document.createElement("canvas");
  canvas.getContext("2d").fillRect(0, 0, 4, 4);
  const video = canvas.captureStream(10);
  const audio = new AudioContext();
  const sound = audio.createMediaStreamDestination();
  const held = { video, audio, sound: sound.stream, calls: 0 };
  session.hold(video);
  session.hold(sound.stream);
  session.hold(audio);
  session.hold(() => { held.calls += 1; });
  return held;
};
window.releasedState = (held) => ({
  video: held.video.getTracks().map((t) => t.readyState),
  sound: held.sound.getTracks().map((t) => t.readyState),
  audio: held.audio.state,
  calls: held.calls,
});
}"""

RELEASED = {"video": ["ended"], "sound": ["ended"], "audio": "closed", "calls": 1}


def held_page(context: BrowserContext, server: LiveServer) -> Page:
    """The client page, with makeHeld() and releasedState() defined in it."""
    page = client_page(context, server)
    page.evaluate(MAKE_HELD)
    return page


def released(page: Page, held: str = "window.held") -> dict[str, Any]:
    """What the held things look like now (track states, context state, calls)."""
    state: dict[str, Any] = page.evaluate(f"releasedState({held})")
    return state


def ended_reason(page: Page) -> str | None:
    reason: str | None = page.evaluate(
        "window.session.endedDetail && window.session.endedDetail.reason"
    )
    return reason


def _server_ends(server: LiveServer, page: Page, session_id: str) -> None:
    server.http.post(f"/api/v1/sessions/{session_id}/end", headers=ADMIN).raise_for_status()


def _client_ends(server: LiveServer, page: Page, session_id: str) -> None:
    page.evaluate("window.session.end()")


def _idle_times_out(server: LiveServer, page: Page, session_id: str) -> None:
    for _ in range(int(IDLE) // 5 + 2):
        if server.session(session_id)["end_reason"] is not None:
            return
        server.advance(5)


def _replaced(server: LiveServer, page: Page, session_id: str) -> None:
    user = server.session(session_id)["user"]
    limit = server.settings.max_sessions_per_user
    for _ in range(limit):  # the per-user limit reached: the oldest (the page's) is replaced
        server.run(server.manager.start(user, kind="chat"))


END_PATHS: dict[str, tuple[Callable[[LiveServer, Page, str], None], str]] = {
    "server_end": (_server_ends, "admin"),
    "client_end": (_client_ends, "client_ended"),
    "idle_timeout": (_idle_times_out, "idle_timeout"),
    "replaced": (_replaced, "replaced"),
}


@pytest.mark.parametrize("transport", ["websocket", "sse"])
@pytest.mark.parametrize("path", list(END_PATHS))
def test_every_end_stops_the_held_tracks_and_closes_the_audio_context(
    server: LiveServer, context: BrowserContext, path: str, transport: str
) -> None:
    """A real MediaStream's tracks end and a real AudioContext closes on each way a session ends."""
    page = held_page(context, server)
    user = f"holder-{path.replace('_', '-')}-{transport}"
    session_id = page.evaluate(HOLD, {"token": token_for(server, user), "transport": transport})
    assert page.evaluate("window.session.transport") == transport
    assert released(page) == {
        "video": ["live"],
        "sound": ["live"],
        "audio": page.evaluate("window.held.audio.state"),
        "calls": 0,
    }
    assert released(page)["audio"] != "closed"

    end, reason = END_PATHS[path]
    end(server, page, session_id)
    wait_until(lambda: ended_reason(page) == reason, f"the page sees the end ({reason})")
    wait_until(lambda: released(page) == RELEASED, "everything held released")
    assert server.session(session_id)["end_reason"] == reason


def test_pagehide_releases_what_the_page_holds(server: LiveServer, context: BrowserContext) -> None:
    """A real pagehide (the frame running the session navigates away) stops tracks, closes audio."""
    page = held_page(context, server)
    token = token_for(server, "holder-pagehide")
    session_id = page.evaluate(
        """async ({ token, path }) => {
          const frame = document.createElement("iframe");
          frame.src = path;
          document.body.append(frame);
          await new Promise((resolve) => frame.addEventListener("load", resolve, { once: true }));
          const win = frame.contentWindow;
          const tether = await win.eval('import("/static/tether.js")');
          const session = tether.connect({ token, kind: "chat", activity: false });
          await session.ready;
          window.frameHeld = makeHeld(session);
          window.frame = frame;
          return session.id;
        }""",
        {"token": token, "path": CLIENT_PAGE},
    )
    assert released(page, "window.frameHeld")["video"] == ["live"]
    page.evaluate("window.frame.src = 'about:blank'")
    wait_until(
        lambda: released(page, "window.frameHeld") == RELEASED, "released by the frame's pagehide"
    )
    # endOnHide "grace": leaving ended nothing; the presence timeout decides.
    assert server.session(session_id)["end_reason"] is None


def test_something_held_after_the_end_is_released_at_once(
    server: LiveServer, context: BrowserContext
) -> None:
    """A stream handed to an ended session (a late getUserMedia) is stopped at once, not leaked."""
    page = held_page(context, server)
    page.evaluate(HOLD, {"token": token_for(server, "holder-late"), "transport": "websocket"})
    page.evaluate("window.session.end()")
    wait_until(lambda: ended_reason(page) == "client_ended", "the end")
    late = page.evaluate(
        """() => {
          const canvas = document.createElement("canvas");
          const stream = canvas.captureStream(10);
          window.session.hold(stream);
          return stream.getTracks().map((t) => t.readyState);
        }"""
    )
    assert late == ["ended"]


OBSERVE = """async ({ token, observe }) => {
  const session = window.tether.connect({ token, observe });
  window.session = session;
  window.events = [];
  for (const name of ["started", "status", "message", "ended", "error"]) {
    session.on(name, (d) => window.events.push([name, d]));
  }
  window.closedWith = undefined;
  session.closed.then((detail) => { window.closedWith = detail; });
}"""


def events(page: Page, name: str) -> list[Any]:
    found: list[Any] = page.evaluate(
        "(name) => window.events.filter(([n]) => n === name).map(([, d]) => d)", name
    )
    return found


def test_observer_of_a_session_sees_its_messages_and_never_counts_as_activity(
    server: LiveServer, context: BrowserContext
) -> None:
    """observe {sessionId}: the transcript arrives, user input sends no activity, end() ends it."""
    user = "observed-by-id"
    session = server.start_session(user)
    server.append(session["id"], "assistant", "Hello from the agent")
    before = server.session(session["id"])["last_activity"]
    page = client_page(context, server)
    observe = {"sessionId": session["id"]}
    page.evaluate(OBSERVE, {"token": token_for(server, user), "observe": observe})
    wait_until(lambda: events(page, "started"), "the observer attached")
    assert events(page, "started")[0]["resumed"] is True
    wait_until(lambda: events(page, "message"), "the transcript tail")
    assert events(page, "message")[0]["message"]["content"] == "Hello from the agent"

    server.advance(5)  # from here, any activity would move last_activity
    page.mouse.move(20, 20)
    page.mouse.move(200, 100)
    page.keyboard.press("a")
    page.evaluate("window.session.activity()")
    sent_message = page.evaluate(
        """() => {
          try { window.session.sendMessage('hi'); return 'sent'; } catch (e) { return e.message; }
        }"""
    )
    assert "observer" in sent_message
    # a round trip after the input: a config change comes back to the page
    page.evaluate("window.session.setConfig({ watched: true })")
    wait_until(lambda: server.session(session["id"])["config"] == {"watched": True}, "the config")
    assert server.session(session["id"])["last_activity"] == before
    assert server.session(session["id"])["message_count"] == 1

    page.evaluate("window.session.end()")
    wait_until(lambda: ended_reason(page) == "client_ended", "the observer ended the session")
    assert server.session(session["id"])["end_reason"] == "client_ended"


def test_observer_waits_for_the_users_next_session_and_attaches_when_it_starts(
    server: LiveServer, context: BrowserContext
) -> None:
    """observe {user: "me"}: status awaiting until the user starts a session, then it is watched."""
    user = "observed-next"
    page = client_page(context, server)
    page.evaluate(OBSERVE, {"token": token_for(server, user), "observe": {"waitS": 60}})
    expect_status = "window.session.status"
    wait_until(lambda: page.evaluate(expect_status) == "awaiting", "awaiting the next session")
    assert events(page, "started") == []

    session = server.start_session(user)
    wait_until(lambda: events(page, "started"), "attached to the new session")
    assert events(page, "started")[0]["session"]["id"] == session["id"]
    assert page.evaluate("window.session.status") == "open"
    server.append(session["id"], "assistant", "Ringing")
    wait_until(lambda: events(page, "message"), "its messages reach the observer")

    server.http.post(f"/api/v1/sessions/{session['id']}/end", headers=ADMIN).raise_for_status()
    wait_until(lambda: ended_reason(page) == "admin", "the observer sees the end")


def test_observer_whose_wait_runs_out_closes_with_observe_timeout(
    server: LiveServer, context: BrowserContext
) -> None:
    """No session within waitS: an observe_timeout error, the client closes, nothing ended."""
    user = "observed-never"
    page = client_page(context, server)
    page.evaluate(OBSERVE, {"token": token_for(server, user), "observe": {"waitS": 0}})
    wait_until(lambda: page.evaluate("window.closedWith === null"), "the observer closed")
    assert [e["code"] for e in events(page, "error")] == ["observe_timeout"]
    assert events(page, "ended") == []
    assert server.sessions(user=user) == []


def test_observer_sends_no_activity_frames_on_the_wire(
    server: LiveServer, context: BrowserContext
) -> None:
    """Over the real WebSocket an observer's frames are hello, observe, ping, config, end only."""
    user = "observed-wire"
    session = server.start_session(user)
    page = client_page(context, server)
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: frames.append(payload)))
    observe = {"sessionId": session["id"]}
    page.evaluate(OBSERVE, {"token": token_for(server, user), "observe": observe})
    wait_until(lambda: events(page, "started"), "attached")
    page.mouse.move(10, 10)
    page.keyboard.press("b")
    page.evaluate("window.session.activity()")
    page.evaluate("window.session.end()")
    wait_until(lambda: ended_reason(page) == "client_ended", "ended")

    types = [json.loads(f)["type"] for f in frames if isinstance(f, str)]
    assert types[:2] == ["hello", "observe"]
    assert "activity" not in types
    assert "end" in types
