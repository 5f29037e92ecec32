"""``RedisStore``: sessions in Redis, shared by every node of a deployment.

The face of the Redis store: it implements the whole
:class:`~tether.store.base.SessionStore` port (plus
:class:`~tether.store.base.NodeMembership`,
:class:`~tether.store.base.EpochStore` and
:class:`~tether.store.base.BroadcastStore`) by delegating each call to the
part that owns its concept, and is the seam where every ``RedisError`` (and
``OSError``) becomes :class:`~tether.errors.StoreUnavailable`
(:func:`~.seam.translated`). The parts:

* ``keys``: the key layout;
* ``link``: the client, scripts, config cache, and the commit of a decision;
* ``cas``: the one compare-and-set retry loop;
* ``sessions``: create, attach, detach, end, config, policy, append;
* ``touches``: heartbeats and activity, batched into one round trip;
* ``busy``: busy marks (the idle clock stopped while a reply streams);
* ``reads``: get, list, stats, transcripts;
* ``claims``: the two-step claim of due sessions, and end leases;
* ``nodes``: node membership, outage resume, the store's epoch;
* ``bus``: the deployment's pub/sub channel.

Each atomic step is one Lua script (``tether/store/lua/``); the rules stay in
the pure core, and scripts apply what it decided (see the parts).

A config over 64 bytes is interned (stored once for the live sessions that
have it; see ``codec``): the store caches interned configs by reference, and
fetches one it has not seen when a session it reads refers to it.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis.asyncio
from redis.asyncio import Redis

from tether.core.caps import TranscriptCap
from tether.core.policy import Policy
from tether.core.session import SessionInfo, SessionRecord
from tether.core.transcript import Message, Role
from tether.store.base import Armed, Claim, Created, SessionStore, StoreStats
from tether.store.redis import busy as busy_marks
from tether.store.redis.batch import Batcher
from tether.store.redis.bus import RedisBroadcast
from tether.store.redis.claims import COMMIT_CHUNK, Claims, Lease
from tether.store.redis.keys import Keys, SessionKeys
from tether.store.redis.link import Link
from tether.store.redis.nodes import Nodes
from tether.store.redis.reads import Reads
from tether.store.redis.scripts import Scripts
from tether.store.redis.seam import FAILURES, translated, unavailable
from tether.store.redis.sessions import Sessions
from tether.store.redis.touches import Touch, Touches
from tether.types import EndReason, SessionId, SessionState, UserId

__all__ = ["COMMIT_CHUNK", "Lease", "RedisStore"]


class RedisStore:
    """The Redis store: many nodes, one Redis primary.

    ``prefix`` starts every key, so deployments can share a Redis (a hash tag
    such as ``"{tether}:"`` keeps every key in one Redis Cluster slot: the
    scripts derive some keys from the prefix). Ended sessions' keys expire
    ``retention`` seconds after the end; until then late callers learn why
    the session ended. ``claim_lease`` is how long a claimer that died
    mid-claim keeps its sessions from the others; ``end_lease`` how long an
    end's claimant has to complete it; ``node_lease`` how long a keepalive
    keeps this node (and the connections it counts) alive.
    ``transcript_cap`` bounds every session's transcript (see
    :mod:`tether.core.caps`); ``append.lua`` applies it atomically.
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "tether:",
        retention: float = 3600.0,
        claim_lease: float = 30.0,
        end_lease: float = 30.0,
        node_lease: float = 15.0,
        owns_client: bool = False,
        transcript_cap: TranscriptCap | None = None,
    ) -> None:
        self._link = Link(
            client,
            Keys(prefix),
            retention=retention,
            end_lease=end_lease,
            transcript_cap=transcript_cap if transcript_cap is not None else TranscriptCap(),
        )
        self._owns_client = owns_client
        self._closed = False
        self._nodes = Nodes(self._link, node_lease=node_lease)
        self._sessions = Sessions(self._link, self._nodes)
        self._touches = Touches(self._link)
        self._reads = Reads(self._link)
        self._claims = Claims(self._link, self._nodes, claim_lease=claim_lease)
        self.touches: Batcher[Touch] = self._touches.batcher
        """The touch writer; its counters show how many round trips touches took."""

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "tether:",
        retention: float = 3600.0,
        claim_lease: float = 30.0,
        end_lease: float = 30.0,
        node_lease: float = 15.0,
        transcript_cap: TranscriptCap | None = None,
        **options: Any,
    ) -> RedisStore:
        """A store on its own client for ``url``.

        ``options`` go to redis-py's connection pool. The pool is a blocking
        one (of ``max_connections``, default 64): a burst of concurrent calls
        waits for a free connection instead of failing, as redis-py's default
        pool would past 100.
        """
        options.setdefault("max_connections", 64)
        pool = redis.asyncio.BlockingConnectionPool.from_url(url, **options)
        client = redis.asyncio.Redis.from_pool(pool)
        return cls(
            client,
            prefix=prefix,
            retention=retention,
            claim_lease=claim_lease,
            end_lease=end_lease,
            node_lease=node_lease,
            owns_client=True,
            transcript_cap=transcript_cap,
        )

    @property
    def transcript_cap(self) -> TranscriptCap:
        """The caps every append is checked against."""
        return self._link.cap

    @property
    def prefix(self) -> str:
        """What every key of this store starts with."""
        return self._link.keys.prefix

    @property
    def client(self) -> Redis:
        """The Redis client this store talks through."""
        return self._link.client

    @property
    def shared(self) -> bool:
        """Always: every node of the deployment uses the same Redis."""
        return True

    @property
    def end_lease(self) -> float:
        return self._link.end_lease

    @property
    def node_id(self) -> str:
        """This node's identity token: connections it attaches count under it."""
        return self._nodes.token

    @property
    def node_lease(self) -> float:
        return self._nodes.lease

    @property
    def _scripts(self) -> Scripts:
        """The registered scripts (tests poke at them)."""
        return self._link.scripts

    def _create_call(
        self, record: SessionRecord, *, max_per_user: int | None, reuse: bool = False
    ) -> tuple[SessionKeys, builtins.list[str]]:
        """The keys and arguments of ``create.lua`` for ``record`` (bench loaders use it)."""
        return self._sessions.create_call(record, max_per_user=max_per_user, reuse=reuse)

    def broadcast(self) -> RedisBroadcast:
        """The deployment's pub/sub channel ``<prefix>bus``, on this store's client."""
        return RedisBroadcast(self._link.client, self._link.keys.bus())

    # -- lookups ------------------------------------------------------------------

    @translated
    async def get(self, session_id: SessionId) -> SessionInfo | None:
        return await self._reads.get(session_id)

    @translated
    async def list(
        self, *, user: UserId | None = None, state: SessionState | None = None
    ) -> builtins.list[SessionInfo]:
        return await self._reads.list(user=user, state=state)

    @translated
    async def stats(self) -> StoreStats:
        return await self._reads.stats()

    @translated
    async def transcript(
        self, session_id: SessionId, *, after: int = 0, limit: int | None = None
    ) -> builtins.list[Message]:
        return await self._reads.transcript(session_id, after=after, limit=limit)

    @translated
    async def next_due(self) -> float | None:
        return await self._claims.next_due()

    @translated
    async def ping(self) -> None:
        await self._link.client.ping()

    @translated
    async def aclose(self) -> None:
        """Send the touches still queued, then close the client if this store made it."""
        if self._closed:
            return
        self._closed = True
        await self.touches.aclose()
        if self._owns_client:
            await self._link.client.aclose()

    # -- writes -------------------------------------------------------------------

    @translated
    async def create(
        self, record: SessionRecord, *, max_per_user: int | None, reuse: bool = False
    ) -> Created:
        return await self._sessions.create(record, max_per_user=max_per_user, reuse=reuse)

    async def touch(
        self, session_id: SessionId, now: float, *, activity: bool
    ) -> Claim | Armed | None:
        # ``@translated`` written out: the hottest call saves a coroutine per touch.
        try:
            return await self._touches.touch(session_id, now, activity=activity)
        except FAILURES as exc:
            raise unavailable(exc) from exc

    @translated
    async def set_busy(
        self, session_id: SessionId, now: float, *, busy: bool
    ) -> Claim | Armed | None:
        return await busy_marks.set_busy(self._link, session_id, now, busy=busy)

    @translated
    async def attach(self, session_id: SessionId, now: float) -> SessionInfo:
        return await self._sessions.attach(session_id, now)

    @translated
    async def detach(self, session_id: SessionId, now: float) -> float | None:
        return await self._sessions.detach(session_id, now)

    @translated
    async def end(self, session_id: SessionId, reason: EndReason, now: float) -> Claim | None:
        return await self._sessions.end(session_id, reason, now)

    @translated
    async def update_config(self, session_id: SessionId, config: dict[str, Any]) -> SessionInfo:
        return await self._sessions.update_config(session_id, config)

    @translated
    async def update_policy(
        self, session_id: SessionId, policy: Policy, now: float
    ) -> float | None:
        return await self._sessions.update_policy(session_id, policy, now)

    @translated
    async def append(
        self,
        session_id: SessionId,
        role: Role,
        content: str,
        metadata: dict[str, Any] | None,
        now: float,
    ) -> Message:
        return await self._sessions.append(session_id, role, content, metadata, now)

    @translated
    async def retract(self, session_id: SessionId, seq: int) -> None:
        await self._sessions.retract(session_id, seq)

    # -- claims and end leases ------------------------------------------------------

    @translated
    async def claim_due(self, now: float, limit: int) -> builtins.list[Claim]:
        if limit <= 0:
            return []
        lease = await self._claims.lease_due(now, limit)
        return lease.ends + await self._claims.settle(lease, now)

    @translated
    async def lease_due(self, now: float, limit: int) -> Lease:
        """Step one of a claim (see :meth:`~.claims.Claims.lease_due`)."""
        return await self._claims.lease_due(now, limit)

    @translated
    async def settle(self, lease: Lease, now: float) -> builtins.list[Claim]:
        """Step two of a claim (see :meth:`~.claims.Claims.settle`)."""
        return await self._claims.settle(lease, now)

    @translated
    async def complete(self, session_id: SessionId, fence: int) -> bool:
        return await self._claims.complete(session_id, fence)

    @translated
    async def renew(self, ends: Sequence[tuple[SessionId, int]], now: float) -> builtins.list[bool]:
        return await self._claims.renew(ends, now)

    # -- nodes, outages, epoch --------------------------------------------------------

    @translated
    async def resume_presence(self, at: float) -> int:
        """Restart presence at ``at`` (see :meth:`~.nodes.Nodes.resume_presence`)."""
        return await self._nodes.resume_presence(at)

    @translated
    async def swap_epoch(self, candidate: str) -> str | None:
        """The epoch (``epoch.lua``); ``None`` if there was none (it now holds ``candidate``)."""
        return await self._nodes.swap_epoch(candidate)

    @translated
    async def keepalive(self, now: float) -> bool:
        return await self._nodes.keepalive(now)

    @translated
    async def leave(self, now: float) -> None:
        await self._nodes.leave(now)


if TYPE_CHECKING:

    def _is_a_session_store(store: RedisStore) -> SessionStore:
        """Type-checked only: RedisStore implements the whole ``SessionStore`` port."""
        return store
