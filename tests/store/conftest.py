"""Store factories: every ``SessionStore`` implementation runs the same contract suite.

A factory is a zero-argument callable returning an async context manager that
yields a fresh, empty store and closes it on exit. To run the contract against
another implementation (a RedisStore against a real ``redis-server``), append
its factory to :data:`STORE_FACTORIES`; nothing else changes. ``aclose`` may
already have been called by the test when the factory closes the store, so it
must be idempotent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from tether.store.base import SessionStore
from tether.store.memory import MemoryStore

StoreFactory = Callable[[], AbstractAsyncContextManager[SessionStore]]


@asynccontextmanager
async def memory_store() -> AsyncIterator[SessionStore]:
    """A fresh in-process store."""
    store = MemoryStore()
    try:
        yield store
    finally:
        await store.aclose()


STORE_FACTORIES: list[object] = [
    pytest.param(memory_store, id="memory"),
]


@pytest.fixture(params=STORE_FACTORIES)
def store_factory(request: pytest.FixtureRequest) -> StoreFactory:
    """The factory of the implementation under test."""
    factory: StoreFactory = request.param
    return factory


@pytest.fixture
async def store(store_factory: StoreFactory) -> AsyncIterator[SessionStore]:
    """A fresh, empty store of the implementation under test, closed afterwards."""
    async with store_factory() as fresh:
        yield fresh
