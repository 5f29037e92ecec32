"""Fixtures shared across test packages: one real ``redis-server`` per test session.

The store contract suite (tests/store) and the multi-node tests (tests/cluster)
both run against it; see ``redis_kit.py`` for how it is started and stopped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from redis_kit import RedisServer, start_redis_server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One ``redis-server`` for the whole test session, stopped by pid at the end."""
    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()
