"""``Touches``: heartbeats and activity, batched into one ``touch.lua`` call per loop iteration.

The hottest write. The touch rule is the core's
(:func:`~tether.core.session.touch_effect`); ``touch.lua`` takes only its
``RECORDED`` case, and only while the session's armed deadline lies after
``now`` (no clock can have run out), so that case stays one round trip,
shared with every touch issued in the same loop iteration
(:class:`~tether.store.redis.batch.Batcher`). Every other case comes back
here and is decided with the core, then committed with a compare-and-set,
exactly as :class:`~tether.store.memory.MemoryStore` decides it.

A sharded store (:mod:`~tether.store.redis.shards`) shares one batcher over
its shards (:class:`TouchWriter`): a batch becomes one ``touch.lua`` call per
shard it touches (each runs in its shard's slot), all in one pipeline; on
Redis Cluster, one pipeline per master, sent to the masters at once
(:class:`~tether.store.redis.masters.Masters`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from tether.core.session import Ended, TouchEffect, Transition, touch_effect
from tether.store.base import Armed, Claim
from tether.store.redis import arming, cas
from tether.store.redis.batch import Batcher
from tether.store.redis.cas import AGAIN, Again
from tether.store.redis.codec import num
from tether.store.redis.link import Link
from tether.store.redis.masters import Masters
from tether.store.redis.scripts import Call
from tether.types import SessionId

Touch = tuple[int, str, str, str]
"""A queued touch: the session's shard, its hash key, ``now``, and ``"1"`` for activity."""

MAX_BATCH = 512
"""Touches per batch on one Redis: one ``touch.lua`` call of at most this many."""

CLUSTER_MAX_BATCH = 2048
"""Touches per batch on Redis Cluster. A batch is split over the 64 shards and
the masters: at 512 each shard's call carried ~8 touches and the per-call cost
(routing, ``EVALSHA`` dispatch) weighed on every touch; at 2048 each master
still gets about what one Redis gets per batch, in calls of ~32 touches."""

_RECORDED = TouchEffect.RECORDED
_PRESENCE = TouchEffect.PRESENCE


class Touches:
    """Touches through a :class:`Batcher`, decided in Python when ``touch.lua`` hands one back."""

    def __init__(self, link: Link, shard: int, batcher: Batcher[Touch]) -> None:
        self._link = link
        self._shard = shard
        self.batcher = batcher

    async def touch(
        self, session_id: SessionId, now: float, *, activity: bool
    ) -> Claim | Armed | None:
        """See ``SessionStore.touch``."""
        key, at, flag = self._link.keys.session(session_id), num(now), "1" if activity else "0"
        reply = await self.batcher.submit((self._shard, key, at, flag))
        if reply == 0:
            return None  # the hot path: recorded in Redis, no closure made
        return await self._decide(session_id, now, activity, (key, at, flag), reply)

    async def _decide(
        self,
        session_id: SessionId,
        now: float,
        activity: bool,
        touch: tuple[str, str, str],
        reply: Any,
    ) -> Claim | Armed | None:
        """``touch.lua`` handed the touch back: decide it with the core, commit by CAS."""
        link = self._link
        key, at, flag = touch

        async def attempt() -> Claim | Armed | Again | None:
            nonlocal reply
            if reply == 0:
                return None
            loaded = await link.refused(session_id, reply)
            record = loaded.record
            earlier: float | None = None
            transition: Transition | None = None
            if record.expired(now) is None:
                effect = touch_effect(
                    record.state, ever_heartbeat=record.ever_heartbeat, activity=activity
                )
                if effect is _RECORDED:
                    # nothing to decide after all: record it, if nothing moved
                    replies = await link.scripts.touch(keys=[key], args=[at, flag, loaded.version])
                    reply = replies[0]
                    return AGAIN
                record.touch(now, activity=activity)  # the core's touch rule, as MemoryStore
                if effect is _PRESENCE:
                    earlier = arming.earlier(loaded)
                else:
                    transition = record.advance(now)
            else:  # a touch cannot revive it: the end applies
                transition = record.advance(now)
            arm = arming.arm_after(loaded, transition, popped=False)
            if arm == arming.KEEP and earlier is not None:
                arm = num(earlier)
            reply = await link.apply(loaded, arm, now)
            if not cas.ok(reply):
                return AGAIN
            if isinstance(transition, Ended):
                return link.end_claim(loaded, transition)
            if transition is not None:
                return Claim(record.snapshot(), transition)
            return None if earlier is None else Armed(earlier)

        return await cas.retry(attempt)


class TouchWriter:
    """The store's one touch batcher: a batch is one ``touch.lua`` call per shard it touches."""

    def __init__(self, links: Sequence[Link]) -> None:
        self._links = list(links)
        client = self._links[0].client
        self.masters = Masters(client) if isinstance(client, RedisCluster) else None
        """On Redis Cluster: the batch's calls go one pipeline per master."""
        max_batch = CLUSTER_MAX_BATCH if self.masters is not None else MAX_BATCH
        self.batcher: Batcher[Touch] = Batcher(self._send, max_batch=max_batch)
        self._slots = [key_slot(link.keys.prefix.encode()) for link in self._links]
        """Each shard's slot (its prefix carries its hash tag)."""

    async def _send(self, touches: Sequence[Touch]) -> list[Any]:
        """Every touch of a batch, one call per shard, the calls in one pipeline."""
        if len(self._links) == 1:  # one Redis, one shard: one call, nothing to group
            flat: list[str] = []
            for _, _, at, flag in touches:
                flat += (at, flag, "")
            single: list[Any] = await self._links[0].scripts.touch(
                keys=[touch[1] for touch in touches], args=flat
            )
            return single
        groups: dict[int, list[int]] = {}
        for i, touch in enumerate(touches):
            groups.setdefault(touch[0], []).append(i)
        calls: list[Call] = []
        for shard, members in groups.items():
            args: list[str] = []
            for i in members:
                args += (touches[i][2], touches[i][3], "")
            script = self._links[shard].scripts.touch
            calls.append((script, [touches[i][1] for i in members], args))
        if len(calls) == 1:  # the batch touched one shard: no pipeline around it
            script, keys, arguments = calls[0]
            replies: list[Any] = await script(keys=keys, args=arguments)
            return replies
        if self.masters is not None:
            replies = await self.masters.run(calls, [self._slots[shard] for shard in groups])
        else:  # several shards on one Redis (tests, benches): one pipeline
            replies = await self._links[0].run(calls)
        out: list[Any] = [None] * len(touches)
        for members, reply in zip(groups.values(), replies, strict=True):
            for j, i in enumerate(members):
                out[i] = reply if isinstance(reply, BaseException) else reply[j]
        return out
