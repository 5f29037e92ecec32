"""Fixtures shared across test packages: one real ``redis-server`` per test session.

The store contract suite (tests/store) and the multi-node tests (tests/cluster)
both run against it; see ``redis_kit.py`` for how it is started and stopped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bench.redis_server import BenchCluster

from redis_kit import RedisServer, start_redis_cluster, start_redis_server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One ``redis-server`` for the whole test session, stopped by pid at the end."""
    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BenchCluster]:
    """One real 3-master Redis Cluster for the whole test session, stopped by pid at the end."""
    cluster = start_redis_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()
