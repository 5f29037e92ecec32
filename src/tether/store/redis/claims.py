"""``Claims``: due sessions handed to exactly one node, in two steps, and leased ends.

``claim.lua`` leases up to ``limit`` due sessions to the caller without
reading them (:meth:`Claims.lease_due`): it moves their index entries, in
bulk, into one batch whose lease runs out at ``now + claim_lease``, out of
every other claimer's sight. Then (:meth:`Claims.settle`) Python reads them
(``read.lua``), advances each one with the core and commits it with
``apply.lua`` (``COMMIT_CHUNK`` sessions per call, only the fields that
changed, all calls in one pipeline): the end retires it, anything else
re-arms it at its true next deadline (the lazy re-arm of a touched session;
where the entry goes is the core's rule, :mod:`tether.core.arming`). A
commit that meets a newer version (a touch, an end, another claimer whose
lease ran out) is decided again on the fresh state, so each transition is
committed, and returned, exactly once. Once every session is committed the
batch is dropped (``drop.lua``). A claimer that dies before that leaves its
batch leased; the first claim after the lease runs out takes the whole batch
over and decides each session again.

Ends are leased too (``end_lease``, fence in the hash, the ``ending``
index): an end not completed in time is handed out again by ``claim_due``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

from tether.core.session import Ended, Transition
from tether.errors import SessionEnded, SessionNotFound
from tether.store.base import Claim
from tether.store.redis import arming, cas, codec
from tether.store.redis.cas import MAX_ATTEMPTS
from tether.store.redis.codec import Loaded, num, text
from tether.store.redis.link import READ_CHUNK, Link
from tether.store.redis.nodes import Nodes
from tether.store.redis.scripts import Call
from tether.store.redis.shards import shard_of
from tether.types import SessionId

log = logging.getLogger("tether.store")

COMMIT_CHUNK = 500
"""Sessions a claim commits per ``apply.lua`` call (all calls in one pipeline)."""


class Lease(NamedTuple):
    """What step one of a claim (:meth:`Claims.lease_due`) handed this caller."""

    ends: list[Claim]
    """Ends whose lease ran out uncompleted, handed out again with the next fence."""
    batch: str
    """The key of the batch holding the leased sessions (``""``: none)."""
    ids: list[str]
    """The leased sessions, not yet read or decided."""
    shard: int = 0
    """The shard of the batch (a sharded store leases one batch per shard)."""
    parts: tuple[Lease, ...] = ()
    """A sharded store's lease: the lease of each shard (the fields above merge them)."""


class Claims:
    """The two-step claim of due sessions, and the leases of ends."""

    def __init__(
        self,
        link: Link,
        nodes: Nodes,
        *,
        claim_lease: float,
        links: Sequence[Link] = (),
    ) -> None:
        self._link = link
        self._links = list(links) or [link]
        """Every shard's link: a sharded store settles the leases of all shards at once."""
        self._nodes = nodes
        self._claim_lease = claim_lease
        self._batch_numbers = itertools.count()

    async def next_due(self) -> float | None:
        """See ``SessionStore.next_due``."""
        k = self._link.keys
        reply = await self._link.scripts.next(keys=[k.due, k.ending, k.reaping, k.claims])
        return None if reply is None else codec.time_of(reply)

    def next_call(self) -> Call:
        """The ``next.lua`` call of :meth:`next_due` (a sharded store pipelines one per shard)."""
        k = self._link.keys
        return (self._link.scripts.next, [k.due, k.ending, k.reaping, k.claims], [])

    async def lease_due(self, now: float, limit: int) -> Lease:
        """Step one of a claim, after releasing dead nodes' connections (``reap.lua``).

        Hands out again the ends whose lease ran out uncompleted, and leases up
        to ``limit`` due sessions to this caller as one batch (``claim.lua``),
        without reading them: :meth:`settle` decides and commits them.
        """
        calls, batch = self.lease_calls(now, limit)
        replies = await self._link.run(calls)
        ends, count = await self.leased(replies)
        if not count:
            return Lease(ends, "", [])
        ids: list[codec.Raw] = await self._link.client.lrange(batch, 0, -1)
        return Lease(ends, batch, [text(i) for i in ids])

    def lease_calls(self, now: float, limit: int) -> tuple[list[Call], str]:
        """The ``reap.lua`` and ``claim.lua`` calls of :meth:`lease_due`, and the batch's key.

        With ``limit`` 0 (a sharded store's shard with nothing due) only the reap.
        """
        link, k = self._link, self._link.keys
        at, batch = num(now), k.batch(self._nodes.token, next(self._batch_numbers))
        calls: list[Call] = [
            (
                link.scripts.reap,
                [k.nodes, k.alive, k.reaping, k.due],
                [k.prefix, at, max(limit, 1), self._nodes.token],
            )
        ]
        if limit > 0:
            calls.append(
                (
                    link.scripts.claim,
                    [k.due, k.ending, k.claims, batch],
                    [
                        k.prefix,
                        at,
                        limit,
                        num(now + self._claim_lease),
                        num(now + link.end_lease),
                        link.retention_ms,
                    ],
                )
            )
        return calls, batch

    async def leased(self, replies: Sequence[Any]) -> tuple[list[Claim], int]:
        """The ends handed out again and the batch's size, from :meth:`lease_calls`' replies."""
        for result in replies:
            if isinstance(result, BaseException):
                raise result
        if len(replies) < 2:
            return [], 0
        claim = replies[1]
        ends = []
        for loaded in await self._link.decoded(claim[0]):
            reason = loaded.record.end_reason
            assert reason is not None  # claim.lua hands out ended sessions only
            ends.append(self._link.end_claim(loaded, Ended(reason), loaded.fence))
        return ends, int(claim[1])

    async def settle(self, lease: Lease, now: float) -> list[Claim]:
        """Step two of a claim: decide each leased session with the core and commit it.

        Returns the transitions committed (each exactly once across callers).
        Once every session of the batch is committed the batch is dropped;
        otherwise (a commit failed, a session kept changing) it stays leased
        and is claimed again, whole, when the lease runs out.
        """
        pending = await self._read_batch(lease.ids)
        claims: list[Claim] = []
        settled = True
        # Bounded rounds over the whole batch (each a pipeline of compare-and-sets);
        # what is still pending after them stays leased rather than raising.
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
        if settled and not pending:
            batches = [(self._links[p.shard], p.batch) for p in lease.parts if p.batch]
            if not lease.parts and lease.batch:
                batches = [(self._link, lease.batch)]
            drops: list[Call] = [
                (link.scripts.drop, [link.keys.claims, batch], []) for link, batch in batches
            ]
            if len(drops) == 1:
                script, keys, _ = drops[0]
                await script(keys=keys)
            elif drops:
                for reply in await self._link.run(drops):
                    if isinstance(reply, BaseException):
                        raise reply
        return claims

    def _by_link(self, ids: Sequence[str]) -> list[tuple[Link, list[str]]]:
        """``ids`` grouped by their shard's link (in order within each)."""
        if len(self._links) == 1:
            return [(self._link, list(ids))]
        groups: dict[int, list[str]] = {}
        for session_id in ids:
            groups.setdefault(shard_of(session_id, len(self._links)), []).append(session_id)
        return [(self._links[shard], members) for shard, members in groups.items()]

    async def _read_batch(self, ids: Sequence[str]) -> list[Loaded]:
        """The live sessions among ``ids`` (``read.lua``, one pipeline of chunks)."""
        calls: list[Call] = []
        chunks: list[tuple[Link, list[str]]] = []
        for link, members in self._by_link(ids):
            for at in range(0, len(members), READ_CHUNK):
                chunk = members[at : at + READ_CHUNK]
                calls.append((link.scripts.read, [link.keys.session(i) for i in chunk], []))
                chunks.append((link, chunk))
        replies = await self._link.run(calls)
        out: list[Loaded] = []
        for (link, chunk), reply in zip(chunks, replies, strict=True):
            if isinstance(reply, BaseException):
                raise reply
            for session_id, fields in zip(chunk, reply, strict=True):
                if not fields:
                    continue  # gone: its keys expired
                loaded = await link.configs.decode(session_id, fields)
                if loaded.record.end_reason is None:  # an ended one has nothing left to decide
                    out.append(loaded)
        return out

    async def _commit_decisions(
        self, pending: Sequence[Loaded], now: float, claims: list[Claim]
    ) -> tuple[list[Loaded], BaseException | None]:
        """Advance each of ``pending`` and commit it (``apply.lua``, one pipeline of chunks).

        Appends the committed transitions to ``claims``; returns the sessions
        that moved meanwhile (to decide again) and the error of a failed commit.
        """
        decided: list[tuple[Link, Loaded, Transition | None]] = []
        calls: list[Call] = []
        keys: list[str] = []
        args: list[str] = []
        by_id: dict[str, Loaded] = {loaded.record.id: loaded for loaded in pending}
        ordered = [
            (link, by_id[session_id])
            for link, members in self._by_link(list(by_id))
            for session_id in members
        ]
        current: Link | None = None
        for link, loaded in ordered:
            if not keys or link is not current:
                current = link
                keys, args = link.commit_head(now)
                calls.append((link.scripts.apply, keys, args))
            before = codec.mutable_fields(loaded.record)
            transition = loaded.record.advance(now)
            arm = arming.arm_after(loaded, transition, popped=True)
            decided.append((link, loaded, transition))
            after = codec.mutable_fields(loaded.record)
            changed = [
                item
                for i in range(0, len(after), 2)
                if after[i + 1] != before[i + 1]
                for item in after[i : i + 2]
            ]
            link.commit_one(keys, args, loaded, arm, changed)
            if len(keys) >= 4 + 2 * COMMIT_CHUNK:
                keys = []
        replies = await self._link.run(calls)
        results: list[Any] = []
        for (_, call_keys, _), reply in zip(calls, replies, strict=True):
            count = (len(call_keys) - 4) // 2
            results += [reply] * count if isinstance(reply, BaseException) else reply
        moved: list[Loaded] = []
        failed: BaseException | None = None
        for (link, loaded, transition), result in zip(decided, results, strict=True):
            if isinstance(result, BaseException):
                failed = result  # not committed: the batch stays leased
            elif cas.ok(result):
                if isinstance(transition, Ended):
                    claims.append(link.end_claim(loaded, transition))
                elif transition is not None:
                    claims.append(Claim(loaded.record.snapshot(), transition))
            else:
                with contextlib.suppress(SessionNotFound, SessionEnded):  # ended by another
                    moved.append(await link.refused(loaded.record.id, result))  # decide again
        return moved, failed

    # -- end leases -----------------------------------------------------------------

    async def complete(self, session_id: SessionId, fence: int) -> bool:
        """See ``SessionStore.complete``."""
        k = self._link.keys
        reply = await self._link.scripts.complete(
            keys=[k.session(session_id), k.ending], args=[session_id, fence]
        )
        return bool(reply)

    async def renew(self, ends: Sequence[tuple[SessionId, int]], now: float) -> list[bool]:
        """See ``SessionStore.renew``."""
        if not ends:
            return []
        k = self._link.keys
        args: list[str | int] = [num(now + self._link.end_lease)]
        for session_id, fence in ends:
            args += (session_id, fence)
        reply = await self._link.scripts.renew(
            keys=[k.ending, *(k.session(sid) for sid, _ in ends)], args=args
        )
        return [bool(r) for r in reply]
