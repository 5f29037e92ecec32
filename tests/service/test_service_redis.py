"""Redis trouble: unreachable at start-up (refuse, or fall back to memory) and down at run time.

The run-time tests use a real ``redis-server`` with an AOF that the test kills
(SIGKILL, by pid) and restarts on the same port, under one tether server that
is never restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_kit import (
    FAST,
    asgi_client,
    auth,
    hello,
    live_server,
    make_settings,
    recv,
    start,
    ws_client,
)
from websockets.exceptions import ConnectionClosed

from cluster.process_kit import TETHER, free_port, poll_until, restartable_redis
from tether.service import create_app, load_settings
from tether.service.app import build_manager
from tether.store.redis import RedisStore

OUTAGE = {
    **FAST,
    "idle_timeout": 60.0,
    "warn_before": 10.0,
    "max_duration": 120.0,
    "presence_timeout": 1.0,
    "node_lease": 1.5,
    "end_lease": 3.0,
    "cluster_poll": 0.2,
    "max_requests_per_minute": 100_000,
    "request_burst": 10_000,
}


def test_serve_refuses_to_start_when_redis_does_not_answer(tmp_path: Path) -> None:
    """tether serve with an unreachable TETHER_REDIS_URL exits non-zero with one line, no trace."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    env = {"PATH": "/usr/bin:/bin", "TETHER_REDIS_URL": url, "TETHER_PORT": str(free_port())}
    done = subprocess.run(
        [str(TETHER), "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert "TETHER_REDIS_URL" in errors[0]
    assert url in errors[0]
    assert "TETHER_REDIS_FALLBACK=memory" in errors[0]


async def test_redis_fallback_memory_runs_on_memory_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """TETHER_REDIS_FALLBACK=memory: Redis down at start-up means memory, a warning, /health."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    settings = make_settings(tmp_path, redis_url=url, redis_fallback="memory")
    app = create_app(settings)
    with caplog.at_level(logging.WARNING, logger="tether.service"):
        async with asgi_client(app) as client:
            health = (await client.get("/health")).json()
            assert health["status"] == "ok"
            assert health["store"] == {"kind": "memory", "status": "ok", "fallback": True}
            assert (await client.get("/ready")).status_code == 200
            started = await client.post("/api/v1/sessions", headers=auth("alice"))
            assert started.status_code == 201
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("TETHER_REDIS_FALLBACK=memory" in w and "TETHER_REDIS_URL" in w for w in warnings)


async def test_without_fallback_an_unreachable_redis_fails_the_app_start(tmp_path: Path) -> None:
    """create_app's lifespan with Redis down (no fallback) fails naming TETHER_REDIS_URL."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    app = create_app(make_settings(tmp_path, redis_url=url))
    with pytest.raises(Exception, match="TETHER_REDIS_URL"):
        async with asgi_client(app):
            pass


@dataclass
class Outcome:
    """What an outage left behind: each session's state, bob's heartbeat answers, alice's frames."""

    states: dict[str, str]
    heartbeats: list[int]
    alice_frames: list[dict[str, Any]]


async def _outage(tmp_path: Path, presence: float, outage: float) -> Outcome:
    """alice on a WebSocket, bob on REST heartbeats; Redis is killed for ``outage`` s, restarted.

    Checks the answers during the outage (503 + Retry-After, /ready 503,
    /health degraded) and the recovery (ready again, heartbeats and starts
    accepted) on the way, then lets the schedulers look at every deadline.
    """
    policy = {**OUTAGE, "presence_timeout": presence}
    with restartable_redis(tmp_path / "redis") as redis_server:
        settings = make_settings(tmp_path / "data", redis_url=redis_server.url, **policy)
        app = create_app(settings)
        async with (
            live_server(app, settings) as served,
            served.client() as client,
            ws_client(served) as conn,
        ):
            await hello(conn, "alice")
            alice = (await start(conn, kind="chat"))["id"]
            await recv(conn)  # session.config
            bob = (await client.post("/api/v1/sessions", headers=auth("bob"))).json()["id"]
            statuses: list[int] = []
            stop = asyncio.Event()

            async def heartbeats() -> None:
                # bob's client: a heartbeat every heartbeat_interval, 503s or not.
                while not stop.is_set():
                    response = await client.post(
                        f"/api/v1/sessions/{bob}/heartbeat", headers=auth("bob")
                    )
                    statuses.append(response.status_code)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), policy["heartbeat_interval"])

            beat = asyncio.create_task(heartbeats())
            try:
                redis_server.kill()
                down_at = time.monotonic()
                refused = await client.post("/api/v1/sessions", headers=auth("carol"))
                assert refused.status_code == 503
                assert refused.headers["Retry-After"] == "1"
                assert refused.json()["error"]["code"] == "store_unavailable"
                ready = await client.get("/ready")
                assert ready.status_code == 503
                assert ready.headers["Retry-After"] == "1"
                health = await client.get("/health")
                assert health.status_code == 200
                assert health.json()["status"] == "degraded"

                async def outage_over() -> bool:
                    return time.monotonic() - down_at > outage

                await poll_until(outage_over, outage + 5)
                assert 503 in statuses
                redis_server.start()

                async def ready_again() -> bool:
                    return (await client.get("/ready")).status_code == 200

                await poll_until(ready_again, 10.0, "tether never became ready again")
                assert (await client.get("/health")).json()["status"] == "ok"
                new = await client.post("/api/v1/sessions", headers=auth("carol"))
                assert new.status_code == 201
                since = time.monotonic()

                async def deadlines_looked_at() -> bool:
                    return time.monotonic() - since > 1.5 * presence

                await poll_until(deadlines_looked_at, presence * 2 + 5)
            finally:
                stop.set()
                await beat
            states = {}
            for sid, user in ((alice, "alice"), (bob, "bob")):
                info = (await client.get(f"/api/v1/sessions/{sid}", headers=auth(user))).json()
                states[user] = info["state"]
            frames: list[dict[str, Any]] = []
            with contextlib.suppress(TimeoutError, ConnectionClosed):
                while True:
                    frames.append(await recv(conn, within=0.2))
            return Outcome(states, statuses, frames)


async def test_a_short_redis_outage_answers_503_then_recovers_with_every_session(
    tmp_path: Path,
) -> None:
    """Redis down shorter than the presence timeout: 503s, recovery, no session ended."""
    outcome = await _outage(tmp_path, presence=3.0, outage=1.2)
    assert outcome.states == {"alice": "active", "bob": "active"}
    assert outcome.heartbeats[-1] == 200
    assert [f["type"] for f in outcome.alice_frames] == []


async def test_a_long_redis_outage_keeps_sessions_held_by_a_websocket(tmp_path: Path) -> None:
    """Redis down longer than the presence timeout: a session with a live socket stays active."""
    outcome = await _outage(tmp_path, presence=1.0, outage=2.5)
    assert outcome.states["alice"] == "active"
    assert "session.ended" not in [f["type"] for f in outcome.alice_frames]


async def test_a_long_redis_outage_does_not_end_heartbeating_sessions(tmp_path: Path) -> None:
    """Redis down longer than the presence timeout: a client heartbeating through it stays."""
    outcome = await _outage(tmp_path, presence=1.0, outage=2.5)
    assert outcome.states["bob"] == "active"
    assert outcome.heartbeats[-1] == 200


async def test_a_redis_outage_keeps_live_websockets_and_health_answering(tmp_path: Path) -> None:
    """While Redis is down: /health answers 200 (degraded, no counts); sockets get errors, stay."""
    with restartable_redis(tmp_path / "redis") as redis_server:
        settings = make_settings(tmp_path / "data", redis_url=redis_server.url, **OUTAGE)
        app = create_app(settings)
        async with live_server(app, settings) as served, ws_client(served) as conn:
            await hello(conn, "alice")
            await start(conn)
            await recv(conn)  # session.config
            redis_server.kill()
            async with httpx.AsyncClient(base_url=served.http) as client:
                health = (await client.get("/health")).json()
            assert health["status"] == "degraded"
            assert health["sessions"] is None
            store = {k: health["store"][k] for k in ("kind", "status", "fallback", "losses")}
            assert store == {
                "kind": "redis",
                "status": "unavailable",
                "fallback": False,
                "losses": 0,
            }
            await conn.send('{"type": "ping"}')
            frame = await recv(conn)
            assert (frame["type"], frame["code"]) == ("error", "store_unavailable")
            redis_server.start()

            async def pong() -> bool:
                await conn.send('{"type": "ping"}')
                return (await recv(conn))["type"] == "pong"

            await poll_until(pong, 10.0, "the socket never got a pong after Redis came back")


async def test_cluster_timings_come_from_the_environment_into_the_redis_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """TETHER_NODE_LEASE / TETHER_END_LEASE (durations) set the Redis store's leases."""
    monkeypatch.setenv("TETHER_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("TETHER_NODE_LEASE", "1500ms")
    monkeypatch.setenv("TETHER_END_LEASE", "4s")
    monkeypatch.setenv("TETHER_CLUSTER_POLL", "250ms")
    monkeypatch.setenv("TETHER_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert (settings.node_lease, settings.end_lease, settings.cluster_poll) == (1.5, 4.0, 0.25)
    manager = build_manager(settings)
    store = manager.store
    assert isinstance(store, RedisStore)
    assert (store.node_lease, store.end_lease) == (1.5, 4.0)
    await store.aclose()
