"""Session storage: the :class:`SessionStore` port and its implementations."""

from tether.store.base import (
    Armed,
    Claim,
    Created,
    NodeMembership,
    NowaitTouch,
    SessionStore,
    StoreStats,
)
from tether.store.memory import MemoryStore

__all__ = [
    "Armed",
    "Claim",
    "Created",
    "MemoryStore",
    "NodeMembership",
    "NowaitTouch",
    "SessionStore",
    "StoreStats",
]
