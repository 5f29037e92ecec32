"""``ConfigCache``: the interned configs a store has seen, and reading sessions that refer to one.

A config longer than a compact hash value is interned: stored once under
``P cfg:<ref>`` for every live session that has it, the sessions' hashes
holding only the reference (``codec.config_args``, ``prelude.lua``). An
interned config's content never changes (the reference is a digest of it),
so a node may cache it for good; the cache only bounds how many it keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether.store.redis import codec
from tether.store.redis.codec import Loaded
from tether.store.redis.scripts import Client

CACHED = 4096
"""Interned configs one store keeps in memory."""


class ConfigCache:
    """Decodes session hashes, resolving interned configs from memory or from Redis."""

    def __init__(self, client: Client, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._configs: dict[str, str] = {}

    async def decode(self, session_id: str, fields: Any) -> Loaded:
        """``codec.decode``, fetching an interned config not cached yet."""
        try:
            return codec.decode(session_id, fields, self._configs)
        except codec.Unresolved as missing:
            return codec.decode(session_id, fields, await self._fetch(session_id, missing.ref))

    def intern(self, ref: str, interned: Sequence[str]) -> None:
        """Cache the config this node is about to store interned (``codec.config_args``)."""
        if ref and ref not in self._configs:
            self._remember(ref, "".join(interned[1::2]))

    async def _fetch(self, session_id: str, ref: str) -> dict[str, str]:
        """Interned config ``ref`` (of session ``session_id``), cached; the configs to decode with.

        A config gone from the store had its last live reference dropped since
        the session was read: the session ended (its hash now holds the config
        inline) or its config changed (then the current one is what it reads).
        """
        interned = await self._client.hgetall(self._prefix + "cfg:" + ref)
        value = codec.config_text(codec.fields_of(interned)) if interned else None
        if value is None:
            current = await self._client.hgetall(self._prefix + "s:" + session_id)
            value = codec.config_text(codec.fields_of(current)) if current else None
            if value is None or codec.config_ref(value) != ref:
                return {ref: value or ""}  # not the interned value: not cached
        self._remember(ref, value)
        return self._configs

    def _remember(self, ref: str, value: str) -> None:
        if len(self._configs) >= CACHED:
            self._configs.clear()
        self._configs[ref] = value
