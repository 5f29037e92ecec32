"""A real ``redis-server`` for the store and cluster tests: started in a temp dir, stopped by pid.

Missing ``redis-server`` fails the tests that need it (it never skips them):
``make test`` installs it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio
from bench.redis_server import BenchCluster, BenchRedis, launch, launch_cluster

START_TIMEOUT_S = 10.0


class RedisServer(BenchRedis):
    """One running ``redis-server`` process on a free local port (the benches' server, killable)."""

    def kill(self) -> None:
        """Kill the server at once, as a crash would."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def start_redis_server(directory: Path) -> RedisServer:
    """Start a throwaway server (no persistence) in ``directory`` and wait until it is ready."""
    try:
        process, port = launch(str(directory), timeout=START_TIMEOUT_S)
    except RuntimeError as exc:
        pytest.fail(f"{exc} (make test installs redis-server)", pytrace=False)
    return RedisServer(process, port)


async def flush(url: str) -> None:
    """Empty the database at ``url``."""
    admin = redis.asyncio.from_url(url)
    try:
        await admin.flushdb()
    finally:
        await admin.aclose()


def start_redis_cluster(directory: Path, masters: int = 3) -> BenchCluster:
    """Start a real local Redis Cluster of ``masters`` masters and wait for ``cluster_state:ok``."""
    try:
        return launch_cluster(str(directory), masters, timeout=START_TIMEOUT_S)
    except (RuntimeError, OSError) as exc:
        pytest.fail(f"{exc} (make test installs redis-server)", pytrace=False)


async def flush_cluster(cluster: BenchCluster) -> None:
    """Empty every master of ``cluster``."""
    for master in cluster.masters:
        await flush(master.url)
