"""Several tether nodes in one process: SessionManagers sharing one RedisStore prefix.

Each node has its own RedisStore (its own connections and node identity), its
own event bus (pub/sub on the prefix's channel) and its own YamlArchive on a
data dir all nodes share; all of them run on one FakeClock. ``Cluster.advance``
moves fake time step by step, waiting after each step until every live node
is idle (its work waits on Redis, which ``settle`` cannot see); what travels
between nodes is awaited with ``tether.testing.eventually``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from redis_kit import flush
from tether.archive.yaml_archive import YamlArchive
from tether.core.policy import Policy
from tether.runtime.manager import SessionManager
from tether.store.redis import RedisStore
from tether.testing import FakeClock, crash, idle

POLICY = Policy(idle_timeout=600, warn_before=120, max_duration=1800, presence_timeout=60)
NODE_LEASE = 15.0
END_LEASE = 30.0


@dataclass
class Node:
    """One node: its manager, store and archive."""

    name: str
    manager: SessionManager
    store: RedisStore
    archive: YamlArchive
    alive: bool = True


@dataclass
class Cluster:
    """Nodes on one Redis prefix, one data dir and one fake clock."""

    url: str
    prefix: str
    data_dir: Path
    clock: FakeClock
    policy: Policy
    servers: list[str] = field(default_factory=list)
    """Plain ``redis://`` URLs of the data nodes: the server, or every master of the cluster."""
    nodes: list[Node] = field(default_factory=list)

    async def flush(self) -> None:
        """Empty every data node, as a Redis that came back without its data."""
        for url in self.servers:
            await flush(url)

    async def kill_listeners(self) -> None:
        """Drop every pub/sub connection on every data node, as a network cut would."""
        for url in self.servers:
            admin = redis.asyncio.from_url(url)
            try:
                await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            finally:
                await admin.aclose()

    async def add(self, name: str, **options: Any) -> Node:
        """Start one more node (``options`` go to its SessionManager)."""
        store = RedisStore.from_url(
            self.url, prefix=self.prefix, node_lease=NODE_LEASE, end_lease=END_LEASE
        )
        archive = YamlArchive(self.data_dir)
        manager = SessionManager(
            store,
            policy=options.pop("policy", self.policy),
            clock=self.clock,
            archiver=archive,
            **options,
        )
        await manager.open()
        node = Node(name, manager, store, archive)
        self.nodes.append(node)
        return node

    def live(self) -> list[SessionManager]:
        """The managers of the nodes still running."""
        return [n.manager for n in self.nodes if n.alive]

    async def idle(self) -> None:
        """Wait (in real time, bounded) until every live node is idle."""
        await idle(*self.live())

    async def advance(self, seconds: float) -> None:
        """Move fake time, letting every live node finish each step's work."""
        await self.clock.advance(seconds, quiesce=self.idle)

    async def kill(self, node: Node) -> None:
        """SIGKILL ``node``: it stops dead, ending, closing and deregistering nothing."""
        node.alive = False
        await crash(node.manager)

    async def stop(self, node: Node) -> None:
        """Stop ``node`` gracefully (what SIGTERM does to ``tether serve``)."""
        node.alive = False
        await node.manager.aclose()

    def archives(self, user: str) -> list[Path]:
        """The archive files of ``user``, whoever wrote them."""
        folder = self.data_dir / "users" / user / "dialogs" / "archived"
        return sorted(folder.iterdir()) if folder.exists() else []


ClusterFactory = Callable[..., AbstractAsyncContextManager[Cluster]]


async def close_on_fake_time(clock: FakeClock, manager: SessionManager) -> None:
    """Close ``manager``, moving fake time on if it waits for it (a test that failed midway)."""
    closing = asyncio.ensure_future(manager.aclose())
    while not closing.done():
        await asyncio.wait({closing}, timeout=0.05)
        if not closing.done():
            await clock.advance(30)
    closing.result()


@pytest.fixture(params=["redis", "redis-cluster"])
def cluster_of(request: pytest.FixtureRequest, tmp_path: Path) -> ClusterFactory:
    """``async with cluster_of("a", "b") as c``: named nodes, closed and flushed afterwards.

    Run twice: on one ``redis-server``, and on the real 3-master Redis Cluster
    (``redis+cluster://``, 64 shards).
    """
    on_cluster = request.param == "redis-cluster"
    server = request.getfixturevalue("redis_cluster" if on_cluster else "redis_server")

    @asynccontextmanager
    async def make(*names: str, policy: Policy = POLICY) -> AsyncIterator[Cluster]:
        data = tmp_path / "data"
        data.mkdir(exist_ok=True)
        servers = [m.url for m in server.masters] if on_cluster else [server.url]
        cluster = Cluster(
            server.url, f"test-{uuid.uuid4().hex[:12]}:", data, FakeClock(), policy, servers
        )
        try:
            for name in names:
                await cluster.add(name)
            yield cluster
        finally:
            for node in cluster.nodes:
                if node.alive:
                    node.alive = False
                    await close_on_fake_time(cluster.clock, node.manager)
            await cluster.flush()

    return make
