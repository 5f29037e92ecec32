"""REST on a real server with the real clock: heartbeat-only clients, sendBeacon, cleanup."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from service_kit import (
    ADMIN,
    FAST,
    auth,
    beat_for,
    eventually,
    live_server,
    make_settings,
    token,
)

from tether.service import create_app

SLOW_IDLE = {**FAST, "idle_timeout": 8.0, "warn_before": 1.0}


async def _start(client: httpx.AsyncClient, user: str = "alice") -> str:
    response = await client.post("/api/v1/sessions", headers=auth(user))
    assert response.status_code == 201
    sid: str = response.json()["id"]
    return sid


async def _info(client: httpx.AsyncClient, sid: str, user: str = "alice") -> dict[str, object]:
    body: dict[str, object] = (
        await client.get(f"/api/v1/sessions/{sid}", headers=auth(user))
    ).json()
    return body


async def test_heartbeats_alone_keep_a_session_then_client_gone(tmp_path: Path) -> None:
    """Seed 003's client: heartbeats keep it past the presence timeout; silence ends it."""
    settings = make_settings(tmp_path, **SLOW_IDLE)
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        sid = await _start(client)
        began = time.monotonic()

        async def heartbeat() -> None:
            response = await client.post(f"/api/v1/sessions/{sid}/heartbeat", headers=auth("alice"))
            assert response.status_code == 200

        await beat_for(heartbeat, FAST["heartbeat_interval"], 2.5 * FAST["presence_timeout"])
        assert time.monotonic() - began > 2 * FAST["presence_timeout"]
        info = await _info(client, sid)
        assert info["state"] == "active"
        silent_from = time.monotonic()

        async def gone() -> bool:
            return (await _info(client, sid))["end_reason"] == "client_gone"

        await eventually(gone)
        assert time.monotonic() - silent_from >= FAST["presence_timeout"] - 0.25
        late = await client.post(f"/api/v1/sessions/{sid}/heartbeat", headers=auth("alice"))
        assert late.status_code == 410
        assert late.json()["error"]["reason"] == "client_gone"


async def test_send_beacon_ends_the_session(tmp_path: Path) -> None:
    """A text/plain POST carrying the token (what sendBeacon sends on unload) ends it."""
    settings = make_settings(tmp_path, **SLOW_IDLE)
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        sid = await _start(client)
        response = await client.post(
            f"/api/v1/sessions/{sid}/end",
            content=token("alice"),
            headers={"Content-Type": "text/plain;charset=UTF-8"},
        )
        assert response.json() == {"ended": True, "reason": "client_ended"}
        assert (await _info(client, sid))["end_reason"] == "client_ended"


async def test_cleanup_strategies_with_and_without_the_admin_token(tmp_path: Path) -> None:
    """all / inactive / specific end the caller's sessions; the admin token reaches everyone's."""
    settings = make_settings(tmp_path, **{**SLOW_IDLE, "presence_timeout": 30.0})
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        url = "/api/v1/sessions/cleanup"
        alice = [await _start(client) for _ in range(3)]
        bob = [await _start(client, "bob") for _ in range(2)]

        specific = {"type": "specific", "session_ids": [alice[0], bob[0]]}
        assert (await client.post(url, headers=auth("alice"), json=specific)).json() == {"ended": 1}

        quiet_since = time.monotonic()
        await eventually(lambda: time.monotonic() - quiet_since > 0.3)
        await client.post(f"/api/v1/sessions/{alice[2]}/activity", headers=auth("alice"))
        inactive = {"type": "inactive", "inactive_for": "250ms"}
        assert (await client.post(url, headers=auth("alice"), json=inactive)).json() == {"ended": 1}
        assert (await _info(client, alice[1]))["end_reason"] == "client_ended"
        assert (await _info(client, alice[2]))["state"] == "active"

        assert (await client.post(url, headers=auth("alice"), json={"type": "all"})).json() == {
            "ended": 1
        }
        for sid in bob:
            assert (await _info(client, sid, "bob"))["state"] == "active"

        refused = await client.post(url, headers=auth("alice"), json={"type": "all", "user": "bob"})
        assert refused.status_code == 403
        everyone = await client.post(url, headers=ADMIN, json={"type": "all"})
        assert everyone.json() == {"ended": 2}
        for sid in bob:
            assert (await _info(client, sid, "bob"))["end_reason"] == "admin"
