"""The demo page at ``/`` in headless Chromium, against a real server.

Idle time is fake on both sides: the server's manager runs on a FakeClock
and the page on Playwright's clock, moved together by ``elapse``. The
policy (browser_kit) warns after 40 s without activity and ends 20 s later.
"""

from __future__ import annotations

import time
from pathlib import Path

from browser_kit import (
    ADMIN,
    PRESENCE,
    WARN,
    LiveServer,
    TcpProxy,
    countdown_seconds,
    elapse,
    open_demo,
    say,
    wait_until,
)
from playwright.sync_api import BrowserContext, Page, expect

DIALOG = ".tether-dialog"
COUNTDOWN = ".tether-dialog-countdown"


def until_warning(server: LiveServer, page: Page) -> None:
    """Let idle time pass until the page shows the warning dialog.

    Idle time starts once the interviewer's reply is over (a streaming reply
    keeps the session busy), so wait for that first.
    """
    wait_until(
        lambda: not any(s["busy"] for s in server.sessions()), "no session busy with a reply"
    )
    dialog = page.locator(DIALOG)
    elapse(server, page, 60, until=dialog.is_visible)
    expect(dialog).to_be_visible()


def test_demo_page_starts_a_session_the_server_lists(
    server: LiveServer, context: BrowserContext
) -> None:
    """Loading / starts an interview: the page shows its id and state, the server lists it."""
    page, session_id = open_demo(context, server.url)
    expect(page.locator("#conn-status")).to_have_text("open")
    expect(page.locator("#empty-hint")).to_be_visible()
    listed = {s["id"]: s for s in server.sessions()}
    assert session_id in listed
    assert listed[session_id]["kind"] == "interview"
    assert listed[session_id]["config"]["interviewer"] == "scripted"
    assert listed[session_id]["user"].startswith("demo-")

    say(page, "Hello!", expect_messages=2)
    question = page.locator("#transcript li[data-role='assistant']")
    expect(question).to_contain_text("Software engineer role")
    transcript = server.http.get(f"/api/v1/sessions/{session_id}/messages", headers=ADMIN)
    transcript = transcript.json()["messages"]
    assert [m["role"] for m in transcript] == ["user", "assistant"]


def test_idle_time_shows_the_warning_dialog_counting_down(
    server: LiveServer, context: BrowserContext, docs_img: Path
) -> None:
    """Idle time brings up tether.js's warning dialog; its countdown goes down each second."""
    page, session_id = open_demo(context, server.url, fake_clock=True)
    say(page, "Hello!", expect_messages=2)
    say(page, "I'm a backend developer; I like making systems boring.", expect_messages=4)
    until_warning(server, page)
    expect(page.locator("#state")).to_have_text("warning")
    assert server.session(session_id)["state"] == "warning"

    first = countdown_seconds(page.locator(COUNTDOWN).inner_text())
    assert 0 < first <= WARN
    readings = [first]
    for _ in range(3):
        elapse(server, page, 1)
        readings.append(countdown_seconds(page.locator(COUNTDOWN).inner_text()))
    assert readings == [first, first - 1, first - 2, first - 3], readings
    page.screenshot(path=str(docs_img / "demo-warning.png"))


def test_continue_makes_the_session_active_again_on_the_server(
    server: LiveServer, context: BrowserContext
) -> None:
    """Clicking Continue in the warning dialog clears the warning on the server and on the page."""
    page, session_id = open_demo(context, server.url, fake_clock=True)
    until_warning(server, page)
    assert server.session(session_id)["warning"]["reason"] == "idle_timeout"

    page.locator(".tether-dialog-continue").click()
    expect(page.locator(DIALOG)).to_be_hidden()
    wait_until(
        lambda: server.session(session_id)["state"] == "active", "the server's state: active"
    )
    assert server.session(session_id)["warning"] is None
    expect(page.locator("#state")).to_have_text("active")


def test_running_out_of_time_shows_the_end_with_idle_timeout(
    server: LiveServer, context: BrowserContext
) -> None:
    """Ignoring the warning ends the session at its deadline; the page shows reason idle_timeout."""
    page, session_id = open_demo(context, server.url, fake_clock=True)
    until_warning(server, page)
    ended = page.locator("#ended")
    elapse(server, page, WARN + 5, until=ended.is_visible)
    expect(page.locator("#state")).to_have_text("ended")
    expect(page.locator("#end-reason")).to_have_text("idle_timeout")
    expect(page.locator(DIALOG)).to_be_hidden()
    expect(page.locator("#answer")).to_be_disabled()
    assert server.session(session_id)["end_reason"] == "idle_timeout"


def test_practice_again_starts_a_fresh_session_with_an_empty_transcript(
    server: LiveServer, context: BrowserContext
) -> None:
    """Practice again ends the old session and starts afresh: new id, empty transcript."""
    page, first_id = open_demo(context, server.url)
    say(page, "Hello!", expect_messages=2)
    say(page, "I have ten years of experience.", expect_messages=4)

    page.locator("#again").click()
    expect(page.locator("#session-id")).not_to_have_text(first_id)
    expect(page.locator("#state")).to_have_text("active")
    second_id = page.locator("#session-id").inner_text()
    assert len(second_id) == 32
    assert second_id != first_id
    expect(page.locator("#transcript li")).to_have_count(0)
    expect(page.locator("#empty-hint")).to_be_visible()
    expect(page.locator("#ended")).to_be_hidden()

    old, new = server.session(first_id), server.session(second_id)
    assert (old["state"], old["end_reason"]) == ("ended", "client_ended")
    assert (new["state"], new["message_count"], new["user"]) == ("active", 0, old["user"])
    # The interview starts over: the first question again, at seq 2.
    say(page, "Hello again", expect_messages=2)
    expect(page.locator("#transcript li[data-seq='2']")).to_contain_text(
        "tell me a little about yourself"
    )


def test_closing_the_page_ends_the_session_with_a_beacon(
    server: LiveServer, context: BrowserContext
) -> None:
    """Closing the tab sends the end beacon: the server ends the session as client_ended at once."""
    page, session_id = open_demo(context, server.url)
    page.close(run_before_unload=True)
    # The server's clock stands still, so this cannot be the presence timeout (client_gone).
    wait_until(lambda: server.session(session_id)["state"] == "ended", "the server ended it")
    assert server.session(session_id)["end_reason"] == "client_ended"


def test_abrupt_disconnect_reconnects_and_resumes_within_the_grace(
    server: LiveServer, context: BrowserContext
) -> None:
    """After a reset without close frame the page backs off, then resumes session and transcript."""
    with TcpProxy(server.port) as proxy:
        page, session_id = open_demo(context, proxy.url)
        say(page, "Hello!", expect_messages=2)

        proxy.refusing = True  # the reconnects fail too, until the network comes back
        assert proxy.cut() >= 1
        log = page.locator("#log")
        expect(log).to_contain_text("connection reconnecting (attempt 2)")
        expect(page.locator("#conn-status")).to_contain_text("reconnecting")
        # The server saw the connection go: the presence clock (the grace) runs.
        wait_until(lambda: server.session(session_id)["connections"] == 0, "the server's detach")
        assert server.session(session_id)["deadlines"]["presence_at"] is not None
        # Time passes inside the grace, and the transcript moves on without the page.
        server.advance(PRESENCE / 2)
        missed = server.append(session_id, "assistant", "While you were away: take your time.")

        started = time.monotonic()
        proxy.refusing = False
        expect(page.locator("#conn-status")).to_have_text("open")
        assert time.monotonic() - started < 5.0
        expect(page.locator("#session-id")).to_have_text(session_id)
        items = page.locator("#transcript li")
        expect(items).to_have_count(3)
        assert [items.nth(i).get_attribute("data-seq") for i in range(3)] == ["1", "2", "3"]
        expect(items.nth(2)).to_have_text(f"Interviewer{missed['content']}")

        info = server.session(session_id)
        assert (info["state"], info["connections"]) == ("active", 1)
        say(page, "I build web services.", expect_messages=5)
