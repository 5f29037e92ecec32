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
* ``bus``: the deployment's pub/sub channel;
* ``shards``: the key layout's shards on Redis Cluster.

On Redis Cluster (``redis+cluster://`` URLs, :meth:`RedisStore.from_url`)
the store keeps 64 shards (:mod:`~.shards`): each a complete key layout
under its own hash tag, so each script still runs in one slot. A session's
steps go to its shard; claims, ``next_due``, listings and stats fan out over
every shard, one script per shard in one pipeline. The per-user cap and
reuse read the user's sessions across shards before creating, so two creates
for the same user racing on two nodes may leave one session over the cap
(one Redis checks it atomically in ``create.lua``).

Each atomic step is one Lua script (``tether/store/lua/``); the rules stay in
the pure core, and scripts apply what it decided (see the parts).

A config over 64 bytes is interned (stored once for the live sessions that
have it; see ``codec``): the store caches interned configs by reference, and
fetches one it has not seen when a session it reads refers to it.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import redis.asyncio
from redis.asyncio.cluster import RedisCluster

from tether.core.caps import TranscriptCap
from tether.core.policy import Policy
from tether.core.session import SessionInfo, SessionRecord
from tether.core.transcript import Message, Role
from tether.errors import DuplicateSession
from tether.store.base import Armed, Claim, Created, SessionStore, StoreStats
from tether.store.redis import busy as busy_marks
from tether.store.redis import codec, urls
from tether.store.redis.batch import Batcher
from tether.store.redis.bus import RedisBroadcast
from tether.store.redis.cas import MAX_ATTEMPTS, contention
from tether.store.redis.claims import COMMIT_CHUNK, Claims, Lease
from tether.store.redis.codec import Loaded, text
from tether.store.redis.keys import Keys, SessionKeys
from tether.store.redis.link import Link
from tether.store.redis.masters import Masters
from tether.store.redis.nodes import Nodes
from tether.store.redis.reads import Reads
from tether.store.redis.scripts import Call, Client, Scripts
from tether.store.redis.seam import FAILURES, translated, unavailable
from tether.store.redis.sessions import Sessions
from tether.store.redis.shards import CLUSTER_SHARDS, prefixes, shard_of
from tether.store.redis.touches import Touch, Touches, TouchWriter
from tether.types import EndReason, SessionId, SessionState, UserId

__all__ = ["CLUSTER_SHARDS", "COMMIT_CHUNK", "Lease", "RedisStore"]

log = logging.getLogger("tether.store")

_ENDED = SessionState.ENDED


class Shard(NamedTuple):
    """One shard's parts (one Redis has one shard)."""

    link: Link
    sessions: Sessions
    touches: Touches
    reads: Reads
    claims: Claims


class RedisStore:
    """The Redis store: many nodes, one Redis primary (or a Redis Cluster).

    ``prefix`` starts every key, so deployments can share a Redis. ``shards``
    splits the key layout into that many hash-tagged shards (:mod:`~.shards`):
    1 on one Redis (the default: the layout of earlier releases),
    :data:`CLUSTER_SHARDS` on Redis Cluster. Ended sessions' keys expire
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
        client: Client,
        *,
        prefix: str = "tether:",
        shards: int = 1,
        retention: float = 3600.0,
        claim_lease: float = 30.0,
        end_lease: float = 30.0,
        node_lease: float = 15.0,
        owns_client: bool = False,
        transcript_cap: TranscriptCap | None = None,
    ) -> None:
        cap = transcript_cap if transcript_cap is not None else TranscriptCap()
        scripts = Scripts(client)
        links = [
            Link(
                client,
                Keys(shard_prefix),
                retention=retention,
                end_lease=end_lease,
                transcript_cap=cap,
                scripts=scripts,
            )
            for shard_prefix in prefixes(prefix, shards)
        ]
        self._prefix = prefix
        self._link = links[0]
        self._owns_client = owns_client
        self._companions: builtins.list[redis.asyncio.Redis] = []
        """Clients closed with this store's own (a Sentinel URL's Sentinel clients)."""
        self._closed = False
        self._nodes = Nodes(links, node_lease=node_lease)
        writer = TouchWriter(links)
        self._shards = [
            Shard(
                link,
                Sessions(link, self._nodes),
                Touches(link, number, writer.batcher),
                Reads(link),
                Claims(link, self._nodes, claim_lease=claim_lease),
            )
            for number, link in enumerate(links)
        ]
        self._turn = 0
        self._settler = Claims(links[0], self._nodes, claim_lease=claim_lease, links=links)
        """Settles a sharded lease: every shard's reads, commits and drops in one pipeline each."""
        self.touches: Batcher[Touch] = writer.batcher
        """The touch writer; its counters show how many round trips touches took."""
        self.touch_masters: Masters | None = writer.masters
        """On Redis Cluster, the per-master touch sender; ``resent`` counts redirected calls."""

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

        ``redis://`` (or ``rediss://``, ``unix://``) is one Redis;
        ``redis+cluster://host:port`` any node of a Redis Cluster (the store
        then keeps :data:`CLUSTER_SHARDS` shards); ``redis+sentinel://host:port
        [,host:port...]/service`` the primary Sentinel names ``service``
        (see :mod:`~.urls`). ``options`` go to redis-py's connection pool. On
        one Redis the pool is a blocking one (of ``max_connections``, default
        64): a burst of concurrent calls waits for a free connection instead
        of failing, as redis-py's default pool would past 100.
        """
        target = urls.parse(url)
        client, companions = urls.connect(target, **options)
        store = cls(
            client,
            prefix=prefix,
            shards=CLUSTER_SHARDS if target.cluster else 1,
            retention=retention,
            claim_lease=claim_lease,
            end_lease=end_lease,
            node_lease=node_lease,
            owns_client=True,
            transcript_cap=transcript_cap,
        )
        store._companions = companions
        return store

    @property
    def transcript_cap(self) -> TranscriptCap:
        """The caps every append is checked against."""
        return self._link.cap

    @property
    def prefix(self) -> str:
        """What every key of this store starts with."""
        return self._prefix

    @property
    def shards(self) -> int:
        """How many shards the key layout has (1 on one Redis)."""
        return len(self._shards)

    @property
    def client(self) -> Client:
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
        return self._of(record.id).sessions.create_call(
            record, max_per_user=max_per_user, reuse=reuse
        )

    def broadcast(self) -> RedisBroadcast:
        """The deployment's pub/sub channel ``<prefix>bus``, on this store's client.

        On Redis Cluster a sharded channel (``SPUBLISH``/``SSUBSCRIBE``): it
        lives on the master of its slot, where plain pub/sub would copy every
        message to every node of the cluster.
        """
        return RedisBroadcast(
            self._link.client,
            self._link.keys.bus(),
            sharded=isinstance(self._link.client, RedisCluster),
        )

    def keys_of(self, session_id: str) -> Keys:
        """The key layout of session ``session_id``'s shard (tests and benches look at keys)."""
        return self._of(session_id).link.keys

    def _of(self, session_id: str) -> Shard:
        """The shard of session ``session_id``."""
        return self._shards[shard_of(session_id, len(self._shards))]

    # -- lookups ------------------------------------------------------------------

    @translated
    async def get(self, session_id: SessionId) -> SessionInfo | None:
        return await self._of(session_id).reads.get(session_id)

    @translated
    async def list(
        self, *, user: UserId | None = None, state: SessionState | None = None
    ) -> builtins.list[SessionInfo]:
        if len(self._shards) == 1:
            return await self._shards[0].reads.list(user=user, state=state)
        pages = await asyncio.gather(*(s.reads.list(user=user, state=state) for s in self._shards))
        found = [info for page in pages for info in page]
        if state is _ENDED:
            found.sort(key=lambda info: info.ended_at or 0.0)
        else:
            found.sort(key=lambda info: info.created_at)
        return found

    @translated
    async def stats(self) -> StoreStats:
        if len(self._shards) == 1:
            return await self._shards[0].reads.stats()
        parts = await asyncio.gather(*(s.reads.stats() for s in self._shards))
        oldest = [p.oldest_created_at for p in parts if p.oldest_created_at is not None]
        newest = [p.newest_created_at for p in parts if p.newest_created_at is not None]
        return StoreStats(
            sum(p.live for p in parts),
            min(oldest) if oldest else None,
            max(newest) if newest else None,
        )

    @translated
    async def transcript(
        self, session_id: SessionId, *, after: int = 0, limit: int | None = None
    ) -> builtins.list[Message]:
        return await self._of(session_id).reads.transcript(session_id, after=after, limit=limit)

    @translated
    async def next_due(self) -> float | None:
        if len(self._shards) == 1:
            return await self._shards[0].claims.next_due()
        times = await self._due_times()
        armed = [t for t in times if t is not None]
        return min(armed) if armed else None

    async def _due_times(self) -> builtins.list[float | None]:
        """Each shard's earliest time to look at (``next.lua``), one pipeline."""
        calls: builtins.list[Call] = [s.claims.next_call() for s in self._shards]
        replies = await self._link.run(calls)
        times: builtins.list[float | None] = []
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
            times.append(None if reply is None else codec.time_of(reply))
        return times

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
            for companion in self._companions:
                await companion.aclose()

    # -- writes -------------------------------------------------------------------

    @translated
    async def create(
        self, record: SessionRecord, *, max_per_user: int | None, reuse: bool = False
    ) -> Created:
        shard = self._of(record.id)
        if len(self._shards) == 1 or (max_per_user is None and not reuse):
            return await shard.sessions.create(record, max_per_user=max_per_user, reuse=reuse)
        return await self._create_across(shard, record, max_per_user=max_per_user, reuse=reuse)

    async def _create_across(
        self, shard: Shard, record: SessionRecord, *, max_per_user: int | None, reuse: bool
    ) -> Created:
        """``create`` with a per-user cap or reuse on a sharded store: the user's sessions
        live in every shard, so Python reads them all, ends (or reuses) what it must,
        then creates with ``create.lua`` unbounded."""
        if await shard.link.client.exists(shard.link.keys.session(record.id)):
            raise DuplicateSession()
        now = record.created_at
        ended: builtins.list[Claim] = []
        for _ in range(MAX_ATTEMPTS):
            live = await self._user_live(record.user)
            if reuse:
                same = [loaded for loaded in live if loaded.record.kind == record.kind]
                if same:
                    newest = same[-1]
                    due = newest.record.expired(now)
                    if due is None:
                        snapshot = newest.record.snapshot()
                        return Created(snapshot, newest.armed_at, ended, reused=True)
                    claim = await self.end(newest.record.id, due, now)  # its end was due
                    if claim is not None:
                        ended.append(claim)
                    continue
            if max_per_user is not None:
                for old in live[: max(0, len(live) - max(1, max_per_user) + 1)]:
                    claim = await self._of(old.record.id).sessions.end(
                        old.record.id, EndReason.REPLACED, now
                    )
                    if claim is not None:
                        ended.append(claim)
            created = await shard.sessions.create(record, max_per_user=None)
            return dataclasses.replace(created, replaced=ended + created.replaced)
        raise contention()

    async def _user_live(self, user: str) -> builtins.list[Loaded]:
        """The user's live sessions in every shard, oldest first (two pipelines)."""
        client = self._link.client
        async with client.pipeline(transaction=False) as pipe:
            for shard in self._shards:
                pipe.zrange(shard.link.keys.user(user), 0, -1)
            pages = await pipe.execute()
        ids = [text(m) for page in pages for m in page]
        if not ids:
            return []
        async with client.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.hgetall(self._of(session_id).link.keys.session(session_id))
            hashes = await pipe.execute()
        live: builtins.list[Loaded] = []
        for session_id, flat in zip(ids, hashes, strict=True):
            if not flat:
                continue
            loaded = await self._of(session_id).link.configs.decode(session_id, flat)
            if loaded.record.end_reason is None:
                live.append(loaded)
        live.sort(key=lambda loaded: loaded.record.created_at)
        return live

    async def touch(
        self, session_id: SessionId, now: float, *, activity: bool
    ) -> Claim | Armed | None:
        # ``@translated`` written out: the hottest call saves a coroutine per touch.
        try:
            return await self._of(session_id).touches.touch(session_id, now, activity=activity)
        except FAILURES as exc:
            raise unavailable(exc) from exc

    @translated
    async def set_busy(
        self, session_id: SessionId, now: float, *, busy: bool
    ) -> Claim | Armed | None:
        return await busy_marks.set_busy(self._of(session_id).link, session_id, now, busy=busy)

    @translated
    async def attach(self, session_id: SessionId, now: float) -> SessionInfo:
        return await self._of(session_id).sessions.attach(session_id, now)

    @translated
    async def detach(self, session_id: SessionId, now: float) -> float | None:
        return await self._of(session_id).sessions.detach(session_id, now)

    @translated
    async def end(self, session_id: SessionId, reason: EndReason, now: float) -> Claim | None:
        return await self._of(session_id).sessions.end(session_id, reason, now)

    @translated
    async def update_config(self, session_id: SessionId, config: dict[str, Any]) -> SessionInfo:
        return await self._of(session_id).sessions.update_config(session_id, config)

    @translated
    async def update_policy(
        self, session_id: SessionId, policy: Policy, now: float
    ) -> float | None:
        return await self._of(session_id).sessions.update_policy(session_id, policy, now)

    @translated
    async def append(
        self,
        session_id: SessionId,
        role: Role,
        content: str,
        metadata: dict[str, Any] | None,
        now: float,
    ) -> Message:
        return await self._of(session_id).sessions.append(session_id, role, content, metadata, now)

    @translated
    async def retract(self, session_id: SessionId, seq: int) -> None:
        await self._of(session_id).sessions.retract(session_id, seq)

    # -- claims and end leases ------------------------------------------------------

    @translated
    async def claim_due(self, now: float, limit: int) -> builtins.list[Claim]:
        if limit <= 0:
            return []
        lease = await self._lease(now, limit)
        return lease.ends + await self._settle(lease, now)

    @translated
    async def lease_due(self, now: float, limit: int) -> Lease:
        """Step one of a claim (see :meth:`~.claims.Claims.lease_due`).

        A sharded store leases in every shard with something due, ``limit``
        shared out between them, in one pipeline: the lease's ``parts``.
        """
        return await self._lease(now, limit)

    @translated
    async def settle(self, lease: Lease, now: float) -> builtins.list[Claim]:
        """Step two of a claim (see :meth:`~.claims.Claims.settle`)."""
        return await self._settle(lease, now)

    async def _lease(self, now: float, limit: int) -> Lease:
        if len(self._shards) == 1:
            return await self._shards[0].claims.lease_due(now, limit)
        # Which shards have anything due: read fresh (another node may have armed
        # one a moment ago), so the limit goes to them and not to empty shards.
        hot = [
            number
            for number, at in enumerate(await self._due_times())
            if at is not None and at <= now
        ]
        shares = [0] * len(self._shards)
        if hot:
            # limit shared out evenly; the remainder goes round the shards, pass after pass
            base, extra = divmod(limit, len(hot))
            self._turn = (self._turn + 1) % len(hot)
            for i, number in enumerate(hot):
                shares[number] = base + (1 if (i - self._turn) % len(hot) < extra else 0)
        calls: builtins.list[Call] = []
        spans: builtins.list[tuple[int, int, str]] = []
        for number, shard in enumerate(self._shards):
            shard_calls, batch = shard.claims.lease_calls(now, shares[number])
            spans.append((len(calls), len(calls) + len(shard_calls), batch))
            calls += shard_calls
        replies = await self._link.run(calls)
        parts: builtins.list[Lease] = []
        for number, (start, stop, batch) in enumerate(spans):
            ends, count = await self._shards[number].claims.leased(replies[start:stop])
            if ends or count:
                parts.append(Lease(ends, batch if count else "", [], number))
        batches = [part for part in parts if part.batch]
        if batches:
            async with self._link.client.pipeline(transaction=False) as pipe:
                for part in batches:
                    pipe.lrange(part.batch, 0, -1)
                pages = await pipe.execute()
            filled = {
                part.shard: part._replace(ids=[text(i) for i in page])
                for part, page in zip(batches, pages, strict=True)
            }
            parts = [filled.get(part.shard, part) for part in parts]
        return Lease(
            [end for part in parts for end in part.ends],
            "",
            [i for part in parts for i in part.ids],
            parts=tuple(parts),
        )

    async def _settle(self, lease: Lease, now: float) -> builtins.list[Claim]:
        if not lease.parts:
            return await self._shards[lease.shard].claims.settle(lease, now)
        return await self._settler.settle(lease, now)

    @translated
    async def complete(self, session_id: SessionId, fence: int) -> bool:
        return await self._of(session_id).claims.complete(session_id, fence)

    @translated
    async def renew(self, ends: Sequence[tuple[SessionId, int]], now: float) -> builtins.list[bool]:
        if len(self._shards) == 1:
            return await self._shards[0].claims.renew(ends, now)
        groups: dict[int, builtins.list[int]] = {}
        for i, (session_id, _) in enumerate(ends):
            groups.setdefault(shard_of(session_id, len(self._shards)), []).append(i)
        replies = await asyncio.gather(
            *(
                self._shards[number].claims.renew([ends[i] for i in members], now)
                for number, members in groups.items()
            )
        )
        out = [False] * len(ends)
        for members, held in zip(groups.values(), replies, strict=True):
            for i, ok in zip(members, held, strict=True):
                out[i] = ok
        return out

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
