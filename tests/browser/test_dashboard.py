"""The admin dashboard at ``/dashboard`` in headless Chromium, against a real server.

The dashboard learns everything from the admin event stream; the tests move
the server's fake clock to put sessions into warnings and idle ends.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from browser_kit import ADMIN, ADMIN_TOKEN, LiveServer, open_demo, wait_until
from playwright.sync_api import BrowserContext, Locator, Page, Request, expect

from tether.archive.pg_archive import PgArchive


def open_dashboard(context: BrowserContext, server: LiveServer) -> Page:
    """The dashboard, opened with ``#token=``, its feed live."""
    page = context.new_page()
    page.goto(f"{server.url}/dashboard#token={ADMIN_TOKEN}")
    expect(page.locator("#feed-status")).to_have_text("live")
    return page


def row(page: Page, session_id: str) -> Locator:
    """The dashboard's table row of one session."""
    return page.locator(f"tr[data-session-id='{session_id}']")


def ended_by_reason(server: LiveServer) -> Counter[str]:
    """How many sessions ended in the last hour, by reason, as the server lists them."""
    horizon = server.clock.now() - 3300  # the chart's twelve 5-minute buckets, at least
    return Counter(
        s["end_reason"] for s in server.sessions(state="ended") if s["ended_at"] >= horizon
    )


def end_as_owner(server: LiveServer, session: dict[str, object]) -> None:
    """End a session with its owner's token (reason client_ended)."""
    token = server.service.tokens.mint(str(session["user"]))
    server.http.post(
        f"/api/v1/sessions/{session['id']}/end", headers={"Authorization": f"Bearer {token}"}
    ).raise_for_status()


def test_dashboard_lists_sessions_and_ends_one_seen_in_the_demo_tab(
    server: LiveServer, context: BrowserContext, docs_img: Path
) -> None:
    """The dashboard lists sessions from its feed; End ends one and the demo tab shows admin."""
    # Some history for the charts: two sessions their users end, one whose client went
    # away, one that timed out.
    for user in ("frank", "grace"):
        end_as_owner(server, server.start_session(user, "support"))
    gone = server.start_session("erin", "chat", attached=False)
    idler = server.start_session("henry", "chat")
    server.advance(65)
    assert server.session(gone["id"])["end_reason"] == "client_gone"
    assert server.session(idler["id"])["end_reason"] == "idle_timeout"
    # Two sessions that will be in their warning, then fresh ones.
    alice = server.start_session("alice", "interview")
    bob = server.start_session("bob", "chat")
    for n in range(3):
        server.append(alice["id"], "user" if n % 2 == 0 else "assistant", f"message {n}")
    server.advance(45)
    demo, demo_id = open_demo(context, server.url)
    carol = server.start_session("carol", "support")

    dashboard = open_dashboard(context, server)
    api_calls: list[str] = []

    def note(request: Request) -> None:
        if "/api/" in request.url:
            api_calls.append(f"{request.method} {request.url.split('/api/', 1)[1]}")

    dashboard.on("request", note)
    for session_id in (demo_id, alice["id"], bob["id"], carol["id"]):
        expect(row(dashboard, session_id)).to_be_visible()
    expect(row(dashboard, alice["id"]).locator("td.state")).to_have_text("warning")
    expect(row(dashboard, demo_id).locator("td.state")).to_have_text("active")
    expect(row(dashboard, demo_id).locator("td.user")).to_have_text(server.session(demo_id)["user"])
    expect(row(dashboard, alice["id"]).locator("td.messages")).to_have_text("3")
    ends = ended_by_reason(server)
    assert ends["client_ended"] >= 2
    assert ends["idle_timeout"] >= 1
    expect(dashboard.locator("#chart-ends rect[data-reason='idle_timeout']")).not_to_have_count(0)
    for reason, n in ends.items():
        expect(dashboard.locator(f"#ends-legend li[data-reason='{reason}']")).to_have_text(
            f"{reason} {n}"
        )

    # Live, without polling: a message in the demo tab reaches its row through the feed.
    demo.fill("#answer", "Hello!")
    demo.press("#answer", "Enter")
    expect(row(dashboard, demo_id).locator("td.messages")).to_have_text("2")

    row(dashboard, demo_id).locator("button.end-one").click()
    confirm = dashboard.locator("#confirm")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text(demo_id[:8])
    dashboard.locator("#confirm-ok").click()

    expect(demo.locator("#state")).to_have_text("ended")
    expect(demo.locator("#end-reason")).to_have_text("admin")
    expect(demo.locator("#end-text")).to_contain_text("administrator")
    assert server.session(demo_id)["end_reason"] == "admin"
    expect(row(dashboard, demo_id)).to_have_count(0)
    expect(dashboard.locator("#notice")).to_have_text("Ended 1 session.")
    admin_ends = ended_by_reason(server)["admin"]
    expect(dashboard.locator("#ends-legend li[data-reason='admin']")).to_have_text(
        f"admin {admin_ends}"
    )
    assert api_calls == ["POST v1/sessions/cleanup"], api_calls
    dashboard.screenshot(path=str(docs_img / "dashboard.png"), full_page=True)


def test_dashboard_ends_selected_sessions_and_idle_ones_after_confirming(
    server: LiveServer, context: BrowserContext
) -> None:
    """End selected ends the checked sessions; End idle sessions ends only those idle that long."""
    old = [server.start_session(user, "review") for user in ("ivan", "judy")]
    server.advance(30)
    fresh = [server.start_session(user, "review") for user in ("kim", "leo", "mia")]
    dashboard = open_dashboard(context, server)
    dashboard.select_option("#filter-kind", "review")
    expect(dashboard.locator("#sessions tbody tr")).to_have_count(5)
    dashboard.fill("#filter-user", "i")  # ivan, kim, mia
    expect(dashboard.locator("#sessions tbody tr")).to_have_count(3)
    dashboard.fill("#filter-user", "")

    # Cancel changes nothing.
    row(dashboard, fresh[0]["id"]).locator("input[type=checkbox]").check()
    row(dashboard, fresh[1]["id"]).locator("input[type=checkbox]").check()
    expect(dashboard.locator("#end-selected")).to_have_text("End selected (2)")
    dashboard.locator("#end-selected").click()
    dashboard.locator("#confirm-cancel").click()
    expect(dashboard.locator("#confirm")).to_be_hidden()
    assert server.session(fresh[0]["id"])["state"] == "active"

    dashboard.locator("#end-selected").click()
    expect(dashboard.locator("#confirm")).to_contain_text("End 2 selected sessions?")
    dashboard.locator("#confirm-ok").click()
    expect(dashboard.locator("#notice")).to_have_text("Ended 2 sessions.")
    for session in fresh[:2]:
        assert server.session(session["id"])["end_reason"] == "admin"
        expect(row(dashboard, session["id"])).to_have_count(0)

    dashboard.fill("#idle-for", "20s")
    dashboard.locator("#end-idle").click()
    expect(dashboard.locator("#confirm")).to_contain_text("no user activity for 20s")
    dashboard.locator("#confirm-ok").click()
    expect(dashboard.locator("#notice")).to_contain_text("Ended")
    for session in old:
        wait_until(
            lambda s=session: server.session(s["id"])["end_reason"] == "admin", "the idle end"
        )
        expect(row(dashboard, session["id"])).to_have_count(0)
    assert server.session(fresh[2]["id"])["state"] == "active"
    expect(row(dashboard, fresh[2]["id"])).to_be_visible()


def test_dashboard_asks_for_an_admin_token_and_keeps_it_for_the_tab(
    server: LiveServer, context: BrowserContext
) -> None:
    """The dashboard asks for a token, refuses non-admin ones, keeps the admin's for the tab."""
    page = context.new_page()
    page.goto(f"{server.url}/dashboard")
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#board")).to_be_hidden()

    page.fill("#token-input", "not-a-token")
    page.locator("#login button").click()
    expect(page.locator("#login-error")).to_have_text("The server does not accept this token.")
    page.fill("#token-input", server.service.tokens.mint("mallory"))
    page.locator("#login button").click()
    expect(page.locator("#login-error")).to_have_text("This token is not an admin token.")

    page.fill("#token-input", ADMIN_TOKEN)
    page.locator("#login button").click()
    expect(page.locator("#feed-status")).to_have_text("live")
    expect(page.locator("#board")).to_be_visible()
    page.reload()
    expect(page.locator("#feed-status")).to_have_text("live")
    page.locator("#forget").click()
    expect(page.locator("#login")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('tether.adminToken')") is None

    page.goto(f"{server.url}/dashboard#token={ADMIN_TOKEN}")
    expect(page.locator("#feed-status")).to_have_text("live")
    assert "#token" not in page.url  # taken out of the address bar (and history)


def test_dashboard_shows_a_users_archives_kept_in_postgresql(
    server: LiveServer, context: BrowserContext, pg_url: str
) -> None:
    """The Archives card lists a user's archived dialogs from PostgreSQL and shows one's YAML."""
    archive = PgArchive(pg_url)
    server.manager.archiver = archive
    try:
        session = server.start_session("ivy", "interview")
        server.append(session["id"], "user", "a line kept in postgres")
        end_as_owner(server, session)
        wait_until(lambda: server.run(archive.list("ivy")), "ivy's archive row")
        page = open_dashboard(context, server)
        page.fill("#archives-user", "ivy")
        page.get_by_role("button", name="Show archives").click()
        rows = page.locator("#archives tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("client_ended")
        [summary] = server.run(archive.list("ivy"))
        page.get_by_role("button", name=summary.archive_id).click()
        shown = page.locator("#archive-yaml")
        expect(shown).to_contain_text("a line kept in postgres")
        exported = server.http.get(
            f"/api/v1/users/ivy/archives/{summary.archive_id}",
            params={"format": "yaml"},
            headers=ADMIN,
        )
        assert shown.text_content() == exported.text
        page.fill("#archives-user", "nobody")
        page.get_by_role("button", name="Show archives").click()
        expect(page.locator("#archives-status")).to_have_text("No archived dialogs for nobody.")
        expect(rows).to_have_count(0)
    finally:
        server.manager.archiver = None
        server.run(archive.aclose())
