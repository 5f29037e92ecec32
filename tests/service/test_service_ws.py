"""A real server and real WebSocket clients: one session's whole life, resume and observe."""

from __future__ import annotations

import time
from pathlib import Path

import yaml
from service_kit import (
    FAST,
    WAIT,
    auth,
    beat_for,
    close_code,
    eventually,
    hello,
    live_server,
    make_settings,
    recv,
    recv_type,
    send,
    start,
    ws_client,
)

from tether.service import create_app


async def test_a_whole_session_over_websocket(tmp_path: Path) -> None:
    """Start, config, messages, warning, activity, observe, config broadcast, idle end, archive."""
    settings = make_settings(tmp_path, **FAST)
    async with live_server(create_app(settings), settings) as served:
        async with ws_client(served) as main, ws_client(served) as watcher:
            welcome = await hello(main)
            assert welcome["heartbeat_interval_s"] == FAST["heartbeat_interval"]
            session = await start(main, kind="interview", config={"job": "pm"})
            sid = session["id"]
            assert await recv(main) == {"type": "session.config", "config": {"job": "pm"}}

            await send(main, type="message", role="user", content="hello")
            echoed = await recv_type(main, "transcript.message")
            assert echoed["message"]["seq"] == 1

            warning = await recv_type(main, "session.warning")
            assert warning["reason"] == "idle_timeout"
            assert 0 < warning["seconds_left"] <= FAST["warn_before"]
            await send(main, type="activity")
            await recv_type(main, "session.active")

            await hello(watcher)
            await send(watcher, type="observe", session_id=sid)
            joined = await recv(watcher)
            assert joined["type"] == "session.resumed"
            assert joined["session"]["id"] == sid
            assert [m["content"] for m in joined["transcript_tail"]] == ["hello"]
            assert (await recv(watcher))["type"] == "session.config"

            await send(main, type="config", config={"job": "designer"})
            for conn in (main, watcher):
                update = await recv_type(conn, "session.config")
                assert update["config"] == {"job": "designer"}

            ended = [await recv_type(conn, "session.ended") for conn in (main, watcher)]
            assert {e["reason"] for e in ended} == {"idle_timeout"}
            assert [await close_code(conn) for conn in (main, watcher)] == [4001, 4001]

        archive_id = ended[0]["archive_id"]
        path = tmp_path / "users" / "alice" / "dialogs" / "archived" / f"{archive_id}.yaml"
        await eventually(path.exists)
        on_disk = yaml.safe_load(path.read_text())
        assert "hello" in path.read_text()
        assert on_disk is not None
        async with served.client() as client:
            listed = await client.get("/api/v1/users/alice/archives", headers=auth("alice"))
            assert [a["archive_id"] for a in listed.json()["archives"]] == [archive_id]
            dialog = await client.get(
                f"/api/v1/users/alice/archives/{archive_id}", headers=auth("alice")
            )
            assert dialog.json()["end_reason"] == "idle_timeout"
            assert [m["content"] for m in dialog.json()["messages"]] == ["hello"]
            stranger = await client.get("/api/v1/users/alice/archives", headers=auth("bob"))
            assert stranger.status_code == 404


async def test_resume_after_a_dropped_connection(tmp_path: Path) -> None:
    """A connection lost without a close can be replaced within the presence grace."""
    settings = make_settings(tmp_path, **{**FAST, "idle_timeout": 5.0, "warn_before": 1.0})
    async with live_server(create_app(settings), settings) as served:
        async with ws_client(served) as first:
            await hello(first)
            sid = (await start(first))["id"]
            await recv_type(first, "session.config")
            for n in range(3):
                await send(first, type="message", role="user", content=f"m{n}")
                await recv_type(first, "transcript.message")
            first.transport.abort()  # the network goes away: no close frame
        dropped_at = time.monotonic()
        async with served.client() as client:

            async def detached() -> bool:
                info = await client.get(f"/api/v1/sessions/{sid}", headers=auth("alice"))
                return bool(info.json()["connections"] == 0)

            await eventually(detached)
        async with ws_client(served) as second:
            await hello(second)
            await send(second, type="resume", session_id=sid, after=1)
            resumed = await recv(second)
            assert time.monotonic() - dropped_at < FAST["presence_timeout"]
            assert resumed["type"] == "session.resumed"
            assert resumed["session"]["state"] == "active"
            assert [m["seq"] for m in resumed["transcript_tail"]] == [2, 3]
            assert (await recv(second))["type"] == "session.config"
            await send(second, type="end")
            assert (await recv_type(second, "session.ended"))["reason"] == "client_ended"
            assert await close_code(second) == 1000


async def test_a_connection_left_closed_past_the_grace_ends_client_gone(tmp_path: Path) -> None:
    """No connection and no heartbeat for the presence timeout: the session ends client_gone."""
    settings = make_settings(tmp_path, **{**FAST, "idle_timeout": 5.0, "warn_before": 1.0})
    async with live_server(create_app(settings), settings) as served:
        async with ws_client(served) as conn:
            await hello(conn)
            sid = (await start(conn))["id"]
        async with served.client() as client:

            async def gone() -> bool:
                info = await client.get(f"/api/v1/sessions/{sid}", headers=auth("alice"))
                return bool(info.json()["end_reason"] == "client_gone")

            await eventually(gone)
        async with ws_client(served) as late:
            await hello(late)
            await send(late, type="resume", session_id=sid)
            error = await recv(late)
            assert (error["type"], error["code"], error["reason"]) == (
                "error",
                "session_ended",
                "client_gone",
            )
            assert await close_code(late) == 4404


async def test_observe_waits_for_the_callers_next_session(tmp_path: Path) -> None:
    """observe {user: me} attaches when the caller's next session starts (seed 001's frontend)."""
    settings = make_settings(tmp_path, **{**FAST, "idle_timeout": 5.0, "warn_before": 1.0})
    async with (
        live_server(create_app(settings), settings) as served,
        ws_client(served) as frontend,
        ws_client(served) as call,
    ):
        await hello(frontend)
        await send(frontend, type="observe", user="me", wait_s=WAIT)
        await send(frontend, type="ping")
        assert (await recv(frontend))["type"] == "pong"  # still served while waiting
        await hello(call)
        sid = (await start(call, config={"job": "nurse"}))["id"]
        started = await recv_type(frontend, "session.started")
        assert started["session"]["id"] == sid
        assert (await recv(frontend))["config"] == {"job": "nurse"}
        await send(call, type="message", role="user", content="Welcome")
        heard = await recv_type(frontend, "transcript.message")
        assert heard["message"]["content"] == "Welcome"
        async with served.client() as client:
            r = await client.post(f"/api/v1/sessions/{sid}/end", headers=auth("alice"))
            assert r.json()["ended"]
        assert (await recv_type(frontend, "session.ended"))["reason"] == "client_ended"
        assert await close_code(frontend) == 1000


async def test_observe_gives_up_after_wait_s(tmp_path: Path) -> None:
    """A wait that sees no new session ends with an observe_timeout error; the connection stays."""
    settings = make_settings(tmp_path, **FAST)
    async with live_server(create_app(settings), settings) as served, ws_client(served) as conn:
        await hello(conn)
        await send(conn, type="observe", user="me", wait_s=0.05)
        assert (await recv(conn))["code"] == "observe_timeout"
        await send(conn, type="ping")
        assert (await recv(conn))["type"] == "pong"


async def test_ping_is_a_heartbeat_and_keeps_a_session_present(tmp_path: Path) -> None:
    """ping answers pong and, like any attached connection, holds the session past presence."""
    settings = make_settings(tmp_path, **{**FAST, "idle_timeout": 5.0, "warn_before": 1.0})
    async with live_server(create_app(settings), settings) as served, ws_client(served) as conn:
        await hello(conn)
        sid = (await start(conn))["id"]

        async def ping() -> None:
            await send(conn, type="ping")
            await recv_type(conn, "pong")

        await beat_for(ping, FAST["heartbeat_interval"], 2 * FAST["presence_timeout"])
        async with served.client() as client:
            info = await client.get(f"/api/v1/sessions/{sid}", headers=auth("alice"))
            assert info.json()["state"] == "active"
            assert info.json()["connections"] == 1


async def test_a_start_beyond_the_user_limit_replaces_the_oldest(tmp_path: Path) -> None:
    """The replaced session's connection gets session.ended replaced and close 4003."""
    settings = make_settings(tmp_path, **{**FAST, "max_sessions_per_user": 1})
    async with (
        live_server(create_app(settings), settings) as served,
        ws_client(served) as old,
        ws_client(served) as new,
    ):
        await hello(old)
        await start(old)
        await hello(new)
        await start(new)
        assert (await recv_type(old, "session.ended"))["reason"] == "replaced"
        assert await close_code(old) == 4003
        await send(new, type="ping")
        assert (await recv_type(new, "pong"))["type"] == "pong"


async def test_resume_from_a_position_beyond_the_transcript_still_gets_new_messages(
    tmp_path: Path,
) -> None:
    """A client claiming a later position than exists loses nothing appended afterwards."""
    settings = make_settings(tmp_path, **{**FAST, "idle_timeout": 5.0, "warn_before": 1.0})
    async with (
        live_server(create_app(settings), settings) as served,
        ws_client(served) as first,
        ws_client(served) as second,
    ):
        await hello(first)
        sid = (await start(first))["id"]
        await hello(second)
        await send(second, type="resume", session_id=sid, after=99)
        assert (await recv(second))["transcript_tail"] == []
        await send(first, type="message", role="user", content="still delivered")
        heard = await recv_type(second, "transcript.message")
        assert heard["message"]["seq"] == 1
