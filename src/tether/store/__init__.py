"""Session storage: the :class:`SessionStore` port and its implementations."""

from tether.store.base import (
    Claim,
    Created,
    NodeMembership,
    NowaitTouch,
    SessionStore,
    StoreStats,
)
from tether.store.memory import MemoryStore

__all__ = [
    "Claim",
    "Created",
    "MemoryStore",
    "NodeMembership",
    "NowaitTouch",
    "SessionStore",
    "StoreStats",
]
