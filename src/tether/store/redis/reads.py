"""``Reads``: looking sessions and transcripts up (get, list, stats, transcript pages).

Reads take no decision: they decode what is stored, and the snapshot
(:meth:`~tether.core.session.SessionRecord.snapshot`) carries the times the
core derives from it.
"""

from __future__ import annotations

import builtins
from typing import cast

from tether.core.session import SessionInfo
from tether.core.transcript import Message
from tether.errors import SessionNotFound
from tether.store.base import StoreStats
from tether.store.redis import codec
from tether.store.redis.codec import text
from tether.store.redis.link import READ_CHUNK, Link
from tether.types import SessionId, SessionState, UserId

_ENDED = SessionState.ENDED


class Reads:
    """Lookups of sessions and their transcripts."""

    def __init__(self, link: Link) -> None:
        self._link = link

    async def get(self, session_id: SessionId) -> SessionInfo | None:
        """See ``SessionStore.get``."""
        link = self._link
        flat = await link.client.hgetall(link.keys.session(session_id))
        return (await link.configs.decode(session_id, flat)).record.snapshot() if flat else None

    async def list(
        self, *, user: UserId | None = None, state: SessionState | None = None
    ) -> builtins.list[SessionInfo]:
        """See ``SessionStore.list``."""
        link = self._link
        if state is _ENDED:
            ids = await self._members(link.keys.ended)
        elif user is not None:
            ids = await self._members(link.keys.user(user))
        else:
            ids = await self._live_ids()
        out: builtins.list[SessionInfo] = []
        for start in range(0, len(ids), READ_CHUNK):
            async with link.client.pipeline(transaction=False) as pipe:
                for session_id in ids[start : start + READ_CHUNK]:
                    pipe.hgetall(link.keys.session(session_id))
                hashes = await pipe.execute()
            for session_id, flat in zip(ids[start : start + READ_CHUNK], hashes, strict=True):
                if not flat:
                    continue  # expired since the index was read
                record = (await link.configs.decode(session_id, flat)).record
                if (state is None and record.state is _ENDED) or (
                    state is not None and record.state is not state
                ):
                    continue
                if user is not None and record.user != user:
                    continue
                out.append(record.snapshot())
        return out

    async def _members(self, index: str) -> builtins.list[str]:
        """The members of zset ``index``, in order."""
        members = cast(builtins.list[codec.Raw], await self._link.client.zrange(index, 0, -1))
        return [text(m) for m in members]

    async def _live_ids(self) -> builtins.list[str]:
        """Every live session, oldest first: the live index's chunks in order (``prelude.lua``)."""
        link = self._link
        chunks = await self._members(link.keys.live)
        ids: builtins.list[str] = []
        for start in range(0, len(chunks), READ_CHUNK):
            async with link.client.pipeline(transaction=False) as pipe:
                for chunk in chunks[start : start + READ_CHUNK]:
                    pipe.zrange(link.keys.live_chunk(chunk), 0, -1)
                pages = await pipe.execute()
            ids += (text(m) for page in pages for m in page)
        return ids

    async def stats(self) -> StoreStats:
        """See ``SessionStore.stats``."""
        k = self._link.keys
        reply = await self._link.scripts.stats(keys=[k.count, k.live], args=[k.prefix])
        if reply[0] == 0:
            return StoreStats(0, None, None)
        return StoreStats(int(reply[0]), codec.time_of(reply[1]), codec.time_of(reply[2]))

    async def transcript(
        self, session_id: SessionId, *, after: int = 0, limit: int | None = None
    ) -> builtins.list[Message]:
        """See ``SessionStore.transcript``."""
        client, k = self._link.client, self._link.keys
        hash_key, list_key = k.session(session_id), k.transcript(session_id)
        # Message seq n is at index n - 1; retracted ones are '' and skipped, so
        # a page holding some is topped up from the entries after it.
        start = max(0, after)
        wanted = -1 if limit is None else limit
        if wanted == 0:
            if not await client.exists(hash_key):
                raise SessionNotFound()
            return []
        async with client.pipeline(transaction=False) as pipe:
            pipe.exists(hash_key)
            pipe.lrange(list_key, start, -1 if wanted < 0 else start + wanted - 1)
            exists, values = await pipe.execute()
        if not exists:
            raise SessionNotFound()
        out: builtins.list[Message] = []
        requested = wanted
        while True:
            out += [codec.decode_message(start + i + 1, v) for i, v in enumerate(values) if v]
            missing = wanted - len(out)
            if wanted < 0 or len(values) < requested or missing <= 0:
                return out  # everything there is, or all that was asked for
            start += len(values)
            requested = missing
            values = await client.lrange(list_key, start, start + missing - 1)
