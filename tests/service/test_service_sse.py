"""Server-Sent Events on a real server: events with ids, Last-Event-ID replay, presence."""

from __future__ import annotations

from pathlib import Path

import httpx
from service_kit import (
    FAST,
    SSEReader,
    auth,
    eventually,
    live_server,
    make_settings,
    token,
)

from tether.service import create_app

SLOW_IDLE = {**FAST, "idle_timeout": 6.0, "warn_before": 1.0}


async def _start(client: httpx.AsyncClient, user: str = "alice") -> str:
    response = await client.post("/api/v1/sessions", headers=auth(user), json={"config": {"k": 1}})
    sid: str = response.json()["id"]
    return sid


async def test_events_stream_with_transcript_ids_and_heartbeat_comments(tmp_path: Path) -> None:
    """The stream sends config, then messages with id = seq, and ': ping' comments while idle."""
    settings = make_settings(tmp_path, **SLOW_IDLE)
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        sid = await _start(client)
        url = f"/api/v1/sessions/{sid}/events"
        async with client.stream("GET", url, params={"token": token("alice")}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            reader = SSEReader(response)
            config = await reader.next_event()
            assert (config.id, config.data) == ("0", {"type": "session.config", "config": {"k": 1}})
            await client.post(
                f"/api/v1/sessions/{sid}/messages",
                headers=auth("alice"),
                json={"role": "user", "content": "hi"},
            )
            message = await reader.next_event("transcript.message")
            assert message.id == "1"
            assert message.data is not None
            assert message.data["message"]["content"] == "hi"
            while "ping" not in (await reader.next()).comments:
                pass


async def test_last_event_id_replays_what_was_missed(tmp_path: Path) -> None:
    """Reconnecting with Last-Event-ID: n replays messages after n, then the live state."""
    settings = make_settings(tmp_path, **SLOW_IDLE)
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        sid = await _start(client)
        for n in range(1, 4):
            await client.post(
                f"/api/v1/sessions/{sid}/messages",
                headers=auth("alice"),
                json={"role": "user", "content": f"m{n}"},
            )
        headers = {**auth("alice"), "Last-Event-ID": "1"}
        async with client.stream("GET", f"/api/v1/sessions/{sid}/events", headers=headers) as r:
            reader = SSEReader(r)
            replayed = [await reader.next_event() for _ in range(3)]
        assert [(m.id, m.data["type"] if m.data else None) for m in replayed] == [
            ("2", "transcript.message"),
            ("3", "transcript.message"),
            ("3", "session.config"),
        ]


async def test_an_open_stream_holds_presence_and_its_loss_starts_the_grace(
    tmp_path: Path,
) -> None:
    """While streaming, no heartbeat is needed; after the stream closes, client_gone follows."""
    settings = make_settings(tmp_path, **SLOW_IDLE)
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        sid = await _start(client)
        info_url = f"/api/v1/sessions/{sid}"

        async def info() -> dict[str, object]:
            body: dict[str, object] = (await client.get(info_url, headers=auth("alice"))).json()
            return body

        async with client.stream(
            "GET", f"/api/v1/sessions/{sid}/events", headers=auth("alice")
        ) as response:
            reader = SSEReader(response)
            await reader.next_event("session.config")
            assert (await info())["connections"] == 1
            pings = 0
            while pings < 2 * FAST["presence_timeout"] / FAST["sse_ping_interval"]:
                if "ping" in (await reader.next()).comments:
                    pings += 1
            assert (await info())["state"] == "active"

        async def gone() -> bool:
            return (await info())["end_reason"] == "client_gone"

        await eventually(gone)


async def test_the_end_reaches_the_stream_and_ended_sessions_answer_410(tmp_path: Path) -> None:
    """session.ended ends the stream; reconnecting to an ended session is 410 (no retry)."""
    settings = make_settings(tmp_path, **SLOW_IDLE)
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        sid = await _start(client)
        url = f"/api/v1/sessions/{sid}/events"
        async with client.stream("GET", url, headers=auth("alice")) as response:
            reader = SSEReader(response)
            await reader.next_event("session.config")
            await client.post(f"/api/v1/sessions/{sid}/end", headers=auth("alice"))
            ended = await reader.next_event("session.ended")
            assert ended.data is not None
            assert ended.data["reason"] == "client_ended"
            assert ended.data["archive_id"]
        again = await client.get(url, headers=auth("alice"))
        assert again.status_code == 410
        assert again.json()["error"]["reason"] == "client_ended"


async def test_streams_are_private_and_authenticated(tmp_path: Path) -> None:
    """No token is 401; someone else's session is 404."""
    settings = make_settings(tmp_path, **SLOW_IDLE)
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        sid = await _start(client)
        url = f"/api/v1/sessions/{sid}/events"
        assert (await client.get(url)).status_code == 401
        assert (await client.get(url, params={"token": token("bob")})).status_code == 404
