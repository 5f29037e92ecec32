"""/health, /ready, /metrics and the OpenAPI docs."""

from __future__ import annotations

import re
from pathlib import Path

from service_kit import ADMIN, asgi_client, auth, make_settings

from tether.errors import StoreUnavailable
from tether.service import create_app


async def test_health_has_the_seed_shape(tmp_path: Path) -> None:
    """/health: status, session counts and ages, the store, uptime."""
    app = create_app(make_settings(tmp_path))
    async with asgi_client(app) as client:
        empty = (await client.get("/health")).json()
        assert empty["status"] == "ok"
        assert empty["sessions"] == {
            "active": 0,
            "total_created": 0,
            "total_ended": 0,
            "oldest_age_s": None,
            "newest_age_s": None,
        }
        assert empty["store"] == {"kind": "memory", "status": "ok", "fallback": False}
        assert empty["uptime_s"] >= 0
        first = (await client.post("/api/v1/sessions", headers=auth("alice"))).json()
        await client.post("/api/v1/sessions", headers=auth("bob"))
        await client.post(f"/api/v1/sessions/{first['id']}/end", headers=auth("alice"))
        sessions = (await client.get("/health")).json()["sessions"]
        assert (sessions["active"], sessions["total_created"], sessions["total_ended"]) == (1, 2, 1)
        assert sessions["oldest_age_s"] >= sessions["newest_age_s"] >= 0


async def test_ready_follows_the_store(tmp_path: Path) -> None:
    """/ready is 200 while the store answers and 503 when it does not."""
    app = create_app(make_settings(tmp_path))
    async with asgi_client(app) as client:
        assert (await client.get("/ready")).status_code == 200
        store = app.state.tether.manager.store

        async def down() -> None:
            raise StoreUnavailable("gone")

        store.ping = down
        response = await client.get("/ready")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "store_unavailable"
        assert (await client.get("/health")).json()["status"] == "degraded"


async def test_metrics_count_sessions_without_identifying_anyone(tmp_path: Path) -> None:
    """/metrics exposes starts, ends by reason, durations and live states; no ids or users."""
    app = create_app(make_settings(tmp_path))
    async with asgi_client(app) as client:
        made = [
            (await client.post("/api/v1/sessions", headers=auth(user))).json()
            for user in ("alice", "bob")
        ]
        await client.post(f"/api/v1/sessions/{made[0]['id']}/end", headers=auth("alice"))
        await client.post(f"/api/v1/sessions/{made[1]['id']}/end", headers=ADMIN)
        await client.post("/api/v1/sessions", headers=auth("carol"))
        response = await client.get("/metrics")
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
        assert "tether_sessions_started_total 3.0" in text
        assert 'tether_sessions_ended_total{reason="client_ended"} 1.0' in text
        assert 'tether_sessions_ended_total{reason="admin"} 1.0' in text
        assert 'tether_sessions_active{state="active"} 1.0' in text
        assert 'tether_session_duration_seconds_count{reason="client_ended"} 1.0' in text
        for name in (
            "tether_session_warnings_total",
            "tether_sessions_extended_after_warning_total",
            "tether_cleanup_failures_total",
            "tether_archive_failures_total",
            'tether_connections{transport="websocket"}',
        ):
            assert name in text
        assert not re.search(r"[0-9a-f]{32}", text)
        for user in ("alice", "bob", "carol"):
            assert user not in text


async def test_openapi_and_docs_are_served(tmp_path: Path) -> None:
    """/openapi.json lists the protocol's paths and /docs renders."""
    app = create_app(make_settings(tmp_path))
    async with asgi_client(app) as client:
        schema = (await client.get("/openapi.json")).json()
        for path in (
            "/api/v1/sessions",
            "/api/v1/sessions/{session_id}",
            "/api/v1/sessions/{session_id}/heartbeat",
            "/api/v1/sessions/{session_id}/activity",
            "/api/v1/sessions/{session_id}/messages",
            "/api/v1/sessions/{session_id}/config",
            "/api/v1/sessions/{session_id}/end",
            "/api/v1/sessions/{session_id}/events",
            "/api/v1/sessions/cleanup",
            "/api/v1/users/{user}/archives",
            "/api/v1/users/{user}/archives/{archive_id}",
            "/health",
            "/ready",
            "/metrics",
        ):
            assert path in schema["paths"], path
        docs = await client.get("/docs")
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()


async def test_demo_mode_mints_tokens_for_throwaway_users(tmp_path: Path) -> None:
    """With TETHER_DEMO, / serves the demo page and it can mint working tokens; without, neither."""
    async with asgi_client(create_app(make_settings(tmp_path, demo=True))) as client:
        minted = (await client.post("/api/v1/demo/token")).json()
        assert minted["user"].startswith("demo-")
        bearer = {"Authorization": f"Bearer {minted['token']}"}
        assert (await client.post("/api/v1/sessions", headers=bearer)).status_code == 201
        page = await client.get("/")
        assert page.headers["content-type"].startswith("text/html")
        assert "api/v1/demo/token" in page.text
    async with asgi_client(create_app(make_settings(tmp_path))) as client:
        assert (await client.post("/api/v1/demo/token")).status_code == 404
        assert (await client.get("/")).status_code == 404
