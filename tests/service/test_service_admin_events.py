"""``GET /api/v1/admin/events``: the admin feed the dashboard listens to, on a real server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from service_kit import (
    ADMIN,
    ADMIN_TOKEN,
    FAST,
    SSEReader,
    auth,
    eventually,
    hello,
    live_server,
    make_settings,
    send,
    start,
    ws_client,
)

from tether.core.policy import Policy
from tether.core.session import SessionInfo
from tether.service import create_app
from tether.service.admin_feed import ENDS_BUCKET, ends_by_bucket
from tether.types import EndReason, SessionId, SessionState, UserId

EVENTS = "/api/v1/admin/events"
SLOW_IDLE = {**FAST, "idle_timeout": 6.0, "warn_before": 1.0}


async def _next_about(reader: SSEReader, kind: str, session_id: str) -> dict[str, Any]:
    """The next event of type ``kind`` about ``session_id`` (other events are skipped)."""
    while True:
        message = await reader.next_event(kind)
        assert message.data is not None
        if message.data["session"]["id"] == session_id:
            return message.data


async def _read_to_the_end(reader: SSEReader) -> None:
    while True:
        await reader.next()


async def test_admin_events_refuse_everyone_but_the_admin(tmp_path: Path) -> None:
    """No token is 401, a user's token 403; the admin's works in the header and as ?token=."""
    settings = make_settings(tmp_path, **SLOW_IDLE)
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        assert (await client.get(EVENTS)).status_code == 401
        refused = await client.get(EVENTS, headers=auth("alice"))
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
        for kwargs in ({"headers": ADMIN}, {"params": {"token": ADMIN_TOKEN}}):
            async with client.stream("GET", EVENTS, **kwargs) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                assert response.headers["cache-control"] == "no-cache"
                first = await SSEReader(response).next_event()
                assert first.data is not None
                assert first.data["type"] == "snapshot"


async def test_admin_events_start_with_a_snapshot_then_follow_the_lifecycle(
    tmp_path: Path,
) -> None:
    """A snapshot, then started, updated (messages, connections), warning, active, ended."""
    settings = make_settings(tmp_path, **SLOW_IDLE)
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        before = (await client.post("/api/v1/sessions", headers=auth("alice"))).json()
        async with client.stream("GET", EVENTS, headers=ADMIN) as response:
            reader = SSEReader(response)
            snapshot = (await reader.next_event("snapshot")).data
            assert snapshot is not None
            assert [s["id"] for s in snapshot["sessions"]] == [before["id"]]
            assert "config" not in snapshot["sessions"][0]
            assert snapshot["now"] > 0
            assert snapshot["interval_s"] > 0

            async with ws_client(served) as ws:
                await hello(ws, "bob")
                session = await start(ws, kind="interview")
                sid = session["id"]
                started = await _next_about(reader, "session.started", sid)
                assert (started["session"]["user"], started["session"]["kind"]) == (
                    "bob",
                    "interview",
                )
                attached = await _next_about(reader, "session.updated", sid)
                assert attached["session"]["connections"] == 1

                await send(ws, type="message", role="user", content="hello")
                updated = await _next_about(reader, "session.updated", sid)
                assert updated["session"]["message_count"] == 1

                warning = await _next_about(reader, "session.warning", sid)
                assert warning["session"]["state"] == "warning"
                assert warning["session"]["warning"]["reason"] == "idle_timeout"
                await send(ws, type="activity")
                active = await _next_about(reader, "session.active", sid)
                assert active["session"]["state"] == "active"

                await client.post(f"/api/v1/sessions/{sid}/end", headers=ADMIN)
                ended = await _next_about(reader, "session.ended", sid)
                assert ended["session"]["end_reason"] == "admin"
                assert ended["session"]["ended_at"] is not None
                assert ended["now"] >= ended["session"]["ended_at"]


async def test_admin_events_report_a_config_update(tmp_path: Path) -> None:
    """A new config, over REST or a WebSocket frame, is a ``session.updated`` on the feed."""
    settings = make_settings(tmp_path, **SLOW_IDLE)
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        sid = (await client.post("/api/v1/sessions", headers=auth("cleo"))).json()["id"]
        async with client.stream("GET", EVENTS, headers=ADMIN) as response:
            reader = SSEReader(response)
            await reader.next_event("snapshot")
            put = await client.put(
                f"/api/v1/sessions/{sid}/config", headers=auth("cleo"), json={"config": {"a": 1}}
            )
            assert put.status_code == 200
            updated = await _next_about(reader, "session.updated", sid)
            assert updated["session"]["id"] == sid

            async with ws_client(served) as ws:
                await hello(ws, "dan")
                other = (await start(ws))["id"]
                await _next_about(reader, "session.updated", other)  # its connection
                await send(ws, type="config", config={"b": 2})
                updated = await _next_about(reader, "session.updated", other)
                assert updated["session"]["id"] == other


async def test_admin_events_send_fresh_snapshots_with_the_last_hours_ends(tmp_path: Path) -> None:
    """Every interval a new snapshot arrives, listing recent ends and counting them by reason."""
    settings = make_settings(tmp_path, **SLOW_IDLE)
    app = create_app(settings)
    async with live_server(app, settings) as served, served.client() as client:
        served.service.admin_feed.snapshot_interval = 0.2
        ids = [(await client.post("/api/v1/sessions", headers=auth("carol"))).json()["id"]]
        ids.append((await client.post("/api/v1/sessions", headers=auth("dave"))).json()["id"])
        await client.post(f"/api/v1/sessions/{ids[0]}/end", headers=auth("carol"))
        async with client.stream("GET", EVENTS, params={"token": ADMIN_TOKEN}) as response:
            reader = SSEReader(response)
            first = (await reader.next_event("snapshot")).data
            await client.post(f"/api/v1/sessions/{ids[1]}/end", headers=ADMIN)
            while True:
                later = (await reader.next_event("snapshot")).data
                assert later is not None
                if not later["sessions"]:
                    break
        assert first is not None
        assert [s["id"] for s in first["sessions"]] == [ids[1]]
        assert [s["id"] for s in first["ended"]] == [ids[0]]
        assert [(e["reason"], e["count"]) for e in first["ends"]] == [("client_ended", 1)]
        assert [s["id"] for s in later["ended"]] == [ids[1], ids[0]]  # newest first
        assert sorted((e["reason"], e["count"]) for e in later["ends"]) == [
            ("admin", 1),
            ("client_ended", 1),
        ]
        assert later["ends_bucket_s"] == ENDS_BUCKET


async def test_admin_streams_end_when_the_server_drains(tmp_path: Path) -> None:
    """Draining the service ends open admin streams after the sessions' ends were sent."""
    settings = make_settings(tmp_path, **SLOW_IDLE)
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        sid = (await client.post("/api/v1/sessions", headers=auth("erin"))).json()["id"]
        async with client.stream("GET", EVENTS, headers=ADMIN) as response:
            reader = SSEReader(response)
            await reader.next_event("snapshot")
            await eventually(lambda: served.service.admin_feed.listening == 1)
            drain = asyncio.get_running_loop().create_task(served.service.drain(3.0))
            ended = await _next_about(reader, "session.ended", sid)
            assert ended["session"]["end_reason"] == "server_shutdown"
            with pytest.raises(EOFError):
                await _read_to_the_end(reader)
            await drain
        await eventually(lambda: served.service.admin_feed.listening == 0)


async def test_nothing_is_tracked_while_no_admin_stream_is_open(tmp_path: Path) -> None:
    """Without a subscriber the feed registers no manager hook and queues no update."""
    settings = make_settings(tmp_path, **SLOW_IDLE)
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        feed = served.service.admin_feed
        sid = (await client.post("/api/v1/sessions", headers=auth("fay"))).json()["id"]
        await client.post(
            f"/api/v1/sessions/{sid}/messages",
            headers=auth("fay"),
            json={"role": "user", "content": "hi"},
        )
        assert feed._hooked is None
        assert feed._pending == set()
        assert not feed._flushing


def _ended(at: float, reason: EndReason) -> SessionInfo:
    policy = Policy(idle_timeout=60, warn_before=10, max_duration=600, presence_timeout=30)
    return SessionInfo(
        id=SessionId("0" * 32),
        user=UserId("u"),
        kind="chat",
        state=SessionState.ENDED,
        created_at=at - 10,
        last_activity=at - 10,
        last_seen=at - 10,
        connections=0,
        message_count=0,
        config={},
        policy=policy,
        warning=None,
        next_deadline=None,
        ended_at=at,
        end_reason=reason,
    )


def test_ends_are_counted_in_aligned_five_minute_buckets_over_the_last_hour() -> None:
    """Ends older than an hour are left out; the rest count per aligned bucket and reason."""
    now = 1_700_000_000.0
    ended = [
        _ended(now - 10, EndReason.IDLE_TIMEOUT),
        _ended(now - 20, EndReason.IDLE_TIMEOUT),
        _ended(now - 20, EndReason.ADMIN),
        _ended(now - 3000, EndReason.CLIENT_GONE),
        _ended(now - 3700, EndReason.CLIENT_GONE),
    ]
    buckets = ends_by_bucket(ended, now)
    current = (now - 10) // ENDS_BUCKET * ENDS_BUCKET
    assert {(b["start"], b["reason"]): b["count"] for b in buckets} == {
        (current, "admin"): 1,
        (current, "idle_timeout"): 2,
        ((now - 3000) // ENDS_BUCKET * ENDS_BUCKET, "client_gone"): 1,
    }


def test_schema_documents_the_admin_stream(tmp_path: Path) -> None:
    """OpenAPI lists the admin stream with its event schema and its 401/403 answers."""
    app = create_app(make_settings(tmp_path))
    operation = app.openapi()["paths"][EVENTS]["get"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert {"401", "403"} <= set(operation["responses"])
