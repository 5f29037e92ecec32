"""REST over ASGI with a fake clock: every endpoint, ownership, admin, errors and limits."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_kit import ADMIN, asgi_client, auth, make_settings, token

from tether.core.policy import Policy
from tether.service import create_app
from tether.testing import FakeKit, RecordingChannel, fake_manager, settle
from tether.types import SessionId

POLICY = Policy(idle_timeout=600, warn_before=120, max_duration=1800, presence_timeout=3000)
ALICE = auth("alice")
BOB = auth("bob")


@asynccontextmanager
async def service(
    tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, FakeKit]]:
    """A client on the app over a fake-clock manager."""
    async with fake_manager(policy=POLICY) as kit:
        app = create_app(make_settings(tmp_path, **overrides), manager=kit.manager)
        async with asgi_client(app) as client:
            yield client, kit


async def _start(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/sessions", headers=headers, json=body or None)
    assert response.status_code == 201, response.text
    session: dict[str, Any] = response.json()
    return session


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    return error


async def test_start_returns_the_new_session(tmp_path: Path) -> None:
    """POST /sessions answers 201 with the session, its deadlines and its policy."""
    async with service(tmp_path) as (client, kit):
        session = await _start(client, ALICE, kind="interview", config={"job": "pm"})
        assert re.fullmatch(r"[0-9a-f]{32}", session["id"])
        assert session["user"] == "alice"
        assert session["kind"] == "interview"
        assert session["config"] == {"job": "pm"}
        assert session["state"] == "active"
        now = kit.clock.now()
        assert session["deadlines"] == {
            "idle_at": now + 600,
            "max_at": now + 1800,
            "presence_at": None,  # no connection or heartbeat yet: the presence clock waits
        }
        assert session["policy"]["warn_before"] == 120
        bare = await client.post("/api/v1/sessions", headers=ALICE)
        assert bare.status_code == 201
        assert bare.json()["kind"] == "chat"


async def test_sessions_belong_to_their_user(tmp_path: Path) -> None:
    """Another user's session answers 404 exactly like an unknown or malformed id."""
    async with service(tmp_path) as (client, _):
        mine = await _start(client, ALICE)
        unknown = _error(
            await client.get(f"/api/v1/sessions/{'0' * 32}", headers=BOB), 404, "not_found"
        )
        for path in ("", "/heartbeat", "/activity", "/end"):
            method = client.get if path == "" else client.post
            theirs = await method(f"/api/v1/sessions/{mine['id']}{path}", headers=BOB)
            assert _error(theirs, 404, "not_found") == unknown
        put = await client.put(
            f"/api/v1/sessions/{mine['id']}/config", headers=BOB, json={"config": {}}
        )
        assert _error(put, 404, "not_found") == unknown
        _error(await client.get("/api/v1/sessions/not-an-id", headers=ALICE), 404, "not_found")
        assert (
            await client.get(f"/api/v1/sessions/{mine['id']}", headers=ALICE)
        ).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Basic YWxpY2U6cHc="},
        {"Authorization": f"Bearer {token('alice', ttl=60, now=1_000_000.0)}"},
    ],
    ids=["missing", "garbage", "basic", "expired"],
)
async def test_calls_without_a_valid_token_get_401(tmp_path: Path, headers: dict[str, str]) -> None:
    """No token, a bad one, or an expired one: 401 with WWW-Authenticate."""
    async with service(tmp_path) as (client, _):
        response = await client.get("/api/v1/sessions", headers=headers)
        _error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


async def test_forged_token_gets_401(tmp_path: Path) -> None:
    """A token signed with another key is refused."""
    from tether.service.auth import TokenAuthority

    forged = TokenAuthority("an-attackers-own-key-0123456789abcdef").mint("alice")
    async with service(tmp_path) as (client, _):
        _error(await client.get("/api/v1/sessions", headers=auth(raw=forged)), 401, "unauthorized")


async def test_listing_is_own_sessions_or_everyone_for_admin(tmp_path: Path) -> None:
    """A user lists their sessions; an admin lists all, filtered by user and state."""
    async with service(tmp_path) as (client, kit):
        await _start(client, ALICE)
        await _start(client, ALICE)
        bob = await _start(client, BOB)
        mine = (await client.get("/api/v1/sessions", headers=ALICE)).json()["sessions"]
        assert {s["user"] for s in mine} == {"alice"}
        assert len(mine) == 2
        everyone = (await client.get("/api/v1/sessions", headers=ADMIN)).json()["sessions"]
        assert len(everyone) == 3
        only_bob = await client.get("/api/v1/sessions", headers=ADMIN, params={"user": "bob"})
        assert [s["id"] for s in only_bob.json()["sessions"]] == [bob["id"]]
        _error(
            await client.get("/api/v1/sessions", headers=ALICE, params={"user": "bob"}),
            403,
            "forbidden",
        )
        await kit.advance(500)
        warned = await client.get("/api/v1/sessions", headers=ALICE, params={"state": "warning"})
        assert len(warned.json()["sessions"]) == 2
        _error(
            await client.get("/api/v1/sessions", headers=ALICE, params={"state": "asleep"}),
            422,
            "invalid_request",
        )


async def test_admin_jwt_counts_as_admin(tmp_path: Path) -> None:
    """A token minted with --admin sees every session while admin is enabled."""
    async with service(tmp_path) as (client, _):
        await _start(client, ALICE)
        ops = auth(raw=token("ops", admin=True))
        assert len((await client.get("/api/v1/sessions", headers=ops)).json()["sessions"]) == 1


async def test_heartbeat_is_presence_not_activity(tmp_path: Path) -> None:
    """A heartbeat moves last_seen and the presence deadline, never the idle deadline."""
    async with service(tmp_path) as (client, kit):
        session = await _start(client, ALICE)
        await kit.advance(30)
        response = await client.post(f"/api/v1/sessions/{session['id']}/heartbeat", headers=ALICE)
        assert response.status_code == 200
        beat = response.json()
        now = kit.clock.now()
        assert beat["deadlines"]["presence_at"] == now + 3000
        assert beat["deadlines"]["idle_at"] == session["deadlines"]["idle_at"]
        assert beat["heartbeat_interval_s"] == 25
        assert beat["state"] == "active"


async def test_activity_clears_a_warning(tmp_path: Path) -> None:
    """POST activity during an idle warning makes the session active again."""
    async with service(tmp_path) as (client, kit):
        session = await _start(client, ALICE)
        sid = session["id"]
        await kit.advance(500)
        before = await client.post(f"/api/v1/sessions/{sid}/heartbeat", headers=ALICE)
        assert before.json()["state"] == "warning"
        assert before.json()["warning"]["reason"] == "idle_timeout"
        after = await client.post(f"/api/v1/sessions/{sid}/activity", headers=ALICE)
        assert after.json()["state"] == "active"
        assert after.json()["deadlines"]["idle_at"] == kit.clock.now() + 600


async def test_ended_sessions_answer_410_with_the_reason(tmp_path: Path) -> None:
    """Heartbeat, activity, messages and config on an ended session: 410 naming the reason."""
    async with service(tmp_path) as (client, kit):
        sid = (await _start(client, ALICE))["id"]
        await kit.advance(600)
        await kit.manager.wait_idle()
        for path in ("heartbeat", "activity"):
            error = _error(
                await client.post(f"/api/v1/sessions/{sid}/{path}", headers=ALICE),
                410,
                "session_ended",
            )
            assert error["reason"] == "idle_timeout"
        message = await client.post(
            f"/api/v1/sessions/{sid}/messages", headers=ALICE, json={"role": "user", "content": "x"}
        )
        _error(message, 410, "session_ended")
        config = await client.put(
            f"/api/v1/sessions/{sid}/config", headers=ALICE, json={"config": {}}
        )
        _error(config, 410, "session_ended")
        info = (await client.get(f"/api/v1/sessions/{sid}", headers=ALICE)).json()
        assert (info["state"], info["end_reason"]) == ("ended", "idle_timeout")


async def test_messages_are_numbered_and_listed(tmp_path: Path) -> None:
    """Appending answers 201 with seq; the transcript lists them after a position."""
    async with service(tmp_path) as (client, _):
        sid = (await _start(client, ALICE))["id"]
        url = f"/api/v1/sessions/{sid}/messages"
        first = await client.post(url, headers=ALICE, json={"role": "user", "content": "hi"})
        second = await client.post(
            url, headers=ADMIN, json={"role": "assistant", "content": "hello", "metadata": {"m": 1}}
        )
        assert (first.status_code, first.json()["seq"]) == (201, 1)
        assert second.json()["metadata"] == {"m": 1}
        listed = (await client.get(url, headers=ALICE, params={"after": 1})).json()["messages"]
        assert [m["content"] for m in listed] == ["hello"]
        _error(
            await client.post(url, headers=ALICE, json={"role": "bot", "content": "x"}),
            422,
            "invalid_request",
        )
        _error(await client.post(url, headers=ALICE, json={"role": "user"}), 422, "invalid_request")


async def test_config_replacement_reaches_attached_clients(tmp_path: Path) -> None:
    """PUT config replaces it and every attached channel receives session.config."""
    async with service(tmp_path) as (client, kit):
        sid = (await _start(client, ALICE, config={"a": 1}))["id"]
        channel = RecordingChannel()
        await kit.manager.attach(SessionId(sid), channel)
        response = await client.put(
            f"/api/v1/sessions/{sid}/config", headers=ALICE, json={"config": {"b": 2}}
        )
        assert response.json()["config"] == {"b": 2}
        await settle()
        assert channel.wire()[-1] == {"type": "session.config", "config": {"b": 2}}


async def test_end_is_idempotent_and_names_the_reason(tmp_path: Path) -> None:
    """The first end answers ended=true; a repeat answers ended=false with the same reason."""
    async with service(tmp_path) as (client, _):
        sid = (await _start(client, ALICE))["id"]
        first = await client.post(f"/api/v1/sessions/{sid}/end", headers=ALICE)
        again = await client.post(f"/api/v1/sessions/{sid}/end", headers=ALICE)
        assert first.json() == {"ended": True, "reason": "client_ended"}
        assert again.json() == {"ended": False, "reason": "client_ended"}


async def test_an_admin_end_is_reason_admin(tmp_path: Path) -> None:
    """The admin ending someone's session ends it as admin."""
    async with service(tmp_path) as (client, _):
        sid = (await _start(client, ALICE))["id"]
        response = await client.post(f"/api/v1/sessions/{sid}/end", headers=ADMIN)
        assert response.json() == {"ended": True, "reason": "admin"}


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain;charset=UTF-8", "{token}"),
        ("text/plain;charset=UTF-8", '{{"token": "{token}"}}'),
        ("application/x-www-form-urlencoded", "token={token}"),
    ],
    ids=["raw-token", "json-in-text", "form"],
)
async def test_send_beacon_end_carries_the_token_in_the_body(
    tmp_path: Path, content_type: str, body: str
) -> None:
    """navigator.sendBeacon cannot set headers: the token in the body ends the session."""
    async with service(tmp_path) as (client, _):
        sid = (await _start(client, ALICE))["id"]
        response = await client.post(
            f"/api/v1/sessions/{sid}/end",
            content=body.format(token=token("alice")),
            headers={"Content-Type": content_type},
        )
        assert response.json() == {"ended": True, "reason": "client_ended"}


async def test_beacon_without_a_valid_token_changes_nothing(tmp_path: Path) -> None:
    """An empty body is 401; another user's token is 404; the session stays live."""
    async with service(tmp_path) as (client, _):
        sid = (await _start(client, ALICE))["id"]
        url = f"/api/v1/sessions/{sid}/end"
        _error(
            await client.post(url, content=b"", headers={"Content-Type": "text/plain"}),
            401,
            "unauthorized",
        )
        _error(
            await client.post(url, content=token("bob"), headers={"Content-Type": "text/plain"}),
            404,
            "not_found",
        )
        _error(
            await client.post(url, content="{not json", headers={"Content-Type": "text/plain"}),
            401,
            "unauthorized",
        )
        assert (await client.get(f"/api/v1/sessions/{sid}", headers=ALICE)).json()[
            "state"
        ] == "active"


async def test_oversized_bodies_get_413(tmp_path: Path) -> None:
    """Bodies over TETHER_MAX_MESSAGE_BYTES are refused, declared or streamed."""
    async with service(tmp_path, max_message_bytes=1024) as (client, _):
        sid = (await _start(client, ALICE))["id"]
        url = f"/api/v1/sessions/{sid}/messages"
        big = {"role": "user", "content": "x" * 2000}
        _error(await client.post(url, headers=ALICE, json=big), 413, "too_large")

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"x" * 200

        streamed = await client.post(
            url, headers={**ALICE, "Content-Type": "application/json"}, content=chunks()
        )
        _error(streamed, 413, "too_large")
        small = await client.post(url, headers=ALICE, json={"role": "user", "content": "ok"})
        assert small.status_code == 201


async def test_malformed_bodies_get_422(tmp_path: Path) -> None:
    """Broken JSON, wrong types, unknown fields and NaN are 422 with details, never a 500."""
    async with service(tmp_path) as (client, _):
        headers = {**ALICE, "Content-Type": "application/json"}
        for body in (
            b"{",
            b"[]",
            b'{"kind": 5}',
            b'{"kind": ""}',
            b'{"surprise": 1}',
            b'{"config": {"x": NaN}}',
        ):
            response = await client.post("/api/v1/sessions", headers=headers, content=body)
            error = _error(response, 422, "invalid_request")
            assert error["details"]


async def test_user_limit_replaces_the_oldest(tmp_path: Path) -> None:
    """Past TETHER_MAX_SESSIONS_PER_USER the oldest session ends as replaced."""
    async with fake_manager(policy=POLICY, max_sessions_per_user=2) as kit:
        app = create_app(make_settings(tmp_path, max_sessions_per_user=2), manager=kit.manager)
        async with asgi_client(app) as client:
            first = await _start(client, ALICE)
            await _start(client, ALICE)
            await _start(client, ALICE)
            await kit.manager.wait_idle()
            old = (await client.get(f"/api/v1/sessions/{first['id']}", headers=ALICE)).json()
            assert old["end_reason"] == "replaced"


async def test_only_admins_start_sessions_for_others(tmp_path: Path) -> None:
    """A user naming another user is 403; the admin token must name a user."""
    async with service(tmp_path) as (client, _):
        _error(
            await client.post("/api/v1/sessions", headers=ALICE, json={"user": "bob"}),
            403,
            "forbidden",
        )
        _error(await client.post("/api/v1/sessions", headers=ADMIN), 400, "invalid_input")
        made = await _start(client, ADMIN, user="bob")
        assert made["user"] == "bob"


async def test_unknown_paths_and_methods_keep_the_error_shape(tmp_path: Path) -> None:
    """404 and 405 from routing are JSON errors like every other; a 405 says what is Allowed."""
    async with service(tmp_path) as (client, _):
        _error(await client.get("/api/v1/nothing-here"), 404, "not_found")
        wrong = await client.delete("/api/v1/sessions", headers=ALICE)
        _error(wrong, 405, "method_not_allowed")
        assert wrong.headers["allow"] == "GET, POST"


async def test_cleanup_all_ends_only_the_callers_sessions(tmp_path: Path) -> None:
    """type=all ends every session of the caller (client_ended) and nobody else's."""
    async with service(tmp_path) as (client, _):
        mine = [await _start(client, ALICE) for _ in range(3)]
        bobs = await _start(client, BOB)
        response = await client.post(
            "/api/v1/sessions/cleanup", headers=ALICE, json={"type": "all"}
        )
        assert response.json() == {"ended": 3}
        for s in mine:
            info = (await client.get(f"/api/v1/sessions/{s['id']}", headers=ALICE)).json()
            assert info["end_reason"] == "client_ended"
        assert (await client.get(f"/api/v1/sessions/{bobs['id']}", headers=BOB)).json()[
            "state"
        ] == "active"


async def test_cleanup_inactive_uses_the_threshold(tmp_path: Path) -> None:
    """type=inactive ends sessions with no activity for inactive_for (a duration)."""
    async with service(tmp_path) as (client, kit):
        stale = await _start(client, ALICE)
        fresh = await _start(client, ALICE)
        await kit.advance(100)
        await client.post(f"/api/v1/sessions/{fresh['id']}/activity", headers=ALICE)
        body = {"type": "inactive", "inactive_for": "90s"}
        assert (await client.post("/api/v1/sessions/cleanup", headers=ALICE, json=body)).json() == {
            "ended": 1
        }
        states = {
            s["id"]: s["state"]
            for s in (await client.get("/api/v1/sessions", headers=ALICE)).json()["sessions"]
        }
        assert states == {fresh["id"]: "active"}
        assert stale["id"] not in states


async def test_cleanup_specific_skips_what_is_not_yours(tmp_path: Path) -> None:
    """type=specific ends the caller's listed sessions; others' and unknown ids are skipped."""
    async with service(tmp_path) as (client, _):
        mine = await _start(client, ALICE)
        keep = await _start(client, ALICE)
        bobs = await _start(client, BOB)
        body = {"type": "specific", "session_ids": [mine["id"], bobs["id"], "0" * 32, "junk"]}
        assert (await client.post("/api/v1/sessions/cleanup", headers=ALICE, json=body)).json() == {
            "ended": 1
        }
        assert (await client.get(f"/api/v1/sessions/{keep['id']}", headers=ALICE)).json()[
            "state"
        ] == "active"
        assert (await client.get(f"/api/v1/sessions/{bobs['id']}", headers=BOB)).json()[
            "state"
        ] == "active"
        _error(
            await client.post("/api/v1/sessions/cleanup", headers=ALICE, json={"type": "specific"}),
            400,
            "invalid_input",
        )


async def test_cleanup_with_the_admin_token_covers_everyone(tmp_path: Path) -> None:
    """The admin cleans up every user's sessions (reason admin); users cannot name others."""
    async with service(tmp_path) as (client, _):
        alice = await _start(client, ALICE)
        await _start(client, BOB)
        denied = await client.post(
            "/api/v1/sessions/cleanup", headers=ALICE, json={"type": "all", "user": "bob"}
        )
        _error(denied, 403, "forbidden")
        response = await client.post(
            "/api/v1/sessions/cleanup", headers=ADMIN, json={"type": "all"}
        )
        assert response.json() == {"ended": 2}
        info = (await client.get(f"/api/v1/sessions/{alice['id']}", headers=ALICE)).json()
        assert info["end_reason"] == "admin"
        _error(
            await client.post(
                "/api/v1/sessions/cleanup", headers=ALICE, json={"type": "everything"}
            ),
            422,
            "invalid_request",
        )


async def test_admin_calls_are_refused_while_no_admin_token_is_set(tmp_path: Path) -> None:
    """Without TETHER_ADMIN_TOKEN even an --admin token is an ordinary user."""
    async with service(tmp_path, admin_token=None) as (client, _):
        await _start(client, ALICE)
        ops = auth(raw=token("ops", admin=True))
        assert (await client.get("/api/v1/sessions", headers=ops)).json()["sessions"] == []
        _error(
            await client.get("/api/v1/sessions", headers=ops, params={"user": "alice"}),
            403,
            "forbidden",
        )
