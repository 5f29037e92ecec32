"""Two ``tether serve`` processes on a Redis without persistence that restarts empty.

Nodes a and b share one data dir. Each holds WebSockets of its own sessions,
and one session has a socket on both. Redis is SIGKILLed and restarted empty
on its port: each node notices within a heartbeat interval, tells and closes
every socket it holds (``session.ended {reason: "error"}``, 1011), and every
session has exactly one archive holding every message its clients saw
acknowledged, the shared one included (both nodes archive it; the archive is
written once).
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml
from websockets.asyncio.client import ClientConnection, connect

from tether.archive.yaml_archive import dialog_from_doc
from tether.service.auth import TokenAuthority

from .process_kit import TetherProcess, restartable_redis, spawn_tether, wait_ready

SECRET = "cluster-store-loss-secret-0123456789abcdef"
TOKENS = TokenAuthority(SECRET)
HEARTBEAT = 0.5
WAIT = 10.0
PER_NODE = 8
MESSAGES = 2


@asynccontextmanager
async def two_nodes(tmp_path: Path) -> Any:
    """Nodes a and b on one persistence-off redis-server and one data dir; stopped by pid after."""
    data = tmp_path / "data"
    data.mkdir()
    with restartable_redis(tmp_path / "redis", appendonly=False) as redis_server:
        env = {
            "TETHER_REDIS_URL": redis_server.url,
            "TETHER_SECRET": SECRET,
            "TETHER_DATA_DIR": str(data),
            "TETHER_PRESENCE_TIMEOUT": "30s",
            "TETHER_HEARTBEAT_INTERVAL": f"{HEARTBEAT}s",
            "TETHER_IDLE_TIMEOUT": "10m",
            "TETHER_NODE_LEASE": "1.5s",
            "TETHER_END_LEASE": "3s",
            "TETHER_CLUSTER_POLL": "200ms",
            "TETHER_SHUTDOWN_GRACE": "3s",
            "TETHER_MAX_REQUESTS_PER_MINUTE": "100000",
            "TETHER_REQUEST_BURST": "10000",
            "TETHER_LOG_LEVEL": "warning",
            "TETHER_FSYNC": "no",
        }
        nodes = [spawn_tether(name, env, tmp_path) for name in ("a", "b")]
        try:
            await asyncio.gather(*(wait_ready(node) for node in nodes))
            yield nodes, data, redis_server
        finally:
            for node in nodes:
                node.terminate()


async def _frame(conn: ClientConnection, kind: str) -> dict[str, Any]:
    """Frames until one of type ``kind``."""
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(conn.recv(), WAIT))
        if frame["type"] == kind:
            return frame


async def _hello(node: TetherProcess, user: str) -> ClientConnection:
    conn = await connect(node.ws, compression=None, open_timeout=WAIT)
    await conn.send(json.dumps({"type": "hello", "token": TOKENS.mint(user, ttl=600), "v": 1}))
    await _frame(conn, "welcome")
    return conn


async def _post(conn: ClientConnection, content: str) -> None:
    await conn.send(json.dumps({"type": "message", "role": "user", "content": content}))
    while (await _frame(conn, "transcript.message"))["message"]["content"] != content:
        pass


async def _session(node: TetherProcess, user: str) -> tuple[ClientConnection, str, list[str]]:
    """A socket on ``node`` with a new session and ``MESSAGES`` acknowledged messages."""
    conn = await _hello(node, user)
    await conn.send(json.dumps({"type": "start", "kind": "chat"}))
    sid = (await _frame(conn, "session.started"))["session"]["id"]
    acked = [f"{user} says {k}" for k in range(MESSAGES)]
    for content in acked:
        await _post(conn, content)
    return conn, sid, acked


async def _ended(conn: ClientConnection) -> tuple[str, int | None]:
    """The reason of the ``session.ended`` frame and the close code that followed it."""
    reason = (await _frame(conn, "session.ended"))["reason"]
    await asyncio.wait_for(conn.wait_closed(), WAIT)
    return reason, conn.close_code


async def test_each_node_ends_what_it_holds_and_every_session_is_archived_once(
    tmp_path: Path,
) -> None:
    """Redis back empty under two nodes: every socket told error + 1011, one full archive each."""
    async with two_nodes(tmp_path) as (nodes, data, redis_server):
        a, b = nodes
        users = {f"{node.name}-user{n}": node for node in nodes for n in range(PER_NODE)}
        opened = await asyncio.gather(*(_session(node, user) for user, node in users.items()))
        sessions = dict(zip(users, opened, strict=True))
        # One session with a socket on each node, messages sent through both.
        shared_a, shared_id, shared_acked = await _session(a, "shared")
        shared_b = await _hello(b, "shared")
        await shared_b.send(json.dumps({"type": "resume", "session_id": shared_id}))
        await _frame(shared_b, "session.resumed")
        await _post(shared_b, "shared via b")
        await _frame(shared_a, "transcript.message")
        shared_acked.append("shared via b")
        await _post(shared_a, "shared via a again")
        await _frame(shared_b, "transcript.message")
        shared_acked.append("shared via a again")

        redis_server.kill()
        redis_server.start()
        loop = asyncio.get_running_loop()
        restarted = loop.time()

        sockets = [conn for conn, _, _ in sessions.values()] + [shared_a, shared_b]
        outcomes = await asyncio.gather(*(_ended(conn) for conn in sockets))
        assert set(outcomes) == {("error", 1011)}
        assert loop.time() - restarted <= HEARTBEAT + 2.0

        sessions["shared"] = (shared_a, shared_id, shared_acked)
        for user, (_conn, sid, acked) in sessions.items():
            folder = data / "users" / user / "dialogs" / "archived"
            [archive] = sorted(folder.iterdir())
            dialog = dialog_from_doc(yaml.safe_load(archive.read_text()), archive.name)
            assert (dialog.session_id, dialog.end_reason.value) == (sid, "error")
            assert [m.content for m in dialog.messages] == acked

        async with httpx.AsyncClient(timeout=WAIT) as http:
            for node in nodes:
                store = (await http.get(f"{node.http}/health")).json()["store"]
                assert store["losses"] == 1
                assert store["sessions_lost"] == PER_NODE + 1  # its own and the shared one
        for node in nodes:  # and both serve new sessions
            conn, _sid, _acked = await _session(node, f"{node.name}-after")
            await conn.close()
