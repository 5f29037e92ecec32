"""Who may write what: clients append only user messages; observers only watch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
from click.testing import CliRunner
from service_kit import (
    ADMIN,
    ADMIN_TOKEN,
    FAST,
    SECRET,
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

from tether.cli import main
from tether.service import create_app
from tether.service.auth import TokenAuthority

SLOW = {**FAST, "idle_timeout": 30.0, "warn_before": 5.0, "presence_timeout": 30.0}


def observe_token(user: str) -> str:
    """An observe-only token the test server accepts."""
    return TokenAuthority(SECRET, admin_token=ADMIN_TOKEN).mint(user, ttl=600, observe=True)


async def _messages(served: Any, sid: str) -> list[dict[str, Any]]:
    async with served.client() as client:
        r = await client.get(f"/api/v1/sessions/{sid}/messages", headers=ADMIN)
        messages: list[dict[str, Any]] = r.json()["messages"]
        return messages


async def test_rest_refuses_a_client_appending_any_role_but_user(tmp_path: Path) -> None:
    """A user's token POSTing role assistant/system/tool: 403 forbidden_role, nothing stored."""
    settings = make_settings(tmp_path, **SLOW)
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        sid = (await client.post("/api/v1/sessions", headers=auth("alice"))).json()["id"]
        url = f"/api/v1/sessions/{sid}/messages"
        for role in ("assistant", "system", "tool"):
            r = await client.post(url, headers=auth("alice"), json={"role": role, "content": "x"})
            assert r.status_code == 403
            assert r.json()["error"]["code"] == "forbidden_role"
        assert await _messages(served, sid) == []


async def test_the_admin_token_may_append_any_role(tmp_path: Path) -> None:
    """The server side (admin token) appends an assistant message: 201."""
    settings = make_settings(tmp_path, **SLOW)
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        sid = (await client.post("/api/v1/sessions", headers=auth("alice"))).json()["id"]
        url = f"/api/v1/sessions/{sid}/messages"
        r = await client.post(url, headers=ADMIN, json={"role": "system", "content": "be kind"})
        assert (r.status_code, r.json()["role"]) == (201, "system")


async def test_websocket_refuses_a_client_message_with_another_role(tmp_path: Path) -> None:
    """WS message role assistant: error forbidden_role, nothing stored, the connection stays."""
    settings = make_settings(tmp_path, **SLOW)
    async with live_server(create_app(settings), settings) as served, ws_client(served) as conn:
        await hello(conn)
        sid = (await start(conn))["id"]
        await recv_type(conn, "session.config")
        await send(conn, type="message", role="assistant", content="forged")
        assert (await recv_type(conn, "error"))["code"] == "forbidden_role"
        await send(conn, type="ping")
        assert (await recv_type(conn, "pong"))["type"] == "pong"
        assert await _messages(served, sid) == []


async def test_an_observer_sending_activity_or_a_message_is_answered_observer(
    tmp_path: Path,
) -> None:
    """observe, then activity / message: error observer each time, and nothing is stored."""
    settings = make_settings(tmp_path, **SLOW)
    async with live_server(create_app(settings), settings) as served, ws_client(served) as conn:
        async with served.client() as client:
            sid = (await client.post("/api/v1/sessions", headers=auth("alice"))).json()["id"]
        await hello(conn)
        await send(conn, type="observe", session_id=sid)
        await recv_type(conn, "session.resumed")
        await send(conn, type="activity")
        assert (await recv_type(conn, "error"))["code"] == "observer"
        await send(conn, type="message", role="user", content="hi")
        assert (await recv_type(conn, "error"))["code"] == "observer"
        assert await _messages(served, sid) == []


async def test_the_owners_observer_may_change_the_config_and_end(tmp_path: Path) -> None:
    """An observer with the owner's token sends config (broadcast) and end (client_ended)."""
    settings = make_settings(tmp_path, **SLOW)
    async with live_server(create_app(settings), settings) as served, ws_client(served) as conn:
        async with served.client() as client:
            sid = (await client.post("/api/v1/sessions", headers=auth("alice"))).json()["id"]
        await hello(conn)
        await send(conn, type="observe", session_id=sid)
        await recv_type(conn, "session.resumed")
        assert (await recv_type(conn, "session.config"))["config"] == {}
        await send(conn, type="config", config={"job": "pilot"})
        assert (await recv_type(conn, "session.config"))["config"] == {"job": "pilot"}
        await send(conn, type="end")
        assert (await recv_type(conn, "session.ended"))["reason"] == "client_ended"


async def test_a_session_only_observed_still_ends_client_gone(tmp_path: Path) -> None:
    """A call that never connects, watched by an observer, times out client_gone all the same."""
    settings = make_settings(tmp_path, **{**SLOW, "presence_timeout": 0.8})
    async with live_server(create_app(settings), settings) as served, ws_client(served) as conn:
        async with served.client() as client:
            sid = (await client.post("/api/v1/sessions", headers=auth("alice"))).json()["id"]
            # One sign of the client starts its presence clock; then it never connects.
            await client.post(f"/api/v1/sessions/{sid}/heartbeat", headers=auth("alice"))
        await hello(conn)
        await send(conn, type="observe", session_id=sid)
        await recv_type(conn, "session.resumed")
        for _ in range(3):  # an observer's pings are no heartbeat for the session
            await send(conn, type="ping")
        assert (await recv_type(conn, "session.ended", within=10))["reason"] == "client_gone"


async def test_an_observe_only_token_can_watch_but_not_start_or_resume(tmp_path: Path) -> None:
    """tether token --observe: observe works; start and resume answer error observe_only."""
    settings = make_settings(tmp_path, **SLOW)
    async with live_server(create_app(settings), settings) as served, ws_client(served) as conn:
        async with served.client() as client:
            sid = (await client.post("/api/v1/sessions", headers=auth("alice"))).json()["id"]
        await send(conn, type="hello", token=observe_token("alice"), v=1)
        await recv_type(conn, "welcome")
        await send(conn, type="start")
        assert (await recv_type(conn, "error"))["code"] == "observe_only"
        await send(conn, type="resume", session_id=sid)
        assert (await recv_type(conn, "error"))["code"] == "observe_only"
        await send(conn, type="observe", session_id=sid)
        assert (await recv_type(conn, "session.resumed"))["session"]["id"] == sid
        await send(conn, type="end")
        assert (await recv_type(conn, "error"))["code"] == "observe_only"
        async with served.client() as client:
            info = (await client.get(f"/api/v1/sessions/{sid}", headers=ADMIN)).json()
        assert info["state"] == "active"


async def test_an_observe_only_token_cannot_observe_someone_elses_session(tmp_path: Path) -> None:
    """Bob's observe-only token observing Alice's session: unknown_session, closed 4404."""
    settings = make_settings(tmp_path, **SLOW)
    async with live_server(create_app(settings), settings) as served, ws_client(served) as conn:
        async with served.client() as client:
            sid = (await client.post("/api/v1/sessions", headers=auth("alice"))).json()["id"]
        await send(conn, type="hello", token=observe_token("bob"), v=1)
        await recv_type(conn, "welcome")
        await send(conn, type="observe", session_id=sid)
        assert (await recv(conn))["code"] == "unknown_session"
        assert await close_code(conn) == 4404


async def test_an_observe_only_token_reads_but_writes_nothing_over_rest(tmp_path: Path) -> None:
    """REST with an observe-only token: GET answers; POST, PUT answer 403 observe_only."""
    settings = make_settings(tmp_path, **SLOW)
    async with live_server(create_app(settings), settings) as served, served.client() as client:
        sid = (await client.post("/api/v1/sessions", headers=auth("alice"))).json()["id"]
        watcher = {"Authorization": f"Bearer {observe_token('alice')}"}
        assert (await client.get(f"/api/v1/sessions/{sid}", headers=watcher)).status_code == 200
        base = f"/api/v1/sessions/{sid}"
        refused = [
            await client.post("/api/v1/sessions", headers=watcher),
            await client.post(
                f"{base}/messages", headers=watcher, json={"role": "user", "content": "x"}
            ),
            await client.post(f"{base}/activity", headers=watcher),
            await client.put(f"{base}/config", headers=watcher, json={"config": {"a": 1}}),
            await client.post(f"{base}/end", headers=watcher),
        ]
        assert [(r.status_code, r.json()["error"]["code"]) for r in refused] == [
            (403, "observe_only")
        ] * 5
        assert (await client.get(base, headers=ADMIN)).json()["state"] == "active"
        assert await _messages(served, sid) == []


def test_tether_token_observe_mints_an_observe_only_token() -> None:
    """tether token USER --observe mints a token with the obs claim; with --admin it refuses."""
    runner = CliRunner()
    env = {"TETHER_SECRET": SECRET}
    result = runner.invoke(main, ["token", "alice", "--observe"], env=env)
    assert result.exit_code == 0
    claims = jwt.decode(result.output.strip(), SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["obs"]) == ("alice", True)
    principal = TokenAuthority(SECRET).verify(result.output.strip())
    assert principal.observe_only
    both = runner.invoke(main, ["token", "alice", "--observe", "--admin"], env=env)
    assert both.exit_code != 0
    assert "either admin or observe-only" in both.output
