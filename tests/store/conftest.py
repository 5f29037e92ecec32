"""Store factories: every ``SessionStore`` implementation runs the same contract suite.

A factory is a zero-argument callable returning an async context manager that
yields a fresh, empty store and closes it on exit. Each implementation has a
fixture that returns its factory, named in :data:`STORE_FACTORIES`; to run the
contract against another implementation, add its fixture there; nothing else
changes. ``aclose`` may already have been called by the test when the factory
closes the store, so it must be idempotent.

The Redis factories run against the real ``redis-server`` that tests/conftest.py
starts once per session (see ``tests/redis_kit.py``): ``redis`` with one shard
(the layout of one Redis), ``redis-sharded`` with the 64 shards of a cluster
deployment on that one server; ``redis-cluster`` against the real 3-master
Redis Cluster tests/conftest.py starts. Each store gets its own key prefix,
and the data is flushed after each test.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from bench.redis_server import BenchCluster

from redis_kit import RedisServer, flush, flush_cluster
from tether.store.base import SessionStore
from tether.store.memory import MemoryStore
from tether.store.redis import RedisStore
from tether.store.redis.shards import CLUSTER_SHARDS

StoreFactory = Callable[..., AbstractAsyncContextManager[SessionStore]]
"""Called with no arguments for a default store, or with constructor options
both implementations take (such as ``transcript_cap``)."""


@asynccontextmanager
async def memory_store(**options: Any) -> AsyncIterator[SessionStore]:
    """A fresh in-process store (``options`` go to its constructor)."""
    store = MemoryStore(**options)
    try:
        yield store
    finally:
        await store.aclose()


@asynccontextmanager
async def redis_store(url: str, **options: Any) -> AsyncIterator[SessionStore]:
    """A fresh RedisStore under its own prefix; the database is flushed afterwards."""
    store = RedisStore.from_url(url, prefix=f"test-{uuid.uuid4().hex[:12]}:", **options)
    try:
        yield store
    finally:
        await store.aclose()
        await flush(url)


@asynccontextmanager
async def sharded_store(url: str, **options: Any) -> AsyncIterator[SessionStore]:
    """A fresh RedisStore with a cluster's shards, on one Redis; flushed afterwards."""
    store = RedisStore(
        RedisStore.from_url(url).client,
        prefix=f"test-{uuid.uuid4().hex[:12]}:",
        shards=CLUSTER_SHARDS,
        owns_client=True,
        **options,
    )
    try:
        yield store
    finally:
        await store.aclose()
        await flush(url)


@asynccontextmanager
async def cluster_store(cluster: BenchCluster, **options: Any) -> AsyncIterator[SessionStore]:
    """A fresh RedisStore on the real Redis Cluster (``redis+cluster://``); flushed afterwards."""
    store = RedisStore.from_url(cluster.url, prefix=f"test-{uuid.uuid4().hex[:12]}:", **options)
    try:
        yield store
    finally:
        await store.aclose()
        await flush_cluster(cluster)


STORE_FACTORIES: list[object] = [
    pytest.param("memory_store_factory", id="memory"),
    pytest.param("redis_store_factory", id="redis"),
    pytest.param("sharded_store_factory", id="redis-sharded"),
    pytest.param("cluster_store_factory", id="redis-cluster"),
]


@pytest.fixture
def memory_store_factory() -> StoreFactory:
    """Fresh MemoryStores."""
    return memory_store


@pytest.fixture
def redis_store_factory(redis_server: RedisServer) -> StoreFactory:
    """Fresh RedisStores on the session's ``redis-server``."""
    return functools.partial(redis_store, redis_server.url)


@pytest.fixture
def sharded_store_factory(redis_server: RedisServer) -> StoreFactory:
    """Fresh 64-shard RedisStores on the session's ``redis-server``."""
    return functools.partial(sharded_store, redis_server.url)


@pytest.fixture
def cluster_store_factory(redis_cluster: BenchCluster) -> StoreFactory:
    """Fresh RedisStores on the session's 3-master Redis Cluster."""
    return functools.partial(cluster_store, redis_cluster)


@pytest.fixture(params=STORE_FACTORIES)
def store_factory(request: pytest.FixtureRequest) -> StoreFactory:
    """The factory of the implementation under test."""
    factory: StoreFactory = request.getfixturevalue(request.param)
    return factory


@pytest.fixture
async def store(store_factory: StoreFactory) -> AsyncIterator[SessionStore]:
    """A fresh, empty store of the implementation under test, closed afterwards."""
    async with store_factory() as fresh:
        yield fresh
