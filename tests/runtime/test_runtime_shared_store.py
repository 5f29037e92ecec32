"""How the manager adapts to its store: one process (memory) or a shared store (Redis)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.archive.journal import FileJournal
from tether.archive.yaml_archive import YamlArchive
from tether.errors import ConfigError
from tether.runtime.bus import LocalBus
from tether.runtime.manager import SessionManager
from tether.runtime.store_bus import StoreBus, bus_for
from tether.store.memory import MemoryStore
from tether.store.redis import RedisStore

UNREACHABLE = "redis://127.0.0.1:1/0"  # never connected to: these tests only build


async def test_a_memory_store_gets_the_local_bus_and_no_cluster() -> None:
    """On a MemoryStore nothing travels: the bus is a LocalBus and no cluster link exists."""
    manager = SessionManager(MemoryStore())
    assert isinstance(manager.bus, LocalBus)
    assert manager._cluster is None
    assert not manager.store.shared


async def test_a_redis_store_gets_its_pub_sub_bus_by_default() -> None:
    """A shared Redis store gets the StoreBus on '<prefix>bus' unless one is given."""
    store = RedisStore.from_url(UNREACHABLE, prefix="p1:")
    try:
        manager = SessionManager(store)
        assert isinstance(manager.bus, StoreBus)
        assert manager.bus.channel == "p1:bus"
        assert manager._cluster is not None
        given = LocalBus()
        assert SessionManager(store, bus=given).bus is given
        assert isinstance(bus_for(MemoryStore()), LocalBus)
    finally:
        await store.aclose()


async def test_a_journal_on_a_shared_store_is_refused(tmp_path: Path) -> None:
    """A per-node journal with a shared store is a ConfigError: the store keeps the transcript."""
    store = RedisStore.from_url(UNREACHABLE)
    journal, archive = FileJournal(tmp_path), YamlArchive(tmp_path)
    try:
        with pytest.raises(ConfigError, match="journal"):
            SessionManager(store, journal=journal, archiver=archive)
    finally:
        await journal.aclose()
        await archive.aclose()
        await store.aclose()
