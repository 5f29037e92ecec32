"""What browsers load: ``/static/``, the demo page, the dashboard; the scripted interviewer."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from service_kit import ADMIN, asgi_client, auth, eventually, make_settings

from tether.service import create_app, interviewer
from tether.service.interviewer import CLOSING, QUESTIONS
from tether.service.pages import PAGE_CSP, STATIC
from tether.service.state import Service

CLIENT = {
    "/static/tether.js": "text/javascript; charset=utf-8",
    "/static/tether.d.ts": "application/typescript; charset=utf-8",
    "/static/tether-dialog.css": "text/css; charset=utf-8",
}


@pytest.mark.parametrize("demo", [False, True])
async def test_the_browser_client_is_served_with_its_content_types(
    tmp_path: Path, demo: bool
) -> None:
    """tether.js, tether.d.ts and tether-dialog.css are served as they are, typed, in any mode."""
    async with asgi_client(create_app(make_settings(tmp_path, demo=demo))) as client:
        for path, media_type in CLIENT.items():
            response = await client.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"] == media_type
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.content == (STATIC / path.rsplit("/", 1)[1]).read_bytes()


def client_module_graph() -> set[str]:
    """Every module tether.js imports, directly or not, as paths under static/."""
    seen: set[str] = set()
    todo = ["tether.js"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for target in re.findall(r'from "(\.{1,2}/[^"]+)"', (STATIC / name).read_text()):
            todo.append(posixpath.normpath(posixpath.join(posixpath.dirname(name), target)))
    return seen


async def test_every_module_of_the_client_is_served(tmp_path: Path) -> None:
    """The modules tether.js imports (static/tether/, a nested path) are all served, typed, byte
    for byte, and every module in static/tether/ is one of them: none left out, none stray."""
    graph = client_module_graph()
    assert graph == {"tether.js"} | {f"tether/{p.name}" for p in (STATIC / "tether").glob("*.js")}
    async with asgi_client(create_app(make_settings(tmp_path))) as client:
        for name in sorted(graph):
            response = await client.get(f"/static/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"] == "text/javascript; charset=utf-8"
            assert response.content == (STATIC / name).read_bytes(), name
        assert (await client.get("/static/tether/nope.js")).status_code == 404


async def test_assets_revalidate_with_etags(tmp_path: Path) -> None:
    """Assets say no-cache with an ETag, and a matching If-None-Match gets an empty 304."""
    async with asgi_client(create_app(make_settings(tmp_path))) as client:
        first = await client.get("/static/tether.js")
        etag = first.headers["etag"]
        assert first.headers["cache-control"] == "no-cache"
        assert re.fullmatch(r'"[0-9a-f]{20}"', etag)
        again = await client.get("/static/tether.js", headers={"If-None-Match": f'W/{etag}, "x"'})
        assert (again.status_code, again.content) == (304, b"")
        assert again.headers["etag"] == etag
        other = await client.get("/static/tether.js", headers={"If-None-Match": '"stale"'})
        assert other.status_code == 200


async def test_only_the_listed_files_are_served(tmp_path: Path) -> None:
    """Only listed files answer: no listing, no traversal, no page script without its page."""
    async with asgi_client(create_app(make_settings(tmp_path))) as client:
        for path in (
            "/static/",
            "/static/demo.html",
            "/static/demo.js",
            "/static/../app.py",
            "/static/%2e%2e/app.py",
            "/static/TETHER.JS",
        ):
            assert (await client.get(path)).status_code == 404, path
        assert (await client.get("/static/dashboard.js")).status_code == 200
        assert (await client.get("/static/dashboard/charts.js")).status_code == 200
        assert (await client.get("/static/dashboard/archives.js")).status_code == 200


async def test_the_dashboard_page_is_served_in_every_mode_with_a_strict_policy(
    tmp_path: Path,
) -> None:
    """/dashboard is served in any mode, with a same-origin CSP that no one may frame."""
    async with asgi_client(create_app(make_settings(tmp_path))) as client:
        page = await client.get("/dashboard")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["content-security-policy"] == PAGE_CSP
        assert "frame-ancestors 'none'" in PAGE_CSP
        assert "static/dashboard.js" in page.text
        assert (await client.get("/")).status_code == 404


@pytest.mark.parametrize("name", ["demo.html", "dashboard.html"])
def test_pages_need_nothing_the_policy_forbids(name: str) -> None:
    """Pages have no inline script or style and no foreign URL: their CSP blocks nothing."""
    html = (STATIC / name).read_text()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts
    assert all('src="static/' in attrs and not body.strip() for attrs, body in scripts)
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"""(?:src|href)=["'](?:https?:)?//""", html)


def test_page_scripts_set_no_inline_styles_the_policy_would_block() -> None:
    """Page scripts set no style attribute (CSSOM is allowed) and inject no <style>."""
    for name in ("demo.js", "dashboard.js", "dashboard/charts.js", "dashboard/archives.js"):
        source = (STATIC / name).read_text()
        assert 'setAttribute("style"' not in source, name
        assert 'createElement("style")' not in source, name
    assert "injectStyles: false" in (STATIC / "demo.js").read_text()


async def _background_done(app: FastAPI) -> None:
    """Wait until the service's background tasks (the interviewer's replies) have finished."""
    svc: Service = app.state.tether
    await eventually(lambda: not svc._tasks)


async def _messages(client: httpx.AsyncClient, sid: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/sessions/{sid}/messages", headers=ADMIN)
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


async def _say(client: httpx.AsyncClient, sid: str, user: str, text: str, total: int) -> None:
    await client.post(
        f"/api/v1/sessions/{sid}/messages",
        headers=auth(user),
        json={"role": "user", "content": text},
    )

    async def replied() -> bool:
        return len(await _messages(client, sid)) == total

    await eventually(replied)


async def test_the_scripted_interviewer_asks_its_questions_in_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scripted demo interview: a question after each answer, a closing line, then silence."""
    monkeypatch.setattr(interviewer, "WORD_DELAY", 0.0)  # the words' pace is not under test
    settings = make_settings(tmp_path, demo=True, idle_timeout=600.0, warn_before=60.0)
    app = create_app(settings)
    async with asgi_client(app) as client:
        body = {"kind": "interview", "config": {"interviewer": "scripted", "job": "Nurse"}}
        sid = (await client.post("/api/v1/sessions", headers=auth("nina"), json=body)).json()["id"]
        assert await _messages(client, sid) == []  # the candidate speaks first
        for n in range(len(QUESTIONS) + 1):
            await _say(client, sid, "nina", f"answer {n}", total=2 * (n + 1))
        transcript = await _messages(client, sid)
        asked = [m["content"] for m in transcript if m["role"] == "assistant"]
        assert asked[0] == QUESTIONS[0].format(job="Nurse")
        assert asked[1:-1] == list(QUESTIONS[1:])
        assert asked[-1] == CLOSING
        await client.post(
            f"/api/v1/sessions/{sid}/messages",
            headers=auth("nina"),
            json={"role": "user", "content": "anything else?"},
        )
        await _background_done(app)
        assert len(await _messages(client, sid)) == len(transcript) + 1


@pytest.mark.parametrize(
    ("demo", "body"),
    [
        (True, {"kind": "chat", "config": {"interviewer": "scripted"}}),
        (True, {"kind": "interview"}),
        (False, {"kind": "interview", "config": {"interviewer": "scripted"}}),
    ],
)
async def test_the_interviewer_stays_out_of_other_sessions(
    tmp_path: Path, demo: bool, body: dict[str, Any]
) -> None:
    """Only a scripted interview in demo mode gets replies: other kinds, configs, modes none."""
    app = create_app(make_settings(tmp_path, demo=demo))
    async with asgi_client(app) as client:
        sid = (await client.post("/api/v1/sessions", headers=auth("olga"), json=body)).json()["id"]
        await client.post(
            f"/api/v1/sessions/{sid}/messages",
            headers=auth("olga"),
            json={"role": "user", "content": "hello"},
        )
        await _background_done(app)
        assert [m["role"] for m in await _messages(client, sid)] == ["user"]


def test_demo_mode_says_where_the_pages_are(tmp_path: Path) -> None:
    """Under TETHER_DEMO the start-up notes give the pages' URLs and what the dashboard needs."""
    bare = make_settings(tmp_path, demo=True, admin_token=None, port=8765)
    root = "http://127.0.0.1:8765"
    expected = (
        f"demo page: {root}/ ; dashboard: {root}/dashboard (set TETHER_ADMIN_TOKEN to use it)"
    )
    assert expected in bare.notes()
    assert (
        f"demo page: {root}/ ; dashboard: {root}/dashboard"
        in make_settings(tmp_path, demo=True, port=8765).notes()
    )
    assert not any("dashboard" in note for note in make_settings(tmp_path).notes())
