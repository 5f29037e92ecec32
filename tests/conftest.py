"""Fixtures shared across test packages: one real ``redis-server`` and one PostgreSQL per session.

The store contract suite (tests/store) and the multi-node tests (tests/cluster)
both run against it; see ``redis_kit.py`` for how it is started and stopped.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench.pg_server import PgServer
from bench.redis_server import BenchCluster

from pg_kit import empty, start_pg_server
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
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL for the whole test session (started on first use), stopped by pid.

    In a temp dir of its own rather than pytest's: pytest's are private to
    root, and the server runs as the ``postgres`` user.
    """
    directory = Path(tempfile.mkdtemp(prefix="tether-test-pg-"))
    try:
        server = start_pg_server(directory)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The test PostgreSQL's URL, its archive table dropped first."""
    empty(pg_server.url)
    return pg_server.url


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BenchCluster]:
    """One real 3-master Redis Cluster for the whole test session, stopped by pid at the end."""
    cluster = start_redis_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()
