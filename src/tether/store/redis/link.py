"""``Link``: what every part of the Redis store shares, and the session-hash steps they all use.

One client, its registered scripts, the interned-config cache and the key
layout, plus the steps several parts take: reading a session back from a
script's refusal, and committing a decision with ``apply.lua``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether.core.caps import TranscriptCap
from tether.core.session import Ended
from tether.errors import SessionEnded, SessionNotFound
from tether.store.base import Claim
from tether.store.redis import codec
from tether.store.redis.codec import Loaded, num, text
from tether.store.redis.configs import ConfigCache
from tether.store.redis.keys import Keys
from tether.store.redis.scripts import Call, Client, Scripts, pipelined
from tether.types import EndReason, SessionId

READ_CHUNK = 500
"""Sessions read per pipelined call."""


class Link:
    """A store's connection to Redis and its settings, shared by the store's parts."""

    def __init__(
        self,
        client: Client,
        keys: Keys,
        *,
        retention: float,
        end_lease: float,
        transcript_cap: TranscriptCap,
        scripts: Scripts | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.scripts = scripts if scripts is not None else Scripts(client)
        self.configs = ConfigCache(client, keys.prefix)
        self.retention_ms = str(max(1, round(retention * 1000)))
        self.end_lease = end_lease
        self.cap = transcript_cap
        self.cap_args = transcript_cap.script_args()

    async def run(self, calls: Sequence[Call]) -> list[Any]:
        """Run script ``calls`` in one pipeline (see :func:`~.scripts.pipelined`)."""
        return await pipelined(self.client, calls)

    # -- reading sessions back --------------------------------------------------------

    async def refused(self, session_id: str, reply: list[Any]) -> Loaded:
        """Session ``session_id`` as a script handed it back; raises for an unknown or ended one."""
        code = text(reply[0])
        if code == "N":
            raise SessionNotFound()
        if code == "E":
            raise SessionEnded(EndReason(text(reply[1])))
        assert code == "S", reply
        return await self.configs.decode(session_id, reply[1])

    async def decoded(self, flat: list[Any]) -> list[Loaded]:
        """The sessions of a script reply ``id, fields, id, fields...`` (a hash holds no id)."""
        return [
            await self.configs.decode(text(session_id), fields)
            for session_id, fields in zip(flat[::2], flat[1::2], strict=True)
        ]

    async def read(self, session_id: SessionId) -> Loaded:
        """The live session; raises for an unknown or ended one."""
        flat = await self.client.hgetall(self.keys.session(session_id))
        if not flat:
            raise SessionNotFound()
        loaded = await self.configs.decode(session_id, flat)
        if loaded.record.end_reason is not None:  # ended
            raise SessionEnded(loaded.record.end_reason)
        return loaded

    # -- committing decisions -------------------------------------------------------------

    async def apply(self, loaded: Loaded, arm: str, now: float) -> Any:
        """Commit ``loaded.record`` if still at ``loaded.version``; see ``apply.lua``."""
        fields = codec.mutable_fields(loaded.record)
        keys, args = self.commit_head(now)
        self.commit_one(keys, args, loaded, arm, fields)
        replies = await self.scripts.apply(keys=keys, args=args)
        return replies[0]

    def commit_head(self, now: float) -> tuple[list[str], list[str]]:
        """The shared keys and arguments of an ``apply.lua`` call, with no session yet."""
        k = self.keys
        keys = [k.due, k.live, k.ended, k.seq]
        return keys, [k.prefix, self.retention_ms, num(now + self.end_lease)]

    def commit_one(
        self, keys: list[str], args: list[str], loaded: Loaded, arm: str, fields: Sequence[str]
    ) -> None:
        """Add one session's commit to an ``apply.lua`` call: ``fields`` as pairs to set."""
        session_id = loaded.record.id
        keys += (self.keys.session(session_id), self.keys.transcript(session_id))
        args += (session_id, loaded.version, arm, str(len(fields) // 2), *fields)

    @staticmethod
    def end_claim(loaded: Loaded, transition: Ended, fence: int = 1) -> Claim:
        """The claim of an end: fence 1 for the end just committed."""
        return Claim(loaded.record.snapshot(), transition, fence, loaded.holders)
