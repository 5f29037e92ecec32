"""Redis that comes back without its data: noticed within a heartbeat, sessions ended, archived.

A real ``redis-server`` with persistence off is killed (SIGKILL, by pid) and
restarted empty on the same port under one real tether server (uvicorn) with
live WebSocket sessions. The contrast cases restart Redis with an AOF, or only
drop its client connections: the data is still there, and nothing may end.
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio
from service_kit import (
    Served,
    auth,
    close_code,
    hello,
    live_server,
    make_settings,
    recv,
    recv_type,
    send,
    start,
    ws_client,
)
from websockets.asyncio.client import ClientConnection

from cluster.process_kit import RestartableRedis, poll_until, restartable_redis
from tether.service import create_app

HEARTBEAT = 0.5
LOSS = {
    "idle_timeout": 60.0,
    "warn_before": 10.0,
    "max_duration": 120.0,
    "presence_timeout": 30.0,
    "heartbeat_interval": HEARTBEAT,
    "hello_timeout": 2.0,
    "sse_ping_interval": 0.5,
    "shutdown_grace": 3.0,
    "node_lease": 1.5,
    "end_lease": 3.0,
    "cluster_poll": 0.2,
    "max_requests_per_minute": 100_000,
    "request_burst": 10_000,
}
NOTICE_SLACK = 0.5
"""Seconds allowed past one heartbeat interval for the check's own round trip and the close."""
SESSIONS = 6
MESSAGES = 3


@dataclass
class Live:
    """One client's live session and every message it had acknowledged."""

    user: str
    conn: ClientConnection
    session_id: str
    acked: list[str] = field(default_factory=list)


async def _post(conn: ClientConnection, live: Live, content: str) -> None:
    """Send a message over the socket; it counts once its ``transcript.message`` comes back."""
    await send(conn, type="message", role="user", content=content)
    frame = await recv_type(conn, "transcript.message")
    assert frame["message"]["content"] == content
    live.acked.append(content)


async def _open(served: Served, client: httpx.AsyncClient, stack: AsyncExitStack) -> list[Live]:
    """``SESSIONS`` live WebSocket sessions with messages; half had messages before attaching.

    Those were started and written to over REST, then resumed over the socket,
    so the node's copy of their transcript starts from the store's.
    """
    sessions = []
    for n in range(SESSIONS):
        user = f"user{n}"
        conn = await stack.enter_async_context(ws_client(served))
        await hello(conn, user)
        if n % 2:
            created = await client.post("/api/v1/sessions", headers=auth(user))
            session_id = created.json()["id"]
            live = Live(user, conn, session_id)
            for k in range(2):
                content = f"{user} before attach {k}"
                posted = await client.post(
                    f"/api/v1/sessions/{session_id}/messages",
                    headers=auth(user),
                    json={"role": "user", "content": content},
                )
                assert posted.status_code == 201
                live.acked.append(content)
            await send(conn, type="resume", session_id=session_id)
            await recv_type(conn, "session.resumed")
        else:
            live = Live(user, conn, (await start(conn))["id"])
        await recv_type(conn, "session.config")
        for k in range(MESSAGES):
            await _post(conn, live, f"{user} says {k}")
        sessions.append(live)
    return sessions


async def _lose_the_data(server: RestartableRedis, how: str) -> None:
    """``restart``: SIGKILL and start again, empty; ``flushall``: FLUSHALL, connections kept."""
    if how == "restart":
        server.kill()
        server.start()
        return
    admin = redis.asyncio.from_url(server.url)
    try:
        await admin.flushall()
    finally:
        await admin.aclose()


@pytest.mark.parametrize("how", ["restart", "flushall"])
async def test_redis_back_empty_ends_every_live_session_with_error_and_archives_it(
    tmp_path: Path, how: str
) -> None:
    """Redis empty again: in a heartbeat each socket gets session.ended error + 1011, one archive.

    ``flushall`` keeps every connection, and the node lease is long enough
    that no keepalive comes in between, so the timer alone must notice it.
    """
    timings = LOSS if how == "restart" else {**LOSS, "node_lease": 60.0, "end_lease": 60.0}
    with restartable_redis(tmp_path / "redis", appendonly=False) as redis_server:
        settings = make_settings(tmp_path / "data", redis_url=redis_server.url, **timings)
        app = create_app(settings)
        async with (
            live_server(app, settings) as served,
            httpx.AsyncClient(base_url=served.http) as client,
            AsyncExitStack() as stack,
        ):
            sessions = await _open(served, client, stack)
            before = (await client.get("/health")).json()["store"]
            assert (before["losses"], before["sessions_lost"], before["lost_at"]) == (0, 0, None)

            await _lose_the_data(redis_server, how)
            restarted = time.time()

            ended: dict[str, dict[str, Any]] = {}
            for live in sessions:
                frame = await recv_type(live.conn, "session.ended", within=HEARTBEAT + 10)
                ended[live.session_id] = frame
                assert frame["reason"] == "error"
                assert await close_code(live.conn) == 1011
            noticed = time.time()

            health = (await client.get("/health")).json()
            store = health["store"]
            assert store["losses"] == 1
            assert store["sessions_lost"] == SESSIONS
            assert store["epoch"] != before["epoch"]
            assert restarted - 1.0 < store["lost_at"] <= restarted + HEARTBEAT + NOTICE_SLACK
            assert noticed - restarted <= HEARTBEAT + NOTICE_SLACK + 1.0
            assert health["sessions"]["total_ended"] == SESSIONS
            metrics = (await client.get("/metrics")).text
            assert "tether_store_losses_total 1.0" in metrics
            assert f"tether_store_sessions_lost_total {float(SESSIONS)}" in metrics

            for live in sessions:
                listed = await client.get(
                    f"/api/v1/users/{live.user}/archives", headers=auth(live.user)
                )
                archives = listed.json()["archives"]
                assert [a["session_id"] for a in archives] == [live.session_id]
                assert archives[0]["end_reason"] == "error"
                archive_id = archives[0]["archive_id"]
                assert ended[live.session_id]["archive_id"] == archive_id
                dialog = await client.get(
                    f"/api/v1/users/{live.user}/archives/{archive_id}", headers=auth(live.user)
                )
                assert [m["content"] for m in dialog.json()["messages"]] == live.acked
                assert "the store came back without its data" in dialog.json()["notes"][0]

            async with ws_client(served) as conn:
                await hello(conn, "newcomer")
                after = Live("newcomer", conn, (await start(conn))["id"])
                await recv_type(conn, "session.config")
                await _post(conn, after, "after the loss")
            created = await client.post("/api/v1/sessions", headers=auth("newcomer2"))
            assert created.status_code == 201
            later = (await client.get("/health")).json()["store"]
            assert (later["losses"], later["epoch"]) == (1, store["epoch"])


async def _survives(server: RestartableRedis, tmp_path: Path, blip: str) -> None:
    """A live session through ``blip`` (``restart`` or ``disconnect``): no loss, nothing ended."""
    settings = make_settings(tmp_path / "data", redis_url=server.url, **LOSS)
    app = create_app(settings)
    async with (
        live_server(app, settings) as served,
        httpx.AsyncClient(base_url=served.http) as client,
        ws_client(served) as conn,
    ):
        await hello(conn, "alice")
        live = Live("alice", conn, (await start(conn))["id"])
        await recv_type(conn, "session.config")
        await _post(conn, live, "before")
        epoch = (await client.get("/health")).json()["store"]["epoch"]
        if blip == "restart":
            server.kill()
            server.start()
        else:
            admin = redis.asyncio.from_url(server.url)
            try:
                killed = await admin.client_kill_filter(_type="normal", skipme=True)
                killed += await admin.client_kill_filter(_type="pubsub", skipme=True)
                assert killed > 0
            finally:
                await admin.aclose()

        async def pong() -> bool:
            await send(conn, type="ping")
            return (await recv(conn))["type"] == "pong"

        await poll_until(pong, 10.0, "the socket never got a pong after the blip")
        since = time.monotonic()

        async def checked_a_few_times() -> bool:
            return time.monotonic() - since > 3 * HEARTBEAT

        await poll_until(checked_a_few_times, 10.0)
        await _post(conn, live, "after")
        store = (await client.get("/health")).json()["store"]
        assert (store["losses"], store["sessions_lost"], store["lost_at"]) == (0, 0, None)
        assert store["epoch"] == epoch
        info = (await client.get(f"/api/v1/sessions/{live.session_id}", headers=auth())).json()
        assert (info["state"], info["message_count"]) == ("active", 2)


async def test_a_redis_restart_with_its_aof_is_not_a_loss(tmp_path: Path) -> None:
    """Redis killed and restarted with its AOF: same epoch, no loss reported, the session lives."""
    with restartable_redis(tmp_path / "redis", appendonly=True) as server:
        await _survives(server, tmp_path, "restart")


async def test_dropped_redis_connections_are_not_a_loss(tmp_path: Path) -> None:
    """Redis drops every client connection (data kept): no loss reported, the session goes on."""
    with restartable_redis(tmp_path / "redis", appendonly=False) as server:
        await _survives(server, tmp_path, "disconnect")
