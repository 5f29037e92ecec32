"""The Redis store: sessions shared by many nodes through one Redis primary.

:class:`RedisStore` passes the same contract as the memory store (see
``tether.store.base``); its Lua scripts live in ``tether/store/lua/``.
"""

from tether.store.redis.bus import RedisBroadcast
from tether.store.redis.store import RedisStore

__all__ = ["RedisBroadcast", "RedisStore"]
