"""Limits: each one refuses the over-limit input clearly, and that input changes nothing.

The limiters themselves run on a fake clock; the service's answers (429 with
``Retry-After``, ``error`` then close 4029) are checked with real clients on
a real server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_kit import (
    ADMIN,
    FAST,
    Served,
    SSEReader,
    auth,
    close_code,
    hello,
    live_server,
    make_settings,
    recv,
    recv_type,
    send,
    start,
    token,
    ws_client,
)

from tether.errors import Throttled
from tether.service import create_app
from tether.service.limits import (
    CONNECTION_RETRY_AFTER_S,
    ConnectionLimiter,
    RateLimiter,
    TokenBucket,
)

# -- the limiters, on a fake clock -------------------------------------------------------


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    """burst frames pass at once; then one per 60/rate seconds."""
    clock = Clock()
    bucket = TokenBucket(60, 3, now=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 1.0
    assert bucket.take()
    assert not bucket.take()


def test_connection_limiter_counts_per_user() -> None:
    """Each user has their own count; the limit raises Throttled; release frees a slot."""
    limiter = ConnectionLimiter(2)
    limiter.acquire("alice")
    limiter.acquire("alice")
    limiter.acquire("bob")
    with pytest.raises(Throttled) as refused:
        limiter.acquire("alice")
    assert refused.value.retry_after_s == CONNECTION_RETRY_AFTER_S
    assert limiter.count("alice") == 2
    limiter.release("alice")
    limiter.acquire("alice")
    assert (limiter.count("alice"), limiter.total()) == (2, 3)


def test_rate_limiter_refuses_past_the_burst_and_says_how_long_to_wait() -> None:
    """burst requests pass, the next is Throttled with the time until a token is back."""
    clock = Clock()
    limiter = RateLimiter(60, 3, now=clock)  # one a second
    for _ in range(3):
        limiter.take("alice")
    clock.now += 0.25
    with pytest.raises(Throttled) as refused:
        limiter.take("alice")
    assert refused.value.retry_after_s == pytest.approx(0.75)
    assert refused.value.retry_after_header == "1"
    limiter.take("bob")  # everyone has their own bucket
    clock.now += 0.75
    limiter.take("alice")


def test_a_refused_request_spends_nothing() -> None:
    """Hammering while throttled does not push the next allowed request further away."""
    clock = Clock()
    limiter = RateLimiter(60, 1, now=clock)
    limiter.take("alice")
    for _ in range(50):
        clock.now += 0.01
        with pytest.raises(Throttled):
            limiter.take("alice")
    clock.now = 1.0
    limiter.take("alice")


def test_idle_buckets_are_dropped_without_changing_any_answer() -> None:
    """A bucket idle long enough to be full again is forgotten; its user keeps a full burst."""
    clock = Clock()
    limiter = RateLimiter(60, 5, now=clock)  # refills completely in 5 s
    for user in ("alice", "bob", "carol"):
        limiter.take(user)
    assert len(limiter) == 3
    clock.now += 4.9
    limiter.take("dave")
    assert len(limiter) == 4  # not full yet: kept
    clock.now += 0.2
    limiter.take("dave")
    assert len(limiter) == 1  # alice, bob, carol were full again: dropped
    for _ in range(5):
        limiter.take("alice")  # a full burst, exactly as if the bucket had been kept
    with pytest.raises(Throttled):
        limiter.take("alice")


def test_memory_stays_bounded_under_many_users() -> None:
    """However many users call at once, at most max_keys buckets are held."""
    clock = Clock()
    limiter = RateLimiter(60, 5, max_keys=100, now=clock)
    for n in range(10_000):
        limiter.take(f"user-{n}")
    assert len(limiter) == 100


# -- the service's answers, with real clients --------------------------------------------


@asynccontextmanager
async def server(
    tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[Served, httpx.AsyncClient]]:
    """A real server (sessions that outlive the test) and an HTTP client on it."""
    lasting = {"idle_timeout": 60.0, "warn_before": 10.0, "presence_timeout": 60.0}
    settings = make_settings(tmp_path, **{**FAST, **lasting, **overrides})
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        yield served, client


def _throttled(response: httpx.Response) -> dict[str, Any]:
    """The error of a 429, checked for its Retry-After and its JSON body."""
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["retry-after"])
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["message"]
    assert 1 <= retry_after <= 60
    assert 0 < error["retry_after_s"] <= retry_after
    return error


async def _alices_sessions(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Alice's sessions, as the admin sees them (the admin has a bucket of its own)."""
    listed = await client.get("/api/v1/sessions", params={"user": "alice"}, headers=ADMIN)
    assert listed.status_code == 200
    sessions: list[dict[str, Any]] = listed.json()["sessions"]
    return sessions


async def test_rest_requests_past_the_rate_get_429_and_start_nothing(tmp_path: Path) -> None:
    """Past TETHER_REQUEST_BURST a start is 429 with Retry-After, and no session is made."""
    async with server(tmp_path, max_requests_per_minute=1, request_burst=3) as (_, client):
        for _ in range(3):
            assert (await client.post("/api/v1/sessions", headers=auth("alice"))).status_code == 201
        _throttled(await client.post("/api/v1/sessions", headers=auth("alice")))
        assert len(await _alices_sessions(client)) == 3
        other = await client.post("/api/v1/sessions", headers=auth("bob"))
        assert other.status_code == 201  # bob has a bucket of his own


async def test_throttled_messages_ends_and_streams_change_nothing(tmp_path: Path) -> None:
    """Over the rate, a message is not appended, an end (even a beacon) ends nothing."""
    async with server(tmp_path, max_requests_per_minute=1, request_burst=2) as (_, client):
        sid = (await client.post("/api/v1/sessions", headers=auth("alice"))).json()["id"]
        base = f"/api/v1/sessions/{sid}"
        sent = await client.post(
            f"{base}/messages", headers=auth("alice"), json={"role": "user", "content": "one"}
        )
        assert sent.status_code == 201
        _throttled(
            await client.post(
                f"{base}/messages", headers=auth("alice"), json={"role": "user", "content": "two"}
            )
        )
        _throttled(await client.post(f"{base}/end", headers=auth("alice")))
        _throttled(await client.post(f"{base}/end", content=token("alice")))
        _throttled(await client.get(f"{base}/events", params={"token": token("alice")}))
        (session,) = await _alices_sessions(client)
        assert (session["state"], session["message_count"], session["connections"]) == (
            "active",
            1,
            0,
        )


async def test_bad_tokens_do_not_spend_a_users_requests(tmp_path: Path) -> None:
    """Requests that fail authentication are refused 401 without touching anyone's rate."""
    async with server(tmp_path, max_requests_per_minute=1, request_burst=1) as (_, client):
        for _ in range(5):
            refused = await client.get("/api/v1/sessions", headers=auth(raw="forged"))
            assert refused.status_code == 401
        assert (await client.get("/api/v1/sessions", headers=auth("alice"))).status_code == 200


async def test_an_event_stream_over_the_connection_limit_gets_429(tmp_path: Path) -> None:
    """With the user's connections all open, a stream is 429 and attaches nothing."""
    async with (
        server(tmp_path, max_connections_per_user=1) as (served, client),
        ws_client(served) as conn,
    ):
        await hello(conn, "alice")
        sid = (await start(conn))["id"]
        url = f"/api/v1/sessions/{sid}/events"
        async with client.stream("GET", url, headers=auth("alice")) as response:
            await response.aread()
        error = _throttled(response)
        assert error["retry_after_s"] == CONNECTION_RETRY_AFTER_S
        (session,) = await _alices_sessions(client)
        assert session["connections"] == 1
        assert served.service.connections.count("alice") == 1
        await send(conn, type="ping")
        assert (await recv_type(conn, "pong"))["type"] == "pong"


async def test_a_websocket_over_the_limit_counts_streams_too(tmp_path: Path) -> None:
    """An open event stream holds a slot: the next WebSocket gets error then 4029, and no start."""
    async with server(tmp_path, max_connections_per_user=1) as (served, client):
        sid = (await client.post("/api/v1/sessions", headers=auth("alice"))).json()["id"]
        url = f"/api/v1/sessions/{sid}/events"
        async with client.stream("GET", url, headers=auth("alice")) as stream:
            reader = SSEReader(stream)  # kept: dropping it would close the stream
            await reader.next_event("session.config")
            async with ws_client(served) as conn:
                await send(conn, type="hello", token=token("alice"), v=1)
                await send(conn, type="start")
                refused = await recv(conn)
                assert refused["type"] == "error"
                assert refused["code"] == "too_many_connections"
                assert refused["retry_after_s"] == CONNECTION_RETRY_AFTER_S
                assert await close_code(conn) == 4029
            assert served.service.connections.count("alice") == 1
            assert len(await _alices_sessions(client)) == 1
            assert "ping" in (await reader.next()).comments  # the stream still flows


async def test_a_websocket_flood_is_refused_before_it_acts(tmp_path: Path) -> None:
    """The frame over the rate gets error rate_limited and close 4029, and is not appended."""
    limits = {"max_messages_per_minute": 1, "message_burst": 4}
    async with server(tmp_path, **limits) as (served, client), ws_client(served) as conn:
        await hello(conn, "alice")  # frame 1
        sid = (await start(conn))["id"]  # frame 2
        await send(conn, type="message", role="user", content="kept")  # frame 3
        assert (await recv_type(conn, "transcript.message"))["message"]["content"] == "kept"
        await send(conn, type="ping")  # frame 4: the last of the burst
        await recv_type(conn, "pong")
        await send(conn, type="message", role="user", content="dropped")
        refused = await recv_type(conn, "error")
        assert refused["code"] == "rate_limited"
        assert await close_code(conn) == 4029
        messages = await client.get(f"/api/v1/sessions/{sid}/messages", headers=auth("alice"))
        assert [m["content"] for m in messages.json()["messages"]] == ["kept"]
