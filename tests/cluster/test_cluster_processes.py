"""Three real ``tether serve`` processes on one Redis, started and stopped by pid.

Each test runs twice: on one ``redis-server``, and on the real 3-master
Redis Cluster (``redis+cluster://``, 64 shards) shared by the test session.

Every node has the same secret and admin token, the same data directory and
short cluster timings (``TETHER_NODE_LEASE``, ``TETHER_END_LEASE``,
``TETHER_CLUSTER_POLL``), so a failover happens in about two seconds:

* a session whose WebSocket is on A, heartbeated through B and ended by an
  admin on C: A's client is told and closed, the admin call returns after
  that, and there is one archive;
* A SIGKILLed while holding many live WebSockets: B and C end every one of
  them ``client_gone`` after the presence timeout and archive each once;
* A SIGKILLed in the middle of many end pipelines (archives written, ends not
  completed; ``TETHER_TEST_ARCHIVE_HOLD`` holds them there): after the end
  lease B and C take each end over, exactly one of them per session (the
  claim fence), and each session still has exactly one archive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tether.archive.yaml_archive import dialog_from_doc
from tether.service.auth import TokenAuthority
from tether.store.redis.shards import CLUSTER_SHARDS, prefixes

from .process_kit import (
    TetherProcess,
    poll_until,
    restartable_redis,
    spawn_tether,
    wait_ready,
)

SECRET = "cluster-process-secret-0123456789abcdef"
ADMIN_TOKEN = "cluster-process-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PRESENCE = 2.0
NODE_LEASE = 1.0
END_LEASE = 3.0
WAIT = 10.0
DEAD_NODE_SESSIONS = 100
TOKENS = TokenAuthority(SECRET, admin_token=ADMIN_TOKEN)


def _token(user: str) -> str:
    return TOKENS.mint(user, ttl=600)


def _auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {_token(user)}"}


@dataclass
class Target:
    """The Redis the nodes share: its ``TETHER_REDIS_URL`` and where its keys live."""

    url: str
    masters: list[str]
    """Plain ``redis://`` URLs of the data nodes (one, or every master of the cluster)."""
    cluster: bool

    def client(self) -> Redis | RedisCluster:
        """A client of the data (closed by the caller)."""
        if self.cluster:
            return RedisCluster.from_url(self.url.replace("redis+cluster://", "redis://"))
        return Redis.from_url(self.url)

    def keys(self, name: str) -> list[str]:
        """Key ``name`` of the default prefix in every shard (one on one Redis)."""
        return [p + name for p in prefixes("tether:", CLUSTER_SHARDS if self.cluster else 1)]

    def flush(self) -> None:
        """Empty every data node."""
        for url in self.masters:
            with redis.Redis.from_url(url) as admin:
                admin.flushdb()


@pytest.fixture(params=["redis", "redis-cluster"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """A fresh redis-server (killed after), or the session's Redis Cluster (flushed around)."""
    if request.param == "redis":
        with restartable_redis(tmp_path / "redis") as server:
            yield Target(server.url, [server.url], cluster=False)
        return
    cluster = request.getfixturevalue("redis_cluster")
    shared = Target(cluster.url, [m.url for m in cluster.masters], cluster=True)
    shared.flush()
    try:
        yield shared
    finally:
        shared.flush()


@asynccontextmanager
async def three_nodes(
    tmp_path: Path,
    target: Target,
    *,
    presence: float = PRESENCE,
    only_a: dict[str, str] | None = None,
) -> AsyncIterator[tuple[list[TetherProcess], Path]]:
    """Nodes a, b, c on ``target`` and one data dir; all stopped by pid after.

    Yields the nodes and the data dir. ``only_a`` adds environment variables
    to node a alone.
    """
    data = tmp_path / "data"
    data.mkdir()
    env = {
        "TETHER_REDIS_URL": target.url,
        "TETHER_SECRET": SECRET,
        "TETHER_ADMIN_TOKEN": ADMIN_TOKEN,
        "TETHER_DATA_DIR": str(data),
        "TETHER_PRESENCE_TIMEOUT": f"{presence}s",
        "TETHER_HEARTBEAT_INTERVAL": "500ms",
        "TETHER_IDLE_TIMEOUT": "10m",
        "TETHER_NODE_LEASE": f"{NODE_LEASE}s",
        "TETHER_END_LEASE": f"{END_LEASE}s",
        "TETHER_CLUSTER_POLL": "200ms",
        "TETHER_SHUTDOWN_GRACE": "3s",
        "TETHER_MAX_REQUESTS_PER_MINUTE": "100000",
        "TETHER_REQUEST_BURST": "10000",
        "TETHER_LOG_LEVEL": "warning",
        "TETHER_FSYNC": "no",
    }
    nodes = [
        spawn_tether(name, {**env, **(only_a or {})} if name == "a" else env, tmp_path)
        for name in ("a", "b", "c")
    ]
    try:
        await asyncio.gather(*(wait_ready(node) for node in nodes))
        yield nodes, data
    finally:
        for node in nodes:
            node.terminate()


async def _hello_start(url: str, user: str) -> tuple[ClientConnection, str]:
    """A WebSocket on ``url`` authenticated as ``user`` with a new session; (socket, id)."""
    conn = await connect(url, compression=None, open_timeout=WAIT)
    await conn.send(json.dumps({"type": "hello", "token": _token(user), "v": 1}))
    sid = ""
    while not sid:
        frame = json.loads(await asyncio.wait_for(conn.recv(), WAIT))
        if frame["type"] == "welcome":
            await conn.send(json.dumps({"type": "start", "kind": "chat"}))
        elif frame["type"] == "session.started":
            sid = frame["session"]["id"]
    return conn, sid


def _archives(data: Path, user: str) -> list[Path]:
    folder = data / "users" / user / "dialogs" / "archived"
    return sorted(folder.iterdir()) if folder.exists() else []


async def test_three_processes_end_a_session_from_another_node_with_an_ack(
    tmp_path: Path, target: Target
) -> None:
    """WS on A, heartbeats via B, admin end on C: A's client told + closed 4004, one archive."""
    async with three_nodes(tmp_path, target) as (nodes, data):
        a, b, c = nodes
        conn, sid = await _hello_start(a.ws, "alice")
        frames: list[dict[str, Any]] = []
        ended_at: list[float] = []

        async def read() -> None:
            with contextlib.suppress(ConnectionClosed):
                while True:
                    frame = json.loads(await conn.recv())
                    frames.append(frame)
                    if frame["type"] == "session.ended":
                        ended_at.append(time.monotonic())

        reader = asyncio.create_task(read())
        async with httpx.AsyncClient(timeout=WAIT) as http:
            beat_url = f"{b.http}/api/v1/sessions/{sid}/heartbeat"
            beat = await http.post(beat_url, headers=_auth("alice"))
            assert beat.status_code == 200
            seen = await http.get(f"{b.http}/api/v1/sessions/{sid}", headers=_auth("alice"))
            assert seen.json()["connections"] == 1  # A's socket, as seen from B
            end = await http.post(f"{c.http}/api/v1/sessions/{sid}/end", headers=ADMIN)
            acked_at = time.monotonic()
            assert end.status_code == 200
            assert end.json() == {"ended": True, "reason": "admin"}
        await asyncio.wait_for(reader, WAIT)
        assert conn.close_code == 4004
        ended = [f for f in frames if f["type"] == "session.ended"]
        assert [f["reason"] for f in ended] == ["admin"]
        assert ended_at[0] <= acked_at  # told before the admin call returned
        await poll_until(_exists(data, "alice"), WAIT)
        [archive] = _archives(data, "alice")
        dialog = dialog_from_doc(yaml.safe_load(archive.read_text()), archive.name)
        assert (dialog.session_id, dialog.end_reason.value) == (sid, "admin")


def _exists(data: Path, user: str) -> Any:
    async def check() -> bool:
        return bool(_archives(data, user))

    return check


async def test_a_sigkilled_node_s_sessions_end_client_gone_on_the_survivors_once(
    tmp_path: Path, target: Target
) -> None:
    """SIGKILL A with 100 live WebSockets: B and C end each client_gone after presence, once."""
    async with three_nodes(tmp_path, target) as (nodes, data):
        a, b, _c = nodes
        users = [f"user{i:03d}" for i in range(DEAD_NODE_SESSIONS)]
        opened = await asyncio.gather(*(_hello_start(a.ws, user) for user in users))
        ids = {user: sid for user, (_conn, sid) in zip(users, opened, strict=True)}
        # A's last renewal is no earlier than the earliest lease now held, less a
        # lease (on a loaded machine A may have renewed late, long before the kill).
        client = target.client()
        try:  # every shard holds the registry: the first one will do
            nodes_key = target.keys("nodes")[0]
            [(_node, expiry_us)] = await client.zrange(nodes_key, 0, 0, withscores=True)
        finally:
            await client.aclose()
        renewed_by = expiry_us / 1e6 - NODE_LEASE
        a.kill()

        async def all_archived() -> bool:
            return all(_archives(data, user) for user in users)

        await poll_until(all_archived, 20.0, "not every session of the dead node was archived")
        for user in users:
            [archive] = _archives(data, user)
            dialog = dialog_from_doc(yaml.safe_load(archive.read_text()), archive.name)
            assert (dialog.session_id, dialog.end_reason.value) == (ids[user], "client_gone")
            # Not before one presence timeout after A's last lease renewal.
            assert dialog.ended_at >= renewed_by + PRESENCE - 0.2
        async with httpx.AsyncClient(timeout=WAIT) as http:
            health = (await http.get(f"{b.http}/health")).json()
            assert health["sessions"]["active"] == 0
        for conn, _sid in opened:
            with contextlib.suppress(ConnectionClosed):
                await conn.close()
        for user in users:  # still exactly one each once the survivors report nothing live
            assert len(_archives(data, user)) == 1


def _ended(metrics: str, reason: str) -> int:
    """The ``tether_sessions_ended_total`` count for ``reason`` in a /metrics text."""
    for line in metrics.splitlines():
        if line.startswith(f'tether_sessions_ended_total{{reason="{reason}"}}'):
            return int(float(line.split()[-1]))
    raise AssertionError(f"no ended count for {reason} in /metrics")


async def test_a_node_sigkilled_mid_end_pipelines_leaves_each_end_to_one_survivor(
    tmp_path: Path, target: Target
) -> None:
    """SIGKILL A holding 100 archived, uncompleted ends: B+C finish each once; one archive each."""
    hold = {"TETHER_TEST_ARCHIVE_HOLD": "60s"}
    async with (
        three_nodes(tmp_path, target, presence=60.0, only_a=hold) as (nodes, data),
        httpx.AsyncClient(timeout=WAIT) as http,
    ):
        a, b, c = nodes
        users = [f"user{i:03d}" for i in range(DEAD_NODE_SESSIONS)]

        async def start(user: str) -> str:
            made = await http.post(f"{a.http}/api/v1/sessions", headers=_auth(user))
            assert made.status_code == 201
            sid: str = made.json()["id"]
            said = await http.post(
                f"{a.http}/api/v1/sessions/{sid}/messages",
                json={"role": "user", "content": f"hello from {user}"},
                headers=_auth(user),
            )
            assert said.status_code == 201
            return sid

        ids = dict(zip(users, await asyncio.gather(*(start(u) for u in users)), strict=True))

        async def ended_on_survivors() -> int:
            texts = [(await http.get(f"{n.http}/metrics")).text for n in (b, c)]
            return sum(_ended(text, "admin") for text in texts)

        # A claims every end and runs every pipeline: each archive is written,
        # then the pipeline holds, its end leased to A and not completed.
        cleanup = asyncio.create_task(
            http.post(
                f"{a.http}/api/v1/sessions/cleanup",
                json={"type": "all"},
                headers=ADMIN,
                timeout=120.0,
            )
        )

        async def all_archived() -> bool:
            return all(_archives(data, user) for user in users)

        await poll_until(all_archived, WAIT, "node a did not archive every session")
        assert not cleanup.done()  # the pipelines are held: the admin call is still waiting
        assert _ended((await http.get(f"{a.http}/metrics")).text, "admin") == 0
        assert await ended_on_survivors() == 0
        client = target.client()

        async def leased_ends() -> int:
            return sum([await client.zcard(key) for key in target.keys("ending")])

        # (Read where the store keeps them: the count must go from all to none.)
        assert await leased_ends() == DEAD_NODE_SESSIONS
        a.kill()
        killed_at = time.monotonic()
        with contextlib.suppress(httpx.HTTPError):
            await cleanup

        async def all_taken_over() -> bool:
            return await ended_on_survivors() >= DEAD_NODE_SESSIONS

        await poll_until(all_taken_over, 20.0, "the survivors did not finish every end")
        # Not before A's last lease renewal (a third of a lease before the kill) ran out.
        assert time.monotonic() - killed_at >= END_LEASE - END_LEASE / 3 - 0.2
        for user in users:
            [archive] = _archives(data, user)
            dialog = dialog_from_doc(yaml.safe_load(archive.read_text()), archive.name)
            assert (dialog.session_id, dialog.end_reason.value) == (ids[user], "admin")
            assert [m.content for m in dialog.messages] == [f"hello from {user}"]
        # Each end was completed with the survivor's fence: none is left to hand out again.
        try:

            async def all_completed() -> bool:
                return await leased_ends() == 0

            await poll_until(all_completed, WAIT, "some ends were never completed")
        finally:
            await client.aclose()
        assert await ended_on_survivors() == DEAD_NODE_SESSIONS
        for user in users:
            assert len(_archives(data, user)) == 1
        health = (await http.get(f"{b.http}/health")).json()
        assert health["sessions"]["active"] == 0
