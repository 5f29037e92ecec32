"""``RedisStore``: sessions in Redis, shared by every node of a deployment.

Each atomic step is one Lua script (``tether/store/lua/``); the rules stay in
the pure core. Scripts never compute a deadline: where a step depends on the
clocks, Python decides with :class:`~tether.core.session.SessionRecord`'s
methods and commits with a compare-and-set on the session's version
(``apply.lua``). The hot steps take a fast path that needs no decision:

* a touch, attach, append or end whose ``now`` is before the session's armed
  deadline cannot meet a run-out clock, so its script just does it;
  otherwise the script hands the session back and Python decides (and may
  end the session, exactly as :class:`~tether.store.memory.MemoryStore` does);
* a touch is one entry of a ``touch.lua`` call that carries every touch
  issued in the same loop iteration (:class:`~tether.store.redis.batch.Batcher`).

Claims are two steps. ``claim.lua`` leases up to ``limit`` due sessions to the
caller without reading them (:meth:`RedisStore.lease_due`): it moves their
index entries, in bulk, into one batch whose lease runs out at
``now + claim_lease``, out of every other claimer's sight. Then
(:meth:`RedisStore.settle`) Python reads them (``read.lua``), advances each one
with the core and commits it with ``apply.lua`` (``COMMIT_CHUNK`` sessions per
call, only the fields that changed, all calls in one pipeline): the end retires
it, anything else re-arms it at its true next deadline (the lazy re-arm of a
touched session). A commit that meets a newer version (a touch, an end, another
claimer whose lease ran out) is decided again on the fresh state, so each
transition is committed, and returned, exactly once. Once every session is
committed the batch is dropped (``drop.lua``). A claimer that dies before that
leaves its batch leased; the first claim after the lease runs out takes the
whole batch over and decides each session again.

Ends are leased too (``end_lease``, fence in the hash, the ``ending`` index):
an end not completed in time is handed out again by ``claim_due``.

Each store instance is one *node*: it registers under a random identity
token (:class:`~tether.store.base.NodeMembership`) and counts the
connections it attaches under it. ``claim_due`` on any node first gives up
nodes whose lease ran out (``reap.lua``) and releases their connections, so
a killed node cannot hold its sessions' presence forever.

A config over 64 bytes is interned (stored once for the live sessions that
have it; see ``codec``): the store caches interned configs by reference, and
fetches one it has not seen when a session it reads refers to it.

The store's epoch (``P epoch``, :class:`~tether.store.base.EpochStore`) lets
each node notice that Redis came back without its data (see
``tether.core.epoch``).

Every ``RedisError`` (and ``OSError``) is translated here, once, into
:class:`~tether.errors.StoreUnavailable`.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import itertools
import logging
import secrets
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, NamedTuple, ParamSpec, TypeVar, cast

import redis.asyncio
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tether.core.caps import TranscriptCap, message_size
from tether.core.policy import Policy
from tether.core.session import (
    Ended,
    SessionInfo,
    SessionRecord,
    TouchEffect,
    Transition,
    touch_effect,
)
from tether.core.transcript import Message, Role
from tether.errors import SessionEnded, SessionNotFound, StoreUnavailable
from tether.store.base import Armed, Claim, Created, SessionStore, StoreStats
from tether.store.redis import arming, codec
from tether.store.redis.batch import Batcher
from tether.store.redis.codec import Loaded, num, text
from tether.store.redis.configs import ConfigCache
from tether.store.redis.scripts import Call, Scripts, pipelined
from tether.types import EndReason, SessionId, SessionState, UserId

log = logging.getLogger("tether.store")
P = ParamSpec("P")
R = TypeVar("R")

_ENDED = SessionState.ENDED
MAX_ATTEMPTS = 64
"""Compare-and-set rounds before a step gives up on a session that keeps changing."""
_READ_CHUNK = 500
COMMIT_CHUNK = 500
"""Sessions a claim commits per ``apply.lua`` call (all calls in one pipeline)."""
RESUME_CHUNK = 1000
"""Sessions per ``resume.lua`` call: about a millisecond of Redis time each."""


def _translated(
    method: Callable[Concatenate[RedisStore, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[RedisStore, P], Coroutine[Any, Any, R]]:
    """The seam: Redis and socket failures leave the store as ``StoreUnavailable``."""

    async def translated(self: RedisStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(self, *args, **kwargs)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc

    functools.update_wrapper(translated, method)
    return translated


def _contention() -> StoreUnavailable:
    return StoreUnavailable(f"a session kept changing: gave up after {MAX_ATTEMPTS} attempts")


def _new_node_token() -> str:
    return secrets.token_hex(8)


_REPLACED = Ended(EndReason.REPLACED)


def _ok(reply: Any) -> bool:
    return isinstance(reply, list) and text(reply[0]) == "OK"


_Touch = tuple[str, str, str]
"""A queued touch: the session's hash key, ``now``, and ``"1"`` for activity."""


class Lease(NamedTuple):
    """What step one of a claim (:meth:`RedisStore.lease_due`) handed this caller."""

    ends: builtins.list[Claim]
    """Ends whose lease ran out uncompleted, handed out again with the next fence."""
    batch: str
    """The key of the batch holding the leased sessions (``""``: none)."""
    ids: builtins.list[str]
    """The leased sessions, not yet read or decided."""


class _Keys(NamedTuple):
    """The keys one session's scripts use, in their ``KEYS`` order."""

    hash: str
    transcript: str
    due: str
    live: str
    ended: str
    seq: str


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
        self._client = client
        self._cap = transcript_cap if transcript_cap is not None else TranscriptCap()
        self._cap_args = self._cap.script_args()
        self._prefix = prefix
        self._retention_ms = str(max(1, round(retention * 1000)))
        self._claim_lease = claim_lease
        self._end_lease = end_lease
        self._node_lease = node_lease
        self._owns_client = owns_client
        self._node = _new_node_token()
        self._joined = False
        self._lost = False
        self._closed = False
        self._scripts = Scripts(client)
        self._configs = ConfigCache(client, prefix)
        self._due = prefix + "due"
        self._live = prefix + "live"
        self._ended = prefix + "ended"
        self._seq = prefix + "seq"
        self._ending = prefix + "ending"
        self._nodes = prefix + "nodes"
        self._alive = prefix + "alive"
        self._reaping = prefix + "reaping"
        self._claims = prefix + "claims"
        self._batch_numbers = itertools.count()
        self._count = prefix + "count"
        self._epoch = prefix + "epoch"
        self.touches: Batcher[_Touch] = Batcher(self._send_touches)
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
        return self._cap

    @property
    def prefix(self) -> str:
        """What every key of this store starts with."""
        return self._prefix

    @property
    def client(self) -> Redis:
        """The Redis client this store talks through."""
        return self._client

    @property
    def shared(self) -> bool:
        """Always: every node of the deployment uses the same Redis."""
        return True

    @property
    def end_lease(self) -> float:
        return self._end_lease

    @property
    def node_id(self) -> str:
        """This node's identity token: connections it attaches count under it."""
        return self._node

    @property
    def node_lease(self) -> float:
        return self._node_lease

    # -- keys and calls -------------------------------------------------------

    def _keys(self, session_id: str) -> _Keys:
        p = self._prefix
        return _Keys(
            p + "s:" + session_id,
            p + "m:" + session_id,
            self._due,
            self._live,
            self._ended,
            self._seq,
        )

    def _session_key(self, session_id: str) -> str:
        return self._prefix + "s:" + session_id

    async def _run(self, calls: Sequence[Call]) -> builtins.list[Any]:
        return await pipelined(self._client, calls)

    async def _apply(self, loaded: Loaded, arm: str, now: float) -> Any:
        """Commit ``loaded.record`` if still at ``loaded.version``; see ``apply.lua``."""
        fields = codec.mutable_fields(loaded.record)
        keys, args = self._commit_head(now)
        self._commit_one(keys, args, loaded, arm, fields)
        replies = await self._scripts.apply(keys=keys, args=args)
        return replies[0]

    def _commit_head(self, now: float) -> tuple[builtins.list[str], builtins.list[str]]:
        """The shared keys and arguments of an ``apply.lua`` call, with no session yet."""
        keys = [self._due, self._live, self._ended, self._seq]
        return keys, [self._prefix, self._retention_ms, num(now + self._end_lease)]

    def _commit_one(
        self,
        keys: builtins.list[str],
        args: builtins.list[str],
        loaded: Loaded,
        arm: str,
        fields: Sequence[str],
    ) -> None:
        """Add one session's commit to an ``apply.lua`` call: ``fields`` as pairs to set."""
        session_id = loaded.record.id
        keys += (self._session_key(session_id), self._prefix + "m:" + session_id)
        args += (session_id, loaded.version, arm, str(len(fields) // 2), *fields)

    def _end_claim(self, loaded: Loaded, transition: Ended, fence: int = 1) -> Claim:
        """The claim of an end: fence 1 for the end just committed."""
        return Claim(loaded.record.snapshot(), transition, fence, loaded.holders)

    async def _refused(self, session_id: str, reply: builtins.list[Any]) -> Loaded:
        """Session ``session_id`` as a script handed it back; raises for an unknown or ended one."""
        code = text(reply[0])
        if code == "N":
            raise SessionNotFound()
        if code == "E":
            raise SessionEnded(EndReason(text(reply[1])))
        assert code == "S", reply
        return await self._configs.decode(session_id, reply[1])

    async def _decoded(self, flat: builtins.list[Any]) -> builtins.list[Loaded]:
        """The sessions of a script reply ``id, fields, id, fields...`` (a hash holds no id)."""
        return [
            await self._configs.decode(text(session_id), fields)
            for session_id, fields in zip(flat[::2], flat[1::2], strict=True)
        ]

    async def _read(self, session_id: SessionId) -> Loaded:
        """The live session; raises for an unknown or ended one."""
        flat = await self._client.hgetall(self._session_key(session_id))
        if not flat:
            raise SessionNotFound()
        loaded = await self._configs.decode(session_id, flat)
        if loaded.record.end_reason is not None:  # ended
            raise SessionEnded(loaded.record.end_reason)
        return loaded

    # -- lookups ----------------------------------------------------------------

    @_translated
    async def get(self, session_id: SessionId) -> SessionInfo | None:
        flat = await self._client.hgetall(self._session_key(session_id))
        return (await self._configs.decode(session_id, flat)).record.snapshot() if flat else None

    @_translated
    async def list(
        self, *, user: UserId | None = None, state: SessionState | None = None
    ) -> builtins.list[SessionInfo]:
        if state is _ENDED:
            ids = await self._members(self._ended)
        elif user is not None:
            ids = await self._members(self._prefix + "u:" + user)
        else:
            ids = await self._live_ids()
        out: builtins.list[SessionInfo] = []
        for start in range(0, len(ids), _READ_CHUNK):
            async with self._client.pipeline(transaction=False) as pipe:
                for session_id in ids[start : start + _READ_CHUNK]:
                    pipe.hgetall(self._session_key(session_id))
                hashes = await pipe.execute()
            for session_id, flat in zip(ids[start : start + _READ_CHUNK], hashes, strict=True):
                if not flat:
                    continue  # expired since the index was read
                record = (await self._configs.decode(session_id, flat)).record
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
        members = cast(builtins.list[codec.Raw], await self._client.zrange(index, 0, -1))
        return [text(m) for m in members]

    async def _live_ids(self) -> builtins.list[str]:
        """Every live session, oldest first: the live index's chunks in order (``prelude.lua``)."""
        chunks = await self._members(self._live)
        ids: builtins.list[str] = []
        for start in range(0, len(chunks), _READ_CHUNK):
            async with self._client.pipeline(transaction=False) as pipe:
                for chunk in chunks[start : start + _READ_CHUNK]:
                    pipe.zrange(self._live + ":" + chunk, 0, -1)
                pages = await pipe.execute()
            ids += (text(m) for page in pages for m in page)
        return ids

    @_translated
    async def stats(self) -> StoreStats:
        reply = await self._scripts.stats(keys=[self._count, self._live], args=[self._prefix])
        if reply[0] == 0:
            return StoreStats(0, None, None)
        return StoreStats(int(reply[0]), codec.time_of(reply[1]), codec.time_of(reply[2]))

    @_translated
    async def transcript(
        self, session_id: SessionId, *, after: int = 0, limit: int | None = None
    ) -> builtins.list[Message]:
        keys = self._keys(session_id)
        # Message seq n is at index n - 1; retracted ones are '' and skipped, so
        # a page holding some is topped up from the entries after it.
        start = max(0, after)
        wanted = -1 if limit is None else limit
        if wanted == 0:
            if not await self._client.exists(keys.hash):
                raise SessionNotFound()
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.exists(keys.hash)
            pipe.lrange(keys.transcript, start, -1 if wanted < 0 else start + wanted - 1)
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
            values = await self._client.lrange(keys.transcript, start, start + missing - 1)

    @_translated
    async def retract(self, session_id: SessionId, seq: int) -> None:
        await self._scripts.retract(keys=[self._keys(session_id).transcript], args=[seq])

    @_translated
    async def next_due(self) -> float | None:
        reply = await self._scripts.next(
            keys=[self._due, self._ending, self._reaping, self._claims]
        )
        return None if reply is None else codec.time_of(reply)

    @_translated
    async def ping(self) -> None:
        await self._client.ping()

    @_translated
    async def aclose(self) -> None:
        """Send the touches still queued, then close the client if this store made it."""
        if self._closed:
            return
        self._closed = True
        await self.touches.aclose()
        if self._owns_client:
            await self._client.aclose()

    # -- writes -------------------------------------------------------------------

    def _create_call(
        self, record: SessionRecord, *, max_per_user: int | None, reuse: bool = False
    ) -> tuple[_Keys, builtins.list[str]]:
        """The keys and arguments of ``create.lua`` for a new ``record``."""
        deadline = record.next_deadline()
        assert deadline is not None  # a new record is live
        ref, interned, config = codec.config_args(record.config)
        self._configs.intern(ref, interned)
        return self._keys(record.id), [
            self._prefix,
            record.id,
            record.user,
            num(record.created_at),
            "" if max_per_user is None else str(max_per_user),
            num(deadline.at),
            self._retention_ms,
            num(record.created_at + self._end_lease),
            record.kind if reuse else "",
            ref,
            str(len(interned)),
            *interned,
            *codec.new_fields(record, deadline.at, config),
        ]

    @_translated
    async def create(
        self, record: SessionRecord, *, max_per_user: int | None, reuse: bool = False
    ) -> Created:
        keys, args = self._create_call(record, max_per_user=max_per_user, reuse=reuse)
        deadline = record.next_deadline()
        assert deadline is not None  # a new record is live
        now = record.created_at
        ended: builtins.list[Claim] = []
        for _ in range(MAX_ATTEMPTS):
            reply = await self._scripts.create(keys=keys, args=args)
            code = text(reply[0])
            if code == "D":
                raise ValueError("duplicate session id")
            if code == "X":  # reuse: the user's live session of the kind, for Python to judge
                loaded = (await self._decoded(reply[1:3]))[0]
                if loaded.record.expired(now) is None:
                    return Created(loaded.record.snapshot(), loaded.armed_at, ended, reused=True)
                due = loaded.record.expired(now)
                assert due is not None
                claim = await self.end(loaded.record.id, due, now)  # its end was due: apply it
                if claim is not None:
                    ended.append(claim)
                continue
            for loaded in await self._decoded(reply[1]):
                ended.append(self._end_claim(loaded, _REPLACED))
            return Created(record.snapshot(), deadline.at, ended)
        raise _contention()

    @_translated
    async def touch(
        self, session_id: SessionId, now: float, *, activity: bool
    ) -> Claim | Armed | None:
        key, at, flag = self._session_key(session_id), num(now), "1" if activity else "0"
        reply = await self.touches.submit((key, at, flag))
        for _ in range(MAX_ATTEMPTS):
            if reply == 0:
                return None
            loaded = await self._refused(session_id, reply)
            record = loaded.record
            earlier: float | None = None
            transition: Transition | None = None
            if record.expired(now) is None:
                effect = touch_effect(
                    record.state, ever_heartbeat=record.ever_heartbeat, activity=activity
                )
                if effect is TouchEffect.RECORDED:
                    # nothing to decide after all: record it, if nothing moved
                    replies = await self._scripts.touch(keys=[key], args=[at, flag, loaded.version])
                    reply = replies[0]
                    continue
                record.touch(now, activity=activity)  # the core's touch rule, as MemoryStore
                if effect is TouchEffect.PRESENCE:
                    earlier = arming.earlier(loaded)
                else:
                    transition = record.advance(now)
            else:  # a touch cannot revive it: the end applies
                transition = record.advance(now)
            arm = arming.arm_after(loaded, transition, popped=False)
            if arm == arming.KEEP and earlier is not None:
                arm = num(earlier)
            reply = await self._apply(loaded, arm, now)
            if _ok(reply):
                if isinstance(transition, Ended):
                    return self._end_claim(loaded, transition)
                if transition is not None:
                    return Claim(record.snapshot(), transition)
                return None if earlier is None else Armed(earlier)
        raise _contention()

    async def _send_touches(self, touches: Sequence[_Touch]) -> builtins.list[Any]:
        """One ``touch.lua`` call for a whole batch of touches (see ``Batcher``)."""
        args: builtins.list[str] = []
        for _, at, flag in touches:
            args += (at, flag, "")
        replies: builtins.list[Any] = await self._scripts.touch(
            keys=[key for key, _, _ in touches], args=args
        )
        return replies

    @_translated
    async def attach(self, session_id: SessionId, now: float) -> SessionInfo:
        at, expected = num(now), ""
        for _ in range(MAX_ATTEMPTS):
            reply = await self._scripts.attach(
                keys=[self._session_key(session_id), self._nodes, self._node_set()],
                args=[at, expected, self._node, session_id],
            )
            if _ok(reply):
                return (await self._configs.decode(session_id, reply[1])).record.snapshot()
            if text(reply[0]) == "R":  # not registered (yet, or any more)
                await self._register(now)
                continue
            loaded = await self._refused(session_id, reply)
            if (reason := loaded.record.expired(now)) is not None:
                raise SessionEnded(reason)  # not revived: claim_due applies the end
            expected = loaded.version
        raise _contention()

    @_translated
    async def detach(self, session_id: SessionId, now: float) -> float | None:
        try:
            loaded = await self._read(session_id)
            for _ in range(MAX_ATTEMPTS):
                if loaded.counts.get(self._node, 0) <= 0:
                    return None  # a duplicate close, or released when this node was reaped
                loaded.record.detach(now)
                earlier = arming.earlier(loaded)
                reply = await self._scripts.detach(
                    keys=[self._session_key(session_id), self._due, self._node_set()],
                    args=[
                        self._node,
                        num(now),
                        loaded.version,
                        "" if earlier is None else num(earlier),
                        session_id,
                    ],
                )
                code = text(reply[0])
                if code == "OK":
                    return earlier
                if code == "Z":
                    return None
                loaded = await self._refused(session_id, reply)
        except (SessionNotFound, SessionEnded):
            return None  # connections close after their session ends
        raise _contention()

    @_translated
    async def end(self, session_id: SessionId, reason: EndReason, now: float) -> Claim | None:
        keys, at, lease = self._keys(session_id), num(now), num(now + self._end_lease)
        expected, why = "", reason
        for _ in range(MAX_ATTEMPTS):
            reply = await self._scripts.end(
                keys=keys,
                args=[self._prefix, session_id, at, why.value, expected, self._retention_ms, lease],
            )
            if _ok(reply):
                return self._end_claim(await self._configs.decode(session_id, reply[1]), Ended(why))
            try:
                loaded = await self._refused(session_id, reply)
            except SessionEnded:
                return None  # someone else ended it first
            # A clock that has already run out is why it ended: the timeout came first.
            why = loaded.record.expired(now) or reason
            expected = loaded.version
        raise _contention()

    @_translated
    async def update_config(self, session_id: SessionId, config: dict[str, Any]) -> SessionInfo:
        ref, interned, fields = codec.config_args(config)
        self._configs.intern(ref, interned)
        reply = await self._scripts.config(
            keys=[self._session_key(session_id)],
            args=[self._prefix, ref, str(len(interned)), *interned, *fields],
        )
        if not _ok(reply):
            await self._refused(session_id, reply)
        return (await self._configs.decode(session_id, reply[1])).record.snapshot()

    @_translated
    async def update_policy(
        self, session_id: SessionId, policy: Policy, now: float
    ) -> float | None:
        loaded = await self._read(session_id)
        for _ in range(MAX_ATTEMPTS):
            if (reason := loaded.record.expired(now)) is not None:
                raise SessionEnded(reason)
            loaded.record.policy = policy
            earlier = arming.earlier(loaded)
            reply = await self._apply(loaded, "" if earlier is None else num(earlier), now)
            if _ok(reply):
                return earlier
            loaded = await self._refused(session_id, reply)
        raise _contention()

    @_translated
    async def append(
        self,
        session_id: SessionId,
        role: Role,
        content: str,
        metadata: dict[str, Any] | None,
        now: float,
    ) -> Message:
        size = message_size(content, metadata)
        self._cap.check_message(size)
        keys = self._keys(session_id)
        at, entry = num(now), codec.encode_message(role, content, now, metadata)
        expected = ""
        for _ in range(MAX_ATTEMPTS):
            reply = await self._scripts.append(
                keys=[keys.hash, keys.transcript],
                args=[at, expected, entry, *self._cap_args, str(size)],
            )
            if isinstance(reply, int):
                return Message(reply, role, content, now, metadata or None)
            if text(reply[0]) == "F":
                # The script applied the cap; the core words the refusal.
                self._cap.check(count=int(reply[1]), stored_bytes=int(reply[2]), size=size)
                raise AssertionError("append.lua refused an append TranscriptCap allows")
            loaded = await self._refused(session_id, reply)
            if (reason := loaded.record.expired(now)) is not None:
                raise SessionEnded(reason)
            expected = loaded.version
        raise _contention()

    # -- claims -------------------------------------------------------------------

    @_translated
    async def claim_due(self, now: float, limit: int) -> builtins.list[Claim]:
        if limit <= 0:
            return []
        lease = await self.lease_due(now, limit)
        return lease.ends + await self.settle(lease, now)

    @_translated
    async def lease_due(self, now: float, limit: int) -> Lease:
        """Step one of a claim, after releasing dead nodes' connections (``reap.lua``).

        Hands out again the ends whose lease ran out uncompleted, and leases up
        to ``limit`` due sessions to this caller as one batch (``claim.lua``),
        without reading them: :meth:`settle` decides and commits them.
        """
        at, batch = num(now), f"{self._prefix}claim:{self._node}:{next(self._batch_numbers)}"
        reap, claim = await self._run(
            [
                (
                    self._scripts.reap,
                    [self._nodes, self._alive, self._reaping, self._due],
                    [self._prefix, at, limit, self._node],
                ),
                (
                    self._scripts.claim,
                    [self._due, self._ending, self._claims, batch],
                    [
                        self._prefix,
                        at,
                        limit,
                        num(now + self._claim_lease),
                        num(now + self._end_lease),
                        self._retention_ms,
                    ],
                ),
            ]
        )
        for result in (reap, claim):
            if isinstance(result, BaseException):
                raise result
        ends = []
        for loaded in await self._decoded(claim[0]):
            reason = loaded.record.end_reason
            assert reason is not None  # claim.lua hands out ended sessions only
            ends.append(self._end_claim(loaded, Ended(reason), loaded.fence))
        if not int(claim[1]):
            return Lease(ends, "", [])
        ids: builtins.list[codec.Raw] = await self._client.lrange(batch, 0, -1)
        return Lease(ends, batch, [text(i) for i in ids])

    @_translated
    async def settle(self, lease: Lease, now: float) -> builtins.list[Claim]:
        """Step two of a claim: decide each leased session with the core and commit it.

        Returns the transitions committed (each exactly once across callers).
        Once every session of the batch is committed the batch is dropped;
        otherwise (a commit failed, a session kept changing) it stays leased
        and is claimed again, whole, when the lease runs out.
        """
        pending = await self._read_batch(lease.ids)
        claims: builtins.list[Claim] = []
        settled = True
        for _ in range(MAX_ATTEMPTS):
            if not pending:
                break
            pending, failed = await self._commit_decisions(pending, now, claims)
            if failed is not None:
                settled = False
                if not claims:
                    raise failed
                # Raising now would lose the transitions already committed.
                log.warning("some claim commits failed; retried after the lease: %s", failed)
        if settled and not pending and lease.batch:
            await self._scripts.drop(keys=[self._claims, lease.batch])
        return claims

    async def _read_batch(self, ids: Sequence[str]) -> builtins.list[Loaded]:
        """The live sessions among ``ids`` (``read.lua``, one pipeline of chunks)."""
        calls: builtins.list[Call] = [
            (self._scripts.read, [self._session_key(i) for i in ids[at : at + _READ_CHUNK]], [])
            for at in range(0, len(ids), _READ_CHUNK)
        ]
        replies = await self._run(calls)
        out: builtins.list[Loaded] = []
        for at, reply in zip(range(0, len(ids), _READ_CHUNK), replies, strict=True):
            if isinstance(reply, BaseException):
                raise reply
            for session_id, fields in zip(ids[at : at + _READ_CHUNK], reply, strict=True):
                if not fields:
                    continue  # gone: its keys expired
                loaded = await self._configs.decode(session_id, fields)
                if loaded.record.end_reason is None:  # an ended one has nothing left to decide
                    out.append(loaded)
        return out

    async def _commit_decisions(
        self, pending: Sequence[Loaded], now: float, claims: builtins.list[Claim]
    ) -> tuple[builtins.list[Loaded], BaseException | None]:
        """Advance each of ``pending`` and commit it (``apply.lua``, one pipeline of chunks).

        Appends the committed transitions to ``claims``; returns the sessions
        that moved meanwhile (to decide again) and the error of a failed commit.
        """
        decided: builtins.list[tuple[Loaded, Transition | None]] = []
        calls: builtins.list[Call] = []
        keys: builtins.list[str] = []
        args: builtins.list[str] = []
        for loaded in pending:
            if not keys:
                keys, args = self._commit_head(now)
                calls.append((self._scripts.apply, keys, args))
            before = codec.mutable_fields(loaded.record)
            transition = loaded.record.advance(now)
            arm = arming.arm_after(loaded, transition, popped=True)
            decided.append((loaded, transition))
            after = codec.mutable_fields(loaded.record)
            changed = [
                item
                for i in range(0, len(after), 2)
                if after[i + 1] != before[i + 1]
                for item in after[i : i + 2]
            ]
            self._commit_one(keys, args, loaded, arm, changed)
            if len(keys) >= 4 + 2 * COMMIT_CHUNK:
                keys = []
        replies = await self._run(calls)
        results: builtins.list[Any] = []
        for (_, call_keys, _), reply in zip(calls, replies, strict=True):
            count = (len(call_keys) - 4) // 2
            results += [reply] * count if isinstance(reply, BaseException) else reply
        moved: builtins.list[Loaded] = []
        failed: BaseException | None = None
        for (loaded, transition), result in zip(decided, results, strict=True):
            if isinstance(result, BaseException):
                failed = result  # not committed: the batch stays leased
            elif _ok(result):
                if isinstance(transition, Ended):
                    claims.append(self._end_claim(loaded, transition))
                elif transition is not None:
                    claims.append(Claim(loaded.record.snapshot(), transition))
            else:
                with contextlib.suppress(SessionNotFound, SessionEnded):  # ended by another
                    moved.append(await self._refused(loaded.record.id, result))  # decide again
        return moved, failed

    # -- end leases -----------------------------------------------------------------

    @_translated
    async def complete(self, session_id: SessionId, fence: int) -> bool:
        reply = await self._scripts.complete(
            keys=[self._session_key(session_id), self._ending], args=[session_id, fence]
        )
        return bool(reply)

    @_translated
    async def renew(self, ends: Sequence[tuple[SessionId, int]], now: float) -> builtins.list[bool]:
        if not ends:
            return []
        args: builtins.list[str | int] = [num(now + self._end_lease)]
        for session_id, fence in ends:
            args += (session_id, fence)
        reply = await self._scripts.renew(
            keys=[self._ending, *(self._session_key(sid) for sid, _ in ends)], args=args
        )
        return [bool(r) for r in reply]

    # -- after an outage -----------------------------------------------------------------

    @_translated
    async def resume_presence(self, at: float) -> int:
        """Restart presence at ``at`` in chunks of ``RESUME_CHUNK`` (``resume.lua``).

        Each chunk is one atomic script call, so Redis is never blocked for
        long, however many sessions there are; a caller that stops between
        chunks (Redis failed again) simply calls again: the walk is idempotent.
        """
        cursor, moved = "-inf", 0
        args = [self._prefix, num(at), "", str(RESUME_CHUNK), num(at + self._node_lease)]
        keys = [self._live, self._nodes, self._alive]
        while True:
            args[2] = cursor
            reply = await self._scripts.resume(keys=keys, args=args)
            moved += int(reply[1])
            cursor = text(reply[0])
            if not cursor:
                return moved

    # -- store epoch ----------------------------------------------------------------------

    @_translated
    async def swap_epoch(self, candidate: str) -> str | None:
        """The epoch (``epoch.lua``); ``None`` if there was none (it now holds ``candidate``)."""
        held = await self._scripts.epoch(keys=[self._epoch], args=[candidate])
        return None if held is None else text(held)

    # -- node membership --------------------------------------------------------------

    def _node_set(self) -> str:
        return self._prefix + "node:" + self._node

    async def _register(self, now: float) -> None:
        """Register this node; if it was registered before, it was reaped: take a new identity."""
        if self._joined:
            log.warning("node %s was given up for dead; registering again", self._node[:8])
            self._node = _new_node_token()
            self._lost = True
        self._joined = True
        await self._scripts.keepalive(
            keys=[self._nodes, self._alive],
            args=[self._node, num(now), num(now + self._node_lease), "1"],
        )

    @_translated
    async def keepalive(self, now: float) -> bool:
        if not self._joined:
            await self._register(now)
            return True
        held = await self._scripts.keepalive(
            keys=[self._nodes, self._alive],
            args=[self._node, num(now), num(now + self._node_lease), "0"],
        )
        if not held:
            await self._register(now)
        lost, self._lost = self._lost, False
        return not lost

    @_translated
    async def leave(self, now: float) -> None:
        if not self._joined:
            return
        self._joined = False
        more = await self._scripts.leave(
            keys=[self._nodes, self._alive, self._reaping],
            args=[self._prefix, self._node, num(now)],
        )
        for _ in range(MAX_ATTEMPTS):
            if not more:
                return
            more = await self._scripts.reap(
                keys=[self._nodes, self._alive, self._reaping, self._due],
                args=[self._prefix, num(now), _READ_CHUNK, self._node],
            )


if TYPE_CHECKING:

    def _is_a_session_store(store: RedisStore) -> SessionStore:
        """Type-checked only: RedisStore implements the whole ``SessionStore`` port."""
        return store
