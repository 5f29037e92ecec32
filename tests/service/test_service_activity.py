"""``SessionActivityMiddleware``: each signed-in HTTP request is activity of its user's session.

Timing is proved on the fake clock (``tether.testing.fake_manager``, the app
called in-process through ``httpx.ASGITransport``); sharing, concurrency and
the end of an HTTP-only session under real uvicorn with real httpx, on
``mount()``'s handle; a Redis outage with a real ``redis-server`` killed by pid.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from service_kit import FAST, eventually, live_server, make_settings

from cluster.process_kit import free_port, restartable_redis
from tether.core.policy import Policy
from tether.core.session import SessionInfo
from tether.runtime.manager import SessionManager
from tether.service import (
    Embedded,
    SessionActivityMiddleware,
    Settings,
    mount,
    request_session,
)
from tether.testing import fake_manager
from tether.types import EndReason, SessionState, UserId

POLICY = Policy(idle_timeout=60, warn_before=10, presence_timeout=5, max_duration=3600)
WARNED_AT = POLICY.idle_timeout - POLICY.warn_before


def _user(request: Request) -> str | None:
    """The app's own authentication, reduced to a header."""
    return request.headers.get("x-user")


def _app(manager: SessionManager | Embedded, **options: Any) -> FastAPI:
    """An HTTP-only app: one route that reports the session the middleware gave it."""
    app = FastAPI()

    @app.get("/chat")
    async def chat(request: Request) -> dict[str, Any]:
        return {
            "session": request_session(request),
            "marked": hasattr(request.state, "tether_session"),
        }

    app.add_middleware(SessionActivityMiddleware, manager=manager, user=_user, **options)
    return app


@asynccontextmanager
async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client (no lifespan: the manager is the test's own)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as client:
        yield client


async def _chat(client: httpx.AsyncClient, user: str | None) -> dict[str, Any]:
    headers = {"x-user": user} if user is not None else {}
    response = await client.get("/chat", headers=headers)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


# -- on the fake clock ------------------------------------------------------------------


async def test_requests_keep_one_session_and_its_idle_clock_runs_from_the_last() -> None:
    """Each request refreshes last_activity of the one session; it warns then ends idle_timeout."""
    async with fake_manager(policy=POLICY) as kit, _client(_app(kit.manager)) as client:
        first = (await _chat(client, "alice"))["session"]
        start = kit.clock.now()
        await kit.advance(30)
        assert (await _chat(client, "alice"))["session"] == first
        info = await kit.manager.get(first)
        assert info.last_activity == start + 30
        assert info.last_seen == start + 30
        await kit.advance(WARNED_AT - 0.5)  # far past presence_timeout: no client_gone
        assert (await kit.manager.get(first)).state is SessionState.ACTIVE
        await kit.advance(0.5)
        assert (await kit.manager.get(first)).state is SessionState.WARNING
        assert (await _chat(client, "alice"))["session"] == first  # a request answers the warning
        assert (await kit.manager.get(first)).state is SessionState.ACTIVE
        last = kit.clock.now()
        await kit.advance(POLICY.idle_timeout - 0.5)
        assert (await kit.manager.get(first)).state is SessionState.WARNING
        await kit.advance(0.5)
        ended = await kit.manager.get(first)
        assert ended.state is SessionState.ENDED
        assert ended.end_reason is EndReason.IDLE_TIMEOUT
        assert ended.ended_at == last + POLICY.idle_timeout
        again = (await _chat(client, "alice"))["session"]
        assert again is not None
        assert again != first


async def test_concurrent_first_requests_start_exactly_one_session() -> None:
    """Twenty simultaneous first requests of one user all get the same, single session."""
    async with fake_manager(policy=POLICY) as kit, _client(_app(kit.manager)) as client:
        bodies = await asyncio.gather(*(_chat(client, "alice") for _ in range(20)))
        ids = {body["session"] for body in bodies}
        assert len(ids) == 1
        assert None not in ids
        assert [s.id for s in await kit.manager.list(user=UserId("alice"))] == list(ids)


async def test_users_get_their_own_sessions_of_the_configured_kind() -> None:
    """Two users get two sessions, each of the kind the middleware was given."""
    async with (
        fake_manager(policy=POLICY) as kit,
        _client(_app(kit.manager, kind="support")) as client,
    ):
        alice = (await _chat(client, "alice"))["session"]
        bob = (await _chat(client, "bob"))["session"]
        assert alice != bob
        assert (await kit.manager.get(alice)).user == "alice"
        assert (await kit.manager.get(bob)).kind == "support"


async def test_anonymous_requests_pass_through_untouched() -> None:
    """user() returning None: the route runs, no session is started, request.state is unmarked."""
    async with fake_manager(policy=POLICY) as kit, _client(_app(kit.manager)) as client:
        assert await _chat(client, None) == {"session": None, "marked": False}
        assert await kit.manager.list() == []


async def test_an_async_user_callable_is_awaited() -> None:
    """user() may be a coroutine function: its result names the session's user."""

    async def user(request: Request) -> str | None:
        return request.headers.get("x-user")

    async with fake_manager(policy=POLICY) as kit:
        app = FastAPI()

        @app.get("/chat")
        async def chat(request: Request) -> dict[str, Any]:
            return {"session": request_session(request)}

        app.add_middleware(SessionActivityMiddleware, manager=kit.manager, user=user)
        async with _client(app) as client:
            session = (await _chat(client, "carol"))["session"]
        assert (await kit.manager.get(session)).user == "carol"


async def test_a_refused_user_id_lets_the_request_through_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refused user id: 200 without a session, nothing started, one warning for 3 requests."""
    async with fake_manager(policy=POLICY) as kit, _client(_app(kit.manager)) as client:
        with caplog.at_level(logging.INFO, logger="tether.service"):
            for _ in range(3):
                assert await _chat(client, "../etc") == {"session": None, "marked": True}
            assert await kit.manager.list() == []
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1
            assert "InvalidInput" in warnings[0].getMessage()
            assert "../etc" not in caplog.text
            assert (await _chat(client, "alice"))["session"] is not None
        recovered = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
        assert any("works again" in m and "3 request(s)" in m for m in recovered)


async def test_a_closed_manager_lets_the_request_through() -> None:
    """After the manager shut down, requests still get 200 (without a session), never a 500."""
    async with fake_manager(policy=POLICY) as kit:
        manager = kit.manager
    async with _client(_app(manager)) as client:
        assert await _chat(client, "alice") == {"session": None, "marked": True}


async def test_the_embedded_handle_is_read_per_request_not_at_build_time(tmp_path: Path) -> None:
    """Before mount()'s manager exists a request gets no session; once started, it does."""
    app = FastAPI()
    tether = mount(app, make_settings(tmp_path))

    @app.get("/chat")
    async def chat(request: Request) -> dict[str, Any]:
        return {"session": request_session(request), "marked": True}

    app.add_middleware(SessionActivityMiddleware, manager=tether, user=_user)
    async with _client(app) as client:
        assert (await _chat(client, "alice"))["session"] is None  # the lifespan has not run
        async with app.router.lifespan_context(app):
            session = (await _chat(client, "alice"))["session"]
            assert (await tether.manager.get(session)).user == "alice"


# -- under real uvicorn, on mount()'s handle --------------------------------------------


def _mounted(settings: Settings) -> tuple[FastAPI, Embedded]:
    app = FastAPI()
    tether = mount(app, settings)

    @app.get("/chat")
    async def chat(request: Request) -> dict[str, Any]:
        return {"session": request_session(request), "marked": True}

    app.add_middleware(SessionActivityMiddleware, manager=tether, user=_user)
    return app, tether


async def test_under_uvicorn_requests_share_a_session_and_an_http_only_one_ends_idle(
    tmp_path: Path,
) -> None:
    """Real uvicorn + httpx: one session per user, last_activity advances, it ends idle_timeout."""
    settings = make_settings(tmp_path, **FAST)
    app, tether = _mounted(settings)
    async with live_server(app, settings) as served, served.client() as client:
        warned: list[SessionInfo] = []
        tether.manager.on_warning(warned.append)
        first = await _chat(client, "alice")
        session = first["session"]
        before = (await tether.manager.get(session)).last_activity
        await eventually(lambda: tether.manager.clock.now() > before)
        for _ in range(3):
            assert (await _chat(client, "alice"))["session"] == session
        after = (await tether.manager.get(session)).last_activity
        assert after > before
        burst = await asyncio.gather(*(_chat(client, "bob") for _ in range(10)))
        assert len({body["session"] for body in burst}) == 1
        assert len(await tether.manager.list(user=UserId("bob"))) == 1
        assert len(await tether.manager.list(user=UserId("alice"))) == 1

        async def ended() -> bool:
            return (await tether.manager.get(session)).state is SessionState.ENDED

        # FAST: presence_timeout 0.8 s < idle_timeout 1.2 s, yet nothing ends it client_gone.
        await eventually(ended, within=FAST["idle_timeout"] * 4)
        info = await tether.manager.get(session)
        assert info.end_reason is EndReason.IDLE_TIMEOUT
        assert info.ended_at is not None
        assert info.ended_at >= info.last_activity + FAST["idle_timeout"]
        assert session in {w.id for w in warned}


async def test_under_uvicorn_a_redis_outage_never_fails_the_route(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis killed: the app's route still answers 200 (no session), logged once; then recovers."""
    with restartable_redis(tmp_path / "redis") as redis_server:
        settings = make_settings(tmp_path / "data", redis_url=redis_server.url, **FAST)
        app, _ = _mounted(settings)
        async with live_server(app, settings) as served, served.client() as client:
            assert (await _chat(client, "alice"))["session"] is not None
            with caplog.at_level(logging.INFO, logger="tether.service"):
                redis_server.kill()
                for _ in range(3):
                    assert await _chat(client, "alice") == {"session": None, "marked": True}
                warnings = [
                    r.getMessage()
                    for r in caplog.records
                    if r.levelno == logging.WARNING and "session activity" in r.getMessage()
                ]
                assert len(warnings) == 1
                assert "StoreUnavailable" in warnings[0]
                redis_server.start()

                async def back() -> bool:
                    return (await _chat(client, "alice"))["session"] is not None

                await eventually(back, within=10)
            assert any("works again" in r.getMessage() for r in caplog.records)


async def test_the_redis_fallback_manager_is_the_one_counted(tmp_path: Path) -> None:
    """TETHER_REDIS_FALLBACK=memory replaces the manager at start-up; requests reach the new one."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    settings = make_settings(tmp_path, redis_url=url, redis_fallback="memory", **FAST)
    app, tether = _mounted(settings)
    async with live_server(app, settings) as served, served.client() as client:
        session = (await _chat(client, "alice"))["session"]
        assert session is not None
        assert (await tether.manager.get(session)).user == "alice"
